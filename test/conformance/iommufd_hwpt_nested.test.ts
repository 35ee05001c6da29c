import { describe, expect, it } from 'vitest';
import { Iommufd, InvalidateError } from '../../src/index.js';

/*
 * The kernel selftest `iommufd_ioas.alloc_hwpt_nested` (reference/iommufd.md §5), the parts the
 * typed API can express. Rows that are about the ioctl's raw layout (entry_len of sizeof+1, 1 or
 * 0; a NULL data or entry pointer) have no typed equivalent and are left out. Mock only: the
 * `selftest` nested data type and its 4 IOTLB slots are the kernel mock driver's.
 */

const IOTLB_DEFAULT = 0xbadbeef; // IOMMU_TEST_IOTLB_DEFAULT

function expectErrno(fn: () => unknown, errno: string): void {
  expect(fn).toThrow(expect.objectContaining({ errno }));
}

function setup(): { fd: Iommufd; dev: number; ioas: number; parent: number } {
  const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
  const ioas = fd.ioasAlloc();
  const dev = fd.deviceBind({ iommu: 'mock' });
  fd.deviceAttach(dev, ioas);
  const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
  return { fd, dev, ioas, parent };
}

const nested = (fd: Iommufd, dev: number, parent: number): number =>
  fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'selftest', data: { iotlb: IOTLB_DEFAULT } });

describe('iommufd_ioas', () => {
  it('alloc_hwpt_nested: HWPT_ALLOC errors for nested HWPTs', () => {
    const { fd, dev, ioas, parent } = setup();
    const plain = fd.hwptAlloc({ devId: dev, ptId: ioas });
    expectErrno(() => fd.hwptAlloc({ devId: ioas, ptId: parent, dataType: 'selftest', data: { iotlb: 1 } }), 'ENOENT'); // dev_id not a device
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: dev }), 'EINVAL'); // pt_id is a device
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true }, faultId: 99 }), 'EOPNOTSUPP');
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: parent, data: { iotlb: 1 } }), 'EINVAL'); // DATA_NONE with data
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'vtd-s1', data: {} }), 'EOPNOTSUPP'); // unknown type for mock
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'selftest', data: {} }), 'EINVAL'); // short data
    expectErrno(
      () =>
        fd.hwptAlloc({
          devId: dev,
          ptId: parent,
          dataType: 'selftest',
          data: { iotlb: 1 },
          flags: { nestParent: true },
        }),
      'EOPNOTSUPP',
    );
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: plain, dataType: 'selftest', data: { iotlb: 1 } }), 'EINVAL'); // not a nest parent
    const n1 = nested(fd, dev, parent);
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: n1, dataType: 'selftest', data: { iotlb: 1 } }), 'EINVAL'); // nested on nested
    expectErrno(
      () => fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'selftest', data: { iotlb: 1 }, faultId: 99 }),
      'ENOENT',
    );
    expect(fd.mockNestedIotlb(n1)).toEqual([IOTLB_DEFAULT, IOTLB_DEFAULT, IOTLB_DEFAULT, IOTLB_DEFAULT]);
    // The parent is busy while a nested HWPT uses it.
    expectErrno(() => fd.destroy(parent), 'EBUSY');
    fd.destroy(n1);
    expectErrno(() => fd.mockNestedIotlb(n1), 'ENOENT');
    void fd.close();
  });

  it('alloc_hwpt_nested: the HWPT_INVALIDATE matrix', () => {
    const { fd, dev, parent } = setup();
    const n = nested(fd, dev, parent);
    const inv = (
      entries: { flags?: Record<string, boolean>; iotlbId: number }[],
      dataType: 'selftest' | 'vtd-s1' = 'selftest',
    ): number => fd.hwptInvalidate(n, { dataType, entries } as { dataType: 'selftest'; entries: typeof entries });
    // On the parent (a paging HWPT): EINVAL. A missing id: ENOENT.
    expectErrno(() => fd.hwptInvalidate(parent, { dataType: 'selftest', entries: [] }), 'EINVAL');
    expectErrno(() => fd.hwptInvalidate(9999, { dataType: 'selftest', entries: [] }), 'ENOENT');
    // No entries only probes the data type.
    expect(inv([])).toBe(0);
    expectErrno(() => inv([], 'vtd-s1'), 'EINVAL');
    // Unknown flag: EOPNOTSUPP, nothing handled. A slot above 3: EINVAL.
    try {
      inv([{ flags: { bogus: true }, iotlbId: 0 }]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidateError);
      expect(e).toMatchObject({ errno: 'EOPNOTSUPP', entryNum: 0 });
    }
    expectErrno(() => inv([{ iotlbId: 4 }]), 'EINVAL');
    expect(fd.mockNestedIotlb(n)).toEqual([IOTLB_DEFAULT, IOTLB_DEFAULT, IOTLB_DEFAULT, IOTLB_DEFAULT]);
    // Two entries, the second bad: entry_num 1, and only slot 0 was cleared.
    try {
      inv([{ iotlbId: 0 }, { iotlbId: 4 }]);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ errno: 'EINVAL', entryNum: 1 });
    }
    expect(fd.mockNestedIotlb(n)).toEqual([0, IOTLB_DEFAULT, IOTLB_DEFAULT, IOTLB_DEFAULT]);
    // Several entries at once, then ALL.
    expect(inv([{ iotlbId: 1 }, { iotlbId: 2 }])).toBe(2);
    expect(fd.mockNestedIotlb(n)).toEqual([0, 0, 0, IOTLB_DEFAULT]);
    expect(inv([{ flags: { all: true }, iotlbId: 0 }])).toBe(1);
    expect(fd.mockNestedIotlb(n)).toEqual([0, 0, 0, 0]);
    void fd.close();
  });

  it("alloc_hwpt_nested: attaching a device to the mock's nested HWPT is not modelled (EOPNOTSUPP)", () => {
    const { fd, parent } = setup();
    const other = fd.deviceBind({ iommu: 'mock' });
    const n = nested(fd, other, parent);
    expectErrno(() => fd.deviceAttach(other, n), 'EOPNOTSUPP');
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});
