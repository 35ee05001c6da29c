/**
 * T6 (issue 9): recoverable I/O page faults per second on one thread, through iommufd: a device's
 * DMA touches an unmapped page of an IOPF-capable domain, the page request is queued on the FAULT
 * object (delivery), the VMM's demand-paging handler reads it, maps a page and answers SUCCESS
 * (handler, response), and the DMA is retried and completes (retry). Every stage runs on the
 * calling thread, as the kernel's software path does on one CPU.
 *
 * Baseline in the same run: the report-only path, a translation fault on the same kind of domain
 * that nobody resolves and nothing waits for: translate → Pending → the page request queued; the
 * VMM reads the requests and fails them (INVALID) in batches of 256, so the device's 512 PRG
 * indices recycle. No handler maps anything and no DMA is retried. The ratio is recoverable /
 * report-only.
 *
 * A third path, for comparison: the emulated VT-d unit with a Linux-like guest (the guest's view
 * of the same thing): `unit.dma()` faults, the unit writes a page request descriptor to the
 * guest's PRQ, the guest's SVA-like handler maps a page in its first-level table and answers
 * with a page group response and a wait on the invalidation queue, and the DMA retries.
 *
 * Latency: from the DMA call to its completion, per fault, into a sorted sample (p50, p99).
 *
 *   npm run build && node dist/perf/faults.bench.js [--faults N] [--runs R] [--json]
 */
import { Access, Iommufd, PAGE_RESPONSE, VtdGuestDriver } from '../src/index.js';
import { intFlag, machineLine, median } from './common.js';

const FAULTS = intFlag('faults.bench', 'faults', 20000);
const RUNS = intFlag('faults.bench', 'runs', 5);
const JSON_OUT = process.argv.includes('--json');
const BASE = 0x1000_0000;

interface Run {
  faultsPerSecond: number;
  p50Us: number;
  p99Us: number;
}

/** A run's figures from its per-fault latencies (ms) and its wall time (ms). */
function runOf(lat: Float64Array, ms: number): Run {
  lat.sort();
  const faults = lat.length;
  return {
    faultsPerSecond: (faults / ms) * 1000,
    p50Us: lat[faults >> 1]! * 1000,
    p99Us: lat[Math.floor(faults * 0.99)]! * 1000,
  };
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
  return { fd, ioas, dev, queue, buffer };
}

/** Recoverable faults: each DMA faults once, the handler maps its page, the retry completes. */
async function recoverable(faults: number): Promise<Run> {
  const { fd, ioas, dev, queue, buffer } = rig(faults);
  // The VMM's handler, synchronous on the faults$ stream: read, map, answer.
  queue.faults$.subscribe(() => {
    for (const r of queue.read()) {
      const page = Number(r.addr - BigInt(BASE)) / 4096;
      fd.ioasMap(ioas, {
        userVa: buffer + BigInt(page * 4096),
        length: 4096n,
        iova: r.addr,
        flags: { fixedIova: true },
      });
      queue.respond([{ cookie: r.cookie, code: PAGE_RESPONSE.Success }]);
    }
  });
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

/** Report-only: the translation faults, its page request is queued, read and failed in batches; nothing waits. */
async function reportOnly(faults: number): Promise<Run> {
  const { fd, dev, queue } = rig(faults);
  const fail = (): void => {
    queue.respond(queue.read().map((r) => ({ cookie: r.cookie, code: PAGE_RESPONSE.Invalid })));
  };
  const lat = new Float64Array(faults);
  const t0 = performance.now();
  for (let i = 0; i < faults; i++) {
    const s = performance.now();
    if (fd.translate(dev, BASE + i * 4096, Access.Write) >= 0) throw new Error('mapped?');
    lat[i] = performance.now() - s;
    if ((i & 255) === 255) {
      fail();
      await Promise.resolve(); // the device takes its PRG indices back as the answers arrive
    }
  }
  fail();
  const ms = performance.now() - t0;
  if (queue.stats.queued !== faults) throw new Error(`queued ${queue.stats.queued} of ${faults}`);
  await fd.close();
  return runOf(lat, ms);
}

async function main(): Promise<void> {
  // Warm-up, then interleaved rounds (recoverable, report-only, …).
  await recoverable(Math.min(FAULTS, 2000));
  await reportOnly(Math.min(FAULTS, 2000));
  await vtdGuest(Math.min(FAULTS, 2000));
  const rec: Run[] = [];
  const rep: Run[] = [];
  const guest: Run[] = [];
  for (let r = 0; r < RUNS; r++) {
    rec.push(await recoverable(FAULTS));
    rep.push(await reportOnly(FAULTS));
    guest.push(await vtdGuest(FAULTS));
  }
  const m = (xs: Run[], k: keyof Run): number => median(xs.map((x) => x[k]));
  const ratios = rec.map((x, i) => x.faultsPerSecond / rep[i]!.faultsPerSecond);
  const result = {
    machine: machineLine(),
    faults: FAULTS,
    runs: RUNS,
    recoverable: {
      faultsPerSecond: m(rec, 'faultsPerSecond'),
      p50Us: m(rec, 'p50Us'),
      p99Us: m(rec, 'p99Us'),
      all: rec.map((x) => Math.round(x.faultsPerSecond)),
    },
    reportOnly: {
      faultsPerSecond: m(rep, 'faultsPerSecond'),
      p50Us: m(rep, 'p50Us'),
      p99Us: m(rep, 'p99Us'),
      all: rep.map((x) => Math.round(x.faultsPerSecond)),
    },
    vtdGuest: {
      faultsPerSecond: m(guest, 'faultsPerSecond'),
      p50Us: m(guest, 'p50Us'),
      p99Us: m(guest, 'p99Us'),
      all: guest.map((x) => Math.round(x.faultsPerSecond)),
    },
    ratio: median(ratios),
  };
  if (JSON_OUT) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(result.machine);
  console.log(`T6: ${FAULTS} faults per run, ${RUNS} interleaved runs, medians`);
  const line = (name: string, r: typeof result.recoverable): void =>
    console.log(
      `  ${name.padEnd(12)} ${(r.faultsPerSecond / 1000).toFixed(1).padStart(7)} k faults/s  p50 ${r.p50Us.toFixed(2)} µs  p99 ${r.p99Us.toFixed(2)} µs  (runs: ${r.all.join(', ')})`,
    );
  line('recoverable', result.recoverable);
  line('report-only', result.reportOnly);
  line('vtd guest', result.vtdGuest);
  console.log(`  ratio recoverable / report-only: ${result.ratio.toFixed(3)}`);
}

main().catch((e: unknown) => {
  console.error(`faults.bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
