import { Op, OP_WORDS, opAddr } from '../ops/index.js';
import type { Iotlb } from './iotlb.js';

/** What running one shard's part of a segment did. */
export interface ShardResult {
  /** IOTLB entries cleared. */
  cleared: number;
  /** Config-cache and shadow-sync ops: counted, and not run until the config cache and nesting exist. */
  unsupported: number;
}

/**
 * Runs shard `shard`'s part of an op list: the ops at `list[0..n)`, each restricted to the
 * regions the shard owns. The caller holds the shard's owner word. `crash` is called for a Crash
 * op that still has crashes left (a worker exits; inline, it throws). Allocation-free but for
 * the result; every op is idempotent, so a batch can run again after a crash.
 */
export function runShardOps(
  iotlb: Iotlb,
  shard: number,
  ops: Uint32Array,
  list: Int32Array,
  n: number,
  crash: () => void,
): ShardResult {
  let cleared = 0;
  let unsupported = 0;
  for (let k = 0; k < n; k++) {
    const i = list[k]!;
    const at = i * OP_WORDS;
    switch (ops[at]) {
      case Op.IotlbRange:
      case Op.IotlbRangeAllAsid:
        cleared += iotlb.invalidateRangeInShard(shard, ops[at + 2]!, opAddr(ops, i), ops[at + 6]! * 4096);
        break;
      case Op.Crash:
        if (Atomics.sub(ops, at + 6, 1) > 0) crash();
        else Atomics.store(ops, at + 6, 0);
        break;
      case Op.CfgSid:
      case Op.CfgSidSsid:
      case Op.CfgDid:
      case Op.CfgDidPasid:
      case Op.CfgAll:
      case Op.ShadowSync:
        unsupported++;
        break;
      default:
        break;
    }
  }
  return { cleared, unsupported };
}
