import { FrameAllocator } from './frame-alloc.js';
import { EpochReclaimer } from './reclaim.js';
import { PhysMemory } from './phys.js';

/** The buffers a worker needs to rebuild the memory views (handed over once, in workerData). */
export interface SharedMemoryHandles {
  /** Physical memory. */
  phys: SharedArrayBuffer;
  /** Frame allocator state. */
  frames: SharedArrayBuffer;
  /** Reclaimer state. */
  reclaim: SharedArrayBuffer;
}

// Retired values: frames are >= 0; other kinds of retired items are encoded as ~index (< 0).
/**
 * Physical memory, its allocator and its reclaimer, wired together: a frame whose last user drops
 * it is retired, and reclamation returns it to the allocator. Other retired items (domain
 * descriptors) are passed to `onReclaimOther`.
 */
export class SystemMemory {
  /** Physical memory. */
  readonly phys: PhysMemory;
  /** The frame allocator. */
  readonly frames: FrameAllocator;
  /** The epoch reclaimer. */
  readonly reclaimer: EpochReclaimer;
  /** Receives reclaimed items that are not frames (the value passed to {@link retireOther}). */
  onReclaimOther: (index: number) => void = () => {};

  /** Creates `bytes` of memory, or attaches to the buffers of `handles` (in a worker). */
  constructor(bytes: number, handles?: SharedMemoryHandles) {
    this.phys = new PhysMemory(handles?.phys ?? bytes);
    this.frames = new FrameAllocator(this.phys, handles?.frames);
    // Capacity: every frame once, plus as many other items again.
    this.reclaimer = new EpochReclaimer(this.phys.frameCount * 2, handles?.reclaim);
    this.frames.retire = (frame) => this.reclaimer.retire(frame);
    this.reclaimer.onReclaim = (value) => {
      if (value >= 0) this.frames.release(value);
      else this.onReclaimOther(~value);
    };
  }

  /** Retires a non-frame item (index >= 0) through the same grace period as frames. */
  retireOther(index: number): void {
    this.reclaimer.retire(~index);
  }

  /** The buffers to hand to a worker. */
  handles(): SharedMemoryHandles {
    return { phys: this.phys.sab, frames: this.frames.sab, reclaim: this.reclaimer.sab };
  }
}
