/**
 * What every shared-memory cache table (the IOTLB, the ATC, the config cache) has in common,
 * from DESIGN.md "Caches, shards and the concurrency protocol": per-shard owner words,
 * invalidation sequences and counters, and a header with the clock, the global epoch, and the
 * counts of rollovers and stolen owner words. The tables differ only in their slots and keys.
 */

/** Owner id of the control-plane thread's invalidations. */
export const OWNER_CONTROL = -1;
/** Owner ids from here up belong to pipeline workers (1000 + threadId). */
export const OWNER_WORKER_BASE = 1001;
/** How long a synchronous caller waits for a worker's owner word before it deems the worker dead. */
const STALE_OWNER_MS = 2000;
/** The clock value past which the next flush rolls the table over instead of wrapping. */
export const CLOCK_LIMIT = 2 ** 31 - 2 ** 20;

/** Header words every table starts its meta buffer with; a table's own words follow. */
export const Header = { Clock: 0, GlobalEpoch: 1, Rollovers: 2, Stolen: 3 } as const;
/** Header words reserved for {@link Header} (tables use words from here on). */
export const HEADER_WORDS = 4;

/** The words of each shard. */
export const ShardWord = {
  Owner: 0,
  InvSeq: 1,
  /** Round-robin victim hint of the shard's sets. */
  Hand: 2,
  Fills: 3,
  Discarded: 4,
  Evictions: 5,
  Invalidated: 6,
  OverInvalidations: 7,
} as const;
/** Words per shard. */
export const SHARD_WORDS = 8;

/** Counters of a cache table (hits and misses are kept per consumer, not here). */
export interface CacheCounters {
  /** Entries inserted. */
  fills: number;
  /** Fills skipped because an invalidation raced the walk, or the shard was busy. */
  discardedFills: number;
  /** Entries replaced to make room. */
  evictions: number;
  /** Entries cleared by exact invalidations. */
  invalidated: number;
  /** Invalidations turned into a wider flush. */
  overInvalidations: number;
  /** Times the clock was reset, emptying the table. */
  rollovers: number;
  /** Owner words taken back from dead workers by a synchronous caller. */
  stolenOwners: number;
}

/** A 31-bit hash: non-negative int32, so indexes derived from it stay small integers (V8 Smis). */
export function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae35);
  return (h ^ (h >>> 13)) & 0x7fffffff;
}

/**
 * The header and the per-shard words of one table, over its meta buffer: the owner-word
 * protocol, the invalidation sequences, the clock with its rollover, and the counters.
 */
export class ShardState {
  /** Shards. */
  readonly shards: number;
  /** The header (table-specific words follow {@link HEADER_WORDS}). */
  readonly meta: Int32Array;
  /** shards × {@link SHARD_WORDS} words. */
  readonly words: Int32Array;
  /**
   * The shards whose owner word this thread's view took and has not released (views are per
   * thread): a rollover on this thread takes every other owner word, not these.
   */
  readonly #held: Uint8Array;

  /** Views `shards` shards in `meta` after `headerWords` header words (at least HEADER_WORDS). */
  constructor(meta: SharedArrayBuffer, headerWords: number, shards: number) {
    this.shards = shards;
    this.meta = new Int32Array(meta, 0, headerWords);
    this.words = new Int32Array(meta, headerWords * 4, shards * SHARD_WORDS);
    this.#held = new Uint8Array(shards);
  }

  /** Words a meta buffer needs for `headerWords` header words and `shards` shards. */
  static metaWords(headerWords: number, shards: number): number {
    return headerWords + shards * SHARD_WORDS;
  }

  /** Tries to take a shard's owner word for `owner` without waiting. */
  tryOwn(shard: number, owner: number): boolean {
    if (Atomics.compareExchange(this.words, shard * SHARD_WORDS, 0, owner) !== 0) return false;
    this.#held[shard] = 1;
    return true;
  }

  /**
   * Takes a shard's owner word for the control plane, waiting for the holder. Holders are fills
   * and shard tasks, which release within milliseconds; a worker that holds the word for
   * STALE_OWNER_MS died mid-batch (its task is bounded). The synchronous caller cannot wait for
   * the pipeline's asynchronous recovery, so it takes the word back itself, counts it, and calls
   * `onSteal` (before it owns the word: the table flushes what the dead worker may have left
   * half done).
   */
  own(shard: number, onSteal: () => void): void {
    const at = shard * SHARD_WORDS;
    let waited = 0;
    for (;;) {
      const holder = Atomics.compareExchange(this.words, at, 0, OWNER_CONTROL);
      if (holder === 0) {
        this.#held[shard] = 1;
        return;
      }
      Atomics.wait(this.words, at, holder, 1);
      waited++;
      if (holder >= OWNER_WORKER_BASE && waited >= STALE_OWNER_MS && this.reclaim(shard, holder)) {
        Atomics.add(this.meta, Header.Stolen, 1);
        onSteal();
        waited = 0;
      }
    }
  }

  /**
   * Releases a shard's owner word, waking a control-plane waiter. A fill passes `notify` false:
   * it is on the translation path, and a waiter polls every millisecond anyway.
   */
  release(shard: number, notify = true): void {
    this.#held[shard] = 0;
    Atomics.store(this.words, shard * SHARD_WORDS, 0);
    if (notify) Atomics.notify(this.words, shard * SHARD_WORDS);
  }

  /** Who holds a shard's owner word (0: nobody). */
  ownerOf(shard: number): number {
    return Atomics.load(this.words, shard * SHARD_WORDS);
  }

  /** Recovery from a holder that died: takes the owner word back from `holder` by compare-and-swap. */
  reclaim(shard: number, holder: number): boolean {
    return Atomics.compareExchange(this.words, shard * SHARD_WORDS, holder, 0) === holder;
  }

  /** A shard's invalidation sequence (step 1 of a fill). */
  seq(shard: number): number {
    return Atomics.load(this.words, shard * SHARD_WORDS + ShardWord.InvSeq);
  }

  /** Moves a shard's invalidation sequence (its owner does, before it probes). */
  bumpSeq(shard: number): void {
    Atomics.add(this.words, shard * SHARD_WORDS + ShardWord.InvSeq, 1);
  }

  /** Adds `n` to counter `word` of `shard`. */
  count(shard: number, word: number, n = 1): void {
    Atomics.add(this.words, shard * SHARD_WORDS + word, n);
  }

  /** The next victim hint of a shard (its owner calls it). */
  nextHand(shard: number): number {
    const at = shard * SHARD_WORDS + ShardWord.Hand;
    const hand = this.words[at]!;
    this.words[at] = hand + 1;
    return hand;
  }

  /** The clock (step 1 of a fill). */
  clock(): number {
    return Atomics.load(this.meta, Header.Clock);
  }

  /** The global epoch. */
  globalEpoch(): number {
    return Atomics.load(this.meta, Header.GlobalEpoch);
  }

  /**
   * Advances the clock and returns the value before. Near CLOCK_LIMIT it rolls the table over
   * first, never wrapping silently: under every owner word, `clear` empties the slots and the
   * table's own epochs; then the clock and the global epoch are reset before the sequences move
   * (a fill that reads a new sequence also reads the new clock; one stamped above the clock is
   * refused anyway). A dead worker's owner word taken back here needs no flush of its own.
   */
  tick(clear: () => void): number {
    if (Atomics.load(this.meta, Header.Clock) >= CLOCK_LIMIT) {
      // Every owner word, but those this thread holds already (a shard op that flushes a tag):
      // waiting for itself would never end.
      const mine = this.#held.slice();
      for (let s = 0; s < this.shards; s++) if (mine[s] === 0) this.own(s, () => {});
      clear();
      Atomics.store(this.meta, Header.GlobalEpoch, 0);
      Atomics.store(this.meta, Header.Clock, 1);
      for (let s = 0; s < this.shards; s++) this.bumpSeq(s);
      Atomics.add(this.meta, Header.Rollovers, 1);
      for (let s = 0; s < this.shards; s++) if (mine[s] === 0) this.release(s);
    }
    return Atomics.add(this.meta, Header.Clock, 1);
  }

  /** Sets the clock (tests of the rollover). */
  setClock(value: number): void {
    Atomics.store(this.meta, Header.Clock, value);
  }

  /** The counters, summed over shards. */
  counters(): CacheCounters {
    const sum = (k: number): number => {
      let n = 0;
      for (let s = 0; s < this.shards; s++) n += Atomics.load(this.words, s * SHARD_WORDS + k);
      return n;
    };
    return {
      fills: sum(ShardWord.Fills),
      discardedFills: sum(ShardWord.Discarded),
      evictions: sum(ShardWord.Evictions),
      invalidated: sum(ShardWord.Invalidated),
      overInvalidations: sum(ShardWord.OverInvalidations),
      rollovers: Atomics.load(this.meta, Header.Rollovers),
      stolenOwners: Atomics.load(this.meta, Header.Stolen),
    };
  }
}

/** Ways per set of every table. */
export const WAYS = 8;

/**
 * Empties every slot of a table whose slots are `slotWords` words, word 0 the seqlock version,
 * word 1 the tag and word 6 the stamp (the IOTLB's and the shadow's layout): each slot is taken
 * odd, its tag and stamp cleared, and released even, so a lock-free reader never takes a half
 * cleared slot. The rollover's part of such a table, run under every owner word.
 */
export function clearSlots(slots: Int32Array, slotWords: number): void {
  for (let at = 0; at < slots.length; at += slotWords) {
    const v = slots[at]!;
    Atomics.store(slots, at, (v + 1) | 1);
    slots[at + 1] = 0;
    slots[at + 6] = 0;
    Atomics.store(slots, at, ((v + 1) | 1) + 1);
  }
}

/**
 * The base of every cache table: its geometry and the shard-level entry points that the
 * pipeline's executor and the recovery use. A table adds its slots, keys and epochs.
 */
export abstract class ShardedTable {
  /** Shards. */
  readonly shards: number;
  /** Sets per shard (a power of two). */
  readonly setsPerShard: number;
  /** The header and per-shard words. */
  protected readonly st: ShardState;
  /** A dead worker's owner word was taken back: what it may have left half done goes. */
  protected readonly onSteal = (): void => this.flushAll();

  /** A table over `st`, with the smallest power-of-two sets per shard that hold `entries`. */
  protected constructor(st: ShardState, entries: number) {
    this.shards = st.shards;
    this.setsPerShard = ShardedTable.setsFor(entries, st.shards);
    this.st = st;
  }

  /** Sets per shard for `entries` over `shards` (what the constructor will choose). */
  static setsFor(entries: number, shards: number): number {
    let sets = 1;
    while (sets * WAYS * shards < entries) sets *= 2;
    return sets;
  }

  /** Slots in the table. */
  get capacity(): number {
    return this.shards * this.setsPerShard * WAYS;
  }

  /** Flushes everything: one global epoch store. */
  abstract flushAll(): void;

  /** Tries to take a shard's owner word for `owner` without waiting. */
  tryOwn(shard: number, owner: number): boolean {
    return this.st.tryOwn(shard, owner);
  }

  /** Takes a shard's owner word for the control plane, waiting for the holder (see ShardState.own). */
  own(shard: number): void {
    this.st.own(shard, this.onSteal);
  }

  /** Releases a shard's owner word. */
  release(shard: number): void {
    this.st.release(shard);
  }

  /** Who holds a shard's owner word (0: nobody). */
  ownerOf(shard: number): number {
    return this.st.ownerOf(shard);
  }

  /** Recovery from a holder that died: takes the owner word back from `holder`. Returns whether it did. */
  reclaimOwner(shard: number, holder: number): boolean {
    return this.st.reclaim(shard, holder);
  }

  /** Sets the clock (tests of the rollover). */
  setClockForTest(value: number): void {
    this.st.setClock(value);
  }

  /** The table's counters, summed over shards. */
  counters(): CacheCounters {
    return this.st.counters();
  }
}
