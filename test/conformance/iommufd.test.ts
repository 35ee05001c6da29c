/**
 * FIXTURE(iommufd) of tools/testing/selftests/iommu/iommufd.c: a bare /dev/iommu fd.
 *
 * Only `close` binds a device, so only it runs for every device kind; the other tests never meet
 * a kind and run once.
 *
 * Not ported: cmd_length / cmd_ex_fail / the NULL-pointer and unknown-ioctl parts of cmd_fail
 * (there are no ioctl structs or request numbers in this API) and the VFIO compat tests.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KINDS, expectErrno, openFd, type Fd } from './helpers.js';

describe('iommufd', () => {
  let fd: Fd;
  let closed: boolean;

  beforeEach(() => {
    fd = openFd();
    closed = false;
  });

  afterEach(async () => {
    if (!closed) await fd.close();
  });

  it('simple_close: a fresh fd with no objects closes cleanly', async () => {
    closed = true;
    await expect(fd.close()).resolves.toBeUndefined();
  });

  it('cmd_fail: IOMMU_DESTROY of object id 0 fails with ENOENT', () => {
    expectErrno(() => fd.destroy(0), 'ENOENT');
    // Same rule for an id that was never handed out and for one that was freed (§0 object lookup).
    expectErrno(() => fd.destroy(12345), 'ENOENT');
    const ioas = fd.ioasAlloc();
    fd.destroy(ioas);
    expectErrno(() => fd.destroy(ioas), 'ENOENT');
  });

  it('global_options: RLIMIT_MODE reads 0, sets 1 (2 is EINVAL), reads 1, sets 0; HUGE_PAGES on object 0 is ENOENT', () => {
    expect(fd.option({ option: 'rlimit-mode', op: 'get' })).toBe(0n);

    // "This requires root": the simulator runs privileged.
    fd.option({ option: 'rlimit-mode', op: 'set', val: 1n });
    expectErrno(() => fd.option({ option: 'rlimit-mode', op: 'set', val: 2n }), 'EINVAL');

    expect(fd.option({ option: 'rlimit-mode', op: 'get' })).toBe(1n);
    fd.option({ option: 'rlimit-mode', op: 'set', val: 0n });
    expect(fd.option({ option: 'rlimit-mode', op: 'get' })).toBe(0n);

    expectErrno(() => fd.option({ option: 'huge-pages', op: 'get', objectId: 0 }), 'ENOENT');
    expectErrno(() => fd.option({ option: 'huge-pages', op: 'set', objectId: 0, val: 0n }), 'ENOENT');
  });

  it('global_options: RLIMIT_MODE SET is EBUSY while any object exists (before the value check), and allowed again once empty', () => {
    // iommufd_option_rlimit_mode(): `if (!xa_empty(&ictx->objects)) rc = -EBUSY; else ...value check`.
    const ioas = fd.ioasAlloc();
    expectErrno(() => fd.option({ option: 'rlimit-mode', op: 'set', val: 1n }), 'EBUSY');
    expectErrno(() => fd.option({ option: 'rlimit-mode', op: 'set', val: 2n }), 'EBUSY');
    // GET does not care about objects.
    expect(fd.option({ option: 'rlimit-mode', op: 'get' })).toBe(0n);
    fd.destroy(ioas);
    fd.option({ option: 'rlimit-mode', op: 'set', val: 1n });
    expect(fd.option({ option: 'rlimit-mode', op: 'get' })).toBe(1n);
  });

  it('global_options: RLIMIT_MODE is global, a non-zero object_id is EOPNOTSUPP', () => {
    // iommufd_option_rlimit_mode(): `if (cmd->object_id) return -EOPNOTSUPP;`
    const ioas = fd.ioasAlloc();
    expectErrno(() => fd.option({ option: 'rlimit-mode', op: 'get', objectId: ioas }), 'EOPNOTSUPP');
  });

  describe.each(KINDS)('%s', (kind) => {
    it('close: every call on a closed fd fails with EBADF', async () => {
      const ioas = fd.ioasAlloc();
      closed = true;
      await fd.close();
      expectErrno(() => fd.ioasAlloc(), 'EBADF');
      expectErrno(() => fd.destroy(ioas), 'EBADF');
      expectErrno(() => fd.ioasIovaRanges(ioas), 'EBADF');
      expectErrno(() => fd.option({ option: 'rlimit-mode', op: 'get' }), 'EBADF');
      expectErrno(() => fd.deviceBind({ iommu: kind }), 'EBADF');
    });
  });
});
