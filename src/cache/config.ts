/**
 * The config cache: decoded configuration structures (SMMU STEs and CDs; VT-d context entries
 * and PASID entries), cached as a set-associative table in shared memory with the protocol of
 * the IOTLB (DESIGN.md "Caches, shards and the concurrency protocol"):
 * - an entry is keyed by (SID, SSID/PASID), the SSID being {@link NO_SSID} for the stream-level
 *   entry (STE, context entry), and goes to the shard of hash(SID);
 * - each shard has an owner word and an invalidation sequence; fills are stamped with the clock
 *   read before the fetch and dropped if the sequence moved (the fill protocol);
 * - wide flushes are epochs: everything (global), a SID, a DID/VMID, a (DID, PASID); the three
 *   keyed ones live in hashed epoch tables, where a collision only over-invalidates;
 * - lookups are lock-free, confirmed by a slot version read before and after.
 *
 * The payload is the vendor's: {@link CONFIG_PAYLOAD_WORDS} words of a decoded structure that the
 * vendor model writes at fill and reads back on a hit, so a hit costs no guest-memory fetch and
 * no decode.
 */

import { Header, HEADER_WORDS, mix, ShardedTable, ShardState, ShardWord, WAYS, type CacheCounters } from './shards.js';

/** Payload words per entry (the vendor's decoded structure). */
export const CONFIG_PAYLOAD_WORDS = 8;
/** Words per slot: [version, SID + 1, SSID, DID, stamp, spare × 3, payload × 8] = 64 bytes. */
export const CONFIG_SLOT_WORDS = 16;
/** The SSID of a stream-level entry (STE, context entry). */
export const NO_SSID = -1;
/** Entries of each hashed epoch table (SID, DID, (DID, PASID)). */
export const CONFIG_EPOCHS = 4096;
/** A SID range longer than this is flushed with the global epoch (an over-invalidation). */
const MAX_SID_RANGE = CONFIG_EPOCHS;

/** The shared buffers of a config cache. */
export interface ConfigCacheHandles {
  meta: SharedArrayBuffer;
  slots: SharedArrayBuffer;
}

/** Counters of a config cache (hits and misses are per consumer: see {@link ConfigCache.hits}). */
export type ConfigCacheCounters = CacheCounters;

/** The config cache. Create it on the control plane; attach in a worker with its handles. */
export class ConfigCache extends ShardedTable {
  readonly #sidEpoch: Int32Array;
  readonly #didEpoch: Int32Array;
  readonly #didPasidEpoch: Int32Array;
  readonly #slots: Int32Array;
  /** Lookups that hit, on this thread's instance. */
  hits = 0;
  /** Lookups that missed, on this thread's instance. */
  misses = 0;
  /** The fill guard; only tests turn it off, to prove that they catch the race it closes. */
  fillGuard = true;

  /** Creates a cache of about `entries` slots over `shards` shards, or attaches to `handles`. */
  constructor(entries: number, shards: number, handles?: ConfigCacheHandles) {
    const sets = ShardedTable.setsFor(entries, shards);
    const stateWords = ShardState.metaWords(HEADER_WORDS, shards);
    const meta = handles?.meta ?? new SharedArrayBuffer((stateWords + 3 * CONFIG_EPOCHS) * 4);
    const slots = handles?.slots ?? new SharedArrayBuffer(shards * sets * WAYS * CONFIG_SLOT_WORDS * 4);
    super(new ShardState(meta, HEADER_WORDS, shards), entries);
    let at = stateWords;
    const view = (words: number): Int32Array => {
      const v = new Int32Array(meta, at * 4, words);
      at += words;
      return v;
    };
    this.#sidEpoch = view(CONFIG_EPOCHS);
    this.#didEpoch = view(CONFIG_EPOCHS);
    this.#didPasidEpoch = view(CONFIG_EPOCHS);
    this.#slots = new Int32Array(slots);
    if (handles === undefined) this.st.meta[Header.Clock] = 1;
  }

  /** The buffers to hand to a worker (with the same `entries` and `shards`). */
  handles(): ConfigCacheHandles {
    return { meta: this.st.meta.buffer as SharedArrayBuffer, slots: this.#slots.buffer as SharedArrayBuffer };
  }

  /** Table bytes ÷ capacity. */
  get bytesPerEntry(): number {
    return this.#slots.byteLength / this.capacity;
  }

  /** The shard of a SID. */
  shardOf(sid: number): number {
    return mix(sid, 0x53494400) % this.shards;
  }

  #base(sid: number, ssid: number): number {
    const set = mix(sid ^ 0x5bd1e995, ssid) & (this.setsPerShard - 1);
    return (this.shardOf(sid) * this.setsPerShard + set) * WAYS * CONFIG_SLOT_WORDS;
  }

  #floor(sid: number, ssid: number, did: number): number {
    let f = Math.max(
      this.st.globalEpoch(),
      this.#sidEpoch[mix(sid, 1) & (CONFIG_EPOCHS - 1)]!,
      this.#didEpoch[mix(did, 2) & (CONFIG_EPOCHS - 1)]!,
    );
    if (ssid !== NO_SSID) f = Math.max(f, this.#didPasidEpoch[mix(did, ssid) & (CONFIG_EPOCHS - 1)]!);
    return f;
  }

  // ---- lookup (any thread, lock-free, allocation-free) --------------------------------------

  /**
   * Looks up (sid, ssid). On a hit, copies the payload into `out` (at least
   * {@link CONFIG_PAYLOAD_WORDS} words) and returns the entry's DID; on a miss returns -1.
   */
  lookup(sid: number, ssid: number, out: Int32Array): number {
    const slots = this.#slots;
    const key = (sid + 1) | 0;
    ssid |= 0;
    let at = this.#base(sid, ssid);
    for (let w = 0; w < WAYS; w++, at += CONFIG_SLOT_WORDS) {
      if (slots[at + 1] !== key || slots[at + 2] !== ssid) continue;
      const v1 = Atomics.load(slots, at);
      const did = slots[at + 3]!;
      const stamp = slots[at + 4]!;
      for (let k = 0; k < CONFIG_PAYLOAD_WORDS; k++) out[k] = slots[at + 8 + k]!;
      const same = slots[at + 1] === key && slots[at + 2] === ssid;
      if ((v1 & 1) !== 0 || Atomics.load(slots, at) !== v1 || !same) continue;
      if (stamp <= this.#floor(sid, ssid, did)) break;
      this.hits++;
      return did;
    }
    this.misses++;
    return -1;
  }

  // ---- fill (any thread; the fill protocol) -------------------------------------------------

  /** Step 1 of a fill, before the fetch: the SID's shard's invalidation sequence. */
  fillSeq(sid: number): number {
    return this.st.seq(this.shardOf(sid));
  }

  /** Step 1 of a fill, before the fetch: the clock. */
  fillClock(): number {
    return this.st.clock();
  }

  /**
   * Steps 2–4 of a fill: inserts (sid, ssid) → (did, payload) stamped `c0` if the owner word is
   * free and the shard's sequence is still `s0`. Returns whether it did.
   */
  fill(
    sid: number,
    ssid: number,
    did: number,
    payload: ArrayLike<number>,
    s0: number,
    c0: number,
    owner: number,
  ): boolean {
    const shard = this.shardOf(sid);
    const st = this.st;
    if (!st.tryOwn(shard, owner)) {
      st.count(shard, ShardWord.Discarded);
      return false;
    }
    if ((this.fillGuard && st.seq(shard) !== s0) || c0 > st.clock()) {
      st.release(shard, false);
      st.count(shard, ShardWord.Discarded);
      return false;
    }
    const slots = this.#slots;
    const key = (sid + 1) | 0;
    ssid |= 0;
    const base = this.#base(sid, ssid);
    let victim = -1;
    for (let w = 0, at = base; w < WAYS; w++, at += CONFIG_SLOT_WORDS) {
      if (slots[at + 1] === key && slots[at + 2] === ssid) {
        victim = at;
        break;
      }
      if (victim < 0 && slots[at + 1] === 0) victim = at;
    }
    if (victim < 0) {
      victim = base + (st.nextHand(shard) & (WAYS - 1)) * CONFIG_SLOT_WORDS;
      st.count(shard, ShardWord.Evictions);
    }
    const v = slots[victim]!;
    Atomics.store(slots, victim, (v + 1) | 1);
    slots[victim + 1] = key;
    slots[victim + 2] = ssid;
    slots[victim + 3] = did;
    slots[victim + 4] = c0;
    for (let k = 0; k < CONFIG_PAYLOAD_WORDS; k++) slots[victim + 8 + k] = payload[k] ?? 0;
    Atomics.store(slots, victim, ((v + 1) | 1) + 1);
    st.count(shard, ShardWord.Fills);
    st.release(shard, false);
    return true;
  }

  // ---- invalidation --------------------------------------------------------------------------

  /**
   * Drops the entry (sid, ssid), run by the owner of the SID's shard (the caller holds the owner
   * word): bumps the sequence, then clears. Returns the entries cleared (0 or 1).
   */
  invalidateInShard(shard: number, sid: number, ssid: number): number {
    this.st.bumpSeq(shard);
    if (this.shardOf(sid) !== shard) return 0;
    const slots = this.#slots;
    const key = (sid + 1) | 0;
    ssid |= 0;
    let at = this.#base(sid, ssid);
    let n = 0;
    for (let w = 0; w < WAYS; w++, at += CONFIG_SLOT_WORDS) {
      if (slots[at + 1] !== key || slots[at + 2] !== ssid) continue;
      const v = slots[at]!;
      Atomics.store(slots, at, (v + 1) | 1);
      slots[at + 1] = 0;
      Atomics.store(slots, at, ((v + 1) | 1) + 1);
      n++;
    }
    this.st.count(shard, ShardWord.Invalidated, n);
    return n;
  }

  /** Drops (sid, ssid) from the control plane: owns the SID's shard, clears, releases. */
  invalidate(sid: number, ssid: number): number {
    const shard = this.shardOf(sid);
    this.own(shard);
    try {
      return this.invalidateInShard(shard, sid, ssid);
    } finally {
      this.release(shard);
    }
  }

  #tick(): number {
    return this.st.tick(this.#clear);
  }

  /**
   * Flushes every entry of `count` SIDs from `sid` (stream and substream entries): one epoch store
   * per SID; a range longer than the SID epoch table is a global flush (an over-invalidation).
   */
  flushSids(sid: number, count = 1): void {
    if (count > MAX_SID_RANGE) {
      this.flushAll();
      this.st.count(0, ShardWord.OverInvalidations);
      return;
    }
    const c = this.#tick();
    for (let i = 0; i < Math.max(1, count); i++)
      Atomics.store(this.#sidEpoch, mix(sid + i, 1) & (CONFIG_EPOCHS - 1), c);
  }

  /** Flushes every entry whose DID (or VMID) is `did`. */
  flushDid(did: number): void {
    Atomics.store(this.#didEpoch, mix(did, 2) & (CONFIG_EPOCHS - 1), this.#tick());
  }

  /** Flushes every substream (PASID) entry whose DID is `did` and PASID is `pasid`. */
  flushDidPasid(did: number, pasid: number): void {
    Atomics.store(this.#didPasidEpoch, mix(did, pasid | 0) & (CONFIG_EPOCHS - 1), this.#tick());
  }

  /** Flushes everything. */
  flushAll(): void {
    Atomics.store(this.st.meta, Header.GlobalEpoch, this.#tick());
  }

  /** The rollover's part for this table (under every owner word): empty the slots and epochs. */
  readonly #clear = (): void => {
    const slots = this.#slots;
    for (let at = 0; at < slots.length; at += CONFIG_SLOT_WORDS) {
      const v = slots[at]!;
      Atomics.store(slots, at, (v + 1) | 1);
      slots[at + 1] = 0;
      slots[at + 4] = 0;
      Atomics.store(slots, at, ((v + 1) | 1) + 1);
    }
    for (const t of [this.#sidEpoch, this.#didEpoch, this.#didPasidEpoch])
      for (let k = 0; k < t.length; k++) Atomics.store(t, k, 0);
  };
}
