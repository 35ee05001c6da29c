import { BehaviorSubject, concatMap, from, Subject, type Observable, type Subscription } from 'rxjs';
import type { Piscina } from 'piscina';
import { runShardOps, type Iotlb, type IotlbHandles, type ShardResult } from '../cache/index.js';
import { Op, OP_WORDS, opAddr, type OpList } from '../ops/index.js';
import { IommufdError } from '../util/errors.js';
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
  /** IOTLB entries cleared. */
  cleared: number;
  /** Config-cache and ATC ops (not run until those caches exist). */
  unsupported: number;
  /** Shard tasks run again after their worker died. */
  recoveries: number;
}

/** Options of a pipeline. */
export interface PipelineOptions {
  /** Worker threads (0: everything inline). Default 2. */
  threads?: number;
  /** A segment with fewer routed ops than this runs inline on the calling thread. Default 256. */
  inlineThreshold?: number;
  /** Batches accepted but not finished before `submit` waits for room. Default 16. */
  maxQueued?: number;
  /** Attempts of a shard task before the batch fails with the vendor's error. Default 3. */
  maxAttempts?: number;
  /** Ranges of more 2 MiB regions than this become a flush of their tag. Default 512. */
  maxRegions?: number;
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
  readonly #o: Required<PipelineOptions>;
  #queued = 0;
  #room: (() => void)[] = [];
  #idle: Promise<void> = Promise.resolve();
  #markIdle: () => void = () => {};
  #closed = false;
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

  /** Creates a pipeline over an IOTLB (`handles` and geometry let the workers attach to it). */
  constructor(
    iotlb: Iotlb,
    shared: { handles: IotlbHandles; entries: number; shards: number },
    opts: PipelineOptions = {},
  ) {
    this.#iotlb = iotlb;
    this.#o = { threads: 2, inlineThreshold: 256, maxQueued: 16, maxAttempts: 3, maxRegions: 512, ...opts };
    this.#metrics = new BehaviorSubject({ ...this.#m });
    this.metrics$ = this.#metrics.asObservable();
    this.#pool =
      this.#o.threads > 0
        ? makePool<ShardTask, ShardResult>('shard', {
            workerData: { iotlb: shared },
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
    while (this.#queued >= this.#o.maxQueued) await new Promise<void>((r) => this.#room.push(r));
    if (this.#queued++ === 0) this.#idle = new Promise((r) => (this.#markIdle = r));
    return new Promise<number>((resolve, reject) => this.#batches.next({ ops, queue, resolve, reject }));
  }

  /** Waits for work in flight, stops the workers, and completes the observables. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#idle;
    this.#batches.complete();
    this.#sub.unsubscribe();
    await this.#pool?.destroy();
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
    const shards = this.#iotlb.shards;
    const lists: number[][] = Array.from({ length: shards }, () => []);
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
        case Op.IotlbAsid: // no ASID dimension in host domains yet: the whole tag, an over-invalidation
          this.#iotlb.flushTag(tag);
          this.#m.epochFlushes++;
          break;
        case Op.IotlbRange:
        case Op.IotlbRangeAllAsid: {
          const pages = w[at + 6]!;
          const addr = opAddr(w, i);
          const first = Math.floor(addr / 2097152);
          const regions = Math.ceil((addr + pages * 4096) / 2097152) - first;
          if (pages === 0xffffffff || regions > this.#o.maxRegions) {
            this.#iotlb.flushTag(tag);
            this.#m.overInvalidations++;
            break;
          }
          let last = -1;
          for (let r = 0; r < regions; r++) {
            const s = this.#iotlb.shardOf(tag, (first + r) * 2097152);
            if (s === last || lists[s]!.at(-1) === i) continue;
            lists[s]!.push(i);
            last = s;
            routed++;
          }
          break;
        }
        case Op.Crash:
          lists[w[at + 2]! % shards]!.push(i);
          routed++;
          break;
        default:
          // Config and ATC ops, shadow sync: counted by the shard that would run them.
          lists[0]!.push(i);
          routed++;
      }
    }
    if (routed === 0) return;
    const tasks = lists
      .map((l, shard) => ({ shard, ops: w, list: Int32Array.from(l), n: l.length }))
      .filter((t) => t.n > 0);
    if (this.#pool === undefined || routed < this.#o.inlineThreshold) {
      this.#m.inlineSegments++;
      for (const t of tasks) this.#account(this.#runInline(t));
      return;
    }
    this.#m.poolSegments++;
    const results = await Promise.all(tasks.map((t) => this.#runOnPool({ ...t, list: toShared(t.list) })));
    for (const r of results) this.#account(r);
  }

  #runInline(t: ShardTask): ShardResult {
    this.#iotlb.own(t.shard);
    try {
      return runShardOps(this.#iotlb, t.shard, t.ops, t.list, t.n, () => {
        throw new IommufdError('EIO', `shard ${t.shard}: crash op`);
      });
    } finally {
      this.#iotlb.release(t.shard);
    }
  }

  async #runOnPool(t: ShardTask): Promise<ShardResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#pool!.run(t);
      } catch (e) {
        // The worker died (or failed) mid-batch: take the owner word back, flush everything
        // with one epoch store (what it half-did cannot linger), and run the ops again.
        const holder = this.#iotlb.ownerOf(t.shard);
        if (holder !== 0) this.#iotlb.reclaimOwner(t.shard, holder);
        this.#iotlb.flushAll();
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
