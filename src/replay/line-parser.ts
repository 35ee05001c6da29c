/**
 * The parser of one QEMU trace line, `SEC.USEC:event args` (the clean form; the raw form's
 * `PID@` prefix is accepted too), straight from the bytes of the input: no string is built for a
 * line whose event is known, so the replay's hot loop allocates nothing per line. The event
 * table and the argument formats are in events.ts.
 */
import { ByteNameTable, latin1 } from './byte-names.js';
import { EVENT_SPECS, type EventId } from './events.js';

/** What a line turned out to be, when it is not a well-formed known event (`parseTraceLine`'s negative results). */
export const LineStatus = {
  /** Empty, or only blanks. */
  Blank: -1,
  /** No `SEC.USEC:` prefix (or an empty event name). */
  NoEvent: -2,
  /** A well-formed line whose event this replay does not know. */
  UnknownEvent: -3,
  /** A known event whose arguments do not match its format. */
  Malformed: -4,
} as const;

/** Most numeric and string arguments an event has. */
const MAX_NUMS = 8;
const MAX_STRS = 2;

/** A parsed line, reused from line to line. */
export class TraceEvent {
  /** The event id, or -1 for a line without a known event. */
  ev = -1;
  /** The line's bytes (valid until the next parse). */
  buf: Uint8Array = new Uint8Array(0);
  /** The event name's byte range (also for an unknown event). */
  nameStart = 0;
  nameEnd = 0;
  /** Numeric arguments in order: value (exact below 2^53), and the high and low 32 bits of hexadecimal ones. */
  readonly nums = new Float64Array(MAX_NUMS);
  readonly hi = new Uint32Array(MAX_NUMS);
  readonly lo = new Uint32Array(MAX_NUMS);
  numCount = 0;
  /** `%s` arguments as byte ranges of `buf`. */
  readonly strStart = new Int32Array(MAX_STRS);
  readonly strEnd = new Int32Array(MAX_STRS);
  strCount = 0;

  /** The event name (allocates; for counts of unknown and malformed lines). */
  name(): string {
    return latin1(this.buf, this.nameStart, this.nameEnd);
  }

  /** String argument `i` (allocates; diagnostics and tests). */
  str(i: number): string {
    return latin1(this.buf, this.strStart[i]!, this.strEnd[i]!);
  }
}

// Compiled formats: per event, a list of ops; a literal op is followed by its bytes.
const OP_LITERAL = 0;
const OP_HEX0X = 1;
const OP_HEX = 2;
const OP_DEC = 3;
const OP_TOKEN = 4;
const OP_REST = 5;

interface CompiledFormat {
  readonly ops: Int32Array;
  /** Literal bytes, indexed by the literal ops' operands. */
  readonly literals: Uint8Array;
}

function compileFormat(format: string): CompiledFormat {
  const ops: number[] = [];
  const lit: number[] = [];
  let run: number[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    ops.push(OP_LITERAL, lit.length, run.length);
    lit.push(...run);
    run = [];
  };
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!;
    if (c === '%' && i + 1 < format.length) {
      const op = { x: OP_HEX0X, h: OP_HEX, d: OP_DEC, s: OP_TOKEN, '*': OP_REST }[format[i + 1]!];
      if (op !== undefined) {
        flush();
        ops.push(op, 0, 0);
        i++;
        continue;
      }
    }
    run.push(c.charCodeAt(0));
  }
  flush();
  return { ops: Int32Array.from(ops), literals: Uint8Array.from(lit) };
}

const NAMES = new ByteNameTable(EVENT_SPECS.map((s) => s.name));
const FORMATS: readonly CompiledFormat[] = EVENT_SPECS.map((s) => compileFormat(s.format));

const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB || c === CR;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * Parses the line in bytes [start, end) of `buf` (no newline) into `out`: returns the event id
 * (>= 0) of a well-formed known event, else a {@link LineStatus}. `out.ev` is set for a malformed
 * known event too; the name range is set whenever there is a `SEC.USEC:name` prefix.
 * Allocation-free.
 */
export function parseTraceLine(buf: Uint8Array, start: number, end: number, out: TraceEvent): number {
  out.buf = buf;
  out.ev = -1;
  out.numCount = 0;
  out.strCount = 0;
  while (end > start && isBlank(buf[end - 1]!)) end--;
  if (start === end) return LineStatus.Blank;
  // [PID@]SEC.USEC:
  let i = start;
  let digits = 0;
  while (i < end && buf[i]! >= 0x30 && buf[i]! <= 0x39) {
    i++;
    digits++;
  }
  if (i < end && buf[i] === 0x40 /* @ */ && digits > 0) {
    i++;
    digits = 0;
    while (i < end && buf[i]! >= 0x30 && buf[i]! <= 0x39) {
      i++;
      digits++;
    }
  }
  if (digits === 0 || i >= end || buf[i] !== 0x2e /* . */) return LineStatus.NoEvent;
  i++;
  const frac = i;
  while (i < end && buf[i]! >= 0x30 && buf[i]! <= 0x39) i++;
  if (i === frac || i >= end || buf[i] !== 0x3a /* : */) return LineStatus.NoEvent;
  i++;
  const nameStart = i;
  while (i < end && buf[i] !== SPACE) i++;
  out.nameStart = nameStart;
  out.nameEnd = i;
  if (i === nameStart) return LineStatus.NoEvent;
  const ev = NAMES.lookup(buf, nameStart, i);
  if (ev < 0) return LineStatus.UnknownEvent;
  out.ev = ev;
  if (i < end) i++; // the one space before the arguments
  return matchFormat(FORMATS[ev]!, buf, i, end, out) ? ev : LineStatus.Malformed;
}

function matchFormat(f: CompiledFormat, buf: Uint8Array, i: number, end: number, out: TraceEvent): boolean {
  const ops = f.ops;
  for (let p = 0; p < ops.length; p += 3) {
    switch (ops[p]) {
      case OP_LITERAL: {
        const from = ops[p + 1]!;
        const n = ops[p + 2]!;
        if (end - i < n) return false;
        for (let k = 0; k < n; k++) if (buf[i + k] !== f.literals[from + k]) return false;
        i += n;
        break;
      }
      case OP_HEX0X:
        if (end - i < 3 || buf[i] !== 0x30 || (buf[i + 1]! | 0x20) !== 0x78) return false;
        i = parseHex(buf, i + 2, end, out);
        if (i < 0) return false;
        break;
      case OP_HEX:
        i = parseHex(buf, i, end, out);
        if (i < 0) return false;
        break;
      case OP_DEC:
        i = parseDec(buf, i, end, out);
        if (i < 0) return false;
        break;
      case OP_TOKEN: {
        const s = i;
        while (i < end && !isBlank(buf[i]!)) i++;
        if (i === s || out.strCount === MAX_STRS) return false;
        out.strStart[out.strCount] = s;
        out.strEnd[out.strCount] = i;
        out.strCount++;
        break;
      }
      default: // OP_REST
        i = end;
    }
  }
  while (i < end && isBlank(buf[i]!)) i++;
  return i === end;
}

/** Hex digits from `i` into the next numeric argument; returns the index after them, -1 if none or too many. */
function parseHex(buf: Uint8Array, i: number, end: number, out: TraceEvent): number {
  if (out.numCount === MAX_NUMS) return -1;
  let hi = 0;
  let lo = 0;
  const s = i;
  for (; i < end; i++) {
    const d = hexDigit(buf[i]!);
    if (d < 0) break;
    if (i - s === 16) return -1;
    hi = ((hi << 4) | (lo >>> 28)) >>> 0;
    lo = ((lo << 4) | d) >>> 0;
  }
  if (i === s) return -1;
  const n = out.numCount++;
  out.hi[n] = hi;
  out.lo[n] = lo;
  out.nums[n] = hi * 4294967296 + lo;
  return i;
}

/** A decimal number (optionally negative) from `i` into the next numeric argument. */
function parseDec(buf: Uint8Array, i: number, end: number, out: TraceEvent): number {
  if (out.numCount === MAX_NUMS) return -1;
  let neg = false;
  if (i < end && buf[i] === 0x2d /* - */) {
    neg = true;
    i++;
  }
  const s = i;
  let v = 0;
  for (; i < end && buf[i]! >= 0x30 && buf[i]! <= 0x39; i++) {
    if (i - s === 16) return -1;
    v = v * 10 + (buf[i]! - 0x30);
  }
  if (i === s) return -1;
  const n = out.numCount++;
  const value = neg ? -v : v;
  out.nums[n] = value;
  out.hi[n] = Math.floor(Math.abs(value) / 4294967296) >>> 0;
  out.lo[n] = Math.abs(value) >>> 0;
  return i;
}

/** Parses one line given as a string (tests and tools; the replay parses bytes). */
export function parseLine(line: string, out: TraceEvent = new TraceEvent()): number {
  const buf = Buffer.from(line, 'latin1');
  return parseTraceLine(buf, 0, buf.length, out);
}

/** The id of an event name, or -1 (for tables keyed by name). */
export function eventId(name: string): EventId | -1 {
  const b = Buffer.from(name, 'latin1');
  return NAMES.lookup(b, 0, b.length) as EventId | -1;
}
