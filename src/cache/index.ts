/** Translation caches in shared memory: the IOTLB (and, tagged by device, the ATC) and the config cache. */
export {
  Iotlb,
  SLOT_WORDS,
  WAYS,
  MAX_CACHED_SHIFT,
  MAX_TAGS,
  MAX_ASID,
  ALL_ASIDS,
  ASID_EPOCHS,
  cacheAccess,
  type IotlbHandles,
  type IotlbCounters,
} from './iotlb.js';
export {
  ConfigCache,
  CONFIG_PAYLOAD_WORDS,
  CONFIG_SLOT_WORDS,
  CONFIG_EPOCHS,
  NO_SSID,
  type ConfigCacheHandles,
  type ConfigCacheCounters,
} from './config.js';
export { CLOCK_LIMIT, OWNER_CONTROL, OWNER_WORKER_BASE, type CacheCounters } from './shards.js';
export {
  ShadowTable,
  SHADOW_TABLE_PAGES,
  type ShadowCounters,
  type ShadowHandles,
  type ShadowWalker,
} from './shadow.js';
export {
  runShardOps,
  shardCachesSpec,
  tryOwnShard,
  ownShard,
  releaseShard,
  reclaimShard,
  type ShardCaches,
  type ShardCachesSpec,
  type ShardResult,
  type ShadowWalkSpec,
} from './exec.js';
