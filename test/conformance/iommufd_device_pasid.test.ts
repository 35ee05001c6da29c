/**
 * FIXTURE(iommufd_device_pasid) of tools/testing/selftests/iommu/iommufd.c, non-nested part of
 * pasid_attach, for every device kind (helpers.KINDS). As in the selftest, a PASID-capable device
 * (pasidBits 20, the selftest's MOCK_PASID_WIDTH) is attached to the IOAS in both variants;
 * no_pasid adds a device of the same kind without PASID support. The probe IOVA sits at G.base
 * (MOCK_APERTURE_START for mock) + 16 pages.
 *
 * Adaptations:
 * - The selftest's nested HWPTs (nested_hwpt_id[0..1], all PASID-compatible) are replaced by
 *   PASID-compatible paging HWPTs of a second IOAS ("B"); parent_hwpt_id (NEST_PARENT, not
 *   PASID-compatible) and s2_hwpt_id (IOMMU_HWPT_ALLOC_PASID on the fixture IOAS "A") are kept.
 * - IOMMU_TEST_OP_PASID_CHECK_HWPT becomes `domainOf()`: DMA at a probe IOVA that maps a 0xAA page
 *   in A and a 0xBB page in B, tagged with the PASID, tells which IOAS's domain (or none) the
 *   PASID walks.
 * - The designed ENOMEM of pasid 1024 becomes fd.faultInjection.arm(1) before the replace. That
 *   hook of the kernel's mock driver thus becomes the simulator's generic fail-nth, which every
 *   kind goes through, so the step carries over.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Access, TranslateFault } from '../../src/index.js';
import { GEOMETRY, KINDS, MOCK_PASID_WIDTH, PAGE_SIZE, expectErrno, openFd, type Fd } from './helpers.js';

const VARIANTS = [
  { name: 'no_pasid', pasidCapable: false },
  { name: 'has_pasid', pasidCapable: true },
];
describe.each(KINDS)('iommufd_device_pasid %s', (kind) => {
  const PROBE = GEOMETRY[kind].base + 16n * PAGE_SIZE;
  describe.each(VARIANTS)('$name', (variant) => {
    let fd: Fd;
    let ioasA: number;
    let ioasB: number;
    let deviceId: number;
    let noPasidDeviceId: number;

    beforeEach(() => {
      fd = openFd();
      ioasA = fd.ioasAlloc();
      ioasB = fd.ioasAlloc();
      deviceId = fd.deviceBind({ iommu: kind, pasidBits: MOCK_PASID_WIDTH });
      fd.deviceAttach(deviceId, ioasA);
      noPasidDeviceId = 0;
      if (!variant.pasidCapable) {
        noPasidDeviceId = fd.deviceBind({ iommu: kind });
        fd.deviceAttach(noPasidDeviceId, ioasA);
      }
      for (const [ioas, byte] of [
        [ioasA, 0xaa],
        [ioasB, 0xbb],
      ] as const) {
        const va = fd.memory.mmap(PAGE_SIZE);
        fd.memory.write(va, new Uint8Array(Number(PAGE_SIZE)).fill(byte));
        fd.ioasMap(ioas, {
          userVa: va,
          length: PAGE_SIZE,
          iova: PROBE,
          flags: { fixedIova: true, readable: true, writeable: true },
        });
      }
    });

    afterEach(async () => {
      await fd.close();
    });

    /** Which IOAS's domain DMA from `dev` (tagged with `pasid`, if given) walks: 'A', 'B' or 'none'. */
    const domainOf = (pasid?: number, dev = deviceId): 'A' | 'B' | 'none' => {
      const pa =
        pasid === undefined
          ? fd.translate(dev, Number(PROBE), Access.Read)
          : fd.translate(dev, Number(PROBE), Access.Read, pasid);
      if (pa === TranslateFault.NoDomain) return 'none';
      expect(pa).toBeGreaterThanOrEqual(0);
      const opts = pasid === undefined ? {} : { pasid };
      const first = fd.dmaRead(dev, Number(PROBE), 16, opts)[0];
      expect(first === 0xaa || first === 0xbb).toBe(true);
      return first === 0xaa ? 'A' : 'B';
    };

    it('pasid_attach: PASID attach/replace/detach rules for PASID-compatible HWPTs', () => {
      let pasid = 100;
      // Negative, detach pasid without attaching: not expected, but not a failure either.
      fd.deviceDetach(deviceId, { pasid });
      expect(domainOf(pasid)).toBe('none');

      const parent = fd.hwptAlloc({ devId: deviceId, ptId: ioasA, flags: { nestParent: true } });
      const s2 = fd.hwptAlloc({ devId: deviceId, ptId: ioasA, flags: { pasid: true } });
      const nested0 = fd.hwptAlloc({ devId: deviceId, ptId: ioasB, flags: { pasid: true } });
      const nested1 = fd.hwptAlloc({ devId: deviceId, ptId: ioasB, flags: { pasid: true } });

      // Attach RID to non-pasid compat domain, then attach to pasid should fail
      expect(fd.deviceReplace(deviceId, parent)).toBe(parent);
      expectErrno(() => fd.deviceAttach(deviceId, s2, { pasid }), 'EINVAL');
      expect(domainOf(pasid)).toBe('none');

      // Attach RID to pasid compat domain, then attach to pasid should succeed,
      expect(fd.deviceReplace(deviceId, s2)).toBe(s2);
      expect(fd.deviceAttach(deviceId, nested0, { pasid })).toBe(nested0);
      expect(domainOf(pasid)).toBe('B');
      // but attach RID to non-pasid compat domain should fail now (and the RID keeps s2).
      expectErrno(() => fd.deviceReplace(deviceId, parent), 'EINVAL');
      expect(domainOf()).toBe('A');
      fd.deviceDetach(deviceId, { pasid });
      expect(domainOf(pasid)).toBe('none');

      if (!variant.pasidCapable) {
        // PASID-compatible domain can be used by non-PASID-capable device.
        expect(fd.deviceReplace(noPasidDeviceId, nested0)).toBe(nested0);
        fd.deviceReplace(noPasidDeviceId, ioasA);
        // Attaching a PASID of a non-PASID-capable device fails, whatever the HWPT.
        expectErrno(() => fd.deviceAttach(noPasidDeviceId, parent, { pasid }), 'EINVAL');
        expectErrno(() => fd.deviceAttach(noPasidDeviceId, s2, { pasid }), 'EINVAL');
      }

      // Attach non pasid compat hwpt to pasid-capable device: EINVAL, null domain.
      expectErrno(() => fd.deviceAttach(deviceId, parent, { pasid }), 'EINVAL');
      expect(domainOf(pasid)).toBe('none');
      // Attach ioas to pasid: EINVAL, null domain.
      expectErrno(() => fd.deviceAttach(deviceId, ioasA, { pasid }), 'EINVAL');
      expect(domainOf(pasid)).toBe('none');

      // Attach the s2 hwpt: ok; attaching over it is EBUSY (use replace instead).
      expect(fd.deviceAttach(deviceId, s2, { pasid })).toBe(s2);
      expect(domainOf(pasid)).toBe('A');
      expectErrno(() => fd.deviceAttach(deviceId, nested0, { pasid }), 'EBUSY');
      expect(domainOf(pasid)).toBe('A');
      fd.deviceDetach(deviceId, { pasid });
      expect(domainOf(pasid)).toBe('none');

      expect(fd.deviceAttach(deviceId, nested0, { pasid })).toBe(nested0);
      expect(domainOf(pasid)).toBe('B');
      expectErrno(() => fd.deviceAttach(deviceId, nested0, { pasid }), 'EBUSY');
      fd.deviceDetach(deviceId, { pasid });

      // Replace tests
      pasid = 200;
      expectErrno(() => fd.deviceReplace(deviceId, s2, { pasid }), 'EINVAL');
      expect(domainOf(pasid)).toBe('none');
      expect(fd.deviceAttach(deviceId, s2, { pasid })).toBe(s2);
      expect(domainOf(pasid)).toBe('A');
      // Replace with an IOAS fails and keeps the prior s2 hwpt.
      expectErrno(() => fd.deviceReplace(deviceId, ioasA, { pasid }), 'EINVAL');
      expect(domainOf(pasid)).toBe('A');
      expect(fd.deviceReplace(deviceId, nested0, { pasid })).toBe(nested0);
      expect(domainOf(pasid)).toBe('B');
      expect(fd.deviceReplace(deviceId, nested1, { pasid })).toBe(nested1);
      expect(domainOf(pasid)).toBe('B');
      expectErrno(() => fd.destroy(nested1), 'EBUSY');
      fd.deviceDetach(deviceId, { pasid });
      fd.destroy(nested1);

      // Forced replace failure keeps the old domain.
      pasid = 1024;
      expect(fd.deviceAttach(deviceId, s2, { pasid })).toBe(s2);
      fd.faultInjection.arm(1);
      expectErrno(() => fd.deviceReplace(deviceId, nested0, { pasid }), 'ENOMEM');
      expect(fd.faultInjection.fired).toBe(true);
      expect(domainOf(pasid)).toBe('A');
      expectErrno(() => fd.destroy(s2), 'EBUSY');
      // nested0 took no reference from the failed replace.
      fd.deviceDetach(deviceId, { pasid });
      fd.destroy(nested0);

      // Detach the s2_hwpt_id from RID
      fd.deviceReplace(deviceId, ioasA);
      fd.destroy(s2);
      fd.destroy(parent);
    });

    it('pasid_attach: DMA tagged with a PASID walks the PASID domain while untagged DMA walks the RID domain', () => {
      const s2 = fd.hwptAlloc({ devId: deviceId, ptId: ioasA, flags: { pasid: true } });
      const b = fd.hwptAlloc({ devId: deviceId, ptId: ioasB, flags: { pasid: true } });
      fd.deviceReplace(deviceId, s2);
      fd.deviceAttach(deviceId, b, { pasid: 7 });

      expect(domainOf()).toBe('A');
      expect(domainOf(7)).toBe('B');
      expect(domainOf(8)).toBe('none');
      const paRid = fd.translate(deviceId, Number(PROBE), Access.Read);
      const paPasid = fd.translate(deviceId, Number(PROBE), Access.Read, 7);
      expect(paRid).toBeGreaterThanOrEqual(0);
      expect(paPasid).toBeGreaterThanOrEqual(0);
      expect(paPasid).not.toBe(paRid);
      expect(fd.dmaRead(deviceId, Number(PROBE), 4, { pasid: 7 })).toEqual(new Uint8Array([0xbb, 0xbb, 0xbb, 0xbb]));
      expect(fd.dmaRead(deviceId, Number(PROBE), 4)).toEqual(new Uint8Array([0xaa, 0xaa, 0xaa, 0xaa]));

      // Swapping the PASID to the RID's HWPT makes both walk A; detaching leaves the RID alone.
      fd.deviceReplace(deviceId, s2, { pasid: 7 });
      expect(fd.translate(deviceId, Number(PROBE), Access.Read, 7)).toBe(paRid);
      fd.deviceDetach(deviceId, { pasid: 7 });
      expect(domainOf(7)).toBe('none');
      expect(domainOf()).toBe('A');
    });
  });
});
