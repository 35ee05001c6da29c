/*
 * How the configuration fetch reads guest memory. The device model chooses the view: the
 * vIOMMU's physical address space laid out directly in host-physical memory, or one seen through
 * a translation (guest RAM's GPA -> PA offset, or a stage-2 walk). Either way a read that lands
 * outside memory fails, and the fetch turns the failure into the architected access-error fault
 * reason instead of throwing.
 */

/** Guest memory as the configuration fetch sees it. */
export interface QwordReader {
  /**
   * Reads `count` qwords at `addr` (8-byte aligned, all within one 4 KiB page) into
   * `out[0..2·count)`, bits 31:0 of each qword first. Returns false, leaving `out` undefined,
   * when the read aborts.
   */
  readQwords(addr: number, count: number, out: Int32Array): boolean;
}

/** Reads addresses as offsets into a 32-bit view of physical memory (PhysMemory.i32). */
export class PhysQwordReader implements QwordReader {
  readonly #i32: Int32Array;
  readonly #bytes: number;

  /** Reads from `i32`, whose word n holds bytes 4n..4n+3. */
  constructor(i32: Int32Array) {
    this.#i32 = i32;
    this.#bytes = i32.length * 4;
  }

  /** See {@link QwordReader.readQwords}; fails beyond the end of memory. */
  readQwords(addr: number, count: number, out: Int32Array): boolean {
    return copyQwords(this.#i32, this.#bytes, addr, count, out);
  }
}

/**
 * Reads addresses through a translation to physical addresses: `translate(addr)` returns the
 * physical address, or a negative number when `addr` does not translate. GuestRam.gpaToPa fits.
 * Structures are naturally aligned and at most 64 bytes, so one translation covers a read.
 */
export class TranslatedQwordReader implements QwordReader {
  readonly #i32: Int32Array;
  readonly #bytes: number;
  readonly #translate: (addr: number) => number;

  /** Reads from `i32` at the addresses `translate` gives. */
  constructor(i32: Int32Array, translate: (addr: number) => number) {
    this.#i32 = i32;
    this.#bytes = i32.length * 4;
    this.#translate = translate;
  }

  /** See {@link QwordReader.readQwords}; fails where `translate` does, or beyond physical memory. */
  readQwords(addr: number, count: number, out: Int32Array): boolean {
    const pa = this.#translate(addr);
    return pa >= 0 && copyQwords(this.#i32, this.#bytes, pa, count, out);
  }
}

function copyQwords(i32: Int32Array, bytes: number, pa: number, count: number, out: Int32Array): boolean {
  if (!(pa >= 0 && pa + count * 8 <= bytes) || pa % 8 !== 0) return false;
  const at = pa / 4;
  for (let i = 0; i < count * 2; i++) out[i] = i32[at + i]!;
  return true;
}
