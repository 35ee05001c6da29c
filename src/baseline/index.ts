/**
 * The QEMU-style baseline (issue 7, item 4): models of QEMU 7.2's vIOMMU algorithms, not QEMU
 * itself, to measure ioasid's emulated units against in the same harness
 * (reference/viommu-queues.md §3, §6.3). Each unit offers the surface a guest driver model and
 * the replay use: `mmioRead` / `mmioWrite`, `guest` and `ram`, `translate`, `stats`, `close`.
 */
export { QemuVtdUnit, type QemuVtdOptions, type QemuVtdRequest, type QemuVtdStats } from './vtd-unit.js';
export { QemuSmmuUnit, type QemuSmmuOptions, type QemuSmmuRequest, type QemuSmmuStats } from './smmu-unit.js';
export { VTD_IOTLB_MAX_SIZE } from './vtd-iotlb.js';
export { SMMU_IOTLB_MAX_SIZE } from './smmu-iotlb.js';
export { VTD_CONTEXT_CACHE_GEN_MAX } from './vtd-context-cache.js';
export { DEFAULT_GUEST_RAM_BYTES, type BaselineRamOptions } from './guest-memory.js';
export type { QemuIotlbStats, QemuConfigCacheStats } from './counters.js';
export type { QemuCmdqStats } from './smmu-cmdq.js';
export type { QemuQueueStats } from './vtd-queue.js';
