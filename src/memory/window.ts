import { IommufdError } from '../util/errors.js';

/**
 * Word access to a range of the VMM's host memory, resolved to its frames once: what a VMM has
 * when guest RAM is mapped into it, so a handler can read and write guest page-table entries
 * without a lookup or an allocation per access. The window holds a reference on each frame (as a
 * pin does) until {@link close}, so an munmap cannot free them under it.
 */
export class MemoryWindow {
  /** The window's length in bytes. */
  readonly length: number;
  readonly #i32: Int32Array;
  readonly #frames: Int32Array;
  readonly #release: (frames: Int32Array) => void;
  #closed = false;

  /** A window on `frames` (one per 4 KiB page) of physical memory `i32`; `release` drops their references. */
  constructor(i32: Int32Array, frames: Int32Array, release: (frames: Int32Array) => void) {
    this.#i32 = i32;
    this.#frames = frames;
    this.#release = release;
    this.length = frames.length * 4096;
  }

  /** The 32-bit word at byte offset `off` (a multiple of 4 in the window). */
  read32(off: number): number {
    return Atomics.load(this.#i32, this.#at(off));
  }

  /** Stores the 32-bit word `value` at byte offset `off` (a multiple of 4 in the window), visible to other threads' walks. */
  write32(off: number, value: number): void {
    Atomics.store(this.#i32, this.#at(off), value | 0);
  }

  /**
   * Stores a 64-bit entry at `off` (a multiple of 8) as its two words, the high word first, so a
   * walk that sees the low word (where the present bit lives) sees the whole entry.
   */
  write64(off: number, lo: number, hi: number): void {
    const at = this.#at(off);
    if ((off & 7) !== 0) throw new IommufdError('EINVAL', `a 64-bit entry needs an 8-byte aligned offset, got ${off}`);
    Atomics.store(this.#i32, at + 1, hi | 0);
    Atomics.store(this.#i32, at, lo | 0);
  }

  /** Drops the window's references. Idempotent; any access afterwards is EBADF. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#release(this.#frames);
  }

  #at(off: number): number {
    if (this.#closed) throw new IommufdError('EBADF', 'the memory window is closed');
    if (!(off >= 0 && off + 4 <= this.length) || (off & 3) !== 0)
      throw new IommufdError('EFAULT', `offset ${String(off)} is not a word inside the window`);
    return (this.#frames[off >>> 12]! << 10) | ((off & 4095) >>> 2);
  }
}
