import {
  clearSlots,
  Header,
  HEADER_WORDS,
  mix,
  ShardedTable,
  ShardState,
  ShardWord,
  WAYS,
  type CacheCounters,
} from './shards.js';

export { WAYS } from './shards.js';

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

/**
 * The access bits a cache entry is granted and looked up with, for a request with Access bits
 * `access` (Read 1, Write 2, Exec 4, Priv 8): R/W/X, then bit 3 for an unprivileged request and
 * bit 4 for a privileged one. A grant is checked for one privilege level: a walk that let a user
 * request through says nothing of a supervisor one (VT-d SRE = 0 refuses every supervisor
 * request), and the converse.
 */
export function cacheAccess(access: number): number {
  return (access & 7) | ((access & 8) === 0 ? 8 : 16);
}
/** The bits of a per-domain shift mask that are leaf sizes; bit 30 marks a domain with ASIDs. */
const SHIFT_BITS = (1 << (MAX_CACHED_SHIFT + 1)) - 1;
const HAS_ASIDS = 1 << 30;
/**
 * Bits 22–27 of a domain's shift word: the largest translation unit (log2) of an entry stored
 * smaller than the unit an invalidation must treat as one: a stage-1 block that a nested walk
 * cached in stage-2-sized pieces, or a leaf above MAX_CACHED_SHIFT. 0 when there is none.
 */
const UNIT_SHIFT = 22;
const UNIT_MASK = 63 << UNIT_SHIFT;
const DOMAIN_BITS = 0xfff;
// Header words after the common ones (shards.ts).
const BY_TAG = HEADER_WORDS; // 1: the table shards by tag alone (fixed at creation, read by attachers)
const IOTLB_HEADER_WORDS = HEADER_WORDS + 4;

/** The shared buffers of an IOTLB. */
export interface IotlbHandles {
  /** Header, per-shard words, per-tag epochs and shift masks. */
  meta: SharedArrayBuffer;
  /** The slots. */
  slots: SharedArrayBuffer;
}

/** Counters of an IOTLB (hits and misses are per translator). */
export type IotlbCounters = CacheCounters;

/** 2^n for n in 0..63: lookups must not call Math.pow. */
const POW2: readonly number[] = Array.from({ length: 64 }, (_, n) => 2 ** n);

/**
 * The IOTLB. Create it on the control plane with a capacity; attach in a worker with its handles.
 */
export class Iotlb extends ShardedTable {
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
  /** Companion tables' rollover parts (see {@link onRollover}). */
  readonly #companions: (() => void)[] = [];

  /**
   * Creates a table of about `entries` slots over `shards` shards, or attaches to `handles`.
   * Capacity is rounded up to shards × sets × 8 ways, sets a power of two. With `byTag` (the
   * ATC, whose tags are devices) a tag's entries all go to the shard of hash(tag), as DESIGN.md
   * shards config and ATC entries by SID. An attacher (with `handles`) ignores `byTag` and
   * takes the creator's.
   */
  constructor(entries: number, shards: number, handles?: IotlbHandles, byTag = false) {
    const sets = ShardedTable.setsFor(entries, shards);
    const stateWords = ShardState.metaWords(IOTLB_HEADER_WORDS, shards);
    const meta = handles?.meta ?? new SharedArrayBuffer((stateWords + 2 * MAX_TAGS + ASID_EPOCHS) * 4);
    const slots = handles?.slots ?? new SharedArrayBuffer(shards * sets * WAYS * SLOT_WORDS * 4);
    super(new ShardState(meta, IOTLB_HEADER_WORDS, shards), entries);
    this.#epoch = new Int32Array(meta, stateWords * 4, MAX_TAGS);
    this.#shifts = new Int32Array(meta, (stateWords + MAX_TAGS) * 4, MAX_TAGS);
    this.#asidEpoch = new Int32Array(meta, (stateWords + 2 * MAX_TAGS) * 4, ASID_EPOCHS);
    this.#slots = new Int32Array(slots);
    const head = this.st.meta;
    if (handles === undefined) {
      head[Header.Clock] = 1;
      head[BY_TAG] = byTag ? 1 : 0;
    }
    // An attacher takes the sharding from the buffer: a disagreement would hide entries from
    // the invalidations of another thread.
    this.#byTag = head[BY_TAG] === 1;
  }

  /** The buffers to hand to a worker (with the same `entries` and `shards`). */
  handles(): IotlbHandles {
    return { meta: this.st.meta.buffer as SharedArrayBuffer, slots: this.#slots.buffer as SharedArrayBuffer };
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
    return Math.max(this.#epoch[tag & DOMAIN_BITS]!, this.st.globalEpoch(), this.#asidEpoch[this.#asidSlot(tag)]!);
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
    // The epoch floor is read on a key match only (a miss, the common case in a fault stream,
    // never needs it); a lookup that starts after a flush still reads the flush's floor.
    let floor = -1;
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
        if (floor === -1) floor = this.#floor(tag);
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
    return this.st.seq(this.shardOf(tag, iova));
  }

  /** Step 1 of a fill, before the walk: the clock. */
  fillClock(): number {
    return this.st.clock();
  }

  /**
   * Steps 2–4 of a fill: try the owner word without waiting; insert with stamp `c0` only if the
   * invalidation sequence is still `s0`; release. `pa` is the output of `iova`; `shift` the
   * leaf's size; `unit` the size of the translation an invalidation of any address in it must
   * drop whole (WalkFault.unitShift: a nested walk's stage-1 leaf), if larger. Returns whether
   * the entry was inserted (a skipped fill counts as discarded).
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
    unit = 0,
  ): boolean {
    const shard = this.shardOf(tag, iova);
    const st = this.st;
    if (!st.tryOwn(shard, owner)) {
      st.count(shard, ShardWord.Discarded);
      return false;
    }
    // Refused: a sequence that moved (an invalidation raced the walk), a stamp from before a
    // rollover (above the clock), or an address the slot cannot hold (PA >= 2^32).
    if ((this.fillGuard && st.seq(shard) !== s0) || c0 > st.clock() || pa >= 4294967296) {
      st.release(shard, false);
      st.count(shard, ShardWord.Discarded);
      return false;
    }
    this.#insert(shard, tag, iova, pa, shift, access, c0, unit);
    st.release(shard, false);
    return true;
  }

  /**
   * Inserts an entry into `shard`, whose owner word the caller holds and whose invalidation
   * sequence it has checked (a companion table's fill: the shadow's, which fills both under one
   * owner word). `c0` is the clock read before the walk; `unit` as {@link fill}'s.
   */
  insertOwned(
    shard: number,
    tag: number,
    iova: number,
    pa: number,
    shift: number,
    access: number,
    c0: number,
    unit = 0,
  ): void {
    if (pa >= 4294967296) return;
    this.#insert(shard, tag, iova, pa, shift, access, c0, unit);
  }

  #insert(
    shard: number,
    tag: number,
    iova: number,
    pa: number,
    shift: number,
    access: number,
    c0: number,
    unit: number,
  ): void {
    const st = this.st;
    if (unit < shift) unit = shift;
    if (shift > MAX_CACHED_SHIFT) shift = MAX_CACHED_SHIFT;
    // Stored smaller than its unit: the domain's range invalidations widen to whole units. Set
    // before the entry is, under the owner word an invalidation of this region takes first.
    if (unit > shift) this.raiseUnit(tag & DOMAIN_BITS, unit);
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
      victim = base + (st.nextHand(shard) & (WAYS - 1)) * SLOT_WORDS;
      st.count(shard, ShardWord.Evictions);
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
    st.count(shard, ShardWord.Fills);
  }

  /**
   * Records that domain `dom` caches pieces of translations of 2^`unit` bytes (see {@link
   * fill}'s `unit`): its range invalidations widen to them from now on. For a companion table
   * that holds such pieces (the shadow); a compare-and-swap loop, rare.
   */
  raiseUnit(dom: number, unit: number): void {
    const shifts = this.#shifts;
    for (;;) {
      const w = Atomics.load(shifts, dom);
      if ((w & UNIT_MASK) >>> UNIT_SHIFT >= unit) return;
      if (Atomics.compareExchange(shifts, dom, w, (w & ~UNIT_MASK) | (unit << UNIT_SHIFT)) === w) return;
    }
  }

  /**
   * log2 of the largest translation unit domain `tag` caches in smaller entries (see {@link
   * fill}'s `unit`), or 0: a range invalidation of the domain covers the units it touches.
   */
  unitShiftOf(tag: number): number {
    return (Atomics.load(this.#shifts, tag & DOMAIN_BITS) & UNIT_MASK) >>> UNIT_SHIFT;
  }

  // ---- companion tables (the shadow) --------------------------------------------------------

  /**
   * The shard state (owner words, invalidation sequences, clock, global epoch) for a companion
   * table that lives under it: the software-nesting shadow, whose entries the IOTLB's owner
   * words, sequences and epochs govern too, so one owner word and one sequence cover both.
   */
  sharedState(): ShardState {
    return this.st;
  }

  /** The epoch floor of tag word `tag`: an entry stamped at or below it is dead (a companion's lookups). */
  floorOf(tag: number): number {
    return this.#floor(tag);
  }

  /**
   * Clears `tag`'s entries in [iova, iova+length) that `shard` holds, without moving its
   * sequence: for a caller that holds the owner word and has moved it already (or is the fill).
   * Exactly the range: a caller that acts on a guest's invalidation widens it to the domain's
   * units itself ({@link unitShiftOf}).
   */
  clearOwned(shard: number, tag: number, iova: number, length: number): number {
    const end = iova + length;
    let cleared = 0;
    for (let region = Math.floor(iova / 2097152) * 2097152; region < end; region += 2097152) {
      if (this.shardOf(tag, region) !== shard) continue;
      cleared += this.#clearRegion(shard, tag, Math.max(iova, region), Math.min(end, region + 2097152));
    }
    return cleared;
  }

  /** Registers a companion's part of the rollover (emptying its slots), run under every owner word. */
  onRollover(clear: () => void): void {
    this.#companions.push(clear);
  }

  // ---- invalidation -------------------------------------------------------------------------

  /** A dead worker's owner word was taken back: what it may have left half done goes. */

  /**
   * "Every ASID of domain `tag`": the domain's tag word when it only ever cached ASID 0, else -1
   * after flushing the whole domain (an over-invalidation, counted in `shard`): its entries are
   * not indexed by address alone.
   */
  #allAsids(tag: number, shard: number): number {
    const dom = tag & DOMAIN_BITS;
    if ((this.#shifts[dom]! & HAS_ASIDS) === 0) return dom;
    this.flushTag(dom);
    this.st.count(shard, ShardWord.OverInvalidations);
    return -1;
  }

  /**
   * Invalidates [iova, iova+length) under `tag`, shard by shard under its owner word, bumping the
   * shard's invalidation sequence before probing. A range of more than `maxPages` pages at its
   * smallest cached size flushes the whole tag instead (an over-invalidation, as Linux's
   * CMDQ_MAX_TLBI_OPS does). `tag` is a tag word, or a domain with `asid` = ALL_ASIDS for every
   * ASID of the domain (see `#allAsids`). Returns the entries cleared.
   */
  invalidateRange(tag: number, iova: number, length: number, maxPages = 512, asid = 0): number {
    if (length <= 0) return 0;
    if (asid === ALL_ASIDS && (tag = this.#allAsids(tag, 0)) < 0) return 0;
    const mask = this.#shifts[tag & DOMAIN_BITS]! & SHIFT_BITS;
    const end = iova + length;
    const firstRegion = Math.floor(iova / 2 ** 21) * 2 ** 21;
    const regions = (end - firstRegion) / 2 ** 21;
    const smallest = mask === 0 ? 21 : 31 - Math.clz32(mask & -mask);
    if (length / 2 ** smallest > maxPages || regions > maxPages) {
      // The epoch also defeats fills in flight: their stamps predate it.
      this.flushTag(tag & DOMAIN_BITS);
      this.st.count(0, ShardWord.OverInvalidations);
      return 0;
    }
    let cleared = 0;
    for (let region = firstRegion; region < end; region += 2 ** 21) {
      const shard = this.shardOf(tag, region);
      this.st.own(shard, this.onSteal);
      // Even with nothing cached yet, the sequence moves: a walk in flight must not fill.
      this.st.bumpSeq(shard);
      const n = this.#clearUnits(shard, tag, Math.max(iova, region), Math.min(end, region + 2 ** 21));
      this.st.release(shard);
      if (n < 0) return cleared;
      cleared += n;
    }
    return cleared;
  }

  /**
   * {@link #clearRegion} of [lo, hi) widened to the domain's translation units (read after the
   * caller moved the sequence, so a fill that raised the unit is either seen or refused). A unit
   * beyond the 2 MiB region flushes the tag (an over-invalidation) and returns -1.
   */
  #clearUnits(shard: number, tag: number, lo: number, hi: number): number {
    const unit = this.unitShiftOf(tag);
    if (unit > MAX_CACHED_SHIFT) {
      this.flushTag(tag & DOMAIN_BITS);
      this.st.count(shard, ShardWord.OverInvalidations);
      return -1;
    }
    if (unit > 12) {
      // Inside the region: a unit of at most 2 MiB never crosses it.
      const size = POW2[unit]!;
      lo = Math.floor(lo / size) * size;
      hi = Math.ceil(hi / size) * size;
    }
    return this.#clearRegion(shard, tag, lo, hi);
  }

  /** Clears `tag`'s entries of every cached size in [lo, hi), inside one 2 MiB region of `shard`. */
  #clearRegion(shard: number, tag: number, lo: number, hi: number): number {
    let cleared = 0;
    for (let m = this.#shifts[tag & DOMAIN_BITS]! & SHIFT_BITS; m !== 0; m &= m - 1) {
      const shift = 31 - Math.clz32(m & -m);
      const size = POW2[shift]!;
      for (let page = Math.floor(lo / size); page * size < hi; page++)
        cleared += this.#clearPage(shard, tag, page, shift);
    }
    this.st.count(shard, ShardWord.Invalidated, cleared);
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

  /**
   * The part of a range invalidation that falls in `shard`'s regions, run by the shard's owner
   * (the caller holds the owner word): bumps the invalidation sequence, then clears. With `asid`
   * = ALL_ASIDS, `tag` is a domain and every ASID of it goes (see `#allAsids`).
   */
  invalidateRangeInShard(shard: number, tag: number, iova: number, length: number, asid = 0): number {
    this.st.bumpSeq(shard);
    if (asid === ALL_ASIDS && (tag = this.#allAsids(tag, shard)) < 0) return 0;
    const end = iova + length;
    let cleared = 0;
    for (let region = Math.floor(iova / 2097152) * 2097152; region < end; region += 2097152) {
      if (this.shardOf(tag, region) !== shard) continue;
      const n = this.#clearUnits(shard, tag, Math.max(iova, region), Math.min(end, region + 2097152));
      if (n < 0) return cleared;
      cleared += n;
    }
    return cleared;
  }

  /** Advances the clock and returns the value before (rolling the table over near the limit). */
  #tick(): number {
    return this.st.tick(this.#clear);
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
    Atomics.store(this.st.meta, Header.GlobalEpoch, this.#tick());
  }

  /**
   * Prepares a tag slot for a new domain: it takes the current clock, so entries of the domain
   * that used the index before can never come back, and forgets the leaf sizes it used.
   */
  resetTag(tag: number): void {
    Atomics.store(this.#epoch, tag, this.#tick());
    Atomics.store(this.#shifts, tag, 0);
  }

  /** The rollover's part for this table (under every owner word): empty the slots and epochs. */
  readonly #clear = (): void => {
    clearSlots(this.#slots, SLOT_WORDS);
    for (let t = 0; t < MAX_TAGS; t++) Atomics.store(this.#epoch, t, 0);
    for (let t = 0; t < ASID_EPOCHS; t++) Atomics.store(this.#asidEpoch, t, 0);
    for (const c of this.#companions) c();
  };
}
