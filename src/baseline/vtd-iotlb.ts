/**
 * A model of QEMU 7.2's intel-iommu IOTLB (hw/i386/intel_iommu.c; reference/viommu-queues.md
 * §3.3, §3.4), not QEMU itself. One hash table per unit, keyed (source id, PASID, gfn, level) as
 * `vtd_iotlb_key`, so keyed by SID and not by domain: every invalidation by domain scans.
 *
 * - at most {@link VTD_IOTLB_MAX_SIZE} entries; an insert into a full table empties it first
 *   (`vtd_update_iotlb` → `vtd_reset_iotlb_locked`): no LRU;
 * - a lookup probes the 4 KiB, 2 MiB and 1 GiB levels in turn (`vtd_lookup_iotlb`);
 * - a global invalidation empties the table; domain-selective and page-selective ones are a
 *   full-table `g_hash_table_foreach_remove` (`vtd_hash_remove_by_domain`, `_by_page`).
 *
 * Levels are QEMU's: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB. Storage: a JS Map per (SID, PASID) holding
 * the entries keyed by gfn and level, so every key is an exact number; the scans still visit
 * every entry of every map, as foreach_remove visits the whole table.
 */
import { QemuHashIotlb } from './hash-iotlb.js';

/** QEMU's `VTD_IOTLB_MAX_SIZE`. */
export const VTD_IOTLB_MAX_SIZE = 1024;

/** Pages (4 KiB) an entry of each level covers, by level 1..3. */
const LEVEL_PAGES = [0, 1, 512, 512 * 512] as const;

/** A cached translation (`VTDIOTLBEntry`). */
export class VtdIotlbEntry {
  /** Bytes the entry translates (QEMU's `mask`, as a size). */
  readonly size: number;

  constructor(
    readonly sid: number,
    /** The PASID the entry is tagged with, -1 for none (legacy mode). */
    readonly pasid: number,
    /** Page number of the entry's first page (aligned to its level). */
    readonly gfn: number,
    /** 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB). */
    readonly level: number,
    readonly domainId: number,
    /** Guest-physical output address of the page or block. */
    readonly gpa: number,
    /** Access.Read | Access.Write bits the leaf grants. */
    readonly perm: number,
  ) {
    this.size = 4096 * LEVEL_PAGES[level]!;
  }
}

/** The gfn of `addr`'s page at `level` (`vtd_get_iotlb_gfn`). */
export function iotlbGfn(addr: number, level: number): number {
  const page = Math.floor(addr / 4096);
  return page - (page % LEVEL_PAGES[level]!);
}

function tagOf(sid: number, pasid: number): number {
  return sid * 0x200000 + (pasid + 1);
}

/** One unit's IOTLB. */
export class VtdIotlb extends QemuHashIotlb<VtdIotlbEntry> {
  constructor() {
    super(VTD_IOTLB_MAX_SIZE);
  }

  /** The entry translating `addr` for (`sid`, `pasid`), probing levels 1..3, or undefined. */
  lookup(sid: number, pasid: number, addr: number): VtdIotlbEntry | undefined {
    const tag = tagOf(sid, pasid);
    for (let level = 1; level <= 3; level++) {
      const e = this.probe(tag, iotlbGfn(addr, level) * 4 + level);
      if (e !== undefined) {
        this.counters.hits++;
        return e;
      }
    }
    this.counters.misses++;
    return undefined;
  }

  /** Inserts `e` (replacing an entry of the same key); a full table is emptied first. */
  insert(e: VtdIotlbEntry): void {
    this.put(tagOf(e.sid, e.pasid), e.gfn * 4 + e.level, e);
  }

  /** A domain-selective invalidation: a full scan for entries of `did` (`vtd_hash_remove_by_domain`). */
  invalidateDomain(did: number): void {
    this.#scan(did, -1, 0);
  }

  /**
   * A page-selective invalidation of 2^`am` pages at `addr` in `did`: a full scan for entries of
   * `did` whose gfn lies in the aligned range, or whose page or block holds `addr`
   * (`vtd_hash_remove_by_page`).
   */
  invalidatePages(did: number, addr: number, am: number): void {
    this.#scan(did, Math.floor(addr / 4096), 2 ** am);
  }

  /** One full-table scan: entries of `did`, and with `pages` > 0 the page-selective test at `page`. */
  #scan(did: number, page: number, pages: number): void {
    const first = pages > 0 ? page - (page % pages) : 0;
    this.scan((e) => {
      if (e.domainId !== did) return false;
      if (pages <= 0) return true;
      const span = LEVEL_PAGES[e.level]!;
      return e.gfn - (e.gfn % pages) === first || e.gfn === page - (page % span);
    });
  }
}
