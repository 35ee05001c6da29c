/**
 * Shared helpers for the conformance suite, a port of the kernel selftests in
 * tools/testing/selftests/iommu/iommufd.c (torvalds/linux) to the `ioasid` simulator.
 *
 * The geometry constants are spelled out here (rather than imported) so that the suite pins
 * the selftest's numbers independently of the implementation.
 */
import { expect } from 'vitest';
import { Iommufd, IommufdError } from '../../src/index.js';

export type Fd = ReturnType<typeof Iommufd.open>;

/** Host page size (the selftest's PAGE_SIZE on x86). */
export const PAGE_SIZE = 4096n;
/** MOCK_PAGE_SIZE = PAGE_SIZE / 2 in the selftest. */
export const MOCK_PAGE_SIZE = 2048n;
/** The mock domain's huge IOPTE size. */
export const MOCK_HUGE_PAGE_SIZE = 1n << 20n;
export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;
/** The selftest's BUFFER_SIZE = PAGE_SIZE * 16. */
export const BUFFER_SIZE = PAGE_SIZE * 16n;
/** The selftest's HUGEPAGE_SIZE (x86 THP size); the static `buffer` is aligned to it. */
export const HUGEPAGE_SIZE = 2n << 20n;
export const U64_MAX = (1n << 64n) - 1n;
/** PASID width the selftest's PASID-capable mock device reports (MOCK_PASID_WIDTH). */
export const MOCK_PASID_WIDTH = 20;

/** Enough simulated RAM for every fixture in the suite. */
export const MEMORY_BYTES = 32 * 2 ** 20;

/** Opens a fresh iommufd, like `open("/dev/iommu")` in every FIXTURE_SETUP. */
export function openFd(): Fd {
  return Iommufd.open({ memoryBytes: MEMORY_BYTES });
}

/**
 * Asserts that `fn` throws an IommufdError carrying `errno` (the selftest's EXPECT_ERRNO) and
 * returns the error so callers can inspect extra fields.
 */
export function expectErrno(fn: () => unknown, errno: string): IommufdError {
  let thrown: unknown = undefined;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    thrown = e;
  }
  expect(threw, `expected ${errno}, but the call succeeded`).toBe(true);
  expect(thrown).toBeInstanceOf(IommufdError);
  expect(thrown).toEqual(expect.objectContaining({ errno }));
  return thrown as IommufdError;
}

/**
 * mmap(2) of `length` bytes whose start is aligned to `align` (the selftest's `buffer` is
 * posix_memalign'ed to HUGEPAGE_SIZE, and the auto IOVA allocator derives its alignment from the
 * user VA, so the alignment of the buffer shows in the results).
 */
export function alignedMmap(fd: Fd, length: bigint, align: bigint = HUGEPAGE_SIZE): bigint {
  const raw = fd.memory.mmap(length + align);
  const va = (raw + align - 1n) & ~(align - 1n);
  if (va > raw) fd.memory.munmap(raw, va - raw);
  const tail = raw + length + align - (va + length);
  if (tail > 0n) fd.memory.munmap(va + length, tail);
  return va;
}

/** Fills [va, va+length) with deterministic pseudo-random bytes, so misplaced pages show. */
export function fillRandom(fd: Fd, va: bigint, length: number, seed = 0x1234567): void {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  fd.memory.write(va, bytes);
}

/** Byte-wise equality without building a huge diff on failure. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

/** The selftest's `1UL << (ffs(length) - 1)`: the lowest set bit of `length`. */
export function lowestSetBit(length: bigint): bigint {
  return length & -length;
}

/** Flags for test_ioctl_ioas_map_fixed: FIXED_IOVA | WRITEABLE | READABLE. */
export const FIXED_RW = { fixedIova: true, readable: true, writeable: true } as const;

/** test_ioctl_ioas_map_fixed(userVa, length, iova) on `ioasId`; asserts the IOVA comes back. */
export function mapFixed(fd: Fd, ioasId: number, userVa: bigint, length: bigint, iova: bigint): void {
  expect(fd.ioasMap(ioasId, { userVa, length, iova, flags: FIXED_RW })).toBe(iova);
}

/** test_ioctl_ioas_unmap(iova, length): the whole length must come back as unmapped. */
export function unmapExact(fd: Fd, ioasId: number, iova: bigint, length: bigint): void {
  expect(fd.ioasUnmap(ioasId, iova, length)).toBe(length);
}

/**
 * Stand-in for IOMMU_TEST_OP_ADD_RESERVED: binds a mock device whose reserved regions are
 * `regions` and attaches it to `ioasId`, which adds them to the IOAS's reserved ranges (along with
 * the mock domain's aperture, if the IOAS had no domain yet). Returns the device id.
 */
export function addReservedViaDevice(fd: Fd, ioasId: number, regions: { start: bigint; last: bigint }[]): number {
  const dev = fd.deviceBind({ iommu: 'mock', reservedRegions: regions });
  fd.deviceAttach(dev, ioasId);
  return dev;
}
