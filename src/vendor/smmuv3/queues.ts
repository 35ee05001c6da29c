import { GERROR, Q_INDEX } from './regs-defs.js';
import { queueEmpty, queueFull, queueIncrement, type SmmuQueueRegisters } from './regs-queue.js';
import type { SmmuOutQueueKind, SmmuRegisters } from './regs.js';
import { EVT_WORDS, eventIsStall, PRIQ_WORDS, priRequestIsLast } from './records.js';

export {
  decodeEvent,
  decodePriRequest,
  encodeEvent,
  encodePriRequest,
  EVT_CLASS,
  EVT_FIELD,
  EVT_ID,
  EVT_WORDS,
  PRIQ_FIELD,
  PRIQ_WORDS,
  type SmmuEvent,
  type SmmuEventRecord,
  type SmmuPriRecord,
  type SmmuPriRequest,
} from './records.js';

/**
 * Writes one record into guest memory: `words` (little-endian 32-bit words) at guest-physical
 * `addr`. Returns false if the write aborted (an external abort on the queue).
 */
export type SmmuGuestWrite = (addr: number, words: Int32Array) => boolean;

/**
 * What became of a record handed to `SmmuOutQueue.push`:
 * - `written`: it is in the queue and PROD moved past it;
 * - `overflow`: discarded because the queue is full (the event queue) or full or in an
 *   unacknowledged overflow condition (the PRI queue); PROD.OVFLG was toggled if the overflow
 *   condition was not already present. For a PRI request with Last = 1 the SMMU then sends an
 *   automatic PRG response (Success, or Failure if the STE check fails; IHI0070 §8.1);
 * - `disabled`: the queue is disabled (EVTQEN = 0; PRIQEN = 0 or SMMUEN = 0): nothing written. A PRI
 *   request gets an automatic Response Failure (IHI0070 §8.2);
 * - `discarded`: an unacknowledged GERROR.EVTQ_ABT_ERR / PRIQ_ABT_ERR makes the queue unwritable
 *   (for a PRI request: automatic Response Failure);
 * - `retry`: a stall event (Stall = 1) found the event queue unwritable. Stall records are never
 *   discarded and never overflow: keep it and push it again once the queue is writable (the
 *   `outQueueUpdated` hook says when);
 * - `abort`: the guest write aborted (synchronous abort): PROD did not move and the queue's
 *   GERROR.*_ABT_ERR is now active; the record is lost.
 */
export type SmmuOutQueueOutcome = 'written' | 'overflow' | 'disabled' | 'discarded' | 'retry' | 'abort';

/** Per-queue constants. */
const OUT_QUEUE = {
  evtq: { words: EVT_WORDS, abort: GERROR.EVTQ_ABT_ERR },
  priq: { words: PRIQ_WORDS, abort: GERROR.PRIQ_ABT_ERR },
} as const;

/**
 * The SMMU's writer for an output queue in guest memory: the event queue (32-byte records) or the
 * PRI queue (16-byte records). A record goes to the slot PROD names, then PROD advances with its
 * wrap bit. The queue is writable while enabled, not full and without an active abort error
 * (IHI0070 §7.2.1); an event that finds it full is lost and toggles PROD.OVFLG if OVFLG equals
 * CONS.OVACKFLG (§7.4). The PRI queue additionally accepts nothing while its overflow condition is
 * unacknowledged (§8.1).
 *
 * Interrupts (§3.18.2): the event queue interrupt fires when the queue goes from empty to
 * non-empty; the PRI queue interrupt does the same, or with PRIQ_IRQ_CFG2.LO = 1 fires for each
 * request with Last = 1, written or lost to overflow. They go out through the register model's
 * `interrupts$` (wired, or MSI per IRQ_CTRL and *_IRQ_CFG).
 */
export class SmmuOutQueue {
  /** Which queue. */
  readonly kind: SmmuOutQueueKind;
  /** A preallocated record (8 words for events, 4 for PRI requests) to encode into and push. */
  readonly record: Int32Array;
  readonly #regs: SmmuRegisters;
  readonly #queue: SmmuQueueRegisters;
  readonly #write: SmmuGuestWrite;
  readonly #abortBit: number;

  constructor(regs: SmmuRegisters, kind: SmmuOutQueueKind, write: SmmuGuestWrite) {
    this.kind = kind;
    this.record = new Int32Array(OUT_QUEUE[kind].words);
    this.#regs = regs;
    this.#queue = kind === 'evtq' ? regs.evtq : regs.priq;
    this.#write = write;
    this.#abortBit = OUT_QUEUE[kind].abort;
  }

  /** Writes `record` (default: `this.record`) at PROD; see SmmuOutQueueOutcome. */
  push(record: Int32Array = this.record): SmmuOutQueueOutcome {
    const q = this.#queue;
    const regs = this.#regs;
    const priq = this.kind === 'priq';
    const stall = !priq && eventIsStall(record);
    const last = priq && priRequestIsLast(record);
    if (!q.enabled) return stall ? 'retry' : 'disabled';
    if ((regs.gerrorActive & this.#abortBit) !== 0) return stall ? 'retry' : 'discarded';
    const log2Size = q.log2Size;
    const prod = q.prod;
    const cons = q.cons;
    const overflowed = ((prod ^ cons) & Q_INDEX.OVF) !== 0;
    if (queueFull(prod, cons, log2Size) || (priq && overflowed)) {
      if (stall) return 'retry';
      if (!overflowed) q.setProd(prod ^ Q_INDEX.OVF);
      if (last && regs.priqLastOnly) regs.raiseQueueInterrupt('priq');
      return 'overflow';
    }
    if (!this.#write(q.entryAddress(prod), record)) {
      regs.raiseGerror(this.#abortBit);
      return 'abort';
    }
    const wasEmpty = queueEmpty(prod, cons, log2Size);
    q.setProd((prod & Q_INDEX.OVF) | queueIncrement(prod, log2Size));
    const notify = priq && regs.priqLastOnly ? last : wasEmpty;
    if (notify) regs.raiseQueueInterrupt(this.kind);
    return 'written';
  }
}
