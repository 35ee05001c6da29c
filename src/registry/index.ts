/** The central ioasid registry: the object table, one file per object kind, and iommufd's errno rules. */
export { IommufdCtx, type ContextOptions } from './context.js';
export {
  ioasAlloc,
  ioasIovaRanges,
  ioasAllowIovas,
  ioasMap,
  ioasCopy,
  ioasUnmap,
  IovaRangesTooSmall,
  type MapFlags,
} from './ioas.js';
export { hwptAlloc, type HwptFlags, type HwptDataType, type NestingMode } from './hwpt.js';
export {
  deviceBind,
  deviceUnbind,
  deviceAttach,
  deviceReplace,
  deviceDetachById,
  getHwInfo,
  MAX_PASID_BITS,
  type BindArgs,
} from './device.js';
export { destroy, destroyAll, option, snapshot } from './main.js';
export {
  faultQueueAlloc,
  faultQueueOf,
  reportPageFault,
  reportPageRequest,
  pgfaultPerm,
  FaultQueue,
  PGFAULT_FLAG,
  PGFAULT_PERM,
  PAGE_RESPONSE,
  PGFAULT_BYTES,
  PAGE_RESPONSE_BYTES,
  type PageFaultRecord,
  type PageResponse,
  type GroupAnswer,
} from './fault.js';
export { RequestTags, NO_WAITER, type IopfModel, type TagWaiter } from './page-requests.js';
export {
  veventqAlloc,
  reportVevent,
  VeventQueue,
  VEVENT_FLAG,
  VEVENT_HEADER_BYTES,
  type VeventqType,
  type VeventRecord,
} from './veventq.js';
export { DRIVERS, type IommuDriver } from './domain.js';
export type { ArmVste, IommuKind, Range, ObjectType, ViommuType } from './objects.js';
export {
  viommuAlloc,
  vdeviceAlloc,
  viommuFindDev,
  viommuHasVdev,
  viommuInfo,
  type ArmSmmuv3Data,
  type ViommuInfo,
} from './viommu.js';
export { viommuInvalidate, type ArmSmmuv3Command, type SelftestViommuInvalidation } from './viommu-invalidate.js';
export { MOCK_DEV_CACHE_DEFAULT, MOCK_DEV_CACHE_SLOTS } from './objects.js';
export {
  hwptInvalidate,
  HOST_VTD_NESTING,
  InvalidateError,
  VTD_S1_ALL_PAGES,
  type SelftestInvalidation,
  type VtdS1Data,
  type VtdS1Invalidation,
} from './hwpt-nested.js';
