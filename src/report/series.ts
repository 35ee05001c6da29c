/** Helpers that turn raw measurements into chart data: repeated runs and latency samples. */
import type { HistogramBucket, SweepPoint } from './types.js';

/**
 * The sweep point of repeated runs at knob value `x`: the median, with the min and max as its
 * band (hyperfine's convention: the median resists one slow run).
 */
export function sweepPoint(x: number, runs: readonly number[]): SweepPoint {
  if (runs.length === 0) throw new RangeError(`sweepPoint: no runs at x = ${x}`);
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const y = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { x, y, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/**
 * Counts `samples` into log-spaced buckets, `perOctave` of them per power of two:
 * [2^(i/perOctave), 2^((i+1)/perOctave)). Buckets run without gaps from the lowest non-empty one
 * to the highest; samples ≤ 0 go in one bucket [0, lowest edge). Non-finite samples are skipped.
 */
export function log2Buckets(samples: ArrayLike<number>, perOctave = 1): HistogramBucket[] {
  if (!Number.isInteger(perOctave) || perOctave < 1 || perOctave > 64)
    throw new RangeError(`log2Buckets: perOctave must be an integer in [1, 64], got ${perOctave}`);
  const counts = new Map<number, number>();
  let zeros = 0;
  let first = Infinity;
  let last = -Infinity;
  for (let k = 0; k < samples.length; k++) {
    const v = samples[k]!;
    if (!Number.isFinite(v)) continue;
    if (v <= 0) {
      zeros++;
      continue;
    }
    const i = bucketIndex(v, perOctave);
    counts.set(i, (counts.get(i) ?? 0) + 1);
    if (i < first) first = i;
    if (i > last) last = i;
  }
  const edge = (i: number): number => 2 ** (i / perOctave);
  if (first === Infinity) return zeros > 0 ? [{ lo: 0, hi: 1, count: zeros }] : [];
  const buckets: HistogramBucket[] = [];
  if (zeros > 0) buckets.push({ lo: 0, hi: edge(first), count: zeros });
  for (let i = first; i <= last; i++) buckets.push({ lo: edge(i), hi: edge(i + 1), count: counts.get(i) ?? 0 });
  return buckets;
}

/** The i with 2^(i/perOctave) ≤ v < 2^((i+1)/perOctave), corrected for rounding in log2. */
function bucketIndex(v: number, perOctave: number): number {
  let i = Math.floor(Math.log2(v) * perOctave);
  if (2 ** (i / perOctave) > v) i--;
  else if (2 ** ((i + 1) / perOctave) <= v) i++;
  return i;
}
