/**
 * The walk-versus-unmap run: an fd with a mock, a smmuv3 and a vtd device, each on its own IOAS
 * with a stable region and two churn windows; two walker threads (walker.worker.ts) translate
 * while the main thread maps, unmaps and replaces HWPTs, until the caller says it has enough.
 */
import { Piscina } from 'piscina';
import { Access, Iommufd } from '../../src/index.js';
import { CONTROL, POISON, type Anomaly, type DeviceLayout, type WalkerConfig, type WalkerReport } from './check.js';

const MiB = 2 ** 20;
const PAGE = 4096;
const MEMORY_BYTES = 64 * MiB;
/** A churn window: 4 slots of 2 MiB, each mapped as one 2 MiB area (a block) or a few 4 KiB runs. */
const SLOT_BYTES = 2 * MiB;
const SLOTS = 4;
const WINDOW_PAGES = (SLOTS * SLOT_BYTES) / PAGE;
const STABLE_BASE = 16 * MiB;
const STABLE_BYTES = 4 * MiB;
/**
 * Per kind: the first churn window shares its upper tables with the stable region, so emptying a
 * slot frees only leaf tables; the second is alone under its own upper tables (an L0 entry of its
 * own for the 4-level formats, a root entry of its own for mock), which are freed when it empties.
 * Both avoid the SW MSI window of smmuv3 (0x8000000) and the interrupt range of vtd (0xfee00000).
 */
const KINDS = [
  { kind: 'mock', windows: [24 * MiB, 0x6000_0000] },
  { kind: 'smmuv3', windows: [24 * MiB, 0x80_0000_0000] },
  { kind: 'vtd', windows: [24 * MiB, 0x80_0000_0000] },
] as const;

const WALKERS = 2;
/** Churn never runs longer than this, whatever the caller's stop condition. */
const HARD_STOP_MS = 8000;
/** Every this many churn steps, one device moves to a new HWPT and the old one is destroyed. */
const RECYCLE_EVERY = 50;

/** How far a run has got, for the caller's stop condition. */
export interface Progress {
  /** Milliseconds of churn. */
  ms: number;
  /** Map and unmap calls. */
  ops: number;
  /** Walks by all walkers. */
  walks: number;
  /** Forbidden faults and exceptions seen by all walkers so far. */
  forbidden: number;
}

/** What a run observed. */
export interface RunResult {
  walks: number;
  stableOk: number;
  churnHits: number;
  churnMisses: number;
  stableMismatches: number;
  churnIllegal: number;
  forbiddenFaults: number;
  exceptions: number;
  ops: number;
  recycles: number;
  ms: number;
  seed: number;
  /** Frames in use after fd.close(). */
  framesAfterClose: number;
  /** Per walker, the count of each forbidden fault code. */
  faultCodes: Record<string, number>[];
  /** The first anomalies of each walker. */
  samples: Anomaly[];
}

/** A small PRNG (xorshift32): the main thread's sequence of operations follows from the seed. */
function prng(seed: number): (n: number) => number {
  let x = seed | 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** One device: its IOAS, its current HWPT, and which churn slots have something mapped. */
interface Rig {
  kind: string;
  devId: number;
  ioas: number;
  hwpt: number;
  windows: readonly number[];
  /** Per window and slot. */
  mapped: boolean[];
}

/** The walker threads: each runs one walk task from walker.worker.ts for the whole run. */
function walkerPool(): Piscina<WalkerConfig, WalkerReport> {
  const pool = new Piscina<WalkerConfig, WalkerReport>({
    filename: new URL('./walker.worker.ts', import.meta.url).href,
    execArgv: [...process.execArgv, '--import', 'tsx'],
    minThreads: WALKERS,
    maxThreads: WALKERS,
  });
  pool.on('error', () => {}); // a failing worker rejects its task; never crash the process
  return pool;
}

/** Waits until every walker is walking, or one failed. */
async function walkersReady(ctl: Int32Array, runs: Promise<unknown>[]): Promise<void> {
  let failure: Error | undefined;
  for (const r of runs) r.catch((e: unknown) => (failure ??= e instanceof Error ? e : new Error(String(e))));
  while (Atomics.load(ctl, CONTROL.Ready) < runs.length) {
    if (failure !== undefined) throw failure;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Binds the devices and maps their stable regions; returns them and what their stable pages translate to. */
function setUpDevices(fd: Iommufd, stableVa: bigint): { rigs: Rig[]; layouts: DeviceLayout[] } {
  const rigs: Rig[] = [];
  const layouts: DeviceLayout[] = [];
  const flags = { fixedIova: true };
  const half = BigInt(STABLE_BYTES / 2);
  for (const { kind, windows } of KINDS) {
    const devId = fd.deviceBind({ iommu: kind });
    const ioas = fd.ioasAlloc();
    const hwpt = fd.hwptAlloc({ devId, ptId: ioas });
    fd.deviceAttach(devId, hwpt);
    // A 2 MiB area whose host pages are block-aligned, then 2 MiB of 4 KiB pages.
    fd.ioasMap(ioas, { userVa: stableVa, length: half, iova: BigInt(STABLE_BASE), flags });
    fd.ioasMap(ioas, { userVa: stableVa + half + BigInt(PAGE), length: half, iova: BigInt(STABLE_BASE) + half, flags });
    const stablePa: number[] = [];
    for (let p = 0; p < STABLE_BYTES / PAGE; p++) {
      const pa = fd.translate(devId, STABLE_BASE + p * PAGE, Access.Read);
      if (pa < 0) throw new Error(`${kind}: stable page ${p} does not translate (${pa})`);
      stablePa.push(pa);
    }
    rigs.push({ kind, devId, ioas, hwpt, windows, mapped: new Array<boolean>(windows.length * SLOTS).fill(false) });
    layouts.push({ kind, slot: fd.deviceSlot(devId), stableBase: STABLE_BASE, stablePa, windows: [...windows] });
  }
  return { rigs, layouts };
}

/**
 * The physical address of each page of a churn window: the host pages from the first one on a
 * 2 MiB boundary above 2 MiB (so that a 2 MiB slot maps as a block, and PA 0 is never a
 * legitimate result). Found by mapping the host buffer once, translating, and unmapping.
 */
function churnPages(fd: Iommufd, probe: Rig, churnVa: bigint, bytes: number): { va: bigint; pa: number[] } {
  const iova = 0x40_0000_0000;
  fd.ioasMap(probe.ioas, { userVa: churnVa, length: BigInt(bytes), iova: BigInt(iova), flags: { fixedIova: true } });
  const hostPa: number[] = [];
  for (let p = 0; p < bytes / PAGE; p++) hostPa.push(fd.translate(probe.devId, iova + p * PAGE, Access.Read));
  fd.ioasUnmap(probe.ioas, BigInt(iova), BigInt(bytes));
  const first = hostPa.findIndex((pa) => pa >= SLOT_BYTES && pa % SLOT_BYTES === 0);
  const pa = hostPa.slice(first, first + WINDOW_PAGES);
  if (first < 0 || pa.length < WINDOW_PAGES || pa.some((x, i) => x !== pa[0]! + i * PAGE)) {
    throw new Error('the churn host pages are not physically contiguous from a 2 MiB boundary');
  }
  return { va: churnVa + BigInt(first * PAGE), pa };
}

/**
 * Runs the walkers against the churn. `epoch: false` gives the walkers no reader slot (the
 * negative control). The main thread churns until `enough` says so (or HARD_STOP_MS).
 */
export async function runWalkVsUnmap(opts: { epoch: boolean; enough: (p: Progress) => boolean }): Promise<RunResult> {
  const seed = (Date.now() % 0x7fff_ffff) | 1;
  const rand = prng(seed);
  const fd = Iommufd.open({ memoryBytes: MEMORY_BYTES, poisonFreedFrames: POISON });

  // Host memory first, so that its frames are fresh and physically contiguous.
  const churnBytes = WINDOW_PAGES * PAGE + 2 * SLOT_BYTES;
  const churnVa = fd.memory.mmap(BigInt(churnBytes));
  const stableVa = fd.memory.mmap(BigInt(STABLE_BYTES + PAGE));
  const { rigs, layouts } = setUpDevices(fd, stableVa);
  const churn = churnPages(fd, rigs[rigs.length - 1]!, churnVa, churnBytes);

  const control = new SharedArrayBuffer(4 * (CONTROL.Walkers + CONTROL.PerWalker * WALKERS));
  const ctl = new Int32Array(control);
  const pool = walkerPool();
  const runs = Array.from({ length: WALKERS }, (_, id) =>
    pool.run({
      dataPlane: fd.dataPlane(),
      control,
      id,
      seed: seed + 7919 * (id + 1),
      epoch: opts.epoch,
      devices: layouts,
      churnPa: churn.pa,
    }),
  );
  const stopWalkers = async (): Promise<WalkerReport[]> => {
    Atomics.store(ctl, CONTROL.Stop, 1);
    try {
      return await Promise.all(runs);
    } finally {
      await pool.destroy();
    }
  };

  let ops = 0;
  let recycles = 0;
  const flags = { fixedIova: true };
  const mapRun = (rig: Rig, iova: number, page: number, pages: number): void => {
    const userVa = churn.va + BigInt(page * PAGE);
    fd.ioasMap(rig.ioas, { userVa, length: BigInt(pages * PAGE), iova: BigInt(iova), flags });
    ops++;
    // The walkers' expectation is the main thread's view too.
    const pa = fd.translate(rig.devId, iova, Access.Read);
    if (pa !== churn.pa[page]) throw new Error(`${rig.kind}: 0x${iova.toString(16)} -> ${pa}, not ${churn.pa[page]}`);
  };
  // One step: unmap a whole window now and then; otherwise toggle a slot between empty and
  // mapped (as one 2 MiB area, or as 1-3 runs of 1-48 pages). Each IOVA always maps the same
  // host page: the page at the same offset of the churn buffer.
  const churnOnce = (): void => {
    const rig = rigs[rand(rigs.length)]!;
    const w = rand(rig.windows.length);
    const windowBase = rig.windows[w]!;
    if (rand(16) === 0 && rig.mapped.slice(w * SLOTS, (w + 1) * SLOTS).some(Boolean)) {
      fd.ioasUnmap(rig.ioas, BigInt(windowBase), BigInt(SLOTS * SLOT_BYTES));
      ops++;
      rig.mapped.fill(false, w * SLOTS, (w + 1) * SLOTS);
      return;
    }
    const s = rand(SLOTS);
    const slotBase = windowBase + s * SLOT_BYTES;
    const slotPage = (s * SLOT_BYTES) / PAGE;
    if (rig.mapped[w * SLOTS + s]) {
      fd.ioasUnmap(rig.ioas, BigInt(slotBase), BigInt(SLOT_BYTES));
      ops++;
    } else if (rand(5) < 2) {
      mapRun(rig, slotBase, slotPage, SLOT_BYTES / PAGE);
    } else {
      const used = new Uint8Array(SLOT_BYTES / PAGE);
      for (let runs = 1 + rand(3); runs > 0; runs--) {
        const start = rand(used.length);
        const end = Math.min(used.length, start + 1 + rand(48));
        if (used.subarray(start, end).some((u) => u !== 0)) continue;
        used.fill(1, start, end);
        mapRun(rig, slotBase + start * PAGE, slotPage + start, end - start);
      }
    }
    rig.mapped[w * SLOTS + s] = !rig.mapped[w * SLOTS + s];
  };
  // Moves a device to a new HWPT of the same IOAS (filled at allocation) and destroys the old
  // one: its whole table and its descriptor are freed. smmuv3 alternates stage 1 and stage 2.
  const recycle = (): void => {
    const rig = rigs[rand(rigs.length)]!;
    const nestParent = rig.kind === 'smmuv3' && recycles % 2 === 0;
    const hwpt = fd.hwptAlloc({ devId: rig.devId, ptId: rig.ioas, ...(nestParent ? { flags: { nestParent } } : {}) });
    fd.deviceReplace(rig.devId, hwpt);
    fd.destroy(rig.hwpt);
    rig.hwpt = hwpt;
    recycles++;
  };
  const progress = (ms: number): Progress => {
    let walks = 0;
    let forbidden = 0;
    for (let w = 0; w < WALKERS; w++) {
      walks += Atomics.load(ctl, CONTROL.Walkers + CONTROL.PerWalker * w);
      forbidden += Atomics.load(ctl, CONTROL.Walkers + CONTROL.PerWalker * w + 1);
    }
    return { ms, ops, walks, forbidden };
  };

  const abort = async (e: unknown): Promise<never> => {
    await stopWalkers().catch(() => []);
    await fd.close();
    throw e;
  };
  await walkersReady(ctl, runs).catch(abort);
  const start = performance.now();
  try {
    for (let i = 1; ; i++) {
      const ms = performance.now() - start;
      if (ms > HARD_STOP_MS || (i % 8 === 0 && opts.enough(progress(ms)))) break;
      churnOnce();
      if (i % RECYCLE_EVERY === 0) recycle();
    }
  } catch (e) {
    await abort(e);
  }
  const ms = Math.round(performance.now() - start);
  const reports = await stopWalkers();
  await fd.close();

  const sum = (key: Exclude<keyof WalkerReport, 'faultCodes' | 'samples'>): number =>
    reports.reduce((n, r) => n + r[key], 0);
  return {
    walks: sum('walks'),
    stableOk: sum('stableOk'),
    churnHits: sum('churnHits'),
    churnMisses: sum('churnMisses'),
    stableMismatches: sum('stableMismatches'),
    churnIllegal: sum('churnIllegal'),
    forbiddenFaults: sum('forbiddenFaults'),
    exceptions: sum('exceptions'),
    ops,
    recycles,
    ms,
    seed,
    framesAfterClose: fd.framesInUse(),
    faultCodes: reports.map((r) => r.faultCodes),
    samples: reports.flatMap((r) => r.samples),
  };
}
