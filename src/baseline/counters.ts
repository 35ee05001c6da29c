/**
 * The counters the QEMU-style caches keep (src/baseline): what QEMU would show through its
 * `smmu_iotlb_*` / `vtd_iotlb_*` trace events, and what the model's cost is made of (entries
 * visited by full-table scans).
 */

/** Counters of a QEMU-style IOTLB. */
export interface QemuIotlbStats {
  /** Entries held now. */
  entries: number;
  /** Lookups that found an entry, and lookups that did not (one per translation, not per probe). */
  hits: number;
  misses: number;
  /** Entries inserted after a walk. */
  inserts: number;
  /** Inserts that found the table full and emptied it first (QEMU's own flush, not a guest command). */
  capacityFlushes: number;
  /** Whole-table flushes asked by the guest (global invalidations). */
  flushes: number;
  /** Full-table scans (`g_hash_table_foreach_remove`), and the entries they visited and removed. */
  scans: number;
  scannedEntries: number;
  removed: number;
  /** Invalidations served by one exact-key removal (SMMU TLBI_NH_VA with TTL, one page). */
  exactRemovals: number;
}

/** Fresh IOTLB counters. */
export function newIotlbStats(): QemuIotlbStats {
  return {
    entries: 0,
    hits: 0,
    misses: 0,
    inserts: 0,
    capacityFlushes: 0,
    flushes: 0,
    scans: 0,
    scannedEntries: 0,
    removed: 0,
    exactRemovals: 0,
  };
}

/** Counters of a QEMU-style configuration cache (VT-d context cache, SMMUv3 config cache). */
export interface QemuConfigCacheStats {
  /** Devices with a cached entry now (valid or not). */
  entries: number;
  /** Lookups that found a valid entry, and fetches from guest memory. */
  hits: number;
  misses: number;
  /** Invalidations by command (of any granularity). */
  invalidations: number;
  /** Scans over every cached device (a range or device-selective invalidation), and entries visited. */
  scans: number;
  scannedEntries: number;
}

/** Fresh configuration-cache counters. */
export function newConfigCacheStats(): QemuConfigCacheStats {
  return { entries: 0, hits: 0, misses: 0, invalidations: 0, scans: 0, scannedEntries: 0 };
}
