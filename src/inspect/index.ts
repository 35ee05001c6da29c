/**
 * `ioasid inspect`, the library: read-only looks into a guest's or an fd's translation state.
 *
 * - Walks: {@link inspectVtd}, {@link inspectSmmu}, {@link inspectIommufd} trace one request level by
 *   level (every descriptor read with its addresses, raw words and decoded fields) to the result
 *   or fault that the target's translate reports.
 * - Ranges: {@link vtdRanges}, {@link smmuRanges}, {@link iommufdRanges} dump a domain's mapped runs.
 * - Caches: {@link dumpCache} lists IOTLB or ATC entries (of a tag).
 * - Queues: {@link vtdRegisterState}, {@link smmuRegisterState} read queue and error state through MMIO.
 * - Output: every result is a plain JSON-safe object (types.ts); format.ts renders tables.
 *
 * Nothing here writes guest or host memory, fills a cache, or records a fault.
 */
export type * from './types.js';
export { inspectVtd, type VtdInspectRequest, type VtdInspectUnit } from './vtd-trace.js';
export { inspectSmmu, type SmmuInspectRequest, type SmmuInspectUnit } from './smmu-trace.js';
export { inspectIommufd, type IommufdInspectRequest } from './iommufd-trace.js';
export { translateFaultName, faultReasonName, vtdReasonName, smmuEventName } from './names.js';
export { vtdRanges, smmuRanges, iommufdRanges, type IommufdRangeTarget } from './ranges-dump.js';
export { dumpCache, dumpIotlb, iommufdIotlbTag, iommufdAtcTag, type CacheDumpOptions } from './cache.js';
export { vtdRegisterState, smmuRegisterState, type MmioReader } from './queues.js';
export { formatTrace, formatRanges, formatCache, formatVtdState, formatSmmuState } from './format.js';
