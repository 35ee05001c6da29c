/**
 * VMSAv8-64 descriptor bits, 4 KiB granule (reference/config-formats.md §1). Low-word bits are
 * given as masks of the low 32 bits; high-word bits (descriptor bits 63:32) as masks of the high
 * word, named with their architectural bit number.
 */
export const ARM_LO = {
  /** bit 0: valid. */
  Valid: 1 << 0,
  /** bit 1: table (levels 0–2) or page (level 3); clear with Valid: a block. */
  TableOrPage: 1 << 1,
  /** bits 4:2: AttrIndx (stage 1). */
  AttrIndxShift: 2,
  /** bits 5:2: MemAttr (stage 2). */
  MemAttrShift: 2,
  /** bit 5: NS (stage 1). */
  NS: 1 << 5,
  /** bit 6: AP[1], unprivileged access allowed (stage 1). */
  AP1: 1 << 6,
  /** bit 7: AP[2], read-only (stage 1). */
  AP2: 1 << 7,
  /** bit 6: S2AP[0], read allowed (stage 2). */
  S2AP_R: 1 << 6,
  /** bit 7: S2AP[1], write allowed (stage 2). */
  S2AP_W: 1 << 7,
  /** bits 9:8: SH. */
  SHShift: 8,
  /** bit 10: AF, the access flag. */
  AF: 1 << 10,
  /** bit 11: nG, not global (stage 1). */
  nG: 1 << 11,
  /** bits 31:12 of the output or next-table address. */
  AddrMask: 0xfffff000 | 0,
} as const;

/** High-word bits (descriptor bits 63:32). */
export const ARM_HI = {
  /** bits 47:32 of the output or next-table address. */
  AddrMask: 0xffff,
  /** bit 51: DBM. */
  DBM: 1 << (51 - 32),
  /** bit 52: Contiguous hint. */
  Contiguous: 1 << (52 - 32),
  /** bit 53: PXN (stage 1); XN[0] with FEAT_XNX (stage 2). */
  PXN: 1 << (53 - 32),
  /** bit 54: UXN / XN (stage 1); XN (stage 2). */
  UXN: 1 << (54 - 32),
  /** bit 59: PXNTable. */
  PXNTable: 1 << (59 - 32),
  /** bit 60: UXNTable / XNTable. */
  UXNTable: 1 << (60 - 32),
  /** bit 61: APTable[0], no unprivileged access below. */
  APTableNoUser: 1 << (61 - 32),
  /** bit 62: APTable[1], no write access below. */
  APTableNoWrite: 1 << (62 - 32),
  /** bit 63: NSTable. */
  NSTable: 1 << 31,
} as const;

/** SH value for inner shareable. */
export const SH_INNER = 3;
/** AttrIndx Linux uses for cacheable memory (MAIR byte 1 = 0xFF, WB RWA). */
export const ATTRIDX_WB = 1;
/** Stage-2 MemAttr for normal write-back memory. */
export const S2_MEMATTR_WB = 0xf;

/** SMMUv3 event numbers for walk faults (§1.8). */
export const SMMU_EVT = {
  F_WALK_EABT: 0x0b,
  F_TRANSLATION: 0x10,
  F_ADDR_SIZE: 0x11,
  F_ACCESS: 0x12,
  F_PERMISSION: 0x13,
} as const;

/** Output-size encodings of CD.IPS / STE.S2PS (§1.8): code → bits. */
export const PS_BITS = [32, 36, 40, 42, 44, 48, 52] as const;
