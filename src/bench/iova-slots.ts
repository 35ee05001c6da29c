/**
 * The guest's IOVA allocator for one device's window, in fixed-size slots: live slots are
 * mapped, free ones may be mapped, and pending ones were unmapped under the lazy policy and may
 * be reused only after the flush queue drained (as Linux frees an IOVA only in `fq_ring_free`).
 */
import type { Prng } from './prng.js';

/** Slots of one window: live, free and pending lists, each a typed array with a count. */
export class IovaSlots {
  /** Slots in the window. */
  readonly count: number;
  readonly #live: Int32Array;
  readonly #free: Int32Array;
  readonly #pending: Int32Array;
  #liveN = 0;
  #freeN: number;
  #pendingN = 0;

  /** A window of `count` slots, all free. */
  constructor(count: number) {
    this.count = count;
    this.#live = new Int32Array(count);
    this.#free = new Int32Array(count);
    this.#pending = new Int32Array(count);
    for (let i = 0; i < count; i++) this.#free[i] = i;
    this.#freeN = count;
  }

  /** Slots mapped now. */
  get liveCount(): number {
    return this.#liveN;
  }

  /** Slots waiting for a lazy flush. */
  get pendingCount(): number {
    return this.#pendingN;
  }

  /** The `i`-th live slot (0 ≤ i < liveCount). */
  liveAt(i: number): number {
    return this.#live[i]!;
  }

  /** Takes a random free slot and makes it live; RangeError when none is free. */
  takeFree(rng: Prng): number {
    if (this.#freeN === 0) throw new RangeError('no free IOVA slot: the window is too small for the live entries');
    const i = rng.below(this.#freeN);
    const slot = this.#free[i]!;
    this.#free[i] = this.#free[--this.#freeN]!;
    this.#live[this.#liveN++] = slot;
    return slot;
  }

  /** Removes the `i`-th live slot; it becomes pending (`lazy`) or free. Returns the slot. */
  releaseLive(i: number, lazy: boolean): number {
    const slot = this.#live[i]!;
    this.#live[i] = this.#live[--this.#liveN]!;
    if (lazy) this.#pending[this.#pendingN++] = slot;
    else this.#free[this.#freeN++] = slot;
    return slot;
  }

  /** The flush queue drained: every pending slot is free again, except the newest `keep`. */
  settlePending(keep = 0): void {
    const n = this.#pendingN - keep;
    for (let i = 0; i < n; i++) this.#free[this.#freeN++] = this.#pending[i]!;
    this.#pending.copyWithin(0, n, this.#pendingN);
    this.#pendingN = keep;
  }

  /** Every slot free (the domain was torn down and its flush queue drained). */
  reset(): void {
    for (let i = 0; i < this.count; i++) this.#free[i] = i;
    this.#freeN = this.count;
    this.#liveN = 0;
    this.#pendingN = 0;
  }
}
