/** `ioasid profile`'s JSON document and human output. */
import type { MachineInfo } from '../report/index.js';
import type { Count, ProfileResult, ThreadProfile, V8TraceCounts } from '../profile/index.js';
import { machineLine, micros, si } from './format.js';
import { textTable } from './text-table.js';

/** What was profiled, as the command line asked. */
export type ProfiledWorkload =
  | {
      kind: 'scenario';
      scenario: string;
      vendor: string;
      ops?: number;
      durationSeconds?: number;
      seed: number;
      hostDmaThreads: number;
    }
  | { kind: 'trace'; file: string };

/** The workload's figures, from its own --json document. */
export interface WorkloadFigures {
  /** One line: what it did, how fast, and whether it passed its check. */
  line: string;
  ok: boolean;
}

/** The `--json` document of `ioasid profile`. */
export interface ProfileDocument {
  tool: 'ioasid profile';
  schema: 1;
  machine: MachineInfo;
  command: string;
  generatedAt: string;
  workload: ProfiledWorkload & {
    /** The child process's command line. */
    childCommand: string[];
    exitStatus: number;
    summary: string;
  };
  outDir: string;
  threads: ThreadProfile[];
  /** Every file written. */
  files: {
    flamegraphs: string[];
    profiles: string[];
    speedscope: string;
    raw: string[];
    traceLog: string;
    workloadJson: string;
  };
  /** Frames with a script position over all threads, and how many point at their .ts source. */
  sourceMaps: { frames: number; mapped: number };
  /** From `--trace-gc` and `--trace-deopt`, over all threads. */
  gc: V8TraceCounts['gc'];
  deopts: V8TraceCounts['deopts'];
}

/** The figures of the workload's --json document (bench or replay), read loosely: it is another tool's output. */
export function workloadFigures(doc: unknown): WorkloadFigures {
  const d = doc as Record<string, unknown> | undefined;
  if (d?.['tool'] === 'ioasid bench') {
    const r = (d['results'] as { vendor: string; scenario: string; ok: boolean; runs: Record<string, unknown>[] }[])[0];
    const run = r?.runs[0] as
      | {
          ops: number;
          wallMs: number;
          opsPerSecond: number;
          commandsPerSecond: number;
          barrierLatency: { p50: number; p99: number };
          hostDma?: { threads: number; translations: number; translationsPerSecond: number };
        }
      | undefined;
    if (r === undefined || run === undefined) return { line: 'no result', ok: false };
    const host =
      run.hostDma === undefined
        ? ''
        : `; host DMA ${si(run.hostDma.translations)} translations on ${run.hostDma.threads} workers (${si(run.hostDma.translationsPerSecond)}/s)`;
    return {
      line:
        `${r.vendor} ${r.scenario}: ${run.ops} ops in ${run.wallMs.toFixed(0)} ms, ${si(run.opsPerSecond)} ops/s, ` +
        `${si(run.commandsPerSecond)} commands/s, barrier p50 ${micros(run.barrierLatency.p50)} µs ` +
        `p99 ${micros(run.barrierLatency.p99)} µs${host}; check ${r.ok ? 'ok' : 'FAILED'}`,
      ok: r.ok,
    };
  }
  if (d?.['tool'] === 'ioasid replay') {
    const t = d['throughput'] as { wallMs: number; commandsPerSecond: number };
    const errors = Number(d['commandErrors']);
    return {
      line:
        `replay of ${String(d['file'])} (${String(d['vendor'])}): ${String(d['commands'])} commands in ` +
        `${t.wallMs.toFixed(0)} ms, ${si(t.commandsPerSecond)} commands/s, ${errors} command errors`,
      ok: errors === 0,
    };
  }
  return { line: 'the workload wrote no JSON document', ok: false };
}

/** The document for `r`. */
export function profileDocument(
  r: ProfileResult,
  workload: ProfiledWorkload,
  meta: { machine: MachineInfo; command: string; generatedAt: string },
): ProfileDocument {
  return {
    tool: 'ioasid profile',
    schema: 1,
    ...meta,
    workload: {
      ...workload,
      childCommand: r.childCommand,
      exitStatus: r.exitStatus,
      summary: workloadFigures(r.workloadDocument).line,
    },
    outDir: r.outDir,
    threads: r.threads,
    files: {
      flamegraphs: r.threads.map((t) => t.files.flamegraph),
      profiles: r.threads.map((t) => t.files.profile),
      speedscope: r.files.speedscope,
      raw: r.threads.map((t) => t.files.raw),
      traceLog: r.files.traceLog,
      workloadJson: r.files.workloadJson,
    },
    sourceMaps: r.sourceMaps,
    gc: r.v8.gc,
    deopts: r.v8.deopts,
  };
}

function counts(cs: readonly Count[]): string {
  return cs.map((c) => `${c.name} ${c.count}`).join(', ');
}

function workloadTitle(w: ProfiledWorkload): string {
  if (w.kind === 'trace') return `replay of ${w.file} (a replay runs on the main thread only)`;
  const what = w.durationSeconds !== undefined ? `for ${w.durationSeconds} s` : `for ${w.ops} ops`;
  const threads =
    w.hostDmaThreads === 0
      ? 'no worker threads'
      : `${w.hostDmaThreads} host-DMA worker thread${w.hostDmaThreads > 1 ? 's' : ''}`;
  return `${w.scenario} on ${w.vendor} ${what}, seed ${w.seed}, ${threads}`;
}

function threadLabel(t: ThreadProfile): string {
  return t.entry !== undefined ? `${t.name} (${t.entry})` : t.name;
}

/** The human output. */
export function profileHuman(doc: ProfileDocument): string {
  const lines = [
    `ioasid profile: ${workloadTitle(doc.workload)}`,
    `machine: ${machineLine(doc.machine)}`,
    `workload: ${doc.workload.summary}`,
    '',
    `threads (frames source-mapped to their .ts sources: ${doc.sourceMaps.mapped} of ${doc.sourceMaps.frames}; ` +
      'the rest are node internals and dependencies):',
    ...textTable(
      [
        { header: 'thread' },
        { header: 'samples', right: true },
        { header: 'sampled', right: true },
        { header: 'most self time' },
      ],
      doc.threads.map((t) => [
        threadLabel(t),
        String(t.samples),
        `${(t.sampledMs / 1000).toFixed(2)} s`,
        t.hottest
          .slice(0, 2)
          .map((h) => `${h.name}${h.file === '' ? '' : ` ${h.file}:${h.line}`} ${h.percent.toFixed(1)} %`)
          .join(', '),
      ]),
      '  ',
    ),
    '',
    `GC (--trace-gc, all threads): ${doc.gc.total} collections` +
      (doc.gc.total > 0
        ? `: ${counts(doc.gc.byKind)}; ${doc.gc.pauseMs.toFixed(1)} ms of pauses in ${doc.gc.isolates} isolate${doc.gc.isolates === 1 ? '' : 's'}`
        : ''),
    `deoptimizations (--trace-deopt, all threads): ${doc.deopts.total}` +
      (doc.deopts.total > 0 ? `: ${counts(doc.deopts.byKind)}` : '') +
      `; ${doc.deopts.marked} optimized code objects marked for deoptimization`,
  ];
  if (doc.deopts.total > 0)
    lines.push(
      `  top reasons:   ${counts(doc.deopts.topReasons)}`,
      `  top functions: ${counts(doc.deopts.topFunctions)}`,
    );
  const f = doc.files;
  lines.push(
    '',
    'wrote:',
    ...textTable(
      [{ header: 'file' }, { header: 'what' }],
      [
        ...doc.threads.map((t) => [t.files.flamegraph, `flamegraph (0x) of ${threadLabel(t)}`]),
        [f.speedscope, `every thread in one file: open it at https://www.speedscope.app`],
        ...doc.threads.map((t) => [t.files.profile, `CPU profile of ${t.name}, source-mapped (Chrome DevTools)`]),
        ...doc.threads.map((t) => [t.files.raw, `CPU profile of ${t.name} as V8 wrote it (dist/ positions)`]),
        [f.traceLog, "the child's stdout: V8's --trace-gc/--trace-deopt lines and the workload's report"],
        [f.workloadJson, "the workload's --json document"],
      ],
      '  ',
    ),
  );
  return lines.join('\n');
}
