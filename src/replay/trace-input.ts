/**
 * Where the trace comes from: a file (plain, or `.xz` through xz.ts), or a stream the caller
 * opened (stdin, a socket, a decompressor of its own). The replay sees bytes, chunk by chunk;
 * lines are cut out of them by {@link LineCutter} without copying, except for a line that
 * straddles two chunks.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { REPLAY_ERRORS } from './errors.js';
import { xzChunks, type ByteCounter } from './xz.js';

/** A trace to replay: a file path or URL (`.xz` is decompressed), or a stream of bytes or text. */
export type TraceSource = string | URL | AsyncIterable<Uint8Array | string>;

/** An opened trace. */
export interface TraceInput {
  /** The bytes of the trace text. */
  readonly chunks: AsyncIterable<Uint8Array>;
  /** Bytes of the input read so far (of the compressed file for `.xz`). */
  readonly counter: ByteCounter;
  /** Size of the input in the same unit, or 0 when unknown (a stream). */
  readonly totalBytes: number;
  /** The file name, or 'stream'. */
  readonly name: string;
  /** Whether the input is `.xz`. */
  readonly compressed: boolean;
}

/** Opens `source`. ENOENT (one line) when the file cannot be read. */
export async function openTrace(source: TraceSource, totalBytes = 0): Promise<TraceInput> {
  const counter: ByteCounter = { bytes: 0 };
  if (typeof source !== 'string' && !(source instanceof URL)) {
    return { chunks: streamChunks(source, counter), counter, totalBytes, name: 'stream', compressed: false };
  }
  const path = source instanceof URL ? fileURLToPath(source) : source;
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (e) {
    throw REPLAY_ERRORS.noInput(path, e instanceof Error ? e.message : String(e));
  }
  if (path.endsWith('.xz')) {
    return { chunks: xzChunks(path, counter), counter, totalBytes: size, name: path, compressed: true };
  }
  return { chunks: fileChunks(path, counter), counter, totalBytes: size, name: path, compressed: false };
}

async function* fileChunks(path: string, counter: ByteCounter): AsyncGenerator<Uint8Array> {
  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
    const c = chunk as Uint8Array;
    counter.bytes += c.length;
    yield c;
  }
}

async function* streamChunks(
  source: AsyncIterable<Uint8Array | string>,
  counter: ByteCounter,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    const c = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    counter.bytes += c.length;
    yield c;
  }
}

/** Receives one line: bytes [start, end) of `buf`, without its newline. */
export type LineSink = (buf: Uint8Array, start: number, end: number) => void;

/**
 * Cuts lines out of a sequence of chunks: `push` each chunk, then `end` once. A line that
 * straddles chunks is joined (the only copy); the last line needs no newline.
 */
export class LineCutter {
  #carry: Uint8Array | undefined;
  readonly #sink: LineSink;

  /** A cutter that hands each line to `sink`. */
  constructor(sink: LineSink) {
    this.#sink = sink;
  }

  /** Hands every complete line of `chunk` (and of what was carried from the last chunk) to the sink. */
  push(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    let nl = buf.indexOf(10, 0);
    if (this.#carry !== undefined) {
      if (nl < 0) {
        this.#carry = Buffer.concat([this.#carry, buf]);
        return;
      }
      const joined = Buffer.concat([this.#carry, buf.subarray(0, nl)]);
      this.#carry = undefined;
      this.#sink(joined, 0, joined.length);
      start = nl + 1;
      nl = buf.indexOf(10, start);
    }
    const sink = this.#sink;
    while (nl >= 0) {
      sink(buf, start, nl);
      start = nl + 1;
      nl = buf.indexOf(10, start);
    }
    if (start < buf.length) this.#carry = buf.subarray(start);
  }

  /** Hands the last line (one without a newline) to the sink. */
  end(): void {
    const c = this.#carry;
    this.#carry = undefined;
    if (c !== undefined && c.length > 0) this.#sink(c, 0, c.length);
  }
}
