/**
 * Shared helpers for the conformance suite, a port of the kernel selftests in
 * tools/testing/selftests/iommu/iommufd.c (torvalds/linux) to the `ioasid` simulator.
 *
 * The geometry constants are spelled out here (rather than imported) so that the suite pins
 * the selftest's numbers independently of the implementation.
 *
 * Device kinds. Every fixture that binds a device runs for each of KINDS ('mock', 'smmuv3',
 * 'vtd'): describe.each(KINDS) on top of the selftest's variants, whose names stay (a
 * "mock_domain" variant means "a domain of the kind under test"). What depends on the geometry
 * comes from GEOMETRY[kind]: the smallest page (IOAS alignment, the MOCK_PAGE_SIZE loops and
 * windows), the huge page (the *_hugepage buffers), the usable ranges with a domain (aperture
 * minus the kind's MSI window), the place for fixed IOVAs, the GET_HW_INFO type. For mock every
 * number is the selftest's, and every assertion the mock-only suite made is still made for mock;
 * for smmuv3 and vtd the expectation follows the same kernel rule with their geometry.
 *
 * Exceptions (what does not run, or does not run the same way, for every kind):
 * - No ported selftest had to stay mock-only. The selftest hooks the port relies on were already
 *   stand-ins that every kind has: ADD_RESERVED is a device's reservedRegions (any kind),
 *   MD_CHECK_MAP is DMA through the device, MD_CHECK_REFS is pinCount, PASID_CHECK_HWPT is DMA
 *   tagged with the PASID, and the mock driver's designed ENOMEM on PASID 1024 is the generic
 *   fd.faultInjection, which every kind's replace goes through.
 * - FIXTURE(iommufd) simple_close, cmd_fail and global_options bind no device, so no kind
 *   reaches them: they run once. Its `close` test binds one and runs per kind.
 * - iova_ranges: the derived expectation is checked against the selftest's literal numbers for
 *   mock only (they are the mock aperture's). The 48-bit kinds have two usable ranges with a
 *   domain (their MSI window splits the aperture), so the EMSGSIZE counts and the extra range
 *   count in ioas_auto_destroy come from GEOMETRY[kind].domainRanges.
 * - copy_area (an extra DMA check, not in the selftest): a read through the write-only copy is a
 *   Permission fault for mock and vtd but translates for smmuv3, whose Arm stage-1 IOPTEs cannot
 *   say write-only (Linux's arm_lpae_prot_to_pte maps IOMMU_WRITE alone as read/write).
 * - all_aligns / all_aligns_copy, *_hugepage variants: the 4 KiB kinds' buffer is 4 MiB (two
 *   2 MiB huge pages) and 16 slices made each test take ~1.5 s, so they sweep in 8 slices (36
 *   ranges rather than 136; same idea: starts and lengths on, inside and across huge pages).
 * - The place for fixed IOVAs is MOCK_APERTURE_START (2^24) for every kind, not the 48-bit
 *   kinds' aperture start 0: the selftests rewind below it (copy_sweep starts one page lower),
 *   and 2^24 is inside every aperture and clear of every MSI window.
 * - no_domain variants bind no device until a test attaches one (the reserving device of
 *   area_auto_iova, reserved_overflow, area_allowed, iova_ranges; hwpt_attach); their other tests
 *   are kind-independent but still run per kind (they are cheap).
 */
import { expect } from 'vitest';
import { Iommufd, IommufdError, InvalidateError } from '../../src/index.js';

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

/** The device kinds the suite runs for (`fd.deviceBind({ iommu: kind })`). */
export const KINDS = ['mock', 'smmuv3', 'vtd'] as const;
export type Kind = (typeof KINDS)[number];

/** An inclusive IOVA range, as IOAS_IOVA_RANGES reports it. */
export interface Range {
  start: bigint;
  last: bigint;
}

/**
 * What the suite needs to know of a device kind. The numbers are spelled out (README "Device
 * kinds"), not imported from src/registry/domain.ts, so the suite pins them independently.
 */
export interface KindGeometry {
  /** Smallest IOPTE size: the IOAS alignment a domain of this kind imposes (the selftest's MOCK_PAGE_SIZE). */
  pageSize: bigint;
  /** The *_hugepage variants' buffer is two of these (the largest block a 2 MiB-aligned buffer can use). */
  hugePageSize: bigint;
  apertureStart: bigint;
  apertureLast: bigint;
  /** Reserved regions every device of this kind adds to the IOAS when its RID attaches (MSI windows). */
  resvRegions: readonly Range[];
  /**
   * IOAS_IOVA_RANGES of an IOAS holding a domain of this kind and one attached device: the holes of
   * what lies outside the aperture and of the device's reserved regions, written out literally.
   */
  domainRanges: readonly Range[];
  /**
   * Where the suite puts fixed IOVAs when the selftest says MOCK_APERTURE_START as a place (its
   * base_iova with a domain, copy_sweep, ioas_align_change, the IOVAs of added reservations). For
   * mock that is the aperture start. The 48-bit kinds' aperture starts at 0, but the selftests
   * rewind below that place (copy_sweep starts at base - PAGE_SIZE), so they use the same 2^24: it
   * is inside their aperture and clear of both MSI windows.
   */
  base: bigint;
  /** GET_HW_INFO type. */
  hwInfoType: string;
  /** GET_HW_INFO DIRTY_TRACKING capability of a device bound with defaults. */
  dirtyTracking: boolean;
  /**
   * Whether the domain's IOPTE format can say "write, no read". Arm stage 1 cannot: its AP bits
   * only say read-only or read/write, so Linux's arm_lpae_prot_to_pte() encodes IOMMU_WRITE alone
   * as read/write (no AP_RDONLY), and a read through a write-only mapping translates.
   */
  writeOnlyIopte: boolean;
}

const APERTURE_48_LAST = (1n << 48n) - 1n;

/** The per-kind geometry table. */
export const GEOMETRY: Record<Kind, KindGeometry> = {
  mock: {
    pageSize: MOCK_PAGE_SIZE,
    hugePageSize: MOCK_HUGE_PAGE_SIZE,
    apertureStart: MOCK_APERTURE_START,
    apertureLast: MOCK_APERTURE_LAST,
    resvRegions: [],
    domainRanges: [{ start: MOCK_APERTURE_START, last: MOCK_APERTURE_LAST }],
    base: MOCK_APERTURE_START,
    hwInfoType: 'selftest',
    dirtyTracking: true,
    writeOnlyIopte: true,
  },
  smmuv3: {
    pageSize: 4096n,
    hugePageSize: 2n << 20n,
    apertureStart: 0n,
    apertureLast: APERTURE_48_LAST,
    // arm-smmu-v3's IOMMU_RESV_SW_MSI window, MSI_IOVA_BASE 0x8000000, 1 MiB.
    resvRegions: [{ start: 0x800_0000n, last: 0x80f_ffffn }],
    domainRanges: [
      { start: 0n, last: 0x7ff_ffffn },
      { start: 0x810_0000n, last: APERTURE_48_LAST },
    ],
    base: 1n << 24n,
    hwInfoType: 'arm-smmuv3',
    dirtyTracking: false,
    writeOnlyIopte: false,
  },
  vtd: {
    pageSize: 4096n,
    hugePageSize: 2n << 20n,
    apertureStart: 0n,
    apertureLast: APERTURE_48_LAST,
    // intel-iommu's IOMMU_RESV_MSI range for the IOAPIC / MSI window.
    resvRegions: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn }],
    domainRanges: [
      { start: 0n, last: 0xfedf_ffffn },
      { start: 0xfef0_0000n, last: APERTURE_48_LAST },
    ],
    base: 1n << 24n,
    hwInfoType: 'intel-vtd',
    dirtyTracking: false,
    // VT-d second-stage entries have separate R and W bits.
    writeOnlyIopte: true,
  },
};

/** `ranges` minus every range of `cut` (both inclusive); the result stays sorted. */
export function carve(ranges: readonly Range[], cut: readonly Range[]): Range[] {
  let out: Range[] = ranges.map((r) => ({ ...r }));
  for (const c of cut) {
    const next: Range[] = [];
    for (const r of out) {
      if (c.last < r.start || c.start > r.last) {
        next.push(r);
        continue;
      }
      if (c.start > r.start) next.push({ start: r.start, last: c.start - 1n });
      if (c.last < r.last) next.push({ start: c.last + 1n, last: r.last });
    }
    out = next;
  }
  return out;
}

/** Whether [start, last] lies inside one of `ranges`. */
export function insideOne(ranges: readonly Range[], start: bigint, last: bigint): boolean {
  return ranges.some((r) => start >= r.start && last <= r.last);
}

/** Opens a fresh iommufd, like `open("/dev/iommu")` in every FIXTURE_SETUP. */
export function openFd(): Fd {
  return Iommufd.open({ memoryBytes: MEMORY_BYTES });
}

/**
 * Asserts that `fn` throws an IommufdError carrying `errno` (the selftest's EXPECT_ERRNO) and
 * returns the error so callers can inspect extra fields. With `entryNum`, the error must be an
 * `InvalidateError` that counts that many entries as handled (HWPT_INVALIDATE's entry_num).
 */
export function expectErrno(fn: () => unknown, errno: string, entryNum?: number): IommufdError {
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
  if (entryNum !== undefined) {
    expect(thrown).toBeInstanceOf(InvalidateError);
    expect((thrown as InvalidateError).entryNum).toBe(entryNum);
  }
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
 * Stand-in for IOMMU_TEST_OP_ADD_RESERVED: binds a device of `kind` whose reserved regions are
 * `regions` (on top of the kind's own MSI window) and attaches it to `ioasId`, which adds them to
 * the IOAS's reserved ranges (along with what lies outside the kind's aperture, if the IOAS had no
 * domain yet; with one, the device joins the fixture's auto HWPT). Returns the device id.
 */
export function addReservedViaDevice(fd: Fd, kind: Kind, ioasId: number, regions: Range[]): number {
  const dev = fd.deviceBind({ iommu: kind, reservedRegions: regions });
  fd.deviceAttach(dev, ioasId);
  return dev;
}
