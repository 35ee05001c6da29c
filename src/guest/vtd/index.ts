/** The VT-d guest driver model: Linux 6.1 intel-iommu against an emulated unit. */
export {
  VtdGuestDriver,
  type VtdAttachOptions,
  type VtdFaultRecord,
  type VtdGuestCaps,
  type VtdGuestDriverOptions,
  type VtdGuestStats,
  type VtdPageFaultHandler,
  type VtdPageRequestOptions,
} from './driver.js';
export {
  GuestPageRequestQueue,
  PRQ_ORDER,
  type PageRequestPort,
  type VtdPageRequest,
  type VtdPageRequestGroup,
  type VtdPrqHandlerStats,
} from './prq.js';
export { InvalidationQueue, QI_STATUS, type QueueStats, type QueueTicket, type VtdUnitPort } from './queue.js';
export {
  contextCacheDevice,
  contextCacheGlobal,
  deviceTlb,
  iotlbDomain,
  iotlbGlobal,
  iotlbPages,
  pasidCache,
  pageGroupResponse,
  pasidIotlbAll,
  psiMask,
  type Drain,
  type QueueEntry,
  type QueuedDescriptor,
  type RawDescriptor,
} from './invalidations.js';
