import { describe, expect, it } from 'vitest';
import { Access, Iommufd, MOCK_DEV_CACHE_DEFAULT, type ArmSmmuv3Command } from '../../src/index.js';
import { ARM_LO, ATTRIDX_WB, SH_INNER } from '../../src/pgtable/index.js';
import { encodeCommand, Opcode, type CommandFields } from '../../src/vendor/smmuv3/commands.js';
import { Cd, encodeCd, encodeL1Cd, TG0 } from '../../src/vendor/smmuv3/structures-cd.js';
import { expectErrno } from './helpers.js';

/*
 * SMMUv3 nesting through iommufd (reference/iommufd.md §2 VIOMMU, VDEVICE, HWPT_ALLOC with pt_id =
 * VIOMMU, attach; §3 "ARM SMMUv3"): a guest's vSTE on a vIOMMU translates DMA through the guest's
 * CD table and stage-1 tables, which live in guest memory (the nest parent's IOVA space, IOVA =
 * IPA) and are read through the parent's stage 2; and IOMMU_HWPT_INVALIDATE on the vIOMMU takes
 * the guest's raw CMDQ commands with the kernel's fix-ups (VMID, NSNH_ALL, vSID → SID) and EIO
 * rules. Also the selftest vIOMMU's invalidation format (per-device cache slots).
 */

const GUEST_BYTES = 4 * 2 ** 20; // guest RAM at IPA 0 (below the SMMU's MSI window at 0x800_0000)
const CDTAB = 0x1000; // guest-physical CD table
const CDLEAF = 0x2000; // a leaf CD table of a 2-level one
const ROOT = 0x1_0000; // stage-1 root tables
const ROOT2 = 0x1_1000;
const TABLES = 0x2_0000; // where further stage-1 tables go
const DATA = 0x20_0000; // guest-physical pages the mappings point at
const IOVA = 0x4000_0000; // the device's stage-1 addresses
const UNMAPPED_IPA = 0x100_0000; // beyond guest RAM: stage 2 maps nothing there
const VSID = 7;
const SID = 0x42;

const F_TRANSLATION = 0x10;
const F_PERMISSION = 0x13;
const C_BAD_STE = 0x04;
const F_STREAM_DISABLED = 0x06;
const C_BAD_SUBSTREAMID = 0x08;
const C_BAD_CD = 0x0a;

/** An S1_TRANS vSTE (word 0, word 1) with its CD table at `ctxPtr`. */
function s1Ste(
  ctxPtr: number,
  o: { cdMax?: number; fmt?: number; dss?: number; eats?: number } = {},
): [bigint, bigint] {
  return [
    1n | (5n << 1n) | (BigInt(o.fmt ?? 0) << 4n) | BigInt(ctxPtr) | (BigInt(o.cdMax ?? 0) << 59n),
    BigInt(o.dss ?? 0) | (BigInt(o.eats ?? 0) << 28n),
  ];
}
const ABORT_STE: [bigint, bigint] = [1n, 0n];
const BYPASS_STE: [bigint, bigint] = [1n | (4n << 1n), 0n];

/** A raw command, as the guest's CMDQ holds it. */
function cmd(opcode: number, fields: CommandFields = {}): ArmSmmuv3Command {
  const w = encodeCommand(opcode, fields);
  return [BigInt(w[0]!) | (BigInt(w[1]!) << 32n), BigInt(w[2]!) | (BigInt(w[3]!) << 32n)];
}

/** A VM: guest RAM at IPA 0 of an IOAS, an SMMUv3 nest parent over it, a vIOMMU, and a device with a vSID. */
class Vm {
  readonly fd: Iommufd;
  readonly ioas: number;
  readonly va: bigint;
  readonly dev: number;
  readonly parent: number;
  readonly viommu: number;
  #nextTable = TABLES;

  /** `pageAreas`: one 4 KiB IOAS area per page, so that the VMM can unmap any page. */
  constructor(bind: { ats?: boolean; pasidBits?: number } = {}, pageAreas = false, fd?: Iommufd) {
    this.fd = fd ?? Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    this.ioas = this.fd.ioasAlloc();
    this.va = this.fd.memory.mmap(BigInt(GUEST_BYTES));
    this.dev = this.fd.deviceBind({ iommu: 'smmuv3', sid: SID, ...bind });
    const step = pageAreas ? 4096 : GUEST_BYTES;
    for (let ipa = 0; ipa < GUEST_BYTES; ipa += step) {
      this.fd.ioasMap(this.ioas, {
        userVa: this.va + BigInt(ipa),
        length: BigInt(step),
        iova: BigInt(ipa),
        flags: { fixedIova: true, readable: true, writeable: true },
      });
    }
    this.parent = this.fd.hwptAlloc({ devId: this.dev, ptId: this.ioas, flags: { nestParent: true } });
    this.viommu = this.fd.viommuAlloc({ devId: this.dev, hwptId: this.parent, type: 'arm-smmuv3' });
    this.fd.vdeviceAlloc({ viommuId: this.viommu, devId: this.dev, virtId: VSID });
  }

  read64(ipa: number): bigint {
    return new DataView(this.fd.memory.read(this.va + BigInt(ipa), 8).buffer).getBigUint64(0, true);
  }

  write64(ipa: number, v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.fd.memory.write(this.va + BigInt(ipa), b);
  }

  /** Writes a CD (4 KiB granule, 48-bit TTB0, TTB1 disabled) at guest-physical `at`. */
  cd(at: number, c: Partial<Cd>): void {
    const base = { valid: true, aa64: true, t0sz: 16, tg0: TG0.K4, epd1: true, ips: 5, a: true, r: true };
    const words = encodeCd(Object.assign(new Cd(), base, c));
    this.fd.memory.write(this.va + BigInt(at), new Uint8Array(words.buffer));
  }

  /** Writes an L1CD pointing at the leaf table `l2Ptr` at guest-physical `at`. */
  l1cd(at: number, l2Ptr: number, valid = true): void {
    this.fd.memory.write(this.va + BigInt(at), new Uint8Array(encodeL1Cd({ valid, l2Ptr }).buffer));
  }

  /** The guest-physical address of the level-3 entry of `iova` under `root` (tables made as needed). */
  #leaf(root: number, iova: number): number {
    let table = root;
    for (let level = 0; level < 3; level++) {
      const at = table + (Math.floor(iova / 2 ** (39 - 9 * level)) % 512) * 8;
      let e = this.read64(at);
      if ((e & 1n) === 0n) {
        const next = this.#nextTable;
        this.#nextTable += 0x1000;
        e = BigInt(next) | 3n;
        this.write64(at, e);
      }
      table = Number(e & 0xffff_ffff_f000n);
    }
    return table + (Math.floor(iova / 4096) % 512) * 8;
  }

  /** Maps the 4 KiB page at `iova` to guest-physical `ipa` in the stage-1 tables at `root`. */
  map(iova: number, ipa: number, opts: { write?: boolean; root?: number } = {}): void {
    const bits =
      ARM_LO.Valid |
      ARM_LO.TableOrPage |
      ARM_LO.AF |
      ARM_LO.AP1 |
      (SH_INNER << ARM_LO.SHShift) |
      (ATTRIDX_WB << ARM_LO.AttrIndxShift) |
      (opts.write === false ? ARM_LO.AP2 : 0);
    this.write64(this.#leaf(opts.root ?? ROOT, iova), BigInt(ipa) | BigInt(bits >>> 0));
  }

  /** The guest clears the stage-1 entry of `iova` (without invalidating). */
  unmap(iova: number, root = ROOT): void {
    this.write64(this.#leaf(root, iova), 0n);
  }

  /** Allocates an arm-smmuv3 nested HWPT with vSTE `ste` on `viommu`. */
  vste(ste: [bigint, bigint], viommu = this.viommu, dev = this.dev): number {
    return this.fd.hwptAlloc({ devId: dev, ptId: viommu, dataType: 'arm-smmuv3', data: { ste } });
  }

  /** The common case: CD 0 of a one-CD table at CDTAB, ASID `asid`, TTB0 = ROOT; attached. */
  attachS1(asid = 1, ste: [bigint, bigint] = s1Ste(CDTAB)): number {
    this.cd(CDTAB, { asid, ttb0: ROOT });
    const n = this.vste(ste);
    this.fd.deviceAttach(this.dev, n);
    return n;
  }

  /** Writes a marker word into guest page `ipa`. */
  mark(ipa: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.fd.memory.write(this.va + BigInt(ipa), b);
  }

  /** What the device reads at `iova` by DMA: the first 4 bytes. */
  dmaWord(iova: number, pasid?: number, dev = this.dev): number {
    const b = this.fd.dmaRead(dev, iova, 4, pasid === undefined ? undefined : { pasid });
    return new DataView(b.buffer).getUint32(0, true);
  }

  /** The vendor code of the fault a read of `iova` takes (fails the test if it translates). */
  faultOf(iova: number, pasid?: number, dev = this.dev): number {
    expect(this.fd.translate(dev, iova, Access.Read, pasid)).toBeLessThan(0);
    return this.fd.lastFault().vendorCode;
  }

  inv(cmds: readonly ArmSmmuv3Command[] | Uint32Array, viommu = this.viommu): number {
    return this.fd.viommuInvalidate(viommu, { dataType: 'arm-smmuv3', cmds });
  }
}

describe('translation through an arm-smmuv3 nested HWPT (vSTE)', () => {
  it('S1 translate: the guest CD and stage 1, every read through the parent stage 2, reach the host page', () => {
    const vm = new Vm();
    vm.attachS1();
    vm.map(IOVA, DATA);
    vm.map(IOVA + 0x1000, DATA + 0x3000, { write: false });
    vm.mark(DATA, 0x1111);
    vm.mark(DATA + 0x3000, 0x2222);
    expect(vm.dmaWord(IOVA)).toBe(0x1111);
    expect(vm.dmaWord(IOVA + 0x1000)).toBe(0x2222);
    // A DMA write lands in the host page behind the guest page.
    vm.fd.dmaWrite(vm.dev, IOVA + 8, new Uint8Array([0xab]));
    expect(vm.fd.memory.read(vm.va + BigInt(DATA + 8), 1)[0]).toBe(0xab);
    // Stage-1 faults: a read-only page, an IOVA the guest did not map.
    expect(vm.fd.translate(vm.dev, IOVA + 0x1000, Access.Write)).toBeLessThan(0);
    expect(vm.fd.lastFault().vendorCode).toBe(F_PERMISSION);
    expect(vm.faultOf(IOVA + 0x10_0000)).toBe(F_TRANSLATION);
    void vm.fd.close();
    expect(vm.fd.framesInUse()).toBe(0);
  });

  it('the SSID selects the CD: linear table, S1DSS (terminate, bypass, substream 0), S1CDMax', () => {
    const vm = new Vm({ pasidBits: 20 });
    const { fd, dev } = vm;
    vm.map(IOVA, DATA);
    vm.map(IOVA, DATA + 0x5000, { root: ROOT2 });
    vm.mark(DATA, 1);
    vm.mark(DATA + 0x5000, 5);
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT });
    vm.cd(CDTAB + 2 * 64, { asid: 2, ttb0: ROOT2 });
    // S1CDMax = 3, S1DSS = substream 0: no PASID uses CD 0, PASID 2 CD 2; PASID 0 and 8 are bad.
    fd.deviceAttach(dev, vm.vste(s1Ste(CDTAB, { cdMax: 3, dss: 2 })));
    expect(vm.dmaWord(IOVA)).toBe(1);
    expect(vm.dmaWord(IOVA, 2)).toBe(5);
    expect(vm.faultOf(IOVA, 0)).toBe(C_BAD_SUBSTREAMID);
    expect(vm.faultOf(IOVA, 8)).toBe(C_BAD_SUBSTREAMID);
    expect(vm.faultOf(IOVA, 1)).toBe(C_BAD_CD); // CD 1 was never written (V = 0)
    // S1DSS = terminate: a request without PASID is F_STREAM_DISABLED; PASIDs still translate.
    fd.deviceReplace(dev, vm.vste(s1Ste(CDTAB, { cdMax: 3, dss: 0 })));
    expect(vm.faultOf(IOVA)).toBe(F_STREAM_DISABLED);
    expect(vm.dmaWord(IOVA, 0)).toBe(1);
    // S1DSS = bypass: a request without PASID takes stage 2 only (IOVA = IPA).
    fd.deviceReplace(dev, vm.vste(s1Ste(CDTAB, { cdMax: 3, dss: 1 })));
    expect(vm.dmaWord(DATA + 0x5000)).toBe(5);
    expect(vm.dmaWord(IOVA, 2)).toBe(5);
    // S1CDMax = 0: one CD, no substreams at all.
    fd.deviceReplace(dev, vm.vste(s1Ste(CDTAB)));
    expect(vm.faultOf(IOVA, 2)).toBe(C_BAD_SUBSTREAMID);
    expect(vm.dmaWord(IOVA)).toBe(1);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('2-level CD tables (S1Fmt = 64-CD leaves): the L1CD and the leaf CD are read through stage 2', () => {
    const vm = new Vm({ pasidBits: 20 });
    const { fd, dev } = vm;
    vm.map(IOVA, DATA, { root: ROOT2 });
    vm.mark(DATA, 0x64);
    vm.l1cd(CDTAB + 8, CDLEAF); // SSIDs 64..127
    vm.cd(CDLEAF + 5 * 64, { asid: 9, ttb0: ROOT2 });
    fd.deviceAttach(dev, vm.vste(s1Ste(CDTAB, { cdMax: 8, fmt: 1, dss: 0 })));
    expect(vm.dmaWord(IOVA, 64 + 5)).toBe(0x64);
    expect(vm.faultOf(IOVA, 2 * 64 + 5)).toBe(C_BAD_SUBSTREAMID); // L1CD 2: V = 0
    expect(vm.faultOf(IOVA, 256)).toBe(C_BAD_SUBSTREAMID); // beyond 2^S1CDMax
    // An L1CD whose leaf table stage 2 does not map: the leaf CD fetch faults at stage 2.
    vm.l1cd(CDTAB + 3 * 8, UNMAPPED_IPA);
    expect(vm.faultOf(IOVA, 3 * 64)).toBe(F_TRANSLATION);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('abort and non-valid vSTEs fault every translation; bypass translates by stage 2 only', () => {
    const vm = new Vm({ pasidBits: 20 });
    const { fd, dev } = vm;
    vm.mark(DATA, 0xb1);
    fd.deviceAttach(dev, vm.vste(ABORT_STE));
    expect(vm.faultOf(DATA)).toBe(0); // an abort STE records no event
    expect(fd.lastFault().reason).toBe('no-domain');
    fd.deviceReplace(dev, vm.vste([0n, 0n]));
    expect(vm.faultOf(DATA)).toBe(C_BAD_STE);
    fd.deviceReplace(dev, vm.vste(BYPASS_STE));
    expect(vm.dmaWord(DATA)).toBe(0xb1);
    expect(vm.faultOf(DATA, 1)).toBe(C_BAD_SUBSTREAMID); // no substreams without stage 1
    expect(vm.faultOf(UNMAPPED_IPA)).toBe(F_TRANSLATION); // stage 2 maps only guest RAM
    // The abort and bypass vSTEs attach without a vDEVICE too (the GBPA case).
    const dev2 = fd.deviceBind({ iommu: 'smmuv3' });
    fd.deviceAttach(dev2, vm.vste(BYPASS_STE, vm.viommu, dev2));
    expect(vm.dmaWord(DATA, undefined, dev2)).toBe(0xb1);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('a CD table or stage-1 table that stage 2 does not map faults; so does an illegal CD', () => {
    const vm = new Vm();
    const { fd, dev } = vm;
    vm.map(IOVA, DATA);
    fd.deviceAttach(dev, vm.vste(s1Ste(UNMAPPED_IPA)));
    expect(vm.faultOf(IOVA)).toBe(F_TRANSLATION); // the CD fetch, at stage 2
    vm.cd(CDTAB, { asid: 1, ttb0: UNMAPPED_IPA });
    fd.deviceReplace(dev, vm.vste(s1Ste(CDTAB)));
    expect(vm.faultOf(IOVA)).toBe(F_TRANSLATION); // the stage-1 root fetch, at stage 2
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT, valid: false });
    expect(vm.faultOf(IOVA)).toBe(C_BAD_CD);
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT, epd1: false }); // TTB1 enabled with T1SZ = 0: ILLEGAL
    expect(vm.faultOf(IOVA)).toBe(C_BAD_CD);
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT, tg0: TG0.K64 }); // a granule the host does not walk
    expect(vm.faultOf(IOVA)).toBe(C_BAD_CD);
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT, epd0: true }); // TTB0 disabled: a Translation fault
    expect(vm.faultOf(IOVA)).toBe(F_TRANSLATION);
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT });
    expect(fd.translate(dev, IOVA, Access.Read)).toBeGreaterThan(0);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('replace from a bypass vSTE to an S1 one and back, then detach; HWPTs busy while attached', () => {
    const vm = new Vm();
    const { fd, dev } = vm;
    vm.map(IOVA, DATA + 0x1000);
    vm.mark(DATA, 0xa);
    vm.mark(DATA + 0x1000, 0xb);
    vm.cd(CDTAB, { asid: 3, ttb0: ROOT });
    const bypass = vm.vste(BYPASS_STE);
    const s1 = vm.vste(s1Ste(CDTAB));
    fd.deviceAttach(dev, bypass);
    expect(vm.dmaWord(DATA)).toBe(0xa);
    expect(fd.deviceReplace(dev, s1)).toBe(s1);
    expect(vm.dmaWord(IOVA)).toBe(0xb);
    expect(vm.faultOf(DATA)).toBe(F_TRANSLATION); // stage 1 does not map it
    expectErrno(() => fd.destroy(s1), 'EBUSY');
    fd.destroy(bypass);
    expect(fd.deviceReplace(dev, vm.vste(BYPASS_STE))).toBeGreaterThan(0);
    expect(vm.dmaWord(DATA)).toBe(0xa);
    fd.destroy(s1);
    fd.deviceDetach(dev);
    expect(fd.translate(dev, DATA, Access.Read)).toBeLessThan(0);
    expect(fd.lastFault().reason).toBe('no-domain');
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('a parent unmap (stage 2) drops the nested translations: data page, stage-1 table, CD table', () => {
    const vm = new Vm({}, true);
    const { fd, dev } = vm;
    vm.attachS1();
    vm.map(IOVA, DATA);
    vm.map(IOVA + 0x1000, DATA + 0x1000);
    vm.mark(DATA, 7);
    expect(vm.dmaWord(IOVA)).toBe(7);
    expect(vm.dmaWord(IOVA)).toBe(7); // cached now
    fd.ioasUnmap(vm.ioas, BigInt(DATA), 0x1000n);
    expect(vm.faultOf(IOVA)).toBe(F_TRANSLATION);
    expect(fd.translate(dev, IOVA + 0x1000, Access.Read)).toBeGreaterThan(0);
    fd.ioasUnmap(vm.ioas, BigInt(ROOT), 0x1000n);
    expect(vm.faultOf(IOVA + 0x1000)).toBe(F_TRANSLATION);
    fd.ioasUnmap(vm.ioas, BigInt(CDTAB), 0x1000n);
    expect(vm.faultOf(IOVA + 0x1000)).toBe(F_TRANSLATION);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('the IOTLB serves a translation until the guest invalidates it; a CD change is seen at once (no CD caching)', () => {
    const vm = new Vm();
    const { fd } = vm;
    vm.attachS1(1);
    vm.map(IOVA, DATA);
    vm.map(IOVA, DATA + 0x7000, { root: ROOT2 });
    vm.mark(DATA, 1);
    vm.mark(DATA + 0x7000, 7);
    expect(vm.dmaWord(IOVA)).toBe(1);
    const hits = fd.cacheStats().hits;
    expect(vm.dmaWord(IOVA)).toBe(1);
    expect(fd.cacheStats().hits).toBeGreaterThan(hits);
    // The guest clears its entry: the IOTLB still serves it, as hardware would.
    vm.unmap(IOVA);
    expect(vm.dmaWord(IOVA)).toBe(1);
    // The guest rewrites CD 0 (another ASID, another table): the next translation fetches it.
    vm.cd(CDTAB, { asid: 2, ttb0: ROOT2 });
    expect(vm.dmaWord(IOVA)).toBe(7);
    // CFGI_CD is accepted; there is nothing to drop.
    expect(vm.inv([cmd(Opcode.CfgiCd, { sid: VSID, ssid: 0, leaf: 1 })])).toBe(1);
    expect(vm.dmaWord(IOVA)).toBe(7);
    // Back to ASID 1: its stale entry is still there until a TLBI by ASID and VA.
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT });
    expect(vm.dmaWord(IOVA)).toBe(1);
    expect(vm.inv([cmd(Opcode.TlbiNhVa, { asid: 1, addr: IOVA })])).toBe(1);
    expect(vm.faultOf(IOVA)).toBe(F_TRANSLATION);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});

describe('IOMMU_HWPT_INVALIDATE on an arm-smmuv3 vIOMMU (reference/iommufd.md §3)', () => {
  /** Two cached pages in ASID 1 (IOVA, IOVA + 0x1000) and one in ASID 2 (PASID 1, IOVA + 0x2000); guest entries cleared. */
  function cached(bind: { ats?: boolean } = {}, eats = 0): Vm {
    const vm = new Vm({ pasidBits: 20, ...bind });
    vm.cd(CDTAB, { asid: 1, ttb0: ROOT });
    vm.cd(CDTAB + 64, { asid: 2, ttb0: ROOT2 });
    vm.fd.deviceAttach(vm.dev, vm.vste(s1Ste(CDTAB, { cdMax: 1, dss: 2, eats })));
    for (let p = 0; p < 3; p++) {
      const root = p === 2 ? ROOT2 : ROOT;
      vm.map(IOVA + p * 0x1000, DATA + p * 0x1000, { root });
      vm.mark(DATA + p * 0x1000, 0x100 + p);
      expect(vm.dmaWord(IOVA + p * 0x1000, p === 2 ? 1 : undefined)).toBe(0x100 + p);
      vm.unmap(IOVA + p * 0x1000, root);
    }
    expect(served(vm)).toEqual([true, true, true]);
    return vm;
  }

  /** Which of the three cached pages still translate. */
  function served(vm: Vm): boolean[] {
    return [0, 1, 2].map((p) => vm.fd.translate(vm.dev, IOVA + p * 0x1000, Access.Read, p === 2 ? 1 : undefined) >= 0);
  }

  it('TLBI_NH_VA (by ASID and VA, also a RIL range), TLBI_NH_VAA, TLBI_NH_ASID, TLBI_NH_ALL, TLBI_NSNH_ALL', () => {
    const cases: [ArmSmmuv3Command, boolean[]][] = [
      [cmd(Opcode.TlbiNhVa, { asid: 1, addr: IOVA + 0x1000 }), [true, false, true]],
      [cmd(Opcode.TlbiNhVa, { asid: 2, addr: IOVA + 0x1000 }), [true, true, true]], // another ASID
      [cmd(Opcode.TlbiNhVa, { asid: 1, addr: IOVA, tg: 1, num: 1, leaf: 1 }), [false, false, true]], // 2 pages
      // Every ASID at a VA: the IOTLB cannot find a VA's entries across ASIDs, so it drops the
      // whole domain (an over-invalidation, which the architecture allows).
      [cmd(Opcode.TlbiNhVaa, { addr: IOVA + 0x2000 }), [false, false, false]],
      [cmd(Opcode.TlbiNhAsid, { asid: 1 }), [false, false, true]],
      [cmd(Opcode.TlbiNhAsid, { asid: 2 }), [true, true, false]],
      [cmd(Opcode.TlbiNhAll, {}), [false, false, false]],
      [cmd(Opcode.TlbiNsnhAll, {}), [false, false, false]],
      // The guest's VMID field is overwritten with the vIOMMU's: any value reaches its own entries.
      [cmd(Opcode.TlbiNhAll, { vmid: 0x1234 }), [false, false, false]],
      [cmd(Opcode.TlbiNhAsid, { vmid: 0xffff, asid: 1 }), [false, false, true]],
    ];
    for (const [c, expected] of cases) {
      const vm = cached();
      expect(vm.inv([c])).toBe(1);
      expect(served(vm)).toEqual(expected);
      void vm.fd.close();
    }
  });

  it('ATC_INV reaches the device ATC (with vSID → SID); a TLBI alone leaves it', () => {
    const vm = cached({ ats: true }, 1);
    const { fd } = vm;
    const atcHits = fd.cacheStats().atcHits;
    expect(vm.inv([cmd(Opcode.TlbiNhAll)])).toBe(1);
    // The IOTLB entries are gone, but the device's ATC still answers (ATS).
    expect(served(vm)).toEqual([true, true, true]);
    expect(fd.cacheStats().atcHits).toBeGreaterThan(atcHits);
    // One page of PASID 1; a page of every PASID (SSV = 0: the ATC drops the device's every
    // PASID, an over-invalidation); everything.
    expect(vm.inv([cmd(Opcode.AtcInv, { sid: VSID, ssv: 1, ssid: 1, addr: IOVA + 0x2000, size: 0 })])).toBe(1);
    expect(served(vm)).toEqual([true, true, false]);
    expect(vm.inv([cmd(Opcode.AtcInv, { sid: VSID, ssv: 1, ssid: 1, addr: IOVA, size: 0 })])).toBe(1);
    expect(served(vm)).toEqual([true, true, false]); // PASID 1 has nothing there
    expect(vm.inv([cmd(Opcode.AtcInv, { sid: VSID, addr: IOVA, size: 0 })])).toBe(1);
    expect(served(vm)[0]).toBe(false);
    expect(vm.inv([cmd(Opcode.AtcInv, { sid: VSID, size: 52 })])).toBe(1);
    expect(served(vm)).toEqual([false, false, false]);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('CFGI_CD and CFGI_CD_ALL translate the vSID and drop no translation', () => {
    const vm = cached();
    expect(vm.inv([cmd(Opcode.CfgiCd, { sid: VSID, ssid: 1 }), cmd(Opcode.CfgiCdAll, { sid: VSID })])).toBe(2);
    expect(served(vm)).toEqual([true, true, true]);
    void vm.fd.close();
  });

  it('VMID isolation: a vIOMMU invalidation never reaches another vIOMMU, whatever VMID it carries', () => {
    const vm = new Vm();
    const { fd } = vm;
    vm.attachS1();
    const dev2 = fd.deviceBind({ iommu: 'smmuv3' });
    const viommu2 = fd.viommuAlloc({ devId: dev2, hwptId: vm.parent, type: 'arm-smmuv3' });
    fd.vdeviceAlloc({ viommuId: viommu2, devId: dev2, virtId: VSID });
    fd.deviceAttach(dev2, vm.vste(s1Ste(CDTAB), viommu2, dev2));
    expect([fd.viommuInfo(vm.viommu).vmid, fd.viommuInfo(viommu2).vmid]).toEqual([1, 2]);
    vm.map(IOVA, DATA);
    vm.mark(DATA, 0x5a);
    expect(vm.dmaWord(IOVA)).toBe(0x5a);
    expect(vm.dmaWord(IOVA, undefined, dev2)).toBe(0x5a);
    vm.unmap(IOVA);
    const both = (): boolean[] => [vm.dev, dev2].map((d) => fd.translate(d, IOVA, Access.Read) >= 0);
    expect(both()).toEqual([true, true]);
    // The first vIOMMU's guest names the second's VMID: only its own entries go.
    expect(vm.inv([cmd(Opcode.TlbiNhAll, { vmid: 2 }), cmd(Opcode.TlbiNsnhAll)])).toBe(2);
    expect(both()).toEqual([false, true]);
    expect(vm.inv([cmd(Opcode.TlbiNhVa, { vmid: 2, asid: 1, addr: IOVA })])).toBe(1);
    expect(both()).toEqual([false, true]);
    // The second vIOMMU's own command (VMID field 1, rewritten to 2).
    expect(vm.inv([cmd(Opcode.TlbiNhAll, { vmid: 1 })], viommu2)).toBe(1);
    expect(both()).toEqual([false, false]);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('every other opcode is EIO, and so is a vSID without a vDEVICE', () => {
    const vm = new Vm();
    vm.attachS1();
    const accepted: number[] = [0x10, 0x11, 0x12, 0x13, 0x30, 0x40, 0x05, 0x06];
    for (let op = 0; op < 256; op++) {
      if (accepted.includes(op)) continue;
      expectErrno(() => vm.inv([[BigInt(op), 0n]]), 'EIO', 0);
    }
    for (const op of [Opcode.AtcInv, Opcode.CfgiCd, Opcode.CfgiCdAll]) {
      expectErrno(() => vm.inv([cmd(op, { sid: VSID + 1 })]), 'EIO', 0);
      expectErrno(() => vm.inv([cmd(op, { sid: SID })]), 'EIO', 0); // the physical SID is not a vSID
      expect(vm.inv([cmd(op, { sid: VSID })])).toBe(1);
    }
    // The vSID of a vDEVICE on another vIOMMU does not count.
    const viommu2 = vm.fd.viommuAlloc({ devId: vm.dev, hwptId: vm.parent, type: 'arm-smmuv3' });
    const dev2 = vm.fd.deviceBind({ iommu: 'smmuv3' });
    vm.fd.vdeviceAlloc({ viommuId: viommu2, devId: dev2, virtId: 99 });
    expectErrno(() => vm.inv([cmd(Opcode.CfgiCdAll, { sid: 99 })]), 'EIO', 0);
    void vm.fd.close();
    expect(vm.fd.framesInUse()).toBe(0);
  });

  it('commands before a failing one take effect: entryNum counts them', () => {
    const vm = cached();
    const page = (p: number): ArmSmmuv3Command => cmd(Opcode.TlbiNhVa, { asid: 1, addr: IOVA + p * 0x1000 });
    const e = expectErrno(
      () => vm.inv([page(0), cmd(Opcode.CfgiCd, { sid: VSID }), cmd(Opcode.CfgiSte, { sid: VSID }), page(1)]),
      'EIO',
      2,
    );
    expect(e.message).toContain('entry 2');
    expect(served(vm)).toEqual([false, true, true]);
    // A command the host SMMU finds illegal (TG set, NUM = SCALE = TTL = 0) is skipped and counted.
    expect(vm.inv([cmd(Opcode.TlbiNhVa, { asid: 1, addr: IOVA + 0x1000, tg: 1 })])).toBe(1);
    expect(served(vm)).toEqual([false, true, true]);
    expectErrno(() => vm.inv([page(1), cmd(Opcode.Sync)]), 'EIO', 1);
    expect(served(vm)).toEqual([false, false, true]);
    void vm.fd.close();
  });

  it('argument rules: ENOENT for anything but a vIOMMU, EINVAL for the data type or a malformed command (nothing done)', () => {
    const vm = cached();
    const { fd, ioas, parent, viommu } = vm;
    const nested = vm.vste(BYPASS_STE);
    for (const id of [0, 999, ioas, parent, nested, vm.dev])
      expectErrno(() => fd.viommuInvalidate(id, { dataType: 'arm-smmuv3', cmds: [] }), 'ENOENT', 0);
    for (const dataType of ['selftest', 'vtd-s1', 'none', 7])
      expectErrno(() => fd.viommuInvalidate(viommu, { dataType, entries: [], cmds: [] } as never), 'EINVAL', 0);
    const good = cmd(Opcode.TlbiNhAll);
    for (const bad of [[1n], [1n, 0n, 0n], [-1n, 0n], [2n ** 64n, 0n], [1, 0], 'x', null, {}]) {
      expectErrno(() => vm.inv([good, bad] as never), 'EINVAL', 0);
    }
    expectErrno(() => vm.inv({ length: 1 } as never), 'EINVAL', 0);
    expectErrno(() => vm.inv(new Uint32Array(6)), 'EINVAL', 0);
    expectErrno(() => fd.viommuInvalidate(viommu, null as never), 'EINVAL');
    expectErrno(() => fd.viommuInvalidate(-1, { dataType: 'arm-smmuv3', cmds: [] }), 'EINVAL');
    expect(served(vm)).toEqual([true, true, true]); // nothing took effect
    // No commands: only the data type is probed. The Uint32Array form: 4 words per command.
    expect(vm.inv([])).toBe(0);
    const words = new Uint32Array(8);
    encodeCommand(Opcode.TlbiNhAsid, { asid: 2 }, words, 0);
    encodeCommand(Opcode.TlbiNhVa, { asid: 1, addr: IOVA }, words, 4);
    expect(vm.inv(words)).toBe(2);
    expect(served(vm)).toEqual([false, true, false]);
    // HWPT_INVALIDATE with the vIOMMU's id is the same call.
    expect(fd.hwptInvalidate(viommu, { dataType: 'arm-smmuv3', entries: [good] })).toBe(1);
    expect(served(vm)).toEqual([false, false, false]);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});

describe('IOMMU_HWPT_INVALIDATE on a selftest vIOMMU (iommu_viommu_invalidate_selftest)', () => {
  it('vdevice_cache: per-device cache slots, ALL, unknown flag EOPNOTSUPP, bad cacheId or vdevId EINVAL, entryNum', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const dev = fd.deviceBind({ iommu: 'mock' });
    const dev2 = fd.deviceBind({ iommu: 'mock' });
    const ioas = fd.ioasAlloc();
    const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true } });
    const viommu = fd.viommuAlloc({ devId: dev, hwptId: parent, type: 'selftest' });
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev, virtId: 0x99 });
    fd.vdeviceAlloc({ viommuId: viommu, devId: dev2, virtId: 0x88 });
    const D = MOCK_DEV_CACHE_DEFAULT;
    expect(fd.mockDeviceCache(dev)).toEqual([D, D, D, D]);
    const inv = (entries: { flags?: { all?: boolean }; vdevId: number; cacheId: number }[]): number =>
      fd.viommuInvalidate(viommu, { dataType: 'selftest', entries });
    expect(inv([])).toBe(0);
    expectErrno(() => fd.viommuInvalidate(viommu, { dataType: 'arm-smmuv3', cmds: [] }), 'EINVAL', 0);
    expect(inv([{ vdevId: 0x99, cacheId: 2 }])).toBe(1);
    expect(fd.mockDeviceCache(dev)).toEqual([D, D, 0, D]);
    expect(fd.mockDeviceCache(dev2)).toEqual([D, D, D, D]);
    expectErrno(() => inv([{ vdevId: 0x99, cacheId: 4 }]), 'EINVAL', 0);
    expectErrno(() => inv([{ vdevId: 0x77, cacheId: 0 }]), 'EINVAL', 0);
    expectErrno(() => inv([{ vdevId: 0x99, cacheId: 0, flags: { bogus: true } as never }]), 'EOPNOTSUPP', 0);
    // The second entry fails: the first took effect.
    expectErrno(
      () =>
        inv([
          { vdevId: 0x88, cacheId: 1 },
          { vdevId: 0x88, cacheId: 9 },
          { vdevId: 0x88, cacheId: 3 },
        ]),
      'EINVAL',
      1,
    );
    expect(fd.mockDeviceCache(dev2)).toEqual([D, 0, D, D]);
    // A malformed entry anywhere: nothing is done.
    expectErrno(
      () =>
        inv([
          { vdevId: 0x88, cacheId: 0 },
          { vdevId: -1, cacheId: 0 },
        ]),
      'EINVAL',
      0,
    );
    expect(fd.mockDeviceCache(dev2)).toEqual([D, 0, D, D]);
    expect(inv([{ vdevId: 0x88, cacheId: 0, flags: { all: true } }])).toBe(1);
    expect(fd.mockDeviceCache(dev2)).toEqual([0, 0, 0, 0]);
    expect(fd.mockDeviceCache(dev)).toEqual([D, D, 0, D]);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});
