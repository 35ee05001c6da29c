/** `ioasid replay`'s human output and its report document. */
import type { MachineInfo, ReportDoc, ReportSection } from '../report/index.js';
import type { ReplayResult } from '../replay/index.js';
import { machineLine, si } from './format.js';
import { textTable } from './text-table.js';

/** A point of the replay's throughput over time. */
export interface ReplayTimePoint {
  /** Seconds since the replay started. */
  t: number;
  /** Trace lines per second over the interval that ends at `t`. */
  linesPerSecond: number;
}

/** The `--json` document of `ioasid replay`: the replay's result, with the tool, the machine and the timeline. */
export type ReplayDocument = ReplayResult & {
  tool: 'ioasid replay';
  machine: MachineInfo;
  command: string;
  /** Trace lines per second over the replay. */
  timeline: ReplayTimePoint[];
};

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
