/** Translation caches in shared memory (the IOTLB; the config cache and ATC come next). */
export {
  Iotlb,
  SLOT_WORDS,
  WAYS,
  MAX_CACHED_SHIFT,
  MAX_TAGS,
  CLOCK_LIMIT,
  OWNER_CONTROL,
  OWNER_WORKER_BASE,
  type IotlbHandles,
  type IotlbCounters,
} from './iotlb.js';
export { runShardOps, type ShardResult } from './exec.js';
