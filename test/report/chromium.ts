/**
 * Headless Chromium for the report tests: load a file and return its DOM after the scripts ran.
 *
 * Chromium runs in a process group of its own, so that on a time-out (or after it exits) the
 * browser and every helper it started are killed together by that group's id.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Debian's Chromium (`apt-get install chromium`). */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags for a root, offline, one-shot headless run (issue 7 item 5). */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * Loads `file` in a fresh profile and returns the DOM serialised once the page is idle
 * (`--virtual-time-budget` lets its scripts run to the end first). Throws if Chromium fails or
 * takes longer than `timeoutMs`.
 */
export async function dumpDom(file: string, timeoutMs = 30_000): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'ioasid-chromium-'));
  const child = spawn(
    CHROMIUM,
    [...FLAGS, `--user-data-dir=${profile}`, '--virtual-time-budget=5000', '--dump-dom', pathToFileURL(file).href],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, timeoutMs);
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
    if (timedOut) throw new Error(`chromium: no result after ${timeoutMs} ms\n${tail(stderr)}`);
    if (code !== 0) throw new Error(`chromium exited with ${code ?? signal ?? 'nothing'}\n${tail(stderr)}`);
    return stdout;
  } finally {
    clearTimeout(timer);
    killGroup(child.pid);
    rmSync(profile, { recursive: true, force: true });
  }
}

/** Kills the process group that Chromium leads, if anything in it is still alive. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

function tail(text: string): string {
  return text.split('\n').slice(-20).join('\n');
}

/** The attributes of every `<tag>` in `html`, in document order (values as serialised). */
export function attributesOf(html: string, tag: string): Map<string, string>[] {
  const tags = html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'gi'));
  return [...tags].map((m) => new Map([...(m[1] ?? '').matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])));
}
