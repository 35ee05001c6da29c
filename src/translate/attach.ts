import { Iotlb, ShadowTable, type IotlbHandles, type ShadowHandles } from '../cache/index.js';
import { SystemMemory, type SharedMemoryHandles } from '../memory/index.js';
import { ContextTables, type ContextHandles } from './tables.js';
import { Translator } from './translator.js';

/** Everything a thread needs to translate DMA on its own: the shared buffers, handed over once. */
export interface DataPlaneHandles {
  /** Physical memory, the frame allocator and the reclaimer. */
  memory: SharedMemoryHandles;
  /** Domain descriptors and device contexts. */
  tables: ContextHandles;
  /** The IOTLB, if the fd has one: its buffers and geometry. */
  iotlb?: { handles: IotlbHandles; entries: number; shards: number } | undefined;
  /** The devices' ATC table, likewise. */
  atc?: { handles: IotlbHandles; entries: number; shards: number } | undefined;
  /** The software-nesting shadow (over the IOTLB), if the fd has one. */
  shadow?: { handles: ShadowHandles; entries: number } | undefined;
}

/** What a pool hands its translate workers: the buffers, and where each records its reader slot. */
export interface TranslateWorkerData {
  /** The fd's data plane. */
  handles: DataPlaneHandles;
  /** One Int32 per worker: the reader slot it claimed, or -1. */
  slots: SharedArrayBuffer;
}

/**
 * Builds a translator over shared buffers in another thread, sharing the fd's IOTLB if it has
 * one. It claims a reader slot, so the control plane's reclamation waits for its walks;
 * `release` gives the slot back.
 */
export function attachTranslator(handles: DataPlaneHandles): {
  translator: Translator;
  slot: number;
  release: () => void;
} {
  const memory = new SystemMemory(0, handles.memory);
  const tables = new ContextTables(memory.phys, undefined, handles.tables);
  const slot = memory.reclaimer.acquireSlot();
  if (slot < 0) throw new Error('no free reader slot for this thread (64 threads translate already)');
  const t = handles.iotlb;
  const iotlb = t === undefined ? undefined : new Iotlb(t.entries, t.shards, t.handles);
  const a = handles.atc;
  const atc = a === undefined ? undefined : new Iotlb(a.entries, a.shards, a.handles, true);
  const sh = handles.shadow;
  const shadow = sh === undefined || iotlb === undefined ? undefined : new ShadowTable(iotlb, sh.entries, sh.handles);
  return {
    translator: new Translator(memory.phys, tables, memory.reclaimer, slot, iotlb, atc, shadow),
    slot,
    release: () => memory.reclaimer.releaseSlot(slot),
  };
}

/** Records `slot` in the first free entry of a pool's slot array. */
export function recordSlot(slots: SharedArrayBuffer, slot: number): void {
  const a = new Int32Array(slots);
  for (let i = 0; i < a.length; i++) if (Atomics.compareExchange(a, i, -1, slot) === -1) return;
}

/** Gives back every reader slot recorded in a pool's slot array (after its workers are gone). */
export function releaseRecordedSlots(handles: DataPlaneHandles, slots: SharedArrayBuffer): void {
  const memory = new SystemMemory(0, handles.memory);
  const a = new Int32Array(slots);
  for (let i = 0; i < a.length; i++) {
    const s = Atomics.exchange(a, i, -1);
    if (s >= 0) memory.reclaimer.releaseSlot(s);
  }
}
