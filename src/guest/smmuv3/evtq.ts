/**
 * The guest side of the SMMUv3 event queue: Linux 6.1's `arm_smmu_evtq_thread`
 * (reference/viommu-queues.md §1.1, §1.6). The unit produces 32-byte records and advances
 * EVTQ_PROD; the driver consumes them, writing EVTQ_CONS after each record (`queue_remove_raw`),
 * re-reads PROD until the queue is empty, notices a toggled PROD.OVFLG (records were dropped) and
 * acknowledges it by copying it into CONS.OVACKFLG (`queue_sync_cons_ovf`).
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { decodeEvent, type SmmuEventRecord } from '../../vendor/smmuv3/records.js';
import { QUEUE_ENTRY_BYTES, SMMU_PAGE1_REG } from '../../vendor/smmuv3/regs-defs.js';
import { OutQueueReader } from './out-queue.js';
import type { SmmuMmio } from './port.js';

/** A guest's event queue over one unit. */
export class EventQueue extends OutQueueReader {
  /** Allocates the ring from `frames` (aligned to its size). Nothing touches the unit. */
  constructor(mmio: SmmuMmio, guest: PhysMemory, frames: FrameAllocator, log2Size: number) {
    super(mmio, guest, frames, log2Size, {
      recordBytes: QUEUE_ENTRY_BYTES.evtq,
      prodReg: SMMU_PAGE1_REG.EVTQ_PROD,
      consReg: SMMU_PAGE1_REG.EVTQ_CONS,
    });
  }

  /**
   * `arm_smmu_evtq_thread`: consumes every record the unit produced, in order, and returns them
   * decoded; CONS is written after each one, PROD re-read until the queue is empty, and an
   * overflow acknowledged.
   */
  drain(): SmmuEventRecord[] {
    const out: SmmuEventRecord[] = [];
    this.consume((r) => out.push(decodeEvent(r)));
    return out;
  }
}
