/**
 * `--compare previous.json`: this run's figures against a previous `--json` run's, point by
 * point, with the noise band of each side's repeated runs. A change counts only when the two
 * bands do not overlap (as hyperfine reads its ranges); with a single run on either side there
 * is no band, and the change is shown without a verdict.
 */
import { BENCH_ERRORS } from './errors.js';
import type { BenchDocument } from './suite.js';
import { SUMMARY_METRICS, type BenchOptions, type BenchResult, type BenchSummary, type Spread } from './types.js';

/** A summarized figure. */
export type SummaryMetric = (typeof SUMMARY_METRICS)[number];

/** Whether more of a figure is better. */
const HIGHER_IS_BETTER: Readonly<Record<SummaryMetric, boolean>> = {
  commandsPerSecond: true,
  barriersPerSecond: true,
  opsPerSecond: true,
  barrierP50Us: false,
  barrierP99Us: false,
  barrierP999Us: false,
  iotlbHitRate: true,
  overInvalidations: false,
};

/** One figure of one point, before and after. */
export interface ComparisonRow {
  /** The point: vendor, scenario and the knobs that identify it. */
  point: string;
  metric: SummaryMetric;
  before: Spread;
  after: Spread;
  beforeRuns: number;
  afterRuns: number;
  /** after.median / before.median − 1 (NaN when before is 0). */
  change: number;
  /** 'better' / 'worse' when the bands do not overlap; 'within noise' when they do; 'no band' with a single run. */
  verdict: 'better' | 'worse' | 'within noise' | 'no band';
}

/** The comparison of two documents. */
export interface Comparison {
  rows: ComparisonRow[];
  /** Points of either document that the other lacks. */
  unmatched: string[];
  /** Knobs that differ between matched points (the comparison may not be like for like). */
  notes: string[];
}

/** Knobs that are compared as notes, not as part of a point's identity. */
const NOTED_KNOBS = ['liveEntries', 'dma', 'iotlbEntries', 'ops', 'durationMs', 'rate', 'guests', 'seed'] as const;

function pointKey(o: BenchOptions): string {
  return `${o.vendor} ${o.scenario} shards=${o.shards}${o.scenario === 'lazy' ? ` batch=${o.batch}` : ''}`;
}

/** Checks that `doc` (parsed from `path`) is an `ioasid bench --json` document; BenchOptionError if not. */
export function asBenchDocument(doc: unknown, path: string): BenchDocument {
  const d = doc as Partial<BenchDocument> | null;
  if (typeof d !== 'object' || d === null || d.tool !== 'ioasid bench' || !Array.isArray(d.results))
    throw BENCH_ERRORS.compareFile(path, "not an 'ioasid bench --json' document");
  for (const r of d.results as unknown[]) {
    const x = r as Partial<BenchResult> | null;
    if (typeof x !== 'object' || x === null || typeof x.options !== 'object' || typeof x.summary !== 'object')
      throw BENCH_ERRORS.compareFile(path, 'a result has no options or summary');
    for (const m of SUMMARY_METRICS) {
      const s = (x.summary as Partial<BenchSummary>)[m];
      if (typeof s?.median !== 'number' || typeof s.min !== 'number' || typeof s.max !== 'number')
        throw BENCH_ERRORS.compareFile(path, `a result's summary lacks ${m}`);
    }
  }
  return d as BenchDocument;
}

function verdict(metric: SummaryMetric, b: Spread, a: Spread, runs: number): ComparisonRow['verdict'] {
  if (runs < 2) return 'no band';
  if (a.min <= b.max && b.min <= a.max) return 'within noise';
  return a.median > b.median === HIGHER_IS_BETTER[metric] ? 'better' : 'worse';
}

/** Compares `current` with `previous`, point by point and figure by figure. */
export function compareDocuments(previous: BenchDocument, current: BenchDocument): Comparison {
  const before = new Map(previous.results.map((r) => [pointKey(r.options), r]));
  const rows: ComparisonRow[] = [];
  const unmatched: string[] = [];
  const notes: string[] = [];
  const seen = new Set<string>();
  for (const a of current.results) {
    const key = pointKey(a.options);
    const b = before.get(key);
    if (b === undefined) {
      unmatched.push(`${key}: not in the previous run`);
      continue;
    }
    seen.add(key);
    for (const k of NOTED_KNOBS) {
      if (b.options[k] !== a.options[k])
        notes.push(`${key}: ${k} was ${String(b.options[k])}, now ${String(a.options[k])}`);
    }
    const runs = Math.min(b.runs.length, a.runs.length);
    for (const metric of SUMMARY_METRICS) {
      const bs = b.summary[metric];
      const as = a.summary[metric];
      rows.push({
        point: key,
        metric,
        before: bs,
        after: as,
        beforeRuns: b.runs.length,
        afterRuns: a.runs.length,
        change: bs.median !== 0 ? as.median / bs.median - 1 : NaN,
        verdict: verdict(metric, bs, as, runs),
      });
    }
  }
  for (const key of before.keys()) if (!seen.has(key)) unmatched.push(`${key}: not in this run`);
  return { rows, unmatched, notes };
}
