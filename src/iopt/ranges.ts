/** An inclusive IOVA range, as `struct iommu_iova_range`. */
export interface IovaRange {
  /** First IOVA. */
  start: bigint;
  /** Last IOVA (inclusive). */
  last: bigint;
}

/** The largest u64, ULONG_MAX on a 64-bit kernel. */
export const U64_MAX = (1n << 64n) - 1n;

/** Whether two inclusive ranges intersect. */
export function intersects(aStart: bigint, aLast: bigint, bStart: bigint, bLast: bigint): boolean {
  return aStart <= bLast && bStart <= aLast;
}

/** Sorts and merges ranges (adjacent ones too), clipped to [lo, hi]. */
export function mergeRanges(ranges: readonly IovaRange[], lo = 0n, hi = U64_MAX): IovaRange[] {
  const sorted = ranges
    .filter((r) => intersects(r.start, r.last, lo, hi))
    .map((r) => ({ start: r.start < lo ? lo : r.start, last: r.last > hi ? hi : r.last }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: IovaRange[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev !== undefined && r.start <= prev.last + 1n) {
      if (r.last > prev.last) prev.last = r.last;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

/** The holes of `merged` (sorted, merged) inside [lo, hi]. */
export function holes(merged: readonly IovaRange[], lo: bigint, hi: bigint): IovaRange[] {
  const out: IovaRange[] = [];
  let cursor = lo;
  for (const r of merged) {
    if (r.last < cursor) continue;
    if (r.start > hi) break;
    if (r.start > cursor) out.push({ start: cursor, last: r.start - 1n });
    if (r.last >= hi) return out;
    cursor = r.last + 1n;
  }
  if (cursor <= hi) out.push({ start: cursor, last: hi });
  return out;
}

/** Index of the first element of `sorted` whose `start` exceeds `key` (binary search). */
export function upperBound<T extends { start: bigint }>(sorted: readonly T[], key: bigint): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]!.start <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
