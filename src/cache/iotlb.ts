/**
 * The IOTLB: a set-associative table in shared memory, split into shards, with the protocol of
 * DESIGN.md "Caches, shards and the concurrency protocol":
 * - an entry goes to the shard of hash(tag, IOVA >> 21); larger leaves are cached as 2 MiB
 *   fragments, so the shard is known before the walk that fills it;
 * - each shard has an owner word (taken by compare-and-swap) and an invalidation sequence;
 *   every mutation of a shard's slots happens under its owner word;
 * - wide flushes are epochs: a tag's (or everything's) epoch takes `clock++`, and an entry hits
 *   only if its stamp is above both; the clock never wraps silently (a rollover empties the
 *   table first);
 * - fills are stamped with the clock read before the walk and dropped if the shard's
 *   invalidation sequence moved meanwhile;
 * - lookups are lock-free: keys are compared with plain loads, and a match is confirmed by a
 *   slot version read before and after (odd while the slot is written).
 *
 * Tags. A tag word is `domain | asid << 12` (see {@link Iotlb.tagWord}): the domain (a VMID or
 * DID mapped to a descriptor index below MAX_TAGS) in the low 12 bits, and an ASID or PASID (20
 * bits; 0 also means "no PASID") above it. Shards and per-domain state (leaf sizes, the domain
 * epoch) key on the domain alone, so one domain's 2 MiB region lives in one shard whatever its
 * ASID; sets and slots key on the whole word. ASID flushes are epochs too, in a hashed table: a
 * collision only over-invalidates another (domain, ASID), it never keeps a stale entry.
 *
 * perf/atomics.bench.ts measured Atomics.load at ~10 ns against < 1 ns for a plain load of a hot
 * word, hence plain key compares and atomics only on a match.
 */

/** Words per slot: [version, tag, key lo, shift << 24 | key hi, pa, granted access, stamp, spare] = 32 bytes. */
export const SLOT_WORDS = 8;
/** Ways per set. */
export const WAYS = 8;
/** Largest leaf shift cached as such; larger leaves are cached as fragments of this size. */
export const MAX_CACHED_SHIFT = 21;
/** Tags (domain descriptor indexes) the epoch table covers. */
export const MAX_TAGS = 4096;
/** Entries of the hashed (domain, ASID) epoch table. */
export const ASID_EPOCHS = 16384;
/** The largest ASID / PASID a tag word holds. */
export const MAX_ASID = 0xfffff;
/** Tag argument of the range invalidations meaning "every ASID of the domain". */
export const ALL_ASIDS = -1;
/** The bits of a per-domain shift mask that are leaf sizes; bit 30 marks a domain with ASIDs. */
const SHIFT_BITS = (1 << (MAX_CACHED_SHIFT + 1)) - 1;
const HAS_ASIDS = 1 << 30;
const DOMAIN_BITS = 0xfff;
/** The clock value past which the next flush rolls the table over instead of wrapping. */
export const CLOCK_LIMIT = 2 ** 31 - 2 ** 20;

// Header words.
const CLOCK = 0;
const GLOBAL_EPOCH = 1;
const ROLLOVERS = 2;
const STOLEN = 3; // owner words taken back from dead workers by a synchronous caller
const BY_TAG = 4; // 1: the table shards by tag alone (fixed at creation, read by attachers)
const HEADER_WORDS = 8;
// Per-shard words.
const OWNER = 0;
const INV_SEQ = 1;
const HAND = 2; // round-robin victim hint
const FILLS = 3;
const DISCARDED = 4;
const EVICTIONS = 5;
const INVALIDATED = 6;
const OVER_INVALIDATIONS = 7;
const SHARD_WORDS = 8;

/** Owner id of the control-plane thread's invalidations. */
export const OWNER_CONTROL = -1;
/** Owner ids from here up belong to pipeline workers (1000 + threadId). */
export const OWNER_WORKER_BASE = 1001;
/** How long a synchronous caller waits for a worker's owner word before it deems the worker dead. */
const STALE_OWNER_MS = 2000;

/** The shared buffers of an IOTLB. */
export interface IotlbHandles {
  /** Header, per-shard words, per-tag epochs and shift masks. */
  meta: SharedArrayBuffer;
  /** The slots. */
  slots: SharedArrayBuffer;
}

/** Counters of an IOTLB (fills and below are per table; hits and misses are per translator). */
export interface IotlbCounters {
  fills: number;
  discardedFills: number;
  evictions: number;
  invalidated: number;
  overInvalidations: number;
  rollovers: number;
  /** Owner words taken back from dead workers. */
  stolenOwners: number;
}

/** A 31-bit hash: non-negative int32, so indexes derived from it stay small integers (V8 Smis). */
function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae35);
  return (h ^ (h >>> 13)) & 0x7fffffff;
}

/** 2^n for n in 0..63: lookups must not call Math.pow. */
const POW2: readonly number[] = Array.from({ length: 64 }, (_, n) => 2 ** n);

/**
 * The IOTLB. Create it on the control plane with a capacity; attach in a worker with its handles.
 */
export class Iotlb {
  /** Shards. */
  readonly shards: number;
  /** Sets per shard (a power of two). */
  readonly setsPerShard: number;
  readonly #meta: Int32Array;
  readonly #shard: Int32Array;
  readonly #epoch: Int32Array;
  readonly #shifts: Int32Array;
  readonly #asidEpoch: Int32Array;
  readonly #slots: Int32Array;
  /** Whether every entry of a domain goes to one shard (the ATC: keyed by device), not by region. */
  readonly #byTag: boolean;
  /**
   * The fill guard (step 3 of the fill protocol). Only the safety test turns it off, in one
   * thread, to prove that the test catches the race the guard closes.
   */
  fillGuard = true;
  /** After a hit: log2 of the size of the entry that served it. */
  lastShift = 0;

  /**
   * Creates a table of about `entries` slots over `shards` shards, or attaches to `handles`.
   * Capacity is rounded up to shards × sets × 8 ways, sets a power of two. With `byTag` (the
   * ATC, whose tags are devices) a tag's entries all go to the shard of hash(tag), as DESIGN.md
   * shards config and ATC entries by SID. An attacher (with `handles`) ignores `byTag` and
   * takes the creator's.
   */
  constructor(entries: number, shards: number, handles?: IotlbHandles, byTag = false) {
    let sets = 1;
    while (sets * WAYS * shards < entries) sets *= 2;
    this.shards = shards;
    this.setsPerShard = sets;
    const metaWords = HEADER_WORDS + shards * SHARD_WORDS + 2 * MAX_TAGS + ASID_EPOCHS;
    const meta = handles?.meta ?? new SharedArrayBuffer(metaWords * 4);
    const slots = handles?.slots ?? new SharedArrayBuffer(shards * sets * WAYS * SLOT_WORDS * 4);
    this.#meta = new Int32Array(meta, 0, HEADER_WORDS);
    this.#shard = new Int32Array(meta, HEADER_WORDS * 4, shards * SHARD_WORDS);
    this.#epoch = new Int32Array(meta, (HEADER_WORDS + shards * SHARD_WORDS) * 4, MAX_TAGS);
    this.#shifts = new Int32Array(meta, (HEADER_WORDS + shards * SHARD_WORDS + MAX_TAGS) * 4, MAX_TAGS);
    this.#asidEpoch = new Int32Array(meta, (HEADER_WORDS + shards * SHARD_WORDS + 2 * MAX_TAGS) * 4, ASID_EPOCHS);
    this.#slots = new Int32Array(slots);
    if (handles === undefined) {
      this.#meta[CLOCK] = 1;
      this.#meta[BY_TAG] = byTag ? 1 : 0;
    }
    // An attacher takes the sharding from the buffer: a disagreement would hide entries from
    // the invalidations of another thread.
    this.#byTag = this.#meta[BY_TAG] === 1;
  }

  /** The buffers to hand to a worker (with the same `entries` and `shards`). */
  handles(): IotlbHandles {
    return { meta: this.#meta.buffer as SharedArrayBuffer, slots: this.#slots.buffer as SharedArrayBuffer };
  }

  /** Slots in the table. */
  get capacity(): number {
    return this.shards * this.setsPerShard * WAYS;
  }

  /** Table bytes ÷ capacity. */
  get bytesPerEntry(): number {
    return this.#slots.byteLength / this.capacity;
  }

  /**
   * The tag word of (domain, ASID/PASID): what lookups, fills and exact invalidations take. A
   * plain domain index is the tag word of ASID 0.
   */
  static tagWord(domain: number, asid: number): number {
    return domain | (asid << 12) | 0;
  }

  /** Whether the table shards by tag alone (the ATC). */
  get byTag(): boolean {
    return this.#byTag;
  }

  /** The shard of (tag, iova): by the tag word's domain and the 2 MiB region (or the tag alone). */
  shardOf(tag: number, iova: number): number {
    return this.#byTag
      ? mix(tag & DOMAIN_BITS, 0) % this.shards
      : mix(tag & DOMAIN_BITS, (iova / 2097152) | 0) % this.shards;
  }

  #asidSlot(tag: number): number {
    return mix(tag, 0x41534944) & (ASID_EPOCHS - 1);
  }

  /** The epoch floor of a tag word: a hit needs a stamp above it. */
  #floor(tag: number): number {
    return Math.max(
      this.#epoch[tag & DOMAIN_BITS]!,
      Atomics.load(this.#meta, GLOBAL_EPOCH),
      this.#asidEpoch[this.#asidSlot(tag)]!,
    );
  }

  /** First slot word of set `set` in shard `shard`. */
  #setBase(shard: number, set: number): number {
    return (shard * this.setsPerShard + set) * WAYS * SLOT_WORDS;
  }

  #setOf(tag: number, page: number, shift: number): number {
    return mix(tag ^ (shift << 24), page | 0) & (this.setsPerShard - 1);
  }

  // ---- lookup (any thread, lock-free, allocation-free) --------------------------------------

  /**
   * Looks up `iova` under `tag` for `access`: the physical address on a hit, or -1. A hit needs
   * a fresh stamp and every access bit already granted by a walk.
   */
  lookup(tag: number, iova: number, access: number): number {
    let mask = this.#shifts[tag & DOMAIN_BITS]! & SHIFT_BITS;
    if (mask === 0) return -1;
    const slots = this.#slots;
    const floor = this.#floor(tag);
    const shard = this.shardOf(tag, iova);
    while (mask !== 0) {
      const shift = 31 - Math.clz32(mask & -mask);
      mask &= mask - 1;
      const size = POW2[shift]!;
      const page = Math.floor(iova / size);
      const keyLo = page | 0;
      const keyHi = (shift << 24) | ((page / 4294967296) | 0);
      let at = this.#setBase(shard, this.#setOf(tag, page, shift));
      for (let w = 0; w < WAYS; w++, at += SLOT_WORDS) {
        if (slots[at + 1] !== tag || slots[at + 2] !== keyLo || slots[at + 3] !== keyHi) continue;
        const v1 = Atomics.load(slots, at);
        const pa = slots[at + 4]! >>> 0;
        const granted = slots[at + 5]!;
        const stamp = slots[at + 6]!;
        const same = slots[at + 1] === tag && slots[at + 2] === keyLo && slots[at + 3] === keyHi;
        if ((v1 & 1) !== 0 || Atomics.load(slots, at) !== v1 || !same) continue;
        if (stamp <= floor || (access & ~granted) !== 0) break;
        this.lastShift = shift;
        return pa + (iova - page * size);
      }
    }
    return -1;
  }

  // ---- fill (any thread; the fill protocol) -------------------------------------------------

  /** Step 1 of a fill, before the walk: the shard's invalidation sequence. */
  fillSeq(tag: number, iova: number): number {
    return Atomics.load(this.#shard, this.shardOf(tag, iova) * SHARD_WORDS + INV_SEQ);
  }

  /** Step 1 of a fill, before the walk: the clock. */
  fillClock(): number {
    return Atomics.load(this.#meta, CLOCK);
  }

  /**
   * Steps 2–4 of a fill: try the owner word without waiting; insert with stamp `c0` only if the
   * invalidation sequence is still `s0`; release. `pa` is the output of `iova`; `shift` the
   * leaf's size. Returns whether the entry was inserted (a skipped fill counts as discarded).
   */
  fill(
    tag: number,
    iova: number,
    pa: number,
    shift: number,
    access: number,
    s0: number,
    c0: number,
    owner: number,
  ): boolean {
    const shard = this.shardOf(tag, iova);
    const sw = shard * SHARD_WORDS;
    if (Atomics.compareExchange(this.#shard, sw + OWNER, 0, owner) !== 0) {
      Atomics.add(this.#shard, sw + DISCARDED, 1);
      return false;
    }
    // Refused: a sequence that moved (an invalidation raced the walk), a stamp from before a
    // rollover (above the clock), or an address the slot cannot hold (PA >= 2^32).
    if (
      (this.fillGuard && Atomics.load(this.#shard, sw + INV_SEQ) !== s0) ||
      c0 > Atomics.load(this.#meta, CLOCK) ||
      pa >= 4294967296
    ) {
      Atomics.store(this.#shard, sw + OWNER, 0);
      Atomics.add(this.#shard, sw + DISCARDED, 1);
      return false;
    }
    if (shift > MAX_CACHED_SHIFT) shift = MAX_CACHED_SHIFT;
    const size = POW2[shift]!;
    const page = Math.floor(iova / size);
    const keyLo = page | 0;
    const keyHi = (shift << 24) | ((page / 4294967296) | 0);
    const set = this.#setOf(tag, page, shift);
    const base = this.#setBase(shard, set);
    const slots = this.#slots;
    let victim = -1;
    let granted = access;
    for (let w = 0, at = base; w < WAYS; w++, at += SLOT_WORDS) {
      if (slots[at + 1] === tag && slots[at + 2] === keyLo && slots[at + 3] === keyHi) {
        victim = at;
        // The same page filled again (another access type): grant the union, if still fresh.
        if (slots[at + 6]! > this.#floor(tag)) granted |= slots[at + 5]!;
        break;
      }
      if (victim < 0 && slots[at + 1] === 0) victim = at;
    }
    if (victim < 0) {
      const hand = this.#shard[sw + HAND]!;
      this.#shard[sw + HAND] = hand + 1;
      victim = base + (hand & (WAYS - 1)) * SLOT_WORDS;
      Atomics.add(this.#shard, sw + EVICTIONS, 1);
    }
    const v = slots[victim]!;
    Atomics.store(slots, victim, (v + 1) | 1);
    slots[victim + 1] = tag;
    slots[victim + 2] = keyLo;
    slots[victim + 3] = keyHi;
    slots[victim + 4] = (pa - (iova - page * size)) | 0;
    slots[victim + 5] = granted;
    slots[victim + 6] = c0;
    Atomics.store(slots, victim, ((v + 1) | 1) + 1);
    const dom = tag & DOMAIN_BITS;
    const bits = (1 << shift) | (tag !== dom ? HAS_ASIDS : 0);
    if ((this.#shifts[dom]! & bits) !== bits) Atomics.or(this.#shifts, dom, bits);
    Atomics.add(this.#shard, sw + FILLS, 1);
    Atomics.store(this.#shard, sw + OWNER, 0);
    return true;
  }

  // ---- invalidation (the control plane) -----------------------------------------------------

  #own(sw: number): void {
    let waited = 0;
    for (;;) {
      const holder = Atomics.compareExchange(this.#shard, sw + OWNER, 0, OWNER_CONTROL);
      if (holder === 0) return;
      // Holders are fills and shard tasks, which release within milliseconds; wait a little.
      Atomics.wait(this.#shard, sw + OWNER, holder, 1);
      waited++;
      // A worker that holds the word this long died mid-batch (its task is bounded). The
      // synchronous caller cannot wait for the pipeline's asynchronous recovery, so it takes the
      // word back itself and flushes everything, since the dead worker may have left its work
      // half done.
      if (holder >= OWNER_WORKER_BASE && waited >= STALE_OWNER_MS && this.reclaimOwner(sw / SHARD_WORDS, holder)) {
        Atomics.add(this.#meta, STOLEN, 1);
        this.flushAll();
        waited = 0;
      }
    }
  }

  #release(sw: number): void {
    Atomics.store(this.#shard, sw + OWNER, 0);
    Atomics.notify(this.#shard, sw + OWNER);
  }

  /**
   * Invalidates [iova, iova+length) under `tag`, shard by shard under its owner word, bumping the
   * shard's invalidation sequence before probing. A range of more than `maxPages` pages at its
   * smallest cached size flushes the whole tag instead (an over-invalidation, as Linux's
   * CMDQ_MAX_TLBI_OPS does). `tag` is a tag word, or a domain with `asid` = ALL_ASIDS for every
   * ASID of the domain (a domain that has cached ASIDs other than 0 is then flushed whole, an
   * over-invalidation: its entries are not indexed by address alone). Returns the entries cleared.
   */
  invalidateRange(tag: number, iova: number, length: number, maxPages = 512, asid = 0): number {
    if (length <= 0) return 0;
    if (asid === ALL_ASIDS) {
      if ((this.#shifts[tag & DOMAIN_BITS]! & HAS_ASIDS) !== 0) {
        this.flushTag(tag & DOMAIN_BITS);
        Atomics.add(this.#shard, OVER_INVALIDATIONS, 1);
        return 0;
      }
      tag &= DOMAIN_BITS;
    }
    const mask = this.#shifts[tag & DOMAIN_BITS]! & SHIFT_BITS;
    const end = iova + length;
    const firstRegion = Math.floor(iova / 2 ** 21) * 2 ** 21;
    const regions = (end - firstRegion) / 2 ** 21;
    const smallest = mask === 0 ? 21 : 31 - Math.clz32(mask & -mask);
    if (length / 2 ** smallest > maxPages || regions > maxPages) {
      // The epoch also defeats fills in flight: their stamps predate it.
      this.flushTag(tag & DOMAIN_BITS);
      Atomics.add(this.#shard, OVER_INVALIDATIONS, 1);
      return 0;
    }
    let cleared = 0;
    for (let region = firstRegion; region < end; region += 2 ** 21) {
      const shard = this.shardOf(tag, region);
      const sw = shard * SHARD_WORDS;
      this.#own(sw);
      // Even with nothing cached yet, the sequence moves: a walk in flight must not fill.
      Atomics.add(this.#shard, sw + INV_SEQ, 1);
      const lo = Math.max(iova, region);
      const hi = Math.min(end, region + 2 ** 21);
      for (let m = this.#shifts[tag & DOMAIN_BITS]! & SHIFT_BITS; m !== 0; m &= m - 1) {
        const shift = 31 - Math.clz32(m & -m);
        const size = POW2[shift]!;
        for (let page = Math.floor(lo / size); page * size < hi; page++)
          cleared += this.#clearPage(shard, tag, page, shift);
      }
      this.#release(sw);
    }
    Atomics.add(this.#shard, INVALIDATED, cleared);
    return cleared;
  }

  #clearPage(shard: number, tag: number, page: number, shift: number): number {
    const keyLo = page | 0;
    const keyHi = (shift << 24) | ((page / 4294967296) | 0);
    const slots = this.#slots;
    let at = this.#setBase(shard, this.#setOf(tag, page, shift));
    let n = 0;
    for (let w = 0; w < WAYS; w++, at += SLOT_WORDS) {
      if (slots[at + 1] !== tag || slots[at + 2] !== keyLo || slots[at + 3] !== keyHi) continue;
      const v = slots[at]!;
      Atomics.store(slots, at, (v + 1) | 1);
      slots[at + 1] = 0;
      Atomics.store(slots, at, ((v + 1) | 1) + 1);
      n++;
    }
    return n;
  }

  // ---- shard-level entry points (the pipeline's executor) -----------------------------------

  /** Tries to take a shard's owner word for `owner` without waiting. */
  tryOwn(shard: number, owner: number): boolean {
    return Atomics.compareExchange(this.#shard, shard * SHARD_WORDS + OWNER, 0, owner) === 0;
  }

  /** Takes a shard's owner word for the control plane, waiting for the holder. */
  own(shard: number): void {
    this.#own(shard * SHARD_WORDS);
  }

  /** Releases a shard's owner word. */
  release(shard: number): void {
    this.#release(shard * SHARD_WORDS);
  }

  /** Who holds a shard's owner word (0: nobody). */
  ownerOf(shard: number): number {
    return Atomics.load(this.#shard, shard * SHARD_WORDS + OWNER);
  }

  /**
   * Recovery from a holder that died: takes the owner word back from `holder` by compare-and-
   * swap. Returns whether it did.
   */
  reclaimOwner(shard: number, holder: number): boolean {
    return Atomics.compareExchange(this.#shard, shard * SHARD_WORDS + OWNER, holder, 0) === holder;
  }

  /**
   * The part of a range invalidation that falls in `shard`'s regions, run by the shard's owner
   * (the caller holds the owner word): bumps the invalidation sequence, then clears. With `asid`
   * = ALL_ASIDS, `tag` is a domain and every ASID of it goes (a domain with ASIDs other than 0 is
   * flushed whole instead: see {@link invalidateRange}).
   */
  invalidateRangeInShard(shard: number, tag: number, iova: number, length: number, asid = 0): number {
    const end = iova + length;
    Atomics.add(this.#shard, shard * SHARD_WORDS + INV_SEQ, 1);
    if (asid === ALL_ASIDS) {
      if ((this.#shifts[tag & DOMAIN_BITS]! & HAS_ASIDS) !== 0) {
        this.flushTag(tag & DOMAIN_BITS);
        Atomics.add(this.#shard, OVER_INVALIDATIONS, 1);
        return 0;
      }
      tag &= DOMAIN_BITS;
    }
    let cleared = 0;
    for (let region = Math.floor(iova / 2097152) * 2097152; region < end; region += 2097152) {
      if (this.shardOf(tag, region) !== shard) continue;
      const lo = Math.max(iova, region);
      const hi = Math.min(end, region + 2097152);
      for (let m = this.#shifts[tag & DOMAIN_BITS]! & SHIFT_BITS; m !== 0; m &= m - 1) {
        const shift = 31 - Math.clz32(m & -m);
        const size = POW2[shift]!;
        for (let page = Math.floor(lo / size); page * size < hi; page++)
          cleared += this.#clearPage(shard, tag, page, shift);
      }
    }
    Atomics.add(this.#shard, INVALIDATED, cleared);
    return cleared;
  }

  /** Advances the clock and returns the value before, rolling the table over near the limit. */
  #tick(): number {
    if (Atomics.load(this.#meta, CLOCK) >= CLOCK_LIMIT) this.#rollover();
    return Atomics.add(this.#meta, CLOCK, 1);
  }

  /** Flushes everything cached under domain `tag`, every ASID: one epoch store, on no shard. */
  flushTag(tag: number): void {
    Atomics.store(this.#epoch, tag & DOMAIN_BITS, this.#tick());
  }

  /** Flushes one (domain, ASID) tag word: one store into the hashed ASID epochs. */
  flushAsid(tag: number): void {
    Atomics.store(this.#asidEpoch, this.#asidSlot(tag), this.#tick());
  }

  /** Flushes everything: one global epoch store. */
  flushAll(): void {
    Atomics.store(this.#meta, GLOBAL_EPOCH, this.#tick());
  }

  /**
   * Prepares a tag slot for a new domain: it takes the current clock, so entries of the domain
   * that used the index before can never come back, and forgets the leaf sizes it used.
   */
  resetTag(tag: number): void {
    Atomics.store(this.#epoch, tag, this.#tick());
    Atomics.store(this.#shifts, tag, 0);
  }

  /**
   * The clock is about to pass CLOCK_LIMIT: empty every slot under every owner word, then reset
   * the clock, the epochs and the stamps' meaning. Never a silent wrap.
   */
  #rollover(): void {
    for (let s = 0; s < this.shards; s++) this.#own(s * SHARD_WORDS);
    const slots = this.#slots;
    for (let at = 0; at < slots.length; at += SLOT_WORDS) {
      const v = slots[at]!;
      Atomics.store(slots, at, (v + 1) | 1);
      slots[at + 1] = 0;
      slots[at + 6] = 0;
      Atomics.store(slots, at, ((v + 1) | 1) + 1);
    }
    // The clock and epochs are reset before the sequences move: a fill that reads the new
    // sequence then also reads the new clock (a fill stamped above the clock is refused anyway).
    for (let t = 0; t < MAX_TAGS; t++) Atomics.store(this.#epoch, t, 0);
    for (let t = 0; t < ASID_EPOCHS; t++) Atomics.store(this.#asidEpoch, t, 0);
    Atomics.store(this.#meta, GLOBAL_EPOCH, 0);
    Atomics.store(this.#meta, CLOCK, 1);
    for (let s = 0; s < this.shards; s++) Atomics.add(this.#shard, s * SHARD_WORDS + INV_SEQ, 1);
    Atomics.add(this.#meta, ROLLOVERS, 1);
    for (let s = 0; s < this.shards; s++) this.#release(s * SHARD_WORDS);
  }

  /** Sets the clock (tests of the rollover). */
  setClockForTest(value: number): void {
    Atomics.store(this.#meta, CLOCK, value);
  }

  /** The table's counters, summed over shards. */
  counters(): IotlbCounters {
    const sum = (k: number): number => {
      let n = 0;
      for (let s = 0; s < this.shards; s++) n += Atomics.load(this.#shard, s * SHARD_WORDS + k);
      return n;
    };
    return {
      fills: sum(FILLS),
      discardedFills: sum(DISCARDED),
      evictions: sum(EVICTIONS),
      invalidated: Atomics.load(this.#shard, INVALIDATED),
      overInvalidations: Atomics.load(this.#shard, OVER_INVALIDATIONS),
      rollovers: Atomics.load(this.#meta, ROLLOVERS),
      stolenOwners: Atomics.load(this.#meta, STOLEN),
    };
  }
}
