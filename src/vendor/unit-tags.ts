/**
 * The cache keys of one emulated vIOMMU unit in the shared tables: an IOTLB tag (a domain
 * descriptor of the context tables) per guest domain id — a VT-d DID or an SMMUv3 VMID — and an
 * ATC slot per device with ATS. Shared by the VT-d and SMMUv3 units: tags are allocated on first
 * use, flushed together (a unit's global invalidations never touch another guest's entries), and
 * returned at close.
 */
import type { Iotlb } from '../cache/index.js';
import { DEV_ATS, DomainFormat, type ContextTables } from '../translate/index.js';

/** A unit's guest domain ids → IOTLB tags, and StreamIDs/RIDs → ATC slots. */
export class UnitTags {
  readonly #tables: ContextTables;
  readonly #iotlb: Iotlb;
  readonly #atc: Iotlb | undefined;
  readonly #tags = new Map<number, number>();
  readonly #ats = new Map<number, number>();
  /** The maps as the vendor op decoders take them (`SmmuTagMap` / `VtdTagMap`). */
  readonly tagMap: { tagOf(id: number): number; devOf(sid: number): number; readonly s2Asid: number };

  /**
   * Keys in `tables`, for entries of `iotlb` and (with ATS) `atc`; `s2Asid` is the ASID slot of
   * stage-2-only entries (SMMUv3; VT-d's maps ignore it).
   */
  constructor(tables: ContextTables, iotlb: Iotlb, atc: Iotlb | undefined, s2Asid = 0) {
    this.#tables = tables;
    this.#iotlb = iotlb;
    this.#atc = atc;
    this.tagMap = {
      tagOf: (id) => this.#tags.get(id) ?? -1,
      devOf: (sid) => this.#ats.get(sid) ?? -1,
      s2Asid,
    };
  }

  /** The IOTLB tag of guest domain `id`, allocated on first use (-1: no descriptor left, no caching). */
  tagFor(id: number): number {
    let tag = this.#tags.get(id);
    if (tag !== undefined) return tag;
    try {
      tag = this.#tables.publishDomain(DomainFormat.None, 0, 0);
    } catch {
      return -1;
    }
    this.#iotlb.resetTag(tag);
    this.#tags.set(id, tag);
    return tag;
  }

  /** Every IOTLB tag of the unit. */
  tags(): IterableIterator<number> {
    return this.#tags.values();
  }

  /** Declares a device with ATS at `sid` (no-op without an ATC table or when it has a slot). */
  addAts(sid: number): void {
    if (this.#atc === undefined || this.#ats.has(sid)) return;
    const slot = this.#tables.allocDevice(0, DEV_ATS);
    this.#atc.resetTag(slot);
    this.#ats.set(sid, slot);
  }

  /** The ATC slot of `sid`, or undefined when it has none (no ATS, or no ATC table). */
  atsSlot(sid: number): number | undefined {
    return this.#atc === undefined ? undefined : this.#ats.get(sid);
  }

  /** Drops every IOTLB entry of the unit. */
  flushIotlb(): void {
    for (const tag of this.#tags.values()) this.#iotlb.flushTag(tag);
  }

  /** Drops every IOTLB and ATC entry of the unit. */
  flushAll(): void {
    this.flushIotlb();
    for (const slot of this.#ats.values()) this.#atc?.flushTag(slot);
  }

  /** Returns every tag and slot to the tables (the unit closed). */
  release(): void {
    for (const tag of this.#tags.values()) this.#tables.recycleDomain(tag);
    for (const slot of this.#ats.values()) this.#tables.freeDevice(slot);
    this.#tags.clear();
    this.#ats.clear();
  }
}
