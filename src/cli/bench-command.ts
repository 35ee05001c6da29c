/**
 * `ioasid bench`: parses and checks the knobs, runs the scenario through the bench library
 * (src/bench), and prints one JSON document or the human report; `--report` writes the HTML.
 * Exit status 1 when a run fails its correctness check.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import {
  asBenchDocument,
  BENCH_DEFAULTS,
  BenchOptionError,
  compareDocuments,
  MAX_FAULT_DEPTH,
  planPoints,
  runSuite,
  SCENARIO_SPECS,
  SCENARIOS,
  type BenchDocument,
  type BenchPlan,
  type BenchVendor,
  type ScenarioName,
  type SweepKnob,
} from '../bench/index.js';
import { machineInfo, renderReport } from '../report/index.js';
import { benchHuman, pointLabel } from './bench-human.js';
import { benchReport } from './bench-report.js';
import type { CommandContext } from './context.js';
import { progressBar } from './progress.js';
import { checkReportPath, writeReport } from './report-file.js';
import { EXIT, intIn, intList, onOff, positiveNumber, UsageError } from './usage.js';

/** The flags as commander parses them (absent: undefined). */
interface BenchFlags {
  scenario?: ScenarioName;
  vendor?: BenchVendor | 'both';
  ops?: number;
  duration?: number;
  warmup?: number;
  runs?: number;
  seed?: number;
  rate?: number;
  shards?: number;
  batch?: number;
  iotlbEntries?: number;
  liveEntries?: number;
  dma?: boolean;
  guests?: number;
  hostDmaThreads?: number;
  baseline?: 'qemu';
  sweep?: SweepKnob;
  sweepValues?: number[];
  compare?: string;
  json?: boolean;
  exportJson?: string;
  report?: string;
  testDropInvalidations?: number;
}

/** The values `--sweep` runs when `--sweep-values` is not given. */
const SWEEP_VALUES: Readonly<Record<SweepKnob, readonly number[]>> = {
  shards: [1, 2, 4, 8, 16, 32],
  batch: [1, 4, 16, 64, 256, 1024],
};

const SCENARIO_HELP = SCENARIOS.map((s) => `  ${s.padEnd(12)} ${SCENARIO_SPECS[s].summary}`).join('\n');

/** Adds `bench` to `program`. */
export function registerBench(program: Command, ctx: CommandContext): void {
  program
    .command('bench')
    .description('drive the emulated VT-d and SMMUv3 units with a named guest workload and measure it')
    .addOption(new Option('--scenario <name>', `workload (default ${BENCH_DEFAULTS.scenario})`).choices(SCENARIOS))
    .addOption(new Option('--vendor <vendor>', 'unit to drive (default both)').choices(['vtd', 'smmu', 'both']))
    .addOption(
      new Option('--ops <n>', `measured operations per run (default ${BENCH_DEFAULTS.ops})`)
        .argParser(intIn(1, 1e9))
        .conflicts('duration'),
    )
    .addOption(
      new Option('--duration <seconds>', 'measure for this long instead of --ops').argParser(positiveNumber(86400)),
    )
    .addOption(
      new Option(
        '--warmup <n>',
        `operations before measuring (default min(${BENCH_DEFAULTS.warmupOps}, ops/10))`,
      ).argParser(intIn(0, 1e9)),
    )
    .addOption(new Option('--runs <n>', 'runs of each point: median and min–max (default 1)').argParser(intIn(1, 1000)))
    .addOption(
      new Option(
        '--seed <n>',
        `command-stream seed: the same seed, the same commands (default ${BENCH_DEFAULTS.seed})`,
      ).argParser(intIn(0, 2 ** 32 - 1)),
    )
    .addOption(
      new Option(
        '--rate <ops/s>',
        'open loop: issue operations on a schedule; latency from the scheduled time',
      ).argParser(positiveNumber(1e9)),
    )
    .addOption(new Option('--shards <n>', `IOTLB shards (default ${BENCH_DEFAULTS.shards})`).argParser(intIn(1, 256)))
    .addOption(
      new Option(
        '--batch <n>',
        `lazy: unmaps per flush-queue drain, i.e. per barrier (default ${BENCH_DEFAULTS.batch})`,
      ).argParser(intIn(1, 65536)),
    )
    .addOption(
      new Option('--iotlb-entries <n>', `IOTLB capacity (default ${BENCH_DEFAULTS.iotlbEntries})`).argParser(
        intIn(8, 2 ** 24),
      ),
    )
    .addOption(
      new Option(
        '--live-entries <n>',
        'mappings live at once; faults: DMAs in flight (default: the scenario’s)',
      ).argParser(intIn(1, 2 ** 20)),
    )
    .addOption(new Option('--dma <on|off>', 'devices translate between map and unmap (default on)').argParser(onOff))
    .addOption(
      new Option('--guests <n>', `multi-guest: emulated units (default ${BENCH_DEFAULTS.guests})`).argParser(
        intIn(1, 64),
      ),
    )
    .addOption(
      new Option(
        '--host-dma-threads <n>',
        'worker threads that translate a host device’s DMA through iommufd meanwhile (default 0)',
      ).argParser(intIn(0, 16)),
    )
    .addOption(
      new Option(
        '--baseline <name>',
        'also run every point on the QEMU-style baseline (a model of QEMU 7.2, not QEMU), interleaved',
      ).choices(['qemu']),
    )
    .addOption(
      new Option('--sweep <knob>', 'run at several values of a knob and chart it').choices(['shards', 'batch']),
    )
    .addOption(
      new Option(
        '--sweep-values <list>',
        'comma-separated values (default shards 1,2,4,8,16,32; batch 1,4,16,64,256,1024)',
      ).argParser(intList(1, 65536)),
    )
    .option('--compare <file>', "print the differences against a previous '--json' run")
    .option('--json', 'write one JSON document to stdout')
    .option('--export-json <file>', 'write the same JSON document to <file> too')
    .option('--report <file>', 'write a self-contained HTML report (charts) to <file>')
    .addOption(
      new Option(
        '--test-drop-invalidations <n>',
        'test hook: retarget every IOTLB invalidation from the n-th on (faults: leave each page mapped from the n-th operation on), so the correctness check must fail',
      )
        .argParser(intIn(0, 2 ** 52))
        .hideHelp(),
    )
    .addHelpText(
      'after',
      `\nScenarios:\n${SCENARIO_HELP}\n\n` +
        'Every run ends with a correctness check: after a final sync, every page the guest ever mapped is\n' +
        'translated through the unit and compared with a reference model; a mismatch exits with status 1.\n\n' +
        'Examples:\n' +
        '  ioasid bench --scenario lazy --vendor smmu --batch 64\n' +
        '  ioasid bench --scenario strict --rate 20000 --duration 5\n' +
        '  ioasid bench --scenario lazy --sweep batch --runs 3 --report sweep.html\n' +
        '  ioasid bench --json > before.json; ioasid bench --compare before.json',
    )
    .action(async (flags: BenchFlags) => ctx.done(await runBenchCommand(flags, ctx)));
}

function readPrevious(path: string): BenchDocument {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`cannot compare with ${path}: not JSON`);
  }
  return asBenchDocument(parsed, path);
}

/** The plan that `flags` ask for, checked (UsageError). */
function benchPlan(f: BenchFlags): BenchPlan {
  const scenario = f.scenario ?? BENCH_DEFAULTS.scenario;
  const lazy = SCENARIO_SPECS[scenario].policy === 'lazy';
  if (f.batch !== undefined && !lazy)
    throw new UsageError(`--batch applies to lazy-policy scenarios (lazy), not ${scenario}`);
  if (f.sweep === 'batch' && !lazy)
    throw new UsageError(`--sweep batch needs a lazy-policy scenario (lazy), not ${scenario}`);
  if (f.sweep !== undefined && f.sweep === 'batch' && f.batch !== undefined)
    throw new UsageError('--batch and --sweep batch conflict');
  if (f.sweep === 'shards' && f.shards !== undefined) throw new UsageError('--shards and --sweep shards conflict');
  if (f.sweepValues !== undefined && f.sweep === undefined) throw new UsageError('--sweep-values needs --sweep');
  if (f.guests !== undefined && !SCENARIO_SPECS[scenario].multiUnit)
    throw new UsageError(`--guests applies to multi-guest, not ${scenario}`);
  if (scenario === 'faults') {
    const other =
      f.baseline !== undefined
        ? '--baseline (the QEMU 7.2 model has no page requests)'
        : f.rate !== undefined
          ? '--rate (it runs closed loop)'
          : (f.hostDmaThreads ?? 0) > 0
            ? '--host-dma-threads'
            : undefined;
    if (other !== undefined) throw new UsageError(`the faults scenario takes no ${other}`);
    if (f.liveEntries !== undefined && f.liveEntries > MAX_FAULT_DEPTH)
      throw new UsageError(
        `--live-entries is the faults scenario's DMAs in flight, at most ${MAX_FAULT_DEPTH} (a PRI device's page request group indices)`,
      );
    if (f.dma === false) throw new UsageError('the faults scenario takes no --dma off (its operations are DMAs)');
  }
  if (f.baseline !== undefined && (f.hostDmaThreads ?? 0) > 0)
    throw new UsageError('--baseline qemu runs without host DMA threads (the baseline has none)');
  const vendors: BenchVendor[] = f.vendor === undefined || f.vendor === 'both' ? ['vtd', 'smmu'] : [f.vendor];
  const plan: BenchPlan = {
    base: {
      scenario,
      ...(f.ops !== undefined ? { ops: f.ops } : {}),
      ...(f.duration !== undefined ? { durationMs: f.duration * 1000 } : {}),
      ...(f.warmup !== undefined ? { warmupOps: f.warmup } : {}),
      ...(f.seed !== undefined ? { seed: f.seed } : {}),
      ...(f.rate !== undefined ? { rate: f.rate } : {}),
      ...(f.shards !== undefined ? { shards: f.shards } : {}),
      ...(f.batch !== undefined ? { batch: f.batch } : {}),
      ...(f.iotlbEntries !== undefined ? { iotlbEntries: f.iotlbEntries } : {}),
      ...(f.liveEntries !== undefined ? { liveEntries: f.liveEntries } : {}),
      ...(f.dma !== undefined ? { dma: f.dma } : {}),
      ...(f.guests !== undefined ? { guests: f.guests } : {}),
      ...(f.hostDmaThreads !== undefined ? { hostDmaThreads: f.hostDmaThreads } : {}),
      ...(f.testDropInvalidations !== undefined ? { dropInvalidationsFrom: f.testDropInvalidations } : {}),
    },
    vendors,
    runs: f.runs ?? 1,
    baseline: f.baseline,
    sweep: f.sweep !== undefined ? { knob: f.sweep, values: f.sweepValues ?? SWEEP_VALUES[f.sweep] } : undefined,
  };
  try {
    planPoints(plan);
  } catch (e) {
    if (e instanceof BenchOptionError) throw new UsageError(e.message);
    throw e;
  }
  return plan;
}

async function runBenchCommand(f: BenchFlags, ctx: CommandContext): Promise<number> {
  const plan = benchPlan(f);
  const previous = f.compare !== undefined ? readPrevious(f.compare) : undefined;
  if (f.report !== undefined) checkReportPath(f.report);
  if (f.exportJson !== undefined) checkReportPath(f.exportJson, 'JSON');
  const generatedAt = new Date().toISOString();
  const progress = progressBar('bench');
  let results;
  try {
    results = await runSuite(plan, (fraction, label) => progress.update(fraction, label));
  } finally {
    progress.stop();
  }
  const doc: BenchDocument = {
    tool: 'ioasid bench',
    schema: 1,
    machine: machineInfo(),
    command: ctx.commandLine,
    generatedAt,
    ...(plan.sweep !== undefined ? { sweep: { knob: plan.sweep.knob, values: [...plan.sweep.values] } } : {}),
    results,
    ok: results.every((r) => r.ok && (r.baseline?.ok ?? true)),
  };
  const comparison =
    previous !== undefined && f.compare !== undefined
      ? { cmp: compareDocuments(previous, doc), path: f.compare }
      : undefined;
  const json = JSON.stringify(comparison !== undefined ? { ...doc, comparison: comparison.cmp } : doc);
  if (f.json === true) ctx.out(json);
  else ctx.out(benchHuman(doc, comparison));
  if (f.exportJson !== undefined) writeReport(f.exportJson, `${json}\n`, 'JSON');
  if (f.report !== undefined) {
    writeReport(f.report, renderReport(benchReport(doc, comparison)));
    (f.json === true ? ctx.err : ctx.out)(`report written to ${f.report}`);
  }
  for (const r of doc.results) {
    if (r.baseline !== undefined && !r.baseline.ok)
      ctx.err(`ioasid: correctness check FAILED on the QEMU-style baseline for ${pointLabel(r, doc)}`);
    if (r.ok) continue;
    const bad = r.runs.find((run) => !run.correctness.ok)!.correctness;
    ctx.err(
      `ioasid: correctness check FAILED for ${pointLabel(r, doc)}: ${bad.stale} stale, ${bad.wrongAddress} wrong ` +
        `address, ${bad.faults} faulted; first: ${bad.failures[0]?.message ?? '?'}`,
    );
  }
  return doc.ok ? EXIT.ok : EXIT.failed;
}
