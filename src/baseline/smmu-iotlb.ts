/**
 * A model of QEMU 7.2's SMMU IOTLB (hw/arm/smmu-common.c; reference/viommu-queues.md §3.2), not
 * QEMU itself. One hash table per SMMU, keyed (ASID, VMID, IOVA, TG, level) as `SMMUIOTLBKey`:
 *
 * - at most {@link SMMU_IOTLB_MAX_SIZE} entries, and an insert into a full table empties it first
 *   (`smmu_iotlb_insert` → `smmu_iotlb_inv_all`): no LRU;
 * - a lookup probes one key per level, from the table's start level down to 3
 *   (`smmu_iotlb_lookup`);
 * - invalidation by VA removes one exact key when the command names a level (TTL) for a single
 *   page of a known ASID, and otherwise, as by ASID, scans the whole table
 *   (`g_hash_table_foreach_remove` with `smmu_hash_remove_by_asid_iova` / `_by_asid`).
 *
 * Storage: a JS Map per (ASID, VMID) holding the entries keyed by IOVA page, TG and level, so every
 * key is an exact number (one Map keyed by the whole key would need more than 53 bits). The scans
 * still visit every entry of every map, as foreach_remove visits the whole table.
 */
import { QemuHashIotlb } from './hash-iotlb.js';

/** QEMU's `SMMU_IOTLB_MAX_SIZE`. */
export const SMMU_IOTLB_MAX_SIZE = 256;

/**
 * The VMID of every entry and invalidation: the model implements stage 1 only, as QEMU 7.2, so
 * contexts have no VMID and the VMID field of a command is ignored.
 */
export const STAGE1_VMID = 0;

const PAGE = 4096;

/** A cached translation (`SMMUTLBEntry`): a page or block of one (ASID, VMID). */
export class SmmuTlbEntry {
  constructor(
    readonly asid: number,
    readonly vmid: number,
    /** Input address of the page or block (aligned to `size`). */
    readonly iova: number,
    /** Translation granule field: log2(granule) = 2·TG + 10. */
    readonly tg: number,
    /** Level of the leaf (0..3). */
    readonly level: number,
    /** Bytes the entry translates (`addr_mask` + 1). */
    readonly size: number,
    /** Guest-physical output address of the page or block. */
    readonly gpa: number,
    /** Permissions, Access.Read | Access.Write bits. */
    readonly perm: number,
  ) {}
}

function tagOf(asid: number, vmid: number): number {
  return asid * 0x10000 + vmid;
}

/** The key inside a tag's map: IOVA page, TG, level (exact below 2^53 for 52-bit addresses). */
function keyOf(iova: number, tg: number, level: number): number {
  return (iova / PAGE) * 16 + tg * 4 + level;
}

/** One SMMU's IOTLB. */
export class SmmuIotlb extends QemuHashIotlb<SmmuTlbEntry> {
  constructor() {
    super(SMMU_IOTLB_MAX_SIZE);
  }

  /**
   * The entry translating `iova` for (`asid`, `vmid`), probing levels `startLevel`..3 of a
   * `granuleShift` granule (4 KiB: 12), or undefined.
   */
  lookup(asid: number, vmid: number, iova: number, startLevel: number, granuleShift: number): SmmuTlbEntry | undefined {
    const tag = tagOf(asid, vmid);
    const tg = (granuleShift - 10) / 2;
    const stride = granuleShift - 3;
    for (let level = startLevel; level <= 3; level++) {
      const size = 2 ** (granuleShift + (3 - level) * stride);
      const e = this.probe(tag, keyOf(iova - (iova % size), tg, level));
      if (e !== undefined) {
        this.counters.hits++;
        return e;
      }
    }
    this.counters.misses++;
    return undefined;
  }

  /** Inserts `e` (replacing an entry of the same key); a full table is emptied first. */
  insert(e: SmmuTlbEntry): void {
    this.put(tagOf(e.asid, e.vmid), keyOf(e.iova, e.tg, e.level), e);
  }

  /** Removes every entry of `asid` (and `vmid`, when ≥ 0) by a full scan (`smmu_iotlb_inv_asid`). */
  invalidateAsid(asid: number, vmid: number): void {
    this.#scan(asid, vmid, -1, 0);
  }

  /**
   * `smmu_iotlb_inv_iova`: `pages` granules of 2^(2·TG + 10) bytes (4 KiB when TG = 0) at `iova`,
   * of `asid` (-1: every ASID, TLBI_NH_VAA) and `vmid` (-1: every VMID). One page with a TTL and
   * a known ASID tries the exact key first; otherwise, or when that key is absent, a full scan
   * removes every entry whose page or block holds `iova` or lies in the range.
   */
  invalidateIova(asid: number, vmid: number, iova: number, tg: number, pages: number, ttl: number): void {
    if (ttl !== 0 && pages === 1 && asid >= 0 && vmid >= 0 && this.removeExact(tagOf(asid, vmid), keyOf(iova, tg, ttl)))
      return;
    const granule = tg !== 0 ? 2 ** (tg * 2 + 10) : PAGE;
    this.#scan(asid, vmid, iova, pages * granule);
  }

  /**
   * One full-table scan: entries of `asid` / `vmid` (-1: any), and with `bytes` > 0 only those
   * whose page or block holds `iova` or that lie in [iova, iova + bytes) aligned to `bytes`.
   */
  #scan(asid: number, vmid: number, iova: number, bytes: number): void {
    this.scan(
      (e) =>
        (asid < 0 || e.asid === asid) &&
        (vmid < 0 || e.vmid === vmid) &&
        (bytes <= 0 || iova - (iova % e.size) === e.iova || e.iova - (e.iova % bytes) === iova),
    );
  }
}
