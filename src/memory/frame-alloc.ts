import type { FaultInjector } from '../util/fail-nth.js';
import { IommufdError } from '../util/errors.js';
import type { PhysMemory } from './phys.js';

// Layout of the allocator's shared state (Int32 words).
const LOCK = 0; // 0 free, 1 held
const NEXT_FRESH = 1; // frames below this have been handed out at least once
const FREE_TOP = 2; // entries in the free stack
const IN_USE = 3; // frames currently allocated (users > 0 or awaiting reclamation)
const HEADER_WORDS = 8;

/**
 * The frame allocator. Its whole state lives in a SharedArrayBuffer (a lock word, a bump pointer
 * over never-used frames, a stack of freed frames, and a use count per frame), so any thread can
 * allocate and a frame never leaks with the heap of a thread that dies.
 *
 * Frames are counted: `alloc` returns a frame with one user; `get` adds one and `put` drops one.
 * A frame whose count reaches zero is not reused at once: it is handed to `retire`, which defers
 * reuse until every translating thread has left the epoch in which it was unlinked (see
 * {@link EpochReclaimer}).
 */
export class FrameAllocator {
  /** The shared state, handed to workers. */
  readonly sab: SharedArrayBuffer;
  readonly #hdr: Int32Array;
  readonly #stack: Int32Array;
  /** Users per frame. */
  readonly users: Int32Array;
  readonly #mem: PhysMemory;
  /** Where frames go when their last user drops them; set by the owner of the reclaimer. */
  retire: (frame: number) => void = (frame) => this.release(frame);
  /** The fault-injection point, consulted on every allocation. */
  faults: FaultInjector | undefined;
  /**
   * A debugging aid: when set, every released frame is filled with this 32-bit pattern, so that
   * a walker that reads a freed table sees garbage that a test can recognise. Off by default.
   */
  poison: number | undefined;

  /** Creates the allocator for `mem`, or attaches to existing shared state. */
  constructor(mem: PhysMemory, sab?: SharedArrayBuffer) {
    this.#mem = mem;
    const n = mem.frameCount;
    this.sab = sab ?? new SharedArrayBuffer((HEADER_WORDS + 2 * n) * 4);
    this.#hdr = new Int32Array(this.sab, 0, HEADER_WORDS);
    this.#stack = new Int32Array(this.sab, HEADER_WORDS * 4, n);
    this.users = new Int32Array(this.sab, (HEADER_WORDS + n) * 4, n);
  }

  #lock(): void {
    while (Atomics.compareExchange(this.#hdr, LOCK, 0, 1) !== 0) {
      // The critical sections are a handful of loads and stores; wait briefly rather than spin hot.
      Atomics.wait(this.#hdr, LOCK, 1, 1);
    }
  }

  #unlock(): void {
    Atomics.store(this.#hdr, LOCK, 0);
    Atomics.notify(this.#hdr, LOCK, 1);
  }

  /** Frames that are allocated or awaiting reclamation. */
  get inUse(): number {
    return Atomics.load(this.#hdr, IN_USE);
  }

  /** Frames that can still be allocated. */
  get available(): number {
    return this.#mem.frameCount - this.inUse;
  }

  /** Allocates one zeroed frame with one user. ENOMEM when memory is exhausted. */
  alloc(): number {
    this.faults?.step('frame allocation');
    this.#lock();
    let frame = -1;
    let recycled = false;
    const top = this.#hdr[FREE_TOP]!;
    if (top > 0) {
      frame = this.#stack[top - 1]!;
      this.#hdr[FREE_TOP] = top - 1;
      recycled = true;
    } else if (this.#hdr[NEXT_FRESH]! < this.#mem.frameCount) {
      frame = this.#hdr[NEXT_FRESH]!;
      this.#hdr[NEXT_FRESH] = frame + 1;
    }
    if (frame >= 0) {
      this.#hdr[IN_USE] = this.#hdr[IN_USE]! + 1;
      Atomics.store(this.users, frame, 1);
    }
    this.#unlock();
    if (frame < 0) throw new IommufdError('ENOMEM', 'physical memory exhausted');
    // Fresh frames are zero already: touching them would defeat lazy commit.
    if (recycled) this.#mem.zeroFrame(frame);
    return frame;
  }

  /**
   * Allocates `count` physically contiguous zeroed frames, each with one user, from the frames
   * that were never used, the first a multiple of `alignFrames` (a power of two; a concatenated
   * stage-2 start table must be aligned to its size). Frames skipped to align go to the free
   * stack. Returns the first frame. ENOMEM when no such run is left.
   */
  allocContiguous(count: number, alignFrames = 1): number {
    this.faults?.step('contiguous frame allocation');
    this.#lock();
    const fresh = this.#hdr[NEXT_FRESH]!;
    const first = Math.ceil(fresh / alignFrames) * alignFrames;
    const ok = count > 0 && first + count <= this.#mem.frameCount;
    if (ok) {
      for (let f = fresh; f < first; f++) {
        this.#stack[this.#hdr[FREE_TOP]!] = f;
        this.#hdr[FREE_TOP] = this.#hdr[FREE_TOP]! + 1;
      }
      this.#hdr[NEXT_FRESH] = first + count;
      this.#hdr[IN_USE] = this.#hdr[IN_USE]! + count;
      for (let f = first; f < first + count; f++) Atomics.store(this.users, f, 1);
    }
    this.#unlock();
    if (!ok) throw new IommufdError('ENOMEM', `no run of ${count} contiguous free frames`);
    return first;
  }

  /** Adds a user to an allocated frame. */
  get(frame: number): void {
    Atomics.add(this.users, frame, 1);
  }

  /** Drops a user; the last one retires the frame. */
  put(frame: number): void {
    const before = Atomics.sub(this.users, frame, 1);
    if (before === 1) this.retire(frame);
    else if (before < 1) throw new Error(`frame ${frame} put with no users`);
  }

  /** Returns a retired frame to the free stack. Only the reclaimer calls this. */
  release(frame: number): void {
    // Through the memory's own view: a guest allocator's memory is a window whose frame 0 is not the buffer's.
    if (this.poison !== undefined) this.#mem.i32.fill(this.poison, frame * 1024, frame * 1024 + 1024);
    this.#lock();
    this.#stack[this.#hdr[FREE_TOP]!] = frame;
    this.#hdr[FREE_TOP] = this.#hdr[FREE_TOP]! + 1;
    this.#hdr[IN_USE] = this.#hdr[IN_USE]! - 1;
    this.#unlock();
  }
}
