/**
 * The T6 rig (issue 9), shared by faults.bench and faults-threads.bench: guest SVA-style demand
 * paging through iommufd on a nested `vtd-s1` HWPT, driven by a `DmaEngine`, and one timed run of
 * it. See faults.bench.ts for what each stage of a fault is.
 */
import { Access, Iommufd, PAGE_RESPONSE, type HostMemory } from '../src/index.js';

/** The first IOVA the rig's transfers touch (page i of a run at BASE + i × 4096). */
export const BASE = 0x1000_0000;
/** Pages a nested rig can demand-page: from BASE to the end of the 1 GiB its one stage-1 L2 table maps. */
export const MAX_RIG_PAGES = (2 ** 30 - BASE) / 4096;

/** One run's figures. */
export interface Run {
  /** Faults per second over the run's wall time. */
  faultsPerSecond: number;
  /** Median fault latency (µs), submit to completion. */
  p50Us: number;
  /** 99th percentile fault latency (µs). */
  p99Us: number;
}

/** A run's figures from its latency sample (ms), its wall time (ms) and its fault count. */
export function runOf(lat: Float64Array, ms: number, faults = lat.length): Run {
  lat.sort();
  const n = lat.length;
  return {
    faultsPerSecond: (faults / ms) * 1000,
    p50Us: lat[n >> 1]! * 1000,
    p99Us: lat[Math.floor(n * 0.99)]! * 1000,
  };
}

/** Touches one word of every page of [va, va + bytes), so the host OS has backed them before timing. */
export function preTouch(memory: HostMemory, va: bigint, bytes: number): void {
  const w = memory.window(va, BigInt(bytes));
  for (let off = 0; off < bytes; off += 4096) w.write32(off, 0);
  w.close();
}

/** x86 first-stage entry bits. */
const P = 1;
const RW = 2;
const US = 4;
const A = 32;
const D = 64;
/** Guest-physical layout of the nested rig: stage-1 L0, L1, L2 tables, the L3 tables, then the data pages. */
const L0 = 0x1000;
const L1 = 0x2000;
const L2 = 0x3000;
const L3_POOL = 0x10_0000;
const DATA = 0x200_0000;

/**
 * Guest SVA-style demand paging through iommufd: a VT-d device with PRI on a nested vtd-s1 HWPT
 * (hardware nesting) with a FAULT queue, its stage-1 table empty below one L2 table, and a handler
 * that maps each faulting page by writing the guest's leaf (through a MemoryWindow on guest RAM)
 * and answers SUCCESS, or (`map` false) answers INVALID. Returns the fd, the device and the queue.
 */
export function nestedRig(faults: number, map: boolean, iotlbEntries = 65536) {
  if (faults > MAX_RIG_PAGES)
    throw new Error(
      `--faults is at most ${MAX_RIG_PAGES} (the pages from BASE to the end of one stage-1 L2 table's 1 GiB)`,
    );
  const guestBytes = DATA + Math.ceil((faults * 4096) / 2 ** 20) * 2 ** 20;
  const fd = Iommufd.open({ memoryBytes: guestBytes + 96 * 2 ** 20, iotlb: { entries: iotlbEntries, shards: 8 } });
  const ioas = fd.ioasAlloc();
  const va = fd.memory.mmap(BigInt(guestBytes));
  fd.ioasMap(ioas, { userVa: va, length: BigInt(guestBytes), iova: 0n, flags: { fixedIova: true } });
  preTouch(fd.memory, va, guestBytes);
  const dev = fd.deviceBind({ iommu: 'vtd', pri: true });
  const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
  const { faultId, queue } = fd.faultQueueAlloc();
  const hwpt = fd.hwptAlloc({
    devId: dev,
    ptId: parent,
    dataType: 'vtd-s1',
    data: { pgtblAddr: L0, addrWidth: 48 },
    faultId,
  });
  fd.deviceAttach(dev, hwpt);
  const guest = fd.memory.window(va, BigInt(guestBytes));
  const table = (gpa: number): number => gpa | P | RW | US | A;
  guest.write64(L0 + (Math.floor(BASE / 2 ** 39) % 512) * 8, table(L1), 0);
  guest.write64(L1 + (Math.floor(BASE / 2 ** 30) % 512) * 8, table(L2), 0);
  const l3 = new Int32Array(512);
  let nextTable = L3_POOL;
  const recs = new Uint32Array(10 * 512);
  const resp = new Uint32Array(2 * 512);
  const handle = (): void => {
    let n: number;
    while ((n = queue.readInto(recs)) > 0) {
      for (let i = 0; i < n; i++) {
        const o = i * 10;
        if (map) {
          const addr = recs[o + 6]! + recs[o + 7]! * 2 ** 32;
          const region = Math.floor(addr / 2 ** 21) % 512;
          let t = l3[region]!;
          if (t === 0) {
            t = l3[region] = nextTable;
            nextTable += 4096;
            guest.write64(L2 + region * 8, table(t), 0);
          }
          const page = (addr - BASE) / 4096;
          guest.write64(t + ((addr / 4096) % 512) * 8, (DATA + page * 4096) | P | RW | US | A | D, 0);
        }
        resp[2 * i] = recs[o + 9]!;
        resp[2 * i + 1] = map ? PAGE_RESPONSE.Success : PAGE_RESPONSE.Invalid;
      }
      queue.respondWords(resp, n);
    }
  };
  // Woken once per burst (EPOLLIN's edge), the handler runs as a microtask and drains the queue.
  queue.ready$.subscribe(() => queueMicrotask(handle));
  return { fd, dev, queue };
}

/** A nested rig (see {@link nestedRig}). */
export type Rig = ReturnType<typeof nestedRig>;

/**
 * The engine rows on one long-lived fd: `runs` runs of `faults` faults back to back on fresh
 * pages of one rig, as a VMM that keeps its device and handler sees them (a run on a fresh fd
 * starts with new closures and an empty IOTLB). Fewer runs when they would not fit one stage-1
 * L2 table.
 */
export async function longLivedRuns(faults: number, runs: number, map: boolean, o: EngineRunOptions): Promise<Run[]> {
  const n = Math.max(1, Math.min(runs, Math.floor(MAX_RIG_PAGES / faults)));
  const rig = nestedRig(n * faults, map, o.iotlbEntries);
  const out: Run[] = [];
  try {
    for (let r = 0; r < n; r++) out.push(await engineRun(faults, map, { ...o, rig, firstPage: r * faults }));
  } finally {
    await rig.fd.close();
  }
  return out;
}

/** An engine run's figures and when it ran (to add up runs of several threads). */
export interface EngineRun extends Run {
  /** When the clock started, in ms since the epoch (`performance.timeOrigin` based, comparable across threads). */
  startedAt: number;
  /** The run's wall time (ms). */
  wallMs: number;
}

/** Knobs of {@link engineRun}. */
export interface EngineRunOptions {
  /** Transfers in flight. */
  depth: number;
  /** IOTLB entries of a rig the run builds. */
  iotlbEntries: number;
  /** Run on this rig, from page `firstPage` on, and leave it open (default: a fresh rig, closed after). */
  rig?: Rig;
  /** The run's first page on `rig` (its transfers touch pages firstPage … firstPage + faults − 1). */
  firstPage?: number;
  /** Called once the rig is built, just before the clock starts (a start barrier across threads). */
  beforeStart?: () => void;
}

/**
 * The engine rows: `faults` 64-byte writes, one per new page, `o.depth` in flight, each completion
 * submitting the next. `map`: recoverable (every transfer completes after one fault); otherwise
 * report-only (every transfer fails INVALID after its fault).
 */
export async function engineRun(faults: number, map: boolean, o: EngineRunOptions): Promise<EngineRun> {
  const { fd, dev, queue } = o.rig ?? nestedRig(faults, map, o.iotlbEntries);
  const firstPage = o.firstPage ?? 0;
  const depth = o.depth;
  const answeredBefore = queue.stats.answered;
  const data = new Uint8Array(64).fill(0x5a);
  const started = new Float64Array(depth);
  const lat = new Float64Array(Math.ceil(faults / 8));
  let sampled = 0;
  let submitted = 0;
  let ok = 0;
  let failed = 0;
  const next = (): void => {
    const i = submitted++;
    const tx = engine.submit(BASE + (firstPage + i) * 4096, Access.Write, data);
    if ((i & 7) === 0) started[tx] = performance.now();
    else started[tx] = 0;
  };
  const engine = fd.dmaEngine(dev, {
    depth,
    onComplete: (tx, status) => {
      if (started[tx] !== 0) lat[sampled++] = performance.now() - started[tx]!;
      if (status === 0) ok++;
      else failed++;
      if (submitted < faults) next();
    },
  });
  o.beforeStart?.();
  const t0 = performance.now();
  while (submitted < Math.min(depth, faults)) next();
  await engine.idle();
  const ms = performance.now() - t0;
  const want = map ? { ok: faults, failed: 0 } : { ok: 0, failed: faults };
  if (ok !== want.ok || failed !== want.failed || engine.stats.requests !== faults)
    throw new Error(`engine: ${ok} done, ${failed} failed, ${engine.stats.requests} requests of ${faults}`);
  const answered = queue.stats.answered - answeredBefore;
  if (answered !== faults || queue.pending + queue.awaiting !== 0)
    throw new Error(`engine: ${answered} of ${faults} answered, ${queue.pending + queue.awaiting} left`);
  if (o.rig === undefined) await fd.close();
  return { ...runOf(lat.subarray(0, sampled), ms, faults), startedAt: performance.timeOrigin + t0, wallMs: ms };
}
