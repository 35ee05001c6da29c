import { Access, CFG, WalkFault, X86_LO } from '../pgtable/index.js';

/** Entries: direct-mapped by (domain, 2 MiB region). */
const ENTRIES = 1024;
/** Stage-1 table addresses kept per entry (a 5-level walk has 5 tables). */
const GPAS = 6;

/**
 * A thread's paging-structure cache for VT-d hardware-nested walks (the PDE cache of the VT-d
 * spec §6.2): for a (domain, 2 MiB region), the host address of the stage-1 table of its 4 KiB
 * leaves, what the levels above granted, and the guest tables on the way. A walk that finds its
 * entry reads only the leaf and walks stage 2 for the output, where a full nested walk walks
 * stage 2 for every stage-1 table as well.
 *
 * Invalidation rides on the IOTLB's: an entry is kept with the IOTLB shard sequence and the
 * tag's epoch floor read before the walk that made it, and serves only while both are
 * unchanged. So any invalidation the IOTLB sees for that region (a range in its shard, a flush
 * of the domain, of everything, or a nest parent's change, which flushes its nested domains)
 * drops it, as hardware drops paging-structure entries on the same invalidations. Like
 * hardware's, it keeps an upper-level entry the guest changed without invalidating.
 * Allocation-free; not shared between threads.
 */
export class PdeCache {
  readonly #domain = new Int32Array(ENTRIES).fill(-1);
  readonly #region = new Float64Array(ENTRIES);
  readonly #seq = new Int32Array(ENTRIES);
  readonly #floor = new Int32Array(ENTRIES);
  readonly #pa = new Float64Array(ENTRIES);
  readonly #grant = new Int32Array(ENTRIES);
  readonly #xd = new Int32Array(ENTRIES);
  readonly #tables = new Int32Array(ENTRIES);
  readonly #gpas = new Float64Array(ENTRIES * GPAS);
  /** Walks that resumed from an entry, and entries recorded. */
  hits = 0;
  fills = 0;

  /**
   * The entry of (`domain`, the region of `iova`) if it was made under sequence `seq` and floor
   * `floor` and its upper levels grant `access` under configuration `cfg` (else -1): its index,
   * with the stage-1 table addresses copied into `fault.tableGpas`.
   */
  find(
    domain: number,
    iova: number,
    seq: number,
    floor: number,
    access: number,
    cfg: number,
    fault: WalkFault,
  ): number {
    const region = Math.floor(iova / 2097152);
    const e = slotOf(domain, region);
    if (this.#domain[e] !== domain || this.#region[e] !== region || this.#seq[e] !== seq || this.#floor[e] !== floor)
      return -1;
    const grant = this.#grant[e]!;
    const user = (access & Access.Priv) === 0;
    if (user && (grant & X86_LO.US) === 0) return -1;
    // A supervisor write with WP off needs no RW; anything else does (the full walk faults).
    if ((access & Access.Write) !== 0 && (grant & X86_LO.RW) === 0 && (user || (cfg & CFG.WP_OFF) === 0)) return -1;
    const n = this.#tables[e]!;
    for (let i = 0; i < n; i++) fault.tableGpas[i] = this.#gpas[e * GPAS + i]!;
    this.hits++;
    return e;
  }

  /** The host address of entry `e`'s table. */
  tablePa(e: number): number {
    return this.#pa[e]!;
  }

  /** Entry `e`'s execute-disable from the levels above. */
  xd(e: number): number {
    return this.#xd[e]!;
  }

  /** How many stage-1 table addresses entry `e` holds. */
  tables(e: number): number {
    return this.#tables[e]!;
  }

  /** Records what the walk just done (its `fault`) found for (`domain`, region of `iova`), if it reached a 4 KiB-level table. */
  record(domain: number, iova: number, seq: number, floor: number, fault: WalkFault): void {
    if (fault.pdeTablePa < 0 || fault.pdeTables > GPAS) return;
    const region = Math.floor(iova / 2097152);
    const e = slotOf(domain, region);
    this.#domain[e] = domain;
    this.#region[e] = region;
    this.#seq[e] = seq;
    this.#floor[e] = floor;
    this.#pa[e] = fault.pdeTablePa;
    this.#grant[e] = fault.pdeGrant;
    this.#xd[e] = fault.pdeXd;
    const n = fault.pdeTables;
    this.#tables[e] = n;
    for (let i = 0; i < n; i++) this.#gpas[e * GPAS + i] = fault.tableGpas[i]!;
    this.fills++;
  }
}

function slotOf(domain: number, region: number): number {
  return (Math.imul(domain, 0x9e3779b1) ^ Math.imul(region | 0, 0x85ebca6b)) >>> 22;
}
