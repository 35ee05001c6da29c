/**
 * The guest side of the SMMUv3 PRI queue: Linux's `arm_smmu_priq_thread` (reference/viommu-queues.md
 * §1.1, §1.8). The unit produces 16-byte page requests and advances PRIQ_PROD; the driver consumes
 * them, writing PRIQ_CONS after each (`queue_remove_raw`), re-reads PROD until the queue is empty,
 * and on a toggled PROD.OVFLG ("PRIQ overflow detected -- requests lost") acknowledges it by
 * copying it into CONS.OVACKFLG (`queue_sync_cons_ovf`), which lets the unit write again.
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { decodePriRequest, type SmmuPriRecord } from '../../vendor/smmuv3/records.js';
import { QUEUE_ENTRY_BYTES, SMMU_PAGE1_REG } from '../../vendor/smmuv3/regs-defs.js';
import { OutQueueReader } from './out-queue.js';
import type { SmmuMmio } from './port.js';

/** What one pass of the PRI queue thread read. */
export interface PriQueueDrain {
  /** The page requests, in order. */
  readonly records: SmmuPriRecord[];
  /** PROD.OVFLG had toggled: requests were lost (and the overflow is now acknowledged). */
  readonly overflowed: boolean;
}

/** A guest's PRI queue over one unit. */
export class PriQueue extends OutQueueReader {
  /** Allocates the ring from `frames` (aligned to its size). Nothing touches the unit. */
  constructor(mmio: SmmuMmio, guest: PhysMemory, frames: FrameAllocator, log2Size: number) {
    super(mmio, guest, frames, log2Size, {
      recordBytes: QUEUE_ENTRY_BYTES.priq,
      prodReg: SMMU_PAGE1_REG.PRIQ_PROD,
      consReg: SMMU_PAGE1_REG.PRIQ_CONS,
    });
  }

  /** `arm_smmu_priq_thread`: consumes every request the unit produced, in order. */
  drain(): PriQueueDrain {
    const records: SmmuPriRecord[] = [];
    const overflowed = this.consume((r) => records.push(decodePriRequest(r)));
    return { records, overflowed };
  }
}
