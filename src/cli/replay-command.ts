/**
 * `ioasid replay FILE`: replays a QEMU 7.2 trace log (plain or .xz) through src/replay and prints
 * its counts, one JSON document with `--json`, and an HTML report with `--report`. Exit status 1
 * when the unit rejected trace commands or a translation disagreed with its mapping; 2 when the
 * file cannot be read or is not a trace.
 */
import { Option, type Command } from 'commander';
import { machineInfo, renderReport } from '../report/index.js';
import { replayTrace, type ReplayResult, type TraceVendor } from '../replay/index.js';
import { IommufdError } from '../util/errors.js';
import type { CommandContext } from './context.js';
import { progressBar } from './progress.js';
import { replayHuman, replayReport, type ReplayDocument, type ReplayTimePoint } from './replay-output.js';
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
}

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
  try {
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
  };
  if (f.json === true) ctx.out(JSON.stringify(doc));
  else ctx.out(replayHuman(doc));
  if (f.exportJson !== undefined) writeReport(f.exportJson, `${JSON.stringify(doc)}\n`, 'JSON');
  if (f.report !== undefined) {
    writeReport(f.report, renderReport(replayReport(doc)));
    (f.json === true ? ctx.err : ctx.out)(`report written to ${f.report}`);
  }
  if (result.uninterpreted > 0)
    ctx.err(`ioasid: ${result.uninterpreted} trace lines could not be interpreted (see byKind.uninterpreted)`);
  const t = result.translations;
  if (result.commandErrors > 0 || t.faults > 0 || t.mismatches > 0) {
    ctx.err(
      `ioasid: replay FAILED: ${result.commandErrors} command errors, ${t.faults} translation faults, ` +
        `${t.mismatches} translation mismatches`,
    );
    return EXIT.failed;
  }
  return EXIT.ok;
}
