/**
 * The unit's MMIO window as the bench's guest driver sees it, with the bench's instruments in
 * between: it counts doorbells and times each one that carried a barrier. The emulated units
 * consume their queue on the doorbell, on the calling thread, so the doorbell write returns once
 * the barrier completed: its duration is the "barrier written → completion visible" latency of
 * reference/perf-anchors.md T2.
 */
import type { PhysMemory } from '../memory/index.js';
import type { LatencyHistogram } from './histogram.js';

/** What a guest driver model needs of a unit (both vendors' ports have this shape). */
export interface UnitMmio {
  /** An MMIO read (size 4: number, size 8: bigint). */
  mmioRead(offset: number, size: 4 | 8): number | bigint;
  /** An MMIO write. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void;
  /** Guest RAM as guest-physical memory. */
  readonly guest: PhysMemory;
}

/** A unit's MMIO window that counts and times its doorbells. */
export class InstrumentedPort implements UnitMmio {
  readonly guest: PhysMemory;
  /** Doorbells rung so far. */
  doorbells = 0;
  /**
   * The guest's count of barriers written so far (its queue's waits or CMD_SYNCs; the drivers
   * count one before they ring the doorbell that carries it). Set once the driver has probed.
   */
  barrierCount: () => number = () => 0;
  /**
   * Open loop: when the current operation was due (a `performance.now()` time). A barrier's
   * latency runs from the earlier of this and its doorbell. Closed loop: +Infinity.
   */
  origin = Infinity;
  /** Where barrier latencies go; undefined: not measuring. */
  histogram: LatencyHistogram | undefined;
  /** Runs before each doorbell reaches the unit, with the value written (the test hook). */
  beforeDoorbell: ((value: number) => void) | undefined;
  readonly #unit: UnitMmio;
  readonly #doorbell: number;
  #barriersSeen = 0;

  /** Wraps `unit`, whose doorbell register is at `doorbellOffset` (VT-d IQT, SMMUv3 CMDQ_PROD). */
  constructor(unit: UnitMmio, doorbellOffset: number) {
    this.#unit = unit;
    this.#doorbell = doorbellOffset;
    this.guest = unit.guest;
  }

  /** An MMIO read, passed through. */
  mmioRead(offset: number, size: 4 | 8): number | bigint {
    return this.#unit.mmioRead(offset, size);
  }

  /** An MMIO write; a doorbell is counted and, when it carried a barrier, timed. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void {
    if (offset !== this.#doorbell) {
      this.#unit.mmioWrite(offset, value, size);
      return;
    }
    this.doorbells++;
    this.beforeDoorbell?.(Number(value));
    const t0 = performance.now();
    this.#unit.mmioWrite(offset, value, size);
    const t1 = performance.now();
    const barriers = this.barrierCount();
    if (barriers === this.#barriersSeen) return;
    this.#barriersSeen = barriers;
    // performance.now() reads the same monotonic clock as process.hrtime (uv_hrtime), as a double
    // of milliseconds: no BigInt per sample.
    this.histogram?.record((t1 - Math.min(t0, this.origin)) * 1e6);
  }
}
