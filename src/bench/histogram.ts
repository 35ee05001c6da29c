/**
 * A latency histogram with log-spaced buckets (reference/perf-anchors.md §5.3.3): recording is a
 * log2 and an increment, so every barrier can be timed; percentiles are read from the buckets.
 */
import type { HistogramBucket } from '../report/index.js';

/** Buckets per power of two: each spans 2^(1/8) ≈ 9 %, so a percentile is within ±4.5 %. */
const PER_OCTAVE = 8;
/** Octaves from 1 ns: up to 2^40 ns, about 18 minutes. */
const OCTAVES = 40;
const BUCKETS = PER_OCTAVE * OCTAVES;

/** Percentiles of a histogram, in microseconds. */
export interface LatencySummary {
  /** Samples recorded. */
  samples: number;
  p50: number;
  p99: number;
  p999: number;
  /** Exact extremes and mean (not bucketed). */
  min: number;
  max: number;
  mean: number;
}

/** Counts of latencies in nanoseconds, in log-spaced buckets. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #n = 0;
  #sum = 0;
  #min = Infinity;
  #max = 0;

  /** Records one latency of `ns` nanoseconds (values below 1 ns count as 1 ns). */
  record(ns: number): void {
    const v = ns < 1 ? 1 : ns;
    let i = Math.floor(Math.log2(v) * PER_OCTAVE);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.#counts[i]!++;
    this.#n++;
    this.#sum += v;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  /** Samples recorded. */
  get count(): number {
    return this.#n;
  }

  /**
   * The latency below which a fraction `q` of the samples lie, in nanoseconds: the geometric
   * middle of the bucket that holds it, clamped to the exact min and max. 0 without samples.
   */
  quantile(q: number): number {
    if (this.#n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) {
        const mid = 2 ** ((i + 0.5) / PER_OCTAVE);
        return Math.min(this.#max, Math.max(this.#min, mid));
      }
    }
    return this.#max;
  }

  /** p50, p99, p99.9, min, max and mean, in microseconds. */
  summary(): LatencySummary {
    const us = (ns: number): number => ns / 1000;
    return {
      samples: this.#n,
      p50: us(this.quantile(0.5)),
      p99: us(this.quantile(0.99)),
      p999: us(this.quantile(0.999)),
      min: this.#n === 0 ? 0 : us(this.#min),
      max: us(this.#max),
      mean: this.#n === 0 ? 0 : us(this.#sum / this.#n),
    };
  }

  /**
   * The histogram as report buckets in microseconds, `perOctave` buckets per power of two (a
   * divisor of 8), from the lowest non-empty bucket to the highest, without gaps.
   */
  buckets(perOctave = 2): HistogramBucket[] {
    if (PER_OCTAVE % perOctave !== 0) throw new RangeError(`perOctave must divide ${PER_OCTAVE}, got ${perOctave}`);
    const step = PER_OCTAVE / perOctave;
    let first = -1;
    let last = -1;
    for (let i = 0; i < BUCKETS; i++) {
      if (this.#counts[i] === 0) continue;
      if (first < 0) first = i;
      last = i;
    }
    if (first < 0) return [];
    const out: HistogramBucket[] = [];
    for (let g = Math.floor(first / step); g <= Math.floor(last / step); g++) {
      let count = 0;
      for (let i = g * step; i < (g + 1) * step; i++) count += this.#counts[i]!;
      out.push({ lo: 2 ** ((g * step) / PER_OCTAVE) / 1000, hi: 2 ** (((g + 1) * step) / PER_OCTAVE) / 1000, count });
    }
    return out;
  }
}
