/** Permission bits of a mapping, as iommufd's IOMMU_READ / IOMMU_WRITE. */
export const Prot = { Read: 1, Write: 2 } as const;

/** Access bits of a DMA request (the public `Access`). */
export const Access = { Read: 1, Write: 2, Exec: 4, Priv: 8 } as const;

/**
 * What a walk returns when it fails: negative, so any result >= 0 is a physical address.
 * Details (level, reason, IOVA) are written to a {@link WalkFault} record.
 */
export const TranslateFault = {
  /** Nothing is attached to the device (or to the PASID). */
  NoDomain: -1,
  /** No valid entry translates the IOVA (including an IOVA outside the aperture). */
  NotMapped: -2,
  /** A valid entry lacks the permission the access needs. */
  Permission: -3,
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
} as const;

/** Names of {@link FaultReason} values. */
export const FAULT_REASON_NAMES = [
  'none',
  'no-domain',
  'aperture',
  'not-present',
  'read-denied',
  'write-denied',
] as const;

/**
 * A preallocated fault record that walkers fill in, so the hot path allocates nothing.
 * Index: 0 code, 1 level, 2 reason, 3 pasid; `iova` is kept separately as a number.
 */
export class WalkFault {
  /** [code, level, reason, pasid]. */
  readonly words = new Int32Array(4);
  /** The faulting IOVA. */
  iova = 0;

  /** Records a fault and returns its code. */
  set(code: number, level: number, reason: number, iova: number): number {
    this.words[0] = code;
    this.words[1] = level;
    this.words[2] = reason;
    this.iova = iova;
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
