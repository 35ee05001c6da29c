/**
 * Backing store for an MMIO register block, one 32-bit word at a time, with QEMU's four masks
 * (`intel_iommu.c` `vtd_define_*`): a reset value, the bits a guest may write (RW), the bits a
 * guest clears by writing 1 (W1C) and the bits that read as 0 (write-only). Bits in none of the
 * masks are read-only to the guest; the device model changes them with `set`, `setBits` and
 * `clearBits`. A 64-bit register is two words, low word first.
 */
export class RegisterFile {
  /** Size of the block in bytes. */
  readonly size: number;
  readonly #value: Uint32Array;
  readonly #wmask: Uint32Array;
  readonly #w1c: Uint32Array;
  readonly #womask: Uint32Array;

  constructor(size: number) {
    this.size = size;
    const words = size >>> 2;
    this.#value = new Uint32Array(words);
    this.#wmask = new Uint32Array(words);
    this.#w1c = new Uint32Array(words);
    this.#womask = new Uint32Array(words);
  }

  /** Forgets every definition: all words read 0 and ignore writes. */
  clear(): void {
    this.#value.fill(0);
    this.#wmask.fill(0);
    this.#w1c.fill(0);
    this.#womask.fill(0);
  }

  /** Defines the 32-bit register at `offset`. */
  defineLong(offset: number, reset: number, wmask = 0, w1c = 0, womask = 0): void {
    const i = offset >>> 2;
    this.#value[i] = reset;
    this.#wmask[i] = wmask;
    this.#w1c[i] = w1c;
    this.#womask[i] = womask;
  }

  /** Defines the 64-bit register at `offset` as two words. */
  defineQuad(offset: number, reset: bigint, wmask = 0n, w1c = 0n, womask = 0n): void {
    this.defineLong(offset, lo(reset), lo(wmask), lo(w1c), lo(womask));
    this.defineLong(offset + 4, hi(reset), hi(wmask), hi(w1c), hi(womask));
  }

  /** A guest read of the word at `offset` (write-only bits read 0). */
  guestRead(offset: number): number {
    const i = offset >>> 2;
    return (this.#value[i]! & ~this.#womask[i]!) >>> 0;
  }

  /** A guest write of the word at `offset`: RW bits take `value`, W1C bits written 1 clear. */
  guestWrite(offset: number, value: number): void {
    const i = offset >>> 2;
    const wmask = this.#wmask[i]!;
    this.#value[i] = ((this.#value[i]! & ~wmask) | (value & wmask)) & ~(this.#w1c[i]! & value);
  }

  /** The raw word at `offset`. */
  get(offset: number): number {
    return this.#value[offset >>> 2]!;
  }

  /** Sets the raw word at `offset`. */
  set(offset: number, value: number): void {
    this.#value[offset >>> 2] = value;
  }

  /** Sets `bits` in the raw word at `offset`. */
  setBits(offset: number, bits: number): void {
    this.#value[offset >>> 2]! |= bits;
  }

  /** Clears `bits` in the raw word at `offset`. */
  clearBits(offset: number, bits: number): void {
    this.#value[offset >>> 2]! &= ~bits;
  }

  /** The raw 64-bit register at `offset`. */
  getQuad(offset: number): bigint {
    return (BigInt(this.get(offset + 4)) << 32n) | BigInt(this.get(offset));
  }
}

/** Bits 31:0 of a u64. */
function lo(v: bigint): number {
  return Number(v & 0xffffffffn);
}

/** Bits 63:32 of a u64. */
function hi(v: bigint): number {
  return Number((v >> 32n) & 0xffffffffn);
}
