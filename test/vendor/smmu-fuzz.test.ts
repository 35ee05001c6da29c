// Fuzzing the emulated SMMUv3 unit (not only its decoder, which smmu-commands.test.ts fuzzes):
// 10^6 random 16-byte commands go through a real unit's command queue in guest memory, driven as
// a guest drives it (a batch at PROD, the CMDQ_PROD doorbell, Linux's arm_smmu_cmdq_skip_err
// recovery), and every outcome is checked against the architecture (reference/viommu-queues.md
// §1.1–§1.6): where CONS stops and why, GERROR, CMDQ_CONS.ERR, the CMD_SYNC MSIs, the counters,
// an untouched event queue. A second part interleaves random translations with garbage STEs and
// CDs and checks every event record and every translation result.
//
// The PRNG is xorshift32 with fixed seeds; a failure names the seed, the option set and the batch
// (or iteration). The command loop allocates nothing per command. Two field distributions are
// skewed for time, not coverage: large ATC_INV spans and large range-TLBI SCALEs are rare, as the
// unit's cost for them grows with the span (see fieldValue).
import { afterEach, describe, expect, it } from 'vitest';
import { Iommufd } from '../../src/index.js';
import { FrameAllocator } from '../../src/memory/index.js';
import {
  armS1Codec,
  armS1Config,
  armS2Codec,
  armS2Config,
  RadixPageTable,
  TranslateFault,
} from '../../src/pgtable/index.js';
import {
  CERROR_NONE,
  CFGI_ALL_RANGE,
  COMMANDS,
  decodeCommand,
  encodeCommand,
  Field,
  Opcode,
  SmmuCommand,
  SmmuFeature,
  SyncCs,
  type CommandFields,
} from '../../src/vendor/smmuv3/commands.js';
import type { SmmuIommu, SmmuIommuOptions } from '../../src/vendor/smmuv3/iommu.js';
import { decodeEvent, EVT_ID, EVT_WORDS } from '../../src/vendor/smmuv3/records.js';
import { resolveSmmuOptions } from '../../src/vendor/smmuv3/regs-caps.js';
import {
  CERROR,
  CMDQ_CONS,
  CR0,
  CR2,
  GERROR,
  IDR0,
  IDR3,
  SMMU_PAGE1,
  SMMU_REG,
  STALL_MODEL,
} from '../../src/vendor/smmuv3/regs-defs.js';
import { Cd, encodeCd } from '../../src/vendor/smmuv3/structures-cd.js';
import { encodeSte, Ste, STE_CONFIG } from '../../src/vendor/smmuv3/structures.js';

// ---- the PRNG ----------------------------------------------------------------------------------

const SEED = 0x5eed_5a17;
let rng = 1;

function seedRng(seed: number): void {
  rng = seed >>> 0 || 1;
}

/** xorshift32: the next 32-bit unsigned number. */
function next(): number {
  let x = rng;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  rng = x >>> 0;
  return rng;
}

/** A number in [0, n) for n <= 2^32 (modulo bias is irrelevant here). */
function below(n: number): number {
  return next() % n;
}

/** Where a failure happened: seed, option set, batch or iteration. */
let where = '';
let step = 0;

function fail(msg: string): never {
  throw new Error(`${where}, step ${step}: ${msg}`);
}

// ---- guest layout ------------------------------------------------------------------------------

const RAM = 16 * 2 ** 20;
const STRTAB = 0x10000; // linear, 2^8 STEs
const STRTAB_LOG2 = 8;
const CMDQ = 0x20000; // 2^8 entries = 4 KiB
const CMDQ_LOG2 = 8;
const QN = 1 << CMDQ_LOG2;
const IDX = (2 << CMDQ_LOG2) - 1; // index + wrap bit
const CMDQ_W = CMDQ / 4;
const EVTQ = 0x21000; // 2^4 entries
const EVTQ_LOG2 = 4;
const CDTAB = 0x22000; // the warm-up CDs
const CDPOOL = 0x30000; // part 2: 64 CDs, 64 bytes each
const CDPOOL_N = 64;
const RESERVED = 0x100000;
const PAGE = 0x4000_0000;
const PAGES = 16;
const EVTQ_PROD = SMMU_PAGE1 + SMMU_REG.EVTQ_PROD;
const EVTQ_CONS = SMMU_PAGE1 + SMMU_REG.EVTQ_CONS;
/** Every GERROR bit. */
const GERROR_BITS = 0x1ff;
const R = 1;
const W = 2;

const OPTION_SETS: readonly { name: string; opts: SmmuIommuOptions }[] = [
  { name: 'default', opts: {} },
  { name: 'ril/ats/stage2 off', opts: { ril: false, ats: false, stage2: false } },
  { name: 'stage1/hyp off', opts: { stage1: false, hyp: false } },
];

const TOTAL_COMMANDS = 1_000_000;

/** SmmuFeature bits as the unit derives them from its options (iommu.ts). */
function optionFeatures(opts: SmmuIommuOptions): number {
  const o = resolveSmmuOptions(opts);
  return (
    (o.stage1 ? SmmuFeature.Stage1 : 0) |
    (o.stage2 ? SmmuFeature.Stage2 : 0) |
    (o.hyp ? SmmuFeature.Hyp : 0) |
    (o.ats ? SmmuFeature.Ats : 0) |
    (o.pri ? SmmuFeature.Pri : 0) |
    (o.stall ? SmmuFeature.Stall : 0) |
    (o.ril ? SmmuFeature.Ril : 0)
  );
}

/** SmmuFeature bits as a guest reads them from IDR0 and IDR3. */
function idrFeatures(unit: SmmuIommu): number {
  const idr0 = unit.mmioRead(SMMU_REG.IDR0, 4) as number;
  const idr3 = unit.mmioRead(SMMU_REG.IDR3, 4) as number;
  const stall = ((idr0 >>> IDR0.StallModelShift) & IDR0.Field2Mask) !== STALL_MODEL.TerminateOnly;
  return (
    ((idr0 & IDR0.S1P) !== 0 ? SmmuFeature.Stage1 : 0) |
    ((idr0 & IDR0.S2P) !== 0 ? SmmuFeature.Stage2 : 0) |
    ((idr0 & IDR0.HYP) !== 0 ? SmmuFeature.Hyp : 0) |
    ((idr0 & IDR0.ATS) !== 0 ? SmmuFeature.Ats : 0) |
    ((idr0 & IDR0.PRI) !== 0 ? SmmuFeature.Pri : 0) |
    (stall ? SmmuFeature.Stall : 0) |
    ((idr3 & IDR3.RIL) !== 0 ? SmmuFeature.Ril : 0)
  );
}

// ---- a guest that boots a unit by hand ---------------------------------------------------------

interface Rig {
  unit: SmmuIommu;
  frames: FrameAllocator;
  u32: Uint32Array;
  i32: Int32Array;
  features: number;
  msi: boolean;
  /** Host PA of GPA 0. */
  basePa: number;
  /** Stage-1 table (IOVA PAGE.. → data) and the stage-2 identity table over guest RAM, if the unit has the stages. */
  s1Root: number;
  s2Root: number;
  data: number;
  mmio(off: number, v: number | bigint, size?: 4 | 8): void;
  read(off: number): number;
}

/** Boots a unit: stream table, queues, CR2, SMMUEN; builds a stage-1 and a stage-2 table. */
function boot(fd: Iommufd, opts: SmmuIommuOptions, cr2 = 0): Rig {
  const unit = fd.smmuCreate({ guestRamBytes: RAM, ...opts });
  const gp = unit.guest;
  const frames = new FrameAllocator(gp);
  frames.allocContiguous(RESERVED / 4096);
  const u32 = new Uint32Array(gp.sab, gp.u8.byteOffset, gp.u8.length / 4);
  const mmio = (off: number, v: number | bigint, size: 4 | 8 = 4): void => unit.mmioWrite(off, v, size);
  const read = (off: number): number => unit.mmioRead(off, 4) as number;
  mmio(SMMU_REG.STRTAB_BASE, BigInt(STRTAB), 8);
  mmio(SMMU_REG.STRTAB_BASE_CFG, STRTAB_LOG2);
  mmio(SMMU_REG.CMDQ_BASE, BigInt(CMDQ | CMDQ_LOG2), 8);
  mmio(SMMU_REG.EVTQ_BASE, BigInt(EVTQ | EVTQ_LOG2), 8);
  mmio(SMMU_REG.CR2, cr2);
  mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.EVTQEN);
  mmio(SMMU_REG.CR0, CR0.CMDQEN | CR0.EVTQEN | CR0.SMMUEN);
  const o = unit.regs.options;
  let s1Root = 0;
  let s2Root = 0;
  const data = frames.allocContiguous(PAGES) * 4096;
  if (o.stage1) {
    const pt = new RadixPageTable(gp, frames, armS1Codec(armS1Config(16)));
    pt.map(PAGE, PAGES * 4096, (off) => data + off, R | W, false);
    s1Root = pt.rootPa;
  }
  if (o.stage2) {
    // IPA = GPA over all of guest RAM, so a nested stage 1 finds its tables and data.
    const s2 = new RadixPageTable(gp, frames, armS2Codec(armS2Config(24, 1)));
    s2.map(0, RAM, (off) => off, R | W, true);
    s2Root = s2.rootPa;
  }
  const features = optionFeatures(opts);
  const idr = idrFeatures(unit);
  if (idr !== features) throw new Error(`IDR features 0x${idr.toString(16)} != options 0x${features.toString(16)}`);
  const msi = ((unit.mmioRead(SMMU_REG.IDR0, 4) as number) & IDR0.MSI) !== 0;
  return {
    unit,
    frames,
    u32,
    i32: gp.i32,
    features,
    msi,
    basePa: unit.ram.gpaToPa(0),
    s1Root,
    s2Root,
    data,
    mmio,
    read,
  };
}

/** A well-formed STE of `config` with VMID `vmid`, its CD at `cdAt` (ASID `asid`). */
function wellFormedSte(r: Rig, config: number, vmid: number, cdAt: number): Ste {
  const ste = new Ste();
  ste.valid = true;
  ste.config = config;
  ste.s1ContextPtr = cdAt;
  ste.s2Vmid = vmid;
  if (config === STE_CONFIG.S2 || config === STE_CONFIG.Nested) {
    Object.assign(ste, { s2T0sz: 24, s2Sl0: 1, s2Tg: 0, s2Ps: 5, s2Aa64: true, s2R: true, s2Ttb: r.s2Root });
  }
  return ste;
}

function wellFormedCd(r: Rig, asid: number): Cd {
  return Object.assign(new Cd(), {
    valid: true,
    aa64: true,
    a: true,
    r: true,
    t0sz: 16,
    ips: 5,
    epd1: true,
    asid,
    ttb0: r.s1Root,
  });
}

/** The STE configs the unit can translate with. */
function configsOf(r: Rig): number[] {
  const o = r.unit.regs.options;
  const out: number[] = [STE_CONFIG.Bypass, STE_CONFIG.Abort];
  if (o.stage1) out.push(STE_CONFIG.S1);
  if (o.stage2) out.push(STE_CONFIG.S2);
  if (o.stage1 && o.stage2) out.push(STE_CONFIG.Nested);
  return out;
}

/** The translating config of the unit for the warm-up: nested if it can, else its one stage. */
function translatingConfig(r: Rig): number {
  const o = r.unit.regs.options;
  return o.stage1 && o.stage2 ? STE_CONFIG.Nested : o.stage1 ? STE_CONFIG.S1 : STE_CONFIG.S2;
}

/** Active GERROR bits (GERROR != GERRORN). */
function gerrorActive(r: Rig): number {
  return (r.read(SMMU_REG.GERROR) ^ r.read(SMMU_REG.GERRORN)) & GERROR_BITS;
}

// ---- part 1: the command generator -------------------------------------------------------------

/** Per table row: opcode, the fields as [slot, dword, hi, lo] and the RES0 masks per word. */
interface GenRow {
  opcode: number;
  requires: number;
  fields: Int32Array;
  reserved: Int32Array;
}

const GEN_ROWS: readonly GenRow[] = COMMANDS.map((spec) => {
  const fields = new Int32Array(spec.fields.length * 4);
  spec.fields.forEach((fs, i) => fields.set([Field[fs.name], fs.dw, fs.hi, fs.lo], i * 4));
  const reserved = new Int32Array(4);
  for (let d = 0; d < 2; d++) {
    reserved[2 * d] = Number(spec.reserved[d]! & 0xffff_ffffn) | 0;
    reserved[2 * d + 1] = Number(spec.reserved[d]! >> 32n) | 0;
  }
  return { opcode: spec.opcode, requires: spec.requires, fields, reserved };
});

/** What the guest wrote into each queue slot (4 words per slot): the commands as fetched. */
const SHADOW = new Uint32Array(QN * 4);
/** The MSI scratch area in guest RAM (set per rig). */
let msiLo = 0;
let msiWords = 0;

/** A random CMD_SYNC MSIAddress (a byte address, 4-aligned, < 2^52) for the command in `slot`. */
function msiAddress(slot: number): number {
  switch (below(7)) {
    case 0:
      return 0; // the wired interrupt only
    case 1:
    case 2:
      return msiLo + below(msiWords) * 4; // inside guest RAM
    case 3:
      return CMDQ + slot * 16; // Linux's MSIPOLL: the CMD_SYNC's own slot
    case 4:
      return RAM - 4 * below(2); // the last word of guest RAM, or just past it
    case 5:
      return RAM + below(2 ** 20) * 4; // just outside guest RAM
    default:
      return (next() & 0xfffff) * 2 ** 32 + (next() >>> 2) * 4; // anywhere below 2^52
  }
}

/** A random raw value for field `slot` of `bits` bits. */
function fieldValue(slot: number, bits: number): number {
  const any = bits >= 32 ? next() : next() & ((1 << bits) - 1);
  switch (slot) {
    case Field.ssec:
      return below(16) === 0 ? 1 : 0;
    case Field.sid:
      return below(2) === 0 ? below(8) + (below(2) === 0 ? 0 : 16) : any;
    case Field.vmid:
      return below(4) !== 0 ? below(4) : any;
    case Field.asid:
    case Field.ssid:
      return below(2) === 0 ? below(8) : any;
    case Field.num:
      return below(3) === 0 ? 0 : any;
    case Field.scale: {
      // Mostly small: a range TLBI of up to 512 2 MiB regions is probed page by page in every
      // region (~19 ms for 1 GiB of 4 KiB pages when the tag has entries); larger ones flush the tag.
      const p = below(8);
      return p === 0 ? 0 : p < 7 ? below(5) : any;
    }
    case Field.size: {
      // ATC_INV: 52 is "everything", 32..51 also cover every page, > 52 is ILL. Spans of 2^17..2^31
      // pages are rare: the unit clears an ATC range 2 MiB region by region and page by page, with
      // no cap (the pipeline routes AtcInv ops without the maxRegions check of IOTLB ranges): Size
      // 31 costs ~60 ms with an empty ATC and ~60 s once the device has a 4 KiB entry cached.
      const p = below(16);
      if (p < 2) return 52;
      if (p < 4) return 32 + below(32);
      if (p === 4 && below(16) === 0) return 17 + below(15);
      return below(17);
    }
    default:
      return any;
  }
}

/** The rows of the commands the unit under test supports. */
let genSupported: readonly GenRow[] = GEN_ROWS;

/**
 * Writes an "almost valid" command into SHADOW at slot `slot`: a table opcode (3 in 4 of a
 * command the unit supports), random fields.
 */
function almostValid(slot: number): void {
  const rows = below(4) === 0 ? GEN_ROWS : genSupported;
  const row = rows[below(rows.length)]!;
  const at = slot * 4;
  let w0 = row.opcode;
  let w1 = 0;
  let w2 = 0;
  let w3 = 0;
  const fs = row.fields;
  for (let i = 0; i < fs.length; i += 4) {
    const f = fs[i]!;
    const dw = fs[i + 1]!;
    const hi = fs[i + 2]!;
    const lo = fs[i + 3]!;
    if (f === Field.addr) {
      // Addr[hi:12] of dword 1: word 2 bits 31:12, word 3 bits hi-32:0; often near PAGE.
      if (below(2) === 0) {
        w2 |= (PAGE + below(PAGES * 2) * 4096) & 0xfffff000;
      } else {
        w2 |= next() & 0xfffff000;
        w3 |= hi >= 63 ? next() : next() & ((1 << (hi - 31)) - 1);
      }
      continue;
    }
    if (f === Field.msiAddr) {
      const a = msiAddress(slot);
      w2 |= (a % 2 ** 32) & ~3;
      w3 |= Math.floor(a / 2 ** 32) & 0xfffff;
      continue;
    }
    const width = hi - lo + 1;
    const v = width >= 32 ? fieldValue(f, width) : fieldValue(f, width) & ((1 << width) - 1);
    const shift = lo % 32;
    const word = 2 * dw + (lo >= 32 ? 1 : 0);
    const bits = (v << shift) | 0;
    if (word === 0) w0 |= bits;
    else if (word === 1) w1 |= bits;
    else if (word === 2) w2 |= bits;
    else w3 |= bits;
  }
  // RES0 garbage (ignored: the unit does not check RES0).
  if (below(4) === 0) {
    const rs = row.reserved;
    w0 |= next() & rs[0]!;
    w1 |= next() & rs[1]!;
    w2 |= next() & rs[2]!;
    w3 |= next() & rs[3]!;
  }
  SHADOW[at] = w0;
  SHADOW[at + 1] = w1;
  SHADOW[at + 2] = w2;
  SHADOW[at + 3] = w3;
}

/**
 * Writes a CMD_SYNC into SHADOW at `slot`: CS = none, or (`poll`) Linux's MSIPOLL form, CS = IRQ
 * with MSIData 0 to the slot itself. Hand-encoded (encodeCommand allocates); checked against
 * encodeCommand by {@link checkPutSync}.
 */
function putSync(slot: number, poll: boolean): void {
  const at = slot * 4;
  SHADOW[at] = Opcode.Sync | (poll ? SyncCs.Irq << 12 : 0);
  SHADOW[at + 1] = 0;
  SHADOW[at + 2] = poll ? CMDQ + slot * 16 : 0;
  SHADOW[at + 3] = 0;
}

function checkPutSync(): void {
  for (const poll of [false, true]) {
    putSync(3, poll);
    const want = encodeCommand(Opcode.Sync, poll ? { cs: SyncCs.Irq, msiAddr: CMDQ + 48, msiData: 0 } : {});
    expect([...SHADOW.subarray(12, 16)]).toEqual([...want]);
  }
}

/** Writes four random words into SHADOW at slot `slot`. */
function randomWords(slot: number): void {
  const at = slot * 4;
  SHADOW[at] = next();
  SHADOW[at + 1] = next();
  SHADOW[at + 2] = next();
  SHADOW[at + 3] = next();
}

// ---- part 1: the reference model ---------------------------------------------------------------

/** What the architecture says the queue does (IHI0070 §4, reference §1.4–§1.5). */
const model = {
  features: 0,
  msi: true,
  atcFailed: false,
  /** Injected ATC_INV failures, by SID (0..7). */
  injected: new Uint8Array(8),
  syncs: 0,
  syncIrq: 0,
  syncSev: 0,
  msiAborts: 0,
  unitCommands: 0,
  /** The MSIs of this batch: address and data, in completion order. */
  msiAddr: new Float64Array(4 * QN),
  msiData: new Uint32Array(4 * QN),
  msiCount: 0,
  /** Why the last run stopped (a CERROR code; NONE: it reached PROD). */
  stop: 0,
};

const mcmd = new SmmuCommand();

/** Commands the unit executes itself (no ops): counted in stats().unitCommands. */
function unitHandles(op: number): boolean {
  return (
    op === Opcode.TlbiNsnhAll ||
    op === Opcode.TlbiEl2All ||
    op === Opcode.TlbiEl2Asid ||
    op === Opcode.TlbiEl2Va ||
    op === Opcode.TlbiEl2Vaa ||
    op === Opcode.PriResp ||
    op === Opcode.Resume ||
    op === Opcode.StallTerm
  );
}

/** Runs the model over SHADOW from `from` to `to` (indexes with wrap); returns where it stops. */
function modelRun(from: number, to: number): number {
  const m = model;
  const f = mcmd.f;
  let i = from;
  while (i !== to) {
    const at = (i & (QN - 1)) * 4;
    if (decodeCommand(SHADOW, at, mcmd, m.features) !== CERROR_NONE) {
      m.stop = CERROR.ILL;
      return i;
    }
    const op = mcmd.opcode;
    if (op === Opcode.AtcInv) {
      const sid = f[Field.sid]!;
      if (sid < 8 && m.injected[sid] === 1) {
        m.injected[sid] = 0;
        m.atcFailed = true;
      }
    } else if (op === Opcode.Sync) {
      if (m.atcFailed) {
        m.atcFailed = false;
        m.stop = CERROR.ATC_INV_SYNC;
        return i;
      }
      m.syncs++;
      const cs = f[Field.cs]!;
      if (cs === SyncCs.Irq) {
        m.syncIrq++;
        const addr = f[Field.msiAddr]!;
        if (m.msi && addr !== 0) {
          if (addr + 4 > RAM) {
            m.msiAborts++;
          } else {
            m.msiAddr[m.msiCount] = addr;
            m.msiData[m.msiCount++] = f[Field.msiData]!;
          }
        }
      } else if (cs === SyncCs.Sev) {
        m.syncSev++;
      }
    } else if (unitHandles(op)) {
      m.unitCommands++;
    }
    i = (i + 1) & IDX;
  }
  m.stop = CERROR.NONE;
  return to;
}

/** Shares of fully random commands a batch may have, in 16ths: about half on average. */
const RANDOM_SHARES = [0, 1, 8, 15, 16];

/** The batch that last got an MSI into each queue slot (an MSIPOLL write into the queue). */
const msiSlotBatch = new Int32Array(QN);

/**
 * Part 1: `quota` commands through the unit's queue in batches of 1–64; returns the number of
 * batches and of command errors seen.
 */
function fuzzCommands(r: Rig, quota: number): { batches: number; ill: number; atc: number; msiAborts: number } {
  const { unit, u32 } = r;
  const m = model;
  m.features = r.features;
  m.msi = r.msi;
  genSupported = GEN_ROWS.filter((row) => (row.requires & ~r.features) === 0);
  m.atcFailed = false;
  m.injected.fill(0);
  m.syncs = m.syncIrq = m.syncSev = m.msiAborts = m.unitCommands = 0;
  msiSlotBatch.fill(0);
  const scratch = r.frames.allocContiguous(64) * 4096;
  msiLo = scratch;
  msiWords = (64 * 4096) / 4;
  const st0 = unit.stats();
  const c0 = st0.cmdq;
  const unit0 = st0.unitCommands;
  const events0 = st0.events.written + st0.events.overflows + st0.events.dropped;
  const evtProd0 = r.read(EVTQ_PROD);
  let prod = r.read(SMMU_REG.CMDQ_CONS) & IDX;
  let ill = 0;
  let atc = 0;
  let doorbells = 0;
  let done = 0;
  let batch = 0;
  while (done < quota) {
    step = ++batch;
    const n = Math.min(1 + below(64), quota - done);
    // Share of fully random words in this batch, in 16ths: about half overall.
    const share = RANDOM_SHARES[below(RANDOM_SHARES.length)]!;
    if (below(8) === 0) {
      const sid = below(8);
      unit.injectAtcInvError(sid);
      m.injected[sid] = 1;
    }
    const cons0 = r.read(SMMU_REG.CMDQ_CONS);
    if ((cons0 & IDX) !== prod) fail(`CONS 0x${cons0.toString(16)} != PROD 0x${prod.toString(16)} at batch start`);
    const err0 = (cons0 >>> CMDQ_CONS.ErrShift) & CMDQ_CONS.ErrMask;
    for (let i = 0; i < n; i++) {
      const slot = (prod + i) & (QN - 1);
      if (below(16) < share) randomWords(slot);
      else almostValid(slot);
      const at = slot * 4;
      const g = CMDQ_W + at;
      u32[g] = SHADOW[at]!;
      u32[g + 1] = SHADOW[at + 1]!;
      u32[g + 2] = SHADOW[at + 2]!;
      u32[g + 3] = SHADOW[at + 3]!;
    }
    const end = (prod + n) & IDX;
    m.msiCount = 0;
    const aborts0 = m.msiAborts;
    try {
      r.mmio(SMMU_REG.CMDQ_PROD, end);
    } catch (e) {
      fail(`mmioWrite(CMDQ_PROD) threw: ${String(e)}`);
    }
    doorbells++;
    let cur = prod;
    let lastErr = -1;
    for (;;) {
      const reg = r.read(SMMU_REG.CMDQ_CONS);
      if ((reg & ~(IDX | (CMDQ_CONS.ErrMask << CMDQ_CONS.ErrShift))) !== 0)
        fail(`CMDQ_CONS 0x${reg.toString(16)} has bits beyond RD and ERR`);
      const rd = reg & IDX;
      const err = (reg >>> CMDQ_CONS.ErrShift) & CMDQ_CONS.ErrMask;
      if (((rd - cur) & IDX) > ((end - cur) & IDX))
        fail(`CONS.RD 0x${rd.toString(16)} outside [0x${cur.toString(16)}, PROD 0x${end.toString(16)}]`);
      // Every entry it consumed, as the guest wrote it, decodes.
      for (let i = cur; i !== rd; i = (i + 1) & IDX) {
        if (decodeCommand(SHADOW, (i & (QN - 1)) * 4, mcmd, r.features) !== CERROR_NONE)
          fail(`consumed entry 0x${i.toString(16)} does not decode (opcode 0x${mcmd.opcode.toString(16)})`);
      }
      const active = gerrorActive(r);
      if ((active & ~(GERROR.CMDQ_ERR | GERROR.MSI_CMDQ_ABT_ERR)) !== 0)
        fail(`GERROR bits 0x${active.toString(16)} active (GERROR 0x${r.read(SMMU_REG.GERROR).toString(16)})`);
      // The exact outcome: where the model of the architecture stops, and why.
      const expectAt = modelRun(cur, end);
      if (rd === end) {
        if ((active & GERROR.CMDQ_ERR) !== 0) fail('CONS reached PROD with GERROR.CMDQ_ERR active');
        const want = lastErr < 0 ? err0 : lastErr;
        if (err !== want) fail(`CMDQ_CONS.ERR ${err} changed (expected ${want})`);
        if (m.stop !== CERROR.NONE)
          fail(`CONS reached PROD; the entry 0x${expectAt.toString(16)} should have stopped it (CERROR ${m.stop})`);
        break;
      }
      if ((active & GERROR.CMDQ_ERR) === 0) fail(`CONS stopped at 0x${rd.toString(16)} without GERROR.CMDQ_ERR`);
      if (err !== CERROR.ILL && err !== CERROR.ABT && err !== CERROR.ATC_INV_SYNC)
        fail(`CMDQ_CONS.ERR ${err} is not a CERROR code`);
      const slot = rd & (QN - 1);
      if (err === CERROR.ILL && decodeCommand(u32, CMDQ_W + slot * 4, mcmd, r.features) === CERROR_NONE)
        fail(`CERROR_ILL on an entry decodeCommand accepts (opcode 0x${mcmd.opcode.toString(16)})`);
      if (err === CERROR.ABT) fail('CERROR_ABT for a queue inside guest RAM');
      if (rd !== expectAt || err !== m.stop)
        fail(
          `stopped at 0x${rd.toString(16)} with CERROR ${err}; expected 0x${expectAt.toString(16)} with CERROR ${m.stop}`,
        );
      if (err === CERROR.ILL) {
        // Linux's arm_smmu_cmdq_skip_err: a CMD_SYNC in its place (plain, or MSIPOLL on itself).
        putSync(slot, below(2) === 0);
        u32.set(SHADOW.subarray(slot * 4, slot * 4 + 4), CMDQ_W + slot * 4);
        ill++;
      } else {
        atc++; // CERROR_ATC_INV_SYNC: CONS stays on the CMD_SYNC, which is retried.
      }
      lastErr = err;
      try {
        r.mmio(SMMU_REG.GERRORN, r.read(SMMU_REG.GERRORN) ^ GERROR.CMDQ_ERR);
      } catch (e) {
        fail(`mmioWrite(GERRORN) threw: ${String(e)}`);
      }
      doorbells++;
      cur = rd;
    }
    // The MSIs: the last one to each address holds its data.
    for (let k = m.msiCount - 1; k >= 0; k--) {
      const addr = m.msiAddr[k]!;
      let later = false;
      for (let j = k + 1; j < m.msiCount; j++) if (m.msiAddr[j] === addr) later = true;
      if (later) continue;
      if (u32[addr / 4] !== m.msiData[k])
        fail(`MSI to 0x${addr.toString(16)}: 0x${u32[addr / 4]!.toString(16)} != 0x${m.msiData[k]!.toString(16)}`);
      if (addr >= CMDQ && addr < CMDQ + QN * 16) msiSlotBatch[(addr - CMDQ) / 16] = batch;
    }
    for (let i = prod; i !== end; i = (i + 1) & IDX) {
      const s = i & (QN - 1);
      const g = CMDQ_W + s * 4;
      if (
        (u32[g] !== SHADOW[s * 4] && msiSlotBatch[s] !== batch) ||
        u32[g + 1] !== SHADOW[s * 4 + 1] ||
        u32[g + 2] !== SHADOW[s * 4 + 2] ||
        u32[g + 3] !== SHADOW[s * 4 + 3]
      )
        fail(`queue slot ${s} changed under the guest`);
    }
    // GERROR: only MSI_CMDQ_ABT_ERR, exactly when a CMD_SYNC MSI aborted; the guest acknowledges it.
    const active = gerrorActive(r);
    const wantActive = m.msiAborts > aborts0 ? GERROR.MSI_CMDQ_ABT_ERR : 0;
    if (active !== wantActive)
      fail(`active GERROR 0x${active.toString(16)}, expected 0x${wantActive.toString(16)} after the batch`);
    if (active !== 0) r.mmio(SMMU_REG.GERRORN, r.read(SMMU_REG.GERRORN) ^ active);
    // No transaction: no event.
    if (r.read(EVTQ_PROD) !== evtProd0) fail('the event queue received a record');
    // The counters.
    const st = unit.stats();
    const c = st.cmdq;
    const got = [
      c.commands - c0.commands,
      c.syncs - c0.syncs,
      c.syncIrq - c0.syncIrq,
      c.syncSev - c0.syncSev,
      c.syncMsiAborts - c0.syncMsiAborts,
      c.errIll - c0.errIll,
      c.errAtcInvSync - c0.errAtcInvSync,
      c.errAbt - c0.errAbt,
      c.doorbells - c0.doorbells,
      st.unitCommands - unit0,
      st.events.written + st.events.overflows + st.events.dropped - events0,
    ];
    const want = [done + n, m.syncs, m.syncIrq, m.syncSev, m.msiAborts, ill, atc, 0, doorbells, m.unitCommands, 0];
    for (let k = 0; k < want.length; k++) {
      if (got[k] !== want[k]) fail(`stats: [${got.join(', ')}] != expected [${want.join(', ')}] (index ${k})`);
    }
    prod = end;
    done += n;
  }
  return { batches: batch, ill, atc, msiAborts: m.msiAborts };
}

/** Warm-up: well-formed STEs at SIDs 16..23 (VMIDs 0..3), each translated once, and ATS devices. */
function warmUp(r: Rig): void {
  const { unit } = r;
  const config = translatingConfig(r);
  for (let v = 0; v < 8; v++) {
    const sid = 16 + v;
    encodeCd(wellFormedCd(r, v & 3), r.i32, (CDTAB + v * 64) / 4);
    encodeSte(wellFormedSte(r, config, v & 3, CDTAB + v * 64), r.i32, (STRTAB + sid * 64) / 4);
  }
  if (unit.regs.options.ats) for (let sid = 0; sid < 24; sid++) unit.addAtsDevice(sid);
  for (let v = 0; v < 8; v++) {
    const iova = config === STE_CONFIG.S2 ? r.data : PAGE;
    const pa = unit.translate({ sid: 16 + v }, iova, R);
    if (pa !== r.basePa + r.data) throw new Error(`warm-up translation of SID ${16 + v} gave ${pa}`);
  }
  if (r.read(EVTQ_PROD) !== 0) throw new Error('warm-up recorded an event');
}

// ---- part 2: translations over garbage STEs and CDs ---------------------------------------------

const EVT_TYPES = new Set<number>(Object.values(EVT_ID));
const FAULTS = new Set<number>(Object.values(TranslateFault));
/** Event types with InputAddr and RnW of the transaction (the page-walk faults). */
const WALK_EVENTS = new Set<number>([
  EVT_ID.F_WALK_EABT,
  EVT_ID.F_TRANSLATION,
  EVT_ID.F_ADDR_SIZE,
  EVT_ID.F_ACCESS,
  EVT_ID.F_PERMISSION,
]);
const HOT_SIDS = 24;

/** Commands for part 2, which must all be consumed without error. */
function submitClean(r: Rig, cmds: [number, CommandFields][]): void {
  let prod = r.read(SMMU_REG.CMDQ_PROD) & IDX;
  for (const [op, fields] of cmds) {
    encodeCommand(op, fields, r.u32, CMDQ_W + (prod & (QN - 1)) * 4);
    prod = (prod + 1) & IDX;
  }
  r.mmio(SMMU_REG.CMDQ_PROD, prod);
  const cons = r.read(SMMU_REG.CMDQ_CONS);
  if ((cons & IDX) !== prod) fail(`clean commands stopped: CONS 0x${cons.toString(16)}, PROD 0x${prod.toString(16)}`);
}

/** Flips a random bit of word `at`. */
function flipBit(i32: Int32Array, at: number): void {
  i32[at] = i32[at]! ^ (1 << below(32));
}

/** A table pointer: the real one, a garbage frame, anywhere in guest RAM, or beyond it. */
function pointer(real: number, garbage: number, align: number): number {
  switch (below(4)) {
    case 0:
    case 1:
      return real;
    case 2:
      return garbage + below(8) * 4096;
    default:
      return below(3) === 0 ? RAM + below(2 ** 16) * 4096 : below(RAM / align) * align;
  }
}

/** Part 2: `iterations` steps of garbage configuration and translations; returns the counts. */
function fuzzTranslations(
  r: Rig,
  iterations: number,
): { translations: number; events: number; ok: number; types: number } {
  const { unit, i32 } = r;
  const o = unit.regs.options;
  const configs = configsOf(r);
  // Garbage frames: random words and descriptor-like words (valid bit set, addresses inside RAM).
  const garbage = r.frames.allocContiguous(8) * 4096;
  for (let k = 0; k < (8 * 4096) / 4; k += 2) {
    if (below(2) === 0) {
      i32[garbage / 4 + k] = next() | 0;
      i32[garbage / 4 + k + 1] = next() | 0;
    } else {
      i32[garbage / 4 + k] = (below(RAM / 4096) * 4096) | 0x403 | (next() & 0xf0c) | 0;
      i32[garbage / 4 + k + 1] = below(4) === 0 ? next() | 0 : 0;
    }
  }
  let evCons = r.read(EVTQ_CONS) & ((2 << EVTQ_LOG2) - 1);
  const rec = new Int32Array(EVT_WORDS);
  const typesSeen: number[] = [];
  let translations = 0;
  let events = 0;
  let ok = 0;
  for (let it = 0; it < iterations; it++) {
    step = it;
    const what = below(100);
    if (what < 15) {
      // An STE: well-formed with random fields, bit-flipped, or random words.
      const sid = below(HOT_SIDS);
      const ste = wellFormedSte(r, configs[below(configs.length)]!, below(4), 0);
      ste.valid = below(16) !== 0;
      ste.s1ContextPtr = pointer(CDPOOL + below(CDPOOL_N) * 64, garbage, 64);
      ste.s1CdMax = below(2) === 0 ? 0 : below(5);
      ste.s1Fmt = below(4) === 0 ? below(3) : 0;
      ste.s1Dss = below(3);
      ste.eats = o.ats ? below(2) : 0;
      if (ste.s2Ttb !== 0) ste.s2Ttb = pointer(r.s2Root, garbage, 4096);
      if (below(8) === 0) ste.s2T0sz = below(64);
      if (below(8) === 0) ste.s2Sl0 = below(4);
      if (below(8) === 0) ste.s2Tg = below(4);
      if (below(8) === 0) ste.s2Ps = below(8);
      const at = (STRTAB + sid * 64) / 4;
      encodeSte(ste, i32, at);
      const mode = below(20);
      if (mode < 3) for (let k = 0; k < 16; k++) i32[at + k] = next() | 0;
      else if (mode < 10) for (let k = below(4); k >= 0; k--) flipBit(i32, at + below(8));
      if (below(4) !== 0)
        submitClean(r, [
          below(2) === 0 ? [Opcode.CfgiSte, { sid }] : [Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE }],
          [Opcode.TlbiNsnhAll, {}],
          ...(o.ats ? [[Opcode.AtcInv, { sid, size: 52 }] as [number, CommandFields]] : []),
          [Opcode.Sync, {}],
        ]);
    } else if (what < 25) {
      // A CD of the pool.
      const k = below(CDPOOL_N);
      const cd = wellFormedCd(r, below(4));
      cd.valid = below(16) !== 0;
      cd.ttb0 = pointer(r.s1Root, garbage, 4096);
      if (below(4) === 0) cd.t0sz = below(64);
      if (below(4) === 0) cd.tg0 = below(4);
      if (below(4) === 0) cd.ips = below(8);
      cd.epd0 = below(16) === 0;
      cd.r = below(8) !== 0;
      cd.aa64 = below(16) !== 0;
      cd.affd = below(2) === 0;
      const at = (CDPOOL + k * 64) / 4;
      encodeCd(cd, i32, at);
      const mode = below(20);
      if (mode < 3) for (let w = 0; w < 16; w++) i32[at + w] = next() | 0;
      else if (mode < 10) for (let w = below(4); w >= 0; w--) flipBit(i32, at + below(4));
      if (below(4) !== 0)
        submitClean(r, [
          [Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE }],
          [Opcode.TlbiNsnhAll, {}],
          [Opcode.Sync, {}],
        ]);
    } else {
      const pick = below(20);
      const sid = pick < 17 ? below(HOT_SIDS) : pick < 18 ? below(512) : pick < 19 ? below(2 ** 16) : next();
      const ssidPick = below(20);
      const ssid = ssidPick < 13 ? -1 : ssidPick < 19 ? below(16) : below(2 ** 20);
      const ip = below(10);
      const iova =
        ip < 5 ? PAGE + below(PAGES) * 4096 + below(4096) : ip < 7 ? below(RAM) : (next() & 0xfffff) * 2 ** 32 + next();
      const access = below(16);
      const prodBefore = r.read(EVTQ_PROD);
      let pa: number;
      try {
        pa = unit.translate(ssid < 0 ? { sid } : { sid, ssid }, iova, access);
      } catch (e) {
        fail(
          `translate(sid 0x${sid.toString(16)}, ssid ${ssid}, 0x${iova.toString(16)}, ${access}) threw: ${String(e)}`,
        );
      }
      translations++;
      const req = `translate(sid 0x${sid.toString(16)}, ssid ${ssid}, iova 0x${iova.toString(16)}, access ${access})`;
      if (!Number.isInteger(pa)) fail(`${req} returned ${pa}`);
      if (pa >= 0) {
        if (pa < r.basePa || pa >= r.basePa + RAM) fail(`${req} returned PA 0x${pa.toString(16)} outside guest RAM`);
        ok++;
      } else if (!FAULTS.has(pa)) {
        fail(`${req} returned ${pa}, not a TranslateFault`);
      }
      const prodAfter = r.read(EVTQ_PROD);
      const mask = (2 << EVTQ_LOG2) - 1;
      const added = ((prodAfter & mask) - (prodBefore & mask)) & mask;
      if ((prodAfter ^ prodBefore) >>> 31 !== 0) fail(`${req}: event queue overflow`);
      if (added > 1) fail(`${req} recorded ${added} events`);
      if (added === 1) {
        events++;
        if (pa >= 0) fail(`${req} succeeded (PA 0x${pa.toString(16)}) but recorded an event`);
        const at = (EVTQ + (evCons & ((1 << EVTQ_LOG2) - 1)) * 32) / 4;
        rec.set(i32.subarray(at, at + EVT_WORDS));
        const ev = decodeEvent(rec);
        if (!EVT_TYPES.has(ev.type)) fail(`${req}: event type 0x${ev.type.toString(16)} is not architected`);
        if (ev.type !== unit.lastEvent)
          fail(`${req}: event 0x${ev.type.toString(16)} but lastEvent 0x${unit.lastEvent.toString(16)}`);
        if (ev.sid !== sid >>> 0) fail(`${req}: event SID 0x${ev.sid.toString(16)}`);
        if (ev.ssv && ev.ssid !== ssid) fail(`${req}: event SSID ${ev.ssid} (SSV = 1)`);
        if (WALK_EVENTS.has(ev.type)) {
          if (ev.inputAddress !== iova) fail(`${req}: event InputAddr 0x${ev.inputAddress.toString(16)}`);
          if (ev.read !== ((access & W) === 0)) fail(`${req}: event RnW ${ev.read}`);
        }
        typesSeen[ev.type] = (typesSeen[ev.type] ?? 0) + 1;
        evCons = (evCons + 1) & mask;
        r.mmio(EVTQ_CONS, evCons);
      }
      const active = gerrorActive(r);
      if (active !== 0) fail(`${req}: GERROR 0x${active.toString(16)} active`);
    }
  }
  const st = unit.stats();
  if (st.events.overflows !== 0 || st.events.dropped !== 0)
    fail(`events lost: ${st.events.overflows} overflows, ${st.events.dropped} dropped`);
  return { translations, events, ok, types: typesSeen.filter((c) => c > 0).length };
}

// ---- the tests ---------------------------------------------------------------------------------

let fd: Iommufd | undefined;
afterEach(async () => {
  await fd?.close();
  fd = undefined;
});

describe('SMMUv3 unit fuzz: 10^6 random commands through the command queue', () => {
  OPTION_SETS.forEach(({ name, opts }, k) => {
    const quota = Math.floor(TOTAL_COMMANDS / OPTION_SETS.length) + (k < TOTAL_COMMANDS % OPTION_SETS.length ? 1 : 0);
    it(`${name}: ${quota} commands, only architected outcomes`, () => {
      const seed = (SEED + k) >>> 0;
      seedRng(seed);
      where = `seed 0x${seed.toString(16)}, ${name}, part 1`;
      step = 0;
      fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
      checkPutSync();
      const r = boot(fd, opts);
      warmUp(r);
      const out = fuzzCommands(r, quota);
      expect(r.unit.stats().cmdq.commands, where).toBe(quota);
      // Both paths were exercised heavily: each CERROR_ILL entry became a CMD_SYNC, the rest ran as written.
      expect(out.ill, where).toBeGreaterThan(quota / 4);
      expect(quota - out.ill, where).toBeGreaterThan(quota / 4);
      expect(out.batches * 16, where).toBeLessThan(quota);
      if (r.unit.regs.options.ats) expect(out.atc, where).toBeGreaterThan(0);
      expect(out.msiAborts, where).toBeGreaterThan(quota / 1000);
      expect(model.syncs - out.ill, where).toBeGreaterThan(quota / 100); // the guest's own CMD_SYNCs
    });
  });
});

describe('SMMUv3 unit fuzz: translations over garbage STEs and CDs', () => {
  OPTION_SETS.forEach(({ name, opts }, k) => {
    it(`${name}: every event is architected and names the translated SID; translate never throws`, () => {
      const seed = (SEED + 0x100 + k) >>> 0;
      seedRng(seed);
      where = `seed 0x${seed.toString(16)}, ${name}, part 2`;
      step = 0;
      fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
      const r = boot(fd, opts, CR2.RECINVSID);
      warmUp(r);
      const out = fuzzTranslations(r, 100_000);
      expect(out.translations, where).toBeGreaterThan(50_000);
      expect(out.events, where).toBeGreaterThan(20_000);
      expect(out.ok, where).toBeGreaterThan(1000);
      expect(out.types, where).toBeGreaterThanOrEqual(6);
    });
  });
});
