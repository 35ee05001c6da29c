/**
 * 64-bit descriptors in physical memory, accessed as two 32-bit words (little-endian: the low word
 * first). JavaScript cannot load 64 bits atomically, so every format keeps its valid bit in the
 * low word and follows DESIGN.md's rules: install writes the high word, then `Atomics.store`s the
 * low one; clear `Atomics.store`s the low word first; a walker `Atomics.load`s the low word before
 * it reads the high one. A live descriptor is never rewritten in place (break-before-make).
 *
 * `index` is the Int32 index of the low word, i.e. the physical address >> 2.
 */

/** Installs a descriptor whose valid bit is in `lo`. The slot must be invalid. */
export function descInstall(i32: Int32Array, index: number, lo: number, hi: number): void {
  i32[index + 1] = hi;
  Atomics.store(i32, index, lo);
}

/**
 * Invalidates a descriptor by storing its low (valid) word only. The high word is left as it was:
 * a walker that loaded the valid word just before the clear must not then read a zeroed high
 * word (a torn read), and the next install rewrites it anyway.
 */
export function descClear(i32: Int32Array, index: number): void {
  Atomics.store(i32, index, 0);
}

/** Loads the low (valid) word of a descriptor. Read the high word only after this. */
export function descLoadLo(i32: Int32Array, index: number): number {
  return Atomics.load(i32, index);
}

/** Reads the high word of a descriptor (after {@link descLoadLo}). */
export function descLoadHi(i32: Int32Array, index: number): number {
  return i32[index + 1]!;
}
