/**
 * A profile of one workload, per thread: the built CLI runs it in a child
 * `node --cpu-prof --cpu-prof-dir=OUT/cpu --trace-gc --trace-deopt` process, so every thread
 * (piscina workers inherit execArgv, reference/toolchain.md §2) writes its own CPU profile and V8
 * prints its GC and deoptimization lines on the child's stdout. Then each profile is source-mapped
 * to the `.ts` sources, rendered as a 0x flamegraph, and all of them merged into one speedscope
 * file. Everything goes to the output folder:
 *
 *   cpu/CPU.*.cpuprofile   V8's profiles as written (dist/ positions)
 *   <thread>.cpuprofile    source-mapped (Chrome DevTools opens them)
 *   <thread>.html          0x flamegraph, one per thread
 *   speedscope.json        every thread in one file
 *   v8-trace.log           the child's stdout: the trace lines, and the workload's own report
 *   workload.json          the workload's --json document (its --export-json)
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cpuProfileThreadId, readCpuProfile, type CpuProfile } from './cpuprofile.js';
import { PROFILE_ERRORS } from './errors.js';
import { find0x, renderFlamegraphs } from './flamegraph.js';
import { displayPath, ProfileSourceMapper, type MappedCounts } from './source-map.js';
import { speedscopeOf } from './speedscope.js';
import { summarizeThread, type ThreadSummary } from './thread-summary.js';
import { V8TraceCounter, type V8TraceCounts } from './v8-trace.js';

/** The flags the child node runs with, besides the CPU profile's folder. */
export const CHILD_NODE_FLAGS = ['--cpu-prof', '--trace-gc', '--trace-deopt'] as const;

/** What to profile and where. */
export interface ProfileOptions {
  /** The built CLI's entry (dist/src/cli/main.js). */
  cli: string;
  /** Its arguments: the workload (`bench …` or `replay FILE`), without any --json or --export-json. */
  args: readonly string[];
  /** The output folder: created, and refused when it holds anything. */
  outDir: string;
  /** Frames' files are shown relative to this folder (the project root). */
  root: string;
  /** The speedscope file's title and exporter. */
  title: string;
  exporter: string;
  /** Progress: the fraction done and the stage. */
  onProgress?: (fraction: number, stage: string) => void;
  /** How long the workload should take, s, for the progress of its stage (unknown: undefined). */
  expectedSeconds?: number;
}

/** One thread's summary and the files made of it. */
export interface ThreadProfile extends ThreadSummary {
  files: {
    /** V8's profile as written. */
    raw: string;
    /** Source-mapped. */
    profile: string;
    /** 0x flamegraph. */
    flamegraph: string;
  };
}

/** What a profile made. */
export interface ProfileResult {
  outDir: string;
  /** The child's command line (node, its flags, the CLI and its arguments). */
  childCommand: string[];
  /** The child's exit status: 0, or 1 when the workload failed its own check. */
  exitStatus: number;
  /** The workload's JSON document, parsed. */
  workloadDocument: unknown;
  threads: ThreadProfile[];
  /** Frames of every thread, and how many point at their source now. */
  sourceMaps: MappedCounts;
  v8: V8TraceCounts;
  files: { speedscope: string; traceLog: string; workloadJson: string; rawDir: string };
}

/** A thread's file name: 'main', 'worker-3'. */
const threadFile = (threadId: number): string => (threadId === 0 ? 'main' : `worker-${threadId}`);

/** Creates `dir`, refusing one that holds anything. */
function prepareOutDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw PROFILE_ERRORS.outDir(dir, 'a file is in the way');
  if (existsSync(dir) && readdirSync(dir).length > 0) throw PROFILE_ERRORS.outDirNotEmpty(dir);
  try {
    mkdirSync(join(dir, 'cpu'), { recursive: true });
  } catch (e) {
    throw PROFILE_ERRORS.outDir(dir, (e as NodeJS.ErrnoException).code ?? String(e));
  }
}

/** Runs the child; its stdout goes to `traceLog` and through `counter`. Resolves with its exit status. */
function runChild(
  command: readonly string[],
  traceLog: string,
  counter: V8TraceCounter,
  onTick: (seconds: number) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(traceLog);
    const logClosed = new Promise<void>((r) => log.on('close', r));
    child.stdout.pipe(log);
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (l) => counter.line(l));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4096)));
    const t0 = performance.now();
    const tick = setInterval(() => onTick((performance.now() - t0) / 1000), 200);
    child.on('error', (e) => {
      clearInterval(tick);
      reject(PROFILE_ERRORS.childFailed('an error', e.message));
    });
    child.on('close', (code, signal) => {
      clearInterval(tick);
      void logClosed.then(() => {
        const last = stderr
          .trim()
          .split('\n')
          .filter((l) => l !== '');
        if (code === 0 || code === 1) resolve(code);
        else if (code === 2) reject(PROFILE_ERRORS.childUsage(last[0] ?? 'bad usage'));
        else reject(PROFILE_ERRORS.childFailed(code !== null ? `status ${code}` : String(signal), last.at(-1) ?? ''));
      });
    });
  });
}

/** Profiles the workload `o.args` of the built CLI, per thread. */
export async function profileWorkload(o: ProfileOptions): Promise<ProfileResult> {
  if (!existsSync(o.cli)) throw PROFILE_ERRORS.noBuild(o.cli);
  if (find0x() === undefined) throw PROFILE_ERRORS.no0x();
  prepareOutDir(o.outDir);
  const rawDir = join(o.outDir, 'cpu');
  const files = {
    speedscope: join(o.outDir, 'speedscope.json'),
    traceLog: join(o.outDir, 'v8-trace.log'),
    workloadJson: join(o.outDir, 'workload.json'),
    rawDir,
  };
  const childCommand = [
    process.execPath,
    ...CHILD_NODE_FLAGS,
    `--cpu-prof-dir=${rawDir}`,
    o.cli,
    ...o.args,
    '--export-json',
    files.workloadJson,
  ];
  const progress = o.onProgress ?? (() => undefined);
  const counter = new V8TraceCounter();
  // The workload takes about 60 % of the time, the flamegraphs most of the rest.
  const expected = o.expectedSeconds;
  progress(0, 'workload');
  const exitStatus = await runChild(childCommand, files.traceLog, counter, (s) =>
    progress(expected !== undefined ? 0.6 * Math.min(1, s / expected) : 0, 'workload'),
  );

  const raws = readdirSync(rawDir)
    .filter((f) => cpuProfileThreadId(f) !== undefined)
    .sort((a, b) => cpuProfileThreadId(a)! - cpuProfileThreadId(b)!);
  if (raws.length === 0) throw PROFILE_ERRORS.noProfiles(rawDir);
  progress(0.6, 'source maps');
  const mapper = new ProfileSourceMapper();
  const sourceMaps: MappedCounts = { frames: 0, mapped: 0 };
  const file = (url: string): string => displayPath(url, o.root);
  const named: { name: string; profile: CpuProfile }[] = [];
  const threads: ThreadProfile[] = raws.map((name) => {
    const threadId = cpuProfileThreadId(name)!;
    const raw = join(rawDir, name);
    const p = readCpuProfile(raw);
    const c = mapper.rewrite(p);
    sourceMaps.frames += c.frames;
    sourceMaps.mapped += c.mapped;
    const base = join(o.outDir, threadFile(threadId));
    writeFileSync(`${base}.cpuprofile`, JSON.stringify(p));
    const summary = summarizeThread(threadId, p, file);
    named.push({ name: summary.entry !== undefined ? `${summary.name} (${summary.entry})` : summary.name, profile: p });
    return { ...summary, files: { raw, profile: `${base}.cpuprofile`, flamegraph: `${base}.html` } };
  });

  progress(0.65, 'flamegraphs');
  await renderFlamegraphs(
    threads.map((t) => [t.files.profile, t.files.flamegraph] as const),
    (done) => progress(0.65 + (0.3 * done) / threads.length, `flamegraphs ${done}/${threads.length}`),
  );
  progress(0.95, 'speedscope');
  writeFileSync(files.speedscope, JSON.stringify(speedscopeOf(named, { name: o.title, exporter: o.exporter, file })));
  let workloadDocument: unknown;
  try {
    workloadDocument = JSON.parse(readFileSync(files.workloadJson, 'utf8'));
  } catch {
    workloadDocument = undefined;
  }
  progress(1, 'done');
  return {
    outDir: o.outDir,
    childCommand,
    exitStatus,
    workloadDocument,
    threads,
    sourceMaps,
    v8: counter.counts(),
    files,
  };
}
