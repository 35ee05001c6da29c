/** The SMMUv3 guest driver model: Linux 6.1 arm-smmu-v3 against an emulated unit. */
export {
  SmmuGuestDriver,
  type SmmuAttachOptions,
  type SmmuDomainInfo,
  type SmmuDomainTarget,
  type SmmuGuestDriverOptions,
  type SmmuGuestStats,
} from './driver.js';
export {
  CMDQ_BATCH_ENTRIES,
  CommandBatch,
  CommandQueue,
  type CmdqErrorRecord,
  type CommandQueueOptions,
  type CommandQueueStats,
} from './cmdq.js';
export { EventQueue } from './evtq.js';
export { linuxS1Cd, linuxS1Ste, S1_T0SZ } from './descriptors.js';
export {
  IopfQueue,
  IopfResponse,
  pageResponse,
  type SmmuIopfHandler,
  type SmmuIopfStats,
  type SmmuPageRequest,
} from './iopf.js';
export { PriQueue, type PriQueueDrain } from './priq.js';
export { type SmmuGuestCaps } from './probe.js';
export { StreamTable, STRTAB_SPLIT } from './strtab.js';
export { atcInvSpan, tlbiRangeSteps, tlbiTtl, type AtcSpan, type TlbiRangeStep } from './invalidations.js';
export { SmmuMmio, type SmmuUnitPort } from './port.js';
