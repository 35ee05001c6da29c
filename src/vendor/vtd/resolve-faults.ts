/*
 * The fault reason codes that a VT-d configuration fetch raises (reference/config-formats.md
 * §5.2, §5.3), and which faults FPD may suppress (§5.4). The codes a page walk raises are
 * VTD_FR in src/pgtable/x86/desc.ts; this file adds the configuration ones and does not repeat
 * those.
 */

/** Fault reason codes of the root, context and PASID structure fetch. Names follow QEMU's where it has one. */
export const VTD_CFG_FR = {
  // Legacy mode (§5.2).
  /** Root entry P = 0. */
  ROOT_ENTRY_P: 0x1,
  /** Context entry P = 0. */
  CONTEXT_ENTRY_P: 0x2,
  /** Invalid context entry: AW not in SAGAW, TT = 3, or TT unsupported by ECAP.DT / ECAP.PT. */
  CONTEXT_ENTRY_INV: 0x3,
  /** Reading the root entry failed. */
  ROOT_TABLE_INV: 0x8,
  /** Reading the context entry failed. */
  CONTEXT_TABLE_INV: 0x9,
  /** Reserved bits set in a present root entry. */
  ROOT_ENTRY_RSVD: 0xa,
  /** Reserved bits set in a present context entry. */
  CONTEXT_ENTRY_RSVD: 0xb,
  /** TT blocks this request type (an ATS translation request without TT = 1). */
  CONTEXT_ENTRY_TT: 0xd,
  // Scalable mode (§5.3).
  /** Invalid root-table address: TTM reserved, or a mode the unit does not implement. */
  RTADDR_INV_TTM: 0x30,
  /** TTM = legacy for a request with PASID. */
  RTADDR_LEGACY_PASID: 0x31,
  /** TTM = legacy for a page request. */
  RTADDR_LEGACY_PRQ: 0x32,
  /** Reading the scalable-mode root entry failed. */
  SM_ROOT_ACCESS_ERR: 0x38,
  /** LP (devfn 0..127) or UP (devfn 128..255) clear. */
  SM_ROOT_ENTRY_P: 0x39,
  /** Reserved bits set in the scalable-mode root entry. */
  SM_ROOT_ENTRY_RSVD: 0x3a,
  /** Reading the scalable-mode context entry failed. */
  SM_CONTEXT_ACCESS_ERR: 0x40,
  /** Scalable-mode context entry P = 0. */
  SM_CONTEXT_ENTRY_P: 0x41,
  /** Reserved bits set in a present scalable-mode context entry. */
  SM_CONTEXT_ENTRY_RSVD: 0x42,
  /** Invalid context entry: DTE, PASIDE or PRE set without ECAP.DT, ECAP.PASID or ECAP.PRS. */
  SM_CONTEXT_ENTRY_INV: 0x43,
  /** DTE clear for an ATS translation request. */
  SM_DTE_CLEAR: 0x44,
  /** PASIDE clear for a request with PASID. */
  SM_PASIDE_CLEAR: 0x45,
  /** The PASID indexes beyond the directory's 2^(PDTS+7) entries. */
  SM_PASID_BEYOND_PDTS: 0x46,
  /** PRE clear for a page request (QEMU `VTD_FR_SM_PRE_ABS`). */
  SM_PRE_ABS: 0x47,
  /** RID_PASID indexes beyond the directory (request without PASID). */
  SM_RID_PASID_INV: 0x48,
  /** Reading the PASID directory entry failed. */
  PASID_DIR_ACCESS_ERR: 0x50,
  /** PASID directory entry P = 0. */
  PASID_DIR_ENTRY_P: 0x51,
  /** Reserved bits set in a present PASID directory entry. */
  PASID_DIR_ENTRY_RSVD: 0x52,
  /** Reading the PASID-table entry failed. */
  PASID_TABLE_ACCESS_ERR: 0x58,
  /** PASID-table entry P = 0. */
  PASID_ENTRY_P: 0x59,
  /** Reserved bits set in a present PASID-table entry. */
  PASID_ENTRY_RSVD: 0x5a,
  /** Invalid PASID entry: PGTT reserved or unsupported, AW unsupported, FLPM unsupported. */
  PASID_TABLE_ENTRY_INV: 0x5b,
  /** Execute request with ERE = 0. */
  SM_ERE_CLEAR: 0x5c,
  /** Supervisor request with SRE = 0. */
  SM_SRE_CLEAR: 0x5d,
} as const;

/**
 * Qualified faults (§5.4): those FPD may keep out of the fault log. A fault found before an
 * FPD bit could be trusted is never qualified: TTM, root-entry faults, read errors of the context
 * and PASID structures, and reserved bits in them. Everything found after (presence, validity,
 * request-type checks and every page-walk fault) is.
 */
const QUALIFIED = new Uint8Array(256);
for (const [first, last] of [
  [0x2, 0x7], // context P, context invalid, and the legacy walk faults 0x4–0x7
  [0xc, 0xe], // legacy SL reserved bits, TT blocks request, interrupt range
  [0x41, 0x41],
  [0x43, 0x48],
  [0x51, 0x51],
  [0x59, 0x59],
  [0x5b, 0x5d],
  [0x70, 0x7c], // first- and second-stage walk faults
  [0x80, 0x87],
  [0x90, 0x91],
] as const) {
  QUALIFIED.fill(1, first, last + 1);
}

/** Whether FPD = 1 suppresses recording of the fault with reason `code` (§5.4). */
export function isQualifiedFault(code: number): boolean {
  return QUALIFIED[code] === 1;
}
