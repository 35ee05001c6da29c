/**
 * The FAULT object (IOMMU_FAULT_QUEUE_ALLOC, reference/iommufd.md §2) and the selftest's fault
 * rows: an IOPF triggered and answered, a bad cookie, the read and write sizes, whole groups
 * only, auto-responses on replace, detach and destroy, and the data plane's Pending code on an
 * IOPF-capable domain. Per device kind where the kind matters.
 */
import { describe, expect, it } from 'vitest';
import {
  Access,
  Iommufd,
  PAGE_RESPONSE,
  PGFAULT_BYTES,
  PGFAULT_FLAG,
  PGFAULT_PERM,
  TranslateFault,
  type GroupAnswer,
  type PageFaultRecord,
} from '../../src/index.js';
import { expectErrno, KINDS, MEMORY_BYTES } from './helpers.js';

const BASE = 1n << 24n;

/** An fd with a device of `kind` attached to a paging HWPT whose faults go to a fresh queue. */
function setup(kind: (typeof KINDS)[number], pasid = false) {
  const fd = Iommufd.open({ memoryBytes: MEMORY_BYTES });
  const ioas = fd.ioasAlloc();
  const va = fd.memory.mmap(1n << 20n);
  fd.ioasMap(ioas, { userVa: va, length: 1n << 16n, iova: BASE, flags: { fixedIova: true } });
  const dev = fd.deviceBind(kind === 'mock' ? { iommu: 'mock', pasidBits: 20 } : { iommu: kind, pasidBits: 20 });
  const { faultId, queue } = fd.faultQueueAlloc();
  const hwpt = fd.hwptAlloc({ devId: dev, ptId: ioas, faultId, ...(pasid ? { flags: { pasid: true } } : {}) });
  const answers: GroupAnswer[] = [];
  queue.answers$.subscribe((a) => answers.push(a));
  return { fd, ioas, dev, faultId, queue, hwpt, answers };
}

describe.each(KINDS)('FAULT object (%s)', (kind) => {
  it('fault_alloc: an id, ENOENT for a HWPT naming no FAULT, EOPNOTSUPP with a nest parent', () => {
    const fd = Iommufd.open({ memoryBytes: MEMORY_BYTES });
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: kind });
    const { faultId } = fd.faultQueueAlloc();
    expect(faultId).toBeGreaterThan(0);
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: ioas, faultId: faultId + 100 }), 'ENOENT');
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: ioas, faultId: ioas }), 'ENOENT'); // not a FAULT
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: ioas, faultId, flags: { nestParent: true } }), 'EOPNOTSUPP');
    const h = fd.hwptAlloc({ devId: dev, ptId: ioas, faultId });
    expect(h).toBeGreaterThan(faultId);
    void fd.close();
  });

  it('iopf round trip: one group with LAST_PAGE and a cookie; SUCCESS answers it; the cookie is then EINVAL', () => {
    const { fd, dev, queue, hwpt, answers } = setup(kind);
    fd.deviceAttach(dev, hwpt);
    const seen: (readonly PageFaultRecord[])[] = [];
    queue.faults$.subscribe((g) => seen.push(g));
    fd.triggerIopf({ devId: dev, grpid: 0x1ab, perm: PGFAULT_PERM.Read | PGFAULT_PERM.Write, addr: 0x1234_5000n });
    expect(queue.pending).toBe(1);
    expect(seen).toHaveLength(1);
    const recs = queue.read();
    expect(recs).toEqual([
      {
        flags: PGFAULT_FLAG.LastPage,
        devId: dev,
        pasid: 0,
        grpid: 0x1ab,
        perm: 3,
        addr: 0x1234_5000n,
        length: 0,
        cookie: recs[0]!.cookie,
      },
    ]);
    expect(recs[0]!.cookie).toBeGreaterThanOrEqual(1);
    expect(queue.pending).toBe(0);
    expect(queue.awaiting).toBe(1);
    expect(queue.read()).toEqual([]); // nothing more: a read returns 0, it does not block
    expect(queue.respond([{ cookie: recs[0]!.cookie, code: 'success' }])).toBe(1);
    expect(answers).toMatchObject([{ devId: dev, grpid: 0x1ab, code: PAGE_RESPONSE.Success, auto: false }]);
    expectErrno(() => queue.respond([{ cookie: recs[0]!.cookie, code: 0 }]), 'EINVAL'); // already answered
    expectErrno(() => queue.respond([{ cookie: 999, code: 0 }]), 'EINVAL'); // unknown
    void fd.close();
  });

  it('with a PASID: PASID_VALID and the PASID in every record', () => {
    const { fd, dev, queue, hwpt } = setup(kind, true);
    fd.deviceAttach(dev, hwpt, { pasid: 7 });
    fd.triggerIopf({ devId: dev, pasid: 7, grpid: 1, perm: PGFAULT_PERM.Read, addr: 0x5000n });
    const [r] = queue.read();
    expect(r).toMatchObject({ flags: PGFAULT_FLAG.PasidValid | PGFAULT_FLAG.LastPage, pasid: 7 });
    // Not on the RID: nothing fault-capable is attached there.
    expectErrno(() => fd.triggerIopf({ devId: dev, grpid: 1, perm: 1, addr: 0n }), 'ENODEV');
    void fd.close();
  });
});

describe('FAULT object: reads, writes and groups', () => {
  it('read sizes: not a multiple of 40 bytes is ESPIPE; a group that does not fit stays queued', () => {
    const { fd, dev, queue, hwpt } = setup('mock');
    fd.deviceAttach(dev, hwpt);
    expectErrno(() => queue.readBytes(new Uint8Array(41)), 'ESPIPE');
    for (let k = 0; k < 3; k++)
      fd.triggerIopf({ devId: dev, grpid: 5, perm: 1, addr: BigInt(k * 4096), last: k === 2 });
    expect(queue.pending).toBe(1); // one group, whole once its last page came
    expect(queue.readBytes(new Uint8Array(2 * PGFAULT_BYTES))).toBe(0);
    const buf = new Uint8Array(4 * PGFAULT_BYTES);
    expect(queue.readBytes(buf)).toBe(3 * PGFAULT_BYTES);
    const v = new DataView(buf.buffer);
    const cookie = v.getUint32(36, true);
    for (let k = 0; k < 3; k++) {
      const at = k * PGFAULT_BYTES;
      expect(v.getUint32(at, true)).toBe(k === 2 ? PGFAULT_FLAG.LastPage : 0);
      expect(v.getUint32(at + 4, true)).toBe(dev);
      expect(v.getUint32(at + 12, true)).toBe(5);
      expect(v.getBigUint64(at + 24, true)).toBe(BigInt(k * 4096));
      expect(v.getUint32(at + 36, true)).toBe(cookie);
    }
    void fd.close();
  });

  it('write: ESPIPE unless a multiple of 8 bytes; a bad code is EINVAL; processing stops at the first bad entry', () => {
    const { fd, dev, queue, hwpt, answers } = setup('mock');
    fd.deviceAttach(dev, hwpt);
    for (let g = 0; g < 3; g++) fd.triggerIopf({ devId: dev, grpid: g, perm: 1, addr: BigInt(g * 4096) });
    const cookies = queue.read().map((r) => r.cookie);
    expect(new Set(cookies).size).toBe(3);
    expectErrno(() => queue.writeBytes(new Uint8Array(7)), 'ESPIPE');
    expectErrno(() => queue.respond([{ cookie: cookies[0]!, code: 2 }]), 'EINVAL');
    // Good, bad, good: one consumed, the third not answered.
    const buf = new Uint8Array(24);
    const v = new DataView(buf.buffer);
    v.setUint32(0, cookies[0]!, true);
    v.setUint32(4, PAGE_RESPONSE.Invalid, true);
    v.setUint32(8, 4242, true);
    v.setUint32(16, cookies[2]!, true);
    expect(queue.writeBytes(buf)).toBe(8);
    expect(queue.awaiting).toBe(2);
    expect(answers.map((a) => [a.cookie, a.code])).toEqual([[cookies[0], PAGE_RESPONSE.Invalid]]);
    // Answered cookies come back: the next group read takes the smallest free one.
    fd.triggerIopf({ devId: dev, grpid: 9, perm: 1, addr: 0n });
    expect(queue.read()[0]!.cookie).toBe(Math.min(...cookies));
    void fd.close();
  });
});

describe.each(KINDS)('FAULT object: auto-responses (%s)', (kind) => {
  it('replace away from the fault-capable HWPT answers its queued and read groups INVALID', () => {
    const { fd, ioas, dev, queue, hwpt, answers } = setup(kind);
    fd.deviceAttach(dev, hwpt);
    fd.triggerIopf({ devId: dev, grpid: 1, perm: 1, addr: 0x1000n });
    const [read] = queue.read();
    fd.triggerIopf({ devId: dev, grpid: 2, perm: 2, addr: 0x2000n });
    const other = fd.hwptAlloc({ devId: dev, ptId: ioas });
    fd.deviceReplace(dev, other);
    expect(answers.map((a) => [a.grpid, a.code, a.auto])).toEqual([
      [2, PAGE_RESPONSE.Invalid, true],
      [1, PAGE_RESPONSE.Invalid, true],
    ]);
    expect(queue.pending + queue.awaiting).toBe(0);
    expectErrno(() => queue.respond([{ cookie: read!.cookie, code: 0 }]), 'EINVAL');
    // A half-collected group is dropped too: its last page arrives nowhere.
    fd.deviceReplace(dev, hwpt);
    fd.triggerIopf({ devId: dev, grpid: 3, perm: 1, addr: 0x3000n, last: false });
    fd.deviceDetach(dev);
    fd.deviceAttach(dev, hwpt);
    fd.triggerIopf({ devId: dev, grpid: 3, perm: 1, addr: 0x4000n });
    expect(queue.read().map((r) => r.addr)).toEqual([0x4000n]);
    void fd.close();
  });

  it('detach answers INVALID only the detached PASID’s groups', () => {
    const { fd, dev, queue, hwpt, answers } = setup(kind, true);
    fd.deviceAttach(dev, hwpt, { pasid: 1 });
    fd.deviceAttach(dev, hwpt, { pasid: 2 });
    fd.triggerIopf({ devId: dev, pasid: 1, grpid: 1, perm: 1, addr: 0n });
    fd.triggerIopf({ devId: dev, pasid: 2, grpid: 1, perm: 1, addr: 0n });
    fd.deviceDetach(dev, { pasid: 1 });
    expect(answers.map((a) => [a.pasid, a.auto])).toEqual([[1, true]]);
    expect(queue.read().map((r) => r.pasid)).toEqual([2]);
    void fd.close();
  });

  it('destroying the FAULT answers everything INVALID; it is EBUSY while its fd or a HWPT holds it', () => {
    const { fd, dev, faultId, queue, hwpt, answers } = setup(kind);
    fd.deviceAttach(dev, hwpt);
    fd.triggerIopf({ devId: dev, grpid: 1, perm: 1, addr: 0n });
    queue.read();
    fd.triggerIopf({ devId: dev, grpid: 2, perm: 1, addr: 0n });
    expectErrno(() => fd.destroy(faultId), 'EBUSY'); // the fd (handle) is open
    queue.close();
    expectErrno(() => queue.read(), 'EBADF');
    expectErrno(() => fd.destroy(faultId), 'EBUSY'); // the HWPT holds it
    fd.deviceDetach(dev);
    expect(answers).toHaveLength(2); // the detach answered them
    fd.destroy(hwpt);
    fd.destroy(faultId);
    expectErrno(() => fd.destroy(faultId), 'ENOENT');
    void fd.close();
  });

  it('closing the fd answers pending groups INVALID', async () => {
    const { fd, dev, queue, hwpt, answers } = setup(kind);
    fd.deviceAttach(dev, hwpt);
    fd.triggerIopf({ devId: dev, grpid: 1, perm: 1, addr: 0n });
    queue.read();
    fd.triggerIopf({ devId: dev, grpid: 2, perm: 1, addr: 0n });
    await fd.close();
    expect(answers.map((a) => [a.code, a.auto])).toEqual([
      [PAGE_RESPONSE.Invalid, true],
      [PAGE_RESPONSE.Invalid, true],
    ]);
  });
});

describe.each(KINDS)('IOPF-capable domains on the data plane (%s)', (kind) => {
  it('a translation fault becomes Pending and a page request; a mapped page translates as before', () => {
    const { fd, dev, queue, hwpt } = setup(kind);
    fd.deviceAttach(dev, hwpt);
    expect(fd.translate(dev, Number(BASE) + 0x10, Access.Read)).toBeGreaterThanOrEqual(0);
    const iova = Number(BASE) + 0x20_0123;
    expect(fd.translate(dev, iova, Access.Write)).toBe(TranslateFault.Pending);
    expect(fd.lastFault().code).toBe(TranslateFault.Pending);
    expect(queue.read()).toMatchObject([
      { flags: PGFAULT_FLAG.LastPage, devId: dev, perm: PGFAULT_PERM.Write, addr: BigInt(iova - (iova % 4096)) },
    ]);
    // Without a FAULT object, the same access is a plain translation fault.
    const ioas2 = fd.ioasAlloc();
    const plain = fd.hwptAlloc({ devId: dev, ptId: ioas2 });
    fd.deviceReplace(dev, plain);
    expect(fd.translate(dev, iova, Access.Write)).toBe(TranslateFault.NotMapped);
    void fd.close();
  });
});

describe('IOPF-capable nested HWPTs', () => {
  it('vtd-s1 with a FAULT: a stage-1 miss is Pending; a bad fault id is ENOENT', () => {
    const fd = Iommufd.open({ memoryBytes: MEMORY_BYTES });
    const ioas = fd.ioasAlloc();
    const va = fd.memory.mmap(1n << 20n);
    fd.ioasMap(ioas, { userVa: va, length: 1n << 20n, iova: 0n, flags: { fixedIova: true } });
    const dev = fd.deviceBind({ iommu: 'vtd', pasidBits: 8 });
    const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
    const { faultId, queue } = fd.faultQueueAlloc();
    const data = { pgtblAddr: 0x1000, addrWidth: 48 };
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'vtd-s1', data, faultId: 999 }), 'ENOENT');
    const nested = fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'vtd-s1', data, faultId });
    fd.deviceAttach(dev, nested);
    // The guest's stage-1 root (GPA 0x1000) is empty: every IOVA misses at stage 1.
    expect(fd.translate(dev, 0x4000_0000, Access.Read)).toBe(TranslateFault.Pending);
    expect(queue.read()).toMatchObject([{ addr: 0x4000_0000n, perm: PGFAULT_PERM.Read }]);
    void fd.close();
  });
});
