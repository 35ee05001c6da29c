/**
 * The invalidation descriptors Linux 6.1 intel-iommu builds (`qi_flush_*` in
 * drivers/iommu/intel/dmar.c), as field sets for the unit's descriptor table
 * (src/vendor/vtd/descriptors.ts), and the page-selective mask arithmetic of
 * `iommu_flush_iotlb_psi` (reference/viommu-queues.md §2.2, §4.2).
 */
import { DescType, GRAN, PC_GRAN, PIOTLB_GRAN, type DescriptorFields } from '../../vendor/vtd/descriptors.js';

export { GRAN, PC_GRAN };

/** One descriptor to queue: its type and its fields (absent fields are 0). */
export interface QueuedDescriptor {
  readonly type: number;
  readonly fields: DescriptorFields;
}

/**
 * A descriptor given as its raw 32-bit words (qw0 low, qw0 high, …; missing words are 0), as
 * Linux's `struct qi_desc`: how a test or a fault injector queues what the encoder refuses.
 */
export interface RawDescriptor {
  readonly words: readonly number[];
}

/** Anything the queue accepts. */
export type QueueEntry = QueuedDescriptor | RawDescriptor;

/** PASID-IOTLB (0x6) granularity of "every page of one PASID" (Linux `QI_GRAN_NONG_PASID`). */
export const PIOTLB_GRAN_ALL = PIOTLB_GRAN.Pasid;

/** `MAX_AGAW_PFN_WIDTH`: the device-TLB mask Linux uses for "the whole device TLB". */
export const DEV_TLB_ALL_MASK = 52;

/** `QI_DEV_IOTLB_MAX_INVS`: a queue depth of 32 or more is sent as 0. */
const DEV_TLB_MAX_INVS = 32;

/** Read and write draining, set when CAP.DRD / CAP.DWD advertise them (`qi_flush_iotlb`). */
export interface Drain {
  readonly dr: 0 | 1;
  readonly dw: 0 | 1;
}

/** `qi_flush_context(iommu, 0, 0, 0, DMA_CCMD_GLOBAL_INVL)`. */
export function contextCacheGlobal(): QueuedDescriptor {
  return { type: DescType.ContextCache, fields: { g: GRAN.Global } };
}

/** `qi_flush_context(iommu, did, sid, fm, DMA_CCMD_DEVICE_INVL)`. */
export function contextCacheDevice(did: number, sid: number, fm = 0): QueuedDescriptor {
  return { type: DescType.ContextCache, fields: { g: GRAN.Selective, did, sid, fm } };
}

/** `qi_flush_iotlb(iommu, 0, 0, 0, DMA_TLB_GLOBAL_FLUSH)`. */
export function iotlbGlobal(drain: Drain): QueuedDescriptor {
  return { type: DescType.Iotlb, fields: { g: GRAN.Global, ...drain } };
}

/** `qi_flush_iotlb(iommu, did, 0, 0, DMA_TLB_DSI_FLUSH)`. */
export function iotlbDomain(did: number, drain: Drain): QueuedDescriptor {
  return { type: DescType.Iotlb, fields: { g: GRAN.Domain, did, ...drain } };
}

/** `qi_flush_iotlb(iommu, did, addr | ih, am, DMA_TLB_PSI_FLUSH)`: 2^am pages around `addr`. */
export function iotlbPages(did: number, addr: number, am: number, ih: boolean, drain: Drain): QueuedDescriptor {
  return { type: DescType.Iotlb, fields: { g: GRAN.Selective, did, addr, am, ih: ih ? 1 : 0, ...drain } };
}

/**
 * `qi_flush_dev_iotlb(iommu, sid, pfsid, qdep, addr, mask)`: with a mask, the low mask − 1 page
 * bits of the address are set and S = 1, so the size is 4 KiB << mask (reference §2.2).
 */
export function deviceTlb(sid: number, pfsid: number, qdep: number, addr: number, mask: number): QueuedDescriptor {
  let pageAddr = addr - (addr % 4096);
  let s = 0;
  if (mask > 0) {
    const pfn = pageAddr / 4096;
    const low = 2 ** (mask - 1);
    pageAddr = (pfn - (pfn % low) + (low - 1)) * 4096;
    s = 1;
  }
  return {
    type: DescType.DeviceTlb,
    fields: {
      sid,
      mip: qdep >= DEV_TLB_MAX_INVS ? 0 : qdep,
      pfsidLo: pfsid & 0xf,
      pfsidHi: (pfsid >>> 4) & 0xfff,
      addr: pageAddr,
      s,
    },
  };
}

/** `qi_flush_pasid_cache(iommu, did, granularity, pasid)`. */
export function pasidCache(did: number, granularity: number, pasid: number): QueuedDescriptor {
  return { type: DescType.PasidCache, fields: { g: granularity, did, pasid } };
}

/** The PASID-based IOTLB invalidation's page-selective-within-PASID granularity. */
export const PIOTLB_GRAN_PSI = PIOTLB_GRAN.Pages;

/** `qi_flush_piotlb(iommu, did, pasid, addr, 2^mask pages, ih)`: a naturally aligned block of one PASID. */
export function pasidIotlbPages(did: number, pasid: number, addr: number, mask: number, ih: boolean): QueuedDescriptor {
  return { type: DescType.PasidIotlb, fields: { g: PIOTLB_GRAN_PSI, did, pasid, addr, am: mask, ih: ih ? 1 : 0 } };
}

/** `qi_flush_piotlb(iommu, did, pasid, 0, -1, 0)`: every page of one PASID. */
export function pasidIotlbAll(did: number, pasid: number): QueuedDescriptor {
  return { type: DescType.PasidIotlb, fields: { g: PIOTLB_GRAN_ALL, did, pasid } };
}

/**
 * `intel_iommu_page_response` (and `handle_bad_prq_event`): the page group response for the group
 * (`rid`, `prgi`) with response code `code`; PP and the PASID when the request had one (`pasid`
 * >= 0). LPIG is set, as Linux sets it from the group's last request.
 */
export function pageGroupResponse(rid: number, pasid: number, prgi: number, code: number): QueuedDescriptor {
  const pp = pasid >= 0;
  return {
    type: DescType.PageGroupResponse,
    fields: { pp: pp ? 1 : 0, pasid: pp ? pasid : 0, rid, prgi, rc: code, lpig: 1 },
  };
}

/**
 * The address mask of a page-selective invalidation of `pages` pages from page `pfn`, as
 * `iommu_flush_iotlb_psi` computes it: the page count rounded up to a power of two and, when
 * `pfn` is not aligned to it, grown until the first and last page share every bit above the
 * mask (so the aligned 2^mask block holding `pfn` covers the whole range).
 */
export function psiMask(pfn: number, pages: number): number {
  let mask = 0;
  while (2 ** mask < pages) mask++;
  if (pfn % 2 ** mask === 0) return mask;
  const last = pfn + pages - 1;
  while (Math.floor(pfn / 2 ** mask) !== Math.floor(last / 2 ** mask)) mask++;
  return mask;
}
