/**
 * The SMMUv3 stall model's held transactions (reference/viommu-queues.md §1.7; IHI0070 §3.12.2,
 * §4.7.2, §4.7.3). A transaction whose stage-1 fault is configured to stall (CD.S = 1 and
 * STE.S1STALLD = 0, or STALL_MODEL = forced; stage 2: STE.S2S) is held under a STAG, and its
 * event (Stall = 1, STAG) is written to the event queue. Software answers with CMD_RESUME (SID,
 * STAG, Retry / Terminate / Abort) or kills every held transaction of a stream with
 * CMD_STALL_TERM (SID).
 *
 * - A STAG names a transaction among the held ones of its stream: the table hands out 16-bit
 *   tags round-robin, skipping tags still held by the stream.
 * - At most IDR5.STALL_MAX transactions are held at once; a fault beyond that is not held (the
 *   unit terminates it, counted), as a device model cannot back-pressure the bus.
 * - A stall event is never lost: when the event queue is unwritable (disabled, an active abort
 *   error, or full) its record waits here, in order, and is written once the queue takes it
 *   again (`flush`, on the register model's `outQueueUpdated`). The transaction is held meanwhile.
 * - A RESUME or STALL_TERM that names no held transaction is ignored, and counted.
 */
import type { SmmuOutQueueOutcome } from './queues.js';

/** How a held transaction ends: retried, or terminated (RESUME Terminate / Abort, STALL_TERM, teardown). */
export type SmmuStallOutcome = 'retry' | 'terminate' | 'abort';

/** Counters of the stall table. */
export interface SmmuStallStats {
  /** Transactions held (stall events raised). */
  stalls: number;
  /** Held transactions resumed with Retry, and terminated (RESUME Terminate / Abort). */
  retried: number;
  terminated: number;
  /** Transactions ended by CMD_STALL_TERM. */
  stallTerms: number;
  /** RESUMEs (and STALL_TERMs) that named no held transaction. */
  ignoredResumes: number;
  ignoredStallTerms: number;
  /** Faults not held because STALL_MAX transactions already were. */
  refused: number;
  /** Stall events that waited for the event queue before being written. */
  deferredEvents: number;
}

/** A held transaction. */
interface Held {
  readonly sid: number;
  readonly stag: number;
  readonly settle: (outcome: SmmuStallOutcome) => void;
  /** Its stall event while the event queue has not taken it. */
  record: Int32Array | undefined;
}

const STAG_LIMIT = 0x10000;

/** The transactions one unit holds. */
export class SmmuStallTable {
  readonly #max: number;
  readonly #held = new Map<number, Held>();
  /** Held transactions whose event is not written yet, oldest first. */
  readonly #unwritten: Held[] = [];
  #nextStag = 0;
  readonly #stats: SmmuStallStats = {
    stalls: 0,
    retried: 0,
    terminated: 0,
    stallTerms: 0,
    ignoredResumes: 0,
    ignoredStallTerms: 0,
    refused: 0,
    deferredEvents: 0,
  };

  /** A table of at most `max` (IDR5.STALL_MAX) held transactions. */
  constructor(max: number) {
    this.#max = max;
  }

  /** The counters (a copy). */
  stats(): SmmuStallStats {
    return { ...this.#stats };
  }

  /** Transactions held now. */
  get held(): number {
    return this.#held.size;
  }

  /**
   * Holds a transaction of `sid`: returns its STAG, or -1 when STALL_MAX are held (the fault is
   * then terminated by the caller). `settle` is called once, when the transaction ends.
   */
  hold(sid: number, settle: (outcome: SmmuStallOutcome) => void): number {
    if (this.#held.size >= this.#max) {
      this.#stats.refused++;
      return -1;
    }
    let stag = this.#nextStag;
    while (this.#held.has(key(sid, stag))) stag = (stag + 1) % STAG_LIMIT;
    this.#nextStag = (stag + 1) % STAG_LIMIT;
    this.#held.set(key(sid, stag), { sid, stag, settle, record: undefined });
    this.#stats.stalls++;
    return stag;
  }

  /**
   * The event of (`sid`, `stag`) found the event queue unwritable (`retry`): keeps a copy of
   * `record` to write later, after any other waiting one.
   */
  defer(sid: number, stag: number, record: Int32Array): void {
    const h = this.#held.get(key(sid, stag));
    if (h === undefined) return;
    h.record = record.slice();
    this.#unwritten.push(h);
    this.#stats.deferredEvents++;
  }

  /** Writes waiting stall events, in order, while `push` takes them; returns how many it wrote. */
  flush(push: (record: Int32Array) => SmmuOutQueueOutcome): number {
    const q = this.#unwritten;
    let n = 0;
    while (n < q.length && push(q[n]!.record!) !== 'retry') {
      q[n]!.record = undefined;
      n++;
    }
    q.splice(0, n);
    return n;
  }

  /** CMD_RESUME: ends (`sid`, `stag`) with `outcome`; false (counted) when nothing is held under it. */
  resume(sid: number, stag: number, outcome: SmmuStallOutcome): boolean {
    const h = this.#held.get(key(sid, stag));
    if (h === undefined) {
      this.#stats.ignoredResumes++;
      return false;
    }
    if (outcome === 'retry') this.#stats.retried++;
    else this.#stats.terminated++;
    this.#end(h, outcome);
    return true;
  }

  /** CMD_STALL_TERM: terminates every transaction held for `sid`; returns how many. */
  terminateStream(sid: number): number {
    let n = 0;
    for (const h of [...this.#held.values()]) {
      if (h.sid !== sid) continue;
      this.#end(h, 'abort');
      n++;
    }
    if (n === 0) this.#stats.ignoredStallTerms++;
    this.#stats.stallTerms += n;
    return n;
  }

  /** Terminates everything held (the unit closes). */
  terminateAll(): void {
    for (const h of [...this.#held.values()]) this.#end(h, 'abort');
  }

  #end(h: Held, outcome: SmmuStallOutcome): void {
    this.#held.delete(key(h.sid, h.stag));
    if (h.record !== undefined) {
      // Its event was never written: it goes with the transaction.
      h.record = undefined;
      this.#unwritten.splice(this.#unwritten.indexOf(h), 1);
    }
    h.settle(outcome);
  }
}

function key(sid: number, stag: number): number {
  return sid * STAG_LIMIT + stag;
}
