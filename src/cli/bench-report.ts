/**
 * `ioasid bench --report out.html`: the run as a report document (src/report renders it): the
 * summary table, throughput against the swept knob with the runs' range as a band, the barrier
 * latency histograms, and commands/s over time.
 */
import type { BenchDocument, BenchResult, BenchRun, Comparison } from '../bench/index.js';
import {
  sweepPoint,
  type HistogramBucket,
  type ReportDoc,
  type ReportSection,
  type SweepSeries,
  type TableCell,
} from '../report/index.js';
import { pointLabel } from './bench-human.js';

/** Timeline points per series at most: longer series are averaged down. */
const MAX_TIME_POINTS = 400;

/** The histogram of every run of a result, bucket counts added. */
function mergedHistogram(r: BenchResult): HistogramBucket[] {
  const byEdge = new Map<number, HistogramBucket>();
  for (const run of r.runs) {
    for (const b of run.latencyHistogram) {
      const had = byEdge.get(b.lo);
      byEdge.set(b.lo, { lo: b.lo, hi: b.hi, count: (had?.count ?? 0) + b.count });
    }
  }
  return [...byEdge.values()].sort((a, b) => a.lo - b.lo);
}

function isPowerOfTwoList(values: readonly number[]): boolean {
  return values.every((v) => v > 0 && (v & (v - 1)) === 0);
}

function summaryTable(doc: BenchDocument): ReportSection {
  const knob = doc.sweep?.knob;
  const columns = [
    'vendor',
    'scenario',
    ...(knob !== undefined ? [knob] : []),
    'runs',
    'ops/s',
    'commands/s',
    'barriers/s',
    'barrier p50 µs',
    'p99 µs',
    'p99.9 µs',
    'IOTLB hit rate %',
    'over-invalidations',
    'check',
  ];
  const rows: TableCell[][] = doc.results.map((r) => {
    const s = r.summary;
    return [
      r.vendor,
      r.scenario,
      ...(knob !== undefined ? [r.options[knob]] : []),
      r.runs.length,
      s.opsPerSecond.median,
      s.commandsPerSecond.median,
      s.barriersPerSecond.median,
      s.barrierP50Us.median,
      s.barrierP99Us.median,
      s.barrierP999Us.median,
      s.iotlbHitRate.median * 100,
      s.overInvalidations.median,
      r.ok ? 'ok' : 'FAILED',
    ];
  });
  return { kind: 'table', title: 'Summary (medians of the runs)', columns, rows };
}

/** Throughput against the swept knob: unit commands/s, and guest operations/s (a lazy batch issues fewer commands per op). */
function sweepSections(doc: BenchDocument): ReportSection[] {
  const sweep = doc.sweep;
  if (sweep === undefined) return [];
  const knobName = sweep.knob === 'batch' ? 'batch size' : 'IOTLB shards';
  const chart = (metric: string, of: (run: BenchRun) => number): ReportSection => {
    const series: SweepSeries[] = [];
    for (const vendor of new Set(doc.results.map((r) => r.vendor))) {
      const points = doc.results
        .filter((r) => r.vendor === vendor)
        .map((r) => sweepPoint(r.options[sweep.knob], r.runs.map(of)));
      series.push({ label: `${vendor} ${doc.results[0]!.scenario}`, points });
    }
    return {
      kind: 'sweep',
      title: `${metric[0]!.toUpperCase()}${metric.slice(1)} against ${knobName} (median, band: min–max of the runs)`,
      knob: sweep.knob === 'batch' ? 'batch size (unmaps per barrier)' : 'shards',
      metric,
      xScale: isPowerOfTwoList(sweep.values) ? 'log2' : 'linear',
      series,
    };
  };
  return [chart('commands/s', (run) => run.commandsPerSecond), chart('ops/s', (run) => run.opsPerSecond)];
}

/** Averages a long series down to at most MAX_TIME_POINTS points. */
function thin(points: { t: number; y: number }[]): { t: number; y: number }[] {
  if (points.length <= MAX_TIME_POINTS) return points;
  const k = Math.ceil(points.length / MAX_TIME_POINTS);
  const out: { t: number; y: number }[] = [];
  for (let i = 0; i < points.length; i += k) {
    const group = points.slice(i, i + k);
    out.push({ t: group[group.length - 1]!.t, y: group.reduce((a, p) => a + p.y, 0) / group.length });
  }
  return out;
}

function comparisonTable(cmp: Comparison, path: string): ReportSection {
  return {
    kind: 'table',
    title: `Compared with ${path}`,
    columns: [
      'point',
      'figure',
      'before (median)',
      'before min',
      'before max',
      'after (median)',
      'after min',
      'after max',
      'change %',
      'verdict',
    ],
    rows: cmp.rows.map((r) => [
      r.point,
      r.metric,
      r.before.median,
      r.before.min,
      r.before.max,
      r.after.median,
      r.after.min,
      r.after.max,
      Number.isFinite(r.change) ? r.change * 100 : null,
      r.verdict,
    ]),
    ...(cmp.notes.length + cmp.unmatched.length > 0 ? { caption: [...cmp.unmatched, ...cmp.notes].join('; ') } : {}),
  };
}

/** The report of a bench run. */
export function benchReport(doc: BenchDocument, comparison?: { cmp: Comparison; path: string }): ReportDoc {
  const sections: ReportSection[] = [summaryTable(doc)];
  sections.push(...sweepSections(doc));
  sections.push({
    kind: 'histogram',
    title: 'Barrier latency (every barrier of every run; doorbell, or scheduled time in open loop, to completion)',
    unit: 'µs',
    countScale: 'log',
    series: doc.results.map((r) => ({ label: pointLabel(r, doc), buckets: mergedHistogram(r) })),
  });
  sections.push({
    kind: 'timeseries',
    title: 'Commands/s over time (first run of each point, 50 ms intervals)',
    metric: 'commands/s',
    series: doc.results.map((r) => ({
      label: pointLabel(r, doc),
      points: thin(r.runs[0]!.timeline.map((p) => ({ t: p.t, y: p.commandsPerSecond }))),
    })),
  });
  if (comparison !== undefined) sections.push(comparisonTable(comparison.cmp, comparison.path));
  const probed = doc.results.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.correctness.probedPages, 0), 0);
  const failed = doc.results.filter((r) => !r.ok).map((r) => pointLabel(r, doc));
  const notes = [
    ...new Set(doc.results.map((r) => r.workload)),
    failed.length === 0
      ? `Correctness check passed on every run: ${probed} pages probed after the final syncs, all as the reference model says.`
      : `Correctness check FAILED for ${failed.join(', ')}.`,
  ];
  return {
    title: `ioasid bench: scenario ${doc.results[0]!.scenario}`,
    machine: doc.machine,
    generatedAt: doc.generatedAt,
    command: doc.command,
    notes,
    sections,
  };
}
