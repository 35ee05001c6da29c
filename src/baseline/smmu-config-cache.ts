/**
 * A model of QEMU 7.2's SMMUv3 configuration cache (hw/arm/smmuv3.c `smmuv3_get_config`;
 * reference/viommu-queues.md §3.1, §3.2), not QEMU itself: one decoded STE + CD 0 per device
 * (`GHashTable configs` keyed by the device), filled on the first translation and unbounded.
 * CFGI_STE, CFGI_CD and CFGI_CD_ALL drop one device's entry (`smmuv3_flush_config`);
 * CFGI_STE_RANGE (and CFGI_ALL) scans every cached device (`g_hash_table_foreach_remove` with
 * `smmuv3_invalidate_ste`). Configurations that fail to decode are not cached.
 */
import { newConfigCacheStats, type QemuConfigCacheStats } from './counters.js';

/** A device's cached configuration, in what translation needs (QEMU `SMMUTransCfg`). */
export class SmmuCachedConfig {
  /** STE_CONFIG of the stages in effect (Bypass, S1, …), or -1 for an aborting STE. */
  kind = 0;
  asid = 0;
  vmid = 0;
  /** Stage-1 table (TTB0) and its packed walk configuration (0: TTB0 unusable). */
  ttb0 = 0;
  ttb0Cfg = 0;
  /** log2 of TTB0's granule. */
  granule0 = 0;
  /** SMMU_CFG_FLAG bits (CD.R and the rest, for fault recording). */
  flags = 0;
}

/** One SMMU's configuration cache. */
export class SmmuConfigCache {
  readonly #bySid = new Map<number, SmmuCachedConfig>();
  readonly #stats = newConfigCacheStats();

  /** The counters (a copy). */
  stats(): QemuConfigCacheStats {
    return { ...this.#stats, entries: this.#bySid.size };
  }

  /** The cached configuration of StreamID `sid`, or undefined (counted as a hit or a miss). */
  lookup(sid: number): SmmuCachedConfig | undefined {
    const c = this.#bySid.get(sid);
    if (c !== undefined) this.#stats.hits++;
    else this.#stats.misses++;
    return c;
  }

  /** A configuration object for `sid` to fill in, cached from now on. */
  fill(sid: number): SmmuCachedConfig {
    const c = new SmmuCachedConfig();
    this.#bySid.set(sid, c);
    return c;
  }

  /** CFGI_STE / CFGI_CD / CFGI_CD_ALL: drops the device's entry. */
  invalidateSid(sid: number): void {
    this.#stats.invalidations++;
    this.#bySid.delete(sid);
  }

  /** CFGI_STE_RANGE: drops every cached device with a StreamID in [first, last], by a full scan. */
  invalidateRange(first: number, last: number): void {
    const s = this.#stats;
    s.invalidations++;
    s.scans++;
    for (const sid of this.#bySid.keys()) {
      s.scannedEntries++;
      if (sid >= first && sid <= last) this.#bySid.delete(sid);
    }
  }

  /** Drops everything (a new stream table, SMMUEN toggled). */
  clear(): void {
    this.#bySid.clear();
  }
}
