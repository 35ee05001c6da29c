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
import { Access, Iommufd, VtdGuestDriver } from '../src/index.js';
import { mapOnFault } from '../src/bench/faults.js';
import { intFlag, machineLine, median } from './common.js';
import { BASE, engineRun, longLivedRuns, preTouch, runOf, type Run } from './fault-rig.js';

const FAULTS = intFlag('faults.bench', 'faults', 50000);
const RUNS = intFlag('faults.bench', 'runs', 5);
/** Transfers the engine rows keep in flight (latency then includes the queueing: Little's law). */
const DEPTH = intFlag('faults.bench', 'depth', 256);
/** IOTLB entries of the engine rows' fd (default: Iommufd.open's, 65536 over 8 shards). */
const IOTLB = intFlag('faults.bench', 'iotlb', 65536);
const JSON_OUT = process.argv.includes('--json');

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

/** The engine rows' knobs. */
const engineOptions = { depth: DEPTH, iotlbEntries: IOTLB };

async function main(): Promise<void> {
  const rows = {
    recoverable: (n: number) => engineRun(n, true, engineOptions),
    reportOnly: (n: number) => engineRun(n, false, engineOptions),
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
  const longRecoverable = await longLivedRuns(FAULTS, RUNS, true, engineOptions);
  const longReportOnly = await longLivedRuns(FAULTS, RUNS, false, engineOptions);
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
