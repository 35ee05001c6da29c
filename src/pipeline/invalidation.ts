import { BehaviorSubject, concatMap, from, Subject, type Observable, type Subscription } from 'rxjs';
import type { Piscina } from 'piscina';
import {
  Iotlb,
  OWNER_WORKER_BASE,
  ownShard,
  reclaimShard,
  releaseShard,
  runShardOps,
  shardCachesSpec,
  type ConfigCache,
  type ShadowTable,
  type ShadowWalker,
  type ShadowWalkSpec,
  type ShardCaches,
  type ShardResult,
} from '../cache/index.js';
import { Op, OpFlag, OP_WORDS, opAddr, type OpList } from '../ops/index.js';
import { IommufdError } from '../util/errors.js';
import { EpochReclaimer } from '../memory/reclaim.js';
import { makePool } from './pool.js';

/** A barrier that completed: everything before it on its queue has taken effect. */
export interface Completion {
  /** The queue. */
  queue: number;
  /** The barrier's sequence number. */
  seq: number;
}

/** Running totals, published on `metrics$` after every batch. */
export interface PipelineMetrics {
  batches: number;
  ops: number;
  barriers: number;
  /** Wide flushes done as epoch stores. */
  epochFlushes: number;
  /** Ranges too large to probe, turned into a flush of their tag. */
  overInvalidations: number;
  /** Segments run on the calling thread, and on the pool. */
  inlineSegments: number;
  poolSegments: number;
  /** Cache entries cleared (IOTLB, ATC, config). */
  cleared: number;
  /** ATC, config or shadow ops without that cache. */
  unsupported: number;
  /** Shard tasks run again after their worker died. */
  recoveries: number;
}

/** Options of a pipeline. */
export interface PipelineOptions {
  /** Worker threads (0: everything inline). Default 2. */
  threads?: number;
  /**
   * A segment with fewer routed ops than this runs inline on the calling thread. Default 65536:
   * the T1 sweep (perf/RESULTS.md) found the pool slower than inline at every batch size up to
   * 16384 ops on this 2-core machine, so only very large segments go to the pool. Measure again
   * on a machine with more cores.
   */
  inlineThreshold?: number;
  /** Batches accepted but not finished before `submit` waits for room. Default 16. */
  maxQueued?: number;
  /** Attempts of a shard task before the batch fails with the vendor's error. Default 3. */
  maxAttempts?: number;
  /** Ranges of more 2 MiB regions than this become a flush of their tag. Default 512. */
  maxRegions?: number;
  /** The devices' ATC table (tagged by device, sharded by tag), for ATC invalidation ops. */
  atc?: Iotlb | undefined;
  /** The config cache, for config invalidation ops. */
  config?: ConfigCache | undefined;
  /**
   * Software nesting: the shadow (over the same IOTLB), the walker that syncs re-walk with on
   * this thread, and what a worker needs to build its own (ShadowSync and ShadowS2 ops).
   */
  shadow?: { table: ShadowTable; walker: ShadowWalker; walk: ShadowWalkSpec } | undefined;
  /**
   * A shadow sync of this many pages or more becomes a flush of its tag (the shadow and IOTLB
   * entries go with one epoch store; CMDQ_MAX_TLBI_OPS's rule, perf-anchors.md T5). Default 512.
   */
  maxShadowPages?: number;
}

interface Job {
  ops: OpList;
  queue: number;
  resolve: (lastSeq: number) => void;
  reject: (e: unknown) => void;
}

interface ShardTask {
  shard: number;
  ops: Uint32Array;
  list: Int32Array;
  n: number;
}

/**
 * The invalidation pipeline of DESIGN.md "The pipeline". Each submitted op list is one emission,
 * never one per op. The stages are:
 *
 *   batches$ → concatMap(process): split at barriers → route (wide flushes become epoch stores;
 *   ranges go to the shards of their 2 MiB regions) → run (inline under the owner words when
 *   small, on the pool when large) → complete (every shard is done through the barrier; emit on
 *   completions$).
 *
 * Batches run in submission order; ops between two barriers may run in any order and in
 * parallel, since they only remove. A worker that dies mid-batch is recovered: its shard's owner
 * word is taken back by compare-and-swap, everything is flushed with one epoch store, and the
 * shard's ops run again; after `maxAttempts` failures the batch fails with EIO (the vendor error).
 */
export class InvalidationPipeline {
  /** Barriers that completed. */
  readonly completions$ = new Subject<Completion>();
  readonly #metrics: BehaviorSubject<PipelineMetrics>;
  /** Running totals after each batch. */
  readonly metrics$: Observable<PipelineMetrics>;
  readonly #iotlb: Iotlb;
  readonly #pool: Piscina<ShardTask, ShardResult> | undefined;
  readonly #batches = new Subject<Job>();
  readonly #sub: Subscription;
  readonly #o: Required<Omit<PipelineOptions, 'atc' | 'config' | 'shadow'>>;
  readonly #atc: Iotlb | undefined;
  readonly #config: ConfigCache | undefined;
  readonly #caches: ShardCaches;
  readonly #walk: ShadowWalkSpec | undefined;
  #queued = 0;
  #room: (() => void)[] = [];
  #idle: Promise<void> = Promise.resolve();
  #markIdle: () => void = () => {};
  #closed = false;
  #lists: Int32Array[] = [];
  #listLen: Int32Array;
  readonly #m: PipelineMetrics = {
    batches: 0,
    ops: 0,
    barriers: 0,
    epochFlushes: 0,
    overInvalidations: 0,
    inlineSegments: 0,
    poolSegments: 0,
    cleared: 0,
    unsupported: 0,
    recoveries: 0,
  };

  /**
   * Creates a pipeline over an IOTLB (and the ATC and config cache of `opts`, which must have as
   * many shards). The workers attach to the caches' shared buffers once, at start-up.
   */
  constructor(iotlb: Iotlb, opts: PipelineOptions = {}) {
    this.#iotlb = iotlb;
    this.#listLen = new Int32Array(iotlb.shards);
    const { atc, config, shadow, ...rest } = opts;
    for (const c of [atc, config]) {
      if (c !== undefined && c.shards !== iotlb.shards)
        throw new IommufdError('EINVAL', `every cache needs ${iotlb.shards} shards, like the IOTLB (got ${c.shards})`);
    }
    this.#atc = atc;
    this.#config = config;
    if (shadow !== undefined && shadow.table.shards !== iotlb.shards)
      throw new IommufdError('EINVAL', 'the shadow must live over this IOTLB');
    this.#caches = { iotlb, atc, config, shadow: shadow?.table, walker: shadow?.walker };
    this.#walk = shadow?.walk;
    this.#o = {
      threads: 2,
      inlineThreshold: 65536,
      maxQueued: 16,
      maxAttempts: 3,
      maxRegions: 512,
      maxShadowPages: 512,
      ...rest,
    };
    this.#metrics = new BehaviorSubject({ ...this.#m });
    this.metrics$ = this.#metrics.asObservable();
    this.#pool =
      this.#o.threads > 0
        ? makePool<ShardTask, ShardResult>('shard', {
            workerData: shardCachesSpec(this.#caches, shadow?.walk),
            minThreads: this.#o.threads,
            maxThreads: this.#o.threads,
          })
        : undefined;
    this.#sub = this.#batches.pipe(concatMap((job) => from(this.#process(job)))).subscribe();
  }

  /**
   * Submits an op list (a doorbell's slice, or an invalidate call). Resolves with the sequence of
   * the last barrier in it (or -1) once every op has taken effect; rejects with EIO when a shard
   * failed repeatedly. Waits for room while `maxQueued` batches are unfinished (backpressure).
   */
  async submit(ops: OpList, queue = 0): Promise<number> {
    if (this.#closed) throw new IommufdError('EBADF', 'the pipeline is closed');
    while (this.#queued >= this.#o.maxQueued) {
      await new Promise<void>((r) => this.#room.push(r));
      if (this.#closed) throw new IommufdError('EBADF', 'the pipeline was closed while this batch waited for room');
    }
    if (this.#queued++ === 0) this.#idle = new Promise((r) => (this.#markIdle = r));
    return new Promise<number>((resolve, reject) => this.#batches.next({ ops, queue, resolve, reject }));
  }

  /** A snapshot of the running totals (what `metrics$` last published, or newer). */
  metrics(): PipelineMetrics {
    return { ...this.#m };
  }

  /** Waits for work in flight, stops the workers, and completes the observables. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Waiters for room give up (EBADF); what was accepted runs to the end.
    for (const wake of this.#room.splice(0)) wake();
    while (this.#queued > 0) await this.#idle;
    this.#batches.complete();
    this.#sub.unsubscribe();
    await this.#pool?.destroy();
    // The workers' reader slots (shadow syncs walk under them) go back with the workers.
    const walk = this.#walk;
    if (walk !== undefined) {
      const reclaimer = new EpochReclaimer(0, walk.memory.reclaim);
      const a = new Int32Array(walk.slots);
      for (let i = 0; i < a.length; i++) {
        const slot = Atomics.exchange(a, i, -1);
        if (slot >= 0) reclaimer.releaseSlot(slot);
      }
    }
    this.completions$.complete();
    this.#metrics.complete();
  }

  async #process(job: Job): Promise<void> {
    try {
      const w = job.ops.words;
      let lastBarrier = -1;
      let start = 0;
      for (let i = 0; i <= job.ops.count; i++) {
        const end = i === job.ops.count;
        if (!end && w[i * OP_WORDS] !== Op.Barrier) continue;
        await this.#segment(w, start, i);
        if (!end) {
          lastBarrier = w[i * OP_WORDS + 1]!;
          this.#m.barriers++;
          this.completions$.next({ queue: job.queue, seq: lastBarrier });
        }
        start = i + 1;
      }
      this.#m.batches++;
      this.#m.ops += job.ops.count;
      job.resolve(lastBarrier);
    } catch (e) {
      job.reject(e);
    } finally {
      this.#metrics.next({ ...this.#m });
      if (--this.#queued === 0) this.#markIdle();
      this.#room.shift()?.();
    }
  }

  /** Routes ops [from, to) and runs them; resolves when every shard is done with them. */
  async #segment(w: Uint32Array, from: number, to: number): Promise<void> {
    const { tasks, routed } = this.#route(w, from, to);
    if (routed === 0) return;
    if (this.#pool === undefined || routed < this.#o.inlineThreshold) {
      this.#m.inlineSegments++;
      for (const t of tasks) this.#account(this.#runInline(t));
      return;
    }
    this.#m.poolSegments++;
    // Every shard finishes (or gives up) before the segment does: a failed shard must not let the
    // next batch run ahead of the others' work.
    const settled = await Promise.allSettled(
      tasks.map((t) => this.#runOnPool({ ...t, list: toShared(t.list.subarray(0, t.n)) })),
    );
    for (const r of settled) if (r.status === 'fulfilled') this.#account(r.value);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /**
   * Route: wide flushes become epoch stores here and now; ranges go to the shards of their
   * 2 MiB regions (too many regions: a flush of their tag); exact config and ATC ops go to the
   * shard of their SID or device; crash ops to the shard they name; shadow syncs to shard 0.
   */
  #route(w: Uint32Array, from: number, to: number): { tasks: ShardTask[]; routed: number } {
    const shards = this.#iotlb.shards;
    // Per-shard index lists in reusable scratch arrays: routing allocates nothing per op.
    if (this.#lists.length === 0 || this.#lists[0]!.length < to - from) {
      let cap = 64;
      while (cap < to - from) cap *= 2;
      this.#lists = Array.from({ length: shards }, () => new Int32Array(cap));
    }
    const lists = this.#lists;
    const n = this.#listLen.fill(0);
    let routed = 0;
    for (let i = from; i < to; i++) {
      const at = i * OP_WORDS;
      const tag = w[at + 2]!;
      switch (w[at]) {
        case Op.IotlbAll:
          this.#iotlb.flushAll();
          this.#m.epochFlushes++;
          break;
        case Op.IotlbTag:
          this.#iotlb.flushTag(tag);
          this.#m.epochFlushes++;
          break;
        case Op.IotlbAsid:
          this.#iotlb.flushAsid(Iotlb.tagWord(tag, w[at + 3]!));
          this.#m.epochFlushes++;
          break;
        case Op.IotlbRange:
        case Op.IotlbRangeAllAsid: {
          const pages = w[at + 6]!;
          const addr = opAddr(w, i);
          const first = Math.floor(addr / 2097152);
          const regions = Math.ceil((addr + pages * 4096) / 2097152) - first;
          if (pages === 0xffffffff || regions > this.#o.maxRegions) {
            // All pages of one ASID is an ASID flush; anything else flushes the domain.
            if (w[at] === Op.IotlbRange) this.#iotlb.flushAsid(Iotlb.tagWord(tag, w[at + 3]!));
            else this.#iotlb.flushTag(tag);
            if (pages === 0xffffffff) this.#m.epochFlushes++;
            else this.#m.overInvalidations++;
            break;
          }
          routed += this.#pushRegions(lists, n, tag, first, regions, i);
          break;
        }
        case Op.AtcInv: {
          // The device's ATC, by device (second tag), PASID (tag) or all PASIDs, and range.
          const atc = this.#atc;
          const dev = w[at + 3]!;
          const all = (w[at + 7]! & OpFlag.AllPasids) !== 0;
          if (atc === undefined) {
            this.#m.unsupported++;
          } else if (w[at + 6] === 0xffffffff || this.#atcRegions(w, i) > this.#o.maxRegions) {
            // Every page, or a span too large to probe region by region (a guest's ATC_INV of
            // 2^31 pages would otherwise walk a million regions): flush the device or the PASID.
            if (all) atc.flushTag(dev);
            else atc.flushAsid(Iotlb.tagWord(dev, tag));
            if (w[at + 6] === 0xffffffff) this.#m.epochFlushes++;
            else this.#m.overInvalidations++;
          } else {
            routed += this.#push(lists, n, atc.shardOf(dev, 0), i);
          }
          break;
        }
        case Op.CfgSid:
        case Op.CfgDid:
        case Op.CfgDidPasid:
        case Op.CfgAll: {
          const cfg = this.#config;
          if (cfg === undefined) this.#m.unsupported++;
          else {
            const op = w[at];
            if (op === Op.CfgSid) cfg.flushSids(w[at + 3]!, Math.max(1, w[at + 6]!));
            else if (op === Op.CfgDid) cfg.flushDid(tag);
            else if (op === Op.CfgDidPasid) cfg.flushDidPasid(tag, w[at + 3]!);
            else cfg.flushAll();
            this.#m.epochFlushes++;
          }
          break;
        }
        case Op.CfgSidSsid:
          if (this.#config === undefined) this.#m.unsupported++;
          else routed += this.#push(lists, n, this.#config.shardOf(w[at + 3]!), i);
          break;
        case Op.Crash:
          routed += this.#push(lists, n, w[at + 2]! % shards, i);
          break;
        case Op.ShadowSync: {
          const pages = w[at + 6]!;
          const addr = opAddr(w, i);
          const first = Math.floor(addr / 2097152);
          const regions = Math.ceil((addr + pages * 4096) / 2097152) - first;
          if (this.#caches.shadow === undefined) {
            this.#m.unsupported++;
          } else if (pages === 0xffffffff || pages >= this.#o.maxShadowPages || regions > this.#o.maxRegions) {
            // The shadow lives under the IOTLB's epochs: one store flushes the tag's entries in both.
            this.#iotlb.flushAsid(Iotlb.tagWord(tag, w[at + 3]!));
            if (pages === 0xffffffff) this.#m.epochFlushes++;
            else this.#m.overInvalidations++;
          } else {
            routed += this.#pushRegions(lists, n, tag, first, regions, i);
          }
          break;
        }
        case Op.ShadowS2:
          // The reverse index is per shard: every shard looks the pages up in its own.
          if (this.#caches.shadow === undefined) this.#m.unsupported++;
          else for (let s = 0; s < shards; s++) routed += this.#push(lists, n, s, i);
          break;
        default:
          // Nop and Barrier (segments end at barriers): nothing to run.
          break;
      }
    }
    const tasks: ShardTask[] = [];
    for (let s = 0; s < shards; s++) if (n[s]! > 0) tasks.push({ shard: s, ops: w, list: lists[s]!, n: n[s]! });
    return { tasks, routed };
  }

  /** The 2 MiB regions op `i`'s range touches. */
  #atcRegions(w: Uint32Array, i: number): number {
    const addr = opAddr(w, i);
    return Math.ceil((addr + w[i * OP_WORDS + 6]! * 4096) / 2097152) - Math.floor(addr / 2097152);
  }

  /** Pushes op `i` once onto the list of each shard that owns one of `regions` 2 MiB regions of `tag` from region `first`. */
  #pushRegions(lists: Int32Array[], n: Int32Array, tag: number, first: number, regions: number, i: number): number {
    let routed = 0;
    for (let r = 0; r < regions; r++) {
      const s = this.#iotlb.shardOf(tag, (first + r) * 2097152);
      const k = n[s]!;
      if (k > 0 && lists[s]![k - 1] === i) continue;
      lists[s]![k] = i;
      n[s] = k + 1;
      routed++;
    }
    return routed;
  }

  #push(lists: Int32Array[], n: Int32Array, shard: number, i: number): number {
    lists[shard]![n[shard]!] = i;
    n[shard]!++;
    return 1;
  }

  /**
   * The doorbell path: runs an op list synchronously on the calling thread, as QEMU serves a
   * trap on the vCPU thread, and returns the last barrier's sequence (or -1) once everything has
   * taken effect; completions are emitted before it returns. Only while no submitted batch is
   * unfinished (EBUSY otherwise: ordering would break); a Crash op is EIO here.
   */
  submitSync(ops: OpList, queue = 0): number {
    if (this.#closed) throw new IommufdError('EBADF', 'the pipeline is closed');
    if (this.#queued > 0) throw new IommufdError('EBUSY', 'batches are in flight: use submit()');
    return this.runNow(ops, queue);
  }

  /**
   * Runs an op list now, inline on the calling thread, whatever is queued: for the registry's
   * synchronous calls, whose ops (removals, and shadow syncs that re-read the guest's tables)
   * give the same result in any order relative to queued batches. Barriers in it complete in
   * order; returns the last one's sequence (or -1). A Crash op is EIO here.
   */
  runNow(ops: OpList, queue = 0): number {
    if (this.#closed) throw new IommufdError('EBADF', 'the pipeline is closed');
    const w = ops.words;
    let lastBarrier = -1;
    let start = 0;
    try {
      for (let i = 0; i <= ops.count; i++) {
        const end = i === ops.count;
        if (!end && w[i * OP_WORDS] !== Op.Barrier) continue;
        const { tasks, routed } = this.#route(w, start, i);
        if (routed > 0) this.#m.inlineSegments++;
        for (const t of tasks) this.#account(this.#runInline(t));
        if (!end) {
          lastBarrier = w[i * OP_WORDS + 1]!;
          this.#m.barriers++;
          this.completions$.next({ queue, seq: lastBarrier });
        }
        start = i + 1;
      }
      this.#m.batches++;
      this.#m.ops += ops.count;
      return lastBarrier;
    } finally {
      this.#metrics.next({ ...this.#m });
    }
  }

  #runInline(t: ShardTask): ShardResult {
    ownShard(this.#caches, t.shard);
    try {
      return runShardOps(this.#caches, t.shard, t.ops, t.list, t.n, () => {
        throw new IommufdError('EIO', `shard ${t.shard}: crash op`);
      });
    } finally {
      releaseShard(this.#caches, t.shard);
    }
  }

  async #runOnPool(t: ShardTask): Promise<ShardResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#pool!.run(t);
      } catch (e) {
        // The worker died (or failed) mid-batch: take the owner word back, flush everything
        // with one epoch store (what it half-did cannot linger), and run the ops again.
        // Only a worker's id: a live fill or the control plane may hold it otherwise.
        for (const c of [this.#iotlb, this.#atc, this.#config]) {
          const holder = c?.ownerOf(t.shard) ?? 0;
          if (holder >= OWNER_WORKER_BASE) reclaimShard(this.#caches, t.shard, holder);
        }
        this.#iotlb.flushAll();
        this.#atc?.flushAll();
        this.#config?.flushAll();
        this.#m.recoveries++;
        if (attempt >= this.#o.maxAttempts) {
          throw new IommufdError(
            'EIO',
            `shard ${t.shard} failed ${attempt} times (${e instanceof Error ? e.message : String(e)})`,
          );
        }
      }
    }
  }

  #account(r: ShardResult): void {
    this.#m.cleared += r.cleared;
    this.#m.unsupported += r.unsupported;
  }
}

/** Copies an index list into shared memory, so a worker reads it without a structured clone. */
function toShared(list: Int32Array): Int32Array {
  const s = new Int32Array(new SharedArrayBuffer(Math.max(4, list.byteLength)));
  s.set(list);
  return s;
}
