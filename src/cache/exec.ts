import { Op, OpFlag, OP_WORDS, opAddr } from '../ops/index.js';
import type { ConfigCache, ConfigCacheHandles } from './config.js';
import { ALL_ASIDS, Iotlb, type IotlbHandles } from './iotlb.js';
import type { ShadowHandles, ShadowTable, ShadowWalker } from './shadow.js';

/**
 * The caches a shard owns a slice of: the IOTLB, and optionally the devices' ATC and the config
 * cache. All three have the same number of shards; shard s of the pipeline owns slice s of each.
 */
export interface ShardCaches {
  iotlb: Iotlb;
  atc?: Iotlb | undefined;
  config?: ConfigCache | undefined;
  /** The software-nesting shadow (under the IOTLB's owner words) and the walker its syncs re-walk with. */
  shadow?: ShadowTable | undefined;
  walker?: ShadowWalker | undefined;
}

/**
 * What a worker needs to re-walk nested domains for shadow syncs: the fd's physical memory,
 * frame allocator and reclaimer (a worker walks under a reader slot), and the context tables.
 */
export interface ShadowWalkSpec {
  memory: { phys: SharedArrayBuffer; frames: SharedArrayBuffer; reclaim: SharedArrayBuffer };
  tables: { domains: SharedArrayBuffer; devices: SharedArrayBuffer };
  /** One Int32 per worker (initially -1): the reader slot each claimed, given back when the pipeline closes. */
  slots: SharedArrayBuffer;
}

/** What a worker needs to attach to a set of shard caches (structured-clone friendly). */
export interface ShardCachesSpec {
  iotlb: { handles: IotlbHandles; entries: number; shards: number };
  atc?: { handles: IotlbHandles; entries: number; shards: number; byTag: boolean } | undefined;
  config?: { handles: ConfigCacheHandles; entries: number; shards: number } | undefined;
  shadow?: { handles: ShadowHandles; entries: number; walk: ShadowWalkSpec } | undefined;
}

/** The spec of `caches`, to hand to workers once (in workerData); `walk` with a shadow. */
export function shardCachesSpec(caches: ShardCaches, walk?: ShadowWalkSpec): ShardCachesSpec {
  const { iotlb, atc, config, shadow } = caches;
  return {
    iotlb: { handles: iotlb.handles(), entries: iotlb.capacity, shards: iotlb.shards },
    atc: atc && { handles: atc.handles(), entries: atc.capacity, shards: atc.shards, byTag: atc.byTag },
    config: config && { handles: config.handles(), entries: config.capacity, shards: config.shards },
    shadow: shadow && walk && { handles: shadow.handles(), entries: shadow.capacity, walk },
  };
}

/**
 * Takes shard `shard`'s owner words of every cache for `owner`, without waiting: all or none.
 * The order (IOTLB, ATC, config) is the same everywhere, and fills take one word without
 * waiting, so no two owners can deadlock.
 */
export function tryOwnShard(c: ShardCaches, shard: number, owner: number): boolean {
  if (!c.iotlb.tryOwn(shard, owner)) return false;
  if (c.atc !== undefined && !c.atc.tryOwn(shard, owner)) {
    c.iotlb.release(shard);
    return false;
  }
  if (c.config !== undefined && !c.config.tryOwn(shard, owner)) {
    c.atc?.release(shard);
    c.iotlb.release(shard);
    return false;
  }
  return true;
}

/** Takes shard `shard`'s owner words of every cache for the control plane, waiting for holders. */
export function ownShard(c: ShardCaches, shard: number): void {
  c.iotlb.own(shard);
  c.atc?.own(shard);
  c.config?.own(shard);
}

/** Releases shard `shard`'s owner words of every cache. */
export function releaseShard(c: ShardCaches, shard: number): void {
  c.config?.release(shard);
  c.atc?.release(shard);
  c.iotlb.release(shard);
}

/** Recovery: takes back, from worker `holder`, every owner word of shard `shard` it still holds. */
export function reclaimShard(c: ShardCaches, shard: number, holder: number): void {
  c.iotlb.reclaimOwner(shard, holder);
  c.atc?.reclaimOwner(shard, holder);
  c.config?.reclaimOwner(shard, holder);
}

/** What running one shard's part of a segment did. */
export interface ShardResult {
  /** Cache entries cleared (IOTLB, ATC and config), and shadow pages written or dropped. */
  cleared: number;
  /** Ops for a cache that is absent (an ATC, config or shadow op without that cache). */
  unsupported: number;
}

/**
 * Runs shard `shard`'s part of an op list: the ops at `list[0..n)`, each restricted to the
 * regions (or SIDs) the shard owns. The caller holds the shard's owner words. `crash` is called
 * for a Crash op that still has crashes left, with the op's word 3 (how long a worker holds the
 * owner words before it exits, ms; inline, it throws).
 * Allocation-free but for the result; every op is idempotent, so a batch can run again after a
 * crash.
 */
export function runShardOps(
  c: ShardCaches,
  shard: number,
  ops: Uint32Array,
  list: Int32Array,
  n: number,
  crash: (lingerMs: number) => void,
): ShardResult {
  let cleared = 0;
  let unsupported = 0;
  for (let k = 0; k < n; k++) {
    const i = list[k]!;
    const at = i * OP_WORDS;
    switch (ops[at]) {
      case Op.IotlbRange:
        cleared += c.iotlb.invalidateRangeInShard(
          shard,
          Iotlb.tagWord(ops[at + 2]!, ops[at + 3]!),
          opAddr(ops, i),
          ops[at + 6]! * 4096,
        );
        break;
      case Op.IotlbRangeAllAsid:
        cleared += c.iotlb.invalidateRangeInShard(shard, ops[at + 2]!, opAddr(ops, i), ops[at + 6]! * 4096, ALL_ASIDS);
        break;
      case Op.AtcInv: {
        // The device's tag word for one PASID, or the device with "every PASID".
        const all = (ops[at + 7]! & OpFlag.AllPasids) !== 0;
        const tag = all ? ops[at + 3]! : Iotlb.tagWord(ops[at + 3]!, ops[at + 2]!);
        if (c.atc === undefined) unsupported++;
        else
          cleared += c.atc.invalidateRangeInShard(shard, tag, opAddr(ops, i), ops[at + 6]! * 4096, all ? ALL_ASIDS : 0);
        break;
      }
      case Op.CfgSidSsid:
        if (c.config === undefined) unsupported++;
        else cleared += c.config.invalidateInShard(shard, ops[at + 3]!, ops[at + 2]!);
        break;
      case Op.Crash:
        if (Atomics.sub(ops, at + 6, 1) > 0) crash(ops[at + 3]!);
        else Atomics.store(ops, at + 6, 0);
        break;
      case Op.ShadowSync:
        if (c.shadow === undefined || c.walker === undefined) unsupported++;
        else
          cleared += c.shadow.syncInShard(
            shard,
            Iotlb.tagWord(ops[at + 2]!, ops[at + 3]!),
            opAddr(ops, i),
            ops[at + 6]! * 4096,
            c.walker,
          );
        break;
      case Op.ShadowS2:
        if (c.shadow === undefined || c.walker === undefined) unsupported++;
        else
          cleared += c.shadow.dropGpaInShard(
            shard,
            ops[at + 2]!,
            Math.floor(opAddr(ops, i) / 4096),
            ops[at + 6]!,
            c.walker,
          );
        break;
      default:
        break;
    }
  }
  return { cleared, unsupported };
}
