import { describe, expect, it } from 'vitest';
import { FrameAllocator } from '../../src/memory/frame-alloc.js';
import { PhysMemory } from '../../src/memory/phys.js';
import { armS1Codec, armS2Codec } from '../../src/pgtable/arm/codec.js';
import { armS1Config, armS2Config } from '../../src/pgtable/arm/config.js';
import { SMMU_EVT } from '../../src/pgtable/arm/desc.js';
import { armS1Walk, armS2Walk } from '../../src/pgtable/arm/walk.js';
import { RadixPageTable } from '../../src/pgtable/radix.js';
import { Access, Prot, WalkFault } from '../../src/pgtable/types.js';
import { CFG, cfgOutputSize, packWalkConfig } from '../../src/pgtable/walk-config.js';
import { SmmuResolver } from '../../src/vendor/smmuv3/resolve.js';
import { HTTU, STALL_MODEL, STRTAB_FMT } from '../../src/vendor/smmuv3/regs-defs.js';
import {
  SMMU_ABORT,
  SMMU_BYPASS,
  SMMU_CFG_FLAG,
  SMMU_RESOLVED,
  SmmuConfig,
  type SmmuCaps,
} from '../../src/vendor/smmuv3/resolve-config.js';
import { EVT_CLASS, SMMU_CFG_EVT } from '../../src/vendor/smmuv3/resolve-events.js';
import { ArmStage2Translator, type Stage2Translator } from '../../src/vendor/smmuv3/resolve-stage2.js';
import { PhysQwordReader } from '../../src/vendor/vtd/resolve-reader.js';
import {
  encodeL1Std,
  encodeSte,
  encodeStrtabBase,
  encodeStrtabBaseCfg,
  L1Std,
  S1DSS,
  S1FMT,
  Ste,
  STE_CONFIG,
} from '../../src/vendor/smmuv3/structures.js';
import { Cd, cdLeafBits, encodeCd, encodeL1Cd, L1Cd, TG1 } from '../../src/vendor/smmuv3/structures-cd.js';

/*
 * The SMMUv3 configuration fetch (reference/config-formats.md §3, §5.1): the configurations it
 * returns, every event it raises, one test per check of §5.1, the order of the checks when two
 * apply, and nested CD fetches through a real stage-2 table. Structures are written with the
 * encoders into a small physical memory; page tables are built with the Arm codecs.
 */

const EVT = SMMU_CFG_EVT;
const F = SMMU_CFG_FLAG;

const MEM_BYTES = 4 * 2 ** 20;
/** Hand-placed structures live below this; the page-table builders allocate above it. */
const RESERVED = 0x40000;
const STRTAB = 0x4000; // linear, LOG2SIZE 8: 16 KiB, 16 KiB aligned
const L1ST = 0x8000; // 2-level L1 table
const L2ST = 0x9000; // 256 STEs
const CDTAB = 0x10000; // the CD, the linear CD table or the L1CD table
const CDLEAF = 0x12000; // a 4 KiB leaf CD table
const CDLEAF64 = 0x20000; // a 64 KiB leaf CD table
const S2TTB = 0x30000; // a stage-2 root that is never walked: 2 concatenated tables, 8 KiB aligned
/** Beyond physical memory but inside every address size used here: its reads abort. */
const FAR = 2 ** 40;
/** SID 0x123: L1 index 1 with SPLIT 8, L2 index 0x23. */
const SID = 0x123;
const SSID = 0x47; // 2-level with 4 KiB leaves: L1CD 1, CD 7

/** Nested IPA layout: [IPA_OFF, IPA_OFF + RESERVED) maps to PA [0, RESERVED). */
const IPA_OFF = 2 ** 39;
/** An IPA mapped write-only (no stage-2 read permission). */
const IPA_WO = IPA_OFF + 0x100000;
/** An IPA mapped to FAR: stage 2 translates it, the read then aborts. */
const IPA_FAR = IPA_OFF + 0x200000;
/** An IPA stage 2 does not map. */
const IPA_HOLE = IPA_OFF + 0x300000;

const CAPS: SmmuCaps = {
  s1p: true,
  s2p: true,
  stLevel2: true,
  cd2l: true,
  sidBits: 16,
  ssidBits: 16,
  oas: 5,
  gran4k: true,
  gran16k: false,
  gran64k: true,
  ats: true,
  stallModel: STALL_MODEL.StallAndTerminate,
  termModel: true,
  httu: HTTU.AccessDirty,
  asid16: true,
  vmid16: true,
};

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const mem = new PhysMemory(MEM_BYTES);
const frames = new FrameAllocator(mem);
frames.allocContiguous(RESERVED / 4096);

// A 40-bit stage 2 starting at level 1 with 2 concatenated tables (S2T0SZ 24, S2SL0 1).
const s2 = new RadixPageTable(mem, frames, armS2Codec(armS2Config(24, 1)));
s2.map(IPA_OFF, RESERVED, (off) => off, Prot.Read | Prot.Write, false);
s2.map(IPA_WO, 4096, () => CDTAB, Prot.Write, false);
s2.map(IPA_FAR, 4096, () => FAR, Prot.Read, false);
// A 48-bit stage 1 mapping IOVA 0x1000_0000 to PA 0x5000.
const s1 = new RadixPageTable(mem, frames, armS1Codec(armS1Config(16)));
s1.map(0x1000_0000, 4096, () => 0x5000, Prot.Read, false);

/** Where a raw bit is ORed in after encoding: structure, word, bits. */
type Raw = ['ste' | 'l1std' | 'l1cd' | 'cd', number, number];

/**
 * One SMMU with a stream table and a CD table in memory. By default: a linear stream table of
 * 2^8 StreamIDs; the STE at SID translates stage 1 with a single CD (S1CDMax 0), and carries a
 * valid 40-bit stage 2 (VMID 0x1234, S2R) that its Config does not use; the CD has a 48-bit
 * TTB0 (the stage-1 table above), ASID 0xbeef, A and R set, TTB1 disabled.
 */
class World {
  caps: Mutable<SmmuCaps> = { ...CAPS };
  fmt: number = STRTAB_FMT.Linear;
  log2size = 8;
  split = 8;
  base = STRTAB;
  l1std: L1Std = Object.assign(new L1Std(), { span: 9, l2Ptr: L2ST });
  ste: Ste = Object.assign(new Ste(), {
    valid: true,
    config: STE_CONFIG.S1,
    s1ContextPtr: CDTAB,
    eats: 1,
    strw: 0,
    s2Vmid: 0x1234,
    s2T0sz: 24,
    s2Sl0: 1,
    s2Tg: 0,
    s2Ps: 5,
    s2Aa64: true,
    s2R: true,
    s2Ttb: S2TTB,
  });
  l1cd: L1Cd = Object.assign(new L1Cd(), { valid: true, l2Ptr: CDLEAF });
  cd: Cd = Object.assign(new Cd(), {
    valid: true,
    aa64: true,
    a: true,
    r: true,
    t0sz: 16,
    tg0: 0,
    ips: 5,
    epd1: true,
    t1sz: 16,
    tg1: TG1.K4,
    asid: 0xbeef,
    ttb0: s1.rootPa,
    mair0: 0x0404ff44,
    mair1: 0xf4,
  });
  raw: Raw[] = [];
  /** Subtracted from a CD-table pointer to find where to write it (IPA_OFF when nested). */
  ipaOff = 0;
  stage2: Stage2Translator = new ArmStage2Translator(mem.i32);

  /** Nested: stage 2 is the real table above and the CD-table pointers are IPAs. */
  nested(): this {
    this.ste.config = STE_CONFIG.Nested;
    this.ste.s2Ttb = s2.rootPa;
    this.ste.s1ContextPtr = CDTAB + IPA_OFF;
    this.l1cd.l2Ptr = CDLEAF + IPA_OFF;
    this.ipaOff = IPA_OFF;
    return this;
  }

  /** Substreams: a CD table of 2^cdMax CDs in format `fmt`. */
  substreams(cdMax: number, fmt: number = S1FMT.Linear): this {
    Object.assign(this.ste, { s1CdMax: cdMax, s1Fmt: fmt, s1Dss: S1DSS.Substream0 });
    if (fmt === S1FMT.TwoLevel64K) this.l1cd.l2Ptr = CDLEAF64 + this.ipaOff;
    return this;
  }

  resolver(): SmmuResolver {
    const r = new SmmuResolver(new PhysQwordReader(mem.i32), this.caps, this.stage2);
    const b = encodeStrtabBase(this.base, false);
    r.setStrtabBase(b[0]!, b[1]!);
    r.setStrtabBaseCfg(encodeStrtabBaseCfg({ log2size: this.log2size, split: this.split, fmt: this.fmt }));
    return r;
  }

  /** Writes the structures `sid` and `ssid` select, then resolves. */
  resolve(sid = SID & 0xff, ssid = -1, out = new SmmuConfig()): number {
    mem.i32.fill(0, 0, RESERVED / 4);
    const at: Record<Raw[0], number> = { ste: -1, l1std: -1, l1cd: -1, cd: -1 };
    if (this.fmt === STRTAB_FMT.TwoLevel) {
      at.l1std = this.base + (sid >>> this.split) * 8;
      at.ste = this.l1std.l2Ptr + (sid & (2 ** this.split - 1)) * 64;
    } else {
      at.ste = this.base + sid * 64;
    }
    const idx = ssid < 0 ? 0 : ssid;
    const ctx = this.ste.s1ContextPtr - this.ipaOff;
    const leafBits = this.ste.s1CdMax === 0 ? 0 : cdLeafBits(this.ste.s1Fmt);
    if (leafBits === 0) {
      at.cd = ctx + (this.ste.s1CdMax === 0 ? 0 : idx * 64);
    } else {
      at.l1cd = ctx + (idx >>> leafBits) * 8;
      at.cd = this.l1cd.l2Ptr - this.ipaOff + (idx & (2 ** leafBits - 1)) * 64;
    }
    const put = (s: Raw[0], enc: (o: Int32Array, a: number) => void): void => {
      if (at[s] >= 0 && at[s] < RESERVED) enc(mem.i32, at[s] / 4);
    };
    put('l1std', (o, a) => encodeL1Std(this.l1std, o, a));
    put('ste', (o, a) => encodeSte(this.ste, o, a));
    put('l1cd', (o, a) => encodeL1Cd(this.l1cd, o, a));
    put('cd', (o, a) => encodeCd(this.cd, o, a));
    for (const [s, word, bits] of this.raw) mem.i32[at[s] / 4 + word]! |= bits;
    return this.resolver().resolve(sid, ssid, out);
  }
}

/** A world with a 2-level stream table (LOG2SIZE 16, SPLIT 8). */
function twoLevel(): World {
  return Object.assign(new World(), { fmt: STRTAB_FMT.TwoLevel, log2size: 16, base: L1ST });
}

const hex = (n: number): string => (n < 0 ? String(n) : `0x${n.toString(16)}`);

// ---------------------------------------------------------------------------------------------

describe('configurations that resolve', () => {
  it('linear stream table, stage 1, one CD: ASID, TTB0 with its armS1Walk config, the CD bits', () => {
    const out = new SmmuConfig();
    expect(new World().resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out).toMatchObject({
      event: 0,
      record: 0,
      config: STE_CONFIG.S1,
      kind: STE_CONFIG.S1,
      cdIndex: 0,
      s1dss: 0,
      asid: 0xbeef,
      vmid: 0x1234,
      eats: 1,
      ttb0: s1.rootPa,
      ttb0Cfg: packWalkConfig(0, 48, 48),
      granule0: 12,
      ttb1: 0,
      ttb1Cfg: 0,
      granule1: 0,
      s2Root: 0,
      s2Cfg: 0,
      mair0: 0x0404ff44,
      mair1: 0xf4,
    });
    expect(out.flags).toBe(F.EPD1 | F.CD_A | F.CD_R);
    expect(out.ste.s1ContextPtr).toBe(CDTAB);
    expect(out.cd.asid).toBe(0xbeef);
  });

  it('2-level stream table: the L1STD at SID >> SPLIT points at the L2 table holding the STE', () => {
    const out = new SmmuConfig();
    expect(twoLevel().resolve(SID, -1, out)).toBe(SMMU_RESOLVED);
    expect([out.l1std.span, out.l1std.l2Ptr, out.asid]).toEqual([9, L2ST, 0xbeef]);
  });

  it('FMT = 2-level without IDR0.ST_LEVEL reads the table as linear', () => {
    const w = new World();
    expect(w.resolve(0x23)).toBe(SMMU_RESOLVED); // writes a linear table
    const cfg = encodeStrtabBaseCfg({ log2size: 8, split: 4, fmt: STRTAB_FMT.TwoLevel });
    w.caps.stLevel2 = false;
    const r = w.resolver();
    r.setStrtabBaseCfg(cfg);
    expect(r.resolve(0x23, -1, new SmmuConfig())).toBe(SMMU_RESOLVED);
    w.caps.stLevel2 = true; // the same table read as L1STDs: SID 0x23 finds SPAN = 0
    const r2 = w.resolver();
    r2.setStrtabBaseCfg(cfg);
    expect(r2.resolve(0x23, -1, new SmmuConfig())).toBe(EVT.C_BAD_STREAMID);
  });

  it('a SPLIT other than 6, 8 or 10 behaves as 6', () => {
    const w = Object.assign(twoLevel(), { split: 6 });
    expect(w.resolve(SID)).toBe(SMMU_RESOLVED); // the L1STD at SID >> 6, the STE at index SID & 63
    const r = w.resolver();
    r.setStrtabBaseCfg(encodeStrtabBaseCfg({ log2size: 16, split: 7, fmt: STRTAB_FMT.TwoLevel }));
    expect(r.resolve(SID, -1, new SmmuConfig())).toBe(SMMU_RESOLVED);
  });

  it('STRTAB_BASE is aligned down to the size of its table (linear, and a 2-level L1 table)', () => {
    for (const [w, sid, misaligned] of [
      [new World(), 0x23, STRTAB + 0x40],
      [twoLevel(), SID, L1ST + 0x40],
    ] as const) {
      expect(w.resolve(sid)).toBe(SMMU_RESOLVED); // writes the structures at the aligned base
      const r = w.resolver();
      const b = encodeStrtabBase(misaligned, false);
      r.setStrtabBase(b[0]!, b[1]!);
      expect(r.resolve(sid, -1, new SmmuConfig())).toBe(SMMU_RESOLVED);
    }
  });

  it.each([
    ['linear', S1FMT.Linear, 0x0c, 6],
    ['2-level, 4 KiB leaves (64 CDs)', S1FMT.TwoLevel4K, SSID, 8],
    ['2-level, 64 KiB leaves (1024 CDs)', S1FMT.TwoLevel64K, 0x405, 12],
  ])('%s CD table: a SubstreamID selects its CD', (_n, fmt, ssid, cdMax) => {
    const w = new World().substreams(cdMax, fmt);
    w.cd.asid = 0x77;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, ssid, out)).toBe(SMMU_RESOLVED);
    expect([out.cdIndex, out.asid]).toEqual([ssid, 0x77]);
    if (fmt !== S1FMT.Linear) expect(out.l1cd.l2Ptr).toBe(fmt === S1FMT.TwoLevel4K ? CDLEAF : CDLEAF64);
  });

  it('Config = bypass: SMMU_BYPASS, no CD, no ASID; the VMID is still reported', () => {
    const w = new World();
    w.ste.config = STE_CONFIG.Bypass;
    w.cd.valid = false;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_BYPASS);
    expect(out).toMatchObject({ event: 0, kind: STE_CONFIG.Bypass, asid: -1, vmid: 0x1234, cdIndex: -1, ttb0Cfg: 0 });
  });

  it('Config = abort: SMMU_ABORT, no event recorded', () => {
    const w = new World();
    w.ste.config = STE_CONFIG.Abort;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_ABORT);
    expect(out).toMatchObject({ event: 0, record: 0, kind: STE_CONFIG.Abort });
  });

  it('Config = stage 2: S2TTB with its armS2Walk config (SL0 1, 2 concatenated tables), VMID, no CD', () => {
    const w = new World();
    w.ste.config = STE_CONFIG.S2;
    w.ste.s2Affd = true;
    w.cd.valid = false;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out).toMatchObject({
      kind: STE_CONFIG.S2,
      vmid: 0x1234,
      asid: -1,
      s2Root: S2TTB,
      s2Cfg: packWalkConfig(1, 40, 48, CFG.AFFD),
      s2Granule: 12,
      ttb0Cfg: 0,
      cdIndex: -1,
    });
    expect(out.flags).toBe(F.S2R | F.S2AFFD);
  });

  it('nested: the CD is fetched at the IPA through stage 2; both stages are reported', () => {
    const w = new World().nested();
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out).toMatchObject({
      kind: STE_CONFIG.Nested,
      asid: 0xbeef,
      vmid: 0x1234,
      s2Root: s2.rootPa,
      s2Cfg: packWalkConfig(1, 40, 48),
      ttb0Cfg: packWalkConfig(0, 48, 48),
    });
    expect(out.ste.s1ContextPtr).toBe(CDTAB + IPA_OFF);
  });

  it('nested with a 2-level CD table: both the L1CD and the leaf are IPAs', () => {
    const w = new World().nested().substreams(8, S1FMT.TwoLevel4K);
    const out = new SmmuConfig();
    expect(w.resolve(0x23, SSID, out)).toBe(SMMU_RESOLVED);
    expect([out.cdIndex, out.l1cd.l2Ptr, out.asid]).toEqual([SSID, CDLEAF + IPA_OFF, 0xbeef]);
  });

  it('the configuration drives armS1Walk and armS2Walk directly', () => {
    const out = new SmmuConfig();
    expect(new World().nested().resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    const f = new WalkFault();
    expect(armS1Walk(mem.i32, out.ttb0, out.ttb0Cfg, 0x1000_0123, Access.Read, f)).toBe(0x5123);
    expect(armS2Walk(mem.i32, out.s2Root, out.s2Cfg, IPA_OFF + 0x1234, Access.Read, f)).toBe(0x1234);
  });

  it('TTB1 alone: EPD0 set, TG1 = 4 KiB, HAD1 in its config only', () => {
    const w = new World();
    Object.assign(w.cd, { epd0: true, t0sz: 0, epd1: false, t1sz: 25, ttb1: 0x13000, had1: true });
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out).toMatchObject({
      ttb0: 0,
      ttb0Cfg: 0,
      ttb1: 0x13000,
      ttb1Cfg: packWalkConfig(1, 39, 48, CFG.HAD),
      granule1: 12,
    });
    expect(out.flags & (F.EPD0 | F.EPD1 | F.HAD1)).toBe(F.EPD0 | F.HAD1);
  });

  it.each([
    [16, 0, 48, 512], // L0, 512 entries
    [20, 0, 44, 32],
    [25, 1, 39, 512],
    [33, 1, 31, 2],
    [34, 2, 30, 512],
    [39, 2, 25, 16],
  ])('T0SZ %i: start level %i, input %i bits, TTB0 aligned to a start table of %i entries', (t0sz, start, bits, n) => {
    const w = new World();
    Object.assign(w.cd, { t0sz, ttb0: 0x13000 + n * 8 - 16 });
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.ttb0Cfg).toBe(packWalkConfig(start, bits, 48));
    expect(out.ttb0).toBe(0x13000);
  });

  it.each([
    [24, 1, 40, 1, 8192], // L1, 2 concatenated tables
    [21, 1, 43, 1, 65536], // L1, 16 concatenated tables
    [16, 2, 48, 0, 4096], // L0, 512 entries
    [30, 0, 34, 2, 65536], // L2, 16 concatenated tables
    [39, 0, 25, 2, 128], // L2, 16 entries
  ])(
    'S2T0SZ %i, S2SL0 %i: a %i-bit IPA from level %i, S2TTB aligned to the %i-byte start table',
    (t0sz, sl0, bits, start, bytes) => {
      const w = new World();
      Object.assign(w.ste, { config: STE_CONFIG.S2, s2T0sz: t0sz, s2Sl0: sl0, s2Ttb: 0x100000 + bytes - 16 });
      const out = new SmmuConfig();
      expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
      expect(out.s2Cfg).toBe(packWalkConfig(start, bits, 48));
      expect(out.s2Root).toBe(0x100000);
    },
  );

  it('the effective IPS and S2PS are the smaller of the field and IDR5.OAS, 48 bits at most for 4 KiB', () => {
    const w = new World();
    w.caps.oas = 6; // 52 bits
    Object.assign(w.cd, { ips: 6 });
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(cfgOutputSize(out.ttb0Cfg)).toBe(48);
    w.caps.oas = 2; // 40 bits
    w.cd.ttb0 = 0x13000;
    Object.assign(w.ste, { config: STE_CONFIG.S2, s2Ps: 5 });
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(cfgOutputSize(out.s2Cfg)).toBe(40);
    w.ste.config = STE_CONFIG.S1;
    w.cd.ips = 1; // 36 bits
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(cfgOutputSize(out.ttb0Cfg)).toBe(36);
    w.cd.ips = 7; // reserved: the OAS
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(cfgOutputSize(out.ttb0Cfg)).toBe(40);
  });

  it('AFFD, or HA, disables access-flag faults in the packed configs; HAD0 in TTB0’s only', () => {
    const w = new World();
    Object.assign(w.cd, { affd: true, had0: true, epd1: false, ttb1: 0x13000 });
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.ttb0Cfg).toBe(packWalkConfig(0, 48, 48, CFG.AFFD | CFG.HAD));
    expect(out.ttb1Cfg).toBe(packWalkConfig(0, 48, 48, CFG.AFFD));
    Object.assign(w.cd, { affd: false, ha: true, had0: false });
    Object.assign(w.ste, { config: STE_CONFIG.Nested, s2Ttb: s2.rootPa, s2Ha: true });
    w.nested();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.ttb0Cfg & CFG.AFFD).toBe(CFG.AFFD);
    expect(out.s2Cfg & CFG.AFFD).toBe(CFG.AFFD);
    expect(out.flags & (F.HA | F.S2HA | F.AFFD | F.S2AFFD)).toBe(F.HA | F.S2HA);
  });

  it('CD and STE flag bits are reported', () => {
    const w = new World().nested();
    Object.assign(w.cd, { wxn: true, uwxn: true, pan: true, hd: true, aset: true, tbi: 3 });
    Object.assign(w.ste, { s2Ptw: true, s2Hd: true, s2Fwb: true, mev: true, s1StallD: true });
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.flags).toBe(
      F.EPD1 |
        F.WXN |
        F.UWXN |
        F.PAN |
        F.HD |
        F.CD_A |
        F.CD_R |
        F.ASET |
        F.S1STALLD |
        F.S2PTW |
        F.S2HD |
        F.S2R |
        F.S2FWB |
        F.MEV,
    );
    expect(out.tbi).toBe(3);
  });

  it('stall: CD.S stalls stage 1, S2S stage 2; STALL_MODEL = forced stalls both', () => {
    const w = new World().nested();
    w.cd.s = true;
    w.ste.s2S = true;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.flags & (F.S1_STALL | F.S2_STALL | F.CD_S | F.S2S)).toBe(F.S1_STALL | F.S2_STALL | F.CD_S | F.S2S);
    w.cd.s = false;
    w.ste.s2S = false;
    w.caps.stallModel = STALL_MODEL.StallForced;
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.flags & (F.S1_STALL | F.S2_STALL | F.CD_S | F.S2S)).toBe(F.S1_STALL | F.S2_STALL);
  });

  it('without ASID16, VMID16 or ATS the upper ASID and VMID bits and EATS read as 0; without S2P the VMID is -1', () => {
    const w = new World();
    Object.assign(w.caps, { asid16: false, vmid16: false, ats: false });
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect([out.asid, out.vmid, out.eats]).toEqual([0xef, 0x34, 0]);
    w.caps.s2p = false;
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.vmid).toBe(-1);
  });

  it('fields of a stage the Config does not enable are not checked', () => {
    const w = new World();
    Object.assign(w.ste, { s2T0sz: 63, s2Tg: 3, s2Aa64: false }); // stage 1 only: stage 2 ignored
    expect(w.resolve(0x23)).toBe(SMMU_RESOLVED);
    Object.assign(w.ste, { config: STE_CONFIG.S2, s1CdMax: 31, s1Fmt: 3, s2T0sz: 24, s2Tg: 0, s2Aa64: true });
    expect(w.resolve(0x23)).toBe(SMMU_RESOLVED);
    Object.assign(w.ste, { config: STE_CONFIG.Abort, s2T0sz: 63 });
    expect(w.resolve(0x23)).toBe(SMMU_ABORT);
    w.ste.config = STE_CONFIG.Bypass;
    expect(w.resolve(0x23)).toBe(SMMU_BYPASS);
  });

  it('a disabled TTB’s fields are not checked', () => {
    const w = new World();
    Object.assign(w.cd, { epd1: true, t1sz: 63, tg1: 0 });
    expect(w.resolve(0x23)).toBe(SMMU_RESOLVED);
    Object.assign(w.cd, { epd0: true, t0sz: 0, tg0: 3, epd1: false, t1sz: 16, tg1: TG1.K4, ttb1: 0x13000 });
    expect(w.resolve(0x23)).toBe(SMMU_RESOLVED);
  });

  it('reserved bits of the STE and CD are ignored', () => {
    const w = new World().substreams(8, S1FMT.TwoLevel4K);
    w.raw.push(['ste', 1, 0x07f00000], ['ste', 15, -1], ['cd', 2, 0xc], ['cd', 15, -1], ['l1cd', 0, 0xffe]);
    expect(w.resolve(0x23, SSID)).toBe(SMMU_RESOLVED);
    const t = twoLevel();
    t.raw.push(['l1std', 0, 0x20], ['l1std', 1, 0xfff00000 | 0]);
    expect(t.resolve(SID)).toBe(SMMU_RESOLVED);
  });

  it('reuses the output record and its decoded structures, and clears the summary on an event', () => {
    const w = new World();
    const out = new SmmuConfig();
    const ste = out.ste;
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.ste).toBe(ste);
    w.cd.valid = false;
    expect(w.resolve(0x23, -1, out)).toBe(EVT.C_BAD_CD);
    expect(out).toMatchObject({ event: EVT.C_BAD_CD, record: 1, asid: -1, vmid: -1, ttb0Cfg: 0, kind: 0, flags: 0 });
    expect(out.ste.s2Vmid).toBe(0x1234);
  });
});

describe('S1DSS: transactions without a SubstreamID on a stream with substreams', () => {
  it('terminate: F_STREAM_DISABLED', () => {
    const w = new World().substreams(4);
    w.ste.s1Dss = S1DSS.Terminate;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(EVT.F_STREAM_DISABLED);
    expect([out.event, out.record]).toEqual([EVT.F_STREAM_DISABLED, 1]);
    expect(w.resolve(0x23, 3)).toBe(SMMU_RESOLVED); // with a SubstreamID the CD table serves it
  });

  it('bypass: stage 1 is skipped without fetching a CD; nested leaves stage 2', () => {
    const w = new World().substreams(4);
    w.ste.s1Dss = S1DSS.Bypass;
    w.cd.valid = false; // not fetched
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_BYPASS);
    expect(out).toMatchObject({ kind: STE_CONFIG.Bypass, s1dss: S1DSS.Bypass, asid: -1, cdIndex: -1 });
    w.nested();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out).toMatchObject({ kind: STE_CONFIG.S2, s2Root: s2.rootPa, asid: -1, cdIndex: -1 });
  });

  it('CD 0: the CD at index 0 serves it, and SubstreamID 0 is then C_BAD_SUBSTREAMID', () => {
    const w = new World().substreams(4, S1FMT.TwoLevel4K);
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect([out.cdIndex, out.s1dss]).toEqual([0, S1DSS.Substream0]);
    expect(w.resolve(0x23, 0)).toBe(EVT.C_BAD_SUBSTREAMID);
  });

  it('with S1CDMax = 0, S1DSS does not matter: the one CD serves it', () => {
    const w = new World();
    w.ste.s1Dss = S1DSS.Terminate;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_RESOLVED);
    expect(out.s1dss).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

interface EventCase {
  /** The §5.1 step. */
  step: number;
  code: number;
  what: string;
  setup: (w: World) => void;
  /** The world's request: SID (default 0x23 linear, SID 2-level) and SSID. */
  sid?: number;
  ssid?: number;
  twoLevel?: boolean;
  /** The expected fetch address, for F_STE_FETCH and F_CD_FETCH. */
  fetchAddr?: number;
}

const ev = (
  step: number,
  code: number,
  what: string,
  setup: EventCase['setup'],
  more: Partial<EventCase> = {},
): EventCase => ({
  step,
  code,
  what,
  setup,
  ...more,
});

/** Stage 2 enabled (Config = S2) so that its checks apply. */
const stage2Only = (f: (ste: Ste) => void) => (w: World) => {
  w.ste.config = STE_CONFIG.S2;
  f(w.ste);
};

const EVENT_CASES: EventCase[] = [
  ev(1, EVT.C_BAD_STREAMID, 'SID ≥ 2^LOG2SIZE', () => {}, { sid: 0x100 }),
  ev(
    1,
    EVT.C_BAD_STREAMID,
    'SID ≥ 2^SIDSIZE though LOG2SIZE is larger',
    (w) => {
      w.log2size = 10;
      w.caps.sidBits = 8;
    },
    { sid: 0x100 },
  ),
  ev(2, EVT.F_STE_FETCH, 'the L1STD read aborts', (w) => (w.base = FAR), { twoLevel: true, fetchAddr: FAR + 8 }),
  ev(3, EVT.C_BAD_STREAMID, 'L1STD.SPAN = 0', (w) => (w.l1std.span = 0), { twoLevel: true }),
  ev(4, EVT.C_BAD_STREAMID, 'L2 index 0x23 ≥ 2^(SPAN−1) = 32', (w) => (w.l1std.span = 6), { twoLevel: true }),
  ev(5, EVT.F_STE_FETCH, 'the STE read aborts (linear)', (w) => (w.base = FAR), { fetchAddr: FAR + 0x23 * 64 }),
  ev(5, EVT.F_STE_FETCH, 'the STE read aborts (2-level)', (w) => (w.l1std.l2Ptr = FAR), {
    twoLevel: true,
    fetchAddr: FAR + 0x23 * 64,
  }),
  ev(6, EVT.C_BAD_STE, 'STE.V = 0', (w) => (w.ste.valid = false)),
  ...[1, 2, 3].map((config) => ev(6, EVT.C_BAD_STE, `Config = ${config} (reserved)`, (w) => (w.ste.config = config))),
  ev(6, EVT.C_BAD_STE, 'stage 1 without IDR0.S1P', (w) => {
    w.caps.s1p = false;
  }),
  ev(6, EVT.C_BAD_STE, 'stage 2 without IDR0.S2P', (w) => {
    w.caps.s2p = false;
    w.ste.config = STE_CONFIG.S2;
  }),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2AA64 = 0',
    stage2Only((e) => (e.s2Aa64 = false)),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2TG = 3',
    stage2Only((e) => (e.s2Tg = 3)),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2TG = 16 KiB without IDR5.GRAN16K',
    stage2Only((e) => (e.s2Tg = 2)),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2SL0 = 3',
    stage2Only((e) => (e.s2Sl0 = 3)),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2TTB beyond the effective S2PS (40 bits)',
    stage2Only((e) => Object.assign(e, { s2Ps: 2, s2Ttb: 2 ** 41 })),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2T0SZ = 40',
    stage2Only((e) => Object.assign(e, { s2T0sz: 40, s2Sl0: 0 })),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2T0SZ = 15',
    stage2Only((e) => Object.assign(e, { s2T0sz: 15, s2Sl0: 2 })),
  ),
  ev(6, EVT.C_BAD_STE, 'S2T0SZ = 23 < 64 − OAS (40 bits)', (w) => {
    w.caps.oas = 2;
    Object.assign(w.ste, { config: STE_CONFIG.S2, s2T0sz: 23, s2Ps: 2 });
  }),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2T0SZ 20 at SL0 1: 32 concatenated tables',
    stage2Only((e) => (e.s2T0sz = 20)),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2T0SZ 25 at SL0 2: level 0 resolves no IPA bit',
    stage2Only((e) => Object.assign(e, { s2T0sz: 25, s2Sl0: 2 })),
  ),
  ev(
    6,
    EVT.C_BAD_STE,
    'S2ENDI = 1',
    stage2Only((e) => (e.s2Endi = true)),
  ),
  ev(6, EVT.C_BAD_STE, 'S2HA without HTTU', (w) => {
    w.caps.httu = HTTU.None;
    stage2Only((e) => (e.s2Ha = true))(w);
  }),
  ev(6, EVT.C_BAD_STE, 'S2HD with HTTU = access flag only', (w) => {
    w.caps.httu = HTTU.Access;
    stage2Only((e) => Object.assign(e, { s2Ha: true, s2Hd: true }))(w);
  }),
  ev(6, EVT.C_BAD_STE, 'S2S with STALL_MODEL = terminate only', (w) => {
    w.caps.stallModel = STALL_MODEL.TerminateOnly;
    stage2Only((e) => (e.s2S = true))(w);
  }),
  ev(6, EVT.C_BAD_STE, 'S1CDMax > SSIDSIZE', (w) => {
    w.caps.ssidBits = 4;
    w.substreams(5);
  }),
  ev(6, EVT.C_BAD_STE, 'S1Fmt = 3 (reserved)', (w) => w.substreams(4, 3)),
  ev(6, EVT.C_BAD_STE, 'S1Fmt 2-level without IDR0.CD2L', (w) => {
    w.caps.cd2l = false;
    w.substreams(8, S1FMT.TwoLevel4K);
  }),
  ev(6, EVT.C_BAD_STE, 'S1DSS = 3 (reserved)', (w) => {
    w.substreams(4);
    w.ste.s1Dss = 3;
  }),
  ev(
    8,
    EVT.C_BAD_SUBSTREAMID,
    'a SubstreamID with stage 2 only',
    stage2Only(() => {}),
    { ssid: 1 },
  ),
  ev(8, EVT.C_BAD_SUBSTREAMID, 'a SubstreamID with Config = bypass', (w) => (w.ste.config = STE_CONFIG.Bypass), {
    ssid: 1,
  }),
  ev(8, EVT.C_BAD_SUBSTREAMID, 'a SubstreamID with S1CDMax = 0', () => {}, { ssid: 1 }),
  ev(8, EVT.C_BAD_SUBSTREAMID, 'SubstreamID 16 ≥ 2^S1CDMax', (w) => w.substreams(4), { ssid: 16 }),
  ev(8, EVT.C_BAD_SUBSTREAMID, 'SubstreamID 0 with S1DSS = CD 0', (w) => w.substreams(4), { ssid: 0 }),
  ev(9, EVT.F_STREAM_DISABLED, 'no SubstreamID, S1CDMax > 0, S1DSS = terminate', (w) => {
    w.substreams(4);
    w.ste.s1Dss = S1DSS.Terminate;
  }),
  ev(10, EVT.F_CD_FETCH, 'the CD read aborts (one CD)', (w) => (w.ste.s1ContextPtr = FAR), { fetchAddr: FAR }),
  ev(
    10,
    EVT.F_CD_FETCH,
    'the CD read aborts (linear table)',
    (w) => {
      w.substreams(4);
      w.ste.s1ContextPtr = FAR;
    },
    { ssid: 5, fetchAddr: FAR + 5 * 64 },
  ),
  ev(
    10,
    EVT.F_CD_FETCH,
    'the L1CD read aborts',
    (w) => {
      w.substreams(8, S1FMT.TwoLevel4K);
      w.ste.s1ContextPtr = FAR;
    },
    { ssid: SSID, fetchAddr: FAR + 8 },
  ),
  ev(
    10,
    EVT.F_CD_FETCH,
    'the leaf CD read aborts',
    (w) => {
      w.substreams(8, S1FMT.TwoLevel4K);
      w.l1cd.l2Ptr = FAR;
    },
    { ssid: SSID, fetchAddr: FAR + 7 * 64 },
  ),
  ev(
    11,
    EVT.C_BAD_SUBSTREAMID,
    'L1CD.V = 0',
    (w) => {
      w.substreams(8, S1FMT.TwoLevel4K);
      w.l1cd.valid = false;
    },
    { ssid: SSID },
  ),
  ev(12, EVT.C_BAD_CD, 'CD.V = 0', (w) => (w.cd.valid = false)),
  ev(12, EVT.C_BAD_CD, 'CD.AA64 = 0', (w) => (w.cd.aa64 = false)),
  ev(12, EVT.C_BAD_CD, 'CD.A = 0 with IDR0.TERM_MODEL', (w) => (w.cd.a = false)),
  ev(12, EVT.C_BAD_CD, 'CD.S = 1 with STALL_MODEL = terminate only', (w) => {
    w.caps.stallModel = STALL_MODEL.TerminateOnly;
    w.cd.s = true;
  }),
  ev(12, EVT.C_BAD_CD, 'CD.S = 1 with STE.S1STALLD', (w) => {
    w.ste.s1StallD = true;
    w.cd.s = true;
  }),
  ev(12, EVT.C_BAD_CD, 'CD.HA without HTTU', (w) => {
    w.caps.httu = HTTU.None;
    w.cd.ha = true;
  }),
  ev(12, EVT.C_BAD_CD, 'CD.HD with HTTU = access flag only', (w) => {
    w.caps.httu = HTTU.Access;
    Object.assign(w.cd, { ha: true, hd: true });
  }),
  ev(12, EVT.C_BAD_CD, 'T0SZ = 15', (w) => (w.cd.t0sz = 15)),
  ev(12, EVT.C_BAD_CD, 'T0SZ = 40', (w) => (w.cd.t0sz = 40)),
  ev(12, EVT.C_BAD_CD, 'TG0 = 3 (reserved)', (w) => (w.cd.tg0 = 3)),
  ev(12, EVT.C_BAD_CD, 'TG0 = 16 KiB without IDR5.GRAN16K', (w) => (w.cd.tg0 = 2)),
  ev(12, EVT.C_BAD_CD, 'ENDI = 1', (w) => (w.cd.endi = true)),
  ev(12, EVT.C_BAD_CD, 'TTB0 beyond the effective IPS (36 bits)', (w) =>
    Object.assign(w.cd, { ips: 1, ttb0: 2 ** 36 }),
  ),
  ev(12, EVT.C_BAD_CD, 'T1SZ = 40 with TTB1 enabled', (w) => Object.assign(w.cd, { epd1: false, t1sz: 40 })),
  ev(12, EVT.C_BAD_CD, 'TG1 = 0 (reserved) with TTB1 enabled', (w) => Object.assign(w.cd, { epd1: false, tg1: 0 })),
];

describe('each event of §5.1 is raised, one check at a time', () => {
  it.each(EVENT_CASES.map((c) => [`step ${c.step} ${hex(c.code)}: ${c.what}`, c] as const))('%s', (_name, c) => {
    const w = c.twoLevel === true ? twoLevel() : new World();
    const sid = c.sid ?? (c.twoLevel === true ? SID : 0x23);
    const ssid = c.ssid ?? -1;
    const out = new SmmuConfig();
    if (c.sid === undefined) {
      // Without the setup the request resolves (a SubstreamID needs a CD table for that).
      const plain = c.twoLevel === true ? twoLevel() : new World();
      if (ssid >= 0) plain.substreams(8, S1FMT.TwoLevel4K).ste.s1Dss = S1DSS.Bypass;
      expect(hex(plain.resolve(sid, ssid, out))).toBe(hex(SMMU_RESOLVED));
    }
    c.setup(w);
    expect(hex(w.resolve(sid, ssid, out))).toBe(hex(c.code));
    expect([out.event, out.record, out.stage2]).toEqual([c.code, 1, 0]);
    expect(out.fetchAddr).toBe(c.fetchAddr ?? 0);
  });

  it('covers every configuration event type and every step of §5.1 that raises one', () => {
    const raised = new Set(EVENT_CASES.map((c) => c.code));
    expect(Object.values(EVT).filter((code) => !raised.has(code))).toEqual([]);
    expect([...new Set(EVENT_CASES.map((c) => c.step))].sort((a, b) => a - b)).toEqual([
      1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12,
    ]);
  });
});

describe('when two checks fail, the earlier one is reported', () => {
  it.each<[string, number, (w: World) => void, number?, number?, boolean?]>([
    ['SID out of range (1) over an STE fetch abort (5)', EVT.C_BAD_STREAMID, (w) => (w.base = FAR), 0x100],
    [
      'L1STD fetch abort (2) over SPAN = 0 (3)',
      EVT.F_STE_FETCH,
      (w) => {
        w.base = FAR;
        w.l1std.span = 0;
      },
      SID,
      -1,
      true,
    ],
    [
      'SPAN = 0 (3) over an invalid STE (6)',
      EVT.C_BAD_STREAMID,
      (w) => {
        w.l1std.span = 0;
        w.ste.valid = false;
      },
      SID,
      -1,
      true,
    ],
    [
      'L2 index beyond SPAN (4) over an STE fetch abort (5)',
      EVT.C_BAD_STREAMID,
      (w) => {
        w.l1std.span = 6;
        w.l1std.l2Ptr = FAR;
      },
      SID,
      -1,
      true,
    ],
    [
      'STE fetch abort (5) over an invalid CD (12)',
      EVT.F_STE_FETCH,
      (w) => {
        w.base = FAR;
        w.cd.valid = false;
      },
    ],
    [
      'V = 0 (6) over Config = abort (7)',
      EVT.C_BAD_STE,
      (w) => {
        w.ste.valid = false;
        w.ste.config = STE_CONFIG.Abort;
      },
    ],
    [
      'an ILLEGAL STE (6) over a bad SubstreamID (8)',
      EVT.C_BAD_STE,
      (w) => {
        w.ste.config = STE_CONFIG.Nested;
        w.ste.s2Tg = 3;
      },
      0x23,
      99,
    ],
    ['Config = abort (7) over a bad SubstreamID (8)', SMMU_ABORT, (w) => (w.ste.config = STE_CONFIG.Abort), 0x23, 99],
    [
      'a bad SubstreamID (8) over a CD fetch abort (10)',
      EVT.C_BAD_SUBSTREAMID,
      (w) => {
        w.substreams(4);
        w.ste.s1ContextPtr = FAR;
      },
      0x23,
      16,
    ],
    [
      'S1DSS = terminate (9) over a CD fetch abort (10)',
      EVT.F_STREAM_DISABLED,
      (w) => {
        w.substreams(4);
        w.ste.s1Dss = S1DSS.Terminate;
        w.ste.s1ContextPtr = FAR;
      },
    ],
    [
      'an L1CD fetch abort (10) over L1CD.V = 0 (11)',
      EVT.F_CD_FETCH,
      (w) => {
        w.substreams(8, S1FMT.TwoLevel4K);
        w.ste.s1ContextPtr = FAR;
        w.l1cd.valid = false;
      },
      0x23,
      SSID,
    ],
    [
      'L1CD.V = 0 (11) over a leaf CD fetch abort (10, later read)',
      EVT.C_BAD_SUBSTREAMID,
      (w) => {
        w.substreams(8, S1FMT.TwoLevel4K);
        w.l1cd.valid = false;
        w.l1cd.l2Ptr = FAR;
      },
      0x23,
      SSID,
    ],
    [
      'a CD fetch abort (10) over an invalid CD (12)',
      EVT.F_CD_FETCH,
      (w) => {
        w.ste.s1ContextPtr = FAR;
        w.cd.valid = false;
      },
    ],
    [
      'nested: a stage-2 fault on the CD fetch (10) over an invalid CD (12)',
      SMMU_EVT.F_TRANSLATION,
      (w) => {
        w.nested();
        w.ste.s1ContextPtr = IPA_HOLE;
        w.cd.valid = false;
      },
    ],
    [
      'nested: an ILLEGAL stage 2 (6) over a stage-2 fault on the CD fetch (10)',
      EVT.C_BAD_STE,
      (w) => {
        w.nested();
        w.ste.s2Endi = true;
        w.ste.s1ContextPtr = IPA_HOLE;
      },
    ],
  ])('%s', (_n, code, setup, sid = 0x23, ssid = -1, two = false) => {
    const w = two ? twoLevel() : new World();
    setup(w);
    expect(hex(w.resolve(sid, ssid))).toBe(hex(code));
  });
});

describe('nested CD fetch through stage 2', () => {
  it('an unmapped CD IPA is a stage-2 Translation fault: S2 = 1, CLASS = CD, the IPA; recorded with S2R', () => {
    const w = new World().nested();
    w.ste.s1ContextPtr = IPA_HOLE;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_EVT.F_TRANSLATION);
    expect(out).toMatchObject({
      event: SMMU_EVT.F_TRANSLATION,
      record: 1,
      stage2: 1,
      eventClass: EVT_CLASS.CD,
      ipa: IPA_HOLE,
      fetchAddr: 0,
      kind: 0,
    });
    w.ste.s2R = false;
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_EVT.F_TRANSLATION);
    expect([out.record, out.stage2]).toEqual([0, 1]);
  });

  it('the stage-2 fault of the L1CD fetch carries the L1CD’s IPA', () => {
    const w = new World().nested().substreams(8, S1FMT.TwoLevel4K);
    w.ste.s1ContextPtr = IPA_HOLE;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, SSID, out)).toBe(SMMU_EVT.F_TRANSLATION);
    expect(out.ipa).toBe(IPA_HOLE + 8);
    w.ste.s1ContextPtr = CDTAB + IPA_OFF;
    w.l1cd.l2Ptr = IPA_HOLE;
    expect(w.resolve(0x23, SSID, out)).toBe(SMMU_EVT.F_TRANSLATION);
    expect(out.ipa).toBe(IPA_HOLE + 7 * 64);
  });

  it('a CD IPA without stage-2 read permission is a stage-2 Permission fault', () => {
    const w = new World().nested();
    w.ste.s1ContextPtr = IPA_WO;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_EVT.F_PERMISSION);
    expect([out.stage2, out.eventClass, out.ipa]).toEqual([1, EVT_CLASS.CD, IPA_WO]);
  });

  it('a stage-2 walk that aborts is F_WALK_EABT, recorded even without S2R', () => {
    const w = new World().nested();
    Object.assign(w.ste, { s2Ttb: FAR, s2R: false });
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(SMMU_EVT.F_WALK_EABT);
    expect([out.record, out.stage2, out.eventClass, out.ipa]).toEqual([1, 1, EVT_CLASS.CD, CDTAB + IPA_OFF]);
  });

  it('a read that aborts after stage 2 is F_CD_FETCH with the physical address, and the IPA', () => {
    const w = new World().nested();
    w.ste.s1ContextPtr = IPA_FAR;
    const out = new SmmuConfig();
    expect(w.resolve(0x23, -1, out)).toBe(EVT.F_CD_FETCH);
    expect(out).toMatchObject({ record: 1, stage2: 0, fetchAddr: FAR, ipa: IPA_FAR });
  });

  it('the translator gets the STE’s stage 2: S2TTB and its packed config, per CD-table read', () => {
    const calls: [number, number, number][] = [];
    const inner = new ArmStage2Translator(mem.i32);
    const w = new World().nested().substreams(8, S1FMT.TwoLevel4K);
    w.stage2 = {
      translate(root, cfg, ipa, fault) {
        calls.push([root, cfg, ipa]);
        return inner.translate(root, cfg, ipa, fault);
      },
    };
    expect(w.resolve(0x23, SSID)).toBe(SMMU_RESOLVED);
    const cfg = packWalkConfig(1, 40, 48);
    expect(calls).toEqual([
      [s2.rootPa, cfg, CDTAB + IPA_OFF + 8],
      [s2.rootPa, cfg, CDLEAF + IPA_OFF + 7 * 64],
    ]);
    calls.length = 0;
    w.ste.config = STE_CONFIG.S1; // not nested: pointers are physical, stage 2 is not consulted
    Object.assign(w.ste, { s1ContextPtr: CDTAB });
    w.l1cd.l2Ptr = CDLEAF;
    w.ipaOff = 0;
    expect(w.resolve(0x23, SSID)).toBe(SMMU_RESOLVED);
    expect(calls).toEqual([]);
  });
});

describe('the unit’s capabilities', () => {
  it('a unit with both stages needs a stage-2 translator; one stage does not', () => {
    const reader = new PhysQwordReader(mem.i32);
    expect(() => new SmmuResolver(reader, CAPS)).toThrow(RangeError);
    expect(new SmmuResolver(reader, { ...CAPS, s2p: false }).caps.s1p).toBe(true);
  });

  it.each([
    ['sidBits', 33],
    ['ssidBits', 21],
    ['oas', 7],
    ['stallModel', 3],
    ['httu', 3],
    ['sidBits', 1.5],
  ])('refuses %s = %s', (name, v) => {
    const caps = { ...CAPS, [name]: v };
    expect(() => new SmmuResolver(new PhysQwordReader(mem.i32), caps, new ArmStage2Translator(mem.i32))).toThrow(
      RangeError,
    );
  });

  it('keeps its own copy of the capabilities', () => {
    const caps = { ...CAPS };
    const r = new SmmuResolver(new PhysQwordReader(mem.i32), caps, new ArmStage2Translator(mem.i32));
    caps.s1p = false;
    expect(r.caps.s1p).toBe(true);
  });

  it('latches STRTAB_BASE and STRTAB_BASE_CFG', () => {
    const r = new World().resolver();
    const b = encodeStrtabBase(0x1_2345_6780, true);
    r.setStrtabBase(b[0]!, b[1]!);
    r.setStrtabBaseCfg(encodeStrtabBaseCfg({ log2size: 20, split: 10, fmt: STRTAB_FMT.TwoLevel }) | 0xfffcf800);
    expect([r.strtabBase, r.log2size, r.split, r.fmt]).toEqual([0x1_2345_6780, 20, 10, STRTAB_FMT.TwoLevel]);
  });
});
