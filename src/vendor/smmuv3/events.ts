/**
 * The SMMUv3 unit's fault reporting: turns a configuration-fetch failure (SmmuConfig) or a page
 * walk fault (WalkFault) into an event record and writes it to the guest's event queue through
 * SmmuOutQueue (which keeps PROD, OVFLG and the queue interrupt). Allocation-free: one mutable
 * event and one record buffer are reused.
 *
 * Which faults are recorded (reference/config-formats.md §5.1, viommu-queues.md §1.6, QEMU
 * `smmuv3_translate`): configuration errors always, except C_BAD_STREAMID for a StreamID beyond
 * the stream table without CR2.RECINVSID; stage-1 translation faults when CD.R is set, stage-2
 * ones when STE.S2R is set; F_WALK_EABT always. A terminated transaction that is not recorded is
 * still counted. The event of a stalled transaction (Stall = 1, STAG; stall.ts) is always
 * recorded: software must see it to resume the transaction.
 */
import { SMMU_EVT } from '../../pgtable/arm/desc.js';
import type { WalkFault } from '../../pgtable/types.js';
import { Access } from '../../pgtable/types.js';
import { SmmuOutQueue, type SmmuGuestWrite, type SmmuOutQueueOutcome } from './queues.js';
import { encodeEvent, type SmmuEvent } from './records.js';
import type { SmmuRegisters } from './regs.js';
import type { SmmuConfig } from './resolve-config.js';
import { EVT_CLASS, SMMU_CFG_EVT } from './resolve-events.js';

/** Counters of the event writer. */
export interface SmmuEventStats {
  /** Events written to the event queue. */
  written: number;
  /** Events lost because the queue was full (PROD.OVFLG toggled on the first of a run). */
  overflows: number;
  /** Events not written: the queue disabled, its abort error active, or the write aborted. */
  dropped: number;
  /** Faults that the configuration says not to record (CD.R = 0, STE.S2R = 0, RECINVSID = 0). */
  suppressed: number;
}

/**
 * A recoverable translation fault of one page as the unit captured it (F_TRANSLATION, F_ADDR_SIZE,
 * F_ACCESS or F_PERMISSION): what a stall event or a page request reports of it.
 */
export interface SmmuPageFault {
  /** The faulting address. */
  iova: number;
  /** Access bits of the transaction. */
  access: number;
  /** Event number (EVT_ID). */
  type: number;
  /** The fault is at stage 2. */
  stage2: boolean;
  /** CLASS of a stage-2 fault (EVT_CLASS). */
  faultClass: number;
  /** The IPA of a stage-2 fault. */
  ipa: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Writes fault events of one unit to its event queue. */
export class SmmuEventWriter {
  readonly #queue: SmmuOutQueue;
  readonly #regs: SmmuRegisters;
  readonly #e: Mutable<SmmuEvent> = { type: 0, sid: 0 };
  readonly #stats: SmmuEventStats = { written: 0, overflows: 0, dropped: 0, suppressed: 0 };

  /** A writer into `regs`' event queue; `write` stores a record in guest memory (false: abort). */
  constructor(regs: SmmuRegisters, write: SmmuGuestWrite) {
    this.#regs = regs;
    this.#queue = new SmmuOutQueue(regs, 'evtq', write);
  }

  /** The counters (a copy). */
  stats(): SmmuEventStats {
    return { ...this.#stats };
  }

  /**
   * Records the configuration event of a failed fetch for (`sid`, `ssid` or -1), unless it is a
   * C_BAD_STREAMID for a StreamID beyond the table with CR2.RECINVSID clear, or a stage-2 fault of
   * a nested CD fetch without STE.S2R (`cfg.record` = 0).
   */
  configFault(sid: number, ssid: number, cfg: SmmuConfig, iova: number, access: number): void {
    const type = cfg.event;
    if (type === 0) return;
    if (type === SMMU_CFG_EVT.C_BAD_STREAMID && !this.#regs.recordInvalidSid) {
      this.#stats.suppressed++;
      return;
    }
    if (cfg.record === 0) {
      this.#stats.suppressed++;
      return;
    }
    const e = this.#begin(type, sid, ssid, access);
    if (type === SMMU_CFG_EVT.F_STE_FETCH || type === SMMU_CFG_EVT.F_CD_FETCH) e.address2 = cfg.fetchAddr;
    if (cfg.stage2 !== 0) {
      // A stage-2 fault of a nested CD fetch: S2 = 1, CLASS = CD, the IPA of the fetch.
      e.stage2 = true;
      e.class = cfg.eventClass;
      e.inputAddress = iova;
      e.address2 = cfg.ipa;
    }
    this.#push();
  }

  /**
   * Records the walk fault in `f` for a transaction of (`sid`, `ssid` or -1) at `iova`. `recordS1`
   * and `recordS2` are CD.R and STE.S2R of the configuration; `stage2Only` says the walk was a
   * stage-2 walk of the input address (no stage 1): its faults are stage-2 faults.
   */
  walkFault(
    sid: number,
    ssid: number,
    iova: number,
    access: number,
    f: WalkFault,
    recordS1: boolean,
    recordS2: boolean,
    stage2Only: boolean,
  ): void {
    const type = f.words[4]!;
    if (type === 0) return;
    const s2 = stage2Only || f.s2 !== 0;
    const always = type === SMMU_EVT.F_WALK_EABT;
    if (!always && !(s2 ? recordS2 : recordS1)) {
      this.#stats.suppressed++;
      return;
    }
    const e = this.#begin(type, sid, ssid, access);
    e.stage2 = s2;
    e.class = stage2Only ? EVT_CLASS.IN : f.s2 !== 0 ? f.faultClass : EVT_CLASS.IN;
    e.inputAddress = iova;
    if (type !== SMMU_EVT.F_WALK_EABT && s2) e.address2 = stage2Only ? iova : f.ipa;
    this.#push();
  }

  /**
   * Writes the event of a stalled transaction (Stall = 1, `stag`) of (`sid`, `ssid` or -1). It is
   * written whatever CD.R or STE.S2R say: software must see it to resume the transaction. On
   * `retry` the encoded record is in {@link record}, for {@link pushRecord} once the queue is
   * writable again.
   */
  stallFault(sid: number, ssid: number, stag: number, f: SmmuPageFault): SmmuOutQueueOutcome {
    const e = this.#begin(f.type, sid, ssid, f.access);
    e.stag = stag;
    e.stage2 = f.stage2;
    e.class = f.stage2 ? f.faultClass : EVT_CLASS.IN;
    e.inputAddress = f.iova;
    if (f.stage2) e.address2 = f.ipa;
    return this.#push();
  }

  /** The record last encoded (valid until the next event). */
  get record(): Int32Array {
    return this.#queue.record;
  }

  /** Pushes an already encoded record again (a stall event that found the queue unwritable). */
  pushRecord(words: Int32Array): SmmuOutQueueOutcome {
    return this.#count(this.#queue.push(words));
  }

  #begin(type: number, sid: number, ssid: number, access: number): Mutable<SmmuEvent> {
    const e = this.#e;
    e.type = type;
    e.sid = sid;
    e.ssid = ssid >= 0 ? ssid : undefined;
    e.stag = undefined;
    e.privileged = (access & Access.Priv) !== 0;
    e.instruction = (access & Access.Exec) !== 0;
    e.read = (access & Access.Write) === 0;
    e.stage2 = false;
    e.class = EVT_CLASS.IN;
    e.tableRead = undefined;
    e.inputAddress = undefined;
    e.address2 = undefined;
    return e;
  }

  #push(): SmmuOutQueueOutcome {
    const q = this.#queue;
    return this.#count(q.push(encodeEvent(q.record, this.#e)));
  }

  #count(outcome: SmmuOutQueueOutcome): SmmuOutQueueOutcome {
    if (outcome === 'written') this.#stats.written++;
    else if (outcome === 'overflow') this.#stats.overflows++;
    else if (outcome !== 'retry') this.#stats.dropped++;
    return outcome;
  }
}
