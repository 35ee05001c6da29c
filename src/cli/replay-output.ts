/** `ioasid replay`'s human output and its report document. */
import type { MachineInfo, ReportDoc, ReportSection } from '../report/index.js';
import type { ReplayResult, Spread } from '../replay/index.js';
import { machineLine, si } from './format.js';
import { textTable } from './text-table.js';

/** A point of the replay's throughput over time. */
export interface ReplayTimePoint {
  /** Seconds since the replay started. */
  t: number;
  /** Trace lines per second over the interval that ends at `t`. */
  linesPerSecond: number;
}

/** One target's figures over the measured rounds of `--baseline qemu` ({median, min, max}). */
export interface BaselineTargetFigures {
  commandsPerSecond: Spread;
  wallMs: Spread;
  setupMs: Spread;
  /** No command error, translation fault or mismatch in any round. */
  correct: boolean;
}

/** `--baseline qemu`: ours against the QEMU-style baseline, in interleaved rounds. */
export interface BaselineComparison {
  target: 'qemu';
  /** What the baseline is. */
  note: string;
  rounds: number;
  warmup: number;
  ours: BaselineTargetFigures;
  qemu: BaselineTargetFigures;
  /** ours ÷ qemu in commands per second, per round (above 1: ours is faster). */
  ratio: Spread;
  /** Both replayed the same commands, doorbells, barriers and translations. */
  sameWork: boolean;
}

/** The `--json` document of `ioasid replay`: the replay's result, with the tool, the machine and the timeline. */
export type ReplayDocument = ReplayResult & {
  tool: 'ioasid replay';
  machine: MachineInfo;
  command: string;
  /** Trace lines per second over the replay (empty with `--baseline`). */
  timeline: ReplayTimePoint[];
  /** With `--baseline qemu`: the comparison (the result above is ours, from the last round). */
  comparison?: BaselineComparison;
};

/** The baseline comparison's human lines. */
export function baselineHuman(b: BaselineComparison): string {
  const f = (s: Spread): string => `${si(s.median)}/s (${si(s.min)}–${si(s.max)})`;
  return [
    `baseline: ${b.note}`,
    `  ${b.rounds} interleaved rounds after ${b.warmup} warm-up rounds, commands/s median (min–max):`,
    `  ours:  ${f(b.ours.commandsPerSecond)}${b.ours.correct ? '' : '  NOT CORRECT'}`,
    `  qemu:  ${f(b.qemu.commandsPerSecond)}${b.qemu.correct ? '' : '  NOT CORRECT'}`,
    `  ratio ours/qemu: ${b.ratio.median.toFixed(3)} (${b.ratio.min.toFixed(3)}–${b.ratio.max.toFixed(3)})` +
      (b.sameWork ? '' : '  (the two did not do the same work)'),
  ].join('\n');
}

function byCount(rec: Readonly<Record<string, number>>): [string, number][] {
  return Object.entries(rec).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
}

function countTable(title: string, rec: Readonly<Record<string, number>>): string[] {
  const rows = byCount(rec);
  if (rows.length === 0) return [`${title}: none`];
  return [
    `${title}:`,
    ...textTable(
      [{ header: 'kind' }, { header: 'count', right: true }],
      rows.map(([k, n]) => [k, String(n)]),
      '  ',
    ),
  ];
}

/** The human output of a replay. */
export function replayHuman(d: ReplayDocument): string {
  const th = d.throughput;
  const tr = d.translations;
  const lines = [
    `ioasid replay: ${d.file} (${d.vendor}${d.vendor === 'vtd' ? `, ${d.setup.scalable ? 'scalable' : 'legacy'} tables` : ''})`,
    `machine: ${machineLine(d.machine)}`,
    '',
    `  lines           ${d.lines}  (${(d.bytes / 2 ** 20).toFixed(2)} MiB read, ${si(th.linesPerSecond)} lines/s)`,
    `  commands        ${d.commands}  (${si(th.commandsPerSecond)}/s)`,
    `  doorbells       ${d.doorbells}  (${si(th.doorbellsPerSecond)}/s)`,
    `  barriers        ${d.barriers}`,
    `  uninterpreted   ${d.uninterpreted}`,
    `  command errors  ${d.commandErrors}`,
  ];
  if (tr.total > 0)
    lines.push(
      `  translations    ${tr.total}  (${tr.mapped} mappings made, ${tr.unmapped} removed, ${tr.faults} faults, ${tr.mismatches} mismatches)`,
    );
  lines.push(
    `  wall time       ${th.wallMs.toFixed(1)} ms`,
    `  devices         ${
      d.setup.devices
        .map(
          (dev) =>
            `0x${dev.sid.toString(16)}${dev.did !== undefined ? ` DID ${dev.did}` : ''}` +
            `${dev.asid !== undefined ? ` ASID ${dev.asid}` : ''} (${dev.learnt})`,
        )
        .join(', ') || 'none attached by the trace'
    }`,
    '',
    ...countTable('commands by kind', d.byKind.commands),
    '',
    ...countTable('lines skipped on purpose, by reason:event', d.byKind.skipped),
    '',
    ...countTable('uninterpreted lines, by kind:event', d.byKind.uninterpreted),
  );
  return lines.join('\n');
}

/** The report of a replay: counts, kinds, and trace lines per second over time. */
export function replayReport(d: ReplayDocument): ReportDoc {
  const th = d.throughput;
  const sections: ReportSection[] = [
    {
      kind: 'table',
      title: 'Replay',
      columns: [
        'file',
        'vendor',
        'lines',
        'commands',
        'doorbells',
        'barriers',
        'uninterpreted',
        'command errors',
        'commands/s',
        'wall ms',
      ],
      rows: [
        [
          d.file,
          d.vendor,
          d.lines,
          d.commands,
          d.doorbells,
          d.barriers,
          d.uninterpreted,
          d.commandErrors,
          th.commandsPerSecond,
          th.wallMs,
        ],
      ],
    },
    {
      kind: 'timeseries',
      title: `Throughput over time (trace lines/s, every ${4096} lines)`,
      metric: 'lines/s',
      series: [
        { label: d.file.split('/').pop() ?? d.file, points: d.timeline.map((p) => ({ t: p.t, y: p.linesPerSecond })) },
      ],
    },
    {
      kind: 'table',
      title: 'Commands by kind',
      columns: ['kind', 'count'],
      rows: byCount(d.byKind.commands),
    },
    {
      kind: 'table',
      title: 'Lines skipped on purpose (reason:event)',
      columns: ['kind', 'count'],
      rows: byCount(d.byKind.skipped),
    },
    {
      kind: 'table',
      title: 'Uninterpreted lines (kind:event)',
      columns: ['kind', 'count'],
      rows: byCount(d.byKind.uninterpreted),
      caption:
        d.uninterpreted === 0 ? 'every line was interpreted' : `${d.uninterpreted} lines could not be interpreted`,
    },
  ];
  return {
    title: `ioasid replay: ${d.file.split('/').pop() ?? d.file}`,
    machine: d.machine,
    command: d.command,
    notes: [
      `Replayed at full speed on an emulated ${d.vendor === 'vtd' ? 'VT-d unit' : 'SMMUv3'}; trace timestamps only order the lines.`,
    ],
    sections,
  };
}
