import type { FrameAllocator } from '../memory/frame-alloc.js';
import { descClear, descInstall, descLoadLo } from '../memory/descriptor.js';
import type { PhysMemory } from '../memory/phys.js';
import { entryCountsFor } from './entry-counts.js';
import { Access, FaultReason, Prot, TranslateFault, type DomainGeometry, type WalkFault } from './types.js';

/*
 * The `mock` format: a small radix table of our own with the kernel selftest mock domain's
 * geometry (reference/iommufd.md §5): 2 KiB pages, 1 MiB huge pages, aperture [2^24, 2^31-1].
 * Every table is one 4 KiB frame of 512 little-endian 64-bit descriptors.
 *
 *   level 2 (root)  IOVA bits 30:29   4 entries used, each a table
 *   level 1         IOVA bits 28:20   a table, or a 1 MiB block
 *   level 0         IOVA bits 19:11   2 KiB pages
 *
 * Descriptor low word: bit 0 VALID; bit 1 TABLE at levels 2 and 1 (clear: a block), PAGE at level
 * 0 (must be set, as Arm requires bits[1:0] = 0b11 for a level-3 page); bit 2 READ; bit 3 WRITE;
 * bits 31:11 the output address (or next table) bits 31:11. High word: address bits 63:32, always
 * 0 since physical memory is at most 4 GiB; the walker reads only the valid word, so a mock walk
 * can never see a torn descriptor.
 */

/** log2 of the mock page size. */
export const MOCK_PAGE_SHIFT = 11;
/** Mock page size: 2 KiB. */
export const MOCK_PAGE_SIZE = 1 << MOCK_PAGE_SHIFT;
/** log2 of the mock huge page size. */
export const MOCK_BLOCK_SHIFT = 20;
/** Mock huge page size: 1 MiB. */
export const MOCK_BLOCK_SIZE = 1 << MOCK_BLOCK_SHIFT;
/** First IOVA of the mock aperture. */
export const MOCK_APERTURE_START = 1 << 24;
/** Last IOVA of the mock aperture. */
export const MOCK_APERTURE_LAST = 2 ** 31 - 1;

/** Descriptor bits (low word). */
export const MOCK_DESC = { Valid: 1 << 0, Table: 1 << 1, Page: 1 << 1, Read: 1 << 2, Write: 1 << 3 } as const;

/** The mock domain's geometry. */
export const MOCK_GEOMETRY: DomainGeometry = {
  pageSizes: [BigInt(MOCK_PAGE_SIZE), BigInt(MOCK_BLOCK_SIZE)],
  apertureStart: BigInt(MOCK_APERTURE_START),
  apertureLast: BigInt(MOCK_APERTURE_LAST),
};

const ENTRIES = 512;
const ADDR_MASK = 0xfffff800 | 0; // address bits 31:11 in the low word

/** The output or next-table address of a mock descriptor's low word. */
function addrOf(lo: number): number {
  return (lo & ADDR_MASK) >>> 0;
}

/** Int32 index of entry `i` of the table at frame-aligned physical address `tablePa`. */
function slot(tablePa: number, i: number): number {
  return (tablePa >>> 2) + i * 2;
}

/**
 * Walks a mock table for `access` at `iova`. Returns the physical address, or a negative
 * {@link TranslateFault} with details in `fault`. Allocation-free; the caller publishes its epoch.
 */
export function mockWalk(i32: Int32Array, rootPa: number, iova: number, access: number, fault: WalkFault): number {
  if (iova < MOCK_APERTURE_START || iova > MOCK_APERTURE_LAST) {
    return fault.set(TranslateFault.NotMapped, 2, FaultReason.Aperture, iova);
  }
  const words = i32.length;
  let at = slot(rootPa, (iova >>> 29) & 3);
  let lo = Atomics.load(i32, at);
  if ((lo & MOCK_DESC.Valid) === 0) return fault.set(TranslateFault.NotMapped, 2, FaultReason.NotPresent, iova);
  at = slot((lo & ADDR_MASK) >>> 0, (iova >>> 20) & 511);
  if (at >= words) return fault.set(TranslateFault.WalkAbort, 1, FaultReason.WalkAbort, iova);
  lo = Atomics.load(i32, at);
  if ((lo & MOCK_DESC.Valid) === 0) return fault.set(TranslateFault.NotMapped, 1, FaultReason.NotPresent, iova);
  let level = 1;
  let offsetMask = MOCK_BLOCK_SIZE - 1;
  if ((lo & MOCK_DESC.Table) !== 0) {
    at = slot((lo & ADDR_MASK) >>> 0, (iova >>> 11) & 511);
    if (at >= words) return fault.set(TranslateFault.WalkAbort, 0, FaultReason.WalkAbort, iova);
    lo = Atomics.load(i32, at);
    level = 0;
    offsetMask = MOCK_PAGE_SIZE - 1;
    if ((lo & MOCK_DESC.Valid) === 0) return fault.set(TranslateFault.NotMapped, 0, FaultReason.NotPresent, iova);
  }
  // Exec is a read for the mock format; Priv is not checked.
  if ((access & (Access.Read | Access.Exec)) !== 0 && (lo & MOCK_DESC.Read) === 0) {
    return fault.set(TranslateFault.Permission, level, FaultReason.ReadDenied, iova);
  }
  if ((access & Access.Write) !== 0 && (lo & MOCK_DESC.Write) === 0) {
    return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, iova);
  }
  fault.leafShift = fault.unitShift = level === 0 ? MOCK_PAGE_SHIFT : MOCK_BLOCK_SHIFT;
  return ((lo & ADDR_MASK & ~offsetMask) >>> 0) + (iova & offsetMask);
}

/** Gives the physical address of byte `offset` of the range being mapped. */
export type PaSource = (offset: number) => number;

/**
 * A mock page table in physical memory: builds and tears down mappings. Emptied tables are
 * unlinked, then retired (their frames are reused only after the reclaimer's grace period).
 */
export class MockPageTable {
  /** Physical address of the root table. */
  readonly rootPa: number;
  readonly #i32: Int32Array;
  readonly #frames: FrameAllocator;
  readonly #counts: Uint16Array;
  #freed = false;

  /** Allocates an empty table. ENOMEM when memory is exhausted. */
  constructor(mem: PhysMemory, frames: FrameAllocator) {
    this.#i32 = mem.i32;
    this.#frames = frames;
    this.#counts = entryCountsFor(mem);
    this.rootPa = frames.alloc() * 4096;
    this.#counts[this.rootPa / 4096] = 0;
  }

  /** Installs entry `at` of the table at `tablePa`, counting it. */
  #install(tablePa: number, at: number, lo: number, hi: number): void {
    descInstall(this.#i32, at, lo, hi);
    this.#counts[tablePa / 4096]!++;
  }

  /** Clears entry `at` of the table at `tablePa`, counting it. */
  #clear(tablePa: number, at: number): void {
    descClear(this.#i32, at);
    this.#counts[tablePa / 4096]!--;
  }

  /**
   * Maps [iova, iova+length) to the addresses given by `pa`, with `prot` (Prot bits). Uses 1 MiB
   * blocks where the IOVA and the physical run are both aligned and `huge` allows. All or nothing:
   * on ENOMEM what was mapped is unmapped again. The range must be unmapped and 2 KiB aligned.
   */
  map(iova: number, length: number, pa: PaSource, prot: number, huge: boolean): void {
    const perm = ((prot & Prot.Read) !== 0 ? MOCK_DESC.Read : 0) | ((prot & Prot.Write) !== 0 ? MOCK_DESC.Write : 0);
    let off = 0;
    try {
      while (off < length) {
        const va = iova + off;
        const target = pa(off);
        const l1 = this.#table(this.rootPa, slot(this.rootPa, (va >>> 29) & 3));
        const at1 = slot(l1, (va >>> 20) & 511);
        if (
          huge &&
          va % MOCK_BLOCK_SIZE === 0 &&
          length - off >= MOCK_BLOCK_SIZE &&
          this.#contiguous(pa, off, target)
        ) {
          if ((descLoadLo(this.#i32, at1) & MOCK_DESC.Valid) !== 0)
            throw new Error(`mock map over live IOVA 0x${va.toString(16)}`);
          this.#install(l1, at1, MOCK_DESC.Valid | perm | target, 0);
          off += MOCK_BLOCK_SIZE;
          continue;
        }
        const l0 = this.#table(l1, at1);
        const at0 = slot(l0, (va >>> 11) & 511);
        if ((descLoadLo(this.#i32, at0) & MOCK_DESC.Valid) !== 0)
          throw new Error(`mock map over live IOVA 0x${va.toString(16)}`);
        this.#install(l0, at0, MOCK_DESC.Valid | MOCK_DESC.Page | perm | target, 0);
        off += MOCK_PAGE_SIZE;
      }
    } catch (e) {
      if (off > 0) this.unmap(iova, off);
      this.#prune(iova + off); // tables allocated for the entry that failed may be empty
      throw e;
    }
  }

  /**
   * Unmaps [iova, iova+length) and returns the bytes that were mapped in it. A block must lie
   * wholly inside the range (iommufd only unmaps whole areas, and a block never spans two).
   * Never allocates, so it cannot fail.
   */
  unmap(iova: number, length: number): number {
    let cleared = 0;
    const end = iova + length;
    let va = iova;
    while (va < end) {
      const at2 = slot(this.rootPa, (va >>> 29) & 3);
      const lo2 = descLoadLo(this.#i32, at2);
      const next2 = (Math.floor(va / 2 ** 29) + 1) * 2 ** 29;
      if ((lo2 & MOCK_DESC.Valid) === 0) {
        va = next2;
        continue;
      }
      const l1 = addrOf(descLoadLo(this.#i32, at2));
      while (va < end && va < next2) {
        const at1 = slot(l1, (va >>> 20) & 511);
        const lo1 = descLoadLo(this.#i32, at1);
        const next1 = (Math.floor(va / MOCK_BLOCK_SIZE) + 1) * MOCK_BLOCK_SIZE;
        if ((lo1 & MOCK_DESC.Valid) === 0) {
          va = next1;
          continue;
        }
        if ((lo1 & MOCK_DESC.Table) === 0) {
          if (va % MOCK_BLOCK_SIZE !== 0 || end < next1)
            throw new Error(`partial unmap of mock block at 0x${va.toString(16)}`);
          this.#clear(l1, at1);
          cleared += MOCK_BLOCK_SIZE;
          va = next1;
          continue;
        }
        const l0 = addrOf(descLoadLo(this.#i32, at1));
        for (; va < end && va < next1; va += MOCK_PAGE_SIZE) {
          const at0 = slot(l0, (va >>> 11) & 511);
          if ((descLoadLo(this.#i32, at0) & MOCK_DESC.Valid) !== 0) {
            this.#clear(l0, at0);
            cleared += MOCK_PAGE_SIZE;
          }
        }
        va = Math.min(va, next1);
        if (this.#counts[l0 / 4096] === 0) this.#unlinkTable(l1, at1, l0);
      }
      if (this.#counts[l1 / 4096] === 0) this.#unlinkTable(this.rootPa, at2, l1);
    }
    return cleared;
  }

  /**
   * Retires every table, the root included, without clearing any entry: a walk that started
   * before the domain became unreachable keeps seeing it whole until the grace period ends.
   */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    for (let i = 0; i < 4; i++) {
      const lo2 = descLoadLo(this.#i32, slot(this.rootPa, i));
      if ((lo2 & MOCK_DESC.Valid) === 0) continue;
      const l1 = addrOf(lo2);
      for (let j = 0; j < ENTRIES; j++) {
        const lo1 = descLoadLo(this.#i32, slot(l1, j));
        if ((lo1 & MOCK_DESC.Valid) !== 0 && (lo1 & MOCK_DESC.Table) !== 0) this.#frames.put(addrOf(lo1) / 4096);
      }
      this.#frames.put(l1 / 4096);
    }
    this.#frames.put(this.rootPa / 4096);
  }

  /** Frames used by tables (the root included). */
  tableFrames(): number {
    let n = 1;
    for (let i = 0; i < 4; i++) {
      const lo = descLoadLo(this.#i32, slot(this.rootPa, i));
      if ((lo & MOCK_DESC.Valid) === 0) continue;
      n++;
      const l1 = addrOf(descLoadLo(this.#i32, slot(this.rootPa, i)));
      for (let j = 0; j < ENTRIES; j++) {
        const lo1 = descLoadLo(this.#i32, slot(l1, j));
        if ((lo1 & MOCK_DESC.Valid) !== 0 && (lo1 & MOCK_DESC.Table) !== 0) n++;
      }
    }
    return n;
  }

  /** The next-level table that entry `at` points to, allocating and installing one if needed. */
  #table(parentPa: number, at: number): number {
    const lo = descLoadLo(this.#i32, at);
    if ((lo & MOCK_DESC.Valid) !== 0) {
      if ((lo & MOCK_DESC.Table) === 0) throw new Error('mock map inside a live block');
      return addrOf(descLoadLo(this.#i32, at));
    }
    const tablePa = this.#frames.alloc() * 4096; // zeroed
    this.#counts[tablePa / 4096] = 0;
    this.#install(parentPa, at, MOCK_DESC.Valid | MOCK_DESC.Table | tablePa, 0);
    return tablePa;
  }

  #contiguous(pa: PaSource, off: number, first: number): boolean {
    if (first % MOCK_BLOCK_SIZE !== 0) return false;
    for (let k = 4096; k < MOCK_BLOCK_SIZE; k += 4096) if (pa(off + k) !== first + k) return false;
    return true;
  }

  /** Unlinks the tables on the path to `va` that hold no entry. */
  #prune(va: number): void {
    const at2 = slot(this.rootPa, (va >>> 29) & 3);
    if ((descLoadLo(this.#i32, at2) & MOCK_DESC.Valid) === 0) return;
    const l1 = addrOf(descLoadLo(this.#i32, at2));
    const at1 = slot(l1, (va >>> 20) & 511);
    const lo1 = descLoadLo(this.#i32, at1);
    if ((lo1 & MOCK_DESC.Valid) !== 0 && (lo1 & MOCK_DESC.Table) !== 0) {
      const l0 = addrOf(descLoadLo(this.#i32, at1));
      if (this.#counts[l0 / 4096] === 0) this.#unlinkTable(l1, at1, l0);
    }
    if (this.#counts[l1 / 4096] === 0) this.#unlinkTable(this.rootPa, at2, l1);
  }

  #unlinkTable(parentPa: number, at: number, tablePa: number): void {
    this.#clear(parentPa, at);
    this.#frames.put(tablePa / 4096);
  }
}
