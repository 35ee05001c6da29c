import { checkField } from '../vtd/structures.js';
import { STRTAB_BASE, STRTAB_BASE_CFG } from './regs-defs.js';

/*
 * SMMUv3 stream table structures in guest memory and the registers that point at them
 * (reference/config-formats.md §3.1, §3.2; Linux `STRTAB_*`, QEMU `STE_*` / `STRTAB_BASE_CFG`).
 * The context descriptor and the CD tables are in structures-cd.ts; the register field positions
 * (STRTAB_BASE, STRTAB_BASE_CFG, STRTAB_FMT) are regs-defs.ts's, and this file only encodes and
 * decodes them.
 *
 * A structure is a run of 32-bit words as it lies in memory (little-endian): qword n is word 2n
 * (bits 31:0) and word 2n+1 (bits 63:32), the layout of PhysMemory's i32 view and of QEMU's
 * `word[]` arrays, so an encoder can write straight into guest memory and a decoder can read
 * straight out of it. Every address field ends at bit 51 (a 52-bit physical or IPA space).
 */

const TWO_32 = 2 ** 32;
/** Bits 51:32 of an address, in its high word. */
const ADDR_HI = 0xfffff;

/** The address in bits 51:n of the qword `lo`, `hi`, where `loMask` selects bits 31:n of `lo`. */
export function addrFromWords(lo: number, hi: number, loMask: number): number {
  return (hi & ADDR_HI) * TWO_32 + ((lo & loMask) >>> 0);
}

/** The low-word bits of an address field: bits 31:n of `addr`, n given by `loMask`. */
export function addrLoWord(addr: number, loMask: number): number {
  return (addr % TWO_32) & loMask;
}

/** The high-word bits of an address field: bits 51:32 of `addr`. */
export function addrHiWord(addr: number): number {
  return Math.floor(addr / TWO_32) & ADDR_HI;
}

/** Throws unless `addr` is a multiple of 2^`alignBits` below 2^52. */
export function checkAddr(structure: string, field: string, addr: number, alignBits: number): void {
  if (!Number.isInteger(addr) || addr < 0 || addr >= 2 ** 52 || addr % 2 ** alignBits !== 0) {
    throw new RangeError(
      `${structure}.${field} must be a ${2 ** alignBits}-byte-aligned address below 2^52, got ${String(addr)}`,
    );
  }
}

/** Bits 31:6 of a 64-byte-aligned address. */
export const ADDR_LO_6 = 0xffffffc0 | 0;
/** Bits 31:4 of a 16-byte-aligned address. */
export const ADDR_LO_4 = 0xfffffff0 | 0;
/** Bits 31:12 of a 4 KiB-aligned address. */
export const ADDR_LO_12 = 0xfffff000 | 0;
/** Bits 63:52 of a qword: above every address field, in the high word. */
const ABOVE_ADDR = ~ADDR_HI;

// ---------------------------------------------------------------------------------------------
// SMMU_STRTAB_BASE (0x80, 64-bit) and SMMU_STRTAB_BASE_CFG (0x88, 32-bit)

/** Reserved bits of STRTAB_BASE by word: bits 5:0, 61:52 and 63. */
export const STRTAB_BASE_RSVD: readonly number[] = [0x3f, ABOVE_ADDR & ~STRTAB_BASE.RA_HI];

/** Encodes STRTAB_BASE: the table address `addr` (64-byte aligned) and the RA hint. */
export function encodeStrtabBase(addr: number, ra: boolean, out: Int32Array = new Int32Array(2), at = 0): Int32Array {
  checkAddr('STRTAB_BASE', 'addr', addr, 6);
  out[at] = addrLoWord(addr, ADDR_LO_6);
  out[at + 1] = addrHiWord(addr) | (ra ? STRTAB_BASE.RA_HI : 0);
  return out;
}

/** The stream-table address held in STRTAB_BASE's words (bits 51:6). */
export function strtabBaseAddr(lo: number, hi: number): number {
  return addrFromWords(lo, hi, ADDR_LO_6);
}

/** Reserved bits of STRTAB_BASE_CFG: 15:11 and 31:18. */
export const STRTAB_BASE_CFG_RSVD = 0xfffcf800 | 0;

/** A decoded STRTAB_BASE_CFG. */
export class StrtabBaseCfg {
  /** LOG2SIZE: log2 of the number of StreamIDs the table covers. */
  log2size = 0;
  /** SPLIT: StreamID bits that index an L2 table (2-level only). */
  split = 0;
  /** FMT: a STRTAB_FMT value (regs-defs.ts; 2 and 3 are reserved and behave as linear). */
  fmt = 0;
}

/** Encodes STRTAB_BASE_CFG as its 32-bit value. */
export function encodeStrtabBaseCfg(c: Readonly<StrtabBaseCfg>): number {
  checkField('StrtabBaseCfg', 'log2size', c.log2size, 6);
  checkField('StrtabBaseCfg', 'split', c.split, 5);
  checkField('StrtabBaseCfg', 'fmt', c.fmt, 2);
  const f = STRTAB_BASE_CFG;
  return c.log2size | (c.split << f.SplitShift) | (c.fmt << f.FmtShift);
}

/** Decodes the 32-bit STRTAB_BASE_CFG `value` into `out`. */
export function decodeStrtabBaseCfg(value: number, out: StrtabBaseCfg): StrtabBaseCfg {
  const f = STRTAB_BASE_CFG;
  out.log2size = value & f.Log2SizeMask;
  out.split = (value >>> f.SplitShift) & f.SplitMask;
  out.fmt = (value >>> f.FmtShift) & f.FmtMask;
  return out;
}

// ---------------------------------------------------------------------------------------------
// L1 stream table descriptor (64-bit; Linux `STRTAB_L1_DESC_*`)

/** L1STD fields (§3.1), word 0. */
export const L1STD = {
  /** Size in 32-bit words. */
  WORDS: 2,
  /** Size in bytes. */
  BYTES: 8,
  /** bits 4:0: SPAN; 0 = no L2 table, else the L2 table holds 2^(SPAN−1) STEs. */
  SPAN_MASK: 0x1f,
} as const;

/** Reserved bits of an L1STD by word: bit 5 and bits 63:52. */
export const L1STD_RSVD: readonly number[] = [0x20, ABOVE_ADDR];

/** A decoded L1 stream table descriptor. */
export class L1Std {
  /** SPAN: 0 = invalid; else the L2 table holds 2^(SPAN−1) STEs. */
  span = 0;
  /** L2Ptr: the L2 table of STEs (64-byte aligned). */
  l2Ptr = 0;
}

/** Encodes an L1STD into `out[at..at+2)`. */
export function encodeL1Std(e: Readonly<L1Std>, out: Int32Array = new Int32Array(L1STD.WORDS), at = 0): Int32Array {
  checkField('L1Std', 'span', e.span, 5);
  checkAddr('L1Std', 'l2Ptr', e.l2Ptr, 6);
  out[at] = e.span | addrLoWord(e.l2Ptr, ADDR_LO_6);
  out[at + 1] = addrHiWord(e.l2Ptr);
  return out;
}

/** Decodes the L1STD at `w[at..at+2)` into `out`. */
export function decodeL1Std(w: Int32Array, at: number, out: L1Std): L1Std {
  const lo = w[at]!;
  out.span = lo & L1STD.SPAN_MASK;
  out.l2Ptr = addrFromWords(lo, w[at + 1]!, ADDR_LO_6);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stream table entry (512-bit)

/** STE.Config values (qw0[3:1]; Linux `STRTAB_STE_0_CFG_*`). 0b001–0b011 are reserved. */
export const STE_CONFIG = {
  /** Terminate every transaction, without an event. */
  Abort: 0b000,
  /** Both stages bypassed. */
  Bypass: 0b100,
  /** Stage 1 translates, stage 2 bypassed. */
  S1: 0b101,
  /** Stage 1 bypassed, stage 2 translates. */
  S2: 0b110,
  /** Stage 1 then stage 2. */
  Nested: 0b111,
} as const;

/** STE.Config bit 0: stage 1 enabled (QEMU `STE_CFG_S1_ENABLED`). */
export const STE_CONFIG_S1 = 0b001;
/** STE.Config bit 1: stage 2 enabled (QEMU `STE_CFG_S2_ENABLED`). */
export const STE_CONFIG_S2 = 0b010;
/** STE.Config bit 2: clear = abort (QEMU `STE_CFG_ABORT`). */
export const STE_CONFIG_TRANSLATE = 0b100;

/** STE.S1Fmt values (qw0[5:4]); 3 is reserved. Ignored when S1CDMax = 0. */
export const S1FMT = {
  /** A linear table of 2^S1CDMax CDs. */
  Linear: 0,
  /** L1CD table, leaves of 64 CDs (4 KiB). */
  TwoLevel4K: 1,
  /** L1CD table, leaves of 1024 CDs (64 KiB; Linux `S1FMT_64K_L2`). */
  TwoLevel64K: 2,
} as const;

/** STE.S1DSS values (qw1[1:0]): transactions without a SubstreamID when S1CDMax > 0. 3 is reserved. */
export const S1DSS = {
  /** Terminated with F_STREAM_DISABLED. */
  Terminate: 0,
  /** Stage 1 bypassed. */
  Bypass: 1,
  /** Translated with CD 0; a transaction with SubstreamID 0 is then C_BAD_SUBSTREAMID. */
  Substream0: 2,
} as const;

/** STE.S2TG values (qw2[47:46]); 3 is invalid (QEMU: C_BAD_STE). */
export const S2TG = {
  K4: 0,
  K64: 1,
  K16: 2,
} as const;

/** log2 of the granule an STE.S2TG value selects, or 0 for the invalid value 3. */
export function s2TgGranule(tg: number): number {
  return tg === S2TG.K4 ? 12 : tg === S2TG.K64 ? 16 : tg === S2TG.K16 ? 14 : 0;
}

/**
 * STE bit positions (§3.2). Each constant names its word: w0/w1 are qw0, w2/w3 qw1, w4/w5 qw2,
 * w6/w7 qw3.
 */
export const STE = {
  /** Size in 32-bit words. */
  WORDS: 16,
  /** Size in bytes. */
  BYTES: 64,
  /** w0 (qw0[0]): V. */
  V: 1 << 0,
  /** w0 (qw0[3:1]): Config. */
  CONFIG_SHIFT: 1,
  CONFIG_MASK: 7,
  /** w0 (qw0[5:4]): S1Fmt. */
  S1FMT_SHIFT: 4,
  S1FMT_MASK: 3,
  /** w1 (qw0[63:59]): S1CDMax. */
  S1CDMAX_SHIFT: 27,
  S1CDMAX_MASK: 0x1f,
  /** w2 (qw1[1:0]): S1DSS. */
  S1DSS_MASK: 3,
  /** w2 (qw1[3:2]): S1CIR. */
  S1CIR_SHIFT: 2,
  /** w2 (qw1[5:4]): S1COR. */
  S1COR_SHIFT: 4,
  /** w2 (qw1[7:6]): S1CSH. */
  S1CSH_SHIFT: 6,
  /** Mask of the 2-bit fields of w2, w3 and w5. */
  MASK2: 3,
  /** w2 (qw1[11:8]): S2HWU59..S2HWU62, stage-2 hardware-use bits for PBHA (IHI 0070; not in the reference). */
  S2HWU_SHIFT: 8,
  S2HWU_MASK: 0xf,
  /** w2 (qw1[19]): MEV, merge events. */
  MEV: 1 << 19,
  /** w2 (qw1[25]): S2FWB, stage-2 forced write-back. */
  S2FWB: 1 << 25,
  /** w2 (qw1[27]): S1STALLD, stage-1 stall disable. */
  S1STALLD: 1 << 27,
  /** w2 (qw1[29:28]): EATS. */
  EATS_SHIFT: 28,
  /** w2 (qw1[31:30]): STRW. */
  STRW_SHIFT: 30,
  /** w3 (qw1[35:32]): MemAttr. */
  MEMATTR_MASK: 0xf,
  /** w3 (qw1[36]): MTCFG. */
  MTCFG: 1 << 4,
  /** w3 (qw1[40:37]): ALLOCCFG. */
  ALLOCCFG_SHIFT: 5,
  ALLOCCFG_MASK: 0xf,
  /** w3 (qw1[45:44]): SHCFG. */
  SHCFG_SHIFT: 12,
  /** w3 (qw1[47:46]): NSCFG. */
  NSCFG_SHIFT: 14,
  /** w3 (qw1[49:48]): PRIVCFG. */
  PRIVCFG_SHIFT: 16,
  /** w3 (qw1[51:50]): INSTCFG. */
  INSTCFG_SHIFT: 18,
  /** w4 (qw2[15:0]): S2VMID. */
  S2VMID_MASK: 0xffff,
  /** w5 (qw2[37:32]): S2T0SZ. */
  S2T0SZ_MASK: 0x3f,
  /** w5 (qw2[39:38]): S2SL0. */
  S2SL0_SHIFT: 6,
  /** w5 (qw2[41:40]): S2IR0. */
  S2IR0_SHIFT: 8,
  /** w5 (qw2[43:42]): S2OR0. */
  S2OR0_SHIFT: 10,
  /** w5 (qw2[45:44]): S2SH0. */
  S2SH0_SHIFT: 12,
  /** w5 (qw2[47:46]): S2TG. */
  S2TG_SHIFT: 14,
  /** w5 (qw2[50:48]): S2PS. */
  S2PS_SHIFT: 16,
  S2PS_MASK: 7,
  /** w5 (qw2[51]): S2AA64. */
  S2AA64: 1 << 19,
  /** w5 (qw2[52]): S2ENDI. */
  S2ENDI: 1 << 20,
  /** w5 (qw2[53]): S2AFFD. */
  S2AFFD: 1 << 21,
  /** w5 (qw2[54]): S2PTW. */
  S2PTW: 1 << 22,
  /** w5 (qw2[55]): S2HD. */
  S2HD: 1 << 23,
  /** w5 (qw2[56]): S2HA. */
  S2HA: 1 << 24,
  /** w5 (qw2[57]): S2S. */
  S2S: 1 << 25,
  /** w5 (qw2[58]): S2R. */
  S2R: 1 << 26,
} as const;

/**
 * The bits of an STE outside every field modelled here, by word: RES0 bits, and fields of features
 * this model does not implement (DRE, CONT, DCP, PPAR, S1MPAM, the IMPLEMENTATION DEFINED half of
 * qw2, and qw4–qw7: MPAM, secure stage 2, VMS). A configuration fetch ignores them (SMMUv3 has no
 * reserved-bit event, and QEMU does not check them); the encoder writes them as 0.
 */
export const STE_RSVD: readonly number[] = [
  0,
  0x07f00000, // qw0[58:52]
  0x05f7f000, // qw1[18:12], [24:20], [26]
  0xfff00e00 | 0, // qw1[43:41], [63:52]
  0xffff0000 | 0, // qw2[31:16]
  0xf8000000 | 0, // qw2[63:59]
  0xf, // qw3[3:0]
  ABOVE_ADDR, // qw3[63:52]
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
];

/** A decoded stream table entry. */
export class Ste {
  /** V: valid. */
  valid = false;
  /** Config: an {@link STE_CONFIG} value (0b001–0b011 are reserved). */
  config = 0;
  /** S1Fmt: an {@link S1FMT} value (3 is reserved). */
  s1Fmt = 0;
  /** S1ContextPtr: the CD, linear CD table or L1CD table (64-byte aligned; an IPA when nested). */
  s1ContextPtr = 0;
  /** S1CDMax: log2 of the number of CDs; 0 = one CD, no substreams. */
  s1CdMax = 0;
  /** S1DSS: an {@link S1DSS} value (3 is reserved). */
  s1Dss = 0;
  /** S1CIR: CD fetch inner cacheability. */
  s1Cir = 0;
  /** S1COR: CD fetch outer cacheability. */
  s1Cor = 0;
  /** S1CSH: CD fetch shareability. */
  s1Csh = 0;
  /** S2HWU59..S2HWU62 as bits 0..3. */
  s2Hwu = 0;
  /** MEV: merge events. */
  mev = false;
  /** S2FWB: stage-2 forced write-back. */
  s2Fwb = false;
  /** S1STALLD: the stage-1 stall fault model is disallowed. */
  s1StallD = false;
  /** EATS: 0 ATS translation requests aborted, 1 full ATS, 2 split-stage, 3 reserved. */
  eats = 0;
  /** STRW: stream world, 0 NS-EL1, 2 EL2. */
  strw = 0;
  /** MemAttr: memory-type override. */
  memAttr = 0;
  /** MTCFG: use MemAttr. */
  mtCfg = false;
  /** ALLOCCFG: allocation-hint override. */
  allocCfg = 0;
  /** SHCFG: shareability override, 1 = use incoming. */
  shCfg = 0;
  /** NSCFG: NS override. */
  nsCfg = 0;
  /** PRIVCFG: privilege override. */
  privCfg = 0;
  /** INSTCFG: instruction/data override. */
  instCfg = 0;
  /** S2VMID: the VMID. */
  s2Vmid = 0;
  /** S2T0SZ: IPA size = 64 − S2T0SZ. */
  s2T0sz = 0;
  /** S2SL0: stage-2 start level, §1.7. */
  s2Sl0 = 0;
  /** S2IR0: stage-2 walk inner cacheability. */
  s2Ir0 = 0;
  /** S2OR0: stage-2 walk outer cacheability. */
  s2Or0 = 0;
  /** S2SH0: stage-2 walk shareability. */
  s2Sh0 = 0;
  /** S2TG: an {@link S2TG} value. */
  s2Tg = 0;
  /** S2PS: output size, PS encoding. */
  s2Ps = 0;
  /** S2AA64: AArch64 stage-2 tables. */
  s2Aa64 = false;
  /** S2ENDI: big-endian stage-2 walks. */
  s2Endi = false;
  /** S2AFFD: stage-2 access-flag faults disabled. */
  s2Affd = false;
  /** S2PTW: stage-1 walks landing on stage-2 Device memory fault. */
  s2Ptw = false;
  /** S2HD: hardware dirty-state update at stage 2. */
  s2Hd = false;
  /** S2HA: hardware access-flag update at stage 2. */
  s2Ha = false;
  /** S2S: stage-2 faults stall. */
  s2S = false;
  /** S2R: record stage-2 faults. */
  s2R = false;
  /** S2TTB: the stage-2 start table (the first of the concatenated tables; 16-byte granular). */
  s2Ttb = 0;
}

/**
 * Encodes an STE into `out[at..at+16)`, in word order. To publish a live entry, encode into a
 * scratch buffer and copy word 0 (which holds V) last.
 */
export function encodeSte(e: Readonly<Ste>, out: Int32Array = new Int32Array(STE.WORDS), at = 0): Int32Array {
  const s = 'Ste';
  checkField(s, 'config', e.config, 3);
  checkField(s, 's1Fmt', e.s1Fmt, 2);
  checkAddr(s, 's1ContextPtr', e.s1ContextPtr, 6);
  checkField(s, 's1CdMax', e.s1CdMax, 5);
  checkField(s, 's1Dss', e.s1Dss, 2);
  checkField(s, 's1Cir', e.s1Cir, 2);
  checkField(s, 's1Cor', e.s1Cor, 2);
  checkField(s, 's1Csh', e.s1Csh, 2);
  checkField(s, 's2Hwu', e.s2Hwu, 4);
  checkField(s, 'eats', e.eats, 2);
  checkField(s, 'strw', e.strw, 2);
  checkField(s, 'memAttr', e.memAttr, 4);
  checkField(s, 'allocCfg', e.allocCfg, 4);
  checkField(s, 'shCfg', e.shCfg, 2);
  checkField(s, 'nsCfg', e.nsCfg, 2);
  checkField(s, 'privCfg', e.privCfg, 2);
  checkField(s, 'instCfg', e.instCfg, 2);
  checkField(s, 's2Vmid', e.s2Vmid, 16);
  checkField(s, 's2T0sz', e.s2T0sz, 6);
  checkField(s, 's2Sl0', e.s2Sl0, 2);
  checkField(s, 's2Ir0', e.s2Ir0, 2);
  checkField(s, 's2Or0', e.s2Or0, 2);
  checkField(s, 's2Sh0', e.s2Sh0, 2);
  checkField(s, 's2Tg', e.s2Tg, 2);
  checkField(s, 's2Ps', e.s2Ps, 3);
  checkAddr(s, 's2Ttb', e.s2Ttb, 4);
  const f = STE;
  out[at] =
    (e.valid ? f.V : 0) |
    (e.config << f.CONFIG_SHIFT) |
    (e.s1Fmt << f.S1FMT_SHIFT) |
    addrLoWord(e.s1ContextPtr, ADDR_LO_6);
  out[at + 1] = addrHiWord(e.s1ContextPtr) | (e.s1CdMax << f.S1CDMAX_SHIFT);
  out[at + 2] =
    e.s1Dss |
    (e.s1Cir << f.S1CIR_SHIFT) |
    (e.s1Cor << f.S1COR_SHIFT) |
    (e.s1Csh << f.S1CSH_SHIFT) |
    (e.s2Hwu << f.S2HWU_SHIFT) |
    (e.mev ? f.MEV : 0) |
    (e.s2Fwb ? f.S2FWB : 0) |
    (e.s1StallD ? f.S1STALLD : 0) |
    (e.eats << f.EATS_SHIFT) |
    (e.strw << f.STRW_SHIFT);
  out[at + 3] =
    e.memAttr |
    (e.mtCfg ? f.MTCFG : 0) |
    (e.allocCfg << f.ALLOCCFG_SHIFT) |
    (e.shCfg << f.SHCFG_SHIFT) |
    (e.nsCfg << f.NSCFG_SHIFT) |
    (e.privCfg << f.PRIVCFG_SHIFT) |
    (e.instCfg << f.INSTCFG_SHIFT);
  out[at + 4] = e.s2Vmid;
  out[at + 5] =
    e.s2T0sz |
    (e.s2Sl0 << f.S2SL0_SHIFT) |
    (e.s2Ir0 << f.S2IR0_SHIFT) |
    (e.s2Or0 << f.S2OR0_SHIFT) |
    (e.s2Sh0 << f.S2SH0_SHIFT) |
    (e.s2Tg << f.S2TG_SHIFT) |
    (e.s2Ps << f.S2PS_SHIFT) |
    (e.s2Aa64 ? f.S2AA64 : 0) |
    (e.s2Endi ? f.S2ENDI : 0) |
    (e.s2Affd ? f.S2AFFD : 0) |
    (e.s2Ptw ? f.S2PTW : 0) |
    (e.s2Hd ? f.S2HD : 0) |
    (e.s2Ha ? f.S2HA : 0) |
    (e.s2S ? f.S2S : 0) |
    (e.s2R ? f.S2R : 0);
  out[at + 6] = addrLoWord(e.s2Ttb, ADDR_LO_4);
  out[at + 7] = addrHiWord(e.s2Ttb);
  out.fill(0, at + 8, at + f.WORDS);
  return out;
}

/** Decodes the STE at `w[at..at+16)` into `out`. */
export function decodeSte(w: Int32Array, at: number, out: Ste): Ste {
  const f = STE;
  const m2 = f.MASK2;
  const w0 = w[at]!;
  const w1 = w[at + 1]!;
  const w2 = w[at + 2]!;
  const w3 = w[at + 3]!;
  const w5 = w[at + 5]!;
  out.valid = (w0 & f.V) !== 0;
  out.config = (w0 >>> f.CONFIG_SHIFT) & f.CONFIG_MASK;
  out.s1Fmt = (w0 >>> f.S1FMT_SHIFT) & f.S1FMT_MASK;
  out.s1ContextPtr = addrFromWords(w0, w1, ADDR_LO_6);
  out.s1CdMax = (w1 >>> f.S1CDMAX_SHIFT) & f.S1CDMAX_MASK;
  out.s1Dss = w2 & f.S1DSS_MASK;
  out.s1Cir = (w2 >>> f.S1CIR_SHIFT) & m2;
  out.s1Cor = (w2 >>> f.S1COR_SHIFT) & m2;
  out.s1Csh = (w2 >>> f.S1CSH_SHIFT) & m2;
  out.s2Hwu = (w2 >>> f.S2HWU_SHIFT) & f.S2HWU_MASK;
  out.mev = (w2 & f.MEV) !== 0;
  out.s2Fwb = (w2 & f.S2FWB) !== 0;
  out.s1StallD = (w2 & f.S1STALLD) !== 0;
  out.eats = (w2 >>> f.EATS_SHIFT) & m2;
  out.strw = (w2 >>> f.STRW_SHIFT) & m2;
  out.memAttr = w3 & f.MEMATTR_MASK;
  out.mtCfg = (w3 & f.MTCFG) !== 0;
  out.allocCfg = (w3 >>> f.ALLOCCFG_SHIFT) & f.ALLOCCFG_MASK;
  out.shCfg = (w3 >>> f.SHCFG_SHIFT) & m2;
  out.nsCfg = (w3 >>> f.NSCFG_SHIFT) & m2;
  out.privCfg = (w3 >>> f.PRIVCFG_SHIFT) & m2;
  out.instCfg = (w3 >>> f.INSTCFG_SHIFT) & m2;
  out.s2Vmid = w[at + 4]! & f.S2VMID_MASK;
  out.s2T0sz = w5 & f.S2T0SZ_MASK;
  out.s2Sl0 = (w5 >>> f.S2SL0_SHIFT) & m2;
  out.s2Ir0 = (w5 >>> f.S2IR0_SHIFT) & m2;
  out.s2Or0 = (w5 >>> f.S2OR0_SHIFT) & m2;
  out.s2Sh0 = (w5 >>> f.S2SH0_SHIFT) & m2;
  out.s2Tg = (w5 >>> f.S2TG_SHIFT) & m2;
  out.s2Ps = (w5 >>> f.S2PS_SHIFT) & f.S2PS_MASK;
  out.s2Aa64 = (w5 & f.S2AA64) !== 0;
  out.s2Endi = (w5 & f.S2ENDI) !== 0;
  out.s2Affd = (w5 & f.S2AFFD) !== 0;
  out.s2Ptw = (w5 & f.S2PTW) !== 0;
  out.s2Hd = (w5 & f.S2HD) !== 0;
  out.s2Ha = (w5 & f.S2HA) !== 0;
  out.s2S = (w5 & f.S2S) !== 0;
  out.s2R = (w5 & f.S2R) !== 0;
  out.s2Ttb = addrFromWords(w[at + 6]!, w[at + 7]!, ADDR_LO_4);
  return out;
}
