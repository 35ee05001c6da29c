/**
 * `.xz` input: Node has no xz decoder, so the trace streams through the `xz -dc` program
 * (xz-utils), which decompresses on another core while the replay runs. The compressed bytes
 * are fed to it from here, so that progress can be reported in bytes of the file.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { REPLAY_ERRORS } from './errors.js';

/** Counts the bytes of the input file read so far (for progress). */
export interface ByteCounter {
  bytes: number;
}

/** How the decompressor ended. */
type Exit = { readonly error: Error } | { readonly code: number | null; readonly signal: NodeJS.Signals | null };

/** The program that decompresses; a test may point it elsewhere to see the error of a missing one. */
export const XZ = { command: 'xz' };

/**
 * The decompressed bytes of the `.xz` file `path`, chunk by chunk, through `xz -dc`. Throws a
 * one-line error when `xz` is not installed, and when it fails (a corrupt or truncated file),
 * with what it printed. Stopping the iteration early stops the decompressor.
 */
export async function* xzChunks(path: string, counter: ByteCounter): AsyncGenerator<Uint8Array> {
  const child = spawn(XZ.command, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (error) => resolve({ error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 2048) stderr += d;
  });
  const file = createReadStream(path);
  file.on('data', (c) => {
    counter.bytes += c.length;
  });
  file.on('error', (err) => child.stdin.destroy(err));
  // xz may exit early (corrupt input): its stdin then breaks, which the exit status reports.
  child.stdin.on('error', () => undefined);
  file.pipe(child.stdin);
  try {
    for await (const chunk of child.stdout) yield chunk as Uint8Array;
    const r = await exited;
    if ('error' in r) throw REPLAY_ERRORS.xzSpawn(path, XZ.command, r.error);
    if (r.code !== 0) throw REPLAY_ERRORS.xzFailed(path, r.code, r.signal, stderr);
  } finally {
    file.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
}
