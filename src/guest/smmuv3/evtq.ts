/**
 * The guest side of the SMMUv3 event queue: Linux 6.1's `arm_smmu_evtq_thread`
 * (reference/viommu-queues.md §1.1, §1.6). The unit produces 32-byte records and advances
 * EVTQ_PROD; the driver consumes them, writing EVTQ_CONS after each record (`queue_remove_raw`),
 * re-reads PROD until the queue is empty, notices a toggled PROD.OVFLG (records were dropped) and
 * acknowledges it by copying it into CONS.OVACKFLG (`queue_sync_cons_ovf`).
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { decodeEvent, EVT_WORDS, type SmmuEventRecord } from '../../vendor/smmuv3/records.js';
import { Q_INDEX, QUEUE_ENTRY_BYTES, SMMU_PAGE1_REG } from '../../vendor/smmuv3/regs-defs.js';
import { queueBaseRegister } from './cmdq.js';
import { allocCoherent } from './coherent.js';
import type { SmmuMmio } from './port.js';

/** A guest's event queue over one unit. */
export class EventQueue {
  /** Guest-physical base of the ring. */
  readonly base: number;
  /** log2 of the entries. */
  readonly log2Size: number;
  /** Entries in the ring. */
  readonly entries: number;
  /** Records consumed. */
  records = 0;
  /** Overflows noticed (PROD.OVFLG toggled since the last drain). */
  overflows = 0;
  readonly #mmio: SmmuMmio;
  readonly #i32: Int32Array;
  /** Index and wrap bits. */
  readonly #mask: number;
  readonly #record = new Int32Array(EVT_WORDS);
  /** Shadow PROD and CONS, OVFLG / OVACKFLG included. */
  #prod = 0;
  #cons = 0;

  /** Allocates the ring from `frames` (aligned to its size). Nothing touches the unit. */
  constructor(mmio: SmmuMmio, guest: PhysMemory, frames: FrameAllocator, log2Size: number) {
    this.#mmio = mmio;
    this.#i32 = guest.i32;
    this.log2Size = log2Size;
    this.entries = 2 ** log2Size;
    this.#mask = 2 * this.entries - 1;
    this.base = allocCoherent(frames, this.entries * QUEUE_ENTRY_BYTES.evtq);
  }

  /** EVTQ_BASE as Linux writes it. */
  get baseRegister(): bigint {
    return queueBaseRegister(this.base, this.log2Size);
  }

  /** The shadow PROD (index, wrap bit and OVFLG). */
  get prod(): number {
    return this.#prod;
  }

  /** The shadow CONS (index, wrap bit and OVACKFLG). */
  get cons(): number {
    return this.#cons;
  }

  /**
   * `arm_smmu_evtq_thread`: consumes every record the unit produced, in order, and returns them
   * decoded; CONS is written after each one, PROD re-read until the queue is empty, and an
   * overflow acknowledged.
   */
  drain(): SmmuEventRecord[] {
    const out: SmmuEventRecord[] = [];
    do {
      while (!this.#empty()) {
        const at = (this.base + (this.#cons & (this.entries - 1)) * QUEUE_ENTRY_BYTES.evtq) / 4;
        for (let w = 0; w < EVT_WORDS; w++) this.#record[w] = this.#i32[at + w]!;
        out.push(decodeEvent(this.#record));
        this.records++;
        // queue_inc_cons keeps the OVACKFLG the driver last wrote.
        this.#cons = ((this.#cons & Q_INDEX.OVF) | ((this.#cons + 1) & this.#mask)) >>> 0;
        this.#mmio.write32(SMMU_PAGE1_REG.EVTQ_CONS, this.#cons);
      }
      // queue_sync_prod_in: a toggled OVFLG means records were lost.
      const prod = this.#mmio.read32(SMMU_PAGE1_REG.EVTQ_PROD);
      if (((prod ^ this.#prod) & Q_INDEX.OVF) !== 0) this.overflows++;
      this.#prod = prod;
    } while (!this.#empty());
    // queue_sync_cons_ovf: we believe we are up to speed.
    if (((this.#prod ^ this.#cons) & Q_INDEX.OVF) !== 0) {
      this.#cons = ((this.#prod & Q_INDEX.OVF) | (this.#cons & this.#mask)) >>> 0;
      this.#mmio.write32(SMMU_PAGE1_REG.EVTQ_CONS, this.#cons);
    }
    return out;
  }

  #empty(): boolean {
    return ((this.#prod ^ this.#cons) & this.#mask) === 0;
  }
}
