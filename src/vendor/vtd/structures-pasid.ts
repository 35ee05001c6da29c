import { checkField, checkPtr, ptrFromWords, ptrHiWord, ptrLoWord } from './structures.js';

/*
 * The scalable-mode PASID directory and PASID table (reference/config-formats.md §4.3, §4.4), in
 * the word layout of structures.ts: qword n is words 2n (bits 31:0) and 2n+1 (bits 63:32).
 */

/** PASID geometry (§4.3): 20-bit PASIDs, directory index PASID[19:6], table index PASID[5:0]. */
export const PASID = {
  /** Largest PASID plus one (Linux `PASID_MAX`). */
  LIMIT: 0x100000,
  /** PASID bits below the directory index (Linux `PASID_PDE_SHIFT`). */
  DIR_SHIFT: 6,
  /** PASID[5:0]: the index in a PASID table of 64 entries. */
  TABLE_INDEX_MASK: 63,
  /** Bytes per directory entry. */
  DIR_ENTRY_BYTES: 8,
  /** Bytes per PASID-table entry. */
  ENTRY_BYTES: 64,
} as const;

/** The number of directory entries a context entry's PDTS allows: 2^(PDTS+7). */
export function pasidDirEntries(pdts: number): number {
  return 1 << (pdts + 7);
}

// ---------------------------------------------------------------------------------------------
// PASID directory entry (64-bit)

/** PASID directory entry bits, word 0. */
export const PASID_DIR_ENTRY = {
  /** Size in 32-bit words. */
  WORDS: 2,
  /** bit 0: P, PASID table present. */
  P: 1 << 0,
  /** bit 1: FPD. */
  FPD: 1 << 1,
} as const;

/** Reserved bits of a PASID directory entry by word: bits 11:2 and SMPTBLPTR bits 63:52. */
export const PASID_DIR_ENTRY_RSVD: readonly number[] = [0xffc, 0xfff00000 | 0];

/** A decoded PASID directory entry. */
export class PasidDirEntry {
  /** P: the PASID table is present. */
  present = false;
  /** FPD: fault processing disable. */
  fpd = false;
  /** SMPTBLPTR: the PASID table address. */
  pasidTablePtr = 0;
}

/** Encodes a PASID directory entry into `out[at..at+2)`. */
export function encodePasidDirEntry(
  e: Readonly<PasidDirEntry>,
  out: Int32Array = new Int32Array(PASID_DIR_ENTRY.WORDS),
  at = 0,
): Int32Array {
  checkPtr('PasidDirEntry', 'pasidTablePtr', e.pasidTablePtr);
  out[at] = (e.present ? PASID_DIR_ENTRY.P : 0) | (e.fpd ? PASID_DIR_ENTRY.FPD : 0) | ptrLoWord(e.pasidTablePtr);
  out[at + 1] = ptrHiWord(e.pasidTablePtr);
  return out;
}

/** Decodes the PASID directory entry at `w[at..at+2)` into `out`. */
export function decodePasidDirEntry(w: Int32Array, at: number, out: PasidDirEntry): PasidDirEntry {
  const lo = w[at]!;
  out.present = (lo & PASID_DIR_ENTRY.P) !== 0;
  out.fpd = (lo & PASID_DIR_ENTRY.FPD) !== 0;
  out.pasidTablePtr = ptrFromWords(lo, w[at + 1]!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scalable-mode PASID-table entry (512-bit)

/** PASID-entry PGTT values (qw0[8:6]); 0 and 5–7 are reserved. */
export const PGTT = {
  /** First stage only. */
  FirstStage: 1,
  /** Second stage only. */
  SecondStage: 2,
  /** Nested: first stage, its table addresses translated by the second stage. */
  Nested: 3,
  /** Pass-through: output = input. */
  PassThrough: 4,
} as const;

/** PASID-entry FLPM values (qw2[3:2]); 2 and 3 are reserved. */
export const FLPM = {
  /** 4-level paging, 48-bit input. */
  Level4: 0,
  /** 5-level paging, 57-bit input (needs CAP.FL5LP). */
  Level5: 1,
} as const;

/**
 * PASID-entry bit positions (§4.4). Words 0/1 are qw0, 2/3 qw1, 4/5 qw2; each constant names
 * its word.
 */
export const PASID_ENTRY = {
  /** Size in 32-bit words. */
  WORDS: 16,
  /** w0 (qw0[0]): P. */
  P: 1 << 0,
  /** w0 (qw0[1]): FPD. */
  FPD: 1 << 1,
  /** w0 (qw0[4:2]): AW. */
  AW_SHIFT: 2,
  AW_MASK: 7,
  /** w0 (qw0[5]): SLEE, second-stage execute enable. */
  SLEE: 1 << 5,
  /** w0 (qw0[8:6]): PGTT. */
  PGTT_SHIFT: 6,
  PGTT_MASK: 7,
  /** w0 (qw0[9]): SLADE, second-stage A/D enable. */
  SLADE: 1 << 9,
  /** w2 (qw1[15:0]): DID. */
  DID_MASK: 0xffff,
  /** w2 (qw1[23]): PWSNP, page-walk snoop. */
  PWSNP: 1 << 23,
  /** w2 (qw1[24]): PGSNP, page snoop. */
  PGSNP: 1 << 24,
  /** w2 (qw1[25]): CD, cache disable. */
  CD: 1 << 25,
  /** w2 (qw1[26]): EMTE, extended memory type enable. */
  EMTE: 1 << 26,
  /** w2 (qw1[29:27]): EMT, extended memory type. */
  EMT_SHIFT: 27,
  EMT_MASK: 7,
  /** w2 (qw1[30]): PWT. */
  PWT: 1 << 30,
  /** w2 (qw1[31]): PCD. */
  PCD: 1 << 31,
  /** w4 (qw2[0]): SRE, supervisor requests enable. */
  SRE: 1 << 0,
  /** w4 (qw2[1]): ERE, execute requests enable. */
  ERE: 1 << 1,
  /** w4 (qw2[3:2]): FLPM. */
  FLPM_SHIFT: 2,
  FLPM_MASK: 3,
  /** w4 (qw2[4]): WPE, write-protect enable. */
  WPE: 1 << 4,
  /** w4 (qw2[5]): NXE, no-execute enable. */
  NXE: 1 << 5,
  /** w4 (qw2[6]): SMEP, supervisor-mode execute prevention. */
  SMEP: 1 << 6,
  /** w4 (qw2[7]): EAFE, extended accessed flag enable. */
  EAFE: 1 << 7,
} as const;

/**
 * Reserved bits of a PASID entry by word, whatever the PGTT: qw0[11:10], SLPTPTR bits 63:52,
 * qw1[22:16], qw2[11:8], FLPTPTR bits 63:52, and qw3–qw7.
 */
export const PASID_ENTRY_RSVD: readonly number[] = [
  0xc00,
  0xfff00000 | 0,
  0x7f0000,
  0,
  0xf00,
  0xfff00000 | 0,
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
  -1,
];

/** A decoded scalable-mode PASID-table entry. */
export class PasidEntry {
  /** P: present. */
  present = false;
  /** FPD: fault processing disable. */
  fpd = false;
  /** AW: second-stage address width code, §2.3. */
  aw = 0;
  /** SLEE: second-stage execute enable. */
  slee = false;
  /** PGTT: a {@link PGTT} value (others are reserved). */
  pgtt = 0;
  /** SLADE: second-stage accessed/dirty enable. */
  slade = false;
  /** SLPTPTR: second-stage root table. */
  slptptr = 0;
  /** DID: domain id. */
  did = 0;
  /** PWSNP: page-walk snoop. */
  pwsnp = false;
  /** PGSNP: page snoop (force snooped DMA). */
  pgsnp = false;
  /** CD: cache disable. */
  cd = false;
  /** EMTE: extended memory type enable. */
  emte = false;
  /** EMT: extended memory type. */
  emt = 0;
  /** PWT: first-stage root page-level write-through. */
  pwt = false;
  /** PCD: first-stage root page-level cache disable. */
  pcd = false;
  /** PAT: the first stage's page attribute table (32 bits, unsigned). */
  pat = 0;
  /** SRE: supervisor requests enable. */
  sre = false;
  /** ERE: execute requests enable. */
  ere = false;
  /** FLPM: first-stage paging mode, a {@link FLPM} value (others are reserved). */
  flpm = 0;
  /** WPE: write-protect enable for supervisor requests. */
  wpe = false;
  /** NXE: no-execute enable. */
  nxe = false;
  /** SMEP: supervisor-mode execute prevention. */
  smep = false;
  /** EAFE: extended accessed flag enable. */
  eafe = false;
  /** FLPTPTR: first-stage root table (PML4 or PML5); a guest-physical address under nesting. */
  flptptr = 0;
}

/**
 * Encodes a PASID entry into `out[at..at+16)`, in word order. To publish a live entry, encode
 * into a scratch buffer and copy word 0 (which holds P) last.
 */
export function encodePasidEntry(
  e: Readonly<PasidEntry>,
  out: Int32Array = new Int32Array(PASID_ENTRY.WORDS),
  at = 0,
): Int32Array {
  const s = 'PasidEntry';
  checkField(s, 'aw', e.aw, 3);
  checkField(s, 'pgtt', e.pgtt, 3);
  checkPtr(s, 'slptptr', e.slptptr);
  checkField(s, 'did', e.did, 16);
  checkField(s, 'emt', e.emt, 3);
  checkField(s, 'pat', e.pat, 32);
  checkField(s, 'flpm', e.flpm, 2);
  checkPtr(s, 'flptptr', e.flptptr);
  const p = PASID_ENTRY;
  out[at] =
    (e.present ? p.P : 0) |
    (e.fpd ? p.FPD : 0) |
    (e.aw << p.AW_SHIFT) |
    (e.slee ? p.SLEE : 0) |
    (e.pgtt << p.PGTT_SHIFT) |
    (e.slade ? p.SLADE : 0) |
    ptrLoWord(e.slptptr);
  out[at + 1] = ptrHiWord(e.slptptr);
  out[at + 2] =
    e.did |
    (e.pwsnp ? p.PWSNP : 0) |
    (e.pgsnp ? p.PGSNP : 0) |
    (e.cd ? p.CD : 0) |
    (e.emte ? p.EMTE : 0) |
    (e.emt << p.EMT_SHIFT) |
    (e.pwt ? p.PWT : 0) |
    (e.pcd ? p.PCD : 0);
  out[at + 3] = e.pat | 0;
  out[at + 4] =
    (e.sre ? p.SRE : 0) |
    (e.ere ? p.ERE : 0) |
    (e.flpm << p.FLPM_SHIFT) |
    (e.wpe ? p.WPE : 0) |
    (e.nxe ? p.NXE : 0) |
    (e.smep ? p.SMEP : 0) |
    (e.eafe ? p.EAFE : 0) |
    ptrLoWord(e.flptptr);
  out[at + 5] = ptrHiWord(e.flptptr);
  out.fill(0, at + 6, at + p.WORDS);
  return out;
}

/** Decodes the PASID entry at `w[at..at+16)` into `out`. */
export function decodePasidEntry(w: Int32Array, at: number, out: PasidEntry): PasidEntry {
  const p = PASID_ENTRY;
  const w0 = w[at]!;
  const w2 = w[at + 2]!;
  const w4 = w[at + 4]!;
  out.present = (w0 & p.P) !== 0;
  out.fpd = (w0 & p.FPD) !== 0;
  out.aw = (w0 >>> p.AW_SHIFT) & p.AW_MASK;
  out.slee = (w0 & p.SLEE) !== 0;
  out.pgtt = (w0 >>> p.PGTT_SHIFT) & p.PGTT_MASK;
  out.slade = (w0 & p.SLADE) !== 0;
  out.slptptr = ptrFromWords(w0, w[at + 1]!);
  out.did = w2 & p.DID_MASK;
  out.pwsnp = (w2 & p.PWSNP) !== 0;
  out.pgsnp = (w2 & p.PGSNP) !== 0;
  out.cd = (w2 & p.CD) !== 0;
  out.emte = (w2 & p.EMTE) !== 0;
  out.emt = (w2 >>> p.EMT_SHIFT) & p.EMT_MASK;
  out.pwt = (w2 & p.PWT) !== 0;
  out.pcd = (w2 & p.PCD) !== 0;
  out.pat = w[at + 3]! >>> 0;
  out.sre = (w4 & p.SRE) !== 0;
  out.ere = (w4 & p.ERE) !== 0;
  out.flpm = (w4 >>> p.FLPM_SHIFT) & p.FLPM_MASK;
  out.wpe = (w4 & p.WPE) !== 0;
  out.nxe = (w4 & p.NXE) !== 0;
  out.smep = (w4 & p.SMEP) !== 0;
  out.eafe = (w4 & p.EAFE) !== 0;
  out.flptptr = ptrFromWords(w4, w[at + 5]!);
  return out;
}
