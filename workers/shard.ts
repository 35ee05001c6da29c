/**
 * Piscina worker: the shard executor. It runs one shard's part of an op list under the shard's
 * owner word. Thin: the logic is `runShardOps`, which the main thread also runs inline and unit
 * tests call directly. Shared buffers arrive once, in workerData; a task carries only the shard,
 * the op list (a SharedArrayBuffer view) and the indexes of the ops to run.
 */
import { threadId, workerData } from 'node:worker_threads';
import { Iotlb, runShardOps, type IotlbHandles, type ShardResult } from '../src/cache/index.js';

/** workerData of a shard pool. */
export interface ShardWorkerData {
  iotlb: { handles: IotlbHandles; entries: number; shards: number };
}

/** One task. */
export interface ShardTask {
  shard: number;
  ops: Uint32Array;
  list: Int32Array;
  n: number;
}

const data = workerData as ShardWorkerData;
const iotlb = new Iotlb(data.iotlb.entries, data.iotlb.shards, data.iotlb.handles);
/** A word to sleep on briefly while another thread owns the shard. */
const nap = new Int32Array(new SharedArrayBuffer(4));
/** Worker owner ids are 1000 + threadId: the pipeline knows a dead worker's by its shard's word. */
const owner = 1000 + threadId;

/** Runs one shard's ops: takes the owner word (waiting for inline runs to release it), runs, releases. */
export default function runTask(task: ShardTask): ShardResult {
  while (!iotlb.tryOwn(task.shard, owner)) Atomics.wait(nap, 0, 0, 0.05);
  // A Crash op exits the thread while it holds the owner word: what the pipeline must recover
  // from. An ordinary exception releases it.
  try {
    return runShardOps(iotlb, task.shard, task.ops, task.list, task.n, () => process.exit(1));
  } finally {
    iotlb.release(task.shard);
  }
}
