/**
 * `ioasid replay FILE`: replays a QEMU 7.2 trace log (plain or .xz) through src/replay and prints
 * its counts, one JSON document with `--json`, and an HTML report with `--report`. Exit status 1
 * when the unit rejected trace commands or a translation disagreed with its mapping; 2 when the
 * file cannot be read or is not a trace.
 */
import { Option, type Command } from 'commander';
import { machineInfo, renderReport } from '../report/index.js';
import { compareReplay, replayTrace, type ReplayResult, type TraceVendor } from '../replay/index.js';
import { IommufdError } from '../util/errors.js';
import type { CommandContext } from './context.js';
import { progressBar } from './progress.js';
import {
  baselineHuman,
  replayHuman,
  replayReport,
  type BaselineComparison,
  type ReplayDocument,
  type ReplayTimePoint,
} from './replay-output.js';
import { checkReportPath, writeReport } from './report-file.js';
import { EXIT, intIn, UsageError } from './usage.js';

/** The flags as commander parses them. */
interface ReplayFlags {
  vendor?: TraceVendor;
  vtdMode?: 'legacy' | 'scalable';
  guestRamMib?: number;
  json?: boolean;
  exportJson?: string;
  report?: string;
  baseline?: 'qemu';
  rounds?: number;
  warmup?: number;
}

/** What `--baseline qemu` compares against, as the README says it. */
const BASELINE_NOTE =
  "a model of QEMU 7.2's vIOMMU caching and invalidation algorithms (src/baseline), not QEMU itself";

/** Lines between progress reports: the throughput-over-time resolution. */
const PROGRESS_LINES = 4096;

/** Adds `replay` to `program`. */
export function registerReplay(program: Command, ctx: CommandContext): void {
  program
    .command('replay')
    .description('replay a QEMU 7.2 vIOMMU trace log (plain or .xz) on an emulated unit at full speed')
    .argument('<file>', 'the trace: a QEMU trace log, plain or .xz')
    .addOption(new Option('--vendor <vendor>', 'the unit (default: the trace’s)').choices(['vtd', 'smmuv3']))
    .addOption(
      new Option('--vtd-mode <mode>', 'VT-d root tables (default: what the trace says)').choices([
        'legacy',
        'scalable',
      ]),
    )
    .addOption(new Option('--guest-ram-mib <n>', 'guest RAM of the unit (default 64)').argParser(intIn(16, 2048)))
    .option('--json', 'write one JSON document to stdout')
    .option('--export-json <file>', 'write the same JSON document to <file> too')
    .option('--report <file>', 'write a self-contained HTML report (throughput over time) to <file>')
    .addOption(
      new Option(
        '--baseline <name>',
        'also replay on the QEMU-style baseline, interleaved, and print ours/theirs',
      ).choices(['qemu']),
    )
    .addOption(new Option('--rounds <n>', 'measured rounds with --baseline (default 5)').argParser(intIn(1, 100)))
    .addOption(new Option('--warmup <n>', 'warm-up rounds with --baseline (default 2)').argParser(intIn(0, 100)))
    .addHelpText(
      'after',
      '\nThe trace formats are described in ../shared/traces/README.md. Lines the replay cannot interpret\n' +
        'are counted by kind (uninterpreted), never dropped silently.\n\n' +
        'Examples:\n' +
        '  ioasid replay vtd-nocm-lazy.clean.log\n' +
        '  ioasid replay smmu-strict-xlate.clean.log.xz --json --report replay.html',
    )
    .action(async (file: string, flags: ReplayFlags) => ctx.done(await runReplayCommand(file, flags, ctx)));
}

async function runReplayCommand(file: string, f: ReplayFlags, ctx: CommandContext): Promise<number> {
  if (f.report !== undefined) checkReportPath(f.report);
  if (f.exportJson !== undefined) checkReportPath(f.exportJson, 'JSON');
  const progress = progressBar('replay');
  const timeline: ReplayTimePoint[] = [];
  const t0 = performance.now();
  let last = { t: t0, lines: 0 };
  let result: ReplayResult;
  let baseline: BaselineComparison | undefined;
  if (f.baseline === undefined && (f.rounds !== undefined || f.warmup !== undefined))
    throw new UsageError('--rounds and --warmup need --baseline qemu');
  try {
    if (f.baseline === 'qemu') {
      const rounds = f.rounds ?? 5;
      const warmup = f.warmup ?? 2;
      let done = 0;
      const cmp = await compareReplay(file, {
        ...(f.vendor !== undefined ? { vendor: f.vendor } : {}),
        ...(f.vtdMode !== undefined ? { vtdScalable: f.vtdMode === 'scalable' } : {}),
        ...(f.guestRamMib !== undefined ? { guestRamBytes: f.guestRamMib * 2 ** 20 } : {}),
        rounds,
        warmup,
        onRound: (r) => {
          done++;
          progress.update(
            done / (2 * (rounds + warmup)),
            `${r.warmup ? 'warm-up' : 'round'} ${r.round + 1} ${r.target}`,
          );
        },
      });
      const figures = (t: typeof cmp.ours): BaselineComparison['ours'] => ({
        commandsPerSecond: t.commandsPerSecond,
        wallMs: t.wallMs,
        setupMs: t.setupMs,
        correct: t.correct,
      });
      baseline = {
        target: 'qemu',
        note: BASELINE_NOTE,
        rounds,
        warmup,
        ours: figures(cmp.ours),
        qemu: figures(cmp.qemu),
        ratio: cmp.ratio,
        sameWork: cmp.sameWork,
      };
      result = cmp.ours.last;
    } else
      result = await replayTrace(file, {
        ...(f.vendor !== undefined ? { vendor: f.vendor } : {}),
        ...(f.vtdMode !== undefined ? { vtdScalable: f.vtdMode === 'scalable' } : {}),
        ...(f.guestRamMib !== undefined ? { guestRamBytes: f.guestRamMib * 2 ** 20 } : {}),
        progressEveryLines: PROGRESS_LINES,
        onProgress: (p) => {
          const now = performance.now();
          if (p.lines > last.lines && now > last.t)
            timeline.push({ t: (now - t0) / 1000, linesPerSecond: ((p.lines - last.lines) * 1000) / (now - last.t) });
          last = { t: now, lines: p.lines };
          progress.update(p.totalBytes > 0 ? p.bytesRead / p.totalBytes : 0, `${p.lines} lines`);
        },
      });
  } catch (e) {
    // The file cannot be read, cannot be decompressed, or is not a trace: bad input.
    if (e instanceof IommufdError) throw new UsageError(e.message);
    throw e;
  } finally {
    progress.stop();
  }
  const doc: ReplayDocument = {
    tool: 'ioasid replay',
    machine: machineInfo(),
    command: ctx.commandLine,
    ...result,
    timeline,
    ...(baseline === undefined ? {} : { comparison: baseline }),
  };
  if (f.json === true) ctx.out(JSON.stringify(doc));
  else ctx.out(replayHuman(doc) + (baseline === undefined ? '' : `\n${baselineHuman(baseline)}`));
  if (f.exportJson !== undefined) writeReport(f.exportJson, `${JSON.stringify(doc)}\n`, 'JSON');
  if (f.report !== undefined) {
    writeReport(f.report, renderReport(replayReport(doc)));
    (f.json === true ? ctx.err : ctx.out)(`report written to ${f.report}`);
  }
  if (result.uninterpreted > 0)
    ctx.err(`ioasid: ${result.uninterpreted} trace lines could not be interpreted (see byKind.uninterpreted)`);
  const t = result.translations;
  if (baseline !== undefined && (!baseline.ours.correct || !baseline.qemu.correct || !baseline.sameWork)) {
    ctx.err('ioasid: replay FAILED: a round was not correct on one target, or the two did different work');
    return EXIT.failed;
  }
  if (result.commandErrors > 0 || t.faults > 0 || t.mismatches > 0) {
    ctx.err(
      `ioasid: replay FAILED: ${result.commandErrors} command errors, ${t.faults} translation faults, ` +
        `${t.mismatches} translation mismatches`,
    );
    return EXIT.failed;
  }
  return EXIT.ok;
}
