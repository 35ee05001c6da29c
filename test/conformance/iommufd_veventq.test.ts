/**
 * vEVENTQ (IOMMU_VEVENTQ_ALLOC, reference/iommufd.md §2) and the selftest's vevent rows: one
 * queue per type (EEXIST), events with the vDEVICE's virtual ID, sequence numbers that wrap at
 * INT_MAX, the LOST_EVENTS header on overflow and a clean event after it; and SMMUv3 event
 * records of translations through a vSTE HWPT, with the vSID as StreamID.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Access, Iommufd, VEVENT_FLAG, type VeventRecord } from '../../src/index.js';
import { decodeEvent, EVT_ID } from '../../src/vendor/smmuv3/records.js';
import { Rig, slotIova, VSID } from '../property/nesting-rig.js';
import { expectErrno } from './helpers.js';

function mockViommu() {
  const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
  const dev = fd.deviceBind({ iommu: 'mock' });
  const ioas = fd.ioasAlloc();
  const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
  const viommu = fd.viommuAlloc({ devId: dev, hwptId: parent, type: 'selftest' });
  return { fd, dev, ioas, parent, viommu };
}

const virtIdOf = (e: VeventRecord): number => new DataView(e.data.buffer, e.data.byteOffset).getUint32(0, true);

describe('VEVENTQ_ALLOC', () => {
  it('errnos: flags or a bad type EOPNOTSUPP, depth 0 EINVAL, no vIOMMU ENOENT, a second of a type EEXIST', () => {
    const { fd, viommu, ioas } = mockViommu();
    expectErrno(() => fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 2, flags: { x: 1 } }), 'EOPNOTSUPP');
    expectErrno(() => fd.veventqAlloc({ viommuId: viommu, type: 'default' as never, depth: 2 }), 'EOPNOTSUPP');
    expectErrno(() => fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 0 }), 'EINVAL');
    expectErrno(() => fd.veventqAlloc({ viommuId: 999, type: 'selftest', depth: 2 }), 'ENOENT');
    expectErrno(() => fd.veventqAlloc({ viommuId: ioas, type: 'selftest', depth: 2 }), 'ENOENT');
    const { veventqId, queue } = fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 2 });
    expectErrno(() => fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 8 }), 'EEXIST');
    const other = fd.veventqAlloc({ viommuId: viommu, type: 'arm-smmuv3', depth: 1 });
    // The queue holds the vIOMMU; its open handle holds the queue.
    expectErrno(() => fd.destroy(viommu), 'EBUSY');
    expectErrno(() => fd.destroy(veventqId), 'EBUSY');
    queue.close();
    expectErrno(() => queue.read(), 'EBADF');
    fd.destroy(veventqId);
    other.queue.close();
    fd.destroy(other.veventqId);
    // Now a queue of the type can be allocated again.
    fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 2 });
    void fd.close();
  });
});

describe('vdevice_alloc: selftest vEVENTs', () => {
  it('carry the virtual ID; depth 2 and 3 events: the lost-events header, then a clean event', () => {
    const { fd, dev, viommu } = mockViommu();
    expectErrno(() => fd.triggerVevent(dev), 'ENOENT'); // no vDEVICE yet
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 0x99 });
    fd.triggerVevent(dev); // no queue: dropped
    const { queue } = fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 2 });
    for (let k = 0; k < 3; k++) fd.triggerVevent(dev);
    const got = queue.read();
    expect(got.map((e) => [e.flags, e.sequence])).toEqual([
      [0, 0],
      [0, 1],
      [VEVENT_FLAG.LostEvents, 2],
    ]);
    expect(virtIdOf(got[0]!)).toBe(0x99);
    expect(got[2]!.data.length).toBe(0);
    fd.triggerVevent(dev);
    const next = queue.read();
    expect(next.map((e) => [e.flags, e.sequence])).toEqual([[0, 3]]);
    expect(queue.stats).toEqual({ queued: 3, lost: 1 });
    void fd.close();
  });

  it('a real event replaces a trailing lost header; the sequence gap counts the lost ones', () => {
    const { fd, dev, viommu } = mockViommu();
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 5 });
    const { queue } = fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 1 });
    for (let k = 0; k < 4; k++) fd.triggerVevent(dev); // 0 queued, 1..3 lost
    expect(queue.read(1).map((e) => [e.flags, e.sequence])).toEqual([[0, 0]]);
    fd.triggerVevent(dev); // room again: the trailing lost header gives way
    expect(queue.read().map((e) => [e.flags, e.sequence])).toEqual([[0, 4]]);
    void fd.close();
  });

  it('the sequence wraps from INT_MAX to 0; readBytes copies whole events', () => {
    const { fd, dev, viommu } = mockViommu();
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 0xabc });
    const { queue } = fd.veventqAlloc({ viommuId: viommu, type: 'selftest', depth: 8 });
    queue.setSequenceForTest(0x7fffffff);
    fd.triggerVevent(dev);
    fd.triggerVevent(dev);
    const buf = new Uint8Array(20); // one event is 8 + 4 bytes: only one fits
    expect(queue.readBytes(buf)).toBe(12);
    const v = new DataView(buf.buffer);
    expect([v.getUint32(0, true), v.getUint32(4, true), v.getUint32(8, true)]).toEqual([0, 0x7fffffff, 0xabc]);
    expect(queue.readBytes(buf)).toBe(12);
    expect(v.getUint32(4, true)).toBe(0);
    expect(queue.readBytes(buf)).toBe(0);
    void fd.close();
  });
});

describe('arm-smmuv3 vEVENTs from vSTE translations', () => {
  let rig: Rig | undefined;
  afterEach(() => {
    rig?.close();
    rig = undefined;
  });

  for (const mode of ['hardware', 'software'] as const) {
    it(`${mode} nesting: F_TRANSLATION with the vSID, the SubstreamID and the input address`, () => {
      rig = new Rig({ vendor: 'smmuv3', mode });
      const { queue } = rig.fd.veventqAlloc({ viommuId: rig.viommu, type: 'arm-smmuv3', depth: 16 });
      const events: VeventRecord[] = [];
      queue.events$.subscribe((e) => events.push(e));
      const iova = slotIova(3) + 0x40;
      expect(rig.translate(1, iova, Access.Write).ok).toBe(false);
      const [e] = queue.read();
      expect(e!.data.length).toBe(32);
      const rec = decodeEvent(new Int32Array(e!.data.buffer, e!.data.byteOffset, 8));
      expect(rec).toMatchObject({ type: EVT_ID.F_TRANSLATION, sid: VSID, ssv: true, ssid: 1, read: false });
      expect(Number(rec.inputAddress)).toBe(iova);
      expect(events).toHaveLength(1);
      // A translation that succeeds reports nothing.
      rig.setLeaf(1, 3, { page: 1, write: true, dirty: true, af: true });
      expect(rig.translate(1, iova, Access.Read).ok).toBe(true);
      expect(queue.pending).toBe(0);
    });
  }
});
