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
  /** Descriptors of the nested domains over this one (a nest parent's): an unmap flushes them too. */
  readonly nested: Set<number>;
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

/** The guest's stage-1 configuration of a VT-d nested HWPT (`struct iommu_hwpt_vtd_s1`). */
export interface VtdS1Config {
  /** IOMMU_VTD_S1_SRE: supervisor requests are allowed. */
  sre: boolean;
  /** IOMMU_VTD_S1_EAFE: extended accessed flag. */
  eafe: boolean;
  /** IOMMU_VTD_S1_WPE: write protection applies to supervisor requests. */
  wpe: boolean;
  /** The first-stage root table: a guest-physical address (an IOVA of the parent), bits 11:0 clear. */
  pgtblAddr: number;
  /** The first stage's address width: 48 (4 levels) or 57 (5 levels); checked at attach. */
  addrWidth: number;
}

/** A nested HWPT (`iommufd_hwpt_nested`): user-managed stage-1 configuration over a nest parent. */
export interface HwptNestedObject extends ObjectBase {
  type: 'hwpt-nested';
  /** The nest-parent paging HWPT. */
  parent: HwptPagingObject;
  /** Which driver allocated it. */
  kind: IommuKind;
  /** The nested data type. */
  dataType: 'selftest' | 'vtd-s1';
  /** The mock nested domain's IOTLB slots (the selftest's MD_CHECK_IOTLB reads them; empty otherwise). */
  iotlb: number[];
  /** The VT-d stage-1 configuration (vtd-s1 only). */
  vtd: VtdS1Config | undefined;
  /** Its descriptor in the shared context tables, which is also its IOTLB tag (0: not translatable). */
  descriptor: number;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID. */
  pasidCompat: boolean;
}

/** A HWPT a device can be attached to. */
export type AttachableHwpt = HwptPagingObject | HwptNestedObject;

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
  rid: AttachableHwpt | undefined;
  /** HWPTs attached to PASIDs. */
  pasids: Map<number, AttachableHwpt>;
}

/** Any object. */
export type IommufdObject = IoasObject | HwptPagingObject | HwptNestedObject | DeviceObject;
