/*
 * VT-d root and context structures in guest memory, and the RTADDR register that points at them
 * (reference/config-formats.md §4, §4.1, §4.2). The PASID directory and PASID table are in
 * structures-pasid.ts.
 *
 * A structure is a run of 32-bit words as it lies in memory (little-endian): qword n is word 2n
 * (bits 31:0) and word 2n+1 (bits 63:32), the layout of PhysMemory's i32 view, so an encoder can
 * write straight into guest memory and a decoder can read straight out of it.
 *
 * Table pointers are decoded from bits 51:12. An x86 physical address has at most 52 bits, so
 * bits 63:52 of a pointer are always above the host address width: they are reserved, and the
 * `*_RSVD` masks below include them.
 */

/** Bits 31:12 of a pointer, in its low word. */
const PTR_LO = 0xfffff000 | 0;
/** Bits 51:32 of a pointer, in its high word. */
const PTR_HI = 0xfffff;
const TWO_32 = 2 ** 32;

/** The 4 KiB-aligned pointer held in bits 51:12 of the qword `lo`, `hi`. */
export function ptrFromWords(lo: number, hi: number): number {
  return (hi & PTR_HI) * TWO_32 + ((lo & PTR_LO) >>> 0);
}

/** The low word of a pointer field holding `ptr` (bits 31:12). */
export function ptrLoWord(ptr: number): number {
  return (ptr % TWO_32) & PTR_LO;
}

/** The high word of a pointer field holding `ptr` (bits 51:32). */
export function ptrHiWord(ptr: number): number {
  return Math.floor(ptr / TWO_32) & PTR_HI;
}

/**
 * The bits of a pointer's high word that lie at or above the host address width `haw`
 * (32 ≤ haw ≤ 52): reserved in a pointer the hardware follows (QEMU `~VTD_HAW_MASK(aw)`).
 */
export function ptrRsvdHi(haw: number): number {
  return ~(2 ** (haw - 32) - 1) | 0;
}

function fieldError(structure: string, field: string, value: unknown, what: string): RangeError {
  return new RangeError(`${structure}.${field} must be ${what}, got ${String(value)}`);
}

/** Throws unless `ptr` is a 4 KiB-aligned address below 2^52. */
export function checkPtr(structure: string, field: string, ptr: number): void {
  if (!Number.isInteger(ptr) || ptr < 0 || ptr >= 2 ** 52 || ptr % 4096 !== 0) {
    throw fieldError(structure, field, ptr, 'a 4 KiB-aligned address below 2^52');
  }
}

/** Throws unless `value` is an unsigned integer of at most `bits` bits. */
export function checkField(structure: string, field: string, value: number, bits: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw fieldError(structure, field, value, `an unsigned ${bits}-bit integer`);
  }
}

// ---------------------------------------------------------------------------------------------
// RTADDR_REG (0x20)

/** RTADDR_REG.TTM, bits 11:10: the translation table mode (§4). */
export const TTM = {
  /** 00: legacy root and context entries. */
  Legacy: 0,
  /** 01: scalable-mode root and context entries (Linux `DMA_RTADDR_SMT`). */
  Scalable: 1,
  /** 10: reserved. */
  Reserved: 2,
  /** 11: abort DMA. */
  AbortDma: 3,
} as const;

/** RTADDR_REG field positions, low word. */
export const RTADDR = {
  /** bits 11:10: TTM. */
  TTM_SHIFT: 10,
  TTM_MASK: 3,
} as const;

/** Encodes RTADDR_REG: the root table address `rta` (4 KiB-aligned) and the mode `ttm`. */
export function encodeRtaddr(rta: number, ttm: number, out: Int32Array = new Int32Array(2), at = 0): Int32Array {
  checkPtr('RTADDR', 'rta', rta);
  checkField('RTADDR', 'ttm', ttm, 2);
  out[at] = ptrLoWord(rta) | (ttm << RTADDR.TTM_SHIFT);
  out[at + 1] = ptrHiWord(rta);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Legacy root entry (128-bit, 256 per root table, indexed by bus)

/** Legacy root entry bits, word 0 (§4.1). */
export const ROOT_ENTRY = {
  /** Size in 32-bit words. */
  WORDS: 4,
  /** lo[0]: P, context table present. */
  P: 1 << 0,
} as const;

/** Reserved bits of a legacy root entry by word: lo[11:1], CTP bits 63:52, and all of hi. */
export const ROOT_ENTRY_RSVD: readonly number[] = [0xffe, ~PTR_HI, -1, -1];

/** A decoded legacy root entry. */
export class RootEntry {
  /** P: the context table is present. */
  present = false;
  /** CTP: context-table address. */
  ctp = 0;
}

/** Encodes a legacy root entry into `out[at..at+4)`. */
export function encodeRootEntry(
  e: Readonly<RootEntry>,
  out: Int32Array = new Int32Array(ROOT_ENTRY.WORDS),
  at = 0,
): Int32Array {
  checkPtr('RootEntry', 'ctp', e.ctp);
  out[at] = (e.present ? ROOT_ENTRY.P : 0) | ptrLoWord(e.ctp);
  out[at + 1] = ptrHiWord(e.ctp);
  out[at + 2] = 0;
  out[at + 3] = 0;
  return out;
}

/** Decodes the legacy root entry at `w[at..at+4)` into `out`. */
export function decodeRootEntry(w: Int32Array, at: number, out: RootEntry): RootEntry {
  const lo = w[at]!;
  out.present = (lo & ROOT_ENTRY.P) !== 0;
  out.ctp = ptrFromWords(lo, w[at + 1]!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Legacy context entry (128-bit, 256 per context table, indexed by devfn)

/** Legacy context entry TT values (lo[3:2]; Linux `CONTEXT_TT_*`). 3 is reserved. */
export const CONTEXT_TT = {
  /** Untranslated requests through the second-stage tables; ATS translation requests blocked. */
  MultiLevel: 0,
  /** Also ATS translation requests and a device TLB (needs ECAP.DT). */
  DevIotlb: 1,
  /** Untranslated requests pass through (needs ECAP.PT). */
  PassThrough: 2,
} as const;

/** Legacy context entry bit positions: word 0 is lo[31:0], word 2 is hi[31:0] (§4.1). */
export const CONTEXT_ENTRY = {
  /** Size in 32-bit words. */
  WORDS: 4,
  /** lo[0]: P. */
  P: 1 << 0,
  /** lo[1]: FPD, fault processing disable. */
  FPD: 1 << 1,
  /** lo[3:2]: TT. */
  TT_SHIFT: 2,
  TT_MASK: 3,
  /** hi[2:0]: AW. */
  AW_MASK: 7,
  /** hi[6:3]: AVAIL, for software. */
  AVAIL_SHIFT: 3,
  AVAIL_MASK: 0xf,
  /** hi[23:8]: DID. */
  DID_SHIFT: 8,
  DID_MASK: 0xffff,
} as const;

/**
 * Reserved bits of a legacy context entry by word: lo[11:4], SLPTPTR bits 63:52, hi[7] and
 * hi[63:24] (QEMU `VTD_CONTEXT_ENTRY_RSVD_LO` 0xff0, `_HI` 0xffffffffff000080).
 */
export const CONTEXT_ENTRY_RSVD: readonly number[] = [0xff0, ~PTR_HI, 0xff000080 | 0, -1];

/** A decoded legacy context entry. */
export class ContextEntry {
  /** P: present. */
  present = false;
  /** FPD: fault processing disable (§5.4). */
  fpd = false;
  /** TT: translation type, a {@link CONTEXT_TT} value (3 is reserved). */
  tt = 0;
  /** SLPTPTR: second-stage root table. */
  slptptr = 0;
  /** AW: address width code, §2.3. */
  aw = 0;
  /** AVAIL: 4 bits for software. */
  avail = 0;
  /** DID: domain id. */
  did = 0;
}

/** Encodes a legacy context entry into `out[at..at+4)`. */
export function encodeContextEntry(
  e: Readonly<ContextEntry>,
  out: Int32Array = new Int32Array(CONTEXT_ENTRY.WORDS),
  at = 0,
): Int32Array {
  const s = 'ContextEntry';
  checkField(s, 'tt', e.tt, 2);
  checkPtr(s, 'slptptr', e.slptptr);
  checkField(s, 'aw', e.aw, 3);
  checkField(s, 'avail', e.avail, 4);
  checkField(s, 'did', e.did, 16);
  out[at] =
    (e.present ? CONTEXT_ENTRY.P : 0) |
    (e.fpd ? CONTEXT_ENTRY.FPD : 0) |
    (e.tt << CONTEXT_ENTRY.TT_SHIFT) |
    ptrLoWord(e.slptptr);
  out[at + 1] = ptrHiWord(e.slptptr);
  out[at + 2] = e.aw | (e.avail << CONTEXT_ENTRY.AVAIL_SHIFT) | (e.did << CONTEXT_ENTRY.DID_SHIFT);
  out[at + 3] = 0;
  return out;
}

/** Decodes the legacy context entry at `w[at..at+4)` into `out`. */
export function decodeContextEntry(w: Int32Array, at: number, out: ContextEntry): ContextEntry {
  const lo = w[at]!;
  const hi = w[at + 2]!;
  out.present = (lo & CONTEXT_ENTRY.P) !== 0;
  out.fpd = (lo & CONTEXT_ENTRY.FPD) !== 0;
  out.tt = (lo >>> CONTEXT_ENTRY.TT_SHIFT) & CONTEXT_ENTRY.TT_MASK;
  out.slptptr = ptrFromWords(lo, w[at + 1]!);
  out.aw = hi & CONTEXT_ENTRY.AW_MASK;
  out.avail = (hi >>> CONTEXT_ENTRY.AVAIL_SHIFT) & CONTEXT_ENTRY.AVAIL_MASK;
  out.did = (hi >>> CONTEXT_ENTRY.DID_SHIFT) & CONTEXT_ENTRY.DID_MASK;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scalable-mode root entry (128-bit: lower half for devfn 0..127, upper half for 128..255)

/** Scalable-mode root entry bits (§4.2): LP in word 0, UP in word 2. */
export const SM_ROOT_ENTRY = {
  /** Size in 32-bit words. */
  WORDS: 4,
  /** lo[0] LP / hi[0] UP: that half's context table is present. */
  P: 1 << 0,
} as const;

/** Reserved bits of a scalable-mode root entry by word: lo[11:1], hi[11:1], pointer bits 63:52. */
export const SM_ROOT_ENTRY_RSVD: readonly number[] = [0xffe, ~PTR_HI, 0xffe, ~PTR_HI];

/** A decoded scalable-mode root entry. */
export class SmRootEntry {
  /** LP: the lower context table (devfn 0..127) is present. */
  lp = false;
  /** LCTP: lower context-table address. */
  lctp = 0;
  /** UP: the upper context table (devfn 128..255) is present. */
  up = false;
  /** UCTP: upper context-table address. */
  uctp = 0;
}

/** Encodes a scalable-mode root entry into `out[at..at+4)`. */
export function encodeSmRootEntry(
  e: Readonly<SmRootEntry>,
  out: Int32Array = new Int32Array(SM_ROOT_ENTRY.WORDS),
  at = 0,
): Int32Array {
  checkPtr('SmRootEntry', 'lctp', e.lctp);
  checkPtr('SmRootEntry', 'uctp', e.uctp);
  out[at] = (e.lp ? SM_ROOT_ENTRY.P : 0) | ptrLoWord(e.lctp);
  out[at + 1] = ptrHiWord(e.lctp);
  out[at + 2] = (e.up ? SM_ROOT_ENTRY.P : 0) | ptrLoWord(e.uctp);
  out[at + 3] = ptrHiWord(e.uctp);
  return out;
}

/** Decodes the scalable-mode root entry at `w[at..at+4)` into `out`. */
export function decodeSmRootEntry(w: Int32Array, at: number, out: SmRootEntry): SmRootEntry {
  const lo = w[at]!;
  const hi = w[at + 2]!;
  out.lp = (lo & SM_ROOT_ENTRY.P) !== 0;
  out.lctp = ptrFromWords(lo, w[at + 1]!);
  out.up = (hi & SM_ROOT_ENTRY.P) !== 0;
  out.uctp = ptrFromWords(hi, w[at + 3]!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scalable-mode context entry (256-bit, 128 per context table, indexed by devfn[6:0])

/** Scalable-mode context entry bit positions: word 0 is qw0[31:0], word 2 is qw1[31:0] (§4.2). */
export const SM_CONTEXT_ENTRY = {
  /** Size in 32-bit words. */
  WORDS: 8,
  /** qw0[0]: P. */
  P: 1 << 0,
  /** qw0[1]: FPD. */
  FPD: 1 << 1,
  /** qw0[2]: DTE, device-TLB (ATS) enable. */
  DTE: 1 << 2,
  /** qw0[3]: PASIDE, requests with PASID allowed. */
  PASIDE: 1 << 3,
  /** qw0[4]: PRE, page requests allowed. */
  PRE: 1 << 4,
  /** qw0[11:9]: PDTS; the PASID directory has 2^(PDTS+7) entries. */
  PDTS_SHIFT: 9,
  PDTS_MASK: 7,
  /** qw1[19:0]: RID_PASID. */
  RID_PASID_MASK: 0xfffff,
  /** qw1[20]: RID_PRIV. */
  RID_PRIV: 1 << 20,
} as const;

/**
 * Reserved bits of a scalable-mode context entry by word: qw0[8:5], PASIDDIRPTR bits 63:52,
 * qw1[63:21], qw2 and qw3 (QEMU `VTD_SM_CONTEXT_ENTRY_RSVD_VAL0` 0x1e0, `_VAL1` 0xffffffffffe00000).
 */
export const SM_CONTEXT_ENTRY_RSVD: readonly number[] = [0x1e0, ~PTR_HI, 0xffe00000 | 0, -1, -1, -1, -1, -1];

/** A decoded scalable-mode context entry. */
export class SmContextEntry {
  /** P: present. */
  present = false;
  /** FPD: fault processing disable. */
  fpd = false;
  /** DTE: device-TLB (ATS translation requests) enable. */
  dte = false;
  /** PASIDE: requests with PASID allowed. */
  paside = false;
  /** PRE: page requests allowed. */
  pre = false;
  /** PDTS: the directory has 2^(PDTS+7) entries. */
  pdts = 0;
  /** PASIDDIRPTR: PASID directory address. */
  pasidDirPtr = 0;
  /** RID_PASID: the PASID of requests without PASID. */
  ridPasid = 0;
  /** RID_PRIV: requests without PASID are supervisor requests. */
  ridPriv = false;
}

/** Encodes a scalable-mode context entry into `out[at..at+8)`. */
export function encodeSmContextEntry(
  e: Readonly<SmContextEntry>,
  out: Int32Array = new Int32Array(SM_CONTEXT_ENTRY.WORDS),
  at = 0,
): Int32Array {
  const s = 'SmContextEntry';
  checkField(s, 'pdts', e.pdts, 3);
  checkPtr(s, 'pasidDirPtr', e.pasidDirPtr);
  checkField(s, 'ridPasid', e.ridPasid, 20);
  const c = SM_CONTEXT_ENTRY;
  out[at] =
    (e.present ? c.P : 0) |
    (e.fpd ? c.FPD : 0) |
    (e.dte ? c.DTE : 0) |
    (e.paside ? c.PASIDE : 0) |
    (e.pre ? c.PRE : 0) |
    (e.pdts << c.PDTS_SHIFT) |
    ptrLoWord(e.pasidDirPtr);
  out[at + 1] = ptrHiWord(e.pasidDirPtr);
  out[at + 2] = e.ridPasid | (e.ridPriv ? c.RID_PRIV : 0);
  out.fill(0, at + 3, at + c.WORDS);
  return out;
}

/** Decodes the scalable-mode context entry at `w[at..at+8)` into `out`. */
export function decodeSmContextEntry(w: Int32Array, at: number, out: SmContextEntry): SmContextEntry {
  const c = SM_CONTEXT_ENTRY;
  const lo = w[at]!;
  const qw1 = w[at + 2]!;
  out.present = (lo & c.P) !== 0;
  out.fpd = (lo & c.FPD) !== 0;
  out.dte = (lo & c.DTE) !== 0;
  out.paside = (lo & c.PASIDE) !== 0;
  out.pre = (lo & c.PRE) !== 0;
  out.pdts = (lo >>> c.PDTS_SHIFT) & c.PDTS_MASK;
  out.pasidDirPtr = ptrFromWords(lo, w[at + 1]!);
  out.ridPasid = qw1 & c.RID_PASID_MASK;
  out.ridPriv = (qw1 & c.RID_PRIV) !== 0;
  return out;
}
