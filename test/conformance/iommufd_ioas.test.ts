/**
 * FIXTURE(iommufd_ioas) of tools/testing/selftests/iommu/iommufd.c.
 *
 * Runs for every device kind (helpers.KINDS): the variants no_domain, mock_domain (one device of
 * the kind attached to the IOAS plus, as in the selftest, a PASID-capable one) and two_mock_domain
 * keep their selftest names; "mock" in them means "a device of the kind under test". Numbers that
 * depend on the domain come from helpers.GEOMETRY[kind] (G below): G.pageSize for MOCK_PAGE_SIZE
 * as the IOAS alignment, G.base for MOCK_APERTURE_START as a place, G.domainRanges for the usable
 * ranges with a domain. For mock they are the selftest's numbers. mock_domain_limit is not ported
 * (no temporary memory limit in the simulator). The access_* / fork_* / dmabuf_* /
 * alloc_hwpt_nested tests are out of scope here.
 *
 * IOMMU_TEST_OP_ADD_RESERVED does not exist: reserved ranges only come from the reserved regions of
 * a device attached to a paging HWPT of the IOAS (helpers.addReservedViaDevice, a device of the
 * kind under test), and that device's domain also reserves everything outside its aperture, and
 * the device its kind's MSI window. Tests that add a reserved range therefore place it relative
 * to G.base in every variant; in no_domain, the IOAS gains a domain at that point. Each test says
 * how it adapts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BUFFER_SIZE,
  FIXED_RW,
  GEOMETRY,
  KINDS,
  MOCK_APERTURE_LAST,
  MOCK_PAGE_SIZE,
  MOCK_PASID_WIDTH,
  PAGE_SIZE,
  U64_MAX,
  addReservedViaDevice,
  alignedMmap,
  carve,
  expectErrno,
  fillRandom,
  insideOne,
  lowestSetBit,
  mapFixed,
  openFd,
  unmapExact,
  type Fd,
} from './helpers.js';
import { Access, TranslateFault } from '../../src/index.js';

const P = PAGE_SIZE;
const VARIANTS = [
  { name: 'no_domain', mockDomains: 0, pasidCapable: false },
  { name: 'mock_domain', mockDomains: 1, pasidCapable: true },
  { name: 'two_mock_domain', mockDomains: 2, pasidCapable: false },
];

describe.each(KINDS)('iommufd_ioas %s', (kind) => {
  const G = GEOMETRY[kind];
  describe.each(VARIANTS)('$name', (variant) => {
    let fd: Fd;
    let ioasId: number;
    /** The last device attached in setup (self->device_id / stdev_id), 0 when none. */
    let deviceId: number;
    let hwptId: number;
    let devicePasidId: number;
    let baseIova: bigint;
    let buffer: bigint;
    let closed: boolean;

    beforeEach(() => {
      fd = openFd();
      closed = false;
      ioasId = fd.ioasAlloc();
      buffer = alignedMmap(fd, BUFFER_SIZE);
      fillRandom(fd, buffer, Number(BUFFER_SIZE));
      deviceId = 0;
      hwptId = 0;
      devicePasidId = 0;
      baseIova = 0n;
      for (let i = 0; i < variant.mockDomains; i++) {
        deviceId = fd.deviceBind({ iommu: kind });
        hwptId = fd.deviceAttach(deviceId, ioasId);
        baseIova = G.base;
      }
      if (variant.pasidCapable) {
        // The selftest's PASID-capable mock device reports MOCK_PASID_WIDTH; the other kinds get
        // the same width (the PCIe maximum).
        devicePasidId = fd.deviceBind({ iommu: kind, pasidBits: MOCK_PASID_WIDTH });
        fd.deviceAttach(devicePasidId, ioasId);
      }
    });

    afterEach(async () => {
      if (!closed) await fd.close();
    });

    const closeNow = async () => {
      closed = true;
      await expect(fd.close()).resolves.toBeUndefined();
    };

    it('ioas_auto_destroy: closing the fd frees the IOAS and whatever is attached to it', async () => {
      // Extra: one usable range, except that a 48-bit kind's MSI window splits its aperture in two.
      expect(fd.ioasIovaRanges(ioasId).ranges).toHaveLength(deviceId ? G.domainRanges.length : 1);
      await closeNow();
    });

    it('ioas_destroy: an IOAS with an attached device is EBUSY, a bare one can be destroyed', () => {
      if (deviceId) {
        expectErrno(() => fd.destroy(ioasId), 'EBUSY');
      } else {
        fd.destroy(ioasId);
        expectErrno(() => fd.ioasIovaRanges(ioasId), 'ENOENT');
      }
    });

    it('hwpt_attach: a new device can attach directly to an existing HWPT id (no HWPT: ENOENT)', () => {
      const dev = fd.deviceBind({ iommu: kind });
      if (deviceId) expect(fd.deviceAttach(dev, hwptId)).toBe(hwptId);
      else expectErrno(() => fd.deviceAttach(dev, hwptId), 'ENOENT');
    });

    it('ioas_area_destroy: an area does not change whether the IOAS can be destroyed', () => {
      mapFixed(fd, ioasId, buffer, P, baseIova);
      if (deviceId) expectErrno(() => fd.destroy(ioasId), 'EBUSY');
      else fd.destroy(ioasId);
    });

    it('ioas_area_auto_destroy: closing the fd frees an IOAS holding many areas', async () => {
      for (let i = 0n; i < 10n; i++) mapFixed(fd, ioasId, buffer, P, baseIova + i * P);
      await closeNow();
    });

    it('get_hw_info: devices report the type of their kind and their PASID width; a bad dev_id is ENOENT', () => {
      if (deviceId) {
        const info = fd.getHwInfo(deviceId);
        expect(info.type).toBe(G.hwInfoType);
        expect(info.maxPasidLog2).toBe(0);
        // Extra: the default dirty-tracking capability of the kind (mock: on, as the kernel's mock).
        expect(info.capabilities.dirtyTracking).toBe(G.dirtyTracking);
        if (variant.pasidCapable) expect(fd.getHwInfo(devicePasidId).maxPasidLog2).toBe(MOCK_PASID_WIDTH);
      } else {
        expectErrno(() => fd.getHwInfo(deviceId), 'ENOENT');
      }
      // An id of the wrong type is ENOENT too (iommufd_get_object type mismatch).
      expectErrno(() => fd.getHwInfo(ioasId), 'ENOENT');
    });

    it('area: unmap of nothing is ENOENT, areas cannot be split or overlapped (EEXIST), unmap-all works twice', () => {
      for (let i = 0n; i < 10n; i++) expectErrno(() => fd.ioasUnmap(ioasId, i * P, P), 'ENOENT');

      for (let i = 0n; i < 10n; i++) mapFixed(fd, ioasId, buffer, P, baseIova + i * P);
      for (let i = 0n; i < 10n; i++) unmapExact(fd, ioasId, baseIova + i * P, P);

      // Split fails
      mapFixed(fd, ioasId, buffer, P * 2n, baseIova + 16n * P);
      expectErrno(() => fd.ioasUnmap(ioasId, baseIova + 16n * P, P), 'ENOENT');
      expectErrno(() => fd.ioasUnmap(ioasId, baseIova + 17n * P, P), 'ENOENT');

      // Over map fails
      const over = (len: bigint, at: bigint) =>
        expectErrno(() => fd.ioasMap(ioasId, { userVa: buffer, length: len, iova: at, flags: FIXED_RW }), 'EEXIST');
      over(P * 2n, baseIova + 16n * P);
      over(P, baseIova + 16n * P);
      over(P, baseIova + 17n * P);
      over(P * 2n, baseIova + 15n * P);
      over(P * 3n, baseIova + 15n * P);

      // unmap all works, and succeeds (with 0 bytes) on an empty IOAS
      expect(fd.ioasUnmap(ioasId, 0n, U64_MAX)).toBe(2n * P);
      expect(fd.ioasUnmap(ioasId, 0n, U64_MAX)).toBe(0n);
    });

    it('unmap_fully_contained_areas: a range clipping an area is ENOENT, one enclosing areas and gaps removes them', () => {
      const base = baseIova + 4n * P; // give no_domain some space to rewind base_iova
      for (let i = 0n; i < 4n; i++) mapFixed(fd, ioasId, buffer, 8n * P, base + i * 16n * P);

      expectErrno(() => fd.ioasUnmap(ioasId, base - 4n * P, 8n * P), 'ENOENT');
      expectErrno(() => fd.ioasUnmap(ioasId, base + 3n * 16n * P + 8n * P - 4n * P, 8n * P), 'ENOENT');

      expect(fd.ioasUnmap(ioasId, base - 4n * P, 3n * 16n * P + 8n * P + 4n * P)).toBe(32n * P);
    });

    it('area_auto_iova: auto IOVAs are aligned to the lowest set bit of the length, avoid reserved ranges and stay in the allowed range', () => {
      let iovas: bigint[] = [];
      // Simple 4k pages
      for (let i = 0; i < 10; i++) iovas.push(fd.ioasMap(ioasId, { userVa: buffer, length: P }));
      for (const iova of iovas) unmapExact(fd, ioasId, iova, P);

      // Kernel automatically aligns IOVAs properly (no_domain maps the never-pinned VA 1 << 31).
      const lengths = Array.from({ length: 10 }, (_, i) => P * BigInt(i + 1));
      const userVa = deviceId ? buffer : 1n << 31n;
      iovas = lengths.map((length) => fd.ioasMap(ioasId, { userVa, length }));
      lengths.forEach((length, i) => expect(iovas[i]! % lowestSetBit(length)).toBe(0n));
      lengths.forEach((length, i) => unmapExact(fd, ioasId, iovas[i]!, length));

      // Avoids a reserved region. Adapted: the selftest reserves [4P, 104P), which the mock
      // domain's aperture already covers; here it sits at the same offset from G.base.
      const base = G.base;
      const resv = { start: base + 4n * P, last: base + 104n * P - 1n };
      addReservedViaDevice(fd, kind, ioasId, [resv]);
      iovas = lengths.map((length) => fd.ioasMap(ioasId, { userVa: buffer, length }));
      lengths.forEach((length, i) => {
        const iova = iovas[i]!;
        expect(iova % lowestSetBit(length)).toBe(0n);
        expect(iova + length - 1n < resv.start || iova > resv.last).toBe(true);
        // Inside the aperture and outside the kind's MSI window (mock: [MOCK_APERTURE_START, MOCK_APERTURE_LAST]).
        expect(insideOne(G.domainRanges, iova, iova + length - 1n)).toBe(true);
      });
      lengths.forEach((length, i) => unmapExact(fd, ioasId, iovas[i]!, length));

      // Allowed region intersects with a reserved region
      expectErrno(() => fd.ioasAllowIovas(ioasId, [{ start: base + P, last: base + 600n * P }]), 'EADDRINUSE');

      // Allocate from an allowed region (the selftest's no_domain range [200P, 600P), moved into the aperture)
      const allowed = { start: base + 200n * P, last: base + 600n * P - 1n };
      fd.ioasAllowIovas(ioasId, [allowed]);
      iovas = lengths.map((length) => fd.ioasMap(ioasId, { userVa: buffer, length }));
      lengths.forEach((length, i) => {
        const iova = iovas[i]!;
        expect(iova % lowestSetBit(length)).toBe(0n);
        expect(iova >= allowed.start && iova + length <= allowed.last + 1n).toBe(true);
      });
      lengths.forEach((length, i) => unmapExact(fd, ioasId, iovas[i]!, length));
    });

    it('reserved_overflow: auto IOVA is ENOSPC when no aligned hole remains, without wrapping past 2^64', () => {
      if (!deviceId) {
        // Adapted (no_domain only, where nothing hides the top of the space): the selftest's
        // stimulus leaves the hole [0xffffffffffff8007, ULONG_MAX]; an allowed range there makes
        // the allocator ALIGN_UP(0xffffffffffff8007, 0x8000), which overflows.
        fd.ioasAllowIovas(ioasId, [{ start: 0xffffffffffff8007n, last: U64_MAX }]);
        expectErrno(() => fd.ioasMap(ioasId, { userVa: buffer, length: 0x5000n }), 'ENOSPC');
        fd.ioasAllowIovas(ioasId, []);
      }
      // The selftest's reserved range [6, 6 + 0xffffffffffff8001), via a device (adds the aperture too).
      addReservedViaDevice(fd, kind, ioasId, [{ start: 6n, last: 6n + 0xffffffffffff8001n - 1n }]);
      expectErrno(() => fd.ioasMap(ioasId, { userVa: buffer, length: 0x5000n }), 'ENOSPC');
    });

    it('area_allowed: a reservation inside an allowed range is EADDRINUSE, and so is an allowed range over a reservation', () => {
      // Adapted: base is G.base in every variant (the selftest's no_domain uses 0, which the mock
      // reserving device's aperture would cover), and the reservation is a device's reserved
      // region, so "add reserved" fails as the device attach.
      const base = G.base;
      const allowed = { start: base, last: base + 600n * P };
      const resv = { start: base + P, last: base + 2n * P - 1n };
      const before = fd.ioasIovaRanges(ioasId);

      fd.ioasAllowIovas(ioasId, [allowed]);
      const dev = fd.deviceBind({ iommu: kind, reservedRegions: [resv] });
      expectErrno(() => fd.deviceAttach(dev, ioasId), 'EADDRINUSE');
      // The failed attach leaves nothing behind (no reservation, no aperture, no MSI window).
      expect(fd.ioasIovaRanges(ioasId)).toEqual(before);
      fd.ioasAllowIovas(ioasId, []);

      fd.deviceAttach(dev, ioasId);
      expectErrno(() => fd.ioasAllowIovas(ioasId, [allowed]), 'EADDRINUSE');
    });

    it('copy_area: IOAS_COPY works inside one IOAS and into a new IOAS', () => {
      mapFixed(fd, ioasId, buffer, P, baseIova);
      const flags = { fixedIova: true, readable: false, writeable: true }; // FIXED_IOVA | WRITEABLE
      // Copy inside a single IOAS
      expect(
        fd.ioasCopy({
          dstIoasId: ioasId,
          srcIoasId: ioasId,
          srcIova: baseIova,
          length: P,
          dstIova: baseIova + P,
          flags,
        }),
      ).toBe(baseIova + P);
      if (deviceId) {
        // Extra: the copy shares the source's pages, with its own (write-only) permission.
        const pa = fd.translate(deviceId, Number(baseIova), Access.Write);
        expect(pa).toBeGreaterThanOrEqual(0);
        expect(fd.translate(deviceId, Number(baseIova + P), Access.Write)).toBe(pa);
        // smmuv3 (Arm stage 1) has no write-only IOPTE: Linux maps WRITEABLE alone as read/write.
        expect(fd.translate(deviceId, Number(baseIova + P), Access.Read)).toBe(
          G.writeOnlyIopte ? TranslateFault.Permission : pa,
        );
      }
      // Copy between IOAS's
      const dst = fd.ioasAlloc();
      expect(fd.ioasCopy({ dstIoasId: dst, srcIoasId: ioasId, srcIova: baseIova, length: P, dstIova: 0n, flags })).toBe(
        0n,
      );
    });

    it('iova_ranges: full space (align 1) or the aperture minus MSI windows (align: smallest page); EMSGSIZE reports the count; a reservation splits the range', () => {
      let r = fd.ioasIovaRanges(ioasId);
      if (!deviceId) {
        expect(r.ranges).toEqual([{ start: 0n, last: U64_MAX }]);
        expect(r.alignment).toBe(1n);
      } else {
        // The holes of the reserved tree: outside the aperture, and the kind's MSI window
        // (mock: [MOCK_APERTURE_START, MOCK_APERTURE_LAST], alignment MOCK_PAGE_SIZE).
        expect(r.ranges).toEqual(G.domainRanges);
        expect(r.alignment).toBe(G.pageSize);
      }
      const count = deviceId ? G.domainRanges.length : 1;

      // Buffer too small: the count comes back, nothing is written. (The selftest's capacity 0
      // against one range; the 48-bit kinds already have two with a domain, the MSI window
      // splitting the aperture.)
      let err = expectErrno(() => fd.ioasIovaRanges(ioasId, 0), 'EMSGSIZE') as unknown as EmsgsizeError;
      expect(Number(err.numIovas)).toBe(count);
      expect(err.ranges).toEqual([]);

      // 2 ranges. Adapted: the selftest reserves [P, 2P), which only splits no_domain's range;
      // here that region (swallowed by the mock aperture) plus the same page after G.base.
      const base = G.base;
      const resv = [
        { start: P, last: 2n * P - 1n },
        { start: base + P, last: base + 2n * P - 1n },
      ];
      addReservedViaDevice(fd, kind, ioasId, resv);
      const want = carve(G.domainRanges, resv);
      if (kind === 'mock') {
        // mock only: the selftest's literal numbers, which are the mock aperture's.
        const two = [
          { start: base, last: base + P - 1n },
          { start: base + 2n * P, last: MOCK_APERTURE_LAST },
        ];
        expect(want).toEqual(two);
      }
      r = fd.ioasIovaRanges(ioasId);
      expect(r.ranges).toEqual(want);
      expect(r.alignment).toBe(G.pageSize);

      // Buffer too small: the first range is written, the others are not
      err = expectErrno(() => fd.ioasIovaRanges(ioasId, 1), 'EMSGSIZE') as unknown as EmsgsizeError;
      expect(Number(err.numIovas)).toBe(want.length);
      expect(err.ranges).toEqual([want[0]]);
    });

    it('ioas_option_huge_pages: HUGE_PAGES reads 1, set 0 reads 0, set 2 is EINVAL, set 1 works', () => {
      const opt = (op: 'get' | 'set', val?: bigint) =>
        fd.option({ option: 'huge-pages', op, objectId: ioasId, ...(val === undefined ? {} : { val }) });
      expect(opt('get')).toBe(1n);
      opt('set', 0n);
      expect(opt('get')).toBe(0n);
      expectErrno(() => opt('set', 2n), 'EINVAL');
      opt('set', 1n);
      expect(opt('get')).toBe(1n);
    });

    it('ioas_iova_alloc: every length 1..2*PAGE_SIZE-1 auto-maps without a domain; with one, lengths not a multiple of its smallest page are EINVAL', () => {
      // Mock: MOCK_PAGE_SIZE (2048, 4096 and 6144 map); 4 KiB kinds: only 4096 maps.
      for (let length = 1n; length !== P * 2n; length++) {
        if (variant.mockDomains && length % G.pageSize) {
          expectErrno(() => fd.ioasMap(ioasId, { userVa: buffer, length }), 'EINVAL');
        } else {
          const iova = fd.ioasMap(ioasId, { userVa: buffer, length });
          unmapExact(fd, ioasId, iova, length);
        }
      }
    });

    it('ioas_align_change: HUGE_PAGES=0 makes sub-page maps EINVAL and fails with EADDRINUSE over a misaligned area', () => {
      const setHuge = (val: bigint) => fd.option({ option: 'huge-pages', op: 'set', objectId: ioasId, val });
      const A = G.base;
      mapFixed(fd, ioasId, buffer, P, A);
      if (variant.mockDomains) {
        // The selftest returns here; the rule it cites (iopt_disable_large_pages): a domain plus an area is EINVAL.
        expectErrno(() => setHuge(0n), 'EINVAL');
        return;
      }
      // We can upgrade to PAGE_SIZE alignment when things are aligned right
      setHuge(0n);
      expect(fd.ioasIovaRanges(ioasId).alignment).toBe(P);
      // Misalignment is rejected at map time (MOCK_PAGE_SIZE here is just half a host page: there
      // is no domain, so the kind plays no part below)
      expectErrno(
        () => fd.ioasMap(ioasId, { userVa: buffer + MOCK_PAGE_SIZE, length: P, iova: A + P, flags: FIXED_RW }),
        'EINVAL',
      );
      setHuge(0n);
      // Reduce alignment
      setHuge(1n);
      // Confirm misalignment is rejected during alignment upgrade
      mapFixed(fd, ioasId, buffer + MOCK_PAGE_SIZE, P, A + P);
      expectErrno(() => setHuge(0n), 'EADDRINUSE');
      unmapExact(fd, ioasId, A + P, P);
      unmapExact(fd, ioasId, A, P);
    });

    it('copy_sweep: COPY of every page-sized window (stride 511) is ok inside the mapping and ENOENT if any byte is outside', () => {
      const dst = fd.ioasAlloc();
      const A = G.base;
      // The selftest's window is MOCK_PAGE_SIZE; G.pageSize for the other kinds. Same stride 511
      // (137 windows with 4 KiB, 120 of them inside; the test asks for more than 100).
      const len = G.pageSize;
      const lastIova = variant.mockDomains ? A + BUFFER_SIZE - 1n : A + BUFFER_SIZE - 2n;
      mapFixed(fd, ioasId, buffer, lastIova - A + 1n, A);
      let ok = 0;
      for (let iova = A - P; iova <= lastIova; iova += 511n) {
        const copy = () =>
          fd.ioasCopy({
            dstIoasId: dst,
            srcIoasId: ioasId,
            srcIova: iova,
            length: len,
            dstIova: A,
            flags: { fixedIova: true, readable: false, writeable: true },
          });
        if (iova < A || iova + len - 1n > lastIova) {
          expectErrno(copy, 'ENOENT');
        } else {
          expect(copy()).toBe(A);
          unmapExact(fd, dst, A, len);
          ok++;
        }
      }
      expect(ok).toBeGreaterThan(100);
      fd.destroy(dst);
    });
  });
});

interface EmsgsizeError {
  numIovas: number | bigint;
  ranges: { start: bigint; last: bigint }[];
}
