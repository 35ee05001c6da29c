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
  ShadowTable,
} from '../src/cache/index.js';
import { SystemMemory } from '../src/memory/index.js';
import { recordSlot } from '../src/translate/attach.js';
import { NestedShadowWalker } from '../src/translate/nested-walk.js';
import { ContextTables } from '../src/translate/tables.js';

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
const iotlb = new Iotlb(data.iotlb.entries, data.iotlb.shards, data.iotlb.handles);
const caches: ShardCaches = {
  iotlb,
  atc: data.atc && new Iotlb(data.atc.entries, data.atc.shards, data.atc.handles, data.atc.byTag),
  config: data.config && new ConfigCache(data.config.entries, data.config.shards, data.config.handles),
};
// Software nesting: the shadow, and a walker over the fd's memory and context tables that walks
// under a reader slot of its own (guest tables and stage-2 tables are only freed after a grace
// period that waits for it).
let reader: { enter: () => void; exit: () => void } | undefined;
if (data.shadow !== undefined) {
  const memory = new SystemMemory(0, data.shadow.walk.memory);
  const tables = new ContextTables(memory.phys, undefined, data.shadow.walk.tables);
  caches.shadow = new ShadowTable(iotlb, data.shadow.entries, data.shadow.handles);
  caches.walker = new NestedShadowWalker(memory.phys.i32, tables);
  const slot = memory.reclaimer.acquireSlot();
  if (slot < 0) throw new Error('no free reader slot for a shard worker');
  recordSlot(data.shadow.walk.slots, slot);
  reader = { enter: () => memory.reclaimer.enter(slot), exit: () => memory.reclaimer.exit(slot) };
}
/** A word to sleep on briefly while another thread owns the shard. */
const nap = new Int32Array(new SharedArrayBuffer(4));
/** Worker owner ids are 1000 + threadId: the pipeline knows a dead worker's by its shard's word. */
const owner = 1000 + threadId;

/** Runs one shard's ops: takes the owner words (waiting for inline runs to release them), runs, releases. */
export default function runTask(task: ShardTask): ShardResult {
  while (!tryOwnShard(caches, task.shard, owner)) Atomics.wait(nap, 0, 0, 0.05);
  // A Crash op exits the thread while it holds the owner words: what the pipeline must recover
  // from. An ordinary exception releases them.
  reader?.enter();
  try {
    return runShardOps(caches, task.shard, task.ops, task.list, task.n, (lingerMs) => {
      // A test may need to see the dead worker's id in the owner word before the pipeline's
      // recovery (which starts when the thread exits) takes it back.
      if (lingerMs > 0) Atomics.wait(nap, 0, 0, lingerMs);
      process.exit(1);
    });
  } finally {
    reader?.exit();
    releaseShard(caches, task.shard);
  }
}
