import type { IoPagetable, IoptDomain } from '../iopt/index.js';
import type { DomainGeometry } from '../pgtable/index.js';

/** What the registry needs of a page table: its root, its size, and a way to free it. */
export interface PageTableHandle {
  /** Physical address of the root (start) table. */
  readonly rootPa: number;
  /** Frames used by tables. */
  tableFrames(): number;
  /** Unmaps everything and retires the tables. */
  free(): void;
}

/** Object kinds, as IOMMUFD_OBJ_*. */
export type ObjectType = 'ioas' | 'hwpt-paging' | 'hwpt-nested' | 'device';

/** Device kinds: the kernel selftests' mock, Arm SMMUv3 and Intel VT-d. */
export type IommuKind = 'mock' | 'smmuv3' | 'vtd';

/** An inclusive range. */
export interface Range {
  /** First address. */
  start: bigint;
  /** Last address (inclusive). */
  last: bigint;
}

/** Fields every object has (`struct iommufd_object`). */
export interface ObjectBase {
  /** The object's id. */
  id: number;
  /** References: 1 for the table, plus one per holder. */
  users: number;
}

/** An IOAS. */
export interface IoasObject extends ObjectBase {
  type: 'ioas';
  /** Its io_pagetable. */
  iopt: IoPagetable;
  /** Paging HWPTs filled from it. */
  hwpts: HwptPagingObject[];
}

/** A paging domain: a page table plus its published descriptor. */
export interface PagingDomain extends IoptDomain {
  /** Geometry of the format. */
  readonly geometry: DomainGeometry;
  /** Index of its descriptor in the shared context tables. */
  readonly descriptor: number;
  /** The page table. */
  readonly table: PageTableHandle;
  /** The format, as published in the descriptor. */
  readonly format: number;
  /** Frees the table and retires the descriptor. */
  free(): void;
}

/** A paging HWPT (`iommufd_hwpt_paging`). */
export interface HwptPagingObject extends ObjectBase {
  type: 'hwpt-paging';
  /** The IOAS it is filled from. */
  ioas: IoasObject;
  /** The domain. */
  domain: PagingDomain;
  /** Which driver allocated it. */
  kind: IommuKind;
  /** Created by attach-to-IOAS; freed with its last device. */
  autoDomain: boolean;
  /** NEST_PARENT. */
  nestParent: boolean;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID. */
  pasidCompat: boolean;
  /** DIRTY_TRACKING. */
  dirtyTracking: boolean;
}

/** The number of IOTLB slots of the kernel selftest's mock nested domain. */
export const MOCK_NESTED_IOTLB_SLOTS = 4;

/** A nested HWPT (`iommufd_hwpt_nested`): user-managed stage-1 configuration over a nest parent. */
export interface HwptNestedObject extends ObjectBase {
  type: 'hwpt-nested';
  /** The nest-parent paging HWPT. */
  parent: HwptPagingObject;
  /** Which driver allocated it. */
  kind: IommuKind;
  /** The nested data type. */
  dataType: 'selftest';
  /** The mock nested domain's IOTLB slots (the selftest's MD_CHECK_IOTLB reads them). */
  iotlb: number[];
}

/** A bound device. */
export interface DeviceObject extends ObjectBase {
  type: 'device';
  /** Which IOMMU it sits behind. */
  kind: IommuKind;
  /** Stream / requester ID. */
  sid: number;
  /** PASID width (0: no PASID). */
  pasidBits: number;
  /** PCIe ATS. */
  ats: boolean;
  /** PCIe PRI. */
  pri: boolean;
  /** Dirty-tracking capability. */
  dirtyTracking: boolean;
  /** PASID execute / privileged capabilities. */
  pasidExec: boolean;
  pasidPriv: boolean;
  /** Reserved regions, the vendor's and the caller's. */
  reservedRegions: Range[];
  /** Its slot in the shared context tables. */
  slot: number;
  /** The HWPT attached to the RID. */
  rid: HwptPagingObject | undefined;
  /** HWPTs attached to PASIDs. */
  pasids: Map<number, HwptPagingObject>;
}

/** Any object. */
export type IommufdObject = IoasObject | HwptPagingObject | HwptNestedObject | DeviceObject;
