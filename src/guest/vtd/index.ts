/** The VT-d guest driver model: Linux 6.1 intel-iommu against an emulated unit. */
export {
  VtdGuestDriver,
  type VtdAttachOptions,
  type VtdFaultRecord,
  type VtdGuestCaps,
  type VtdGuestDriverOptions,
  type VtdGuestStats,
} from './driver.js';
export { InvalidationQueue, QI_STATUS, type QueueStats, type QueueTicket, type VtdUnitPort } from './queue.js';
export {
  contextCacheDevice,
  contextCacheGlobal,
  deviceTlb,
  iotlbDomain,
  iotlbGlobal,
  iotlbPages,
  pasidCache,
  pasidIotlbAll,
  psiMask,
  type Drain,
  type QueueEntry,
  type QueuedDescriptor,
  type RawDescriptor,
} from './invalidations.js';
