/**
 * `ioasid bench`'s human output, in the manner of fio and hyperfine: a header that names the
 * machine and the workload, a block per result (median and, over repeated runs, the range), a
 * summary table, the sweep and the comparison when asked for.
 */
import type { BenchDocument, BenchResult, Comparison, ComparisonRow, Spread, SummaryMetric } from '../bench/index.js';
import { change, machineLine, micros, percent, si } from './format.js';
import { textTable } from './text-table.js';

/** How each summarized figure reads. */
const METRIC_LABEL: Readonly<Record<SummaryMetric, string>> = {
  commandsPerSecond: 'commands/s',
  barriersPerSecond: 'barriers/s',
  opsPerSecond: 'ops/s',
  barrierP50Us: 'barrier p50 µs',
  barrierP99Us: 'barrier p99 µs',
  barrierP999Us: 'barrier p99.9 µs',
  iotlbHitRate: 'IOTLB hit rate',
  overInvalidations: 'over-invalidations',
};

function metricText(metric: SummaryMetric, v: number): string {
  if (metric === 'iotlbHitRate') return percent(v);
  if (metric.endsWith('Us')) return micros(v);
  return si(v);
}

/** A figure: the median, and with repeated runs its range. */
function spreadText(metric: SummaryMetric, s: Spread, runs: number): string {
  const m = metricText(metric, s.median);
  return runs > 1 && s.min !== s.max ? `${m} [${metricText(metric, s.min)} … ${metricText(metric, s.max)}]` : m;
}

/** The point's label: vendor and scenario, and the swept knob. */
export function pointLabel(r: BenchResult, doc: BenchDocument): string {
  const knob = doc.sweep?.knob;
  return `${r.vendor} ${r.scenario}${knob !== undefined ? ` ${knob}=${r.options[knob]}` : ''}`;
}

function checkLine(r: BenchResult): string {
  const probed = r.runs.reduce((n, run) => n + run.correctness.probedPages, 0);
  const checked = r.runs.reduce((n, run) => n + run.correctness.checkedDuringRun, 0);
  if (r.ok) {
    return (
      `ok: ${probed} pages probed after the final sync, ${checked} DMA translations checked during the ` +
      `run${r.runs.length > 1 ? 's' : ''}, all as the reference model says`
    );
  }
  const bad = r.runs.find((run) => !run.correctness.ok)!.correctness;
  return `FAILED: ${bad.stale} stale, ${bad.wrongAddress} wrong address, ${bad.faults} faulted: ${bad.failures[0]?.message ?? ''}`;
}

function resultBlock(r: BenchResult, doc: BenchDocument): string[] {
  const o = r.options;
  const n = r.runs.length;
  const s = r.summary;
  const first = r.runs[0]!;
  const wall = r.runs.map((run) => run.wallMs);
  const lat = first.barrierLatency;
  const maxUs = Math.max(...r.runs.map((run) => run.barrierLatency.max));
  const c = first.cache;
  const lines = [
    `${pointLabel(r, doc)}: ${first.ops} ops in ${(wall.reduce((a, b) => a + b, 0) / n).toFixed(1)} ms` +
      `${n > 1 ? ` (mean of ${n} runs; figures are medians [min … max])` : ''}`,
    `  workload:   ${r.workload}`,
    `  knobs:      IOTLB ${o.iotlbEntries} entries / ${o.shards} shards, DMA ${o.dma ? 'on' : 'off'}, ` +
      `seed ${o.seed}, ${o.warmupOps} warm-up ops` +
      (o.rate !== undefined ? `, open loop at ${si(o.rate)} ops/s` : ', closed loop'),
    `  ops/s:      ${spreadText('opsPerSecond', s.opsPerSecond, n)}`,
    `  commands/s: ${spreadText('commandsPerSecond', s.commandsPerSecond, n)}  (${first.commands} commands, ` +
      `${first.doorbells} doorbells${n > 1 ? ' in run 1' : ''})`,
    `  barriers/s: ${spreadText('barriersPerSecond', s.barriersPerSecond, n)}  (${first.barriers})`,
    `  latency:    p50 ${spreadText('barrierP50Us', s.barrierP50Us, n)} µs  p99 ${spreadText('barrierP99Us', s.barrierP99Us, n)} µs  ` +
      `p99.9 ${spreadText('barrierP999Us', s.barrierP999Us, n)} µs  max ${micros(maxUs)} µs  ` +
      (o.scenario === 'faults'
        ? `(${lat.samples} faults, DMA call → completion)`
        : `(${lat.samples} barriers, ${o.rate !== undefined ? 'scheduled time' : 'doorbell'} → completion)`),
    `  IOTLB:      hit rate ${spreadText('iotlbHitRate', s.iotlbHitRate, n)}, ${c.fills} fills, ${c.evictions} evictions, ` +
      `${c.invalidated} invalidated, ${spreadText('overInvalidations', s.overInvalidations, n)} over-invalidations` +
      (c.atcHits > 0 ? `, ${c.atcHits} ATC hits` : ''),
  ];
  if (first.hostDma !== undefined) {
    const h = first.hostDma;
    lines.push(
      `  host DMA:   ${h.threads} worker thread${h.threads > 1 ? 's' : ''}, ${si(h.translations)} translations ` +
        `(${si(h.translationsPerSecond)}/s), ${h.faults} faults${n > 1 ? ' in run 1' : ''}`,
    );
  }
  if (first.schedule !== undefined)
    lines.push(
      `  schedule:   ${first.schedule.lateOps} ops started late, max lag ${micros(first.schedule.maxLagUs)} µs`,
    );
  lines.push(`  check:      ${checkLine(r)}`);
  const b = r.baseline;
  if (b !== undefined) {
    const ratio = (x: Spread): string =>
      `${x.median.toFixed(3)}${n > 1 ? ` [${x.min.toFixed(3)} … ${x.max.toFixed(3)}]` : ''}`;
    lines.push(
      `  qemu:       ops/s ${spreadText('opsPerSecond', b.summary.opsPerSecond, n)}, commands/s ` +
        `${spreadText('commandsPerSecond', b.summary.commandsPerSecond, n)}, p99 ` +
        `${spreadText('barrierP99Us', b.summary.barrierP99Us, n)} µs, check ${b.ok ? 'ok' : 'FAILED'}`,
      `  ours/qemu:  ops/s ${ratio(b.opsRatio)}, commands/s ${ratio(b.commandsRatio)}  (above 1: ours is faster)`,
    );
  }
  return lines;
}

function summaryTable(doc: BenchDocument): string[] {
  const columns = [
    { header: 'vendor' },
    { header: 'scenario' },
    ...(doc.sweep !== undefined ? [{ header: doc.sweep.knob, right: true }] : []),
    { header: 'ops/s', right: true },
    { header: 'commands/s', right: true },
    { header: 'barriers/s', right: true },
    { header: 'p50 µs', right: true },
    { header: 'p99 µs', right: true },
    { header: 'p99.9 µs', right: true },
    { header: 'hit rate', right: true },
    { header: 'over-inv.', right: true },
    { header: 'check' },
  ];
  const rows = doc.results.map((r) => {
    const s = r.summary;
    return [
      r.vendor,
      r.scenario,
      ...(doc.sweep !== undefined ? [String(r.options[doc.sweep.knob])] : []),
      si(s.opsPerSecond.median),
      si(s.commandsPerSecond.median),
      si(s.barriersPerSecond.median),
      micros(s.barrierP50Us.median),
      micros(s.barrierP99Us.median),
      micros(s.barrierP999Us.median),
      percent(s.iotlbHitRate.median),
      si(s.overInvalidations.median),
      r.ok ? 'ok' : 'FAILED',
    ];
  });
  return textTable(columns, rows);
}

function comparisonLines(cmp: Comparison, path: string): string[] {
  const lines = [`compared with ${path}:`];
  if (cmp.rows.length > 0) {
    const noBand = cmp.rows.some((r: ComparisonRow) => r.verdict === 'no band');
    lines.push(
      ...textTable(
        [
          { header: 'point' },
          { header: 'figure' },
          { header: 'before', right: true },
          { header: 'after', right: true },
          { header: 'change', right: true },
          { header: 'verdict' },
        ],
        cmp.rows.map((r) => [
          r.point,
          METRIC_LABEL[r.metric],
          spreadText(r.metric, r.before, r.beforeRuns),
          spreadText(r.metric, r.after, r.afterRuns),
          change(r.change),
          r.verdict,
        ]),
        '  ',
      ),
    );
    if (noBand) lines.push('  (no band: a single run on one side; repeat with --runs N for a noise band)');
  }
  for (const u of cmp.unmatched) lines.push(`  unmatched: ${u}`);
  for (const n of cmp.notes) lines.push(`  note: ${n}`);
  return lines;
}

/** The whole human output of a bench run. */
export function benchHuman(doc: BenchDocument, comparison?: { cmp: Comparison; path: string }): string {
  const o = doc.results[0]!.options;
  const runs = doc.results[0]!.runs.length;
  const what = o.durationMs !== undefined ? `${o.durationMs / 1000} s` : `${o.ops} ops`;
  const lines = [
    `ioasid bench: scenario ${o.scenario}, ${what} per run, ${runs} run${runs > 1 ? 's' : ''} per point, seed ${o.seed}` +
      (doc.sweep !== undefined ? `, sweep ${doc.sweep.knob} over ${doc.sweep.values.join(', ')}` : ''),
    `machine: ${machineLine(doc.machine)}`,
    '',
  ];
  for (const r of doc.results) lines.push(...resultBlock(r, doc), '');
  if (doc.results.length > 1) lines.push(...summaryTable(doc), '');
  if (comparison !== undefined) lines.push(...comparisonLines(comparison.cmp, comparison.path), '');
  return lines.join('\n').trimEnd();
}
