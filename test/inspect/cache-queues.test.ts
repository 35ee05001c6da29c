// Cache dumps and register state: the IOTLB and ATC entries a dump lists are the translations
// that filled them (tag, page, PA, grants), stale ones drop out after an invalidation, and dumping
// changes no counter; queue and fault state read through MMIO agree with the units' own getters.
import { afterEach, describe, expect, it } from 'vitest';
import { SmmuGuestDriver } from '../../src/guest/smmuv3/index.js';
import { VtdGuestDriver } from '../../src/guest/vtd/index.js';
import {
  dumpCache,
  formatCache,
  formatSmmuState,
  formatVtdState,
  iommufdAtcTag,
  iommufdIotlbTag,
  smmuRegisterState,
  vtdRegisterState,
} from '../../src/inspect/index.js';
import { Access, Iommufd } from '../../src/index.js';
import { encodeCommand, Opcode, Tg } from '../../src/vendor/smmuv3/commands.js';
import { VTD_REG } from '../../src/vendor/vtd/regs-defs.js';
import { Rig, slotIova } from '../property/nesting-rig.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const R = Access.Read;
const W = Access.Write;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

function newFd(): Iommufd {
  const fd = Iommufd.open({ memoryBytes: 64 * MIB });
  open.push(fd);
  return fd;
}

describe('cache dumps', () => {
  it('the IOTLB entries of a device are the pages it translated, with their grants; an unmap makes them go', () => {
    const fd = newFd();
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'vtd' });
    fd.deviceAttach(dev, ioas);
    const va = fd.memory.mmap(BigInt(16 * PAGE));
    // One area per page, so that one page can be unmapped (the whole-area rule).
    for (let k = 0; k < 16; k++)
      fd.ioasMap(ioas, {
        userVa: va + BigInt(k * PAGE),
        length: BigInt(PAGE),
        iova: BigInt(0x100_0000 + k * PAGE),
        flags: { fixedIova: true },
      });
    const pas = new Map<number, number>();
    for (const [k, access] of [
      [0, R],
      [3, R | W],
      [7, W],
    ] as const) {
      const pa = fd.translate(dev, 0x100_0000 + k * PAGE + 0x10, access);
      pas.set(0x100_0000 + k * PAGE, pa - 0x10);
    }
    const tag = iommufdIotlbTag(fd, { devId: dev });
    expect(tag).toBeGreaterThan(0);
    const stats = fd.cacheStats();
    const d = dumpCache(fd, { tag });
    expect(fd.cacheStats()).toEqual(stats);
    expect(d.entries.map((e) => [e.iova, e.pa, e.size])).toEqual([...pas].map(([iova, pa]) => [iova, pa, PAGE]));
    expect(d.entries.map((e) => `${+e.granted.read}${+e.granted.write}${+e.granted.user}${+e.granted.priv}`)).toEqual([
      '1010',
      '1110',
      '0110',
    ]);
    expect(d.entries.every((e) => e.live && e.tag === tag && e.domain === tag && e.asid === 0)).toBe(true);
    expect(formatCache(d)).toMatch(/IOTLB tag 0x[0-9a-f]+: 3 entries \(3 live/);
    fd.ioasUnmap(ioas, 0x100_3000n, BigInt(PAGE));
    const after = dumpCache(fd, { tag, includeStale: true });
    expect(after.entries.filter((e) => e.live).map((e) => e.iova)).toEqual([0x100_0000, 0x100_7000]);
    expect(dumpCache(fd, { tag }).entries.map((e) => e.iova)).toEqual([0x100_0000, 0x100_7000]);
  });

  it("an ATS device's ATC entries are under its slot, and an SMMUv3 vSTE's IOTLB entries under (descriptor, CD.ASID)", () => {
    const rig = new Rig({ vendor: 'smmuv3', mode: 'hardware', ats: true });
    open.push(rig.fd);
    rig.setLeaf(0, 2, { page: 1, write: true, dirty: true, af: true });
    rig.setLeaf(1, 9, { page: 5, write: false, dirty: true, af: true });
    const pa0 = rig.fd.translate(rig.dev, slotIova(2), R);
    const pa1 = rig.fd.translate(rig.dev, slotIova(9), R, 1);
    expect(pa0).toBeGreaterThan(0);
    expect(pa1).toBeGreaterThan(0);
    const tag0 = iommufdIotlbTag(rig.fd, { devId: rig.dev });
    const tag1 = iommufdIotlbTag(rig.fd, { devId: rig.dev, pasid: 1 });
    expect([tag0 >>> 12, tag1 >>> 12]).toEqual([1, 2]); // CD 0 has ASID 1, CD 1 ASID 2
    expect(dumpCache(rig.fd, { tag: tag0 }).entries.map((e) => [e.iova, e.pa])).toEqual([[slotIova(2), pa0]]);
    expect(dumpCache(rig.fd, { tag: tag1 }).entries.map((e) => [e.iova, e.pa])).toEqual([[slotIova(9), pa1]]);
    const byDomain = dumpCache(rig.fd, { domain: tag0 & 0xfff });
    expect(byDomain.entries.map((e) => e.asid)).toEqual([1, 2]);
    const atc = dumpCache(rig.fd, { table: 'atc', tag: iommufdAtcTag(rig.fd, { devId: rig.dev, pasid: 1 }) });
    expect(atc.entries.map((e) => [e.iova, e.pa, e.asid])).toEqual([[slotIova(9), pa1, 1]]);
  });

  it("an emulated unit's translations are in the fd's IOTLB", () => {
    const fd = newFd();
    const unit = fd.vtdCreate({ guestRamBytes: 16 * MIB });
    const drv = new VtdGuestDriver(unit);
    drv.probe();
    drv.attach(0x10, { did: 4 });
    const gpa = drv.frames.alloc() * PAGE;
    drv.map(0x10, 0x7000_0000, gpa, PAGE, 3);
    const pa = unit.translate({ sid: 0x10 }, 0x7000_0000, W);
    const all = dumpCache(fd).entries.filter((e) => e.iova === 0x7000_0000);
    expect(all.map((e) => [e.pa, e.granted.write])).toEqual([[pa, true]]);
  });
});

describe('register state', () => {
  it('VT-d: the invalidation queue and fault records as the guest driver left them, and an invalid descriptor (IQE)', () => {
    const fd = newFd();
    const unit = fd.vtdCreate({ guestRamBytes: 16 * MIB, faultRecords: 4 });
    const drv = new VtdGuestDriver(unit);
    drv.probe();
    drv.attach(0x10, { did: 4 });
    unit.translate({ sid: 0x10 }, 0x5000, W); // not mapped: a fault record
    const s = vtdRegisterState(unit);
    expect(s.gsts).toEqual({ tes: true, rtps: true, qies: true, ires: false });
    expect(s.rootTable).toEqual({ address: Number(unit.regs.rootTable.address), ttm: 0, mode: 'legacy' });
    const q = s.invalidationQueue;
    expect([q.base, q.entries, q.descriptorBits, q.headOffset, q.tailOffset, q.pending]).toEqual([
      Number(unit.regs.queueBase),
      unit.regs.queueSizeEntries,
      unit.regs.descriptorWidth,
      unit.regs.queueHead,
      unit.regs.queueTail,
      0,
    ]);
    expect(s.faultRecords).toHaveLength(4);
    expect(s.faultRecords[0]).toMatchObject({
      valid: true,
      sid: 0x10,
      address: 0x5000,
      type: 'write',
      reason: unit.lastFaultReason,
    });
    expect(s.faultStatus.ppf).toBe(true);
    // An invalid descriptor at the tail: IQE, IQH stays on it, one descriptor pending.
    const at = Number(unit.regs.queueBase) + unit.regs.queueTail;
    unit.guest.i32.fill(0, at / 4, at / 4 + 4);
    unit.guest.i32[at / 4] = 0xf; // type 0xf: unknown
    unit.mmioWrite(VTD_REG.IQT, BigInt((unit.regs.queueTail + 16) % (unit.regs.queueSizeEntries * 16)), 8);
    const e = vtdRegisterState(unit);
    expect(e.faultStatus.iqe).toBe(true);
    expect(e.invalidationQueue).toMatchObject({ pending: 1, iqei: 3, iqeiName: 'InvalidType' });
    expect(formatVtdState(e)).toMatch(/IQE 1/);
  });

  it('SMMUv3: queues as the guest driver left them, an event, and a command error (GERROR.CMDQ_ERR, CERROR_ILL)', () => {
    const fd = newFd();
    const unit = fd.smmuCreate({ guestRamBytes: 16 * MIB });
    const drv = new SmmuGuestDriver(unit, { policy: 'lazy' });
    drv.probe();
    drv.attachDevice(0x10);
    unit.translate({ sid: 0x10 }, 0x9000, R); // not mapped: F_TRANSLATION recorded (CD.R)
    const s = smmuRegisterState(unit);
    expect(s.cr0).toMatchObject({ smmuen: true, cmdqen: true, evtqen: true });
    expect(s.activeErrors).toEqual([]);
    expect([s.cmdq.base, s.cmdq.log2Size, s.cmdq.prod, s.cmdq.cons, s.cmdq.pending, s.cmdq.error]).toEqual([
      unit.regs.cmdqBase,
      unit.regs.cmdqLog2Size,
      unit.regs.cmdqProd,
      unit.regs.cmdqCons,
      0,
      0,
    ]);
    expect(s.evtq.pending).toBe(1);
    expect(s.streamTable).toMatchObject({ base: unit.regs.streamTable.address, format: unit.regs.streamTable.format });
    expect(s.priq).toBeDefined();
    const raw = new Uint32Array(4);
    encodeCommand(Opcode.TlbiNhVa, { asid: 1, addr: 0x20_0000, tg: Tg.K4 }, raw, 0); // NUM = SCALE = TTL = 0: illegal
    drv.submitRaw(raw, { sync: false });
    const e = smmuRegisterState(unit);
    expect(e.activeErrors).toEqual(['CMDQ_ERR']);
    expect(e.cmdq).toMatchObject({ error: 1, errorName: 'ILL', pending: 1 });
    expect(formatSmmuState(e)).toMatch(/CMDQ_ERR/);
  });
});
