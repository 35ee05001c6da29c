/**
 * The guest operations the scenarios are made of, on the devices of a run: replace a mapping
 * (unmap one, map another), rebuild a domain, invalidate everything. Each keeps the reference
 * model and the IOVA slots in step with what the guest driver did, and a device's DMA (when on)
 * is checked against the model as it happens.
 */
import { Access } from '../pgtable/index.js';
import type { BenchGuest } from './bench-guest.js';
import type { CorrectnessLog } from './check.js';
import type { BenchDevice } from './device.js';
import type { Prng } from './prng.js';

/** Guest buffers that mappings point into, per unit. */
interface BufferPool {
  /** Guest-physical addresses of the buffers. */
  readonly gpas: Float64Array;
  /** Pages per buffer. */
  readonly pages: number;
}

/** Pages of guest RAM that a unit's buffers take at most (range's 4096-page buffers: two of them). */
const BUFFER_BUDGET_PAGES = 8192;
/** Buffers per unit at most: mappings point at varied guest pages, so a remap is a different address. */
const MAX_BUFFERS = 8;
/** The smallest buffer, so small mappings still land on varied pages. */
const MIN_BUFFER_PAGES = 16;

/** The state a scenario's operations work on. */
export class Workload {
  readonly rng: Prng;
  readonly devices: readonly BenchDevice[];
  /** Devices translate between map and unmap. */
  readonly dma: boolean;
  /** The guests use the lazy policy (unmapped IOVAs wait for the flush queue). */
  readonly lazy: boolean;
  readonly log: CorrectnessLog;
  /** The units of the devices, each once. */
  readonly guests: readonly BenchGuest[];
  readonly #buffers = new Map<BenchGuest, BufferPool>();

  /** Allocates each unit's buffers for mappings of up to `maxPages` pages. */
  constructor(
    rng: Prng,
    devices: readonly BenchDevice[],
    opts: { dma: boolean; lazy: boolean; maxPages: number; log: CorrectnessLog },
  ) {
    this.rng = rng;
    this.devices = devices;
    this.dma = opts.dma;
    this.lazy = opts.lazy;
    this.log = opts.log;
    const pages = Math.max(MIN_BUFFER_PAGES, opts.maxPages);
    const count = Math.max(2, Math.min(MAX_BUFFERS, Math.floor(BUFFER_BUDGET_PAGES / pages)));
    for (const dev of devices) {
      if (this.#buffers.has(dev.guest)) continue;
      const gpas = new Float64Array(count);
      for (let i = 0; i < count; i++) gpas[i] = dev.guest.allocBuffer(pages);
      this.#buffers.set(dev.guest, { gpas, pages });
    }
    this.guests = [...this.#buffers.keys()];
  }

  /** Maps new mappings of `pages()` pages on `dev` until it holds its live share. */
  populate(dev: BenchDevice, pages: () => number): void {
    while (dev.slots.liveCount < dev.live) this.#mapOne(dev, pages());
  }

  /**
   * Unmaps a random live mapping of `dev` (its DMA first, when on) and maps a new one of `pages`
   * pages at a free slot. Strict: the unmap is one invalidation and its barrier. Lazy: the slot
   * waits for the flush queue, and is free again once a drain ran.
   */
  replace(dev: BenchDevice, pages: number): void {
    const { slots, model, guest } = dev;
    const i = this.rng.below(slots.liveCount);
    const slot = slots.liveAt(i);
    if (this.dma) this.#touch(dev, slot);
    const pending = this.lazy ? guest.pendingFlushes : 0;
    guest.unmap(dev.sid, model.iovaOf(slot), model.pagesOf(slot) * 4096);
    model.unmap(slot);
    slots.releaseLive(i, this.lazy);
    // A full flush queue is drained before the new entry goes in (queue_iova): the others are free.
    if (this.lazy && guest.pendingFlushes <= pending) slots.settlePending(1);
    this.#mapOne(dev, pages);
  }

  /** Tears the device's domain down, gives it a new one, and maps its live share again. */
  rebuild(dev: BenchDevice, pages: () => number): void {
    dev.guest.rebuild(dev.sid);
    dev.model.unmapAll();
    dev.slots.reset();
    this.populate(dev, pages);
  }

  /** The final sync: drains every unit's lazy flush queues; every pending slot is free again. */
  flushAll(): void {
    for (const guest of this.guests) guest.flushLazy();
    for (const dev of this.devices) dev.slots.settlePending();
  }

  #mapOne(dev: BenchDevice, pages: number): void {
    const { slots, model, guest } = dev;
    const slot = slots.takeFree(this.rng);
    const pool = this.#buffers.get(guest)!;
    const gpa = pool.gpas[this.rng.below(pool.gpas.length)]! + this.rng.below(pool.pages - pages + 1) * 4096;
    guest.map(dev.sid, model.iovaOf(slot), gpa, pages * 4096);
    model.map(slot, pages, gpa);
    if (this.dma) this.#touch(dev, slot);
  }

  /** The device's DMA to a mapping: its first, middle and last page, each checked against the model. */
  #touch(dev: BenchDevice, slot: number): void {
    const n = dev.model.pagesOf(slot);
    this.#touchPage(dev, slot, 0);
    if (n > 1) this.#touchPage(dev, slot, n - 1);
    if (n > 2) this.#touchPage(dev, slot, n >>> 1);
  }

  #touchPage(dev: BenchDevice, slot: number, page: number): void {
    const got = dev.guest.translate(dev.sid, dev.model.iovaOf(slot) + page * 4096, Access.Write);
    dev.model.markTouched(slot, page);
    this.log.checkedDuringRun++;
    this.log.compare(dev, slot, page, got, 'during-run');
  }
}
