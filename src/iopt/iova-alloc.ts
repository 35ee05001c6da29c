import { IommufdError } from '../util/errors.js';
import { holes, mergeRanges, U64_MAX, type IovaRange } from './ranges.js';

/** Host page size as a bigint. */
export const PAGE_SIZE_N = 4096n;
/** The cap on auto-IOVA alignment: HPAGE_SIZE with transparent huge pages (2 MiB). */
export const MAX_AUTO_ALIGNMENT = 2n * 1024n * 1024n;

/** The smallest power of two >= x (x >= 1). */
export function roundupPowOfTwo(x: bigint): bigint {
  let p = 1n;
  while (p < x) p <<= 1n;
  return p;
}

/** 1 << (index of the lowest set bit of x); x > 0. */
export function lowestBit(x: bigint): bigint {
  return x & -x;
}

/** What the allocator needs to see of an io_pagetable. */
export interface IovaSpace {
  /** Current IOAS alignment. */
  iovaAlignment: bigint;
  /** User-allowed ranges (empty: everything is allowed). */
  allowed: readonly IovaRange[];
  /** Reserved ranges and existing areas. */
  used(): IovaRange[];
}

/**
 * `__alloc_iova_check_range`: aligns `start` up, ORs in the page offset, and checks that `length`
 * bytes fit before `last`. Returns the candidate or -1n. Ported exactly, including its refusal of a
 * candidate equal to `last` (so a 1-byte hole never fits).
 */
function checkRange(start: bigint, last: bigint, length: bigint, alignment: bigint, pageOffset: bigint): bigint {
  const up = start + alignment - 1n;
  if (up > U64_MAX) return -1n;
  const aligned = (up & ~(alignment - 1n)) | pageOffset;
  if (aligned >= last || last - aligned < length - 1n) return -1n;
  return aligned;
}

/**
 * The kernel's automatic IOVA allocator (`iopt_alloc_iova`, reference/iommufd.md §4): alignment
 * from the length and the low bits of the user address (capped at HPAGE_SIZE), search inside
 * [PAGE_SIZE, ULONG_MAX - PAGE_SIZE] and the allowed ranges, first fit among the holes of
 * reserved ranges and areas, lowest address first.
 */
export function allocIova(space: IovaSpace, addr: bigint, length: bigint): bigint {
  if (length === 0n || length >= U64_MAX / 2n)
    throw new IommufdError('EOVERFLOW', `length ${length} is out of range for an automatic IOVA`);
  const pageOffset = addr % PAGE_SIZE_N;
  let alignment =
    addr === 0n
      ? roundupPowOfTwo(length)
      : [roundupPowOfTwo(length), lowestBit(addr)].reduce((a, b) => (a < b ? a : b));
  if (alignment >= MAX_AUTO_ALIGNMENT) alignment = MAX_AUTO_ALIGNMENT;
  if (alignment < space.iovaAlignment) {
    throw new IommufdError(
      'EINVAL',
      `automatic IOVA alignment ${alignment} is below the IOAS alignment ${space.iovaAlignment}`,
    );
  }
  const lo = PAGE_SIZE_N;
  const hi = U64_MAX - PAGE_SIZE_N;
  const spans = space.allowed.length === 0 ? [{ start: lo, last: hi }] : mergeRanges(space.allowed, lo, hi);
  const used = mergeRanges(space.used());
  for (const span of spans) {
    // __alloc_iova_check_used moves the span's start to the aligned candidate; the hole search
    // starts there.
    const start = checkRange(span.start, span.last, length, alignment, pageOffset);
    if (start < 0n) continue;
    for (const hole of holes(used, start, span.last)) {
      const iova = checkRange(hole.start, hole.last, length, alignment, pageOffset);
      if (iova >= 0n) return iova;
    }
  }
  throw new IommufdError('ENOSPC', `no free IOVA range of ${length} bytes`);
}
