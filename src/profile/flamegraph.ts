/**
 * Flamegraph HTML per thread with 0x (reference/toolchain.md §5): `0x --visualize-cpu-profile
 * FILE --output-html OUT` renders one CPU profile, so each thread gets its own, workers
 * included (0x's own `--prof` mode keeps one isolate, picked arbitrarily). 0x is a dependency of
 * ioasid; where it is missing the caller gets a one-line error before any work is done.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { PROFILE_ERRORS } from './errors.js';

/** The path of 0x's command line, or undefined when 0x is not installed. */
export function find0x(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('0x/cmd.js');
  } catch {
    return undefined;
  }
}

/** Renders `cpuprofile` into the self-contained flamegraph HTML `html` with 0x at `cmd`. */
function render(cmd: string, cpuprofile: string, html: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cmd, '-q', '--visualize-cpu-profile', cpuprofile, '--output-html', html], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (e) => reject(PROFILE_ERRORS.run0x(e.message)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(PROFILE_ERRORS.failed0x(cpuprofile, code, stderr.trim().split('\n').pop() ?? ''));
    });
  });
}

/**
 * Renders every `[cpuprofile, html]` pair, as many at once as the machine has cores; calls
 * `onDone` after each. A ProfileError ('tool') when 0x is missing or fails.
 */
export async function renderFlamegraphs(
  jobs: readonly (readonly [cpuprofile: string, html: string])[],
  onDone?: (done: number) => void,
): Promise<void> {
  const cmd = find0x();
  if (cmd === undefined) throw PROFILE_ERRORS.no0x();
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const [from, to] = jobs[next++]!;
      await render(cmd, from, to);
      onDone?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs.length, availableParallelism()) }, worker));
}
