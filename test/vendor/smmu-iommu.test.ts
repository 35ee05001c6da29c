// The emulated SMMUv3 end to end, with structures built by hand in guest memory: a linear stream
// table, STEs of every Config, a CD, stage-1, stage-2 and nested tables, the command queue with
// every CMD_SYNC completion signal and every command error, the config cache and its CFGI
// commands, the IOTLB and its TLBIs, ATCs, the event queue with its overflow, and the isolation
// of units that share the IOTLB.
import { afterEach, describe, expect, it } from 'vitest';
import { Iommufd } from '../../src/index.js';
import { FrameAllocator } from '../../src/memory/index.js';
import {
  armS1Codec,
  armS1Config,
  armS2Codec,
  armS2Config,
  RadixPageTable,
  SMMU_EVT,
  TranslateFault,
} from '../../src/pgtable/index.js';
import {
  CFGI_ALL_RANGE,
  encodeCommand,
  Opcode,
  SyncCs,
  Tg,
  type CommandFields,
} from '../../src/vendor/smmuv3/commands.js';
import { decodeEvent, EVT_WORDS } from '../../src/vendor/smmuv3/records.js';
import { CERROR, CR0, CR2, GBPA, GERROR, SMMU_PAGE1, SMMU_REG } from '../../src/vendor/smmuv3/regs-defs.js';
import { EVT_CLASS, SMMU_CFG_EVT } from '../../src/vendor/smmuv3/resolve-events.js';
import { encodeSte, Ste, STE_CONFIG } from '../../src/vendor/smmuv3/structures.js';
import { Cd, encodeCd } from '../../src/vendor/smmuv3/structures-cd.js';

const R = 1;
const W = 2;
const SID = 5;
const ASID = 7;
const VMID = 3;
const STRTAB = 0x10000; // linear, 2^8 STEs
const CMDQ = 0x20000; // 2^4 entries
const EVTQ = 0x21000; // 2^3 entries
const CDTAB = 0x22000;
const CDTAB2 = 0x23000;
const MSI = 0x24000;
const RESERVED = 0x100000;
const CMDQ_LOG2 = 4;
const EVTQ_LOG2 = 3;

type Setup = ReturnType<typeof setup>;

/** A guest that boots one unit by hand: stream table, queues, SMMUEN. */
function setup(fd: Iommufd, opts: Parameters<Iommufd['smmuCreate']>[0] = {}) {
  const unit = fd.smmuCreate({ guestRamBytes: 16 * 2 ** 20, ...opts });
  const gp = unit.guest;
  const frames = new FrameAllocator(gp);
  frames.allocContiguous(RESERVED / 4096);
  const u32 = new Uint32Array(gp.sab, gp.u8.byteOffset, gp.u8.length / 4);
  const mmio = (off: number, v: number | bigint, size: 4 | 8 = 4): void => unit.mmioWrite(off, v, size);
  const read = (off: number): number => unit.mmioRead(off, 4) as number;
  mmio(SMMU_REG.STRTAB_BASE, BigInt(STRTAB), 8);
  mmio(SMMU_REG.STRTAB_BASE_CFG, 8); // linear, LOG2SIZE 8
  mmio(SMMU_REG.CMDQ_BASE, BigInt(CMDQ | CMDQ_LOG2), 8);
  mmio(SMMU_REG.EVTQ_BASE, BigInt(EVTQ | EVTQ_LOG2), 8);
  mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.EVTQEN);
  mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.EVTQEN | CR0.SMMUEN);
  let prod = 0;
  /** Writes commands at PROD without ringing. */
  const put = (...cmds: [number, CommandFields][]): void => {
    for (const [op, fields] of cmds) {
      encodeCommand(op, fields, u32, (CMDQ + (prod & 15) * 16) / 4);
      prod = (prod + 1) & 31;
    }
  };
  /** Writes a raw first word (an illegal command) at PROD. */
  const putRaw = (w0: number): void => {
    const at = (CMDQ + (prod & 15) * 16) / 4;
    u32.fill(0, at, at + 4);
    u32[at] = w0;
    prod = (prod + 1) & 31;
  };
  const ring = (): void => mmio(SMMU_REG.CMDQ_PROD, prod);
  const submit = (...cmds: [number, CommandFields][]): void => {
    put(...cmds);
    ring();
  };
  const sync = (fields: CommandFields = {}): [number, CommandFields] => [Opcode.Sync, fields];
  /** Writes the STE of `sid`. */
  const ste = (sid: number, fields: Partial<Ste>): void => {
    encodeSte(Object.assign(new Ste(), fields), gp.i32, (STRTAB + sid * 64) / 4);
  };
  /** Writes a CD at `at`. */
  const cd = (at: number, fields: Partial<Cd>): void => {
    encodeCd(Object.assign(new Cd(), fields), gp.i32, at / 4);
  };
  let evCons = 0;
  /** Drains the event queue as a driver does. */
  const events = () => {
    const out = [];
    const p = read(SMMU_PAGE1 + 0xa8);
    while (((p ^ evCons) & 0xf) !== 0) {
      const at = (EVTQ + (evCons & 7) * 32) / 4;
      out.push(decodeEvent(gp.i32.slice(at, at + EVT_WORDS)));
      evCons = (evCons + 1) & 15;
    }
    mmio(SMMU_PAGE1 + 0xac, (evCons | (p & 0x80000000)) >>> 0);
    return out;
  };
  const cons = (): number => read(SMMU_REG.CMDQ_CONS);
  return { unit, gp, frames, mmio, read, put, putRaw, ring, submit, sync, ste, cd, events, cons, u32 };
}

/** A stage-1 table, a CD at CDTAB and an S1 STE at SID: IOVA 0x40000000 → a data page. */
function stage1(s: Setup, opts: { asid?: number; vmid?: number; sid?: number; cdAt?: number } = {}) {
  const pt = new RadixPageTable(s.gp, s.frames, armS1Codec(armS1Config(16)));
  const data = s.frames.alloc() * 4096;
  pt.map(0x4000_0000, 4096, () => data, R | W, false);
  const cdAt = opts.cdAt ?? CDTAB;
  s.cd(cdAt, {
    valid: true,
    aa64: true,
    a: true,
    r: true,
    t0sz: 16,
    tg0: 0,
    ips: 5,
    epd1: true,
    asid: opts.asid ?? ASID,
    ttb0: pt.rootPa,
  });
  s.ste(opts.sid ?? SID, {
    valid: true,
    config: STE_CONFIG.S1,
    s1ContextPtr: cdAt,
    s2Vmid: opts.vmid ?? VMID,
  });
  return { pt, data };
}

const PAGE = 0x4000_0000;
let fd: Iommufd;
afterEach(async () => {
  await fd.close();
});

describe('SMMUv3 unit: translation', () => {
  it('translates stage 1 through the STE and CD, caches it in the IOTLB, and TLBI_NH_VA + CMD_SYNC drops it', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { pt, data } = stage1(s);
    s.gp.u8[data + 5] = 0xab;
    expect(s.unit.dmaRead({ sid: SID }, PAGE + 5, 1)[0]).toBe(0xab);
    const pa = s.unit.translate({ sid: SID }, PAGE, R);
    expect(pa).toBe(s.unit.ram.gpaToPa(data));
    expect(s.unit.stats().iotlbHits).toBe(1);
    pt.unmap(PAGE, 4096);
    // Still cached: the guest has not invalidated.
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(pa);
    s.submit([Opcode.TlbiNhVa, { vmid: VMID, asid: ASID, addr: PAGE, leaf: 1 }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(TranslateFault.NotMapped);
    expect(s.unit.lastEvent).toBe(SMMU_EVT.F_TRANSLATION);
    const ev = s.events();
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({
      type: SMMU_EVT.F_TRANSLATION,
      sid: SID,
      read: true,
      stage2: false,
      inputAddress: PAGE,
    });
    expect(() => s.unit.dmaRead({ sid: SID }, PAGE, 4)).toThrow(/EFAULT|faulted/);
  });

  it('keeps ASIDs apart: TLBI_NH_ASID of another ASID leaves the entry, its own drops it; NH_ALL of another VMID too', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { pt, data } = stage1(s);
    const pa = s.unit.translate({ sid: SID }, PAGE, R);
    pt.unmap(PAGE, 4096);
    s.submit([Opcode.TlbiNhAsid, { vmid: VMID, asid: ASID + 1 }], [Opcode.TlbiNhAll, { vmid: VMID + 1 }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(pa);
    s.submit([Opcode.TlbiNhAsid, { vmid: VMID, asid: ASID }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBeLessThan(0);
    expect(data).toBeGreaterThan(0);
  });

  it('a range TLBI (RIL) covers (NUM+1) << SCALE pages, and TLBI_NSNH_ALL drops everything of the unit', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { pt } = stage1(s);
    const data = s.frames.allocContiguous(8) * 4096;
    pt.map(PAGE + 0x10000, 8 * 4096, (off) => data + off, R | W, false);
    for (let i = 0; i < 8; i++) s.unit.translate({ sid: SID }, PAGE + 0x10000 + i * 4096, R);
    pt.unmap(PAGE + 0x10000, 8 * 4096);
    // 4 pages from +0x10000: NUM 3, SCALE 0, TG 4K, TTL 3.
    s.submit(
      [Opcode.TlbiNhVa, { vmid: VMID, asid: ASID, addr: PAGE + 0x10000, tg: Tg.K4, num: 3, scale: 0, ttl: 3 }],
      s.sync(),
    );
    expect(s.unit.translate({ sid: SID }, PAGE + 0x13000, R)).toBeLessThan(0);
    expect(s.unit.translate({ sid: SID }, PAGE + 0x14000, R)).toBeGreaterThan(0);
    s.submit([Opcode.TlbiNsnhAll, {}], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE + 0x15000, R)).toBeLessThan(0);
  });

  it('a stage-2 root at or above 4 GiB aborts the walk (F_WALK_EABT) rather than wrapping into low guest RAM', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const s2 = new RadixPageTable(s.gp, s.frames, armS2Codec(armS2Config(24, 1)));
    s2.map(0, 4 * 2 ** 20, (off) => off, R | W, false);
    const ste: Partial<Ste> = {
      valid: true,
      config: STE_CONFIG.S2,
      s2Vmid: VMID,
      s2T0sz: 24,
      s2Sl0: 1,
      s2Tg: 0,
      s2Ps: 5,
      s2Aa64: true,
      s2R: true,
      s2Ttb: 2 ** 32 + s2.rootPa,
    };
    s.ste(SID, ste);
    expect(s.unit.translate({ sid: SID }, 0x1000, R)).toBeLessThan(0);
    expect(s.events()[0]).toMatchObject({ type: SMMU_EVT.F_WALK_EABT });
  });

  it('stage 2 only, and nested: every CD and stage-1 table fetch goes through stage 2; TLBI_S12_VMALL drops nested entries', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    // Stage 2: IPA = GPA + 1 GiB over the first 4 MiB of guest RAM.
    const IPA = 2 ** 30;
    const s2 = new RadixPageTable(s.gp, s.frames, armS2Codec(armS2Config(24, 1)));
    s2.map(IPA, 4 * 2 ** 20, (off) => off, R | W, false);
    // The guest's stage-1 tables point at their next levels by GPA: stage 2 maps those 1:1 too.
    s2.map(0, 4 * 2 ** 20, (off) => off, R | W, false);
    const ste2: Partial<Ste> = {
      valid: true,
      config: STE_CONFIG.S2,
      s2Vmid: VMID,
      s2T0sz: 24,
      s2Sl0: 1,
      s2Tg: 0,
      s2Ps: 5,
      s2Aa64: true,
      s2R: true,
      s2Ttb: s2.rootPa,
    };
    s.ste(SID, ste2);
    const page = s.frames.alloc() * 4096;
    expect(s.unit.translate({ sid: SID }, IPA + page, W)).toBe(s.unit.ram.gpaToPa(page));
    // Outside stage 2: a stage-2 fault, recorded (S2R) with S2 = 1 and the IPA.
    expect(s.unit.translate({ sid: SID }, IPA + 8 * 2 ** 20, R)).toBe(TranslateFault.NotMapped);
    expect(s.events()[0]).toMatchObject({
      type: SMMU_EVT.F_TRANSLATION,
      stage2: true,
      class: EVT_CLASS.IN,
      address2: IPA + 8 * 2 ** 20,
    });
    // Nested: the stage-1 table and the CD are at IPAs.
    const pt = new RadixPageTable(s.gp, s.frames, armS1Codec(armS1Config(16)));
    const data = s.frames.alloc() * 4096;
    pt.map(PAGE, 4096, () => IPA + data, R | W, false);
    s.cd(CDTAB, {
      valid: true,
      aa64: true,
      a: true,
      r: true,
      t0sz: 16,
      ips: 5,
      epd1: true,
      asid: ASID,
      ttb0: IPA + pt.rootPa,
    });
    s.ste(SID, { ...ste2, config: STE_CONFIG.Nested, s1ContextPtr: IPA + CDTAB });
    // The config cache still holds the stage-2 STE until CFGI_STE: PAGE is IPA 1 GiB, GPA 0.
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(s.unit.ram.gpaToPa(0));
    s.submit([Opcode.CfgiSte, { sid: SID, leaf: 1 }], s.sync());
    const pa = s.unit.translate({ sid: SID }, PAGE, R);
    expect(pa).toBe(s.unit.ram.gpaToPa(data));
    pt.unmap(PAGE, 4096);
    s.submit([Opcode.TlbiNhVa, { vmid: VMID + 1, asid: ASID, addr: PAGE }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(pa);
    s.submit([Opcode.TlbiS12Vmall, { vmid: VMID }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBeLessThan(0);
    // A CD whose IPA stage 2 does not map: a stage-2 fault of the CD fetch (CLASS = CD).
    s.ste(SID, { ...ste2, config: STE_CONFIG.Nested, s1ContextPtr: IPA + 16 * 2 ** 20 });
    s.submit([Opcode.CfgiSte, { sid: SID }], s.sync());
    s.events();
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(TranslateFault.NoDomain);
    expect(s.events()[0]).toMatchObject({ type: SMMU_EVT.F_TRANSLATION, stage2: true, class: EVT_CLASS.CD });
  });

  it('a stage-2-only stream and a stage-1 stream with ASID 0 in the same VMID never share IOTLB entries; TLBI_S2_IPA reaches the stage-2 one', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { data } = stage1(s, { asid: 0 });
    const s2 = new RadixPageTable(s.gp, s.frames, armS2Codec(armS2Config(24, 1)));
    const other = s.frames.alloc() * 4096;
    s2.map(PAGE, 4096, () => other, R | W, false);
    s.ste(SID + 1, {
      valid: true,
      config: STE_CONFIG.S2,
      s2Vmid: VMID,
      s2T0sz: 24,
      s2Sl0: 1,
      s2Tg: 0,
      s2Ps: 5,
      s2Aa64: true,
      s2R: true,
      s2Ttb: s2.rootPa,
    });
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(s.unit.ram.gpaToPa(data));
    expect(s.unit.translate({ sid: SID + 1 }, PAGE, R)).toBe(s.unit.ram.gpaToPa(other));
    expect(s.unit.translate({ sid: SID + 1 }, PAGE, R)).toBe(s.unit.ram.gpaToPa(other));
    s2.unmap(PAGE, 4096);
    s.submit([Opcode.TlbiS2Ipa, { vmid: VMID, addr: PAGE }], s.sync());
    expect(s.unit.translate({ sid: SID + 1 }, PAGE, R)).toBeLessThan(0);
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(s.unit.ram.gpaToPa(data));
  });

  it('bypass and abort STEs, GBPA while SMMUEN = 0, and configuration events in the check order', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    s.ste(SID, { valid: true, config: STE_CONFIG.Bypass });
    expect(s.unit.translate({ sid: SID }, 0x5000, R)).toBe(s.unit.ram.gpaToPa(0x5000));
    s.ste(SID + 1, { valid: true, config: STE_CONFIG.Abort });
    expect(s.unit.translate({ sid: SID + 1 }, 0x5000, R)).toBe(TranslateFault.NoDomain);
    expect(s.events()).toEqual([]); // abort: no event
    expect(s.unit.translate({ sid: SID + 2 }, 0x5000, R)).toBe(TranslateFault.NoDomain); // V = 0
    expect(s.events()[0]).toMatchObject({ type: SMMU_CFG_EVT.C_BAD_STE, sid: SID + 2 });
    // SID beyond the table: recorded only with CR2.RECINVSID.
    expect(s.unit.translate({ sid: 0x1000 }, 0, R)).toBeLessThan(0);
    expect(s.events()).toEqual([]);
    s.mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.EVTQEN);
    s.mmio(SMMU_REG.CR2, CR2.RECINVSID);
    s.mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.EVTQEN | CR0.SMMUEN);
    expect(s.unit.translate({ sid: 0x1000 }, 0, R)).toBeLessThan(0);
    expect(s.events()[0]).toMatchObject({ type: SMMU_CFG_EVT.C_BAD_STREAMID, sid: 0x1000 });
    // A SubstreamID on a stream whose STE allows none.
    stage1(s);
    expect(s.unit.translate({ sid: SID, ssid: 3 }, PAGE, R)).toBeLessThan(0);
    expect(s.events()[0]).toMatchObject({ type: SMMU_CFG_EVT.C_BAD_SUBSTREAMID, ssid: 3 });
    // SMMUEN = 0: GBPA bypass, then abort.
    s.mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.EVTQEN);
    expect(s.unit.translate({ sid: 0x1000 }, 0x5000, R)).toBe(s.unit.ram.gpaToPa(0x5000));
    s.mmio(SMMU_REG.GBPA, (GBPA.ABORT | 0x80000000) >>> 0);
    expect(s.unit.translate({ sid: 0x1000 }, 0x5000, R)).toBe(TranslateFault.NoDomain);
  });

  it('CFGI_CD, CFGI_STE_RANGE and CFGI_ALL drop cached configuration; without them a changed CD is not seen', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { data } = stage1(s);
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(s.unit.ram.gpaToPa(data));
    const other = stage1(s, { asid: ASID + 1, cdAt: CDTAB2 });
    // The new STE/CD are not seen until invalidated (the IOTLB entry of ASID 7 is also still there).
    s.submit([Opcode.TlbiNhAll, { vmid: VMID }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(s.unit.ram.gpaToPa(data));
    s.submit([Opcode.TlbiNhAll, { vmid: VMID }], [Opcode.CfgiSteRange, { sid: SID & ~1, range: 0 }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(s.unit.ram.gpaToPa(other.data));
    // A CD edited in place: CFGI_CD.
    s.cd(CDTAB2, { valid: false });
    s.submit([Opcode.TlbiNhAll, { vmid: VMID }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBeGreaterThan(0);
    s.submit([Opcode.CfgiCd, { sid: SID, ssid: 0 }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBeLessThan(0);
    expect(s.events().map((e) => e.type)).toEqual([SMMU_CFG_EVT.C_BAD_CD]);
    s.cd(CDTAB2, {
      valid: true,
      aa64: true,
      a: true,
      r: true,
      t0sz: 16,
      ips: 5,
      epd1: true,
      asid: ASID + 1,
      ttb0: other.pt.rootPa,
    });
    s.submit([Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(s.unit.ram.gpaToPa(other.data));
  });

  it('ATS: with STE.EATS the device caches translations in its ATC; ATC_INV drops them', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { pt } = stage1(s);
    s.ste(SID, { valid: true, config: STE_CONFIG.S1, s1ContextPtr: CDTAB, s2Vmid: VMID, eats: 1 });
    s.unit.addAtsDevice(SID);
    const pa = s.unit.translate({ sid: SID }, PAGE, R);
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(pa);
    expect(s.unit.stats().atcHits).toBe(1);
    pt.unmap(PAGE, 4096);
    s.submit([Opcode.TlbiNhVa, { vmid: VMID, asid: ASID, addr: PAGE }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(pa); // the ATC still has it
    s.submit([Opcode.AtcInv, { sid: SID, addr: 0, size: 52 }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBeLessThan(0);
  });

  it('a huge ATC_INV span (2^31 pages, as Linux sends for an unmap straddling a 2^31-page boundary) flushes the device instead of probing a million regions', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { pt } = stage1(s);
    s.ste(SID, { valid: true, config: STE_CONFIG.S1, s1ContextPtr: CDTAB, s2Vmid: VMID, eats: 1 });
    s.unit.addAtsDevice(SID);
    const pa = s.unit.translate({ sid: SID }, PAGE, R);
    pt.unmap(PAGE, 4096);
    s.submit([Opcode.TlbiNhAll, { vmid: VMID }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBe(pa); // the ATC
    // Before the fix this one command took a minute (the test would time out).
    s.submit([Opcode.AtcInv, { sid: SID, addr: 0, size: 31 }], s.sync());
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBeLessThan(0);
  });
});

describe('SMMUv3 unit: the command queue', () => {
  it('CMD_SYNC: CS none, IRQ with an MSI into guest memory and the wired interrupt, SEV; CONS reaches PROD', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const irqs: string[] = [];
    const consAtIrq: number[] = [];
    s.unit.interrupts$.subscribe((i) => {
      irqs.push(i.kind);
      consAtIrq.push(s.cons());
    });
    s.gp.i32[MSI / 4] = -1;
    s.submit(s.sync(), s.sync({ cs: SyncCs.Irq, msiAddr: MSI, msiData: 0x1234 }), s.sync({ cs: SyncCs.Sev }));
    expect(s.gp.i32[MSI / 4]).toBe(0x1234);
    expect(s.cons()).toBe(3);
    const st = s.unit.stats().cmdq;
    expect(st).toMatchObject({ syncs: 3, syncIrq: 1, syncSev: 1, commands: 3 });
    expect(irqs).toContain('cmd-sync');
    // CONS has passed the sync when its interrupt arrives (the second command of the three).
    expect(consAtIrq[irqs.indexOf('cmd-sync')]).toBe(2);
  });

  it('an MSI outside guest RAM aborts: GERROR.MSI_CMDQ_ABT_ERR, and the queue goes on', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    s.submit(s.sync({ cs: SyncCs.Irq, msiAddr: 2 ** 40, msiData: 1 }), s.sync());
    expect(s.read(SMMU_REG.GERROR) & GERROR.MSI_CMDQ_ABT_ERR).not.toBe(0);
    expect(s.cons()).toBe(2);
  });

  it('CERROR_ILL: CONS stops on the bad command, what came before took effect, GERRORN resumes', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    const { pt } = stage1(s);
    s.unit.translate({ sid: SID }, PAGE, R);
    pt.unmap(PAGE, 4096);
    s.put([Opcode.TlbiNhAsid, { vmid: VMID, asid: ASID }]);
    s.putRaw(0xff); // not an opcode
    s.put(s.sync({ cs: SyncCs.Irq, msiAddr: MSI, msiData: 7 }));
    s.gp.i32[MSI / 4] = 0;
    s.ring();
    expect(s.unit.translate({ sid: SID }, PAGE, R)).toBeLessThan(0); // the TLBI before it ran
    expect(s.cons()).toBe(1 | (CERROR.ILL << 24));
    expect(s.read(SMMU_REG.GERROR) & GERROR.CMDQ_ERR).toBe(GERROR.CMDQ_ERR);
    expect(s.gp.i32[MSI / 4]).toBe(0); // the sync after it did not complete
    // More PROD writes do nothing while the error is active.
    s.ring();
    expect(s.cons() & 0xff).toBe(1);
    // Linux's recovery: overwrite the bad entry with a CMD_SYNC, then acknowledge.
    encodeCommand(Opcode.Sync, {}, s.u32, (CMDQ + 16) / 4);
    s.mmio(SMMU_REG.GERRORN, s.read(SMMU_REG.GERROR));
    expect(s.cons() & 0xff).toBe(3);
    expect(s.gp.i32[MSI / 4]).toBe(7);
    expect(s.unit.stats().cmdq.errIll).toBe(1);
  });

  it('CERROR_ABT for a queue outside guest RAM, and CERROR_ATC_INV_SYNC for a failed ATC invalidation', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    s.unit.addAtsDevice(SID);
    s.unit.injectAtcInvError(SID);
    s.submit([Opcode.AtcInv, { sid: SID, size: 52 }], s.sync());
    expect(s.cons()).toBe(1 | (CERROR.ATC_INV_SYNC << 24)); // stopped on the CMD_SYNC
    s.mmio(SMMU_REG.GERRORN, s.read(SMMU_REG.GERROR));
    expect(s.cons() & 0xff).toBe(2); // retried: the sync completes now
    // A queue base beyond guest RAM: the fetch aborts.
    const unit2 = fd.smmuCreate({ guestRamBytes: 2 ** 20 });
    unit2.mmioWrite(SMMU_REG.CMDQ_BASE, BigInt(2 ** 30) | 4n, 8);
    unit2.mmioWrite(SMMU_REG.CR0, CR0.CMDQEN, 4);
    unit2.mmioWrite(SMMU_REG.CMDQ_PROD, 1, 4);
    expect(unit2.mmioRead(SMMU_REG.CMDQ_CONS, 4)).toBe(CERROR.ABT << 24);
    expect((unit2.mmioRead(SMMU_REG.GERROR, 4) as number) & GERROR.CMDQ_ERR).toBe(GERROR.CMDQ_ERR);
    // A PROD with bits beyond the queue: only index and wrap count, nothing crashes.
    unit2.mmioWrite(SMMU_REG.CMDQ_PROD, 0xffffffff, 4);
    expect(unit2.stats().cmdq.errAbt).toBe(1);
  });

  it('the queue wraps: 40 commands through a 16-entry queue', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    for (let i = 0; i < 10; i++)
      s.submit(
        [Opcode.PrefetchConfig, { sid: SID }],
        [Opcode.TlbiNhAsid, { vmid: 1, asid: i }],
        [Opcode.CfgiCd, { sid: 1, ssid: 0 }],
        s.sync(),
      );
    expect(s.cons()).toBe(40 & 31);
    expect(s.unit.stats().cmdq.commands).toBe(40);
  });

  it('illegal commands per the advertised features: stage-2 TLBIs on a stage-1-only unit, ATC_INV without ATS', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd, { stage2: false, ats: false });
    s.submit([Opcode.TlbiS12Vmall, { vmid: 1 }]);
    expect(s.cons()).toBe(CERROR.ILL << 24);
    const s2 = setup(fd, { ats: false });
    s2.submit([Opcode.AtcInv, { sid: 1 }]);
    expect(s2.cons()).toBe(CERROR.ILL << 24);
  });
});

describe('SMMUv3 unit: events and isolation', () => {
  it('the event queue overflows: events are lost, PROD.OVFLG toggles once until acknowledged', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const s = setup(fd);
    for (let i = 0; i < 12; i++) s.unit.translate({ sid: 200 + i }, 0, R); // C_BAD_STE each
    const st = s.unit.stats().events;
    expect(st.written).toBe(8);
    expect(st.overflows).toBe(4);
    const prod = s.read(SMMU_PAGE1 + 0xa8);
    expect(prod >>> 31).toBe(1);
    const ev = s.events(); // acknowledges OVFLG
    expect(ev).toHaveLength(8);
    expect(ev[0]).toMatchObject({ type: SMMU_CFG_EVT.C_BAD_STE, sid: 200 });
    s.unit.translate({ sid: 250 }, 0, R);
    expect(s.events()).toHaveLength(1);
    expect(s.read(SMMU_PAGE1 + 0xa8) >>> 31).toBe(1); // OVFLG stays as acknowledged
  });

  it("units sharing the IOTLB: one guest's TLBIs (same VMID, same ASID) never drop the other's entries", () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const a = setup(fd);
    const b = setup(fd);
    const ta = stage1(a);
    const tb = stage1(b);
    const pa = a.unit.translate({ sid: SID }, PAGE, R);
    const pb = b.unit.translate({ sid: SID }, PAGE, R);
    ta.pt.unmap(PAGE, 4096);
    tb.pt.unmap(PAGE, 4096);
    b.submit(
      [Opcode.TlbiNsnhAll, {}],
      [Opcode.TlbiNhVa, { vmid: VMID, asid: ASID, addr: PAGE }],
      [Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE }],
      s2sync(),
    );
    expect(b.unit.translate({ sid: SID }, PAGE, R)).toBeLessThan(0);
    expect(a.unit.translate({ sid: SID }, PAGE, R)).toBe(pa);
    expect(pb).not.toBe(pa);
  });
});

function s2sync(): [number, CommandFields] {
  return [Opcode.Sync, {}];
}
