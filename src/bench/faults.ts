/**
 * The `faults` scenario: recoverable I/O page faults through iommufd, the rate issue 9's T6 asks
 * about. Per operation a device DMAs into an unmapped page of an IOPF-capable domain
 * (`fd.dma`): the translation is Pending, the page request reaches the FAULT queue, the VMM's
 * demand-paging handler maps the page and answers SUCCESS, the DMA retries and lands; then the
 * VMM unmaps the page again (an IOTLB invalidation), so the next use faults too. VT-d devices
 * use PRI (page request groups), SMMUv3 devices the stall model (a stalled transaction each).
 *
 * Its own runner, since an operation awaits its DMA (the guest-driver scenarios' operations are
 * synchronous). The correctness gate: every DMA faulted exactly once and completed, its bytes
 * landed in the page the handler mapped (read from the VMM's buffer, not back through the
 * IOMMU), and every request was answered exactly once. The test hook `dropInvalidationsFrom`
 * leaves the page mapped from that operation on (its unmap and IOTLB invalidation skipped): the
 * next DMA to the page then finds a translation instead of faulting, which the gate must report.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Iommufd } from '../iommufd.js';
import { Access } from '../pgtable/index.js';
import { PAGE_RESPONSE, type FaultQueue } from '../registry/index.js';
import { LatencyHistogram } from './histogram.js';
import type { BenchOptions, BenchRun, CorrectnessFailure, TimelinePoint } from './types.js';

/** Pages the DMAs cycle through (each mapped on its fault and unmapped after its DMA). */
const WINDOW_PAGES = 1024;
const BASE = 0x1000_0000;
const TIMELINE_MS = 50;
const YIELD_MS = 100;
const MAX_FAILURES = 5;

/**
 * The VMM's demand-paging handler, synchronous on `queue`'s stream: each page request is read,
 * the page at `addr` is mapped into `ioas` from `buffer` (page `(addr - base) / 4096` of it) with
 * IOMMU_IOAS_MAP, and answered SUCCESS.
 */
export function mapOnFault(fd: Iommufd, ioas: number, queue: FaultQueue, buffer: bigint, base: number): void {
  queue.faults$.subscribe(() => {
    for (const r of queue.read()) {
      const page = Number(r.addr - BigInt(base)) / 4096;
      fd.ioasMap(ioas, {
        userVa: buffer + BigInt(page * 4096),
        length: 4096n,
        iova: r.addr,
        flags: { fixedIova: true },
      });
      queue.respond([{ cookie: r.cookie, code: PAGE_RESPONSE.Success }]);
    }
  });
}

/** Runs the faults scenario once with knobs `o`; `onProgress` gets the fraction done. */
export async function runFaults(o: BenchOptions, onProgress?: (fraction: number) => void): Promise<BenchRun> {
  if (o.rate !== undefined) throw new RangeError('the faults scenario runs closed loop only (no --rate)');
  if (o.target !== 'ioasid') throw new RangeError('the faults scenario has no QEMU-style baseline');
  const fd = Iommufd.open({
    memoryBytes: 64 * 2 ** 20,
    iotlb: { entries: o.iotlbEntries, shards: o.shards },
  });
  try {
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind(o.vendor === 'vtd' ? { iommu: 'vtd', pri: true } : { iommu: 'smmuv3' });
    const { faultId, queue } = fd.faultQueueAlloc();
    fd.deviceAttach(dev, fd.hwptAlloc({ devId: dev, ptId: ioas, faultId }));
    const buffer = fd.memory.mmap(BigInt(WINDOW_PAGES * 4096));
    mapOnFault(fd, ioas, queue, buffer, BASE);
    const data = new Uint8Array(64);
    const failures: CorrectnessFailure[] = [];
    let badDmas = 0;
    let stale = 0;
    let badQueue = 0;
    let dropped = 0;
    /** One operation: fault, handle, answer, retry, land; check it; unmap the page again. */
    const op = async (i: number, measure: LatencyHistogram | undefined): Promise<void> => {
      const iova = BASE + (i % WINDOW_PAGES) * 4096;
      data.fill(i & 0xff);
      const t0 = process.hrtime.bigint();
      const r = await fd.dma(dev, { iova, access: Access.Write, data });
      measure?.record(Number(process.hrtime.bigint() - t0));
      // The page the handler mapped for this IOVA, read in the VMM's buffer.
      const landed = fd.memory.read(buffer + BigInt((i % WINDOW_PAGES) * 4096), data.length);
      const faulted = r.retries === 1 && r.requests === 1;
      if (!faulted || landed.some((b) => b !== (i & 0xff))) {
        if (faulted) badDmas++;
        else stale++;
        if (failures.length < MAX_FAILURES)
          failures.push({
            kind: faulted ? 'wrong-address' : 'stale',
            when: 'during-run',
            message: faulted
              ? `DMA ${i} at IOVA 0x${iova.toString(16)}: the mapped page holds ${landed[0]} (expected ${i & 0xff})`
              : `DMA ${i} at IOVA 0x${iova.toString(16)}: ${r.retries} retries, ${r.requests} requests (expected one fault: the page was unmapped)`,
          });
      }
      if (o.dropInvalidationsFrom === undefined || i < o.dropInvalidationsFrom) fd.ioasUnmap(ioas, BigInt(iova), 4096n);
      else dropped++;
    };
    for (let i = 0; i < o.warmupOps; i++) await op(i, undefined);
    const before = { queued: queue.stats.queued, answered: queue.stats.answered };
    const cacheBefore = fd.cacheStats();
    const hist = new LatencyHistogram();
    const timeline: TimelinePoint[] = [];
    const t0 = performance.now();
    const tEnd = o.durationMs !== undefined ? t0 + o.durationMs : Infinity;
    let lastSample = t0;
    let lastYield = t0;
    let lastDone = 0;
    let n = 0;
    while (o.durationMs === undefined ? n < o.ops : performance.now() < tEnd) {
      await op(o.warmupOps + n, hist);
      n++;
      const now = performance.now();
      if (now - lastSample >= TIMELINE_MS) {
        // Two commands per fault: the page request and its response.
        timeline.push({ t: (now - t0) / 1000, commandsPerSecond: ((n - lastDone) * 2 * 1000) / (now - lastSample) });
        lastSample = now;
        lastDone = n;
      }
      if (now - lastYield >= YIELD_MS) {
        onProgress?.(o.durationMs === undefined ? n / o.ops : (now - t0) / o.durationMs);
        await yieldToEventLoop();
        lastYield = performance.now();
      }
    }
    const wallMs = performance.now() - t0;
    if (wallMs > lastSample - t0 && n > lastDone)
      timeline.push({ t: wallMs / 1000, commandsPerSecond: ((n - lastDone) * 2 * 1000) / (t0 + wallMs - lastSample) });
    onProgress?.(1);
    const requests = queue.stats.queued - before.queued;
    const answers = queue.stats.answered - before.answered;
    // Every request answered exactly once, nothing left behind.
    if (requests !== n || answers !== n || queue.pending + queue.awaiting !== 0) {
      badQueue++;
      failures.push({
        kind: 'stale',
        when: 'final-probe',
        message: `${n} faults: ${requests} requests queued, ${answers} answered, ${queue.pending + queue.awaiting} left`,
      });
    }
    const c = fd.cacheStats();
    const hits = c.hits - cacheBefore.hits;
    const misses = c.misses - cacheBefore.misses;
    const perSecond = (x: number): number => (wallMs > 0 ? (x * 1000) / wallMs : 0);
    return {
      ops: n,
      wallMs,
      commands: requests + answers,
      barriers: answers,
      doorbells: 0,
      commandsPerSecond: perSecond(requests + answers),
      barriersPerSecond: perSecond(answers),
      opsPerSecond: perSecond(n),
      barrierLatency: hist.summary(),
      latencyHistogram: hist.buckets(2),
      cache: {
        iotlbHits: hits,
        iotlbMisses: misses,
        hitRate: hits + misses > 0 ? hits / (hits + misses) : 0,
        atcHits: 0,
        fills: c.fills - cacheBefore.fills,
        evictions: c.evictions - cacheBefore.evictions,
        invalidated: c.invalidated - cacheBefore.invalidated,
        overInvalidations: c.overInvalidations - cacheBefore.overInvalidations,
        discardedFills: c.discardedFills - cacheBefore.discardedFills,
      },
      schedule: undefined,
      timeline,
      hostDma: undefined,
      correctness: {
        ok: badDmas + stale + badQueue === 0,
        probedPages: 0,
        checkedDuringRun: n,
        stale: stale + badQueue,
        wrongAddress: badDmas,
        faults: 0,
        failures,
        droppedInvalidations: dropped,
      },
    };
  } finally {
    await fd.close();
  }
}
