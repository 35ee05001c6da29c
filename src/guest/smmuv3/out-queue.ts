/**
 * The consuming side of an SMMUv3 output queue (EVTQ, PRIQ), as Linux's queue threads drive it
 * (reference/viommu-queues.md §1.1): the unit produces fixed-size records and advances PROD; the
 * driver copies each record out, writes CONS after it (`queue_remove_raw`), re-reads PROD until
 * the queue is empty, notices a toggled PROD.OVFLG (records were lost) and acknowledges it by
 * copying it into CONS.OVACKFLG (`queue_sync_cons_ovf`), which lets the unit write again.
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { Q_INDEX } from '../../vendor/smmuv3/regs-defs.js';
import { queueBaseRegister } from './cmdq.js';
import { allocCoherent } from './coherent.js';
import type { SmmuMmio } from './port.js';

/** Where a queue's records and registers are. */
export interface OutQueueLayout {
  /** Bytes of one record. */
  recordBytes: number;
  /** The PROD and CONS register offsets (page 1). */
  prodReg: number;
  consReg: number;
}

/**
 * One output queue's ring and shadow PROD/CONS, consumed record by record: the base of the
 * guest's EventQueue and PriQueue, which decode what {@link consume} hands them.
 */
export class OutQueueReader {
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
  readonly #layout: OutQueueLayout;
  /** Index and wrap bits. */
  readonly #mask: number;
  /** The record being consumed (a copy: the unit may overwrite the slot once CONS moves). */
  readonly #record: Int32Array;
  /** Shadow PROD and CONS, OVFLG / OVACKFLG included. */
  #prod = 0;
  #cons = 0;

  /** Allocates the ring from `frames` (aligned to its size). Nothing touches the unit. */
  constructor(mmio: SmmuMmio, guest: PhysMemory, frames: FrameAllocator, log2Size: number, layout: OutQueueLayout) {
    this.#mmio = mmio;
    this.#i32 = guest.i32;
    this.#layout = layout;
    this.log2Size = log2Size;
    this.entries = 2 ** log2Size;
    this.#mask = 2 * this.entries - 1;
    this.#record = new Int32Array(layout.recordBytes / 4);
    this.base = allocCoherent(frames, this.entries * layout.recordBytes);
  }

  /** The BASE register's value, as Linux writes it. */
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
   * Consumes every record the unit produced, in order, calling `take` with each (its words are
   * valid during the call only); CONS is written after each one, PROD re-read until the queue is
   * empty, and an overflow acknowledged. Returns whether PROD.OVFLG had toggled (records lost).
   */
  protected consume(take: (record: Int32Array) => void): boolean {
    const words = this.#record.length;
    const { recordBytes, prodReg, consReg } = this.#layout;
    let overflowed = false;
    do {
      while (!this.#empty()) {
        const at = (this.base + (this.#cons & (this.entries - 1)) * recordBytes) / 4;
        for (let w = 0; w < words; w++) this.#record[w] = this.#i32[at + w]!;
        take(this.#record);
        this.records++;
        // queue_inc_cons keeps the OVACKFLG the driver last wrote.
        this.#cons = ((this.#cons & Q_INDEX.OVF) | ((this.#cons + 1) & this.#mask)) >>> 0;
        this.#mmio.write32(consReg, this.#cons);
      }
      // queue_sync_prod_in: a toggled OVFLG means records were lost.
      const prod = this.#mmio.read32(prodReg);
      if (((prod ^ this.#prod) & Q_INDEX.OVF) !== 0) {
        this.overflows++;
        overflowed = true;
      }
      this.#prod = prod;
    } while (!this.#empty());
    // queue_sync_cons_ovf: we believe we are up to speed.
    if (((this.#prod ^ this.#cons) & Q_INDEX.OVF) !== 0) {
      this.#cons = ((this.#prod & Q_INDEX.OVF) | (this.#cons & this.#mask)) >>> 0;
      this.#mmio.write32(consReg, this.#cons);
    }
    return overflowed;
  }

  #empty(): boolean {
    return ((this.#prod ^ this.#cons) & this.#mask) === 0;
  }
}
