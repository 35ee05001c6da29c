/**
 * QEMU's `dma_aligned_pow2_mask` (system/dma-helpers.c), which `smmuv3_s1_range_inval` uses to
 * split a range invalidation into naturally aligned power-of-two chunks, on exact JS numbers
 * (addresses below 2^53) instead of uint64 masks.
 */

const TWO_32 = 2 ** 32;

/** The lowest set bit of the positive integer `x` (< 2^53), as a number. */
export function lowestSetBit(x: number): number {
  const lo = x % TWO_32;
  if (lo !== 0) return (lo & -lo) >>> 0;
  const hi = Math.floor(x / TWO_32);
  return ((hi & -hi) >>> 0) * TWO_32;
}

/** The largest power of two not above the positive integer `n` (< 2^53). */
export function floorPow2(n: number): number {
  if (n >= TWO_32) return 2 ** (31 - Math.clz32(Math.floor(n / TWO_32))) * TWO_32;
  return 2 ** (31 - Math.clz32(n));
}

/**
 * The size of the first chunk of [start, end] (inclusive) that is naturally aligned and a power
 * of two: the alignment of `start` if it fits, else the largest power of two that does
 * (`dma_aligned_pow2_mask(start, end, 64) + 1`).
 */
export function dmaAlignedPow2Size(start: number, end: number): number {
  const size = end - start + 1;
  if (start !== 0) {
    const align = lowestSetBit(start);
    if (align <= size) return align;
  }
  return floorPow2(size);
}
