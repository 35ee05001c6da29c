/** Permission bits of a mapping, as iommufd's IOMMU_READ / IOMMU_WRITE. */
export const Prot = { Read: 1, Write: 2 } as const;

/** Access bits of a DMA request (the public `Access`). */
export const Access = { Read: 1, Write: 2, Exec: 4, Priv: 8 } as const;

/**
 * What a walk returns when it fails: negative, so any result >= 0 is a physical address.
 * Details (level, reason, vendor code, IOVA) are written to a {@link WalkFault} record.
 */
export const TranslateFault = {
  /** Nothing is attached to the device (or to the PASID). */
  NoDomain: -1,
  /** No valid entry translates the IOVA: a Translation fault (also out of range or non-canonical). */
  NotMapped: -2,
  /** A valid entry lacks the permission the access needs. */
  Permission: -3,
  /** Arm: a leaf with AF = 0 (Access flag fault). */
  AccessFlag: -4,
  /** Arm: a table or output address beyond the output size (Address size fault). */
  AddressSize: -5,
  /** A table read failed: the address is outside physical memory (external abort on the walk). */
  WalkAbort: -6,
  /** An entry has reserved bits set (VT-d 0xC / 0x72 / 0x7A). */
  Reserved: -7,
  /**
   * A recoverable fault (a translation, permission or access-flag fault) on an IOPF-capable
   * domain (its HWPT has a FAULT object): a page request was raised and the access waits for its
   * response. The fault record keeps the walk's reason.
   */
  Pending: -8,
} as const;

/** One of the {@link TranslateFault} codes. */
export type TranslateFaultCode = (typeof TranslateFault)[keyof typeof TranslateFault];

/** Why a walk failed, for fault records. */
export const FaultReason = {
  None: 0,
  NoDomain: 1,
  Aperture: 2,
  NotPresent: 3,
  ReadDenied: 4,
  WriteDenied: 5,
  ExecDenied: 6,
  UserDenied: 7,
  AccessFlag: 8,
  AddressSize: 9,
  WalkAbort: 10,
  ReservedBits: 11,
  NonCanonical: 12,
  InterruptRange: 13,
} as const;

/** Names of {@link FaultReason} values. */
export const FAULT_REASON_NAMES = [
  'none',
  'no-domain',
  'aperture',
  'not-present',
  'read-denied',
  'write-denied',
  'exec-denied',
  'user-denied',
  'access-flag',
  'address-size',
  'walk-abort',
  'reserved-bits',
  'non-canonical',
  'interrupt-range',
] as const;

/**
 * A preallocated fault record that walkers fill in, so the hot path allocates nothing.
 * Words: 0 code, 1 level, 2 reason, 3 pasid, 4 vendor code (the SMMUv3 event number or the VT-d
 * fault reason, 0 for mock). `iova` is kept separately as a number.
 */
export class WalkFault {
  /** [code, level, reason, pasid, vendor]. */
  readonly words = new Int32Array(5);
  /** The faulting IOVA. */
  iova = 0;
  /** After a successful walk: log2 of the leaf's size (12 for a 4 KiB page, 21 for 2 MiB …). */
  leafShift = 0;
  /**
   * After a successful walk: log2 of the translation an invalidation of any address in it must
   * drop whole: the leaf's size, or a nested walk's stage-1 leaf (which may be larger than
   * {@link leafShift}, the size stage 2 lets a cache hold it in).
   */
  unitShift = 0;
  /** 1 when the fault happened in the stage-2 walk of a nested walk (the SMMU event record's S2 bit), else 0. */
  s2 = 0;
  /**
   * The SMMUv3 event record CLASS of a nested walk's fault (EVT_CLASS): TT (1) for a stage-2
   * fault on a stage-1 table fetch, IN (2) for the input or output address. 0 from other walkers.
   */
  faultClass = 0;
  /** With `s2` = 1: the IPA whose stage-2 translation faulted. */
  ipa = 0;
  /**
   * After a successful nested walk: the guest-physical address (IPA) that stage 1 produced for
   * the input, before stage 2 translated it (software nesting indexes its shadow entries by it).
   */
  gpa = 0;
  /** After a successful nested walk: the guest-physical addresses of the stage-1 tables it read, root first. */
  readonly tableGpas = new Float64Array(6);
  /** After a successful nested walk: how many of {@link tableGpas} are valid. */
  tableCount = 0;
  /**
   * After a successful nested walk: 1 when a write by the same requester would pass both stages
   * without changing the stage-1 leaf (writable, and dirty already where the walker sets A/D),
   * so a shadow prefetch may grant write; else 0.
   */
  leafWritable = 0;
  /** After a successful stage-2 walk (VT-d second stage, Arm stage 2): 1 when it would also allow a write. */
  s2Writable = 0;
  /**
   * A VT-d nested walk that reached its 4 KiB-level table: that table's host address (else -1),
   * what a paging-structure (PDE) cache keeps with it: the US and RW bits every level above
   * granted (ANDed), their execute-disable, and how many {@link tableGpas} lead there.
   */
  pdeTablePa = -1;
  /** With {@link pdeTablePa}: the US and RW bits of every level above, ANDed. */
  pdeGrant = 0;
  /** With {@link pdeTablePa}: the execute-disable of the levels above. */
  pdeXd = 0;
  /** With {@link pdeTablePa}: how many {@link tableGpas} lead to that table. */
  pdeTables = 0;

  /** Records a fault and returns its code. Clears `s2`, `faultClass` and `ipa`: a nested walker sets them after. */
  set(code: number, level: number, reason: number, iova: number, vendor = 0): number {
    this.words[0] = code;
    this.words[1] = level;
    this.words[2] = reason;
    this.words[4] = vendor;
    this.iova = iova;
    this.s2 = 0;
    this.faultClass = 0;
    this.ipa = 0;
    return code;
  }
}

/** A page-table format's geometry: what the registry needs to know of a domain. */
export interface DomainGeometry {
  /** Supported page sizes, smallest first. */
  pageSizes: readonly bigint[];
  /** First IOVA the domain can translate. */
  apertureStart: bigint;
  /** Last IOVA the domain can translate. */
  apertureLast: bigint;
}
