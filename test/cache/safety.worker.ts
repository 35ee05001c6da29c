/**
 * A device thread for the IOTLB safety test: translates the test's IOVAs until told to stop,
 * and counts results that a completed barrier had already removed (DESIGN.md invariant 1).
 */
import { Iotlb } from '../../src/cache/index.js';
import { SystemMemory } from '../../src/memory/index.js';
import { Access } from '../../src/pgtable/index.js';
import { ContextTables, NO_PASID, Translator, type DataPlaneHandles } from '../../src/translate/index.js';

/** What the main thread gives a walker. */
export interface SafetyConfig {
  dataPlane: DataPlaneHandles;
  /** [stop, barrier, walkers started]: barrier k means the mappings of cycles < k are removed. */
  control: SharedArrayBuffer;
  /** Per frame: the cycle whose mapping uses it, or -1. */
  frameCycle: SharedArrayBuffer;
  dev: number;
  iovas: number[];
  /** False only in the negative control. */
  fillGuard: boolean;
}

/** What a walker reports. */
export interface SafetyReport {
  translations: number;
  mapped: number;
  stale: number;
  unknown: number;
  samples: string[];
}

export default function walk(cfg: SafetyConfig): SafetyReport {
  const memory = new SystemMemory(0, cfg.dataPlane.memory);
  const tables = new ContextTables(memory.phys, undefined, cfg.dataPlane.tables);
  const t = cfg.dataPlane.iotlb!;
  const iotlb = new Iotlb(t.entries, t.shards, t.handles);
  iotlb.fillGuard = cfg.fillGuard;
  const slot = memory.reclaimer.acquireSlot();
  const a = cfg.dataPlane.atc;
  const atc = a === undefined ? undefined : new Iotlb(a.entries, a.shards, a.handles);
  if (atc !== undefined) atc.fillGuard = cfg.fillGuard;
  const translator = new Translator(memory.phys, tables, memory.reclaimer, slot, iotlb, atc);
  const control = new Int32Array(cfg.control);
  const frameCycle = new Int32Array(cfg.frameCycle);
  const r: SafetyReport = { translations: 0, mapped: 0, stale: 0, unknown: 0, samples: [] };
  Atomics.add(control, 2, 1);
  try {
    while (Atomics.load(control, 0) === 0) {
      for (const iova of cfg.iovas) {
        const barrier = Atomics.load(control, 1); // read before the translation starts
        const pa = translator.translate(cfg.dev, iova, Access.Read, NO_PASID);
        r.translations++;
        if (pa < 0) continue;
        r.mapped++;
        const cycle = frameCycle[Math.floor(pa / 4096)]!;
        if (cycle < 0) {
          r.unknown++;
        } else if (cycle + 1 <= barrier) {
          r.stale++;
          if (r.samples.length < 5)
            r.samples.push(`iova 0x${iova.toString(16)} -> cycle ${cycle} after barrier ${barrier}`);
        }
      }
    }
  } finally {
    memory.reclaimer.releaseSlot(slot);
  }
  return r;
}
