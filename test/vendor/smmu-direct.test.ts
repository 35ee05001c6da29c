// The SMMUv3 direct queue path (issue 5 item 6, seed 001): a unit bound to an iommufd vIOMMU
// consumes the guest's command queue itself. An assigned host device does DMA through a vSTE
// nested HWPT whose CD and stage-1 tables live in the unit's guest RAM (mapped at IPA 0 of the
// IOAS); the guest's CFGI_STE exits to the VMM, which installs the vSTE and resumes; the guest's
// TLBIs reach the host's IOTLB before its CMD_SYNC completes; a vSID without a vDEVICE is
// CERROR_ILL; and a guest can never reach another vIOMMU's entries.
import { afterEach, describe, expect, it } from 'vitest';
import { Access, Iommufd, type SmmuIommu } from '../../src/index.js';
import { FrameAllocator } from '../../src/memory/index.js';
import { armS1Codec, armS1Config, RadixPageTable } from '../../src/pgtable/index.js';
import { encodeCommand, Opcode, type CommandFields } from '../../src/vendor/smmuv3/commands.js';
import type { SmmuExit } from '../../src/vendor/smmuv3/direct.js';
import { CERROR, CR0, GERROR, SMMU_REG } from '../../src/vendor/smmuv3/regs-defs.js';
import { encodeSte, Ste, STE_CONFIG } from '../../src/vendor/smmuv3/structures.js';
import { Cd, encodeCd } from '../../src/vendor/smmuv3/structures-cd.js';

const R = 1;
const W = 2;
const STRTAB = 0x10000;
const CMDQ = 0x20000; // 2^5 entries
const CDTAB = 0x22000;
const RESERVED = 0x100000;
const VSID = 9;
const ASID = 3;
const IOVA = 0x4000_0000;
/** The vSTE fields a nested STE may carry (STRTAB_STE_0/1_NESTING_ALLOWED). */
const STE0_ALLOWED = 1n | (7n << 1n) | (3n << 4n) | (((1n << 52n) - 1n) & ~63n) | (31n << 59n);
const STE1_ALLOWED = 0xffn | (1n << 27n) | (3n << 28n);

let fd: Iommufd;
afterEach(async () => {
  await fd.close();
});

/** A VM with one assigned device behind a vIOMMU whose register model is an SMMUv3 unit. */
function vm(sid: number) {
  const dev = fd.deviceBind({ iommu: 'smmuv3', sid });
  const ioas = fd.ioasAlloc();
  const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
  const viommu = fd.viommuAlloc({ devId: dev, hwptId: parent, type: 'arm-smmuv3' });
  const vdev = fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: VSID });
  const unit = fd.smmuCreate({ viommuId: viommu, guestRamBytes: 8 * 2 ** 20 });
  unit.mapGuestRam(ioas);
  const gp = unit.guest;
  const frames = new FrameAllocator(gp);
  frames.allocContiguous(RESERVED / 4096);
  const u32 = new Uint32Array(gp.sab, gp.u8.byteOffset, gp.u8.length / 4);
  const mmio = (off: number, v: number | bigint, size: 4 | 8 = 4): void => unit.mmioWrite(off, v, size);
  mmio(SMMU_REG.STRTAB_BASE, BigInt(STRTAB), 8);
  mmio(SMMU_REG.STRTAB_BASE_CFG, 8);
  mmio(SMMU_REG.CMDQ_BASE, BigInt(CMDQ | 5), 8);
  mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.SMMUEN);
  let prod = 0;
  const submit = (...cmds: [number, CommandFields][]): void => {
    for (const [op, fields] of cmds) {
      encodeCommand(op, fields, u32, (CMDQ + (prod & 31) * 16) / 4);
      prod = (prod + 1) & 63;
    }
    mmio(SMMU_REG.CMDQ_PROD, prod);
  };
  const cons = (): number => unit.mmioRead(SMMU_REG.CMDQ_CONS, 4) as number;
  /** Rewrites queue entry `index` as a bare command (no ring). */
  const overwrite = (index: number, op: number): void => {
    encodeCommand(op, {}, u32, (CMDQ + (index & 31) * 16) / 4);
  };
  // The guest's stage-1 table, CD and STE for its device (vSID).
  const pt = new RadixPageTable(gp, frames, armS1Codec(armS1Config(16)));
  const data = frames.alloc() * 4096;
  pt.map(IOVA, 4096, () => data, R | W, false);
  encodeCd(
    Object.assign(new Cd(), {
      valid: true,
      aa64: true,
      a: true,
      r: true,
      t0sz: 16,
      ips: 5,
      epd1: true,
      asid: ASID,
      ttb0: pt.rootPa,
    }),
    gp.i32,
    CDTAB / 4,
  );
  encodeSte(
    Object.assign(new Ste(), { valid: true, config: STE_CONFIG.S1, s1ContextPtr: CDTAB }),
    gp.i32,
    (STRTAB + VSID * 64) / 4,
  );
  // The VMM: a CFGI_STE exit installs the guest's STE as the device's vSTE HWPT.
  const exits: SmmuExit[] = [];
  let hwpt = 0;
  unit.exits$.subscribe((e) => {
    exits.push(e);
    if (e.opcode === Opcode.CfgiSte) {
      const at = (STRTAB + e.words[1]! * 64) / 4;
      const w0 = (BigInt(gp.i32[at]! >>> 0) | (BigInt(gp.i32[at + 1]! >>> 0) << 32n)) & STE0_ALLOWED;
      const w1 = (BigInt(gp.i32[at + 2]! >>> 0) | (BigInt(gp.i32[at + 3]! >>> 0) << 32n)) & STE1_ALLOWED;
      const next = fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: 'arm-smmuv3', data: { ste: [w0, w1] } });
      if (hwpt === 0) fd.deviceAttach(dev, next);
      else {
        fd.deviceReplace(dev, next);
        fd.destroy(hwpt);
      }
      hwpt = next;
    }
    unit.resumeExit();
  });
  return { dev, vdev, ioas, viommu, unit, gp, pt, data, submit, cons, overwrite, exits, prod: () => prod };
}

function bound(u: SmmuIommu): number {
  return u.viommuId ?? -1;
}

describe('SMMUv3 direct queue path', () => {
  it('CFGI_STE exits to the VMM, which installs the vSTE; DMA then goes through the guest tables; a TLBI reaches the host IOTLB before the CMD_SYNC completes', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const v = vm(0x40);
    expect(fd.viommuUnit(v.viommu)).toBe(v.unit);
    expect(bound(v.unit)).toBe(v.viommu);
    v.submit([Opcode.CfgiSte, { sid: VSID }], [Opcode.PrefetchConfig, { sid: VSID }], [Opcode.Sync, {}]);
    expect(v.exits.map((e) => e.name)).toEqual(['CFGI_STE', 'PREFETCH_CONFIG']);
    expect(v.cons()).toBe(v.prod()); // resumed: the sync completed
    v.gp.u8[v.data + 3] = 0x5a;
    expect(fd.dmaRead(v.dev, IOVA + 3, 1)[0]).toBe(0x5a);
    expect(fd.translate(v.dev, IOVA, Access.Read)).toBeGreaterThan(0);
    // The guest unmaps without invalidating: the host still serves the cached translation.
    v.pt.unmap(IOVA, 4096);
    expect(fd.dmaRead(v.dev, IOVA + 3, 1)[0]).toBe(0x5a);
    // TLBI_NH_VA with the guest's own VMID field (0): the vIOMMU's VMID replaces it.
    v.submit([Opcode.TlbiNhVa, { vmid: 0, asid: ASID, addr: IOVA, leaf: 1 }], [Opcode.Sync, {}]);
    expect(v.cons()).toBe(v.prod());
    expect(() => fd.dmaRead(v.dev, IOVA, 1)).toThrow();
    expect(v.unit.stats().direct).toMatchObject({ forwarded: 1, exits: 2, unknownVsid: 0, forwardErrors: 0 });
  });

  it('a vSID without a vDEVICE is CERROR_ILL on that entry; what came before was forwarded', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const v = vm(0x40);
    v.submit([Opcode.TlbiNhAsid, { asid: ASID }], [Opcode.CfgiCd, { sid: VSID + 1, ssid: 0 }], [Opcode.Sync, {}]);
    expect(v.cons()).toBe(1 | (CERROR.ILL << 24));
    expect((v.unit.mmioRead(SMMU_REG.GERROR, 4) as number) & GERROR.CMDQ_ERR).toBe(GERROR.CMDQ_ERR);
    expect(v.unit.stats().direct).toMatchObject({ forwarded: 1, unknownVsid: 1 });
  });

  it("isolation: one guest's TLBIs, whatever VMID they carry, and its ATC/CFGI commands never reach another vIOMMU's device", () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const a = vm(0x40);
    const b = vm(0x41);
    for (const v of [a, b]) v.submit([Opcode.CfgiSte, { sid: VSID }], [Opcode.Sync, {}]);
    for (const v of [a, b]) expect(fd.translate(v.dev, IOVA, Access.Read)).toBeGreaterThan(0);
    b.pt.unmap(IOVA, 4096);
    const vmidB = fd.viommuInfo(b.viommu).vmid;
    a.submit(
      [Opcode.TlbiNhAll, { vmid: vmidB }],
      [Opcode.TlbiNhVa, { vmid: vmidB, asid: ASID, addr: IOVA }],
      [Opcode.TlbiNsnhAll, {}],
      [Opcode.CfgiCdAll, { sid: VSID }],
      [Opcode.Sync, {}],
    );
    expect(a.cons()).toBe(a.prod());
    expect(a.unit.stats().direct?.forwarded).toBe(4);
    // B's entry survives (its guest unmapped but did not invalidate); B's own TLBI drops it.
    expect(fd.translate(b.dev, IOVA, Access.Read)).toBeGreaterThan(0);
    b.submit([Opcode.TlbiNhAll, { vmid: 0 }], [Opcode.Sync, {}]);
    expect(fd.translate(b.dev, IOVA, Access.Read)).toBeLessThan(0);
  });

  it('a destroyed vDEVICE or vIOMMU never makes the doorbell throw: unknown vSIDs are CERROR_ILL, failed forwards are counted', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const v = vm(0x40);
    fd.destroy(v.vdev);
    v.submit([Opcode.CfgiCd, { sid: VSID, ssid: 0 }]);
    expect(v.cons()).toBe(CERROR.ILL << 24);
    // Linux's recovery: the bad entry becomes a CMD_SYNC, then GERRORN.
    v.overwrite(0, Opcode.Sync);
    v.unit.mmioWrite(SMMU_REG.GERRORN, v.unit.mmioRead(SMMU_REG.GERROR, 4), 4);
    expect(v.cons() & 0xff).toBe(v.prod()); // ERR keeps the last error code, as in QEMU
    fd.destroy(v.viommu);
    expect(() => v.submit([Opcode.TlbiNhAll, {}], [Opcode.Sync, {}])).not.toThrow();
    expect(v.cons() & 0xff).toBe(v.prod());
    expect(v.unit.stats().direct).toMatchObject({ forwardErrors: 1, unknownVsid: 1 });
    v.submit([Opcode.AtcInv, { sid: VSID, size: 52 }]);
    expect(v.cons() & 0xff).toBe((v.prod() - 1) & 63);
    expect(v.unit.stats().direct?.unknownVsid).toBe(2);
  });

  it('binding rules: ENOENT for no vIOMMU, EEXIST for a second unit, EINVAL for a selftest vIOMMU; exits$ needs a binding', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const v = vm(0x40);
    expect(() => fd.smmuCreate({ viommuId: v.viommu })).toThrow(/EEXIST|has a unit/);
    expect(() => fd.smmuCreate({ viommuId: 999 })).toThrow();
    expect(() => fd.viommuUnit(v.ioas)).toThrow();
    const mdev = fd.deviceBind({ iommu: 'mock' });
    const mioas = fd.ioasAlloc();
    const mparent = fd.hwptAlloc({ devId: mdev, ptId: mioas, flags: { nestParent: true } });
    const mviommu = fd.viommuAlloc({ devId: mdev, hwptId: mparent, type: 'selftest' });
    expect(() => fd.smmuCreate({ viommuId: mviommu })).toThrow(/not arm-smmuv3/);
    const plain = fd.smmuCreate({ guestRamBytes: 2 ** 20 });
    expect(() => plain.exits$).toThrow(/not bound/);
    expect(plain.viommuId).toBeUndefined();
  });
});
