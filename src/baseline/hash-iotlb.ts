import { newIotlbStats, type QemuIotlbStats } from './counters.js';

/**
 * What QEMU 7.2's two IOTLBs share (the SMMU's and intel-iommu's): one GHashTable of at most
 * `maxSize` entries, emptied whole when an insert finds it full (no LRU), and invalidations that
 * remove one exact key or scan the whole table with a callback (`g_hash_table_foreach_remove`).
 * Storage: a JS Map per tag (the key's context part) holding entries by an exact numeric key, so
 * no key needs more than 53 bits; a scan still visits every entry of every map. The vendor
 * tables ({@link SmmuIotlb}, {@link VtdIotlb}) add their keys, probes and scan predicates.
 */
export class QemuHashIotlb<E> {
  readonly #tags = new Map<number, Map<number, E>>();
  readonly #maxSize: number;
  #size = 0;
  /** The counters; subclasses count their own hits and misses. */
  protected readonly counters = newIotlbStats();

  /** A table of at most `maxSize` entries. */
  constructor(maxSize: number) {
    this.#maxSize = maxSize;
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  /** The counters (a copy). */
  stats(): QemuIotlbStats {
    return { ...this.counters, entries: this.#size };
  }

  /** A global invalidation: empties the table, counted as a guest's flush. */
  invalidateAll(): void {
    this.counters.flushes++;
    this.#clear();
  }

  /** Empties the table for the unit itself (a new table base, translation toggled): not counted as a flush. */
  reset(): void {
    this.#clear();
  }

  /** The entry of `tag` under `key`, or undefined (one probe; no counter moves). */
  protected probe(tag: number, key: number): E | undefined {
    return this.#tags.get(tag)?.get(key);
  }

  /** Inserts `e` under (`tag`, `key`), replacing an entry of the same key; a full table is emptied first. */
  protected put(tag: number, key: number, e: E): void {
    if (this.#size >= this.#maxSize) {
      this.counters.capacityFlushes++;
      this.#clear();
    }
    let map = this.#tags.get(tag);
    if (map === undefined) {
      map = new Map();
      this.#tags.set(tag, map);
    }
    const before = map.size;
    map.set(key, e);
    this.#size += map.size - before;
    this.counters.inserts++;
  }

  /** Removes the entry of (`tag`, `key`) if there is one (an exact-key invalidation); returns whether it did. */
  protected removeExact(tag: number, key: number): boolean {
    if (this.#tags.get(tag)?.delete(key) !== true) return false;
    this.#size--;
    this.counters.exactRemovals++;
    this.counters.removed++;
    return true;
  }

  /** One full-table scan, removing every entry `remove` accepts, as foreach_remove does. */
  protected scan(remove: (e: E) => boolean): void {
    const s = this.counters;
    s.scans++;
    let removed = 0;
    let scanned = 0;
    for (const map of this.#tags.values()) {
      for (const [key, e] of map) {
        scanned++;
        if (!remove(e)) continue;
        map.delete(key);
        removed++;
      }
    }
    this.#size -= removed;
    s.scannedEntries += scanned;
    s.removed += removed;
  }

  #clear(): void {
    this.counters.removed += this.#size;
    this.#tags.clear();
    this.#size = 0;
  }
}
