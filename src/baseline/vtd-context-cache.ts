/**
 * A model of QEMU 7.2's VT-d context cache (hw/i386/intel_iommu.c; reference/viommu-queues.md
 * §3.3, §3.4), not QEMU itself: the generation trick. Each device (QEMU's `VTDAddressSpace`)
 * embeds one cached context entry and the generation it was fetched under; it is valid only
 * while that equals the unit's `context_cache_gen`.
 *
 * - a global (or domain-selective, which QEMU treats as global) invalidation is `gen++`: O(1)
 *   (`vtd_context_global_invalidate`); when the counter reaches its maximum every device's
 *   generation is reset to 0 and the counter to 1 (`vtd_reset_context_cache_locked`);
 * - a device-selective invalidation visits every device and zeroes the generation of those that
 *   match the source id under the function mask (`vtd_context_device_invalidate`).
 *
 * The entry holds what translation needs of the fetched configuration (vendor/vtd/resolve.ts).
 */
import { newConfigCacheStats, type QemuConfigCacheStats } from './counters.js';

/** QEMU's `VTD_CONTEXT_CACHE_GEN_MAX`. */
export const VTD_CONTEXT_CACHE_GEN_MAX = 0xffffffff;

/** The function-number bits a device-selective invalidation ignores, by FM (QEMU's `mask`). */
const FM_IGNORED = [0, 4, 6, 7] as const;

/** A device's cached context (QEMU `VTDContextCacheEntry`), with what the fetch resolved. */
export class VtdCachedContext {
  /** The generation it was fetched under (0: invalid). */
  gen = 0;
  /** PGTT numbering: second stage, or pass-through. */
  type = 0;
  did = 0;
  /** The PASID IOTLB entries are tagged with: RID_PASID in scalable mode, -1 in legacy mode. */
  pasid = -1;
  /** Second-stage root and its packed walk configuration. */
  ssptr = 0;
  ssCfg = 0;
  /** FPD: faults of qualified kinds are not recorded. */
  fpd = false;

  constructor(
    /** The device's source id. */
    readonly sid: number,
  ) {}
}

/** One unit's context cache. */
export class VtdContextCache {
  /** The unit's generation (`context_cache_gen`); it starts at 1, so a new entry (gen 0) is invalid. */
  gen = 1;
  readonly #bySid = new Map<number, VtdCachedContext>();
  readonly #stats = newConfigCacheStats();

  /** The counters (a copy). */
  stats(): QemuConfigCacheStats {
    return { ...this.#stats, entries: this.#bySid.size };
  }

  /** The valid cached context of `sid`, or undefined (counted as a hit or a miss). */
  lookup(sid: number): VtdCachedContext | undefined {
    const c = this.#bySid.get(sid);
    if (c !== undefined && c.gen === this.gen) {
      this.#stats.hits++;
      return c;
    }
    this.#stats.misses++;
    return undefined;
  }

  /** The device's entry to fill in after a fetch, stamped with the current generation. */
  fill(sid: number): VtdCachedContext {
    let c = this.#bySid.get(sid);
    if (c === undefined) {
      c = new VtdCachedContext(sid);
      this.#bySid.set(sid, c);
    }
    c.gen = this.gen;
    return c;
  }

  /** A global or domain-selective context-cache invalidation. */
  invalidateGlobal(): void {
    this.#stats.invalidations++;
    this.gen++;
    if (this.gen === VTD_CONTEXT_CACHE_GEN_MAX) this.reset();
  }

  /**
   * A device-selective invalidation of source id `sid` with function mask `fm` (0: the device,
   * 1..3: ignore that many high bits of the function number): every device is visited.
   */
  invalidateDevice(sid: number, fm: number): void {
    const s = this.#stats;
    s.invalidations++;
    s.scans++;
    const mask = ~FM_IGNORED[fm & 3]! & 0xff;
    const bus = sid >>> 8;
    const devfn = sid & mask;
    for (const c of this.#bySid.values()) {
      s.scannedEntries++;
      if (c.sid >>> 8 === bus && (c.sid & mask) === devfn) c.gen = 0;
    }
  }

  /** Invalidates every device's entry and restarts the generation (`vtd_reset_context_cache_locked`). */
  reset(): void {
    for (const c of this.#bySid.values()) c.gen = 0;
    this.gen = 1;
  }
}
