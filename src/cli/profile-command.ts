/**
 * `ioasid profile <scenario|trace>`: profiles a bench scenario (or a trace replay) per thread
 * through the profile library (src/profile), and prints what it found and every file it wrote;
 * `--json` as one document. Exit status 1 when the workload failed its own check (the profiles
 * are still written) or 0x failed; 2 for a bad flag, value, trace file or output folder.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { BENCH_DEFAULTS, SCENARIOS, type BenchVendor } from '../bench/index.js';
import { ProfileError, profileWorkload } from '../profile/index.js';
import { machineInfo } from '../report/index.js';
import type { CommandContext } from './context.js';
import { profileDocument, profileHuman, workloadFigures, type ProfiledWorkload } from './profile-output.js';
import { progressBar } from './progress.js';
import { EXIT, intIn, positiveNumber, UsageError } from './usage.js';

/** The flags as commander parses them. */
interface ProfileFlags {
  vendor?: BenchVendor;
  ops?: number;
  duration?: number;
  seed?: number;
  hostDmaThreads?: number;
  out?: string;
  json?: boolean;
}

/** A scenario's defaults here: long enough for a few thousand samples per thread, and workers to profile. */
const PROFILE_DEFAULTS = { vendor: 'vtd', durationSeconds: 2, hostDmaThreads: 2 } as const;

/** The project root and the built CLI the child runs, whether this module runs from dist/ or from src/ (tsx). */
function layout(): { root: string; cli: string } {
  const fromSource = import.meta.url.endsWith('.ts');
  const root = fileURLToPath(new URL(fromSource ? '../../' : '../../../', import.meta.url));
  return { root, cli: join(root, 'dist/src/cli/main.js') };
}

/** `profiles/<local time>`, e.g. profiles/2025-01-31T14-05-09. */
function defaultOutDir(now: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const stamp =
    `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}T` +
    `${p(now.getHours())}-${p(now.getMinutes())}-${p(now.getSeconds())}`;
  return join('profiles', stamp);
}

/** Adds `profile` to `program`. */
export function registerProfile(program: Command, ctx: CommandContext): void {
  program
    .command('profile')
    .description('CPU-profile a bench scenario or a trace replay: a flamegraph per thread, one speedscope file')
    .argument('<scenario|trace>', `a bench scenario (${SCENARIOS.join(', ')}) or a trace file`)
    .addOption(
      new Option('--vendor <vendor>', `scenario: the unit (default ${PROFILE_DEFAULTS.vendor})`).choices([
        'vtd',
        'smmu',
      ]),
    )
    .addOption(
      new Option('--ops <n>', 'scenario: measured operations, instead of a duration')
        .argParser(intIn(1, 1e9))
        .conflicts('duration'),
    )
    .addOption(
      new Option(
        '--duration <seconds>',
        `scenario: measure for this long (default ${PROFILE_DEFAULTS.durationSeconds})`,
      ).argParser(positiveNumber(3600)),
    )
    .addOption(
      new Option('--seed <n>', `scenario: command-stream seed (default ${BENCH_DEFAULTS.seed})`).argParser(
        intIn(0, 2 ** 32 - 1),
      ),
    )
    .addOption(
      new Option(
        '--host-dma-threads <n>',
        `scenario: worker threads translating a host device's DMA meanwhile (default ${PROFILE_DEFAULTS.hostDmaThreads})`,
      ).argParser(intIn(0, 16)),
    )
    .option('--out <dir>', 'output folder, new or empty (default profiles/<date>T<time>)')
    .option('--json', 'write one JSON document to stdout')
    .addHelpText(
      'after',
      '\nThe workload runs in a child `node --cpu-prof --trace-gc --trace-deopt dist/src/cli/main.js bench …`\n' +
        '(or `replay FILE`): every thread writes its own CPU profile, piscina workers included, since they\n' +
        "inherit the child's flags. A scenario runs on the main thread (guest driver and unit, as QEMU serves a\n" +
        'doorbell on the vCPU thread); --host-dma-threads workers translate a host device’s DMA through\n' +
        'iommufd meanwhile, over the same IOTLB. Each profile is source-mapped to the .ts sources, rendered\n' +
        'as a 0x flamegraph, and all are merged into one speedscope file. GC and deoptimization counts come\n' +
        "from V8's --trace-gc and --trace-deopt lines, over all threads.\n\n" +
        'Examples:\n' +
        '  ioasid profile strict\n' +
        '  ioasid profile mixed --vendor smmu --duration 5 --out prof-mixed\n' +
        '  ioasid profile traces/vtd-nocm-strict.clean.log.xz --json',
    )
    .action(async (target: string, flags: ProfileFlags) => ctx.done(await runProfileCommand(target, flags, ctx)));
}

/** What `target` and the flags ask to profile (UsageError when they do not fit). */
function profiledWorkload(target: string, f: ProfileFlags): ProfiledWorkload {
  if ((SCENARIOS as readonly string[]).includes(target)) {
    return {
      kind: 'scenario',
      scenario: target,
      vendor: f.vendor ?? PROFILE_DEFAULTS.vendor,
      ...(f.ops !== undefined ? { ops: f.ops } : { durationSeconds: f.duration ?? PROFILE_DEFAULTS.durationSeconds }),
      seed: f.seed ?? BENCH_DEFAULTS.seed,
      hostDmaThreads: f.hostDmaThreads ?? PROFILE_DEFAULTS.hostDmaThreads,
    };
  }
  if (!existsSync(target) || !statSync(target).isFile())
    throw new UsageError(`'${target}' is neither a scenario (${SCENARIOS.join(', ')}) nor a trace file`);
  for (const [flag, v] of [
    ['--vendor', f.vendor],
    ['--ops', f.ops],
    ['--duration', f.duration],
    ['--seed', f.seed],
    ['--host-dma-threads', f.hostDmaThreads],
  ] as const) {
    if (v !== undefined) throw new UsageError(`${flag} applies to scenarios, not to a trace file`);
  }
  return { kind: 'trace', file: target };
}

/** The child CLI's arguments for `w`. */
function workloadArgs(w: ProfiledWorkload): string[] {
  if (w.kind === 'trace') return ['replay', w.file];
  return [
    'bench',
    ...['--scenario', w.scenario, '--vendor', w.vendor, '--seed', String(w.seed)],
    ...(w.ops !== undefined ? ['--ops', String(w.ops)] : ['--duration', String(w.durationSeconds)]),
    ...['--host-dma-threads', String(w.hostDmaThreads)],
  ];
}

async function runProfileCommand(target: string, f: ProfileFlags, ctx: CommandContext): Promise<number> {
  const workload = profiledWorkload(target, f);
  const { root, cli } = layout();
  const generatedAt = new Date();
  const outDir = f.out ?? defaultOutDir(generatedAt);
  const progress = progressBar('profile');
  let result;
  try {
    result = await profileWorkload({
      cli,
      args: workloadArgs(workload),
      outDir,
      root,
      title: `ioasid profile ${target}`,
      exporter: `ioasid profile (${ctx.commandLine})`,
      onProgress: (fraction, stage) => progress.update(fraction, stage),
      ...(workload.kind === 'scenario' && workload.durationSeconds !== undefined
        ? { expectedSeconds: workload.durationSeconds + 1 }
        : {}),
    });
  } catch (e) {
    if (e instanceof ProfileError) {
      if (e.kind === 'usage') throw new UsageError(e.message);
      ctx.err(`ioasid: ${e.message}`);
      return EXIT.failed;
    }
    throw e;
  } finally {
    progress.stop();
  }
  const doc = profileDocument(result, workload, {
    machine: machineInfo(),
    command: ctx.commandLine,
    generatedAt: generatedAt.toISOString(),
  });
  ctx.out(f.json === true ? JSON.stringify(doc) : profileHuman(doc));
  if (result.exitStatus !== 0 || !workloadFigures(result.workloadDocument).ok) {
    ctx.err(`ioasid: the profiled workload failed its check (exit ${result.exitStatus}); the profiles were written`);
    return EXIT.failed;
  }
  return EXIT.ok;
}
