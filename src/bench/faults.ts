/**
 * The `faults` scenario: recoverable I/O page faults through iommufd, the rate issue 9's T6 asks
 * about. A device's `DmaEngine` keeps `liveEntries` 64-byte writes in flight (default 64), each
 * into an unmapped page of an IOPF-capable domain: the translation is Pending, the page request
 * reaches the FAULT queue, the VMM's demand-paging handler maps the page (IOMMU_IOAS_MAP) and
 * answers SUCCESS, the engine retries and the data lands; at its completion the page is unmapped
 * again (an IOTLB invalidation), so the next use faults too, and the next write is submitted.
 * VT-d devices use PRI (page request groups), SMMUv3 devices the stall model (a stalled
 * transaction each).
 *
 * The correctness gate, per write: it completed, it faulted (the handler mapped its page since
 * the page was last unmapped), and its bytes landed in the page the handler mapped (read from the
 * VMM's buffer, not back through the IOMMU); and at the end every request was answered exactly
 * once. The test hook `dropInvalidationsFrom` leaves the page mapped from that operation on (its
 * unmap and IOTLB invalidation skipped): the next write to the page then finds a translation
 * instead of faulting, which the gate must report.
 */
import { Iommufd } from '../iommufd.js';
import type { MemoryWindow } from '../memory/index.js';
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
 * IOMMU_IOAS_MAP, and answered SUCCESS; `onMapped` hears of each page mapped.
 */
export function mapOnFault(
  fd: Iommufd,
  ioas: number,
  queue: FaultQueue,
  buffer: bigint,
  base: number,
  onMapped?: (page: number) => void,
): void {
  queue.faults$.subscribe(() => {
    for (const r of queue.read()) {
      const page = Number(r.addr - BigInt(base)) / 4096;
      fd.ioasMap(ioas, {
        userVa: buffer + BigInt(page * 4096),
        length: 4096n,
        iova: r.addr,
        flags: { fixedIova: true },
      });
      onMapped?.(page);
      queue.respond([{ cookie: r.cookie, code: PAGE_RESPONSE.Success }]);
    }
  });
}

/** Writes in flight at most: a PRI device has 512 page request group indices. */
export const MAX_FAULT_DEPTH = 512;

/** Runs the faults scenario once with knobs `o`; `onProgress` gets the fraction done. */
export async function runFaults(o: BenchOptions, onProgress?: (fraction: number) => void): Promise<BenchRun> {
  if (o.rate !== undefined) throw new RangeError('the faults scenario runs closed loop only (no --rate)');
  if (o.target !== 'ioasid') throw new RangeError('the faults scenario has no QEMU-style baseline');
  const depth = o.liveEntries;
  if (depth > MAX_FAULT_DEPTH)
    throw new RangeError(`the faults scenario keeps at most ${MAX_FAULT_DEPTH} writes in flight, got ${depth}`);
  // Twice the depth at least, so a free page is always found next to the cursor.
  const window = Math.max(WINDOW_PAGES, 2 * depth);
  const fd = Iommufd.open({
    memoryBytes: 64 * 2 ** 20 + window * 4096,
    iotlb: { entries: o.iotlbEntries, shards: o.shards },
  });
  let vmm: MemoryWindow | undefined;
  try {
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind(o.vendor === 'vtd' ? { iommu: 'vtd', pri: true } : { iommu: 'smmuv3' });
    const { faultId, queue } = fd.faultQueueAlloc();
    fd.deviceAttach(dev, fd.hwptAlloc({ devId: dev, ptId: ioas, faultId }));
    const buffer = fd.memory.mmap(BigInt(window * 4096));
    // The VMM's view of its buffer, where the gate reads what landed (no allocation per write).
    const view = (vmm = fd.memory.window(buffer, BigInt(window * 4096)));
    /** Per page: mapped by the handler since it was last unmapped. */
    const faulted = new Uint8Array(window);
    mapOnFault(fd, ioas, queue, buffer, BASE, (page) => (faulted[page] = 1));
    /** Per page: the operation writing it, or -1. Per write slot: its page. */
    const opOf = new Int32Array(window).fill(-1);
    const pageOf = new Int32Array(depth);
    const startedAt = new Float64Array(window);
    const pool = new Uint8Array(window * 64);
    /** Per page: the 64 bytes its write carries. */
    const dataOf = Array.from({ length: window }, (_, p) => pool.subarray(p * 64, p * 64 + 64));
    const failures: CorrectnessFailure[] = [];
    let badDmas = 0;
    let stale = 0;
    let badQueue = 0;
    let dropped = 0;
    let issued = 0;
    let done = 0;
    let cursor = 0;
    let warm = 0;
    let limit = o.warmupOps;
    let measure: LatencyHistogram | undefined = undefined; // set once the warm-up is over
    let stopAt = Infinity;
    let inSubmit = false;
    let submitPage = -1;
    let refilling = false;
    let paused = false;
    let lastYield = performance.now();
    let t0 = lastYield;
    let lastSample = t0;
    let lastDone = 0;
    const timeline: TimelinePoint[] = [];
    let settle: { resolve: () => void; reject: (e: unknown) => void } | undefined;
    const fail = (e: unknown): void => {
      limit = issued;
      settle?.reject(e);
      settle = undefined;
    };
    /** The write on page `p` completed with `status`: check it, unmap its page, submit the next. */
    const complete = (p: number, status: number): void => {
      const i = opOf[p]!;
      opOf[p] = -1;
      done++;
      if (measure !== undefined) {
        const now = performance.now();
        measure.record((now - startedAt[p]!) * 1e6);
        if (now - lastSample >= TIMELINE_MS) {
          // Two commands per fault: the page request and its response.
          timeline.push({
            t: (now - t0) / 1000,
            commandsPerSecond: ((done - lastDone) * 2 * 1000) / (now - lastSample),
          });
          lastSample = now;
          lastDone = done;
        }
      }
      const iova = BASE + p * 4096;
      const wasFaulted = faulted[p] === 1;
      faulted[p] = 0;
      // The page the handler mapped for this IOVA, read in the VMM's buffer: 16 words of byte i.
      const b = i & 0xff;
      const want = b | (b << 8) | (b << 16) | (b << 24);
      let landed = status === 0;
      for (let w = 0; landed && w < 16; w++) landed = view.read32(p * 4096 + w * 4) === want;
      const ok = landed && wasFaulted;
      if (!ok) {
        const isStale = status === 0 && !wasFaulted;
        if (isStale) stale++;
        else badDmas++;
        if (failures.length < MAX_FAILURES)
          failures.push({
            kind: isStale ? 'stale' : 'wrong-address',
            when: 'during-run',
            message:
              status !== 0
                ? `DMA ${i} at IOVA 0x${iova.toString(16)}: failed with status ${status}`
                : isStale
                  ? `DMA ${i} at IOVA 0x${iova.toString(16)}: 0 retries, 0 requests (expected one fault: the page was unmapped)`
                  : `DMA ${i} at IOVA 0x${iova.toString(16)}: the mapped page holds ${view.read32(p * 4096) & 0xff} (expected ${b})`,
          });
      }
      // A write that failed before its page was mapped leaves nothing to unmap.
      if (o.dropInvalidationsFrom !== undefined && i >= o.dropInvalidationsFrom) dropped++;
      else if (wasFaulted || status === 0) fd.ioasUnmap(ioas, BigInt(iova), 4096n);
    };
    const engine = fd.dmaEngine(dev, {
      depth,
      onComplete: (tx, status) => {
        try {
          complete(inSubmit ? submitPage : pageOf[tx]!, status);
          refill();
        } catch (e) {
          fail(e);
        }
      },
    });
    /** Submits writes until `depth` are in flight or the phase has issued its share. */
    const refill = (): void => {
      if (refilling || paused) return; // a write that completed inside submit: the loop below goes on
      refilling = true;
      try {
        while (issued < limit && issued - done < depth) {
          const now = performance.now();
          if (now >= stopAt) limit = issued;
          else if (now - lastYield >= YIELD_MS) {
            // Completions resubmit from microtasks, so the event loop would wait until the end:
            // stop submitting, and go on from a macrotask once timers and I/O have run.
            lastYield = now;
            paused = true;
            setImmediate(() => {
              paused = false;
              try {
                if (measure !== undefined)
                  onProgress?.(o.durationMs === undefined ? (done - warm) / o.ops : (now - t0) / o.durationMs);
                refill();
              } catch (e) {
                fail(e);
              }
            });
            break;
          } else {
            let p = cursor;
            while (opOf[p] !== -1) p = (p + 1) % window;
            cursor = (p + 1) % window;
            const i = issued++;
            opOf[p] = i;
            const data = dataOf[p]!.fill(i & 0xff);
            startedAt[p] = now;
            inSubmit = true;
            submitPage = p;
            let tx: number;
            try {
              tx = engine.submit(BASE + p * 4096, Access.Write, data);
            } finally {
              inSubmit = false;
            }
            if (tx < 0)
              throw new Error(`the DMA engine refused write ${i}: no free slot at ${issued - done - 1} in flight`);
            pageOf[tx] = p;
          }
        }
      } finally {
        refilling = false;
      }
      if (!paused && issued === done && issued >= limit) {
        settle?.resolve();
        settle = undefined;
      }
    };
    /** Runs a phase of `ops` more writes (or until `stopAt`), all of them completed at the end. */
    const phase = (ops: number, until = Infinity): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        settle = { resolve, reject };
        limit = issued + ops;
        stopAt = until;
        refill();
      });
    await phase(o.warmupOps);
    warm = done;
    const before = { queued: queue.stats.queued, answered: queue.stats.answered };
    const cacheBefore = fd.cacheStats();
    const hist = new LatencyHistogram();
    t0 = lastSample = performance.now();
    lastDone = done;
    measure = hist;
    await phase(
      o.durationMs === undefined ? o.ops : Number.MAX_SAFE_INTEGER,
      o.durationMs === undefined ? Infinity : t0 + o.durationMs,
    );
    const n = done - warm;
    const wallMs = performance.now() - t0;
    if (wallMs > lastSample - t0 && done > lastDone)
      timeline.push({
        t: wallMs / 1000,
        commandsPerSecond: ((done - lastDone) * 2 * 1000) / (t0 + wallMs - lastSample),
      });
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
    vmm?.close();
    await fd.close();
  }
}
