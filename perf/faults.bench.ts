/**
 * T6 (issue 9): recoverable I/O page faults per second on one thread, with p50/p99 fault latency.
 * Every stage runs on the calling thread, as the kernel's software path does on one CPU.
 *
 * Rows, measured interleaved in one run:
 * - **recoverable (engine)**, the T6 figure: guest SVA-style demand paging through iommufd. A VT-d
 *   device with PRI is attached to a nested `vtd-s1` HWPT (hardware nesting) with a FAULT queue;
 *   its guest stage-1 table starts empty. A `DmaEngine` keeps 256 (`--depth`) 64-byte writes in flight, each
 *   to a new page: the translation is Pending (fault), the page request is queued as a 40-byte
 *   record (delivery), the handler, woken by `ready$`, reads the records with `readInto`, writes
 *   the stage-1 leaf (and an L3 table when a 2 MiB region is new) into guest RAM through a
 *   `MemoryWindow` (handler), and answers SUCCESS with `respondWords` (response); the engine
 *   retranslates, the nested walk succeeds and the data is written (retry).
 * - **report-only (engine)**, the baseline: the same device, fault and delivery, but the handler
 *   answers INVALID without mapping; nothing is retried. The ratio is recoverable / report-only.
 * - **recoverable (fd.dma)**: the Promise-per-transfer API on a paging HWPT, the handler mapping
 *   each page with `ioasMap` (an IOMMU_IOAS_MAP per fault) and answering with `respond`.
 * - **vtd guest**: the emulated VT-d unit with a Linux-like guest: PRQ descriptor, the guest's
 *   SVA-like handler, page group response, and the retry.
 *
 * Then the two engine rows again on one long-lived fd each: the runs go back to back on fresh
 * pages of one rig, as a VMM that keeps its device and handler sees them (an interleaved run
 * builds a fresh fd, engine and handler each time). Its IOTLB is full, so every fill evicts.
 *
 * Guest and host memory are touched once before timing (the host OS's own first-touch faults of
 * the simulator's SharedArrayBuffer are not the simulated faults). Latency: from submit to
 * completion, sampled on every 8th transfer of the engine rows, every transfer otherwise.
 *
 *   npm run build && node dist/perf/faults.bench.js [--faults N] [--runs R] [--depth D] [--iotlb E] [--row NAME] [--json]
 */
import { Access, Iommufd, PAGE_RESPONSE, VtdGuestDriver, type HostMemory } from '../src/index.js';
import { mapOnFault } from '../src/bench/faults.js';
import { intFlag, machineLine, median } from './common.js';

const FAULTS = intFlag('faults.bench', 'faults', 50000);
const RUNS = intFlag('faults.bench', 'runs', 5);
/** Transfers the engine rows keep in flight (latency then includes the queueing: Little's law). */
const DEPTH = intFlag('faults.bench', 'depth', 256);
/** IOTLB entries of the engine rows' fd (default: Iommufd.open's, 65536 over 8 shards). */
const IOTLB = intFlag('faults.bench', 'iotlb', 65536);
const JSON_OUT = process.argv.includes('--json');
const BASE = 0x1000_0000;
/** Pages a nested rig can demand-page: from BASE to the end of the 1 GiB its one stage-1 L2 table maps. */
const MAX_RIG_PAGES = (2 ** 30 - BASE) / 4096;

interface Run {
  faultsPerSecond: number;
  p50Us: number;
  p99Us: number;
}

/** A run's figures from its latency sample (ms), its wall time (ms) and its fault count. */
function runOf(lat: Float64Array, ms: number, faults = lat.length): Run {
  lat.sort();
  const n = lat.length;
  return {
    faultsPerSecond: (faults / ms) * 1000,
    p50Us: lat[n >> 1]! * 1000,
    p99Us: lat[Math.floor(n * 0.99)]! * 1000,
  };
}

/** Touches one word of every page of [va, va + bytes), so the host OS has backed them before timing. */
function preTouch(memory: HostMemory, va: bigint, bytes: number): void {
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
function nestedRig(faults: number, map: boolean) {
  if (faults > MAX_RIG_PAGES)
    throw new Error(
      `--faults is at most ${MAX_RIG_PAGES} (the pages from BASE to the end of one stage-1 L2 table's 1 GiB)`,
    );
  const guestBytes = DATA + Math.ceil((faults * 4096) / 2 ** 20) * 2 ** 20;
  const fd = Iommufd.open({ memoryBytes: guestBytes + 96 * 2 ** 20, iotlb: { entries: IOTLB, shards: 8 } });
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
type Rig = ReturnType<typeof nestedRig>;

/**
 * The engine rows on one long-lived fd: `runs` runs of `faults` faults back to back on fresh
 * pages of one rig, as a VMM that keeps its device and handler sees them (a run on a fresh fd
 * starts with new closures and an empty IOTLB). Fewer runs when they would not fit one stage-1
 * L2 table.
 */
async function longLivedRuns(faults: number, runs: number, map: boolean): Promise<Run[]> {
  const n = Math.max(1, Math.min(runs, Math.floor(MAX_RIG_PAGES / faults)));
  const rig = nestedRig(n * faults, map);
  const out: Run[] = [];
  try {
    for (let r = 0; r < n; r++) out.push(await engineRun(faults, map, { rig, firstPage: r * faults }));
  } finally {
    await rig.fd.close();
  }
  return out;
}

/**
 * The engine rows: `faults` 64-byte writes, one per new page, 256 in flight, each completion
 * submitting the next. `map`: recoverable (every transfer completes after one fault); otherwise
 * report-only (every transfer fails INVALID after its fault).
 */
async function engineRun(faults: number, map: boolean, shared?: { rig: Rig; firstPage: number }): Promise<Run> {
  const { fd, dev, queue } = shared?.rig ?? nestedRig(faults, map);
  const firstPage = shared?.firstPage ?? 0;
  const answeredBefore = queue.stats.answered;
  const data = new Uint8Array(64).fill(0x5a);
  const started = new Float64Array(DEPTH);
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
    depth: DEPTH,
    onComplete: (tx, status) => {
      if (started[tx] !== 0) lat[sampled++] = performance.now() - started[tx]!;
      if (status === 0) ok++;
      else failed++;
      if (submitted < faults) next();
    },
  });
  const t0 = performance.now();
  while (submitted < Math.min(DEPTH, faults)) next();
  await engine.idle();
  const ms = performance.now() - t0;
  const want = map ? { ok: faults, failed: 0 } : { ok: 0, failed: faults };
  if (ok !== want.ok || failed !== want.failed || engine.stats.requests !== faults)
    throw new Error(`engine: ${ok} done, ${failed} failed, ${engine.stats.requests} requests of ${faults}`);
  const answered = queue.stats.answered - answeredBefore;
  if (answered !== faults || queue.pending + queue.awaiting !== 0)
    throw new Error(`engine: ${answered} of ${faults} answered, ${queue.pending + queue.awaiting} left`);
  if (shared === undefined) await fd.close();
  return runOf(lat.subarray(0, sampled), ms, faults);
}

/** An fd, a VT-d device with PRI on an IOPF-capable HWPT, and a VMM with one big buffer to map pages from. */
function rig(faults: number) {
  const fd = Iommufd.open({ memoryBytes: Math.max(64, Math.ceil((faults * 4096 * 1.5) / 2 ** 20) + 32) * 2 ** 20 });
  const ioas = fd.ioasAlloc();
  const dev = fd.deviceBind({ iommu: 'vtd', pri: true });
  const { faultId, queue } = fd.faultQueueAlloc();
  const hwpt = fd.hwptAlloc({ devId: dev, ptId: ioas, faultId });
  fd.deviceAttach(dev, hwpt);
  const buffer = fd.memory.mmap(BigInt(faults * 4096));
  preTouch(fd.memory, buffer, faults * 4096);
  return { fd, ioas, dev, queue, buffer };
}

/** Recoverable faults: each DMA faults once, the handler maps its page, the retry completes. */
async function recoverable(faults: number): Promise<Run> {
  const { fd, ioas, dev, queue, buffer } = rig(faults);
  // The VMM's handler, synchronous on the faults$ stream: read, map, answer (the CLI scenario's).
  mapOnFault(fd, ioas, queue, buffer, BASE);
  const data = new Uint8Array(64).fill(0x5a);
  const lat = new Float64Array(faults);
  const t0 = performance.now();
  for (let i = 0; i < faults; i++) {
    const s = performance.now();
    const r = await fd.dma(dev, { iova: BASE + i * 4096, access: Access.Write, data });
    if (r.retries !== 1) throw new Error(`DMA ${i}: ${r.retries} retries`);
    lat[i] = performance.now() - s;
  }
  const ms = performance.now() - t0;
  if (queue.stats.answered !== faults) throw new Error(`answered ${queue.stats.answered} of ${faults}`);
  await fd.close();
  return runOf(lat, ms);
}

/** Recoverable faults on the emulated VT-d unit, answered by the guest driver's PRQ handler. */
async function vtdGuest(faults: number): Promise<Run> {
  const fd = Iommufd.open({ memoryBytes: Math.max(256, Math.ceil((faults * 4096 * 1.2) / 2 ** 20) + 64) * 2 ** 20 });
  const unit = fd.vtdCreate({
    guestRamBytes: Math.max(64, Math.ceil((faults * 4096 * 1.1) / 2 ** 20) + 16) * 2 ** 20,
    scalableMode: true,
    firstStage: true,
    pasidWidth: 20,
    pageRequests: true,
  });
  const drv = new VtdGuestDriver(unit);
  drv.probe();
  drv.enablePageRequests({});
  unit.interrupts$.subscribe((i) => {
    if (i.kind === 'page-request') drv.handlePageRequests();
  });
  const sid = 0x10;
  drv.attach(sid, { did: 1, pri: true });
  const data = new Uint8Array(64).fill(0x5a);
  const lat = new Float64Array(faults);
  const t0 = performance.now();
  for (let i = 0; i < faults; i++) {
    const s = performance.now();
    await unit.dma({ sid }, { iova: BASE + i * 4096, access: Access.Write, data });
    lat[i] = performance.now() - s;
  }
  const ms = performance.now() - t0;
  await fd.close();
  return runOf(lat, ms);
}

async function main(): Promise<void> {
  const rows = {
    recoverable: (n: number) => engineRun(n, true),
    reportOnly: (n: number) => engineRun(n, false),
    recoverableDma: recoverable,
    vtdGuest,
  };
  type Row = keyof typeof rows;
  const names = Object.keys(rows) as Row[];
  // --row NAME: that row alone (for a profile of one path: node --cpu-prof … --row recoverable).
  const only = process.argv.indexOf('--row');
  if (only >= 0) {
    const want = process.argv[only + 1] as Row;
    if (!names.includes(want)) {
      console.error(`faults.bench: --row is one of ${names.join(', ')}`);
      process.exit(2);
    }
    for (let r = 0; r < RUNS; r++) await rows[want](FAULTS);
    console.log(`faults.bench: ran ${RUNS} × ${FAULTS} faults of ${want}`);
    return;
  }
  // Warm-up (the engine rows need about 10^5 faults before the JIT has settled), then
  // interleaved rounds (each row once per round).
  for (const k of names) await rows[k](k === 'recoverable' || k === 'reportOnly' ? FAULTS : Math.min(FAULTS, 2000));
  for (const k of ['recoverable', 'reportOnly'] as const) await rows[k](FAULTS);
  const runs: Record<Row, Run[]> = { recoverable: [], reportOnly: [], recoverableDma: [], vtdGuest: [] };
  for (let r = 0; r < RUNS; r++) for (const k of names) runs[k].push(await rows[k](FAULTS));
  // Then both engine rows on one long-lived fd each.
  const longRecoverable = await longLivedRuns(FAULTS, RUNS, true);
  const longReportOnly = await longLivedRuns(FAULTS, RUNS, false);
  const m = (xs: Run[], k: keyof Run): number => median(xs.map((x) => x[k]));
  const summary = (xs: Run[]) => ({
    faultsPerSecond: m(xs, 'faultsPerSecond'),
    p50Us: m(xs, 'p50Us'),
    p99Us: m(xs, 'p99Us'),
    all: xs.map((x) => Math.round(x.faultsPerSecond)),
  });
  const ratios = runs.recoverable.map((x, i) => x.faultsPerSecond / runs.reportOnly[i]!.faultsPerSecond);
  const result = {
    machine: machineLine(),
    faults: FAULTS,
    runs: RUNS,
    depth: DEPTH,
    iotlbEntries: IOTLB,
    recoverable: summary(runs.recoverable),
    reportOnly: summary(runs.reportOnly),
    recoverableDma: summary(runs.recoverableDma),
    vtdGuest: summary(runs.vtdGuest),
    ratio: median(ratios),
    longLived: {
      recoverable: summary(longRecoverable),
      reportOnly: summary(longReportOnly),
      ratio: m(longRecoverable, 'faultsPerSecond') / m(longReportOnly, 'faultsPerSecond'),
    },
    goal: 1_000_000,
  };
  if (JSON_OUT) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(result.machine);
  console.log(
    `T6: ${FAULTS} faults per run, ${RUNS} interleaved runs, medians; engine depth ${DEPTH}, IOTLB ${IOTLB} entries`,
  );
  const line = (name: string, r: ReturnType<typeof summary>): void =>
    console.log(
      `  ${name.padEnd(22)} ${(r.faultsPerSecond / 1000).toFixed(1).padStart(7)} k faults/s  p50 ${r.p50Us.toFixed(2)} µs  p99 ${r.p99Us.toFixed(2)} µs  (runs: ${r.all.join(', ')})`,
    );
  line('recoverable (engine)', result.recoverable);
  line('report-only (engine)', result.reportOnly);
  line('recoverable (fd.dma)', result.recoverableDma);
  line('vtd guest (unit)', result.vtdGuest);
  console.log(`  ratio recoverable / report-only: ${result.ratio.toFixed(3)}`);
  console.log(`  the engine rows on one long-lived fd, ${longRecoverable.length} runs back to back:`);
  line('recoverable (engine)', result.longLived.recoverable);
  line('report-only (engine)', result.longLived.reportOnly);
  console.log(`  ratio recoverable / report-only: ${result.longLived.ratio.toFixed(3)}`);
  console.log(
    `  goal: ${(result.goal / 1e6).toFixed(1)} M recoverable faults/s per thread; measured ${(result.recoverable.faultsPerSecond / 1e6).toFixed(2)} M (${((100 * result.recoverable.faultsPerSecond) / result.goal).toFixed(0)}%), ${(result.longLived.recoverable.faultsPerSecond / 1e6).toFixed(2)} M on a long-lived fd (${((100 * result.longLived.recoverable.faultsPerSecond) / result.goal).toFixed(0)}%)`,
  );
}

main().catch((e: unknown) => {
  console.error(`faults.bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
