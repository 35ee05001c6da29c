import { checkField } from '../vtd/structures.js';
import { ADDR_LO_12, ADDR_LO_4, addrFromWords, addrHiWord, addrLoWord, checkAddr } from './structures.js';

/*
 * SMMUv3 context descriptors and CD tables (reference/config-formats.md §3.3, §3.4; Linux
 * `CTXDESC_*`, QEMU `CD_*`), in the word layout of structures.ts: qword n is words 2n (bits 31:0)
 * and 2n+1 (bits 63:32).
 */

/** Bits 63:52 of a qword, in its high word. */
const ABOVE_ADDR = 0xfff00000 | 0;

// ---------------------------------------------------------------------------------------------
// CD table geometry and the L1 CD descriptor (64-bit; Linux `CTXDESC_L1_DESC_*`)

/** Bytes per CD-table entry of each kind. */
export const CD_TABLE = {
  /** Bytes per CD. */
  CD_BYTES: 64,
  /** Bytes per L1CD. */
  L1CD_BYTES: 8,
} as const;

/**
 * The SSID bits a leaf CD table indexes under STE.S1Fmt `s1Fmt` (§3.3): 6 for 4 KiB leaves, 10
 * for 64 KiB leaves (Linux `CTXDESC_L2_ENTRIES`); 0 for a linear table or the reserved value 3.
 */
export function cdLeafBits(s1Fmt: number): number {
  return s1Fmt === 1 ? 6 : s1Fmt === 2 ? 10 : 0;
}

/** L1CD fields, word 0. */
export const L1CD = {
  /** Size in 32-bit words. */
  WORDS: 2,
  /** bit 0: V, the leaf table is valid. */
  V: 1 << 0,
} as const;

/** Reserved bits of an L1CD by word: bits 11:1 and 63:52. */
export const L1CD_RSVD: readonly number[] = [0xffe, ABOVE_ADDR];

/** A decoded L1 CD descriptor. */
export class L1Cd {
  /** V: the leaf CD table is valid. */
  valid = false;
  /** L2Ptr: the leaf CD table (4 KiB aligned; an IPA when nested). */
  l2Ptr = 0;
}

/** Encodes an L1CD into `out[at..at+2)`. */
export function encodeL1Cd(e: Readonly<L1Cd>, out: Int32Array = new Int32Array(L1CD.WORDS), at = 0): Int32Array {
  checkAddr('L1Cd', 'l2Ptr', e.l2Ptr, 12);
  out[at] = (e.valid ? L1CD.V : 0) | addrLoWord(e.l2Ptr, ADDR_LO_12);
  out[at + 1] = addrHiWord(e.l2Ptr);
  return out;
}

/** Decodes the L1CD at `w[at..at+2)` into `out`. */
export function decodeL1Cd(w: Int32Array, at: number, out: L1Cd): L1Cd {
  const lo = w[at]!;
  out.valid = (lo & L1CD.V) !== 0;
  out.l2Ptr = addrFromWords(lo, w[at + 1]!, ADDR_LO_12);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Context descriptor (512-bit)

/** CD.TG0 values (qw0[7:6]); 3 is reserved. */
export const TG0 = { K4: 0, K64: 1, K16: 2 } as const;
/** CD.TG1 values (qw0[23:22]), a different encoding from TG0; 0 is reserved. */
export const TG1 = { K16: 1, K4: 2, K64: 3 } as const;

/** log2 of the granule a TG0 (`ttb1` false) or TG1 value selects, or 0 for a reserved value (QEMU `tg2granule`). */
export function cdTgGranule(tg: number, ttb1: boolean): number {
  switch (tg) {
    case 0:
      return ttb1 ? 0 : 12;
    case 1:
      return ttb1 ? 14 : 16;
    case 2:
      return ttb1 ? 12 : 14;
    default:
      return ttb1 ? 16 : 0;
  }
}

/**
 * CD bit positions (§3.4). Each constant names its word: w0/w1 are qw0, w2/w3 qw1 (TTB0), w4/w5
 * qw2 (TTB1), w6/w7 qw3 (MAIR), w8/w9 qw4 (AMAIR).
 */
export const CD = {
  /** Size in 32-bit words. */
  WORDS: 16,
  /** w0 (qw0[5:0]): T0SZ. */
  T0SZ_MASK: 0x3f,
  /** w0 (qw0[7:6]): TG0. */
  TG0_SHIFT: 6,
  /** w0 (qw0[9:8]): IR0. */
  IR0_SHIFT: 8,
  /** w0 (qw0[11:10]): OR0. */
  OR0_SHIFT: 10,
  /** w0 (qw0[13:12]): SH0. */
  SH0_SHIFT: 12,
  /** w0 (qw0[14]): EPD0. */
  EPD0: 1 << 14,
  /** w0 (qw0[15]): ENDI. */
  ENDI: 1 << 15,
  /** w0 (qw0[21:16]): T1SZ. */
  T1SZ_SHIFT: 16,
  TSZ_MASK: 0x3f,
  /** w0 (qw0[23:22]): TG1. */
  TG1_SHIFT: 22,
  /** w0 (qw0[25:24]): IR1. */
  IR1_SHIFT: 24,
  /** w0 (qw0[27:26]): OR1. */
  OR1_SHIFT: 26,
  /** w0 (qw0[29:28]): SH1. */
  SH1_SHIFT: 28,
  /** Mask of the 2-bit fields of w0 and w1. */
  MASK2: 3,
  /** w0 (qw0[30]): EPD1. */
  EPD1: 1 << 30,
  /** w0 (qw0[31]): V. */
  V: 1 << 31,
  /** w1 (qw0[34:32]): IPS. */
  IPS_MASK: 7,
  /** w1 (qw0[35]): AFFD. */
  AFFD: 1 << 3,
  /** w1 (qw0[36]): WXN. */
  WXN: 1 << 4,
  /** w1 (qw0[37]): UWXN. */
  UWXN: 1 << 5,
  /** w1 (qw0[39:38]): TBI1:TBI0. */
  TBI_SHIFT: 6,
  /** w1 (qw0[40]): PAN. */
  PAN: 1 << 8,
  /** w1 (qw0[41]): AA64. */
  AA64: 1 << 9,
  /** w1 (qw0[42]): HD. */
  HD: 1 << 10,
  /** w1 (qw0[43]): HA. */
  HA: 1 << 11,
  /** w1 (qw0[44]): S. */
  S: 1 << 12,
  /** w1 (qw0[45]): R. */
  R: 1 << 13,
  /** w1 (qw0[46]): A. */
  A: 1 << 14,
  /** w1 (qw0[47]): ASET. */
  ASET: 1 << 15,
  /** w1 (qw0[63:48]): ASID. */
  ASID_SHIFT: 16,
  ASID_MASK: 0xffff,
  /** w2 / w4 (qw1[0] / qw2[0]): NSCFG0 / NSCFG1. */
  NSCFG: 1 << 0,
  /** w2 / w4 (qw1[1] / qw2[1]): HAD0 / HAD1. */
  HAD: 1 << 1,
} as const;

/**
 * The bits of a CD outside every field modelled here, by word: qw1[3:2] and qw2[3:2], bits 63:52
 * of TTB0 and TTB1, and qw5–qw7 (IMPLEMENTATION DEFINED, MPAM PARTID/PMG, reserved). A
 * configuration fetch ignores them; the encoder writes them as 0.
 */
export const CD_RSVD: readonly number[] = [0, 0, 0xc, ABOVE_ADDR, 0xc, ABOVE_ADDR, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1];

/** A decoded context descriptor. */
export class Cd {
  /** T0SZ: TTB0 input size = 64 − T0SZ. */
  t0sz = 0;
  /** TG0: a {@link TG0} value. */
  tg0 = 0;
  /** IR0: TTB0 walk inner cacheability. */
  ir0 = 0;
  /** OR0: TTB0 walk outer cacheability. */
  or0 = 0;
  /** SH0: TTB0 walk shareability. */
  sh0 = 0;
  /** EPD0: no walks through TTB0. */
  epd0 = false;
  /** ENDI: big-endian walks. */
  endi = false;
  /** T1SZ: TTB1 input size = 64 − T1SZ. */
  t1sz = 0;
  /** TG1: a {@link TG1} value. */
  tg1 = 0;
  /** IR1: TTB1 walk inner cacheability. */
  ir1 = 0;
  /** OR1: TTB1 walk outer cacheability. */
  or1 = 0;
  /** SH1: TTB1 walk shareability. */
  sh1 = 0;
  /** EPD1: no walks through TTB1. */
  epd1 = false;
  /** V: valid. */
  valid = false;
  /** IPS: output size, PS encoding. */
  ips = 0;
  /** AFFD: access-flag faults disabled. */
  affd = false;
  /** WXN: writable implies execute-never. */
  wxn = false;
  /** UWXN: EL0-writable implies execute-never for EL1. */
  uwxn = false;
  /** TBI: bit 0 = TBI0, bit 1 = TBI1 (top byte ignore). */
  tbi = 0;
  /** PAN: privileged access never. */
  pan = false;
  /** AA64: VMSAv8-64 tables. */
  aa64 = false;
  /** HD: hardware dirty-state update. */
  hd = false;
  /** HA: hardware access-flag update. */
  ha = false;
  /** S: stage-1 faults stall. */
  s = false;
  /** R: record stage-1 faults. */
  r = false;
  /** A: a terminated transaction gets an abort. */
  a = false;
  /** ASET: 1 = private ASID set. */
  aset = false;
  /** ASID. */
  asid = 0;
  /** NSCFG0: NS attribute of TTB0 walks. */
  nscfg0 = false;
  /** HAD0: hierarchical attributes disabled under TTB0. */
  had0 = false;
  /** TTB0: the TTB0 start table (16-byte granular; an IPA when nested). */
  ttb0 = 0;
  /** NSCFG1: NS attribute of TTB1 walks. */
  nscfg1 = false;
  /** HAD1: hierarchical attributes disabled under TTB1. */
  had1 = false;
  /** TTB1: the TTB1 start table. */
  ttb1 = 0;
  /** MAIR0: Attr0..Attr3 (32 bits, unsigned). */
  mair0 = 0;
  /** MAIR1: Attr4..Attr7 (32 bits, unsigned). */
  mair1 = 0;
  /** AMAIR0 (32 bits, unsigned). */
  amair0 = 0;
  /** AMAIR1 (32 bits, unsigned). */
  amair1 = 0;
}

/**
 * Encodes a CD into `out[at..at+16)`, in word order. To publish a live CD, encode into a scratch
 * buffer and copy word 0 (which holds V) last.
 */
export function encodeCd(e: Readonly<Cd>, out: Int32Array = new Int32Array(CD.WORDS), at = 0): Int32Array {
  const s = 'Cd';
  checkField(s, 't0sz', e.t0sz, 6);
  checkField(s, 'tg0', e.tg0, 2);
  checkField(s, 'ir0', e.ir0, 2);
  checkField(s, 'or0', e.or0, 2);
  checkField(s, 'sh0', e.sh0, 2);
  checkField(s, 't1sz', e.t1sz, 6);
  checkField(s, 'tg1', e.tg1, 2);
  checkField(s, 'ir1', e.ir1, 2);
  checkField(s, 'or1', e.or1, 2);
  checkField(s, 'sh1', e.sh1, 2);
  checkField(s, 'ips', e.ips, 3);
  checkField(s, 'tbi', e.tbi, 2);
  checkField(s, 'asid', e.asid, 16);
  checkAddr(s, 'ttb0', e.ttb0, 4);
  checkAddr(s, 'ttb1', e.ttb1, 4);
  checkField(s, 'mair0', e.mair0, 32);
  checkField(s, 'mair1', e.mair1, 32);
  checkField(s, 'amair0', e.amair0, 32);
  checkField(s, 'amair1', e.amair1, 32);
  const f = CD;
  out[at] =
    e.t0sz |
    (e.tg0 << f.TG0_SHIFT) |
    (e.ir0 << f.IR0_SHIFT) |
    (e.or0 << f.OR0_SHIFT) |
    (e.sh0 << f.SH0_SHIFT) |
    (e.epd0 ? f.EPD0 : 0) |
    (e.endi ? f.ENDI : 0) |
    (e.t1sz << f.T1SZ_SHIFT) |
    (e.tg1 << f.TG1_SHIFT) |
    (e.ir1 << f.IR1_SHIFT) |
    (e.or1 << f.OR1_SHIFT) |
    (e.sh1 << f.SH1_SHIFT) |
    (e.epd1 ? f.EPD1 : 0) |
    (e.valid ? f.V : 0);
  out[at + 1] =
    e.ips |
    (e.affd ? f.AFFD : 0) |
    (e.wxn ? f.WXN : 0) |
    (e.uwxn ? f.UWXN : 0) |
    (e.tbi << f.TBI_SHIFT) |
    (e.pan ? f.PAN : 0) |
    (e.aa64 ? f.AA64 : 0) |
    (e.hd ? f.HD : 0) |
    (e.ha ? f.HA : 0) |
    (e.s ? f.S : 0) |
    (e.r ? f.R : 0) |
    (e.a ? f.A : 0) |
    (e.aset ? f.ASET : 0) |
    (e.asid << f.ASID_SHIFT);
  out[at + 2] = (e.nscfg0 ? f.NSCFG : 0) | (e.had0 ? f.HAD : 0) | addrLoWord(e.ttb0, ADDR_LO_4);
  out[at + 3] = addrHiWord(e.ttb0);
  out[at + 4] = (e.nscfg1 ? f.NSCFG : 0) | (e.had1 ? f.HAD : 0) | addrLoWord(e.ttb1, ADDR_LO_4);
  out[at + 5] = addrHiWord(e.ttb1);
  out[at + 6] = e.mair0 | 0;
  out[at + 7] = e.mair1 | 0;
  out[at + 8] = e.amair0 | 0;
  out[at + 9] = e.amair1 | 0;
  out.fill(0, at + 10, at + f.WORDS);
  return out;
}

/** Decodes the CD at `w[at..at+16)` into `out`. */
export function decodeCd(w: Int32Array, at: number, out: Cd): Cd {
  const f = CD;
  const m2 = f.MASK2;
  const w0 = w[at]!;
  const w1 = w[at + 1]!;
  const w2 = w[at + 2]!;
  const w4 = w[at + 4]!;
  out.t0sz = w0 & f.T0SZ_MASK;
  out.tg0 = (w0 >>> f.TG0_SHIFT) & m2;
  out.ir0 = (w0 >>> f.IR0_SHIFT) & m2;
  out.or0 = (w0 >>> f.OR0_SHIFT) & m2;
  out.sh0 = (w0 >>> f.SH0_SHIFT) & m2;
  out.epd0 = (w0 & f.EPD0) !== 0;
  out.endi = (w0 & f.ENDI) !== 0;
  out.t1sz = (w0 >>> f.T1SZ_SHIFT) & f.TSZ_MASK;
  out.tg1 = (w0 >>> f.TG1_SHIFT) & m2;
  out.ir1 = (w0 >>> f.IR1_SHIFT) & m2;
  out.or1 = (w0 >>> f.OR1_SHIFT) & m2;
  out.sh1 = (w0 >>> f.SH1_SHIFT) & m2;
  out.epd1 = (w0 & f.EPD1) !== 0;
  out.valid = (w0 & f.V) !== 0;
  out.ips = w1 & f.IPS_MASK;
  out.affd = (w1 & f.AFFD) !== 0;
  out.wxn = (w1 & f.WXN) !== 0;
  out.uwxn = (w1 & f.UWXN) !== 0;
  out.tbi = (w1 >>> f.TBI_SHIFT) & m2;
  out.pan = (w1 & f.PAN) !== 0;
  out.aa64 = (w1 & f.AA64) !== 0;
  out.hd = (w1 & f.HD) !== 0;
  out.ha = (w1 & f.HA) !== 0;
  out.s = (w1 & f.S) !== 0;
  out.r = (w1 & f.R) !== 0;
  out.a = (w1 & f.A) !== 0;
  out.aset = (w1 & f.ASET) !== 0;
  out.asid = (w1 >>> f.ASID_SHIFT) & f.ASID_MASK;
  out.nscfg0 = (w2 & f.NSCFG) !== 0;
  out.had0 = (w2 & f.HAD) !== 0;
  out.ttb0 = addrFromWords(w2, w[at + 3]!, ADDR_LO_4);
  out.nscfg1 = (w4 & f.NSCFG) !== 0;
  out.had1 = (w4 & f.HAD) !== 0;
  out.ttb1 = addrFromWords(w4, w[at + 5]!, ADDR_LO_4);
  out.mair0 = w[at + 6]! >>> 0;
  out.mair1 = w[at + 7]! >>> 0;
  out.amair0 = w[at + 8]! >>> 0;
  out.amair1 = w[at + 9]! >>> 0;
  return out;
}
