import type { IoPagetable, IoptDomain } from '../iopt/index.js';
import type { DomainGeometry } from '../pgtable/index.js';
import type { FaultQueue } from './fault.js';
import type { VeventQueue, VeventqType } from './veventq.js';

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
export type ObjectType = 'ioas' | 'hwpt-paging' | 'hwpt-nested' | 'device' | 'viommu' | 'vdevice' | 'fault' | 'veventq';

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
  /** A nest parent in software mode: its nested domains translate through the shadow (not a kernel flag). */
  softwareNesting: boolean;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID. */
  pasidCompat: boolean;
  /** DIRTY_TRACKING. */
  dirtyTracking: boolean;
  /** The FAULT object its I/O page faults go to (FAULT_ID_VALID), referenced. */
  fault?: FaultObject | undefined;
}

/** The number of IOTLB slots of the kernel selftest's mock nested domain. */
export const MOCK_NESTED_IOTLB_SLOTS = 4;
/** The number of cache slots of the kernel selftest's mock device (MOCK_DEV_CACHE_NUM). */
export const MOCK_DEV_CACHE_SLOTS = 4;
/** Their value until invalidated (IOMMU_TEST_DEV_CACHE_DEFAULT). */
export const MOCK_DEV_CACHE_DEFAULT = 0xbaddad;

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

/**
 * The guest's Stream Table Entry of an SMMUv3 nested HWPT (`struct iommu_hwpt_arm_smmuv3`), as
 * arm_vsmmu_alloc_domain_nested keeps it, decoded. Only the fields a nested vSTE may set exist.
 */
export interface ArmVste {
  /** The two little-endian words as stored: all zero for V = 0, EATS cleared in word 1 (the host sets it). */
  ste: readonly [bigint, bigint];
  /** STE.V. A non-valid vSTE is installed as an abort STE, so that the guest sees C_BAD_STE. */
  valid: boolean;
  /** STE.Config: abort (0), bypass (4: stage 2 only) or s1-trans (5: the guest's CD table over stage 2). */
  config: 'abort' | 'bypass' | 's1-trans';
  /** STE.S1Fmt (bits 5:4 of word 0). */
  s1Fmt: number;
  /** STE.S1ContextPtr: the guest-physical address of the CD table (bits 51:6 of word 0). */
  s1ContextPtr: bigint;
  /** STE.S1CDMax (bits 63:59 of word 0). */
  s1CdMax: number;
  /** STE.S1DSS, S1CIR, S1COR, S1CSH (bits 1:0, 3:2, 5:4, 7:6 of word 1). */
  s1Dss: number;
  s1Cir: number;
  s1Cor: number;
  s1Csh: number;
  /** STE.S1STALLD (bit 27 of word 1). */
  s1Stalld: boolean;
  /** STE.EATS as the guest wrote it: abort (0) or trans (1). */
  eats: 'abort' | 'trans';
  /** Whether ATS is enabled for the device: only for s1-trans with EATS = trans. */
  enableAts: boolean;
}

/** A nested HWPT (`iommufd_hwpt_nested`): user-managed stage-1 configuration over a nest parent. */
export interface HwptNestedObject extends ObjectBase {
  type: 'hwpt-nested';
  /** The nest-parent paging HWPT (a vIOMMU-based one's: the vIOMMU's parent). */
  parent: HwptPagingObject;
  /** The vIOMMU it was allocated on (then it holds the vIOMMU, not the parent), or undefined. */
  viommu: ViommuObject | undefined;
  /** Which driver allocated it. */
  kind: IommuKind;
  /** The nested data type. */
  dataType: 'selftest' | 'vtd-s1' | 'arm-smmuv3';
  /** The mock nested domain's IOTLB slots (the selftest's MD_CHECK_IOTLB reads them; empty otherwise). */
  iotlb: number[];
  /** The VT-d stage-1 configuration (vtd-s1 only). */
  vtd: VtdS1Config | undefined;
  /** The guest's vSTE (arm-smmuv3 only). */
  vste: ArmVste | undefined;
  /** Its descriptor in the shared context tables, which is also its IOTLB tag (0: not translatable). */
  descriptor: number;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID. */
  pasidCompat: boolean;
  /** The FAULT object its I/O page faults go to (FAULT_ID_VALID), referenced. */
  fault?: FaultObject | undefined;
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
  /** Its vDEVICE (`idev->vdev`), if one exists. */
  vdevice: VdeviceObject | undefined;
  /** A mock device's cache slots (the selftest's `mdev->cache`, cleared by selftest vIOMMU invalidation); empty for other kinds. */
  cache: number[];
}

/** vIOMMU types (IOMMU_VIOMMU_TYPE_*): `arm-smmuv3` on smmuv3 devices, `selftest` on mock ones. */
export type ViommuType = 'arm-smmuv3' | 'selftest';

/** A vIOMMU (`iommufd_viommu`): a slice of a physical IOMMU for one VM, over a nest parent. */
export interface ViommuObject extends ObjectBase {
  type: 'viommu';
  /** IOMMU_VIOMMU_TYPE_*. */
  viommuType: ViommuType;
  /** The driver (physical IOMMU) it belongs to. */
  kind: IommuKind;
  /** The nest-parent paging HWPT (the VM's stage 2); referenced while the vIOMMU exists. */
  parent: HwptPagingObject;
  /** The VMID that the vIOMMU's stage-2 TLB entries and guest TLBIs carry: unique per vIOMMU, from 1. */
  vmid: number;
  /** Its vDEVICEs by virtual ID (`viommu->vdevs`). */
  vdevs: Map<bigint, VdeviceObject>;
  /** Software nesting for the nested HWPTs allocated on it (a simulator mode, not a kernel flag). */
  softwareNesting: boolean;
  /** Its vEVENTQs by type (one each), created on the first allocation. */
  veventqs?: Map<VeventqType, VeventqObject>;
}

/** A vEVENTQ (`iommufd_veventq`): a vIOMMU's queue of vendor events of one type. */
export interface VeventqObject extends ObjectBase {
  type: 'veventq';
  /** The vIOMMU (referenced). */
  viommu: ViommuObject;
  /** The VMM's handle (the kernel's anon fd), which holds one reference until it is closed. */
  queue: VeventQueue;
}

/** A vDEVICE (`iommufd_vdevice`): a device's guest-visible ID (vSID, vRID, vDeviceID) on a vIOMMU. */
export interface VdeviceObject extends ObjectBase {
  type: 'vdevice';
  /** The vIOMMU (referenced). */
  viommu: ViommuObject;
  /** The device; its unbind destroys the vDEVICE and leaves the id a tombstone. */
  dev: DeviceObject;
  /** The virtual ID, unique within the vIOMMU. */
  virtId: bigint;
}

/** A FAULT object (`iommufd_fault`): the I/O page-fault queue of the HWPTs allocated with its id. */
export interface FaultObject extends ObjectBase {
  type: 'fault';
  /** The VMM's handle (the kernel's anon fd), which holds one reference until it is closed. */
  queue: FaultQueue;
  /** Groups still collecting faults (no last page yet), by device id, then (PASID + 1) × 2^16 + group index. */
  partial: Map<number, Map<number, { addr: bigint; perm: number }[]>>;
}

/** Any object. */
export type IommufdObject =
  | IoasObject
  | HwptPagingObject
  | HwptNestedObject
  | DeviceObject
  | ViommuObject
  | VdeviceObject
  | FaultObject
  | VeventqObject;
