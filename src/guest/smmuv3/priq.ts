/**
 * The guest side of the SMMUv3 PRI queue: Linux's `arm_smmu_priq_thread` (reference/viommu-queues.md
 * §1.1, §1.8). The unit produces 16-byte page requests and advances PRIQ_PROD; the driver consumes
 * them, writing PRIQ_CONS after each (`queue_remove_raw`), re-reads PROD until the queue is empty,
 * and on a toggled PROD.OVFLG ("PRIQ overflow detected -- requests lost") acknowledges it by
 * copying it into CONS.OVACKFLG (`queue_sync_cons_ovf`), which lets the unit write again.
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { decodePriRequest, PRIQ_WORDS, type SmmuPriRecord } from '../../vendor/smmuv3/records.js';
import { Q_INDEX, QUEUE_ENTRY_BYTES, SMMU_PAGE1_REG } from '../../vendor/smmuv3/regs-defs.js';
import { queueBaseRegister } from './cmdq.js';
import { allocCoherent } from './coherent.js';
import type { SmmuMmio } from './port.js';

/** What one pass of the PRI queue thread read. */
export interface PriQueueDrain {
  /** The page requests, in order. */
  readonly records: SmmuPriRecord[];
  /** PROD.OVFLG had toggled: requests were lost (and the overflow is now acknowledged). */
  readonly overflowed: boolean;
}

/** A guest's PRI queue over one unit. */
export class PriQueue {
  /** Guest-physical base of the ring. */
  readonly base: number;
  /** log2 of the entries. */
  readonly log2Size: number;
  /** Entries in the ring. */
  readonly entries: number;
  /** Requests consumed. */
  records = 0;
  /** Overflows noticed. */
  overflows = 0;
  readonly #mmio: SmmuMmio;
  readonly #i32: Int32Array;
  readonly #mask: number;
  readonly #record = new Int32Array(PRIQ_WORDS);
  #prod = 0;
  #cons = 0;

  /** Allocates the ring from `frames` (aligned to its size). Nothing touches the unit. */
  constructor(mmio: SmmuMmio, guest: PhysMemory, frames: FrameAllocator, log2Size: number) {
    this.#mmio = mmio;
    this.#i32 = guest.i32;
    this.log2Size = log2Size;
    this.entries = 2 ** log2Size;
    this.#mask = 2 * this.entries - 1;
    this.base = allocCoherent(frames, this.entries * QUEUE_ENTRY_BYTES.priq);
  }

  /** PRIQ_BASE as Linux writes it. */
  get baseRegister(): bigint {
    return queueBaseRegister(this.base, this.log2Size);
  }

  /** `arm_smmu_priq_thread`: consumes every request the unit produced, in order. */
  drain(): PriQueueDrain {
    const records: SmmuPriRecord[] = [];
    let overflowed = false;
    do {
      while (!this.#empty()) {
        const at = (this.base + (this.#cons & (this.entries - 1)) * QUEUE_ENTRY_BYTES.priq) / 4;
        for (let w = 0; w < PRIQ_WORDS; w++) this.#record[w] = this.#i32[at + w]!;
        records.push(decodePriRequest(this.#record));
        this.records++;
        this.#cons = ((this.#cons & Q_INDEX.OVF) | ((this.#cons + 1) & this.#mask)) >>> 0;
        this.#mmio.write32(SMMU_PAGE1_REG.PRIQ_CONS, this.#cons);
      }
      const prod = this.#mmio.read32(SMMU_PAGE1_REG.PRIQ_PROD);
      if (((prod ^ this.#prod) & Q_INDEX.OVF) !== 0) {
        this.overflows++;
        overflowed = true;
      }
      this.#prod = prod;
    } while (!this.#empty());
    if (((this.#prod ^ this.#cons) & Q_INDEX.OVF) !== 0) {
      this.#cons = ((this.#prod & Q_INDEX.OVF) | (this.#cons & this.#mask)) >>> 0;
      this.#mmio.write32(SMMU_PAGE1_REG.PRIQ_CONS, this.#cons);
    }
    return { records, overflowed };
  }

  #empty(): boolean {
    return ((this.#prod ^ this.#cons) & this.#mask) === 0;
  }
}
