import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PhysMemory } from '../../src/memory/phys.js';
import { Access } from '../../src/pgtable/types.js';
import { VTD_FR } from '../../src/pgtable/x86/desc.js';
import {
  CONFIG_FLAG,
  RequestKind,
  VTD_ABORTED,
  VTD_RESOLVED,
  VtdConfig,
  VtdResolver,
  type VtdCaps,
} from '../../src/vendor/vtd/resolve.js';
import { isQualifiedFault, VTD_CFG_FR } from '../../src/vendor/vtd/resolve-faults.js';
import { PhysQwordReader, TranslatedQwordReader, type QwordReader } from '../../src/vendor/vtd/resolve-reader.js';
import {
  CONTEXT_TT,
  ContextEntry,
  encodeContextEntry,
  encodeRootEntry,
  encodeRtaddr,
  encodeSmContextEntry,
  encodeSmRootEntry,
  RootEntry,
  SmContextEntry,
  SmRootEntry,
  TTM,
} from '../../src/vendor/vtd/structures.js';
import {
  encodePasidDirEntry,
  encodePasidEntry,
  FLPM,
  PasidDirEntry,
  PasidEntry,
  PGTT,
} from '../../src/vendor/vtd/structures-pasid.js';

/*
 * The VT-d configuration fetch (reference/config-formats.md §5.2–§5.4): every fault reason it
 * raises, the order of its checks when several apply, FPD, and the configurations it returns.
 * Structures are written with the encoders into a small physical memory.
 */

const FR = VTD_CFG_FR;
const { Untranslated, Translation, PageRequest } = RequestKind;

const MEM_BYTES = 1 << 20;
const ROOT = 0x1000;
const CTX_LO = 0x2000;
const CTX_HI = 0x3000;
const DIR = 0x4000;
const PTBL = 0x5000;
const SLPT = 0x10000;
const FLPT = 0x11000;
/** 4 KiB-aligned, below every HAW used here, beyond memory: its reads fail. */
const FAR = 2 ** 40;
const BUS = 3;
const LOWER = 0x10;
const UPPER = 0x90;
/** Directory index 141 (needs PDTS ≥ 1), table index 5. */
const P1 = 0x2345;

const CAPS: VtdCaps = {
  sagaw: 0b1110,
  mgaw: 48,
  haw: 48,
  smts: true,
  adms: true,
  dt: true,
  pt: true,
  pasid: true,
  prs: true,
  flts: true,
  slts: true,
  nest: true,
  fl5lp: true,
};

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** One request: source devfn on bus BUS, PASID (-1 none), Access bits, RequestKind. */
interface Req {
  devfn: number;
  pasid: number;
  access: number;
  kind: number;
}
const req = (r: Partial<Req> = {}): Req => ({ devfn: LOWER, pasid: -1, access: Access.Read, kind: Untranslated, ...r });

/** Where a raw bit is ORed in after encoding: structure, word, bits. */
type Raw = ['root' | 'ctx' | 'dir' | 'pe', number, number];

const mem = new PhysMemory(MEM_BYTES);

/** A legacy-mode unit with one device on bus BUS: TT = 1 (ATS allowed), AW 48, DID 7. */
class LegacyWorld {
  caps: Mutable<VtdCaps> = { ...CAPS };
  ttm: number = TTM.Legacy;
  rta = ROOT;
  root: RootEntry = Object.assign(new RootEntry(), { present: true, ctp: CTX_LO });
  ctx: ContextEntry = Object.assign(new ContextEntry(), {
    present: true,
    tt: CONTEXT_TT.DevIotlb,
    slptptr: SLPT,
    aw: 2,
    did: 7,
  });
  raw: Raw[] = [];

  resolve(q: Req, out = new VtdConfig()): number {
    mem.i32.fill(0, 0, 0x20000 / 4);
    const at = { root: ROOT + BUS * 16, ctx: CTX_LO + q.devfn * 16, dir: -1, pe: -1 };
    encodeRootEntry(this.root, mem.i32, at.root / 4);
    encodeContextEntry(this.ctx, mem.i32, at.ctx / 4);
    for (const [s, word, bits] of this.raw) mem.i32[at[s] / 4 + word]! |= bits;
    return resolver(new PhysQwordReader(mem.i32), this.caps, this.rta, this.ttm).resolve(
      (BUS << 8) | q.devfn,
      q.pasid,
      q.access,
      q.kind,
      out,
    );
  }
}

/**
 * A scalable-mode unit with devices LOWER and UPPER on bus BUS. Both directory entries used
 * (PASID P1 and RID_PASID 0) point at one PASID table, which holds the same entry at both
 * indexes: nested, AW 48, DID 42, SRE and ERE set.
 */
class SmWorld {
  caps: Mutable<VtdCaps> = { ...CAPS };
  ttm: number = TTM.Scalable;
  rta = ROOT;
  root: SmRootEntry = Object.assign(new SmRootEntry(), { lp: true, lctp: CTX_LO, up: true, uctp: CTX_HI });
  ctx: SmContextEntry = Object.assign(new SmContextEntry(), {
    present: true,
    dte: true,
    paside: true,
    pre: true,
    pdts: 1,
    pasidDirPtr: DIR,
  });
  dir: PasidDirEntry = Object.assign(new PasidDirEntry(), { present: true, pasidTablePtr: PTBL });
  pe: PasidEntry = Object.assign(new PasidEntry(), {
    present: true,
    pgtt: PGTT.Nested,
    aw: 2,
    did: 42,
    slptptr: SLPT,
    flptptr: FLPT,
    sre: true,
    ere: true,
  });
  raw: Raw[] = [];

  resolve(q: Req, out = new VtdConfig()): number {
    mem.i32.fill(0, 0, 0x20000 / 4);
    const ctxAt = (q.devfn < 128 ? CTX_LO : CTX_HI) + (q.devfn & 127) * 32;
    const at = { root: [ROOT + BUS * 16], ctx: [ctxAt], dir: [DIR + (P1 >> 6) * 8, DIR], pe: [PTBL + 5 * 64, PTBL] };
    encodeSmRootEntry(this.root, mem.i32, at.root[0]! / 4);
    encodeSmContextEntry(this.ctx, mem.i32, ctxAt / 4);
    for (const a of at.dir) encodePasidDirEntry(this.dir, mem.i32, a / 4);
    for (const a of at.pe) encodePasidEntry(this.pe, mem.i32, a / 4);
    for (const [s, word, bits] of this.raw) for (const a of at[s]) mem.i32[a / 4 + word]! |= bits;
    return resolver(new PhysQwordReader(mem.i32), this.caps, this.rta, this.ttm).resolve(
      (BUS << 8) | q.devfn,
      q.pasid,
      q.access,
      q.kind,
      out,
    );
  }
}

function resolver(reader: QwordReader, caps: VtdCaps, rta: number, ttm: number): VtdResolver {
  const r = new VtdResolver(reader, caps);
  const w = encodeRtaddr(rta, ttm);
  r.setRtaddr(w[0]!, w[1]!);
  return r;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

// ---------------------------------------------------------------------------------------------

describe('configurations that resolve', () => {
  it('legacy TT = 0: second stage from the context entry, DID, AW 48 → 4 levels', () => {
    const w = new LegacyWorld();
    w.ctx.tt = CONTEXT_TT.MultiLevel;
    const out = new VtdConfig();
    expect(w.resolve(req(), out)).toBe(VTD_RESOLVED);
    expect(out).toMatchObject({
      fault: 0,
      scalable: false,
      type: PGTT.SecondStage,
      pgtt: 0,
      did: 7,
      pasid: -1,
      aw: 2,
      ssWidth: 48,
      ssLevels: 4,
      ssptr: SLPT,
      fsptr: 0,
      flags: 0,
      fpd: false,
    });
  });

  it('legacy TT = 1 takes ATS translation requests and flags the device TLB', () => {
    const out = new VtdConfig();
    expect(new LegacyWorld().resolve(req({ kind: Translation }), out)).toBe(VTD_RESOLVED);
    expect(out.flags).toBe(CONFIG_FLAG.DEV_TLB);
  });

  it('legacy TT = 2 is pass-through with no table', () => {
    const w = new LegacyWorld();
    w.ctx.tt = CONTEXT_TT.PassThrough;
    const out = new VtdConfig();
    expect(w.resolve(req(), out)).toBe(VTD_RESOLVED);
    expect([out.type, out.ssptr]).toEqual([PGTT.PassThrough, 0]);
  });

  it('the second-stage input width is capped at MGAW while the levels follow AW', () => {
    const w = new LegacyWorld();
    w.caps.mgaw = 39;
    const out = new VtdConfig();
    expect(w.resolve(req(), out)).toBe(VTD_RESOLVED);
    expect([out.ssWidth, out.ssLevels]).toEqual([39, 4]);
  });

  it('legacy AVAIL bits are software bits, not reserved', () => {
    const w = new LegacyWorld();
    w.ctx.avail = 0xf;
    expect(w.resolve(req())).toBe(VTD_RESOLVED);
  });

  it('TTM = abort DMA blocks every request without a fault', () => {
    const w = new LegacyWorld();
    w.ttm = TTM.AbortDma;
    const out = new VtdConfig();
    expect(w.resolve(req(), out)).toBe(VTD_ABORTED);
    expect([out.fault, out.record]).toEqual([0, false]);
  });

  it.each([
    [
      'first stage, 4-level',
      PGTT.FirstStage,
      FLPM.Level4,
      { ssptr: 0, fsptr: FLPT, fsWidth: 48, fsLevels: 4, aw: 0, ssLevels: 0 },
    ],
    ['first stage, 5-level', PGTT.FirstStage, FLPM.Level5, { ssptr: 0, fsptr: FLPT, fsWidth: 57, fsLevels: 5 }],
    ['second stage', PGTT.SecondStage, 0, { ssptr: SLPT, fsptr: 0, fsLevels: 0, aw: 2, ssWidth: 48, ssLevels: 4 }],
    ['nested', PGTT.Nested, FLPM.Level4, { ssptr: SLPT, fsptr: FLPT, fsLevels: 4, ssLevels: 4 }],
    ['pass-through', PGTT.PassThrough, 0, { ssptr: 0, fsptr: 0, aw: 2, ssWidth: 48 }],
  ])('scalable %s: the PASID entry gives PGTT, DID and the pointers that PGTT uses', (_n, pgtt, flpm, fields) => {
    const w = new SmWorld();
    Object.assign(w.pe, { pgtt, flpm });
    const out = new VtdConfig();
    expect(w.resolve(req({ pasid: P1 }), out)).toBe(VTD_RESOLVED);
    expect(out).toMatchObject({ scalable: true, type: pgtt, pgtt, did: 42, pasid: P1, priv: false, ...fields });
  });

  it('a request without PASID uses RID_PASID and RID_PRIV', () => {
    const w = new SmWorld();
    Object.assign(w.ctx, { ridPriv: true });
    const out = new VtdConfig();
    expect(w.resolve(req({ pasid: -1 }), out)).toBe(VTD_RESOLVED);
    expect([out.pasid, out.priv]).toEqual([0, true]);
  });

  it('devfn 128..255 follows UCTP, devfn 0..127 LCTP', () => {
    const w = new SmWorld();
    w.root.lp = false;
    expect(w.resolve(req({ devfn: UPPER, pasid: P1 }))).toBe(VTD_RESOLVED);
    w.root.lp = true;
    w.root.up = false;
    expect(w.resolve(req({ devfn: LOWER, pasid: P1 }))).toBe(VTD_RESOLVED);
  });

  it('flags carry DTE, PRE and the PASID entry’s request and snoop controls', () => {
    const w = new SmWorld();
    Object.assign(w.pe, { wpe: true, eafe: true, slee: true, slade: true, pwsnp: true, pgsnp: true });
    const out = new VtdConfig();
    expect(w.resolve(req({ pasid: P1 }), out)).toBe(VTD_RESOLVED);
    expect(out.flags).toBe(
      CONFIG_FLAG.DEV_TLB |
        CONFIG_FLAG.PRE |
        CONFIG_FLAG.SRE |
        CONFIG_FLAG.ERE |
        CONFIG_FLAG.WPE |
        CONFIG_FLAG.EAFE |
        CONFIG_FLAG.SLEE |
        CONFIG_FLAG.SLADE |
        CONFIG_FLAG.PWSNP |
        CONFIG_FLAG.PGSNP,
    );
    w.pe.sre = false;
    w.ctx.pre = false;
    expect(w.resolve(req({ pasid: P1 }), out)).toBe(VTD_RESOLVED);
    expect(out.flags & (CONFIG_FLAG.SRE | CONFIG_FLAG.PRE)).toBe(0);
  });

  it('supervisor and execute requests resolve when SRE and ERE allow them', () => {
    const out = new VtdConfig();
    expect(new SmWorld().resolve(req({ pasid: P1, access: Access.Read | Access.Exec | Access.Priv }), out)).toBe(
      VTD_RESOLVED,
    );
    expect(out.priv).toBe(true);
  });

  it('reuses the output record and its decoded structures, and clears the summary on a fault', () => {
    const w = new SmWorld();
    const out = new VtdConfig();
    const pe = out.pasidEntry;
    expect(w.resolve(req({ pasid: P1 }), out)).toBe(VTD_RESOLVED);
    expect(out.pasidEntry).toBe(pe);
    expect(pe.did).toBe(42);
    w.ctx.present = false;
    expect(w.resolve(req({ pasid: P1 }), out)).toBe(FR.SM_CONTEXT_ENTRY_P);
    expect([out.type, out.did, out.ssptr, out.fsptr, out.pasid]).toEqual([0, 0, 0, 0, -1]);
  });

  it('reads through a translated view: guest RAM placed at an offset in physical memory', () => {
    const base = 0x40000;
    const bytes = 0x20000;
    const gpaToPa = (gpa: number): number => (gpa >= 0 && gpa < bytes ? base + gpa : -1);
    const write = (enc: (out: Int32Array, at: number) => void, gpa: number): void => enc(mem.i32, (base + gpa) / 4);
    mem.i32.fill(0, base / 4, (base + bytes) / 4);
    write((o, a) => encodeSmRootEntry({ lp: true, lctp: CTX_LO, up: false, uctp: 0 }, o, a), ROOT + BUS * 16);
    const ctx = Object.assign(new SmContextEntry(), { present: true, paside: true, pdts: 1, pasidDirPtr: DIR });
    write((o, a) => encodeSmContextEntry(ctx, o, a), CTX_LO + LOWER * 32);
    write((o, a) => encodePasidDirEntry({ present: true, fpd: false, pasidTablePtr: PTBL }, o, a), DIR + 141 * 8);
    const pe = Object.assign(new PasidEntry(), { present: true, pgtt: PGTT.SecondStage, aw: 1, did: 9, slptptr: SLPT });
    write((o, a) => encodePasidEntry(pe, o, a), PTBL + 5 * 64);
    const reader = new TranslatedQwordReader(mem.i32, gpaToPa);
    const out = new VtdConfig();
    expect(resolver(reader, CAPS, ROOT, TTM.Scalable).resolve((BUS << 8) | LOWER, P1, 0, Untranslated, out)).toBe(
      VTD_RESOLVED,
    );
    expect([out.did, out.ssptr, out.ssLevels]).toEqual([9, SLPT, 3]);
    // A pointer past guest RAM fails even though physical memory exists there.
    write((o, a) => encodeSmRootEntry({ lp: true, lctp: bytes, up: false, uctp: 0 }, o, a), ROOT + BUS * 16);
    expect(resolver(reader, CAPS, ROOT, TTM.Scalable).resolve((BUS << 8) | LOWER, P1, 0, Untranslated, out)).toBe(
      FR.SM_CONTEXT_ACCESS_ERR,
    );
  });

  it('refuses a host address width outside 32..52', () => {
    expect(() => new VtdResolver(new PhysQwordReader(mem.i32), { ...CAPS, haw: 53 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------

interface FaultCase {
  code: number;
  what: string;
  mode: 'legacy' | 'scalable';
  setup: (w: LegacyWorld & SmWorld) => void;
  req?: Partial<Req>;
}

const legacy = (code: number, what: string, setup: FaultCase['setup'], r?: Partial<Req>): FaultCase => ({
  code,
  what,
  mode: 'legacy',
  setup,
  ...(r ? { req: r } : {}),
});
const sm = (code: number, what: string, setup: FaultCase['setup'], r?: Partial<Req>): FaultCase => ({
  code,
  what,
  mode: 'scalable',
  setup,
  req: { pasid: P1, ...r },
});

const FAULT_CASES: FaultCase[] = [
  // §5.2 legacy, and the TTM checks of §5.3.
  legacy(FR.RTADDR_INV_TTM, 'TTM = 10 (reserved)', (w) => (w.ttm = TTM.Reserved)),
  legacy(FR.RTADDR_INV_TTM, 'TTM = scalable without ECAP.SMTS', (w) => {
    w.ttm = TTM.Scalable;
    w.caps.smts = false;
  }),
  legacy(FR.RTADDR_INV_TTM, 'TTM = abort DMA without ECAP.ADMS', (w) => {
    w.ttm = TTM.AbortDma;
    w.caps.adms = false;
  }),
  legacy(FR.RTADDR_LEGACY_PASID, 'a request with PASID under TTM = legacy', () => {}, { pasid: P1 }),
  legacy(FR.RTADDR_LEGACY_PRQ, 'a page request under TTM = legacy', () => {}, { kind: PageRequest }),
  legacy(FR.ROOT_TABLE_INV, 'the root table lies beyond guest memory', (w) => (w.rta = FAR)),
  legacy(FR.ROOT_ENTRY_P, 'root entry P = 0', (w) => (w.root.present = false)),
  legacy(FR.ROOT_ENTRY_RSVD, 'root entry lo[1] set', (w) => w.raw.push(['root', 0, 1 << 1])),
  legacy(FR.ROOT_ENTRY_RSVD, 'root entry hi[63] set', (w) => w.raw.push(['root', 3, 1 << 31])),
  legacy(FR.ROOT_ENTRY_RSVD, 'CTP above the host address width', (w) => {
    w.caps.haw = 40;
    w.root.ctp = 2 ** 44;
  }),
  legacy(FR.CONTEXT_TABLE_INV, 'the context table lies beyond guest memory', (w) => (w.root.ctp = FAR)),
  legacy(FR.CONTEXT_ENTRY_P, 'context entry P = 0', (w) => (w.ctx.present = false)),
  legacy(FR.CONTEXT_ENTRY_RSVD, 'context lo[4] set', (w) => w.raw.push(['ctx', 0, 1 << 4])),
  legacy(FR.CONTEXT_ENTRY_RSVD, 'context hi[7] set', (w) => w.raw.push(['ctx', 2, 1 << 7])),
  legacy(FR.CONTEXT_ENTRY_RSVD, 'context hi[24] set', (w) => w.raw.push(['ctx', 2, 1 << 24])),
  legacy(FR.CONTEXT_ENTRY_RSVD, 'context hi[32] set', (w) => w.raw.push(['ctx', 3, 1])),
  legacy(FR.CONTEXT_ENTRY_RSVD, 'SLPTPTR above the host address width', (w) => {
    w.caps.haw = 40;
    w.ctx.slptptr = 2 ** 41;
  }),
  legacy(FR.CONTEXT_ENTRY_INV, 'AW not in SAGAW', (w) => (w.ctx.aw = 0)),
  legacy(FR.CONTEXT_ENTRY_INV, 'TT = 3', (w) => (w.ctx.tt = 3)),
  legacy(FR.CONTEXT_ENTRY_INV, 'TT = 1 without ECAP.DT', (w) => (w.caps.dt = false)),
  legacy(FR.CONTEXT_ENTRY_INV, 'TT = 2 without ECAP.PT', (w) => {
    w.ctx.tt = CONTEXT_TT.PassThrough;
    w.caps.pt = false;
  }),
  legacy(FR.CONTEXT_ENTRY_TT, 'an ATS translation request with TT = 0', (w) => (w.ctx.tt = 0), { kind: Translation }),
  legacy(FR.CONTEXT_ENTRY_TT, 'an ATS translation request with TT = 2', (w) => (w.ctx.tt = 2), { kind: Translation }),

  // §5.3 scalable.
  sm(FR.RTADDR_INV_TTM, 'TTM = 10 (reserved)', (w) => (w.ttm = TTM.Reserved)),
  sm(FR.SM_ROOT_ACCESS_ERR, 'the root table lies beyond guest memory', (w) => (w.rta = FAR)),
  sm(FR.SM_ROOT_ENTRY_P, 'LP clear for devfn 0..127', (w) => (w.root.lp = false)),
  sm(FR.SM_ROOT_ENTRY_P, 'UP clear for devfn 128..255', (w) => (w.root.up = false), { devfn: UPPER }),
  sm(FR.SM_ROOT_ENTRY_RSVD, 'root lo[11] set', (w) => w.raw.push(['root', 0, 1 << 11])),
  sm(FR.SM_ROOT_ENTRY_RSVD, 'root hi[1] set, though the request uses the lower half', (w) =>
    w.raw.push(['root', 2, 1 << 1]),
  ),
  sm(FR.SM_ROOT_ENTRY_RSVD, 'LCTP above the host address width', (w) => {
    w.caps.haw = 40;
    w.root.lctp = 2 ** 45;
  }),
  sm(
    FR.SM_ROOT_ENTRY_RSVD,
    'UCTP above the host address width',
    (w) => {
      w.caps.haw = 40;
      w.root.uctp = 2 ** 45;
    },
    { devfn: UPPER },
  ),
  sm(FR.SM_CONTEXT_ACCESS_ERR, 'the lower context table lies beyond memory', (w) => (w.root.lctp = FAR)),
  sm(FR.SM_CONTEXT_ACCESS_ERR, 'the upper context table lies beyond memory', (w) => (w.root.uctp = FAR), {
    devfn: UPPER,
  }),
  sm(FR.SM_CONTEXT_ENTRY_P, 'context entry P = 0', (w) => (w.ctx.present = false)),
  sm(FR.SM_CONTEXT_ENTRY_RSVD, 'context qw0[5] set', (w) => w.raw.push(['ctx', 0, 1 << 5])),
  sm(FR.SM_CONTEXT_ENTRY_RSVD, 'context qw1[21] set', (w) => w.raw.push(['ctx', 2, 1 << 21])),
  sm(FR.SM_CONTEXT_ENTRY_RSVD, 'context qw2 nonzero', (w) => w.raw.push(['ctx', 4, 1])),
  sm(FR.SM_CONTEXT_ENTRY_RSVD, 'context qw3[63] set', (w) => w.raw.push(['ctx', 7, 1 << 31])),
  sm(FR.SM_CONTEXT_ENTRY_RSVD, 'PASIDDIRPTR above the host address width', (w) => {
    w.caps.haw = 40;
    w.ctx.pasidDirPtr = 2 ** 40;
  }),
  sm(FR.SM_CONTEXT_ENTRY_INV, 'DTE set without ECAP.DT', (w) => (w.caps.dt = false)),
  sm(FR.SM_CONTEXT_ENTRY_INV, 'PASIDE set without ECAP.PASID', (w) => (w.caps.pasid = false)),
  sm(FR.SM_CONTEXT_ENTRY_INV, 'PRE set without ECAP.PRS', (w) => (w.caps.prs = false)),
  sm(FR.SM_DTE_CLEAR, 'an ATS translation request with DTE clear', (w) => (w.ctx.dte = false), {
    kind: Translation,
  }),
  sm(FR.SM_PASIDE_CLEAR, 'a request with PASID and PASIDE clear', (w) => (w.ctx.paside = false)),
  sm(FR.SM_PASID_BEYOND_PDTS, 'PASID 0x2345 with PDTS = 0 (128 directory entries)', (w) => (w.ctx.pdts = 0)),
  sm(FR.SM_PRE_ABS, 'a page request with PRE clear', (w) => (w.ctx.pre = false), { kind: PageRequest }),
  sm(
    FR.SM_RID_PASID_INV,
    'a request without PASID whose RID_PASID is beyond the directory',
    (w) => Object.assign(w.ctx, { ridPasid: P1, pdts: 0 }),
    { pasid: -1 },
  ),
  sm(FR.PASID_DIR_ACCESS_ERR, 'the PASID directory lies beyond memory', (w) => (w.ctx.pasidDirPtr = FAR)),
  sm(FR.PASID_DIR_ENTRY_P, 'directory entry P = 0', (w) => (w.dir.present = false)),
  sm(FR.PASID_DIR_ENTRY_RSVD, 'directory entry bit 2 set', (w) => w.raw.push(['dir', 0, 1 << 2])),
  sm(FR.PASID_DIR_ENTRY_RSVD, 'SMPTBLPTR above the host address width', (w) => {
    w.caps.haw = 40;
    w.dir.pasidTablePtr = 2 ** 46;
  }),
  sm(FR.PASID_TABLE_ACCESS_ERR, 'the PASID table lies beyond memory', (w) => (w.dir.pasidTablePtr = FAR)),
  sm(FR.PASID_ENTRY_P, 'PASID entry P = 0', (w) => (w.pe.present = false)),
  sm(FR.PASID_ENTRY_RSVD, 'PASID entry qw0[10] set', (w) => w.raw.push(['pe', 0, 1 << 10])),
  sm(FR.PASID_ENTRY_RSVD, 'PASID entry qw1[16] set', (w) => w.raw.push(['pe', 2, 1 << 16])),
  sm(FR.PASID_ENTRY_RSVD, 'PASID entry qw2[8] set', (w) => w.raw.push(['pe', 4, 1 << 8])),
  sm(FR.PASID_ENTRY_RSVD, 'PASID entry qw7[63] set', (w) => w.raw.push(['pe', 15, 1 << 31])),
  sm(FR.PASID_ENTRY_RSVD, 'SLPTPTR above the host address width, second stage', (w) => {
    w.caps.haw = 40;
    Object.assign(w.pe, { pgtt: PGTT.SecondStage, slptptr: 2 ** 42 });
  }),
  sm(FR.PASID_ENTRY_RSVD, 'FLPTPTR above the host address width, first stage only', (w) => {
    w.caps.haw = 40;
    Object.assign(w.pe, { pgtt: PGTT.FirstStage, flptptr: 2 ** 42 });
  }),
  ...[0, 5, 6, 7].map((pgtt) => sm(FR.PASID_TABLE_ENTRY_INV, `PGTT = ${pgtt} (reserved)`, (w) => (w.pe.pgtt = pgtt))),
  ...(
    [
      [PGTT.FirstStage, 'flts'],
      [PGTT.SecondStage, 'slts'],
      [PGTT.Nested, 'nest'],
      [PGTT.PassThrough, 'pt'],
    ] as const
  ).map(([pgtt, cap]) =>
    sm(FR.PASID_TABLE_ENTRY_INV, `PGTT = ${pgtt} without ECAP.${cap.toUpperCase()}`, (w) => {
      w.pe.pgtt = pgtt;
      w.caps[cap] = false;
    }),
  ),
  sm(FR.PASID_TABLE_ENTRY_INV, 'second stage with AW not in SAGAW', (w) =>
    Object.assign(w.pe, { pgtt: PGTT.SecondStage, aw: 0 }),
  ),
  sm(FR.PASID_TABLE_ENTRY_INV, 'nested with AW not in SAGAW', (w) => (w.pe.aw = 4)),
  sm(FR.PASID_TABLE_ENTRY_INV, 'first stage with FLPM = 2 (reserved)', (w) =>
    Object.assign(w.pe, { pgtt: PGTT.FirstStage, flpm: 2 }),
  ),
  sm(FR.PASID_TABLE_ENTRY_INV, 'nested 5-level without CAP.FL5LP', (w) => {
    w.pe.flpm = FLPM.Level5;
    w.caps.fl5lp = false;
  }),
  sm(FR.SM_ERE_CLEAR, 'an execute request with ERE clear', (w) => (w.pe.ere = false), {
    access: Access.Read | Access.Exec,
  }),
  sm(FR.SM_SRE_CLEAR, 'a supervisor request with SRE clear', (w) => (w.pe.sre = false), {
    access: Access.Read | Access.Priv,
  }),
  sm(
    FR.SM_SRE_CLEAR,
    'a request without PASID, RID_PRIV set and SRE clear',
    (w) => {
      w.ctx.ridPriv = true;
      w.pe.sre = false;
    },
    { pasid: -1 },
  ),
];

function world(mode: FaultCase['mode']): LegacyWorld & SmWorld {
  // Both worlds have the fields a case touches for its own mode; the intersection type lets one
  // setup signature serve both tables.
  return (mode === 'legacy' ? new LegacyWorld() : new SmWorld()) as LegacyWorld & SmWorld;
}

describe('each fault reason is raised', () => {
  it.each(FAULT_CASES.map((c) => [`${c.mode} ${hex(c.code)}: ${c.what}`, c] as const))('%s', (_name, c) => {
    const w = world(c.mode);
    const out = new VtdConfig();
    // Without the setup the world resolves (the TTM = legacy cases need a plain request for that).
    const implied = c.code === FR.RTADDR_LEGACY_PASID || c.code === FR.RTADDR_LEGACY_PRQ;
    expect(w.resolve(req(implied ? {} : c.req), out)).toBe(VTD_RESOLVED);
    c.setup(w);
    expect(hex(w.resolve(req(c.req), out))).toBe(hex(c.code));
    expect(out.fault).toBe(c.code);
  });

  it('covers every configuration fault reason code', () => {
    const raised = new Set(FAULT_CASES.map((c) => c.code));
    expect(Object.values(VTD_CFG_FR).filter((code) => !raised.has(code))).toEqual([]);
  });

  const viaPasid = req({ pasid: P1 });
  it.each([
    ['UCTP above the HAW for a request to the lower half', (w: SmWorld) => (w.root.uctp = 2 ** 45), viaPasid],
    [
      'FLPTPTR above the HAW under nesting (a GPA, for the nested walk)',
      (w: SmWorld) => (w.pe.flptptr = 2 ** 45),
      viaPasid,
    ],
    [
      'FLPTPTR above the HAW with second stage only',
      (w: SmWorld) => Object.assign(w.pe, { pgtt: PGTT.SecondStage, flptptr: 2 ** 45 }),
      viaPasid,
    ],
    [
      'SLPTPTR above the HAW with first stage only',
      (w: SmWorld) => Object.assign(w.pe, { pgtt: PGTT.FirstStage, slptptr: 2 ** 45 }),
      viaPasid,
    ],
    [
      'AW not in SAGAW with first stage only',
      (w: SmWorld) => Object.assign(w.pe, { pgtt: PGTT.FirstStage, aw: 0 }),
      viaPasid,
    ],
    [
      'FLPM = 2 with second stage only',
      (w: SmWorld) => Object.assign(w.pe, { pgtt: PGTT.SecondStage, flpm: 2 }),
      viaPasid,
    ],
    [
      'ERE clear, for a request without PASID (only a PASID prefix carries execute)',
      (w: SmWorld) => (w.pe.ere = false),
      req({ access: Access.Read | Access.Exec }),
    ],
  ])('not a fault: %s', (_what, setup, r) => {
    const w = new SmWorld();
    w.caps.haw = 40;
    setup(w);
    expect(w.resolve(r)).toBe(VTD_RESOLVED);
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * One fault a test can plant, in the order the fetch checks. `applies` says which requests can
 * raise it; `implied` ones are raised by the request alone.
 */
interface Injector<W> {
  code: number;
  applies?: (q: Req) => boolean;
  implied?: boolean;
  conflicts?: readonly number[];
  inject: (w: W) => void;
}

const withPasid = (q: Req): boolean => q.pasid >= 0;

const LEGACY_ORDER: Injector<LegacyWorld>[] = [
  { code: FR.RTADDR_LEGACY_PASID, applies: withPasid, implied: true, inject: () => {} },
  { code: FR.RTADDR_LEGACY_PRQ, applies: (q) => q.kind === PageRequest, implied: true, inject: () => {} },
  { code: FR.ROOT_TABLE_INV, inject: (w) => (w.rta = FAR) },
  { code: FR.ROOT_ENTRY_P, inject: (w) => (w.root.present = false) },
  { code: FR.ROOT_ENTRY_RSVD, inject: (w) => w.raw.push(['root', 2, 1]) },
  { code: FR.CONTEXT_TABLE_INV, inject: (w) => (w.root.ctp = FAR) },
  { code: FR.CONTEXT_ENTRY_P, inject: (w) => (w.ctx.present = false) },
  { code: FR.CONTEXT_ENTRY_RSVD, inject: (w) => w.raw.push(['ctx', 0, 1 << 4]) },
  { code: FR.CONTEXT_ENTRY_INV, inject: (w) => (w.ctx.aw = 0) },
  { code: FR.CONTEXT_ENTRY_TT, applies: (q) => q.kind === Translation, inject: (w) => (w.ctx.tt = 0) },
];

const SM_ORDER: Injector<SmWorld>[] = [
  { code: FR.SM_ROOT_ACCESS_ERR, inject: (w) => (w.rta = FAR) },
  { code: FR.SM_ROOT_ENTRY_P, inject: (w) => Object.assign(w.root, { lp: false, up: false }) },
  { code: FR.SM_ROOT_ENTRY_RSVD, inject: (w) => w.raw.push(['root', 0, 1 << 1]) },
  { code: FR.SM_CONTEXT_ACCESS_ERR, inject: (w) => Object.assign(w.root, { lctp: FAR, uctp: FAR }) },
  { code: FR.SM_CONTEXT_ENTRY_P, inject: (w) => (w.ctx.present = false) },
  { code: FR.SM_CONTEXT_ENTRY_RSVD, inject: (w) => w.raw.push(['ctx', 6, 1]) },
  { code: FR.SM_CONTEXT_ENTRY_INV, conflicts: [FR.SM_DTE_CLEAR], inject: (w) => (w.caps.dt = false) },
  {
    code: FR.SM_RID_PASID_INV,
    applies: (q) => !withPasid(q),
    inject: (w) => Object.assign(w.ctx, { ridPasid: P1, pdts: 0 }),
  },
  { code: FR.SM_PASIDE_CLEAR, applies: withPasid, inject: (w) => (w.ctx.paside = false) },
  { code: FR.SM_PASID_BEYOND_PDTS, applies: withPasid, inject: (w) => (w.ctx.pdts = 0) },
  {
    code: FR.SM_DTE_CLEAR,
    applies: (q) => q.kind === Translation,
    conflicts: [FR.SM_CONTEXT_ENTRY_INV],
    inject: (w) => (w.ctx.dte = false),
  },
  { code: FR.SM_PRE_ABS, applies: (q) => q.kind === PageRequest, inject: (w) => (w.ctx.pre = false) },
  { code: FR.PASID_DIR_ACCESS_ERR, inject: (w) => (w.ctx.pasidDirPtr = FAR) },
  { code: FR.PASID_DIR_ENTRY_P, inject: (w) => (w.dir.present = false) },
  { code: FR.PASID_DIR_ENTRY_RSVD, inject: (w) => w.raw.push(['dir', 0, 1 << 11]) },
  { code: FR.PASID_TABLE_ACCESS_ERR, inject: (w) => (w.dir.pasidTablePtr = FAR) },
  { code: FR.PASID_ENTRY_P, inject: (w) => (w.pe.present = false) },
  { code: FR.PASID_ENTRY_RSVD, inject: (w) => w.raw.push(['pe', 9, 1 << 3]) },
  { code: FR.PASID_TABLE_ENTRY_INV, inject: (w) => (w.pe.pgtt = 5) },
  {
    code: FR.SM_ERE_CLEAR,
    applies: (q) => withPasid(q) && (q.access & Access.Exec) !== 0,
    inject: (w) => (w.pe.ere = false),
  },
  {
    code: FR.SM_SRE_CLEAR,
    applies: (q) => !withPasid(q) || (q.access & Access.Priv) !== 0,
    inject: (w) => {
      w.ctx.ridPriv = true;
      w.pe.sre = false;
    },
  },
];

/** The faults that apply when `picked` are planted for request `q`, in check order. */
function active<W>(order: Injector<W>[], q: Req, picked: (i: number) => boolean): Injector<W>[] {
  const chosen: Injector<W>[] = [];
  order.forEach((inj, i) => {
    const applies = inj.applies?.(q) ?? true;
    const want = inj.implied === true ? applies : applies && picked(i);
    if (want && !chosen.some((c) => c.conflicts?.includes(inj.code))) chosen.push(inj);
  });
  return chosen;
}

const SHAPES: Req[] = [-1, P1].flatMap((pasid) =>
  [Untranslated, Translation, PageRequest].flatMap((kind) =>
    [Access.Read, Access.Read | Access.Exec | Access.Priv].map((access) => req({ pasid, kind, access })),
  ),
);

function orderingSuite<W extends { resolve(q: Req, out?: VtdConfig): number }>(
  mode: string,
  order: Injector<W>[],
  make: () => W,
): void {
  describe(`${mode}: when several faults apply, the earlier check wins`, () => {
    /** A request for which exactly `first` and `second` apply, in that order, if there is one. */
    const shapeFor = (first: Injector<W>, second: Injector<W>): Req | undefined =>
      SHAPES.find((s) => {
        const both = active(order, s, (k) => order[k] === first || order[k] === second);
        return both.length === 2 && both[0] === first && both[1] === second;
      });

    it.each(order.slice(0, -1).map((inj, i) => [hex(inj.code), i] as const))(
      '%s beats every later fault it can meet',
      (_name, i) => {
        const first = order[i]!;
        let met = 0;
        for (const second of order.slice(i + 1)) {
          const q = shapeFor(first, second);
          if (!q) continue;
          met++;
          const w = make();
          first.inject(w);
          second.inject(w);
          expect(hex(w.resolve(q)), `with ${hex(second.code)}`).toBe(hex(first.code));
          // The later fault is real: planted alone it is the first the request meets.
          const only = make();
          second.inject(only);
          expect(hex(only.resolve(q))).toBe(hex(active(order, q, (k) => order[k] === second)[0]!.code));
        }
        expect(met).toBeGreaterThan(0);
      },
    );

    it('any few planted faults report the first in check order', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...SHAPES),
          fc.constantFrom(LOWER, UPPER),
          fc.uniqueArray(fc.integer({ min: 0, max: order.length - 1 }), { maxLength: 4 }),
          (shape, devfn, picks) => {
            const q = { ...shape, devfn };
            const planted = active(order, q, (i) => picks.includes(i));
            const w = make();
            for (const inj of planted) inj.inject(w);
            expect(hex(w.resolve(q))).toBe(hex(planted[0]?.code ?? VTD_RESOLVED));
          },
        ),
        { numRuns: 500 },
      );
    });
  });
}

orderingSuite('legacy', LEGACY_ORDER, () => new LegacyWorld());
orderingSuite('scalable', SM_ORDER, () => new SmWorld());

// ---------------------------------------------------------------------------------------------

type LegacyFpdCase = [string, number, (w: LegacyWorld) => unknown];
type SmFpdCase = [string, number, 'ctx' | 'dir' | 'pe', (w: SmWorld) => unknown, boolean];

describe('FPD (§5.4)', () => {
  it.each<LegacyFpdCase>([
    ['legacy context P = 0', FR.CONTEXT_ENTRY_P, (w) => (w.ctx.present = false)],
    ['legacy invalid context (AW)', FR.CONTEXT_ENTRY_INV, (w) => (w.ctx.aw = 0)],
    ['legacy TT blocks ATS', FR.CONTEXT_ENTRY_TT, (w) => (w.ctx.tt = 0)],
  ])('a context FPD suppresses the qualified fault: %s', (_what, code, setup) => {
    const w = new LegacyWorld();
    setup(w);
    const out = new VtdConfig();
    expect(w.resolve(req({ kind: Translation }), out)).toBe(code);
    expect([out.record, out.fpd]).toEqual([true, false]);
    w.ctx.fpd = true;
    expect(w.resolve(req({ kind: Translation }), out)).toBe(code);
    expect([out.record, out.fpd]).toEqual([false, true]);
  });

  it('a legacy context FPD does not suppress reserved bits (0xB) nor any root-entry fault', () => {
    const w = new LegacyWorld();
    w.ctx.fpd = true;
    w.raw.push(['ctx', 0, 1 << 4]);
    const out = new VtdConfig();
    expect(w.resolve(req(), out)).toBe(FR.CONTEXT_ENTRY_RSVD);
    expect(out.record).toBe(true);
    w.root.present = false;
    expect(w.resolve(req(), out)).toBe(FR.ROOT_ENTRY_P);
    expect(out.record).toBe(true);
  });

  it.each<SmFpdCase>([
    ['context P = 0', FR.SM_CONTEXT_ENTRY_P, 'ctx', (w: SmWorld) => (w.ctx.present = false), true],
    ['context reserved bits', FR.SM_CONTEXT_ENTRY_RSVD, 'ctx', (w: SmWorld) => w.raw.push(['ctx', 6, 1]), false],
    ['invalid context', FR.SM_CONTEXT_ENTRY_INV, 'ctx', (w: SmWorld) => (w.caps.prs = false), true],
    ['PASIDE clear', FR.SM_PASIDE_CLEAR, 'ctx', (w: SmWorld) => (w.ctx.paside = false), true],
    ['directory read error', FR.PASID_DIR_ACCESS_ERR, 'ctx', (w: SmWorld) => (w.ctx.pasidDirPtr = FAR), false],
    ['directory P = 0', FR.PASID_DIR_ENTRY_P, 'dir', (w: SmWorld) => (w.dir.present = false), true],
    ['directory reserved bits', FR.PASID_DIR_ENTRY_RSVD, 'dir', (w: SmWorld) => w.raw.push(['dir', 0, 4]), false],
    ['PASID table read error', FR.PASID_TABLE_ACCESS_ERR, 'dir', (w: SmWorld) => (w.dir.pasidTablePtr = FAR), false],
    ['PASID entry P = 0', FR.PASID_ENTRY_P, 'pe', (w: SmWorld) => (w.pe.present = false), true],
    ['PASID entry reserved bits', FR.PASID_ENTRY_RSVD, 'pe', (w: SmWorld) => w.raw.push(['pe', 8, 1]), false],
    ['invalid PASID entry', FR.PASID_TABLE_ENTRY_INV, 'pe', (w: SmWorld) => (w.pe.pgtt = 0), true],
    ['SRE clear', FR.SM_SRE_CLEAR, 'pe', (w: SmWorld) => (w.pe.sre = false), true],
  ])('scalable %s with FPD in the %s entry: suppressed = %s', (_what, code, where, setup, qualified) => {
    const w = new SmWorld();
    setup(w);
    const r = req({ pasid: P1, access: Access.Priv });
    const out = new VtdConfig();
    expect(w.resolve(r, out)).toBe(code);
    expect(out.record).toBe(true);
    (where === 'ctx' ? w.ctx : where === 'dir' ? w.dir : w.pe).fpd = true;
    expect(w.resolve(r, out)).toBe(code);
    expect(out.record).toBe(!qualified);
  });

  it('the FPD of a directory entry counts though its P = 0, and a later entry’s FPD cannot reach back', () => {
    const w = new SmWorld();
    Object.assign(w.dir, { present: false, fpd: true });
    const out = new VtdConfig();
    expect(w.resolve(req({ pasid: P1 }), out)).toBe(FR.PASID_DIR_ENTRY_P);
    expect(out.record).toBe(false);
    const v = new SmWorld();
    v.ctx.paside = false;
    v.pe.fpd = true;
    expect(v.resolve(req({ pasid: P1 }), out)).toBe(FR.SM_PASIDE_CLEAR);
    expect(out.record).toBe(true);
  });

  it('after a success, out.fpd carries the FPD seen for the walk’s faults', () => {
    const w = new SmWorld();
    w.dir.fpd = true;
    const out = new VtdConfig();
    expect(w.resolve(req({ pasid: P1 }), out)).toBe(VTD_RESOLVED);
    expect(out.fpd).toBe(true);
    const l = new LegacyWorld();
    l.ctx.fpd = true;
    expect(l.resolve(req(), out)).toBe(VTD_RESOLVED);
    expect(out.fpd).toBe(true);
  });

  it('qualified: the codes §5.4 lists as suppressible, and the walk faults; not: the ones it lists as never', () => {
    const never = [0x1, 0x8, 0xa, 0x9, 0xb, 0x50, 0x58, 0x30, 0x31, 0x32, 0x38, 0x39, 0x3a, 0x40, 0x42, 0x52, 0x5a];
    const can = [0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0xc, 0xd, 0x41, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x51, 0x59, 0x5b];
    expect(never.filter(isQualifiedFault)).toEqual([]);
    expect(can.filter((c) => !isQualifiedFault(c))).toEqual([]);
    expect(Object.values(VTD_FR).filter((c) => !isQualifiedFault(c))).toEqual([]);
    expect([0, 0x100, -1].some(isQualifiedFault)).toBe(false);
  });
});
