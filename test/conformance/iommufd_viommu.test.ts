import { describe, expect, it } from 'vitest';
import { Iommufd } from '../../src/index.js';
import { expectErrno } from './helpers.js';

/*
 * vIOMMU and vDEVICE objects (reference/iommufd.md §2 IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC,
 * HWPT_ALLOC with pt_id = VIOMMU; §3 "ARM SMMUv3" vSTE rules; §5 FIXTURE(iommufd_viommu)): the
 * errno rules in the kernel's order, the references (EBUSY), the tombstone a device's unbind
 * leaves, and the SMMUv3 vSTE validation. Translation through a vSTE and vIOMMU invalidation are
 * tested in iommufd_viommu_smmu.test.ts.
 */

type Fd = ReturnType<typeof Iommufd.open>;

/** The vIOMMU types and the device kinds whose drivers offer them. */
const TYPES = [
  { kind: 'smmuv3', type: 'arm-smmuv3' },
  { kind: 'mock', type: 'selftest' },
] as const;

/** The selftest's mock_viommu fixture: device, IOAS, nest parent, vIOMMU. */
function setup(kind: 'smmuv3' | 'mock', type: 'arm-smmuv3' | 'selftest') {
  const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
  const dev = fd.deviceBind({ iommu: kind });
  const ioas = fd.ioasAlloc();
  const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
  const viommu = fd.viommuAlloc({ devId: dev, hwptId: parent, type });
  return { fd, dev, ioas, parent, viommu };
}

/** The id the next allocation gets: failures must not have consumed one. */
function nextId(fd: Fd): number {
  const id = fd.ioasAlloc();
  fd.destroy(id);
  return id;
}

// vSTE words (struct iommu_hwpt_arm_smmuv3, little-endian ste[0], ste[1]).
const V = 1n;
const cfg = (c: number): bigint => BigInt(c) << 1n;
const CFG_ABORT = 0;
const CFG_BYPASS = 4;
const CFG_S1_TRANS = 5;
const eats = (e: number): bigint => BigInt(e) << 28n;
const CD_TABLE = 0x12_3440n; // a guest-physical CD table address (bits 51:6)
const S1_TRANS_STE0 = V | cfg(CFG_S1_TRANS) | (1n << 4n) | CD_TABLE | (3n << 59n);

/** Selftest data for the mock's nested HWPTs. */
const IOTLB_DEFAULT = 0xbadbeef;

function vste(fd: Fd, dev: number, viommu: number, ste: [bigint, bigint]): number {
  return fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: 'arm-smmuv3', data: { ste } });
}

function nestedOn(fd: Fd, type: 'arm-smmuv3' | 'selftest', dev: number, viommu: number): number {
  return type === 'arm-smmuv3'
    ? vste(fd, dev, viommu, [S1_TRANS_STE0, 0n])
    : fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: 'selftest', data: { iotlb: IOTLB_DEFAULT } });
}

describe.each(TYPES)('FIXTURE(iommufd_viommu) $type on $kind', ({ kind, type }) => {
  it('viommu_negative_tests: flags, type, device, HWPT (EOPNOTSUPP, ENOENT, EINVAL) in the kernel order', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const dev = fd.deviceBind({ iommu: kind });
    const ioas = fd.ioasAlloc();
    const paging = fd.hwptAlloc({ devId: dev, ptId: ioas });
    const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
    const before = fd.snapshot();
    const id = nextId(fd);
    // Flags (none are defined) and the DEFAULT / unknown type come first: EOPNOTSUPP.
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: parent, type, flags: { x: true } as never }), 'EOPNOTSUPP');
    expectErrno(() => fd.viommuAlloc({ devId: 999, hwptId: 999, type, flags: { x: true } as never }), 'EOPNOTSUPP');
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: parent, type: 'default' as never }), 'EOPNOTSUPP');
    expectErrno(() => fd.viommuAlloc({ devId: 999, hwptId: parent, type: 'default' as never }), 'EOPNOTSUPP');
    // Then the device (ENOENT), before the HWPT.
    expectErrno(() => fd.viommuAlloc({ devId: 999, hwptId: 0, type }), 'ENOENT');
    expectErrno(() => fd.viommuAlloc({ devId: ioas, hwptId: parent, type }), 'ENOENT');
    // The HWPT must be a paging HWPT (ENOENT: hwpt 0, an IOAS, a device) that is a nest parent (EINVAL).
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: 0, type }), 'ENOENT');
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: ioas, type }), 'ENOENT');
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: dev, type }), 'ENOENT');
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: paging, type }), 'EINVAL');
    expect(fd.snapshot()).toEqual(before);
    expect(nextId(fd)).toBe(id);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('viommu_negative_tests: a type the driver lacks is EOPNOTSUPP, before the HWPT is looked at', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const dev = fd.deviceBind({ iommu: kind });
    const vtd = fd.deviceBind({ iommu: 'vtd' });
    const ioas = fd.ioasAlloc();
    const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
    const other = type === 'arm-smmuv3' ? 'selftest' : 'arm-smmuv3';
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: parent, type: other }), 'EOPNOTSUPP');
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: 0, type: other }), 'EOPNOTSUPP');
    // VT-d has no vIOMMU at all.
    const vtdParent = fd.hwptAlloc({ devId: vtd, ptId: ioas, flags: { nestParent: true } });
    expectErrno(() => fd.viommuAlloc({ devId: vtd, hwptId: vtdParent, type }), 'EOPNOTSUPP');
    // A nest parent of another driver: EINVAL.
    expectErrno(() => fd.viommuAlloc({ devId: dev, hwptId: vtdParent, type }), 'EINVAL');
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('viommu_auto_destroy, and the vIOMMU holds its parent (EBUSY) until it is destroyed', () => {
    const { fd, parent, viommu, ioas } = setup(kind, type);
    expect(fd.viommuInfo(viommu)).toEqual({ type, hwptId: parent, vmid: 1, vdevices: [] });
    expectErrno(() => fd.destroy(parent), 'EBUSY');
    expectErrno(() => fd.destroy(ioas), 'EBUSY');
    fd.destroy(viommu);
    expectErrno(() => fd.destroy(viommu), 'ENOENT');
    expectErrno(() => fd.viommuInfo(viommu), 'ENOENT');
    fd.destroy(parent);
    fd.destroy(ioas);
    // viommu_auto_destroy: close with everything still allocated.
    const s = setup(kind, type);
    void s.fd.close();
    expect(s.fd.framesInUse()).toBe(0);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('each vIOMMU gets a VMID no other live vIOMMU has; a freed one is reused', () => {
    const { fd, dev, parent, viommu } = setup(kind, type);
    const b = fd.viommuAlloc({ devId: dev, hwptId: parent, type });
    const c = fd.viommuAlloc({ devId: dev, hwptId: parent, type });
    expect([viommu, b, c].map((v) => fd.viommuInfo(v).vmid)).toEqual([1, 2, 3]);
    fd.destroy(b);
    const d = fd.viommuAlloc({ devId: dev, hwptId: parent, type });
    expect(fd.viommuInfo(d).vmid).toBe(2);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('vdevice_alloc: errno rules in the kernel order (EINVAL virtId, ENOENT, EINVAL, EEXIST)', () => {
    const { fd, dev, viommu, ioas } = setup(kind, type);
    const dev2 = fd.deviceBind({ iommu: kind });
    const vtd = fd.deviceBind({ iommu: 'vtd' });
    const before = fd.snapshot();
    const id = nextId(fd);
    // virtId must be a u64: checked before any lookup.
    for (const bad of [-1, 1.5, 2 ** 53, -1n, 2n ** 64n, '1', undefined]) {
      expectErrno(() => fd.vdeviceAlloc({ viommuId: 999, devId: 999, virtId: bad as never }), 'EINVAL');
    }
    // The vIOMMU, then the device: ENOENT (unknown ids, or objects of another type).
    expectErrno(() => fd.vdeviceAlloc({ viommuId: 999, devId: 999, virtId: 1n }), 'ENOENT');
    expectErrno(() => fd.vdeviceAlloc({ viommuId: ioas, devId: dev, virtId: 1n }), 'ENOENT');
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu, devId: 999, virtId: 1n }), 'ENOENT');
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu, devId: viommu, virtId: 1n }), 'ENOENT');
    // A device behind another IOMMU: EINVAL.
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu, devId: vtd, virtId: 1n }), 'EINVAL');
    expect(fd.snapshot()).toEqual(before);
    expect(nextId(fd)).toBe(id);

    const vdev = fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 0x10n });
    expect(vdev).toBe(id);
    // The device has one already: EEXIST (before the virtId is looked at).
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 0x20n }), 'EEXIST');
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 0x10n }), 'EEXIST');
    // The virtual ID is taken on this vIOMMU: EEXIST, and the reserved id is given back.
    const mid = fd.snapshot();
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu, devId: dev2, virtId: 0x10n }), 'EEXIST');
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu, devId: dev2, virtId: 16 }), 'EEXIST');
    expect(fd.snapshot()).toEqual(mid);
    expect(nextId(fd)).toBe(vdev + 1);
    // A number and a bigint name the same ID; the full u64 range is allowed.
    const vdev2 = fd.vdeviceAlloc({ viommuId: viommu, devId: dev2, virtId: 2n ** 64n - 1n });
    expect(fd.viommuVsidToDevice(viommu, 16)).toBe(dev);
    expect(fd.viommuVsidToDevice(viommu, 0x10n)).toBe(dev);
    expect(fd.viommuVsidToDevice(viommu, 2n ** 64n - 1n)).toBe(dev2);
    expectErrno(() => fd.viommuVsidToDevice(viommu, 0x11n), 'ENOENT');
    expectErrno(() => fd.viommuVsidToDevice(999, 0x10n), 'ENOENT');
    expectErrno(() => fd.viommuVsidToDevice(viommu, -1), 'EINVAL');
    expect(fd.viommuInfo(viommu).vdevices).toEqual([
      { vdeviceId: vdev, devId: dev, virtId: 0x10n },
      { vdeviceId: vdev2, devId: dev2, virtId: 2n ** 64n - 1n },
    ]);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('vdevice_alloc: the same virtual ID may be used on another vIOMMU; a device has one vDEVICE in all', () => {
    const { fd, dev, parent, viommu } = setup(kind, type);
    const dev2 = fd.deviceBind({ iommu: kind });
    const viommu2 = fd.viommuAlloc({ devId: dev, hwptId: parent, type });
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 5n });
    fd.vdeviceAlloc({ viommuId: viommu2, devId: dev2, virtId: 5n });
    expectErrno(() => fd.vdeviceAlloc({ viommuId: viommu2, devId: dev, virtId: 6n }), 'EEXIST');
    expect(fd.viommuVsidToDevice(viommu, 5n)).toBe(dev);
    expect(fd.viommuVsidToDevice(viommu2, 5n)).toBe(dev2);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('a vDEVICE holds its vIOMMU (EBUSY); destroying it frees the virtual ID and the device', () => {
    const { fd, dev, parent, viommu } = setup(kind, type);
    const vdev = fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 3n });
    expectErrno(() => fd.destroy(viommu), 'EBUSY');
    expectErrno(() => fd.destroy(parent), 'EBUSY');
    // The device is still the driver's: EBUSY as always.
    expectErrno(() => fd.destroy(dev), 'EBUSY');
    fd.destroy(vdev);
    expectErrno(() => fd.destroy(vdev), 'ENOENT');
    expectErrno(() => fd.viommuVsidToDevice(viommu, 3n), 'ENOENT');
    // Both the device and the virtual ID can be used again.
    const again = fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 3n });
    expect(again).toBe(vdev);
    fd.destroy(again);
    fd.destroy(viommu);
    fd.destroy(parent);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('vdevice_tombstone: unbinding the device destroys its vDEVICE; the id stays ENOENT and is not reused', () => {
    const { fd, dev, viommu } = setup(kind, type);
    const vdev = fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 7n });
    fd.deviceUnbind(dev);
    expectErrno(() => fd.destroy(vdev), 'ENOENT');
    expectErrno(() => fd.viommuVsidToDevice(viommu, 7n), 'ENOENT');
    expect(fd.viommuInfo(viommu).vdevices).toEqual([]);
    // The tombstone keeps its id: the device's id is reused first-fit, the vDEVICE's is skipped.
    // (ids: dev 1, IOAS 2, parent 3, vIOMMU 4, vDEVICE 5)
    expect(fd.ioasAlloc()).toBe(dev);
    expect(fd.ioasAlloc()).toBe(vdev + 1);
    // The virtual ID is free for another device.
    const dev2 = fd.deviceBind({ iommu: kind });
    const vdev2 = fd.vdeviceAlloc({ viommuId: viommu, devId: dev2, virtId: 7n });
    expect(vdev2).toBeGreaterThan(vdev);
    expect(fd.viommuVsidToDevice(viommu, 7n)).toBe(dev2);
    fd.destroy(vdev2);
    // The vIOMMU's reference went with the vDEVICE.
    fd.destroy(viommu);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
    expectErrno(() => fd.viommuInfo(viommu), 'EBADF');
  });

  it('HWPT_ALLOC on a vIOMMU: the nested HWPT holds the vIOMMU (EBUSY), not the parent directly', () => {
    const { fd, dev, parent, viommu, ioas } = setup(kind, type);
    const n = nestedOn(fd, type, dev, viommu);
    const snap = fd.snapshot() as { objects: { id: number; users: number; viommu?: number; parent?: number }[] };
    const byId = (id: number) => snap.objects.find((o) => o.id === id)!;
    expect(byId(parent).users).toBe(2); // the table and the vIOMMU
    expect(byId(viommu).users).toBe(2); // the table and the nested HWPT
    expect(byId(n)).toMatchObject({ parent, viommu, users: 1 });
    expectErrno(() => fd.destroy(viommu), 'EBUSY');
    expectErrno(() => fd.destroy(parent), 'EBUSY');
    expectErrno(() => fd.destroy(ioas), 'EBUSY');
    fd.destroy(n);
    fd.destroy(viommu);
    fd.destroy(parent);
    fd.destroy(ioas);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('HWPT_ALLOC on a vIOMMU: flags, data and device rules (EOPNOTSUPP, EINVAL, ENOENT)', () => {
    const { fd, dev, viommu } = setup(kind, type);
    const vtd = fd.deviceBind({ iommu: 'vtd' });
    const data = type === 'arm-smmuv3' ? { ste: [S1_TRANS_STE0, 0n] } : { iotlb: 1 };
    const before = fd.snapshot();
    const id = nextId(fd);
    // A device behind another IOMMU: EINVAL, before the flags.
    expectErrno(
      () => fd.hwptAlloc({ devId: vtd, ptId: viommu, flags: { nestParent: true }, dataType: type, data }),
      'EINVAL',
    );
    expectErrno(
      () => fd.hwptAlloc({ devId: dev, ptId: viommu, flags: { nestParent: true }, dataType: type, data }),
      'EOPNOTSUPP',
    );
    expectErrno(
      () => fd.hwptAlloc({ devId: dev, ptId: viommu, flags: { dirtyTracking: true }, dataType: type, data }),
      'EOPNOTSUPP',
    );
    // No data at all: EOPNOTSUPP; data without a type: EINVAL.
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: viommu }), 'EOPNOTSUPP');
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: viommu, data }), 'EINVAL');
    // Another driver's data type: EINVAL (iommu_copy_struct_from_user's type check).
    const wrong = type === 'arm-smmuv3' ? 'selftest' : 'arm-smmuv3';
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: wrong, data }), 'EINVAL');
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: 'vtd-s1', data }), 'EINVAL');
    // A fault queue id that names no FAULT object: ENOENT, after the driver accepted the data.
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: type, data, faultId: 77 }), 'ENOENT');
    expect(fd.snapshot()).toEqual(before);
    expect(nextId(fd)).toBe(id);
    // Nested on a nested HWPT that was built on a vIOMMU: EINVAL.
    const n = fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: type, data });
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: n, dataType: type, data }), 'EINVAL');
    // The PASID flag: the SMMUv3 driver takes no flags (EOPNOTSUPP); the mock takes it.
    if (type === 'arm-smmuv3') {
      expectErrno(
        () => fd.hwptAlloc({ devId: dev, ptId: viommu, flags: { pasid: true }, dataType: type, data }),
        'EOPNOTSUPP',
      );
    } else {
      fd.hwptAlloc({ devId: dev, ptId: viommu, flags: { pasid: true }, dataType: type, data });
    }
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('viommu_alloc_nested_iopf (attach part): no vDEVICE on that vIOMMU is ENOENT; with one, a vSTE attaches (the mock nested HWPT: EOPNOTSUPP)', () => {
    const { fd, dev, parent, viommu, ioas } = setup(kind, type);
    const n = nestedOn(fd, type, dev, viommu);
    const before = fd.snapshot();
    expectErrno(() => fd.deviceAttach(dev, n), 'ENOENT');
    // A vDEVICE on another vIOMMU does not count.
    const viommu2 = fd.viommuAlloc({ devId: dev, hwptId: parent, type });
    const other = fd.vdeviceAlloc({ viommuId: viommu2, devId: dev, virtId: 1n });
    expectErrno(() => fd.deviceAttach(dev, n), 'ENOENT');
    fd.destroy(other);
    fd.destroy(viommu2);
    expect(fd.snapshot()).toEqual(before);
    // With a vDEVICE the attach gets past the check: a vSTE attaches (and is then busy); the
    // mock's nested HWPTs are not attachable (EOPNOTSUPP).
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 1n });
    const withVdev = fd.snapshot();
    if (type === 'arm-smmuv3') {
      expect(fd.deviceAttach(dev, n)).toBe(n);
      expectErrno(() => fd.destroy(n), 'EBUSY');
      fd.deviceDetach(dev);
    } else {
      expectErrno(() => fd.deviceAttach(dev, n), 'EOPNOTSUPP');
    }
    expect(fd.snapshot()).toEqual(withVdev);
    // Replace from the IOAS: the same order, and the old attachment stays.
    const old = fd.deviceAttach(dev, ioas);
    const dev2 = fd.deviceBind({ iommu: kind });
    fd.deviceAttach(dev2, old);
    expectErrno(() => fd.deviceReplace(dev2, n), 'ENOENT');
    if (type === 'arm-smmuv3') expect(fd.deviceReplace(dev, n)).toBe(n);
    else expectErrno(() => fd.deviceReplace(dev, n), 'EOPNOTSUPP');
    expect((fd.snapshot() as { objects: { id: number; rid?: number }[] }).objects.find((o) => o.id === dev)!.rid).toBe(
      type === 'arm-smmuv3' ? n : old,
    );
    // A device of another driver: EINVAL (the core's check, first).
    const vtd = fd.deviceBind({ iommu: 'vtd' });
    expectErrno(() => fd.deviceAttach(vtd, n), 'EINVAL');
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('fail_nth: every fallible step of vIOMMU, vDEVICE and nested allocation fails all-or-nothing', () => {
    for (let nth = 1; ; nth++) {
      const { fd, dev, viommu } = setup(kind, type);
      const dev2 = fd.deviceBind({ iommu: kind });
      const steps: (() => unknown)[] = [
        () => fd.viommuAlloc({ devId: dev, hwptId: fd.viommuInfo(viommu).hwptId, type }),
        () => fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 1n }),
        () => fd.vdeviceAlloc({ viommuId: viommu, devId: dev2, virtId: 2n }),
        () => nestedOn(fd, type, dev, viommu),
      ];
      fd.faultInjection.arm(nth);
      let failed = false;
      for (const step of steps) {
        const before = fd.snapshot();
        try {
          step();
        } catch (e) {
          expect(e).toMatchObject({ errno: 'ENOMEM' });
          expect(fd.snapshot()).toEqual(before);
          failed = true;
          break;
        }
      }
      const fired = fd.faultInjection.fired;
      expect(failed).toBe(fired);
      void fd.close();
      expect(fd.framesInUse()).toBe(0);
      if (!fired) break;
    }
  });

  it('fd.close() with vIOMMU, vDEVICEs, nested HWPTs and attached devices frees everything', () => {
    const { fd, dev, viommu, ioas } = setup(kind, type);
    const va = fd.memory.mmap(1n << 20n);
    fd.ioasMap(ioas, { userVa: va, length: 1n << 20n, iova: 1n << 24n, flags: { fixedIova: true } });
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 1n });
    nestedOn(fd, type, dev, viommu);
    const dev2 = fd.deviceBind({ iommu: kind });
    fd.deviceAttach(dev2, ioas);
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev2, virtId: 2n });
    expect(fd.framesInUse()).toBeGreaterThan(0);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});

describe('SMMUv3 nested HWPT on a vIOMMU: the vSTE (reference/iommufd.md §3)', () => {
  const arm = () => setup('smmuv3', 'arm-smmuv3');

  it('an S1_TRANS vSTE is kept decoded; EATS is cleared in the stored words; ATS only with EATS=TRANS', () => {
    const { fd, dev, viommu, parent } = arm();
    const w1 = 1n | (2n << 2n) | (3n << 4n) | (1n << 6n) | (1n << 27n) | eats(1);
    const n = vste(fd, dev, viommu, [S1_TRANS_STE0, w1]);
    expect(fd.armNestedVste(n)).toEqual({
      ste: [S1_TRANS_STE0, w1 & ~eats(3)],
      valid: true,
      config: 's1-trans',
      s1Fmt: 1,
      s1ContextPtr: CD_TABLE,
      s1CdMax: 3,
      s1Dss: 1,
      s1Cir: 2,
      s1Cor: 3,
      s1Csh: 1,
      s1Stalld: true,
      eats: 'trans',
      enableAts: true,
    });
    const snap = fd.snapshot() as { objects: { id: number; vste?: string[]; parent?: number; viommu?: number }[] };
    expect(snap.objects.find((o) => o.id === n)).toMatchObject({
      parent,
      viommu,
      vste: [`0x${S1_TRANS_STE0.toString(16)}`, `0x${(w1 & ~eats(3)).toString(16)}`],
    });
    // EATS=ABT: no ATS. Bypass with EATS=TRANS: allowed, but ATS is for S1_TRANS only.
    expect(fd.armNestedVste(vste(fd, dev, viommu, [S1_TRANS_STE0, eats(0)])).enableAts).toBe(false);
    const bypass = fd.armNestedVste(vste(fd, dev, viommu, [V | cfg(CFG_BYPASS), eats(1)]));
    expect(bypass).toMatchObject({ config: 'bypass', eats: 'trans', enableAts: false, ste: [V | cfg(CFG_BYPASS), 0n] });
    expect(fd.armNestedVste(vste(fd, dev, viommu, [V | cfg(CFG_ABORT), 0n])).config).toBe('abort');
    // Not an arm-smmuv3 nested HWPT: ENOENT.
    expectErrno(() => fd.armNestedVste(parent), 'ENOENT');
    expectErrno(() => fd.armNestedVste(viommu), 'ENOENT');
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('V=0: a non-valid vSTE is accepted whatever else it holds, stored as zero, and installs as abort', () => {
    const { fd, dev, viommu } = arm();
    const n = vste(fd, dev, viommu, [(0xffn << 52n) | cfg(7), 2n ** 64n - 1n]);
    expect(fd.armNestedVste(n)).toMatchObject({ ste: [0n, 0n], valid: false, config: 'abort', enableAts: false });
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('bits outside the nesting-allowed fields, a Config other than abort/bypass/S1_TRANS, EATS S1CHK: EIO', () => {
    const { fd, dev, viommu } = arm();
    const before = fd.snapshot();
    const id = nextId(fd);
    // Word 0: bits 58:52 are not nesting-allowed (nor is anything else outside V, Config, S1Fmt,
    // S1ContextPtr, S1CDMax); word 1: anything but S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS.
    for (const bit of [52n, 55n, 58n])
      expectErrno(() => vste(fd, dev, viommu, [S1_TRANS_STE0 | (1n << bit), 0n]), 'EIO');
    for (const bit of [8n, 12n, 26n, 30n, 31n, 32n, 63n])
      expectErrno(() => vste(fd, dev, viommu, [S1_TRANS_STE0, 1n << bit]), 'EIO');
    // Config: only 0, 4 and 5.
    for (const c of [1, 2, 3, 6, 7]) expectErrno(() => vste(fd, dev, viommu, [V | cfg(c), 0n]), 'EIO');
    // EATS: ABT (0) or TRANS (1) only, for every Config.
    for (const c of [CFG_ABORT, CFG_BYPASS, CFG_S1_TRANS]) {
      for (const e of [2, 3]) expectErrno(() => vste(fd, dev, viommu, [V | cfg(c), eats(e)]), 'EIO');
    }
    expect(fd.snapshot()).toEqual(before);
    expect(nextId(fd)).toBe(id);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('malformed data (not { ste: [u64, u64] }): EINVAL', () => {
    const { fd, dev, viommu } = arm();
    for (const data of [
      {},
      { ste: [1n] },
      { ste: [1n, 0n, 0n] },
      { ste: [1, 0] },
      { ste: [-1n, 0n] },
      { ste: [2n ** 64n, 0n] },
      5,
    ]) {
      expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: 'arm-smmuv3', data }), 'EINVAL');
    }
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('attach: S1_TRANS needs a vDEVICE (ENOENT); abort, bypass and non-valid vSTEs attach without one (GBPA case)', () => {
    const { fd, dev, viommu } = arm();
    expectErrno(() => fd.deviceAttach(dev, vste(fd, dev, viommu, [S1_TRANS_STE0, 0n])), 'ENOENT');
    for (const ste of [
      [V | cfg(CFG_ABORT), 0n],
      [V | cfg(CFG_BYPASS), 0n],
      [0n, 0n],
    ] as [bigint, bigint][]) {
      const n = vste(fd, dev, viommu, ste);
      expect(fd.deviceAttach(dev, n)).toBe(n);
      fd.deviceDetach(dev);
    }
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('HWPT_INVALIDATE: the SMMUv3 nested HWPT has no invalidation of its own (EOPNOTSUPP); its vIOMMU takes the commands', () => {
    const { fd, dev, viommu } = arm();
    const n = vste(fd, dev, viommu, [S1_TRANS_STE0, 0n]);
    expectErrno(() => fd.hwptInvalidate(n, { dataType: 'arm-smmuv3', entries: [] }), 'EOPNOTSUPP', 0);
    expectErrno(() => fd.hwptInvalidate(viommu, { dataType: 'arm-smmuv3', entries: [{}] }), 'EINVAL', 0);
    expect(fd.hwptInvalidate(viommu, { dataType: 'arm-smmuv3', entries: [[0x10n, 0n]] })).toBe(1);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});

describe('selftest vIOMMU: the mock nested HWPT built on it', () => {
  it('keeps the selftest IOTLB slots and their invalidation', () => {
    const { fd, dev, viommu } = setup('mock', 'selftest');
    const n = nestedOn(fd, 'selftest', dev, viommu);
    expect(fd.mockNestedIotlb(n)).toEqual(new Array(4).fill(IOTLB_DEFAULT));
    expect(fd.hwptInvalidate(n, { dataType: 'selftest', entries: [{ iotlbId: 2 }] })).toBe(1);
    expect(fd.mockNestedIotlb(n)).toEqual([IOTLB_DEFAULT, IOTLB_DEFAULT, 0, IOTLB_DEFAULT]);
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: 'selftest', data: { iotlb: -1 } }), 'EINVAL');
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});
