// A host device assigned to a VT-d guest: the guest (the Linux 6.1 driver model, first-level
// domains, caching mode) configures it through the emulated unit; the unit attaches it on the host
// to vtd-s1 nested HWPTs over the VM's nest parent, and forwards the guest's PASID-based IOTLB
// invalidations as hwptInvalidate entries. The device's DMA goes through iommufd, translated by
// the host with the two-stage walk.
import { afterEach, describe, expect, it } from 'vitest';
import { VtdGuestDriver, type VtdGuestDriverOptions } from '../../src/guest/vtd/index.js';
import { iotlbGlobal, pasidCache, pasidIotlbPages, PC_GRAN } from '../../src/guest/vtd/invalidations.js';
import { VTD_REG } from '../../src/vendor/vtd/regs-defs.js';
import { SM_CONTEXT_ENTRY } from '../../src/vendor/vtd/structures.js';
import { Access, Iommufd } from '../../src/index.js';
import type { VtdIommuOptions } from '../../src/vendor/vtd/iommu.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const SID = 0x0018; // 00:03.0
const R = 1;
const W = 2;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

function setup(unitOpts: VtdIommuOptions = {}, drvOpts: VtdGuestDriverOptions = {}) {
  const fd = Iommufd.open({ memoryBytes: 128 * MIB });
  open.push(fd);
  const unit = fd.vtdCreate({
    guestRamBytes: 16 * MIB,
    scalableMode: true,
    firstStage: true,
    cachingMode: true,
    ...unitOpts,
  });
  const ioas = fd.ioasAlloc();
  unit.mapGuestRam(ioas);
  const dev = fd.deviceBind({ iommu: 'vtd', sid: SID, pasidBits: 8 });
  const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true, pasid: true } });
  unit.assignDevice(SID, dev, parent);
  const drv = new VtdGuestDriver(unit, drvOpts);
  return { fd, unit, drv, dev, parent, ioas };
}

/** A fresh guest page filled with `fill`; returns its GPA. */
function dataPage(s: ReturnType<typeof setup>, fill: number): number {
  const gpa = s.drv.frames.alloc() * PAGE;
  s.unit.guest.u8.fill(fill, gpa, gpa + PAGE);
  return gpa;
}

describe('a host device assigned to a VT-d guest', () => {
  it('needs caching mode and an iommufd host', () => {
    const fd = Iommufd.open({ memoryBytes: 64 * MIB });
    open.push(fd);
    const unit = fd.vtdCreate({ guestRamBytes: 4 * MIB, scalableMode: true, firstStage: true });
    const dev = fd.deviceBind({ iommu: 'vtd', sid: SID });
    expect(() => unit.assignDevice(SID, dev, 1)).toThrow(/EOPNOTSUPP.*caching mode/);
  });

  it('before translation is enabled, DMA addresses are guest-physical (the nest parent)', () => {
    const s = setup();
    const gpa = 0x30_0000;
    s.unit.guest.u8.fill(0x5c, gpa, gpa + 16);
    expect(s.fd.dmaRead(s.dev, gpa, 4)).toEqual(new Uint8Array(4).fill(0x5c));
  });

  it('follows the guest: blocked until attached, then its first-stage table through the host, invalidations forwarded', () => {
    const s = setup();
    const { fd, unit, drv, dev } = s;
    drv.probe(); // translation on, nothing configured for SID: blocked
    expect(fd.translate(dev, 0x1000, Access.Read)).toBeLessThan(0);
    drv.attach(SID, { did: 5 });
    expect(drv.firstLevel).toBe(true);
    const iova = 0x4000_0000;
    const a = dataPage(s, 0xa1);
    const b = dataPage(s, 0xb2);
    drv.map(SID, iova, a, PAGE, R | W);
    drv.map(SID, iova + PAGE, b, PAGE, R);
    expect(fd.dmaRead(dev, iova + 8, 2)).toEqual(new Uint8Array([0xa1, 0xa1]));
    expect(fd.dmaRead(dev, iova + PAGE, 1)[0]).toBe(0xb2);
    fd.dmaWrite(dev, iova + 100, new Uint8Array([7, 8]));
    expect([...unit.guest.u8.subarray(a + 100, a + 102)]).toEqual([7, 8]);
    expect(fd.translate(dev, iova + PAGE, Access.Write)).toBeLessThan(0); // mapped read-only by the guest
    const st = unit.stats().assigned;
    expect(st.hostAttaches).toBe(2); // the parent while translation was off, then the nested HWPT
    expect(st.forwarded).toBeGreaterThanOrEqual(2); // caching mode: each map was invalidated too
    expect(st.errors).toBe(0);
    // The unmap's PASID-based invalidation reaches the host before the guest's wait completes:
    // the host IOTLB, which has the translation cached, no longer serves it.
    drv.unmap(SID, iova, PAGE);
    expect(fd.translate(dev, iova, Access.Read)).toBeLessThan(0);
    expect(fd.dmaRead(dev, iova + PAGE, 1)[0]).toBe(0xb2);
    expect(unit.stats().assigned.forwarded).toBeGreaterThan(st.forwarded);
  });

  it('the host caches the translation until the guest invalidates (the forwarding is what removes it)', () => {
    const s = setup();
    const { fd, unit, drv, dev } = s;
    drv.probe();
    drv.attach(SID, { did: 5 });
    const iova = 0x4000_0000;
    drv.map(SID, iova, dataPage(s, 1), PAGE, R);
    expect(fd.dmaRead(dev, iova, 1)[0]).toBe(1);
    // The guest clears its leaf entry without invalidating: the host IOTLB still serves it.
    const leaf = firstStageLeaf(s, iova);
    unit.guest.i32[leaf] = 0;
    unit.guest.i32[leaf + 1] = 0;
    expect(fd.dmaRead(dev, iova, 1)[0]).toBe(1);
    // Now the guest's PASID-based invalidation of that page (DID 5, RID_PASID 0).
    const before = unit.stats().assigned.forwarded;
    drv.queue.submit([pasidIotlbPages(5, 0, iova, 0, false)]);
    expect(unit.stats().assigned.forwarded).toBe(before + 1);
    expect(fd.translate(dev, iova, Access.Read)).toBeLessThan(0);
  });

  it("a global IOTLB invalidation reaches every nested HWPT as 'everything'", () => {
    const s = setup();
    const { fd, unit, drv, dev } = s;
    drv.probe();
    drv.attach(SID, { did: 5 });
    const iova = 0x4000_0000;
    drv.map(SID, iova, dataPage(s, 4), PAGE, R);
    expect(fd.dmaRead(dev, iova, 1)[0]).toBe(4);
    const leaf = firstStageLeaf(s, iova);
    unit.guest.i32[leaf] = 0;
    unit.guest.i32[leaf + 1] = 0;
    expect(fd.dmaRead(dev, iova, 1)[0]).toBe(4); // cached on the host
    const before = unit.stats().assigned.forwarded;
    drv.queue.submit([iotlbGlobal({ dr: 0, dw: 0 })]);
    expect(unit.stats().assigned.forwarded).toBe(before + 1);
    expect(fd.translate(dev, iova, Access.Read)).toBeLessThan(0);
  });

  it('a PASID the guest configures and names in a PASID-cache invalidation is attached on the host', () => {
    const s = setup({ pasidWidth: 8 }); // ECAP.PASID: the context entry may enable PASIDs
    const { fd, unit, drv, dev } = s;
    drv.probe();
    drv.attach(SID, { did: 5 });
    const iova = 0x4000_0000;
    drv.map(SID, iova, dataPage(s, 0x77), PAGE, R);
    // PASID 5: a copy of the RID_PASID entry (the same first-stage table and DID).
    const entry0 = pasidEntry(s, 0);
    const entry5 = pasidEntry(s, 5);
    expect(fd.translate(dev, iova, Access.Read, 5)).toBeLessThan(0); // nothing attached to PASID 5
    // The guest enables PASIDs in the context entry (PASIDE), as a driver binding a PASID does.
    unit.guest.i32[contextEntry(s)] = unit.guest.i32[contextEntry(s)]! | SM_CONTEXT_ENTRY.PASIDE;
    for (let w = 1; w < 16; w++) unit.guest.i32[entry5 + w] = unit.guest.i32[entry0 + w]!;
    unit.guest.i32[entry5] = unit.guest.i32[entry0]!;
    const attaches = unit.stats().assigned.hostAttaches;
    drv.queue.submit([pasidCache(5, PC_GRAN.PasidSelective, 5)]);
    expect(unit.stats().assigned.hostAttaches).toBe(attaches + 1);
    expect(fd.dmaRead(dev, iova, 1, { pasid: 5 })[0]).toBe(0x77);
    // Its invalidations are PASID 5's: one for PASID 0 leaves it cached.
    const leaf = firstStageLeaf(s, iova);
    unit.guest.i32[leaf] = 0;
    unit.guest.i32[leaf + 1] = 0;
    drv.queue.submit([pasidIotlbPages(5, 0, iova, 0, false)]);
    expect(fd.translate(dev, iova, Access.Read)).toBeLessThan(0);
    expect(fd.dmaRead(dev, iova, 1, { pasid: 5 })[0]).toBe(0x77);
    drv.queue.submit([pasidIotlbPages(5, 5, iova, 0, false)]);
    expect(fd.translate(dev, iova, Access.Read, 5)).toBeLessThan(0);
  });

  it('a guest second-stage domain cannot be nested on the host: the device stays blocked and it is counted', () => {
    const s = setup({}, { firstLevel: false });
    s.drv.probe();
    s.drv.attach(SID, { did: 6 });
    s.drv.map(SID, 0x10_0000, dataPage(s, 3), PAGE, R);
    expect(s.fd.translate(s.dev, 0x10_0000, Access.Read)).toBeLessThan(0);
    expect(s.unit.stats().assigned.unsupported).toBeGreaterThan(0);
  });

  it('closing the unit detaches the device and returns every frame', async () => {
    const s = setup();
    s.drv.probe();
    s.drv.attach(SID, { did: 5 });
    s.drv.map(SID, 0x4000_0000, dataPage(s, 9), PAGE, R);
    expect(s.fd.dmaRead(s.dev, 0x4000_0000, 1)[0]).toBe(9);
    await s.unit.close();
    expect(s.fd.translate(s.dev, 0x4000_0000, Access.Read)).toBeLessThan(0);
    s.fd.destroy(s.parent);
    s.fd.ioasUnmap(s.ioas, 0n, BigInt(16 * MIB));
    s.fd.deviceUnbind(s.dev);
    s.fd.destroy(s.ioas);
    await s.fd.close();
    open.pop();
    expect(s.fd.framesInUse()).toBe(0);
  });
});

/** The int32 index, in guest memory, of SID's scalable-mode context entry. */
function contextEntry(s: ReturnType<typeof setup>): number {
  const rta = Number(BigInt(s.unit.mmioRead(VTD_REG.RTADDR, 8)) & ~0xfffn);
  return (((s.unit.guest.i32[(rta + (SID >>> 8) * 16) / 4]! & ~0xfff) >>> 0) + (SID & 0x7f) * 32) / 4;
}

/** The int32 index, in guest memory, of SID's PASID entry `pasid` (context entry → directory → table). */
function pasidEntry(s: ReturnType<typeof setup>, pasid: number): number {
  const i32 = s.unit.guest.i32;
  const ptr = (at: number): number => (i32[at / 4]! & ~0xfff) >>> 0;
  return (ptr(ptr(contextEntry(s) * 4)) + pasid * 64) / 4;
}

/** The int32 index, in guest memory, of the first-stage leaf entry of `iova` for SID's RID_PASID. */
function firstStageLeaf(s: ReturnType<typeof setup>, iova: number): number {
  const i32 = s.unit.guest.i32;
  const ptr = (at: number): number => (i32[at / 4]! & ~0xfff) >>> 0;
  let t = ptr(pasidEntry(s, 0) * 4 + 16); // FLPTPTR in qword 2
  for (let level = 0; level < 3; level++) t = ptr(t + (Math.floor(iova / 2 ** (39 - 9 * level)) % 512) * 8);
  return t / 4 + (Math.floor(iova / PAGE) % 512) * 2;
}
