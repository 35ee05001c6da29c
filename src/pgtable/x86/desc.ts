/**
 * x86-64 first-stage (IA-32e) and VT-d second-stage entry bits (reference/config-formats.md §2).
 * Low-word masks cover descriptor bits 31:0; high-word masks cover bits 63:32.
 */
export const X86_LO = {
  /** bit 0: P, present. */
  P: 1 << 0,
  /** bit 1: R/W, writes allowed. */
  RW: 1 << 1,
  /** bit 2: U/S, user accesses allowed. */
  US: 1 << 2,
  /** bit 3: PWT. */
  PWT: 1 << 3,
  /** bit 4: PCD. */
  PCD: 1 << 4,
  /** bit 5: A, accessed. */
  A: 1 << 5,
  /** bit 6: D, dirty (leaves). */
  D: 1 << 6,
  /** bit 7: PS, a 1 GiB (PDPTE) or 2 MiB (PDE) leaf. */
  PS: 1 << 7,
  /** bit 8: G, global (leaves). */
  G: 1 << 8,
  /** bits 31:12 of the address. */
  AddrMask: 0xfffff000 | 0,
} as const;

/** First-stage high-word bits. */
export const X86_HI = {
  /** bits 51:32 of the address. */
  AddrMask: 0xfffff,
  /** bit 63: XD, execute-disable. */
  XD: 1 << 31,
} as const;

/** VT-d second-stage entry bits, low word. */
export const SL_LO = {
  /** bit 0: R. */
  R: 1 << 0,
  /** bit 1: W. */
  W: 1 << 1,
  /** bit 2: X (used only with PASID-entry SLEE). */
  X: 1 << 2,
  /** bit 7: PS, a 1 GiB or 2 MiB leaf. */
  PS: 1 << 7,
  /** bit 11: SNP, snoop. */
  SNP: 1 << 11,
  /** bits 31:12 of the address. */
  AddrMask: 0xfffff000 | 0,
} as const;

/** VT-d second-stage high-word bits. */
export const SL_HI = {
  /** bits 51:32 of the address. */
  AddrMask: 0xfffff,
  /** bit 62: TM, transient mapping. */
  TM: 1 << 30,
} as const;

/** VT-d fault reason codes that walks raise (reference/config-formats.md §5.2, §5.3). */
export const VTD_FR = {
  // Legacy mode.
  ADDR_BEYOND_MGAW: 0x4,
  WRITE: 0x5,
  READ: 0x6,
  PAGING_ENTRY_INV: 0x7,
  PAGING_ENTRY_RSVD: 0xc,
  INTERRUPT_ADDR: 0xe,
  // Scalable mode, first stage.
  FS_PAGING_ENTRY_INV: 0x70,
  FS_PAGING_ENTRY_P: 0x71,
  FS_PAGING_ENTRY_RSVD: 0x72,
  FS_NON_CANONICAL: 0x80,
  FS_PAGING_ENTRY_US: 0x81,
  /** A supervisor request where SRE = 0 (checked before the walk). */
  SM_SRE_CLEAR: 0x5d,
  SM_EXEC: 0x82,
  // Scalable mode, second stage and both.
  SS_PAGING_ENTRY_INV: 0x78,
  SS_PAGING_ENTRY_RSVD: 0x7a,
  SM_INPUT_BEYOND_MAX: 0x83,
  SM_WRITE: 0x85,
  SM_READ: 0x86,
  SM_INTERRUPT_ADDR: 0x87,
} as const;

/** The interrupt address range that DMA output must not hit (VT-d 0xE / 0x87). */
export const INTERRUPT_RANGE = { start: 0xfee0_0000, last: 0xfeef_ffff } as const;

/** Second-stage address widths by AW code (§2.3): width = 30 + 9·AW, levels = AW + 2. */
export function vtdAwWidth(aw: number): number {
  return 30 + 9 * aw;
}
