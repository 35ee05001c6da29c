/*
 * Cache contents: the IOTLB's or the ATC's slots, read straight from the table's shared slot
 * buffer (its `handles()`, as a worker attaches to it) in the slot layout iotlb.ts defines —
 * [version, tag, key lo, shift << 24 | key hi, pa, granted access, stamp, spare] — with each
 * entry's liveness judged by the table's own epoch floor (`floorOf`). Reading changes nothing:
 * no lookup counts, no owner word is taken.
 *
 * The Iotlb class has no enumeration of its own; this relies on SLOT_WORDS and the layout above
 * (the report asks for an `entries()` accessor on Iotlb instead).
 */
import { Iotlb, SLOT_WORDS, WAYS } from '../cache/iotlb.js';
import type { Iommufd } from '../iommufd.js';
import { DomainFormat, NO_PASID, S2_ONLY_ASID } from '../translate/index.js';
import { SMMU_RESOLVED, SmmuConfig } from '../vendor/smmuv3/resolve-config.js';
import { ArmStage2Translator } from '../vendor/smmuv3/resolve-stage2.js';
import { STE_CONFIG } from '../vendor/smmuv3/structures.js';
import { PhysQwordReader } from '../vendor/vtd/resolve-reader.js';
import { armNestedSte, dataPlaneView, hostSmmuResolver, requestDomain } from './iommufd-view.js';
import type { CacheDump, CacheEntry } from './types.js';

/** What to dump. */
export interface CacheDumpOptions {
  /** Which table: the IOTLB (default) or the devices' ATC. */
  table?: 'iotlb' | 'atc';
  /** Only entries of this tag word (domain | ASID/PASID << 12). */
  tag?: number;
  /** Only entries of this domain (any ASID/PASID): a descriptor index, or an ATC device slot. */
  domain?: number;
  /** Entries that no longer hit (stamped at or below their tag's epoch floor) too. */
  includeStale?: boolean;
}

const DOMAIN_BITS = 0xfff;

/** Entries of `table` (an IOTLB, or an ATC: `which`), filtered by `opts`, by tag then IOVA. */
export function dumpIotlb(table: Iotlb, which: 'iotlb' | 'atc', opts: CacheDumpOptions = {}): CacheDump {
  const slots = new Int32Array(table.handles().slots);
  const perShard = table.setsPerShard * WAYS;
  const entries: CacheEntry[] = [];
  for (let slot = 0; slot * SLOT_WORDS < slots.length; slot++) {
    const at = slot * SLOT_WORDS;
    const version = Atomics.load(slots, at);
    const tag = slots[at + 1]!;
    if (tag === 0 || (version & 1) !== 0) continue; // empty, or being written
    if (opts.tag !== undefined && tag !== opts.tag) continue;
    if (opts.domain !== undefined && (tag & DOMAIN_BITS) !== opts.domain) continue;
    const keyHi = slots[at + 3]!;
    const shift = keyHi >>> 24;
    const size = 2 ** shift;
    const page = (keyHi & 0xffffff) * 2 ** 32 + (slots[at + 2]! >>> 0);
    const granted = slots[at + 5]!;
    const stamp = slots[at + 6]!;
    const live = stamp > table.floorOf(tag);
    if (!live && opts.includeStale !== true) continue;
    entries.push({
      tag,
      domain: tag & DOMAIN_BITS,
      asid: tag >>> 12,
      iova: page * size,
      size,
      pa: slots[at + 4]! >>> 0,
      granted: {
        read: (granted & 1) !== 0,
        write: (granted & 2) !== 0,
        exec: (granted & 4) !== 0,
        user: (granted & 8) !== 0,
        priv: (granted & 16) !== 0,
      },
      stamp,
      live,
      shard: Math.floor(slot / perShard),
      slot,
    });
  }
  entries.sort((a, b) => a.tag - b.tag || a.iova - b.iova || a.size - b.size);
  return {
    table: which,
    ...(opts.tag === undefined ? {} : { tag: opts.tag }),
    capacity: table.capacity,
    entries,
    clock: table.fillClock(),
  };
}

/** The IOTLB or ATC contents of `fd` (the emulated units share its IOTLB), filtered by `opts`. */
export function dumpCache(fd: Iommufd, opts: CacheDumpOptions = {}): CacheDump {
  const v = dataPlaneView(fd);
  const which = opts.table ?? 'iotlb';
  const table = which === 'iotlb' ? v.iotlb : v.atc;
  if (table === undefined) return { table: which, capacity: 0, entries: [], clock: 0 };
  return dumpIotlb(table, which, opts);
}

/**
 * The IOTLB tag word that device `devId`'s requests (with `pasid`) are cached under, as the
 * Translator computes it: the domain descriptor, or for an SMMUv3 vSTE (descriptor, CD.ASID) —
 * (descriptor, S2_ONLY_ASID) for stage 2 only. -1 when nothing is attached or the configuration faults.
 */
export function iommufdIotlbTag(fd: Iommufd, req: { devId: number; pasid?: number }): number {
  const v = dataPlaneView(fd);
  const pasid = req.pasid ?? NO_PASID;
  const domain = requestDomain(v.tables, fd.deviceSlot(req.devId), pasid);
  if (domain === 0) return -1;
  if (v.tables.domainFormat(domain) !== DomainFormat.ArmNested) return domain;
  const i32 = v.phys.i32;
  const out = new SmmuConfig();
  const r = hostSmmuResolver(new PhysQwordReader(i32), new ArmStage2Translator(i32)).resolveSte(
    armNestedSte(v.tables, domain),
    pasid,
    out,
  );
  if (r !== SMMU_RESOLVED) return -1;
  return Iotlb.tagWord(domain, out.kind === STE_CONFIG.Nested ? out.asid : S2_ONLY_ASID);
}

/** The ATC tag word of device `devId`'s requests with `pasid`: its slot | PASID << 12. */
export function iommufdAtcTag(fd: Iommufd, req: { devId: number; pasid?: number }): number {
  const pasid = req.pasid ?? NO_PASID;
  return fd.deviceSlot(req.devId) | ((pasid === NO_PASID ? 0 : pasid) << 12);
}
