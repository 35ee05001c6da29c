// Layout of the reclaimer's shared state (Int32 words).
const EPOCH = 0; // the global epoch; never 0
const HEAD = 1; // ring read position, in [0, capacity)
const COUNT = 2; // items in the ring
const HEADER_WORDS = 4;

/** How many threads can translate at once. */
export const MAX_READER_SLOTS = 64;
// Per slot: [owner, epoch]; epoch 0 = quiescent.
const SLOT_WORDS = 2;

/**
 * Epoch-based reclamation (DESIGN.md "Reclamation"), all in shared memory. A thread that walks
 * tables publishes the global epoch in its slot for the duration of the walk. A table frame or a
 * domain descriptor that is unlinked is retired with the current epoch, and the epoch advances;
 * the item is reused only when every slot is quiescent or has published a later epoch. The
 * kernel's gather freelist plays the same role.
 *
 * The epoch is compared with serial-number arithmetic, so it may wrap: only the order of values
 * less than 2^30 apart matters, and a retired item waits only for walks that are in flight.
 */
export class EpochReclaimer {
  /** The shared state, handed to workers. */
  readonly sab: SharedArrayBuffer;
  readonly #hdr: Int32Array;
  readonly #slots: Int32Array;
  readonly #ring: Int32Array;
  readonly #capacity: number;
  /** Called with each retired value once it is safe to reuse. */
  onReclaim: (value: number) => void = () => {};

  /** Creates a reclaimer that can hold `capacity` retired items, or attaches to `sab`. */
  constructor(capacity: number, sab?: SharedArrayBuffer) {
    this.#capacity = capacity;
    this.sab = sab ?? new SharedArrayBuffer((HEADER_WORDS + MAX_READER_SLOTS * SLOT_WORDS + 2 * capacity) * 4);
    this.#hdr = new Int32Array(this.sab, 0, HEADER_WORDS);
    this.#slots = new Int32Array(this.sab, HEADER_WORDS * 4, MAX_READER_SLOTS * SLOT_WORDS);
    this.#ring = new Int32Array(this.sab, (HEADER_WORDS + MAX_READER_SLOTS * SLOT_WORDS) * 4, 2 * capacity);
    if (sab === undefined) this.#hdr[EPOCH] = 1;
  }

  /** Claims a reader slot for the calling thread. Returns -1 when all are taken. */
  acquireSlot(): number {
    for (let s = 0; s < MAX_READER_SLOTS; s++) {
      if (Atomics.compareExchange(this.#slots, s * SLOT_WORDS, 0, 1) === 0) {
        Atomics.store(this.#slots, s * SLOT_WORDS + 1, 0);
        return s;
      }
    }
    return -1;
  }

  /** Gives a reader slot back. */
  releaseSlot(slot: number): void {
    Atomics.store(this.#slots, slot * SLOT_WORDS + 1, 0);
    Atomics.store(this.#slots, slot * SLOT_WORDS, 0);
  }

  /** Marks the start of a walk by the owner of `slot`. */
  enter(slot: number): void {
    Atomics.store(this.#slots, slot * SLOT_WORDS + 1, Atomics.load(this.#hdr, EPOCH));
  }

  /** Marks the end of a walk. */
  exit(slot: number): void {
    Atomics.store(this.#slots, slot * SLOT_WORDS + 1, 0);
  }

  /** The current global epoch. */
  get epoch(): number {
    return Atomics.load(this.#hdr, EPOCH);
  }

  /** Items retired and not yet reclaimed. */
  get pending(): number {
    return Atomics.load(this.#hdr, COUNT);
  }

  /**
   * Retires `value` (a frame number, or an encoded descriptor index) after it has been unlinked
   * from everything a walker can reach. Single producer: the control plane.
   */
  retire(value: number): void {
    if (this.#hdr[COUNT]! >= this.#capacity) {
      // Cannot happen while each item is retired at most once; reclaim rather than lose it.
      this.reclaim();
      if (this.#hdr[COUNT]! >= this.#capacity) throw new Error('reclaim ring overflow');
    }
    const at = ((this.#hdr[HEAD]! + this.#hdr[COUNT]!) % this.#capacity) * 2;
    this.#ring[at] = value;
    this.#ring[at + 1] = Atomics.load(this.#hdr, EPOCH);
    Atomics.add(this.#hdr, COUNT, 1);
  }

  /**
   * Advances the epoch and reuses every retired item that no walk in flight can still reach.
   * Returns how many items were reclaimed.
   */
  reclaim(): number {
    let count = Atomics.load(this.#hdr, COUNT);
    if (count === 0) return 0;
    // Items retired at epoch e are safe once every active walk started at an epoch after e.
    let next = (Atomics.load(this.#hdr, EPOCH) + 1) | 0;
    if (next === 0) next = 1;
    Atomics.store(this.#hdr, EPOCH, next);
    let oldest = next;
    for (let s = 0; s < MAX_READER_SLOTS; s++) {
      const e = Atomics.load(this.#slots, s * SLOT_WORDS + 1);
      if (e !== 0 && ((e - oldest) | 0) < 0) oldest = e;
    }
    let head = this.#hdr[HEAD]!;
    let done = 0;
    while (count > 0) {
      const at = head * 2;
      if (((this.#ring[at + 1]! - oldest) | 0) >= 0) break;
      const value = this.#ring[at]!;
      head = (head + 1) % this.#capacity;
      count--;
      done++;
      Atomics.store(this.#hdr, HEAD, head);
      Atomics.store(this.#hdr, COUNT, count);
      this.onReclaim(value);
    }
    return done;
  }
}
