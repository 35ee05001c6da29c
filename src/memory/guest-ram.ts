import { IommufdError } from '../util/errors.js';
import type { FrameAllocator } from './frame-alloc.js';
import { PAGE_SIZE, PhysMemory } from './phys.js';

/**
 * Guest RAM: a physically contiguous range of frames, so a guest-physical address is an offset
 * from `basePa`. The guest driver models write their page tables and queues here.
 */
export class GuestRam {
  /** Physical address of guest-physical address 0. */
  readonly basePa: number;
  /** Size in bytes. */
  readonly bytes: number;
  readonly #mem: PhysMemory;
  readonly #frames: FrameAllocator;
  #released = false;

  /** Allocates `bytes` (a multiple of 4 KiB) of guest RAM. ENOMEM when no contiguous run is free. */
  constructor(mem: PhysMemory, frames: FrameAllocator, bytes: number) {
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes % PAGE_SIZE !== 0) {
      throw new IommufdError('EINVAL', `guest RAM size must be a positive multiple of ${PAGE_SIZE}`);
    }
    this.#mem = mem;
    this.#frames = frames;
    this.bytes = bytes;
    this.basePa = frames.allocContiguous(bytes / PAGE_SIZE) * PAGE_SIZE;
  }

  /** The physical address of guest-physical `gpa`, or -1 when it is outside guest RAM. */
  gpaToPa(gpa: number): number {
    return gpa >= 0 && gpa < this.bytes ? this.basePa + gpa : -1;
  }

  /** Byte view of all of guest RAM. */
  view(): Uint8Array {
    return this.#mem.u8.subarray(this.basePa, this.basePa + this.bytes);
  }

  /**
   * Guest RAM as a physical memory of its own, where address 0 is guest-physical 0: walkers and
   * guest driver models that read and write guest-physical addresses use it (with a
   * `FrameAllocator` over it as the guest's page allocator).
   */
  guestPhys(): PhysMemory {
    return new PhysMemory(this.#mem.sab, { offset: this.basePa, bytes: this.bytes });
  }

  /** Returns the frames to the allocator. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (let f = this.basePa / PAGE_SIZE; f < (this.basePa + this.bytes) / PAGE_SIZE; f++) this.#frames.put(f);
  }
}
