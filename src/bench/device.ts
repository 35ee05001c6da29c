/** A device of a bench run: the unit it sits behind, its domain's reference model and IOVA slots. */
import type { BenchGuest } from './bench-guest.js';
import type { IovaSlots } from './iova-slots.js';
import type { DomainModel } from './reference-model.js';

/** One DMA-capable device with a domain of its own. */
export interface BenchDevice {
  readonly guest: BenchGuest;
  /** The unit's index in the run (multi-guest has several). */
  readonly unit: number;
  /** Source id / StreamID. */
  readonly sid: number;
  /** Its translations are cached in its ATC too. */
  readonly ats: boolean;
  /** Live mappings the workload keeps on it. */
  readonly live: number;
  readonly model: DomainModel;
  readonly slots: IovaSlots;
}
