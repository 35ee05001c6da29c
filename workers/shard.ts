/**
 * Piscina worker: the shard executor. It runs one shard's part of an op list under the shard's
 * owner words. Thin: the logic is `runShardOps`, which the main thread also runs inline and unit
 * tests call directly. Shared buffers arrive once, in workerData; a task carries only the shard,
 * the op list (a SharedArrayBuffer view) and the indexes of the ops to run.
 */
import { threadId, workerData } from 'node:worker_threads';
import {
  ConfigCache,
  Iotlb,
  releaseShard,
  runShardOps,
  tryOwnShard,
  type ShardCaches,
  type ShardCachesSpec,
  type ShardResult,
} from '../src/cache/index.js';

/** workerData of a shard pool. */
export type ShardWorkerData = ShardCachesSpec;

/** One task. */
export interface ShardTask {
  shard: number;
  ops: Uint32Array;
  list: Int32Array;
  n: number;
}

const data = workerData as ShardWorkerData;
const caches: ShardCaches = {
  iotlb: new Iotlb(data.iotlb.entries, data.iotlb.shards, data.iotlb.handles),
  atc: data.atc && new Iotlb(data.atc.entries, data.atc.shards, data.atc.handles, data.atc.byTag),
  config: data.config && new ConfigCache(data.config.entries, data.config.shards, data.config.handles),
};
/** A word to sleep on briefly while another thread owns the shard. */
const nap = new Int32Array(new SharedArrayBuffer(4));
/** Worker owner ids are 1000 + threadId: the pipeline knows a dead worker's by its shard's word. */
const owner = 1000 + threadId;

/** Runs one shard's ops: takes the owner words (waiting for inline runs to release them), runs, releases. */
export default function runTask(task: ShardTask): ShardResult {
  while (!tryOwnShard(caches, task.shard, owner)) Atomics.wait(nap, 0, 0, 0.05);
  // A Crash op exits the thread while it holds the owner words: what the pipeline must recover
  // from. An ordinary exception releases them.
  try {
    return runShardOps(caches, task.shard, task.ops, task.list, task.n, () => process.exit(1));
  } finally {
    releaseShard(caches, task.shard);
  }
}
