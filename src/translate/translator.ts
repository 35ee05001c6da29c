import type { EpochReclaimer } from '../memory/reclaim.js';
import type { PhysMemory } from '../memory/phys.js';
import { FaultReason, mockWalk, TranslateFault, WalkFault } from '../pgtable/index.js';
import { ContextTables, DomainFormat } from './tables.js';

/** The PASID value that means "no PASID": the request is translated by the RID's domain. */
export const NO_PASID = -1;

/**
 * The DMA translation hot path: device context → domain descriptor → page-table walk. It reads
 * only shared memory, so a worker can run one over the same buffers. Allocation-free: faults are
 * recorded in the preallocated {@link WalkFault}.
 *
 * A translator whose thread also runs reclamation (the control-plane thread) passes slot -1: that
 * thread cannot be in a walk while it reclaims. Any other thread owns a reader slot and publishes
 * its epoch around each walk.
 */
export class Translator {
  /** Details of the last fault. */
  readonly fault = new WalkFault();
  readonly #i32: Int32Array;
  readonly #ctx: ContextTables;
  readonly #reclaimer: EpochReclaimer;
  readonly #slot: number;

  /** Creates a translator over `mem` and `ctx`; `slot` is this thread's reader slot, or -1. */
  constructor(mem: PhysMemory, ctx: ContextTables, reclaimer: EpochReclaimer, slot: number) {
    this.#i32 = mem.i32;
    this.#ctx = ctx;
    this.#reclaimer = reclaimer;
    this.#slot = slot;
  }

  /**
   * Translates `iova` for a request with `access` bits from device slot `dev` (and `pasid`, or
   * {@link NO_PASID}). Returns the physical address, or a negative TranslateFault.
   */
  translate(dev: number, iova: number, access: number, pasid: number): number {
    const slot = this.#slot;
    if (slot >= 0) this.#reclaimer.enter(slot);
    const domain = pasid === NO_PASID ? this.#ctx.ridDomain(dev) : this.#ctx.pasidDomain(dev, pasid);
    let result: number;
    if (domain === 0) {
      result = this.fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
    } else if (this.#ctx.domainFormat(domain) === DomainFormat.Mock) {
      result = mockWalk(this.#i32, this.#ctx.domainRoot(domain), iova, access, this.fault);
    } else {
      result = this.fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
    }
    if (slot >= 0) this.#reclaimer.exit(slot);
    if (result < 0) this.fault.words[3] = pasid;
    return result;
  }
}
