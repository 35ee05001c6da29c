/**
 * A device's DMA engine with recoverable I/O page faults, without a Promise or an object per
 * transfer: the allocation-free counterpart of `Iommufd.dma`, for load tests and VMM simulators
 * that move many transfers. A transfer's pages are translated; pages whose translation is
 * Pending become page requests on the FAULT object (one PRI group per transfer, LAST_PAGE on its
 * last page, or one stall tag per page); the transfer waits, holding its tags, and is retried
 * once every request is answered SUCCESS, or fails on INVALID. Completions go to a callback or a
 * completion ring, as (transfer id, status) pairs.
 *
 * Retries run in {@link DmaEngine.pump}: called by the embedder, or (by default) in a microtask
 * queued when the first answer of a burst arrives, so an answer never re-enters the translator
 * from inside the responder's write.
 */
import { IommufdError } from '../util/errors.js';
import { MOCK_PAGE_SIZE, TranslateFault } from '../pgtable/index.js';
import type { Translator } from '../translate/index.js';
import { NO_PASID } from '../translate/index.js';
import { PAGE_RESPONSE, pgfaultPerm, reportPageFault, reportPageRequest } from './fault.js';
import type { DeviceObject } from './objects.js';
import type { IopfModel, RequestTags, TagStallWaiter, TagWaiter } from './page-requests.js';

/** Transfer statuses besides 0 (done) and the negative TranslateFault codes of a fault that no page request can resolve. */
export const DMA_STATUS = {
  /** The transfer completed. */
  Ok: 0,
  /** A page request was answered INVALID (by the handler, or by an auto-response on detach, replace or teardown). */
  Invalid: -32,
  /** `maxRetries` rounds of SUCCESS answers did not make every page translate. */
  RetriesExhausted: -33,
  /** A page translated to an address outside physical memory. */
  OutsideMemory: -34,
} as const;

/** Options of {@link DmaEngine}. */
export interface DmaEngineOptions {
  /** The PASID the engine's transfers carry (default none: the RID). */
  pasid?: number;
  /** Transfers in flight at most (default 256, at most 65536). */
  depth?: number;
  /** Rounds of page requests per transfer before it fails with RetriesExhausted (default 8). */
  maxRetries?: number;
  /** Retry answered transfers in a microtask (default true); false: only {@link DmaEngine.pump} retries. */
  autoPump?: boolean;
  /** Called at each completion with the transfer id and its status (the id is already free: the callback may submit). Without it, completions queue for {@link DmaEngine.reap}. */
  onComplete?: (tx: number, status: number) => void;
}

/** Totals of a {@link DmaEngine}. */
export interface DmaEngineStats {
  /** Transfers accepted by `submit`. */
  submitted: number;
  /** Transfers that completed with status 0. */
  completed: number;
  /** Transfers that completed with a failure status. */
  failed: number;
  /** Pages sent as page requests. */
  requests: number;
  /** Rounds retried after answers. */
  retries: number;
  /** Transfers that had to wait for a free request tag. */
  tagStalls: number;
}

/** What the engine needs from its fd. */
export interface DmaEnginePorts {
  /** The device, its id in the fd, and its data-plane slot. */
  dev: DeviceObject;
  devId: number;
  slot: number;
  /** PRI groups or stall tags. */
  model: IopfModel;
  /** The translator its transfers go through. */
  translator: Translator;
  /** The fd's request tags (shared with `fd.dma` and `translate`). */
  tags: RequestTags;
  /** Physical memory, for the data. */
  u8: Uint8Array;
  /** Throws EBADF (fd closed) or ENOENT (device unbound). */
  live: () => void;
}

const MAX_BYTES = 1 << 20;
/** Translation chunks: 4 KiB, or 2 KiB for the mock format's pages (requests always name 4 KiB pages). */
const MAX_CHUNKS = MAX_BYTES / MOCK_PAGE_SIZE + 1;
const MAX_IOVA = 2 ** 53 - 1;
const FREE = 0;
const SENDING = 1;
const WAITING = 2;
const RESUMABLE = 3;
const BLOCKED = 4;
const DONE = 5;

/** A device's DMA engine with recoverable faults (see the module comment). Create one with `Iommufd.dmaEngine`. */
export class DmaEngine implements TagWaiter, TagStallWaiter {
  /** Totals. */
  readonly stats: DmaEngineStats = { submitted: 0, completed: 0, failed: 0, requests: 0, retries: 0, tagStalls: 0 };
  readonly #p: DmaEnginePorts;
  readonly #pasid: number;
  readonly #depth: number;
  readonly #maxRetries: number;
  readonly #autoPump: boolean;
  readonly #onComplete: ((tx: number, status: number) => void) | undefined;
  readonly #iova: Float64Array;
  readonly #access: Uint8Array;
  readonly #state: Uint8Array;
  readonly #round: Int32Array;
  readonly #wait: Int32Array;
  readonly #status: Int32Array;
  readonly #data: (Uint8Array | undefined)[];
  readonly #free: Int32Array;
  #freeTop: number;
  /** Transfers to retry, and transfers waiting for a tag: FIFO rings of `#depth` ids. */
  readonly #resume: Int32Array;
  #resumeHead = 0;
  #resumeTail = 0;
  readonly #blocked: Int32Array;
  #blockedHead = 0;
  #blockedTail = 0;
  /** Completions not reaped: (id, status) pairs. */
  readonly #cq: Int32Array;
  #cqHead = 0;
  #cqTail = 0;
  /** The transfer each request tag was taken for. */
  readonly #tagTx = new Int32Array(1 << 16);
  /** Per-attempt scratch: each page's physical address, and the pages to request. */
  readonly #pa = new Float64Array(MAX_CHUNKS);
  readonly #want = new Float64Array(MAX_CHUNKS);
  /** Bytes per translation: the smallest page of the device's formats. */
  readonly #chunk: number;
  #inFlight = 0;
  #scheduled = false;
  #closed = false;
  readonly #pumpTask = (): void => {
    this.#scheduled = false;
    this.pump();
  };
  #idle: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** The first error an `onComplete` callback threw (reported by {@link idle}). */
  #error: unknown = undefined;
  #failed = false;

  /** An engine for the device of `ports` (see `Iommufd.dmaEngine`). */
  constructor(ports: DmaEnginePorts, opts: DmaEngineOptions = {}) {
    this.#p = ports;
    this.#chunk = ports.dev.kind === 'mock' ? MOCK_PAGE_SIZE : 4096;
    this.#pasid = opts.pasid ?? NO_PASID;
    const depth = opts.depth ?? 256;
    this.#depth = depth;
    this.#maxRetries = opts.maxRetries ?? 8;
    this.#autoPump = opts.autoPump ?? true;
    this.#onComplete = opts.onComplete;
    this.#iova = new Float64Array(depth);
    this.#access = new Uint8Array(depth);
    this.#state = new Uint8Array(depth);
    this.#round = new Int32Array(depth);
    this.#wait = new Int32Array(depth);
    this.#status = new Int32Array(depth);
    this.#data = new Array<Uint8Array | undefined>(depth).fill(undefined);
    this.#free = new Int32Array(depth);
    for (let i = 0; i < depth; i++) this.#free[i] = depth - 1 - i;
    this.#freeTop = depth;
    this.#resume = new Int32Array(depth);
    this.#blocked = new Int32Array(depth);
    this.#cq = new Int32Array(2 * depth);
  }

  /** Transfers submitted and not yet completed (waiting for answers, retries or tags). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Completions waiting for {@link reap}. */
  get completions(): number {
    return this.#cqTail - this.#cqHead;
  }

  /**
   * Starts a transfer: the device writes `data` at `iova` (access with Access.Write) or reads
   * `data.length` bytes from there into `data` (otherwise), carrying `access`'s Priv and Exec
   * bits. Returns the transfer's id, or -1 when `depth` transfers are in flight. The transfer may
   * complete before this returns (every page translated). `data` is the transfer's until it
   * completes. EINVAL for a bad address, access or length (1 byte to 1 MiB).
   */
  submit(iova: number, access: number, data: Uint8Array): number {
    if (this.#closed) throw new IommufdError('EBADF', 'the DMA engine is closed');
    this.#p.live();
    if (!(data instanceof Uint8Array)) throw new IommufdError('EINVAL', 'data must be a Uint8Array');
    const len = data.length;
    if (!Number.isSafeInteger(iova) || iova < 0 || iova > MAX_IOVA - Math.max(len - 1, 0))
      throw new IommufdError('EINVAL', `iova must be an integer with the transfer below 2^53, got ${String(iova)}`);
    if ((access & 15) !== access || access === 0)
      throw new IommufdError('EINVAL', `access must be a non-empty set of Access bits, got ${String(access)}`);
    if (len === 0 || len > MAX_BYTES) throw new IommufdError('EINVAL', `a transfer is 1 byte to 1 MiB, got ${len}`);
    if (this.#freeTop === 0) return -1;
    const tx = this.#free[--this.#freeTop]!;
    this.#iova[tx] = iova;
    this.#access[tx] = access;
    this.#data[tx] = data;
    this.#round[tx] = 0;
    this.#wait[tx] = 0;
    this.#status[tx] = 0;
    this.#inFlight++;
    this.stats.submitted++;
    this.#attempt(tx);
    return tx;
  }

  /**
   * Retries every answered transfer, and sends the requests of transfers that waited for a tag.
   * Returns the transfers completed meanwhile. Called for you in a microtask unless `autoPump`
   * is false.
   */
  pump(): number {
    const before = this.stats.completed + this.stats.failed;
    const mask = this.#depth;
    while (this.#resumeHead !== this.#resumeTail) {
      const tx = this.#resume[this.#resumeHead % mask]!;
      this.#resumeHead++;
      if (this.#status[tx] !== 0) this.#complete(tx, this.#status[tx]!);
      else {
        this.stats.retries++;
        this.#attempt(tx);
      }
    }
    while (this.#blockedHead !== this.#blockedTail && this.#p.tags.hasFree(this.#p.devId, this.#p.model)) {
      const tx = this.#blocked[this.#blockedHead % mask]!;
      this.#blockedHead++;
      this.#attempt(tx);
    }
    if ((this.#inFlight === 0 || this.#failed) && this.#idle.length > 0) {
      const waiting = this.#idle;
      this.#idle = [];
      for (const w of waiting) {
        if (this.#failed) w.reject(this.#errorObject());
        else w.resolve();
      }
    }
    return this.stats.completed + this.stats.failed - before;
  }

  /**
   * Moves up to `out.length / 2` completions into `out` as (transfer id, status) pairs and frees
   * their ids; returns how many. Status 0 is success; see {@link DMA_STATUS} and TranslateFault.
   */
  reap(out: Int32Array): number {
    if (!(out instanceof Int32Array)) throw new IommufdError('EINVAL', 'reap needs an Int32Array');
    let n = 0;
    const cap = this.#depth;
    while (this.#cqHead !== this.#cqTail && 2 * n + 1 < out.length) {
      const at = (this.#cqHead % cap) * 2;
      const tx = this.#cq[at]!;
      out[2 * n] = tx;
      out[2 * n + 1] = this.#cq[at + 1]!;
      this.#cqHead++;
      this.#release(tx);
      n++;
    }
    return n;
  }

  /**
   * Resolves once nothing is in flight (pumping as answers arrive); rejects with the first error
   * an `onComplete` callback threw (the engine goes on; the error is not thrown into a microtask).
   */
  idle(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#errorObject());
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.#idle.push({ resolve, reject }));
  }

  /** No more submissions (EBADF). Transfers in flight still complete as their answers arrive (and `pump` still runs). */
  close(): void {
    this.#closed = true;
  }

  /** A request tag of this engine was answered (RequestTags calls this). */
  answered(_devId: number, tag: number, code: number): void {
    const tx = this.#tagTx[tag]!;
    if (code !== PAGE_RESPONSE.Success) this.#status[tx] = DMA_STATUS.Invalid;
    if (--this.#wait[tx]! === 0 && this.#state[tx] === WAITING) this.#toResume(tx);
  }

  /** A tag of the device came back while transfers of this engine waited for one (RequestTags calls this). */
  tagFreed(): void {
    if (this.#blockedHead !== this.#blockedTail) this.#schedule();
  }

  // ---- internals -----------------------------------------------------------------------------

  /** The callback's error, as an Error. */
  #errorObject(): Error {
    const e = this.#error;
    return e instanceof Error ? e : new Error(`onComplete threw ${String(e)}`);
  }

  /** Translates every page of `tx`; completes it, fails it, or sends its page requests. */
  #attempt(tx: number): void {
    const p = this.#p;
    const iova = this.#iova[tx]!;
    const data = this.#data[tx]!;
    const len = data.length;
    const access = this.#access[tx]!;
    const pasid = this.#pasid;
    const step = this.#chunk;
    const first = iova - (iova % step);
    const chunks = Math.ceil((iova + len - first) / step);
    let want = 0;
    for (let i = 0; i < chunks; i++) {
      const at = first + i * step;
      const r = p.translator.translate(p.slot, i === 0 ? iova : at, access, pasid);
      if (r >= 0) this.#pa[i] = r;
      else if (r === TranslateFault.Pending) {
        // Requests name 4 KiB pages: two 2 KiB chunks of one page make one request.
        const page = at - (at % 4096);
        if (want === 0 || this.#want[want - 1] !== page) this.#want[want++] = page;
      } else {
        this.#complete(tx, r);
        return;
      }
    }
    if (want === 0) {
      this.#transfer(tx, iova, data, chunks, access);
      return;
    }
    if (this.#round[tx]! >= this.#maxRetries) {
      this.#complete(tx, DMA_STATUS.RetriesExhausted);
      return;
    }
    this.#send(tx, want, access);
  }

  /** Sends the page requests of `tx`'s `want` pages (in `#want`), or parks it until a tag is free. */
  #send(tx: number, want: number, access: number): void {
    const p = this.#p;
    const perm = pgfaultPerm(access);
    const pasid = this.#pasid;
    this.#state[tx] = SENDING;
    let sent = 0;
    if (p.model === 'pri') {
      const tag = p.tags.take(p.devId, 'pri', pasid, this);
      if (tag >= 0) {
        this.#tagTx[tag] = tx;
        this.#wait[tx] = this.#wait[tx]! + 1;
        sent = want;
        if (want === 1) {
          if (!reportPageRequest(p.dev, pasid, tag, perm, this.#want[0]!)) this.#unsent(tx, tag);
        } else {
          try {
            for (let i = 0; i < want; i++)
              reportPageFault(p.dev, pasid, { grpid: tag, perm, addr: BigInt(this.#want[i]!), last: i === want - 1 });
          } catch {
            // ENODEV before any page was taken: nothing fault-capable is attached there now.
            this.#unsent(tx, tag);
          }
        }
      }
    } else {
      for (; sent < want; sent++) {
        const tag = p.tags.take(p.devId, 'stall', pasid, this);
        if (tag < 0) break;
        this.#tagTx[tag] = tx;
        this.#wait[tx] = this.#wait[tx]! + 1;
        if (!reportPageRequest(p.dev, pasid, tag, perm, this.#want[sent]!)) this.#unsent(tx, tag);
      }
    }
    if (sent === 0) {
      // Every tag is outstanding: the device sends nothing more until one comes back (from
      // this engine's requests or anyone else's).
      this.stats.tagStalls++;
      this.#state[tx] = BLOCKED;
      this.#blocked[this.#blockedTail % this.#depth] = tx;
      this.#blockedTail++;
      p.tags.waitForTag(p.devId, this);
      return;
    }
    this.stats.requests += sent;
    this.#round[tx] = this.#round[tx]! + 1;
    // Answers may have come during the reports (a synchronous handler on faults$).
    if (this.#wait[tx] === 0) this.#toResume(tx);
    else this.#state[tx] = WAITING;
  }

  /** A request whose report found nothing fault-capable attached (raced a detach): fail the transfer. */
  #unsent(tx: number, tag: number): void {
    this.#p.tags.give(this.#p.devId, tag);
    this.#wait[tx] = this.#wait[tx]! - 1;
    this.#status[tx] = TranslateFault.NotMapped;
  }

  /** Moves the data of `tx`, whose `chunks` translated to `#pa`, and completes it (nothing moves if any chunk is outside memory). */
  #transfer(tx: number, iova: number, data: Uint8Array, chunks: number, access: number): void {
    const u8 = this.#p.u8;
    const step = this.#chunk;
    const write = (access & 2) !== 0; // Access.Write
    const len = data.length;
    for (let i = 0, off = 0; i < chunks; i++) {
      const n = Math.min(len - off, step - ((iova + off) % step));
      if (this.#pa[i]! + n > u8.length) {
        this.#complete(tx, DMA_STATUS.OutsideMemory);
        return;
      }
      off += n;
    }
    for (let i = 0, off = 0; i < chunks; i++) {
      const n = Math.min(len - off, step - ((iova + off) % step));
      const pa = this.#pa[i]!;
      if (write) {
        if (chunks === 1) u8.set(data, pa);
        else u8.set(data.subarray(off, off + n), pa);
      } else for (let b = 0; b < n; b++) data[off + b] = u8[pa + b]!;
      off += n;
    }
    this.#complete(tx, 0);
  }

  #toResume(tx: number): void {
    this.#state[tx] = RESUMABLE;
    this.#resume[this.#resumeTail % this.#depth] = tx;
    this.#resumeTail++;
    this.#schedule();
  }

  #schedule(): void {
    if (!this.#autoPump || this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#pumpTask);
  }

  #complete(tx: number, status: number): void {
    this.#state[tx] = DONE;
    this.#inFlight--;
    if (status === 0) this.stats.completed++;
    else this.stats.failed++;
    const cb = this.#onComplete;
    if (cb !== undefined) {
      // The id is free before the callback runs, so the callback may submit the next transfer.
      this.#release(tx);
      try {
        cb(tx, status);
      } catch (e) {
        if (!this.#failed) {
          this.#failed = true;
          this.#error = e;
        }
      }
      return;
    }
    const at = (this.#cqTail % this.#depth) * 2;
    this.#cq[at] = tx;
    this.#cq[at + 1] = status;
    this.#cqTail++;
  }

  #release(tx: number): void {
    this.#state[tx] = FREE;
    this.#data[tx] = undefined;
    this.#free[this.#freeTop++] = tx;
  }
}
