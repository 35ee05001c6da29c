/*
 * The memory an inspection reads, read-only: a walker's physical address space (a unit's guest
 * RAM, where address 0 is guest-physical 0, or the fd's physical memory) and where each address
 * lies in host memory. Nothing here writes: the walks that set A/D bits are re-implemented over
 * these reads (walk-x86.ts), and the configuration resolvers get a reader that records what they
 * read.
 */
import type { GuestRam } from '../memory/guest-ram.js';
import type { PhysMemory } from '../memory/phys.js';
import { PhysQwordReader, type QwordReader } from '../vendor/vtd/resolve-reader.js';
import { hex64 } from './names.js';

/** The address space a tracing walker reads. */
export interface TraceSpace {
  /** 32-bit view of the space: word n holds bytes 4n..4n+3 (a PhysMemory's `i32`). */
  readonly i32: Int32Array;
  /** Whether its addresses are a unit's guest-physical addresses (else host-physical ones). */
  readonly guest: boolean;
  /** The host-physical address of `addr`, or -1 outside the space. */
  hpaOf(addr: number): number;
}

/** A unit's guest RAM as a trace space: guest-physical addresses, host-physical through `ram`. */
export function unitSpace(guest: PhysMemory, ram: GuestRam): TraceSpace {
  return { i32: guest.i32, guest: true, hpaOf: (addr) => ram.gpaToPa(addr) };
}

/** The fd's physical memory as a trace space: addresses are host-physical. */
export function hostSpace(phys: PhysMemory): TraceSpace {
  const bytes = phys.i32.length * 4;
  return { i32: phys.i32, guest: false, hpaOf: (addr) => (addr >= 0 && addr < bytes ? addr : -1) };
}

/** Where a read at `addr` of `space` lies: its guest-physical address (units) and host-physical address. */
export function locate(space: TraceSpace, addr: number): { gpa?: number; hpa: number } {
  return space.guest ? { gpa: addr, hpa: space.hpaOf(addr) } : { hpa: space.hpaOf(addr) };
}

/** The qword at `addr` (8-byte aligned, inside the space) as its two words [lo, hi]. */
export function readQword(space: TraceSpace, addr: number): [number, number] {
  const at = addr / 4;
  return [space.i32[at]!, space.i32[at + 1]!];
}

/** `words` (pairs: bits 31:0, then 63:32) as hex qwords. */
export function rawQwords(words: ArrayLike<number>): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < words.length; i += 2) out.push(hex64(words[i]!, words[i + 1]!));
  return out;
}

/** A read a {@link RecordingReader} served: its address, size, and the words (undefined: it aborted). */
export interface RecordedRead {
  addr: number;
  count: number;
  words: Int32Array | undefined;
}

/**
 * A QwordReader over a space, with the same bounds and alignment rules as the units' own
 * (PhysQwordReader), that tells `onRead` of every read it serves, in order.
 */
export class RecordingReader implements QwordReader {
  readonly #inner: PhysQwordReader;
  readonly #onRead: (read: RecordedRead) => void;

  /** A reader of `i32` (a PhysMemory's `i32`) reporting to `onRead`. */
  constructor(i32: Int32Array, onRead: (read: RecordedRead) => void) {
    this.#inner = new PhysQwordReader(i32);
    this.#onRead = onRead;
  }

  /** See QwordReader.readQwords. */
  readQwords(addr: number, count: number, out: Int32Array): boolean {
    const ok = this.#inner.readQwords(addr, count, out);
    this.#onRead({ addr, count, words: ok ? out.slice(0, 2 * count) : undefined });
    return ok;
  }
}
