import { describe, expect, it } from 'vitest';
import { Iommufd, IommufdError, MOCK_APERTURE_START } from '../../src/index.js';

/*
 * In the spirit of the kernel's iommufd_fail_nth (reference/iommufd.md §5): each scenario runs once
 * clean, then again with its n-th fallible step failing, for n = 1, 2, ... until a run completes
 * without the injection firing. After the failing call, the visible state (objects, users, areas,
 * reserved and allowed ranges, attachments, published descriptors, frames in use) must equal the
 * state before it; the scenario then stops, as the selftest's does, and closing the fd must
 * return every frame of physical memory.
 */

type Step = (fd: Iommufd, s: Record<string, number | bigint>) => void;

const A = MOCK_APERTURE_START;
const MiB = 1n << 20n;

function runScenario(steps: Step[], nth: number | undefined): { fired: boolean; failedAt: number } {
  const fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
  const s: Record<string, number | bigint> = {};
  let failedAt = -1;
  // The user buffers exist before the sweep starts, as the selftest's fixture maps them first.
  s['va'] = fd.memory.mmap(4n * MiB);
  s['va2'] = fd.memory.mmap(64n * 1024n);
  if (nth !== undefined) fd.faultInjection.arm(nth);
  for (let i = 0; i < steps.length; i++) {
    const before = fd.snapshot();
    const firedBefore = fd.faultInjection.fired;
    try {
      steps[i]!(fd, s);
    } catch (e) {
      if (!(e instanceof IommufdError)) throw e;
      if (!firedBefore && fd.faultInjection.fired) {
        // The injected failure: all or nothing.
        expect(fd.snapshot(), `state after failing step ${i} (nth ${nth})`).toEqual(before);
        failedAt = i;
        break;
      }
      throw e;
    }
  }
  const fired = fd.faultInjection.fired;
  fd.faultInjection.disarm();
  void fd.close();
  expect(fd.framesInUse(), 'frames leaked after close').toBe(0);
  return { fired, failedAt };
}

const LIMIT = 2000;

function sweep(steps: Step[]): number {
  runScenario(steps, undefined); // clean run must succeed
  let n = 1;
  for (; n < LIMIT; n++) {
    const { fired } = runScenario(steps, n);
    if (!fired) break;
  }
  expect(n, 'the sweep must end because a run no longer reaches step n').toBeLessThan(LIMIT);
  runScenario(steps, undefined);
  return n - 1; // the number of fallible steps swept
}

const scenarios: Record<string, Step[]> = {
  basic: [
    (fd, s) => (s['ioas'] = fd.ioasAlloc()),
    (fd, s) => fd.ioasIovaRanges(s['ioas'] as number),
    (fd, s) => fd.ioasAllowIovas(s['ioas'] as number, [{ start: A, last: A + 64n * MiB - 1n }]),
    (fd, s) => (s['iova'] = fd.ioasMap(s['ioas'] as number, { userVa: s['va'] as bigint, length: 4n * MiB })),
    (fd, s) =>
      fd.ioasMap(s['ioas'] as number, {
        userVa: s['va2'] as bigint,
        length: 8192n,
        iova: A + 128n * MiB,
        flags: { fixedIova: true, readable: true },
      }),
    (fd, s) =>
      (s['copy'] = fd.ioasCopy({
        dstIoasId: s['ioas'] as number,
        srcIoasId: s['ioas'] as number,
        srcIova: s['iova'] as bigint,
        length: MiB,
      })),
    (fd, s) => fd.option({ option: 'huge-pages', op: 'set', objectId: s['ioas'] as number, val: 0n }),
    (fd, s) => fd.ioasUnmap(s['ioas'] as number, s['copy'] as bigint, MiB),
    (fd, s) => fd.ioasUnmap(0 + (s['ioas'] as number), 0n, 2n ** 64n - 1n),
  ],
  map_domain: [
    (fd, s) => (s['ioas'] = fd.ioasAlloc()),
    (fd, s) => (s['dev'] = fd.deviceBind({ iommu: 'mock' })),
    (fd, s) => (s['hwpt'] = fd.deviceAttach(s['dev'] as number, s['ioas'] as number)),
    (fd, s) =>
      (s['iova'] = fd.ioasMap(s['ioas'] as number, {
        userVa: s['va'] as bigint,
        length: 4n * MiB,
        iova: A,
        flags: { fixedIova: true },
      })),
    (fd, s) => fd.ioasMap(s['ioas'] as number, { userVa: s['va2'] as bigint, length: 64n * 1024n }),
    (fd, s) =>
      fd.ioasCopy({
        dstIoasId: s['ioas'] as number,
        srcIoasId: s['ioas'] as number,
        srcIova: s['iova'] as bigint,
        length: 2n * MiB,
      }),
    (fd, s) => fd.ioasUnmap(s['ioas'] as number, s['iova'] as bigint, 4n * MiB),
    (fd, s) => fd.deviceDetach(s['dev'] as number),
  ],
  map_two_domains: [
    (fd, s) => (s['ioas'] = fd.ioasAlloc()),
    (fd, s) =>
      (s['iova'] = fd.ioasMap(s['ioas'] as number, {
        userVa: s['va'] as bigint,
        length: 4n * MiB,
        iova: A + MiB,
        flags: { fixedIova: true },
      })),
    (fd, s) => (s['dev'] = fd.deviceBind({ iommu: 'mock' })),
    (fd, s) => (s['dev2'] = fd.deviceBind({ iommu: 'mock' })),
    (fd, s) => fd.deviceAttach(s['dev'] as number, s['ioas'] as number), // lazy areas are pinned and filled here
    (fd, s) => (s['hwpt2'] = fd.hwptAlloc({ devId: s['dev2'] as number, ptId: s['ioas'] as number })),
    (fd, s) => fd.deviceAttach(s['dev2'] as number, s['hwpt2'] as number),
    (fd, s) => fd.ioasMap(s['ioas'] as number, { userVa: s['va2'] as bigint, length: 64n * 1024n }),
    (fd, s) => fd.ioasUnmap(s['ioas'] as number, 0n, 2n ** 64n - 1n),
  ],
  device: [
    (fd, s) => (s['ioas'] = fd.ioasAlloc()),
    (fd, s) => (s['ioas2'] = fd.ioasAlloc()),
    (fd, s) =>
      fd.ioasMap(s['ioas'] as number, {
        userVa: s['va'] as bigint,
        length: 4n * MiB,
        iova: A,
        flags: { fixedIova: true },
      }),
    (fd, s) =>
      (s['dev'] = fd.deviceBind({
        iommu: 'mock',
        reservedRegions: [{ start: A + 64n * MiB, last: A + 65n * MiB - 1n }],
      })),
    (fd, s) => fd.getHwInfo(s['dev'] as number),
    (fd, s) => (s['hwpt'] = fd.hwptAlloc({ devId: s['dev'] as number, ptId: s['ioas'] as number })),
    (fd, s) =>
      (s['parent'] = fd.hwptAlloc({
        devId: s['dev'] as number,
        ptId: s['ioas2'] as number,
        flags: { nestParent: true },
      })),
    (fd, s) => fd.deviceAttach(s['dev'] as number, s['ioas'] as number),
    (fd, s) => fd.deviceReplace(s['dev'] as number, s['hwpt'] as number),
    (fd, s) => fd.deviceReplace(s['dev'] as number, s['ioas2'] as number),
    (fd, s) => fd.deviceReplace(s['dev'] as number, s['parent'] as number),
    (fd, s) => fd.deviceReplace(s['dev'] as number, s['ioas'] as number),
    (fd, s) => fd.deviceDetach(s['dev'] as number),
    (fd, s) => fd.deviceUnbind(s['dev'] as number),
  ],
  nested: [
    (fd, s) => (s['ioas'] = fd.ioasAlloc()),
    (fd, s) =>
      fd.ioasMap(s['ioas'] as number, {
        userVa: s['va'] as bigint,
        length: 4n * MiB,
        iova: A,
        flags: { fixedIova: true },
      }),
    (fd, s) => (s['dev'] = fd.deviceBind({ iommu: 'mock' })),
    (fd, s) =>
      (s['parent'] = fd.hwptAlloc({
        devId: s['dev'] as number,
        ptId: s['ioas'] as number,
        flags: { nestParent: true },
      })),
    (fd, s) =>
      (s['nested'] = fd.hwptAlloc({
        devId: s['dev'] as number,
        ptId: s['parent'] as number,
        dataType: 'selftest',
        data: { iotlb: 7 },
      })),
    (fd, s) => fd.hwptInvalidate(s['nested'] as number, { dataType: 'selftest', entries: [{ iotlbId: 1 }] }),
    (fd, s) => fd.destroy(s['nested'] as number),
    (fd, s) => fd.destroy(s['parent'] as number),
  ],
  pasid: [
    (fd, s) => (s['ioas'] = fd.ioasAlloc()),
    (fd, s) =>
      fd.ioasMap(s['ioas'] as number, {
        userVa: s['va'] as bigint,
        length: 4n * MiB,
        iova: A,
        flags: { fixedIova: true },
      }),
    (fd, s) => (s['dev'] = fd.deviceBind({ iommu: 'mock', pasidBits: 20 })),
    (fd, s) =>
      (s['hwpt'] = fd.hwptAlloc({ devId: s['dev'] as number, ptId: s['ioas'] as number, flags: { pasid: true } })),
    (fd, s) =>
      (s['hwpt2'] = fd.hwptAlloc({ devId: s['dev'] as number, ptId: s['ioas'] as number, flags: { pasid: true } })),
    (fd, s) => fd.deviceAttach(s['dev'] as number, s['hwpt'] as number),
    (fd, s) => fd.deviceAttach(s['dev'] as number, s['hwpt'] as number, { pasid: 100 }),
    (fd, s) => fd.deviceAttach(s['dev'] as number, s['hwpt2'] as number, { pasid: 0xfffff }),
    (fd, s) => fd.deviceReplace(s['dev'] as number, s['hwpt2'] as number, { pasid: 100 }),
    (fd, s) => fd.deviceDetach(s['dev'] as number, { pasid: 100 }),
    (fd, s) => fd.deviceDetach(s['dev'] as number),
  ],
};

describe('iommufd_fail_nth', () => {
  for (const [name, steps] of Object.entries(scenarios)) {
    it(`${name}: failing each fallible step in turn leaves the state as it was and leaks nothing`, () => {
      const swept = sweep(steps);
      // Every scenario has fallible steps; a sweep of none would prove nothing.
      expect(swept).toBeGreaterThan(5);
    });
  }

  it('an injected failure in attach keeps the device unattached and DMA faulting', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'mock' });
    const va = fd.memory.mmap(MiB);
    fd.ioasMap(ioas, { userVa: va, length: MiB, iova: A, flags: { fixedIova: true } });
    fd.faultInjection.arm(3);
    expect(() => fd.deviceAttach(dev, ioas)).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    expect(fd.translate(dev, Number(A), 1)).toBe(-1);
    expect(fd.memory.pinCount(va)).toBe(0);
    void fd.close();
  });
});
