/**
 * Linux's IOVA flush queue (drivers/iommu/dma-iommu.c, `iova_fq`) as the guest driver models use
 * it in lazy mode: each domain queues its unmapped ranges, and the timer (`fq_flush_timeout`) or a
 * full queue drains them with one domain-wide invalidation. These are the parts that do not depend
 * on the vendor; the drain itself (which commands or descriptors) is the driver's.
 */

/** A domain with a lazy flush queue. */
export interface FlushQueueOwner {
  readonly flushQueue: readonly unknown[];
}

/** Entries waiting in the flush queues of `domains`. */
export function pendingFlushes(domains: Iterable<FlushQueueOwner>): number {
  let n = 0;
  for (const d of domains) n += d.flushQueue.length;
  return n;
}

/** Drains every non-empty flush queue with `drain`, as the timer does; returns the entries drained. */
export function drainFlushQueues<D extends FlushQueueOwner>(domains: Iterable<D>, drain: (d: D) => void): number {
  let n = 0;
  for (const d of domains) {
    if (d.flushQueue.length === 0) continue;
    n += d.flushQueue.length;
    drain(d);
  }
  return n;
}
