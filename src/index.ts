/**
 * ioasid: a simulator of the Linux IOASID / iommufd model and the vIOMMUs behind it.
 * This is the public API; everything else is internal.
 */
export {
  Iommufd,
  DmaFaultError,
  type OpenOptions,
  type IovaRange,
  type MapFlags,
  type TranslateFaultInfo,
  type HostMemory,
  type FaultInjection,
  type CacheStats,
} from './iommufd.js';
export { IommufdError, type Errno } from './util/errors.js';
export {
  FaultQueue,
  PGFAULT_FLAG,
  PGFAULT_PERM,
  PAGE_RESPONSE,
  PGFAULT_BYTES,
  PAGE_RESPONSE_BYTES,
  type PageFaultRecord,
  type PageResponse,
  type GroupAnswer,
  VeventQueue,
  VEVENT_FLAG,
  VEVENT_HEADER_BYTES,
  type VeventqType,
  type VeventRecord,
} from './registry/index.js';
export { DmaEngine, DMA_STATUS, type DmaEngineOptions, type DmaEngineStats } from './registry/dma-engine.js';
export { MemoryWindow } from './memory/index.js';
export type { CacheCounters } from './cache/index.js';
export {
  HOST_VTD_NESTING,
  IovaRangesTooSmall,
  InvalidateError,
  VTD_S1_ALL_PAGES,
  MOCK_DEV_CACHE_DEFAULT,
  type ArmSmmuv3Command,
  type ArmSmmuv3Data,
  type ArmVste,
  type SelftestInvalidation,
  type SelftestViommuInvalidation,
  type ViommuInfo,
  type ViommuType,
  type VtdS1Data,
  type VtdS1Invalidation,
} from './registry/index.js';
export { TranslatePool, type PipelineMetrics } from './pipeline/index.js';
export {
  attachTranslator,
  runTranslateBatch,
  NO_PASID,
  type DataPlaneHandles,
  type TranslateBatch,
  type TranslateBatchResult,
} from './translate/index.js';
export { Access, TranslateFault, type TranslateFaultCode } from './pgtable/index.js';

/** Host page size (bytes). */
export const PAGE_SIZE = 4096n;
/** The mock domain's page size (bytes). */
export const MOCK_PAGE_SIZE = 2048n;
/** The mock domain's huge page size (bytes). */
export const MOCK_HUGE_PAGE_SIZE = 1n << 20n;
/** First IOVA of the mock aperture. */
export const MOCK_APERTURE_START = 1n << 24n;
/** Last IOVA of the mock aperture. */
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;
export { VtdIommu, type VtdIommuOptions, type VtdRequest, type VtdStats, type VtdBackend } from './vendor/vtd/iommu.js';
export { VtdRegisters, type VtdInterrupt, type VtdRegisterOptions } from './vendor/vtd/regs.js';
export {
  SmmuIommu,
  type SmmuBackend,
  type SmmuIommuOptions,
  type SmmuRequest,
  type SmmuStats,
} from './vendor/smmuv3/iommu.js';
export { SmmuRegisters, type SmmuInterrupt, type SmmuRegisterOptions } from './vendor/smmuv3/regs.js';
export type { SmmuExit, SmmuDirectStats, SmmuViommuPort } from './vendor/smmuv3/direct.js';
export {
  SmmuGuestDriver,
  PriQueue,
  IopfResponse,
  pageResponse,
  type SmmuIopfHandler,
  type SmmuIopfStats,
  type SmmuPageRequest,
  type SmmuAttachOptions,
  type SmmuGuestDriverOptions,
  type SmmuGuestStats,
  type SmmuUnitPort,
} from './guest/smmuv3/index.js';
export type { SmmuDmaArgs, SmmuDmaResult, SmmuFaultModel } from './vendor/smmuv3/dma-async.js';
export type { SmmuStallStats, SmmuStallOutcome } from './vendor/smmuv3/stall.js';
export type { SmmuPriStats } from './vendor/smmuv3/pri.js';
export { PriResp, ResumeResp } from './vendor/smmuv3/commands.js';
export {
  VtdGuestDriver,
  GuestPageRequestQueue,
  pageGroupResponse,
  type VtdAttachOptions,
  type VtdFaultRecord,
  type VtdGuestDriverOptions,
  type VtdGuestStats,
  type VtdPageFaultHandler,
  type VtdPageRequestOptions,
  type VtdPageRequest,
  type VtdPageRequestGroup,
  type VtdPrqHandlerStats,
} from './guest/vtd/index.js';
export {
  PRG_RESPONSE,
  PageRequestDescriptor,
  encodePageRequest,
  decodePageRequest,
} from './vendor/vtd/page-request.js';
export type { VtdDmaTransfer } from './vendor/vtd/pri-dma.js';
export type { VtdPrqStats } from './vendor/vtd/prq.js';
