/**
 * What the SMMUv3 guest driver model needs of an emulated unit (its MMIO window and guest
 * memory), and the driver's one way to touch the MMIO window: an accessor that counts every
 * access, so a test can weigh a sequence in traps as a VMM would pay for it.
 */
import type { PhysMemory } from '../../memory/index.js';

/** What the driver model needs of an SMMUv3 unit: its MMIO window and guest memory. */
export interface SmmuUnitPort {
  /** An MMIO read (size 4: number, size 8: bigint). */
  mmioRead(offset: number, size: 4 | 8): number | bigint;
  /** An MMIO write. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
}

/** MMIO accesses of the driver, counted (`readl`/`writel`/`writeq` of Linux). */
export class SmmuMmio {
  /** MMIO reads so far. */
  reads = 0;
  /** MMIO writes so far. */
  writes = 0;
  readonly #unit: SmmuUnitPort;

  /** An accessor over `unit`'s MMIO window. */
  constructor(unit: SmmuUnitPort) {
    this.#unit = unit;
  }

  /** A 32-bit read, as an unsigned number. */
  read32(offset: number): number {
    this.reads++;
    return Number(this.#unit.mmioRead(offset, 4)) >>> 0;
  }

  /** A 32-bit write. */
  write32(offset: number, value: number): void {
    this.writes++;
    this.#unit.mmioWrite(offset, value >>> 0, 4);
  }

  /** A 64-bit write (`writeq_relaxed`). */
  write64(offset: number, value: bigint): void {
    this.writes++;
    this.#unit.mmioWrite(offset, value, 8);
  }
}
