import type { WalkFault } from '../pgtable/types.js';
import type { Iotlb } from './iotlb.js';
import { clearSlots, mix, ShardedTable, type ShardState, ShardWord, WAYS } from './shards.js';

/*
 * The software-nesting shadow (DESIGN.md "Nesting, shadow updates and replace"): for a nested
 * domain in software mode, a table from IOVA page to host page that stands in for the
 * two-dimensional walk, as a shadow page table does for an IOMMU without nesting. It is a cache
 * of the nested walk: a translation that misses it runs the nested walk and fills it.
 *
 * - Entries are 4 KiB pages, tagged like the IOTLB (domain descriptor | ASID << 12), in the
 *   shard of hash(domain, IOVA >> 21): the shard that owns the IOTLB's entries of that region.
 * - The shadow has no owner words, sequences, clock or epochs of its own: it lives under the
 *   IOTLB's (Iotlb.sharedState). A fill of both happens under one owner word after one sequence
 *   check; every flush of a tag in the IOTLB (an epoch) flushes its shadow entries too; a
 *   rollover empties both.
 * - Every shadow entry records the guest-physical page that stage 1 produced, and is linked into
 *   a per-shard reverse index (buckets by guest-physical page, chains through the slots): a
 *   stage-2 change finds the entries that depend on a guest-physical page without a scan. The
 *   stage-1 table pages that fills read are kept per shard as (domain, page) pairs: a stage-2
 *   change of one of them drops that domain's entries of the shard.
 * - IOTLB entries of a shadowed tag are only filled together with, or from, a shadow entry, at
 *   4 KiB, so dropping the shadow entry and its IOTLB page leaves nothing derived behind. Any
 *   removal or rewrite moves the shard's sequence, so a fill from an entry read before is refused.
 *
 * Lookups are lock-free (a slot version read before and after, as the IOTLB's); everything else
 * runs under the shard's owner word.
 */

/** Words per slot: [version, tag, page lo, page hi, pa, granted | (pasid + 1) << 8, stamp, gpa page]. */
const SLOT_WORDS = 8;
/** (domain + 1, stage-1 table gpa page) pairs each shard's table-page set holds. */
export const SHADOW_TABLE_PAGES = 4096;
const TP_LIMIT = (SHADOW_TABLE_PAGES * 3) >> 2; // beyond 3/4 full the set overflows
const TP_WORDS = SHADOW_TABLE_PAGES * 2 + 2; // pairs, then [count, overflowed]
const DOMAIN_BITS = 0xfff;
/** Granted-access bits of a prefetch: read, as an unprivileged requester (the IOTLB's "user" bit). */
const GRANT_READ = 1 | 8;
const GRANT_WRITE = 2;

/** Per-shard counters of the shadow, after the IOTLB's (its fills, discards and evictions are counted there too). */
const C = { Fills: 0, Hits: 1, Rewritten: 2, Prefetched: 3, Dropped: 4, S2Dropped: 5, Evictions: 6, Overflows: 7 };
const COUNTER_WORDS = 8;

/** The shared buffers of a shadow. */
export interface ShadowHandles {
  /** The slots. */
  slots: SharedArrayBuffer;
  /** Reverse-index links (one per slot), bucket heads (one per slot), counters. */
  links: SharedArrayBuffer;
  /** The per-shard table-page sets. */
  tablePages: SharedArrayBuffer;
}

/** Counters of a shadow. */
export interface ShadowCounters {
  /** Entries filled after a shadow miss (and the nested walk). */
  fills: number;
  /** Entries rewritten by a shadow sync (the guest's stage 1 changed the page). */
  rewritten: number;
  /** Entries installed by a shadow sync before any translation asked (caching-mode guests). */
  prefetched: number;
  /** Entries dropped by a shadow sync (the page is no longer mapped at stage 1). */
  dropped: number;
  /** Entries dropped by stage-2 changes, through the reverse index or a table page. */
  s2Dropped: number;
  /** Live entries replaced to make room. */
  evictions: number;
  /** Table-page sets that overflowed (each dropped its shard's entries at the next stage-2 change). */
  overflows: number;
}

/**
 * What a shard needs to re-walk a nested domain's guest tables (software nesting): the translate
 * layer implements it over the shared context tables, so the cache layer does not import it.
 */
export interface ShadowWalker {
  /** The fault record of the last walk (gpa, tableGpas, tableCount, leafWritable after a success). */
  readonly fault: WalkFault;
  /**
   * Walks `iova` for `access` in nested descriptor `domain` for a request with `pasid` (or -1);
   * returns the host address or a negative fault. With tag checking, returns -1 (a fault) when
   * the request's IOTLB tag word would not be `tag` any more (an Arm CD changed its ASID).
   */
  walk(tag: number, pasid: number, iova: number, access: number): number;
  /** Whether entries of `domain` may be installed before a translation asks (VT-d: one stage-1 table per descriptor). */
  canPrefetch(domain: number): boolean;
  /** The nest parent's descriptor of nested descriptor `domain` (0 if none). */
  parentOf(domain: number): number;
}

/** The shadow. Create it on the control plane over the fd's IOTLB; attach in a worker with its handles. */
export class ShadowTable {
  /** Shards (the IOTLB's). */
  readonly shards: number;
  /** Sets per shard. */
  readonly setsPerShard: number;
  readonly #iotlb: Iotlb;
  readonly #st: ShardState;
  readonly #slots: Int32Array;
  readonly #next: Int32Array;
  readonly #heads: Int32Array;
  readonly #counters: Int32Array;
  readonly #tp: Int32Array;
  readonly #perShard: number;

  /** A shadow of about `entries` pages over `iotlb`'s shards, or attached to `handles`. */
  constructor(iotlb: Iotlb, entries: number, handles?: ShadowHandles) {
    this.#iotlb = iotlb;
    this.#st = iotlb.sharedState();
    this.shards = iotlb.shards;
    this.setsPerShard = ShardedTable.setsFor(entries, this.shards);
    const perShard = this.setsPerShard * WAYS;
    this.#perShard = perShard;
    const total = perShard * this.shards;
    this.#slots = new Int32Array(handles?.slots ?? new SharedArrayBuffer(total * SLOT_WORDS * 4));
    const links = handles?.links ?? new SharedArrayBuffer((2 * total + COUNTER_WORDS * this.shards) * 4);
    this.#next = new Int32Array(links, 0, total);
    this.#heads = new Int32Array(links, total * 4, total);
    this.#counters = new Int32Array(links, 2 * total * 4, COUNTER_WORDS * this.shards);
    this.#tp = new Int32Array(handles?.tablePages ?? new SharedArrayBuffer(TP_WORDS * this.shards * 4));
    iotlb.onRollover(this.#clearAll);
  }

  /** The buffers to hand to another thread (with the same `entries`, over the same IOTLB). */
  handles(): ShadowHandles {
    return {
      slots: this.#slots.buffer as SharedArrayBuffer,
      links: this.#next.buffer as SharedArrayBuffer,
      tablePages: this.#tp.buffer as SharedArrayBuffer,
    };
  }

  /** Pages the shadow holds at most. */
  get capacity(): number {
    return this.#perShard * this.shards;
  }

  /** The shard of (tag, iova): the IOTLB's. */
  shardOf(tag: number, iova: number): number {
    return this.#iotlb.shardOf(tag, iova);
  }

  #setBase(shard: number, tag: number, page: number): number {
    return shard * this.#perShard + (mix(tag ^ 0x5ad0, page | 0) & (this.setsPerShard - 1)) * WAYS;
  }

  #bucket(shard: number, gpaPage: number): number {
    return shard * this.#perShard + (mix(gpaPage, 0x6a) & (this.#perShard - 1));
  }

  // ---- lookup (any thread, lock-free, allocation-free) --------------------------------------

  /** The host address of `iova` under tag word `tag` if the shadow holds it with every bit of `access` granted, else -1. */
  lookup(tag: number, iova: number, access: number): number {
    const page = Math.floor(iova / 4096);
    const keyLo = page | 0;
    const keyHi = (page / 4294967296) | 0;
    const slots = this.#slots;
    const shard = this.shardOf(tag, iova);
    let slot = this.#setBase(shard, tag, page);
    for (let w = 0; w < WAYS; w++, slot++) {
      const at = slot * SLOT_WORDS;
      if (slots[at + 1] !== tag || slots[at + 2] !== keyLo || slots[at + 3] !== keyHi) continue;
      const v1 = Atomics.load(slots, at);
      const pa = slots[at + 4]! >>> 0;
      const granted = slots[at + 5]! & 0xff;
      const stamp = slots[at + 6]!;
      const same = slots[at + 1] === tag && slots[at + 2] === keyLo && slots[at + 3] === keyHi;
      if ((v1 & 1) !== 0 || Atomics.load(slots, at) !== v1 || !same) continue;
      if (stamp <= this.#iotlb.floorOf(tag) || (access & ~granted) !== 0) return -1;
      Atomics.add(this.#counters, shard * COUNTER_WORDS + C.Hits, 1);
      return pa + (iova % 4096);
    }
    return -1;
  }

  // ---- fill (any thread: the IOTLB's fill protocol, both tables under one owner word) -------

  /**
   * Fills the shadow entry of `iova` from a nested walk that returned `pa` (its fault record
   * `f` holds the guest-physical page and table pages), and with `iotlbToo` the IOTLB entry at
   * 4 KiB, under the shard's owner word taken without waiting, if its sequence is still `s0`
   * (read before the walk, with the clock `c0`). Returns whether the entries went in.
   */
  fill(
    tag: number,
    pasid: number,
    iova: number,
    pa: number,
    access: number,
    f: { gpa: number; tableGpas: Float64Array; tableCount: number; unitShift: number },
    s0: number,
    c0: number,
    owner: number,
    iotlbToo: boolean,
  ): boolean {
    const shard = this.shardOf(tag, iova);
    const st = this.#st;
    if (!st.tryOwn(shard, owner)) {
      st.count(shard, ShardWord.Discarded);
      return false;
    }
    // Refused: a sequence that moved, a stamp from before a rollover, or an address a slot
    // cannot hold (host pages below 2^32 bytes, guest pages below 2^44 bytes).
    const gpaPage = Math.floor(f.gpa / 4096);
    if (st.seq(shard) !== s0 || c0 > st.clock() || pa >= 4294967296 || gpaPage >= 4294967296) {
      st.release(shard, false);
      st.count(shard, ShardWord.Discarded);
      return false;
    }
    const page = Math.floor(iova / 4096);
    // A piece of a stage-1 block: the domain's syncs widen to whole blocks (before the entry
    // is visible, under the owner word a sync of this region takes).
    if (f.unitShift > 12) this.#iotlb.raiseUnit(tag & DOMAIN_BITS, f.unitShift);
    this.#put(shard, tag, pasid, page, pa - (pa % 4096), access, c0, gpaPage, true);
    for (let k = 0; k < f.tableCount; k++) this.#addTablePage(shard, tag & DOMAIN_BITS, f.tableGpas[k]! / 4096);
    if (iotlbToo) this.#iotlb.insertOwned(shard, tag, iova, pa, 12, access, c0);
    this.#count(shard, C.Fills);
    st.release(shard, false);
    return true;
  }

  /**
   * Writes the entry (tag, page) in `shard` (owned): unions the grant with a fresh entry of the
   * same output, relinks it if its guest page changed, or takes a free, dead or (round-robin)
   * live slot; evicting a live one drops its IOTLB page and moves the sequence.
   */
  #put(
    shard: number,
    tag: number,
    pasid: number,
    page: number,
    paPage: number,
    granted: number,
    stamp: number,
    gpaPage: number,
    union: boolean,
  ): void {
    const slots = this.#slots;
    const keyLo = page | 0;
    const keyHi = (page / 4294967296) | 0;
    const base = this.#setBase(shard, tag, page);
    let victim = -1;
    let free = -1;
    for (let w = 0; w < WAYS; w++) {
      const at = (base + w) * SLOT_WORDS;
      if (slots[at + 1] === tag && slots[at + 2] === keyLo && slots[at + 3] === keyHi) {
        victim = base + w;
        break;
      }
      if (free < 0 && (slots[at + 1] === 0 || slots[at + 6]! <= this.#iotlb.floorOf(slots[at + 1]!))) free = base + w;
    }
    if (victim >= 0) {
      const at = victim * SLOT_WORDS;
      const fresh = slots[at + 6]! > this.#iotlb.floorOf(tag);
      if (union && fresh && slots[at + 4]! >>> 0 === paPage && slots[at + 7]! >>> 0 === gpaPage)
        granted |= slots[at + 5]! & 0xff;
    } else if (free >= 0) {
      victim = free;
    } else {
      victim = base + (this.#st.nextHand(shard) & (WAYS - 1));
      this.#evict(shard, victim);
    }
    const at = victim * SLOT_WORDS;
    const oldTag = slots[at + 1]!;
    if (oldTag !== 0) this.#unlink(shard, victim);
    const v = slots[at]!;
    Atomics.store(slots, at, (v + 1) | 1);
    slots[at + 1] = tag;
    slots[at + 2] = keyLo;
    slots[at + 3] = keyHi;
    slots[at + 4] = paPage | 0;
    slots[at + 5] = granted | ((pasid + 1) << 8);
    slots[at + 6] = stamp;
    slots[at + 7] = gpaPage | 0;
    Atomics.store(slots, at, ((v + 1) | 1) + 1);
    const b = this.#bucket(shard, gpaPage);
    this.#next[victim] = this.#heads[b]!;
    this.#heads[b] = victim + 1;
    // A rewrite or an eviction changed what a lock-free reader may have read: move the sequence
    // after the write too, so an IOTLB fill from the old contents is refused.
    if (oldTag !== 0) this.#st.bumpSeq(shard);
  }

  /** Evicts live slot `slot` of `shard` (owned): its IOTLB page goes, and the sequence moves. */
  #evict(shard: number, slot: number): void {
    const at = slot * SLOT_WORDS;
    const tag = this.#slots[at + 1]!;
    if (tag === 0) return;
    this.#st.bumpSeq(shard);
    this.#iotlb.clearOwned(shard, tag, this.#iovaOf(at), 4096);
    this.#count(shard, C.Evictions);
  }

  #iovaOf(at: number): number {
    return ((this.#slots[at + 3]! >>> 0) * 4294967296 + (this.#slots[at + 2]! >>> 0)) * 4096;
  }

  /** Removes slot `slot` from its reverse-index chain. */
  #unlink(shard: number, slot: number): void {
    const b = this.#bucket(shard, this.#slots[slot * SLOT_WORDS + 7]! >>> 0);
    const heads = this.#heads;
    const next = this.#next;
    if (heads[b] === slot + 1) {
      heads[b] = next[slot]!;
    } else {
      for (let s = heads[b]! - 1; s >= 0; s = next[s]! - 1) {
        if (next[s] === slot + 1) {
          next[s] = next[slot]!;
          break;
        }
      }
    }
    next[slot] = 0;
  }

  /** Clears slot `slot` of `shard` (owned), and its IOTLB page. */
  #drop(shard: number, slot: number): void {
    const slots = this.#slots;
    const at = slot * SLOT_WORDS;
    const tag = slots[at + 1]!;
    this.#unlink(shard, slot);
    const v = slots[at]!;
    Atomics.store(slots, at, (v + 1) | 1);
    slots[at + 1] = 0;
    Atomics.store(slots, at, ((v + 1) | 1) + 1);
    this.#iotlb.clearOwned(shard, tag, this.#iovaOf(at), 4096);
  }

  /** The slot of (tag, page) in `shard`, live or dead, or -1. */
  #find(shard: number, tag: number, page: number): number {
    const slots = this.#slots;
    const keyLo = page | 0;
    const keyHi = (page / 4294967296) | 0;
    const base = this.#setBase(shard, tag, page);
    for (let w = 0; w < WAYS; w++) {
      const at = (base + w) * SLOT_WORDS;
      if (slots[at + 1] === tag && slots[at + 2] === keyLo && slots[at + 3] === keyHi) return base + w;
    }
    return -1;
  }

  // ---- the table-page sets ----------------------------------------------------------------

  #addTablePage(shard: number, domain: number, gpaPage: number): void {
    const tp = this.#tp;
    const base = shard * TP_WORDS;
    if (tp[base + SHADOW_TABLE_PAGES * 2 + 1] !== 0) return; // overflowed: everything is suspect anyway
    let i = mix(domain, gpaPage | 0) & (SHADOW_TABLE_PAGES - 1);
    for (;;) {
      const at = base + i * 2;
      const d = tp[at]!;
      if (d === 0) break;
      if (d === domain + 1 && tp[at + 1] === (gpaPage | 0)) return;
      i = (i + 1) & (SHADOW_TABLE_PAGES - 1);
    }
    const count = base + SHADOW_TABLE_PAGES * 2;
    if (tp[count]! >= TP_LIMIT) {
      tp[count + 1] = 1;
      this.#count(shard, C.Overflows);
      return;
    }
    tp[base + i * 2] = domain + 1;
    tp[base + i * 2 + 1] = gpaPage | 0;
    tp[count] = tp[count]! + 1;
  }

  // ---- shard operations (the owner runs them: the pipeline's executor) ----------------------

  /**
   * A shadow sync (Op.ShadowSync), the part of [iova, iova+length) that `shard` owns: moves the
   * sequence, then re-walks the guest's tables page by page and rewrites each entry of tag word
   * `tag` (or drops it if stage 1 no longer maps the page), prefetching pages no translation has
   * asked for yet when the walker allows it (so a caching-mode guest that invalidates after a
   * map sees no shadow miss); then drops the tag's IOTLB entries of the range. A prefetch grants
   * read, and write only if neither stage would change or refuse a write. Returns the pages
   * written or dropped.
   */
  syncInShard(shard: number, tag: number, iova: number, length: number, walker: ShadowWalker): number {
    const st = this.#st;
    st.bumpSeq(shard);
    const stamp = st.clock();
    const f = walker.fault;
    const domain = tag & DOMAIN_BITS;
    // An invalidation of any address of a stage-1 block is one of the whole block, whose pieces
    // the domain holds (the unit, read after the sequence moved: a fill that raised it is seen
    // or refused). Blocks beyond the 2 MiB region: the tag goes (an over-invalidation).
    const unit = this.#iotlb.unitShiftOf(tag);
    if (unit > 21) {
      this.#iotlb.flushTag(domain);
      st.count(shard, ShardWord.OverInvalidations);
      st.bumpSeq(shard);
      return 0;
    }
    const usize = unit > 12 ? 2 ** unit : 4096;
    const prefetch = tag === domain && walker.canPrefetch(domain);
    const end = iova + length;
    let done = 0;
    for (let region = Math.floor(iova / 2097152) * 2097152; region < end; region += 2097152) {
      if (this.shardOf(tag, region) !== shard) continue;
      const lo = Math.max(iova, region);
      const hi = Math.min(end, region + 2097152);
      // Widened to whole units (inside the region): entries there are re-walked, but only the
      // invalidated pages are prefetched.
      const wlo = Math.floor(lo / usize) * usize;
      const whi = Math.ceil(hi / usize) * usize;
      for (let page = wlo / 4096; page * 4096 < whi; page++) {
        const slot = this.#find(shard, tag, page);
        const live = slot >= 0 && this.#slots[slot * SLOT_WORDS + 6]! > this.#iotlb.floorOf(tag);
        if (!live && (!prefetch || page * 4096 < lo || page * 4096 >= hi)) {
          if (slot >= 0) this.#drop(shard, slot);
          continue;
        }
        const pasid = slot >= 0 ? ((this.#slots[slot * SLOT_WORDS + 5]! >>> 8) & 0x1fffff) - 1 : -1;
        const pa = walker.walk(tag, pasid, page * 4096, 1);
        if (pa < 0 || pa >= 4294967296 || f.gpa >= 2 ** 44) {
          if (slot >= 0) {
            this.#drop(shard, slot);
            this.#count(shard, C.Dropped);
            done++;
          }
          continue;
        }
        const gpaPage = Math.floor(f.gpa / 4096);
        const tables = f.tableCount;
        for (let k = 0; k < tables; k++) this.#addTablePage(shard, domain, f.tableGpas[k]! / 4096);
        const granted = f.leafWritable !== 0 ? GRANT_READ | GRANT_WRITE : GRANT_READ;
        if (f.unitShift > 12) this.#iotlb.raiseUnit(domain, f.unitShift);
        this.#put(shard, tag, pasid, page, pa - (pa % 4096), granted, stamp, gpaPage, false);
        this.#count(shard, live ? C.Rewritten : C.Prefetched);
        done++;
      }
      this.#iotlb.clearOwned(shard, tag, wlo, whi - wlo);
    }
    // Again after the rewrite: a translation that read the sequence after the first move but the
    // old entry before its rewrite must not fill the IOTLB from it once the owner word is free.
    st.bumpSeq(shard);
    return done;
  }

  /**
   * A stage-2 change (Op.ShadowS2) of guest-physical pages [gpaPage, gpaPage+pages) of nest
   * parent `parent`, `shard`'s part: moves the sequence; drops every entry whose output is one of
   * the pages (through the reverse index), and every entry of a domain whose stage-1 tables were
   * read from one (through the table-page set), with their IOTLB pages. An overflowed set drops
   * the whole shard and starts again. Returns the entries dropped.
   */
  dropGpaInShard(shard: number, parent: number, gpaPage: number, pages: number, walker: ShadowWalker): number {
    this.#st.bumpSeq(shard);
    const tp = this.#tp;
    const base = shard * TP_WORDS;
    const count = base + SHADOW_TABLE_PAGES * 2;
    let dropped = 0;
    if (tp[count + 1] !== 0) {
      dropped += this.#dropWhere(shard, () => true);
      tp.fill(0, base, base + TP_WORDS);
    } else if (tp[count]! > 0) {
      const end = gpaPage + pages;
      for (let i = 0; i < SHADOW_TABLE_PAGES; i++) {
        const d = tp[base + i * 2]! - 1;
        if (d < 0) continue;
        const p = tp[base + i * 2 + 1]! >>> 0;
        if (p < gpaPage || p >= end || walker.parentOf(d) !== parent) continue;
        dropped += this.#dropWhere(shard, (t) => (t & DOMAIN_BITS) === d);
      }
    }
    const slots = this.#slots;
    for (let g = gpaPage; g < gpaPage + pages; g++) {
      const b = this.#bucket(shard, g);
      for (let s = this.#heads[b]! - 1; s >= 0;) {
        const nextSlot = this.#next[s]! - 1;
        const at = s * SLOT_WORDS;
        if (slots[at + 7]! >>> 0 === g && walker.parentOf(slots[at + 1]! & DOMAIN_BITS) === parent) {
          this.#drop(shard, s);
          dropped++;
        }
        s = nextSlot;
      }
    }
    this.#count(shard, C.S2Dropped, dropped);
    this.#st.bumpSeq(shard); // again after the drops (see syncInShard)
    return dropped;
  }

  /** Drops every slot of `shard` whose tag passes `which` (a scan: the rare table-page case). */
  #dropWhere(shard: number, which: (tag: number) => boolean): number {
    const slots = this.#slots;
    let n = 0;
    for (let s = shard * this.#perShard, end = s + this.#perShard; s < end; s++) {
      const tag = slots[s * SLOT_WORDS + 1]!;
      if (tag !== 0 && which(tag)) {
        this.#drop(shard, s);
        n++;
      }
    }
    return n;
  }

  // ---- bookkeeping --------------------------------------------------------------------------

  #count(shard: number, word: number, n = 1): void {
    Atomics.add(this.#counters, shard * COUNTER_WORDS + word, n);
  }

  /** Shadow hits (lookups that served a translation). */
  get hits(): number {
    let n = 0;
    for (let s = 0; s < this.shards; s++) n += Atomics.load(this.#counters, s * COUNTER_WORDS + C.Hits);
    return n;
  }

  /** The counters, summed over shards. */
  counters(): ShadowCounters {
    const sum = (k: number): number => {
      let n = 0;
      for (let s = 0; s < this.shards; s++) n += Atomics.load(this.#counters, s * COUNTER_WORDS + k);
      return n;
    };
    return {
      fills: sum(C.Fills),
      rewritten: sum(C.Rewritten),
      prefetched: sum(C.Prefetched),
      dropped: sum(C.Dropped),
      s2Dropped: sum(C.S2Dropped),
      evictions: sum(C.Evictions),
      overflows: sum(C.Overflows),
    };
  }

  /**
   * The live entries of domain `domain` (every ASID), for tests and `inspect`: IOVA, host
   * address, guest-physical address and granted access. A racy snapshot; allocates.
   */
  entries(domain: number): { tag: number; iova: number; pa: number; gpa: number; granted: number }[] {
    const slots = this.#slots;
    const out: { tag: number; iova: number; pa: number; gpa: number; granted: number }[] = [];
    for (let at = 0; at < slots.length; at += SLOT_WORDS) {
      const tag = slots[at + 1]!;
      if (tag === 0 || (tag & DOMAIN_BITS) !== domain || slots[at + 6]! <= this.#iotlb.floorOf(tag)) continue;
      out.push({
        tag,
        iova: this.#iovaOf(at),
        pa: slots[at + 4]! >>> 0,
        gpa: (slots[at + 7]! >>> 0) * 4096,
        granted: slots[at + 5]! & 0xff,
      });
    }
    return out.sort((a, b) => a.iova - b.iova);
  }

  /** The rollover's part (under every owner word): empty the slots, the index and the sets. */
  readonly #clearAll = (): void => {
    clearSlots(this.#slots, SLOT_WORDS);
    this.#next.fill(0);
    this.#heads.fill(0);
    this.#tp.fill(0);
  };
}
