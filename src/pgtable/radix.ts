import type { FrameAllocator } from '../memory/frame-alloc.js';
import { descClear, descInstall, descLoadHi, descLoadLo } from '../memory/descriptor.js';
import type { PhysMemory } from '../memory/phys.js';
import { IommufdError } from '../util/errors.js';
import { entryCountsFor } from './entry-counts.js';
import type { PaSource } from './mock.js';

/*
 * The builder shared by every 4 KiB-granule radix format (Arm VMSAv8-64 stage 1 and 2, x86-64
 * first stage, VT-d second stage): 512 eight-byte entries per table, 9 index bits per level.
 * Levels use the Arm numbering whatever the format: level 3 maps 4 KiB, 2 maps 2 MiB, 1 maps
 * 1 GiB, 0 maps 512 GiB, and -1 (x86 PML5) maps 256 TiB. The format only encodes and decodes
 * descriptors, through a {@link RadixCodec}.
 */

// Bytes one entry maps at levels -1..3 (index level + 1).
const LEVEL_SIZE = [2 ** 48, 2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const;

/** Bytes one entry at `level` maps. */
export function levelSize(level: number): number {
  return LEVEL_SIZE[level + 1]!;
}

/** Scratch output of the codec's encoders: [lo, hi]. */
export const ENCODED = new Int32Array(2);

/** How a format encodes and decodes its descriptors. Encoders write {@link ENCODED}. */
export interface RadixCodec {
  /** Level of the start table. */
  readonly startLevel: number;
  /** Entries of the start table: fewer than 512 for a small input size, more for concatenated tables. */
  readonly startEntries: number;
  /** Levels above 3 that may hold a leaf (a block). */
  readonly blockLevels: readonly number[];
  /** Encodes a table descriptor pointing at `pa`. */
  table(pa: number): void;
  /** Encodes a leaf at `level` mapping `pa` with Prot bits `prot`. */
  leaf(level: number, pa: number, prot: number): void;
  /** Re-encodes the leaf (lo, hi) of `level` as a leaf of `childLevel` mapping `pa`, keeping its attributes. */
  splitLeaf(lo: number, hi: number, level: number, childLevel: number, pa: number): void;
  /** Whether a low word is a present entry. */
  present(lo: number): boolean;
  /** Whether a present entry at `level` is a leaf (always at level 3). */
  isLeaf(level: number, lo: number): boolean;
  /** The table or output address of an entry at `level`. */
  addr(level: number, lo: number, hi: number): number;
}

/** Splits a physical address into the low-word and high-word parts of bits 51:12. */
export function addrWords(pa: number, lowMask: number): [number, number] {
  const hi = Math.floor(pa / 2 ** 32);
  return [(pa - hi * 2 ** 32) & lowMask, hi];
}

/** Gets told of every range that an unmap cleared: the gather for the invalidation that follows. */
export type ClearedRange = (iova: number, size: number, level: number) => void;

/**
 * A radix page table in physical memory, for one codec. Writes follow DESIGN.md: a live entry is
 * never rewritten in place (break-before-make), an install writes the high word before the valid
 * low word, and emptied tables are unlinked, then retired through the epoch reclaimer.
 */
export class RadixPageTable {
  /** Physical address of the start table (the first of them when concatenated). */
  readonly rootPa: number;
  /** The codec. */
  readonly codec: RadixCodec;
  readonly #i32: Int32Array;
  readonly #frames: FrameAllocator;
  readonly #counts: Uint16Array;
  readonly #rootFrames: number;
  #freed = false;

  /** Allocates the start table(s). ENOMEM when memory is exhausted. */
  constructor(mem: PhysMemory, frames: FrameAllocator, codec: RadixCodec) {
    this.#i32 = mem.i32;
    this.#frames = frames;
    this.#counts = entryCountsFor(mem);
    this.codec = codec;
    this.#rootFrames = Math.max(1, Math.ceil(codec.startEntries / 512));
    // Concatenated start tables are aligned to their total size, as the architecture requires.
    const first = this.#rootFrames === 1 ? frames.alloc() : frames.allocContiguous(this.#rootFrames, this.#rootFrames);
    this.rootPa = first * 4096;
    this.#counts[first] = 0;
  }

  /** Bytes of IOVA space the table covers: [0, inputLimit). */
  get inputLimit(): number {
    return levelSize(this.codec.startLevel) * this.codec.startEntries;
  }

  #index(va: number, level: number): number {
    const n = Math.floor(va / levelSize(level));
    return level === this.codec.startLevel ? n % this.codec.startEntries : n % 512;
  }

  #install(tablePa: number, at: number, lo: number, hi: number): void {
    descInstall(this.#i32, at, lo, hi);
    this.#counts[Math.floor(tablePa / 4096)]!++;
  }

  #clear(tablePa: number, at: number): void {
    descClear(this.#i32, at);
    this.#counts[Math.floor(tablePa / 4096)]!--;
  }

  /**
   * Maps [iova, iova+length) to the addresses of `pa` with Prot bits `prot`, using the largest
   * block that the alignment of the IOVA and of a contiguous physical run allow (when `huge`).
   * All or nothing: on ENOMEM, what was mapped is unmapped again. The range must be unmapped and
   * 4 KiB aligned, inside [0, inputLimit).
   */
  map(iova: number, length: number, pa: PaSource, prot: number, huge: boolean): void {
    if (iova % 4096 !== 0 || length % 4096 !== 0 || iova + length > this.inputLimit) {
      throw new IommufdError(
        'EINVAL',
        `map of [0x${iova.toString(16)}, +0x${length.toString(16)}) is unaligned or beyond the input size`,
      );
    }
    let off = 0;
    try {
      while (off < length) {
        const va = iova + off;
        const target = pa(off);
        const level = huge ? this.#leafLevel(va, length - off, pa, off, target) : 3;
        const { tablePa, at } = this.#entry(va, level);
        if (this.codec.present(descLoadLo(this.#i32, at))) throw new Error(`map over live IOVA 0x${va.toString(16)}`);
        this.codec.leaf(level, target, prot);
        this.#install(tablePa, at, ENCODED[0]!, ENCODED[1]!);
        off += levelSize(level);
      }
    } catch (e) {
      if (off > 0) this.unmap(iova, off);
      this.#prune(iova + off);
      throw e;
    }
  }

  /** The largest leaf level usable at `va`. */
  #leafLevel(va: number, remaining: number, pa: PaSource, off: number, target: number): number {
    for (const level of this.codec.blockLevels) {
      // A start table has no entries above its own level: a 1 GiB block needs level 1.
      if (level < this.codec.startLevel) continue;
      const size = levelSize(level);
      if (va % size !== 0 || remaining < size || target % size !== 0) continue;
      let contiguous = true;
      for (let k = 4096; k < size && contiguous; k += 4096) contiguous = pa(off + k) === target + k;
      if (contiguous) return level;
    }
    return 3;
  }

  /** The entry for `va` at `level`, allocating and linking tables on the way (ENOMEM). */
  #entry(va: number, level: number): { tablePa: number; at: number } {
    if (level < this.codec.startLevel || level > 3)
      throw new Error(`no level ${level} in a table starting at level ${this.codec.startLevel}`);
    let tablePa = this.rootPa;
    for (let l = this.codec.startLevel; ; l++) {
      const at = (tablePa >>> 2) + this.#index(va, l) * 2;
      if (l === level) return { tablePa, at };
      const lo = descLoadLo(this.#i32, at);
      if (this.codec.present(lo)) {
        if (this.codec.isLeaf(l, lo)) throw new Error(`map inside a live block at 0x${va.toString(16)}`);
        tablePa = this.codec.addr(l, lo, descLoadHi(this.#i32, at));
        continue;
      }
      const child = this.#frames.alloc() * 4096; // zeroed
      this.#counts[child / 4096] = 0;
      this.codec.table(child);
      this.#install(tablePa, at, ENCODED[0]!, ENCODED[1]!);
      tablePa = child;
    }
  }

  /**
   * Unmaps [iova, iova+length) and returns the bytes that were mapped in it, telling `cleared`
   * of each leaf it removed. A block that sticks out of the range is split first (ENOMEM is then
   * possible, with what came before it already unmapped, as the kernel's split does).
   */
  unmap(iova: number, length: number, cleared?: ClearedRange): number {
    const end = Math.min(iova + length, this.inputLimit);
    if (iova >= end) return 0;
    return this.#unmapIn(this.rootPa, this.codec.startLevel, 0, iova, end, cleared);
  }

  #unmapIn(
    tablePa: number,
    level: number,
    base: number,
    start: number,
    end: number,
    cleared: ClearedRange | undefined,
  ): number {
    const size = levelSize(level);
    const entries = level === this.codec.startLevel ? this.codec.startEntries : 512;
    let done = 0;
    const first = Math.floor((start - base) / size);
    for (let i = first; i < entries; i++) {
      const va = base + i * size;
      if (va >= end) break;
      const at = (tablePa >>> 2) + i * 2;
      const lo = descLoadLo(this.#i32, at);
      if (!this.codec.present(lo)) continue;
      const hi = descLoadHi(this.#i32, at);
      const inside = va >= start && va + size <= end;
      if (this.codec.isLeaf(level, lo)) {
        if (inside) {
          this.#clear(tablePa, at);
          done += size;
          cleared?.(va, size, level);
          continue;
        }
        this.#split(tablePa, at, level, lo, hi);
      }
      const child = this.codec.addr(level, descLoadLo(this.#i32, at), descLoadHi(this.#i32, at));
      done += this.#unmapIn(child, level + 1, va, Math.max(start, va), Math.min(end, va + size), cleared);
      if (this.#counts[child / 4096] === 0) {
        this.#clear(tablePa, at);
        this.#frames.put(child / 4096);
      }
    }
    return done;
  }

  /**
   * Replaces a block by a table of the next level that maps the same range with the same
   * attributes: the table is built first (ENOMEM leaves the block alone), then the block is
   * broken and the table made (break-before-make: walkers see the block, nothing, or the table).
   */
  #split(tablePa: number, at: number, level: number, lo: number, hi: number): void {
    const child = this.#frames.alloc() * 4096;
    const childLevel = level + 1;
    const step = levelSize(childLevel);
    const base = this.codec.addr(level, lo, hi);
    const childAt = child >>> 2;
    for (let i = 0; i < 512; i++) {
      this.codec.splitLeaf(lo, hi, level, childLevel, base + i * step);
      descInstall(this.#i32, childAt + i * 2, ENCODED[0]!, ENCODED[1]!);
    }
    this.#counts[child / 4096] = 512;
    this.#clear(tablePa, at);
    this.codec.table(child);
    this.#install(tablePa, at, ENCODED[0]!, ENCODED[1]!);
  }

  /** Unlinks tables on the path to `va` that hold no entry (after a map failed there). */
  #prune(va: number): void {
    if (va >= this.inputLimit) return;
    const path: { tablePa: number; at: number; child: number }[] = [];
    let tablePa = this.rootPa;
    for (let l = this.codec.startLevel; l < 3; l++) {
      const at = (tablePa >>> 2) + this.#index(va, l) * 2;
      const lo = descLoadLo(this.#i32, at);
      if (!this.codec.present(lo) || this.codec.isLeaf(l, lo)) break;
      const child = this.codec.addr(l, lo, descLoadHi(this.#i32, at));
      path.push({ tablePa, at, child });
      tablePa = child;
    }
    for (let k = path.length - 1; k >= 0; k--) {
      const { tablePa: parent, at, child } = path[k]!;
      if (this.#counts[child / 4096] !== 0) break;
      this.#clear(parent, at);
      this.#frames.put(child / 4096);
    }
  }

  /**
   * Retires every table, the start tables included, without clearing any entry: the domain must
   * already be unreachable for new walks (no device context names it), and a walk that started
   * earlier keeps seeing the whole table, unchanged, until the reclaimer's grace period ends.
   */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#retireTree(this.rootPa, this.codec.startLevel);
    for (let f = 0; f < this.#rootFrames; f++) this.#frames.put(this.rootPa / 4096 + f);
  }

  #retireTree(tablePa: number, level: number): void {
    if (level >= 3) return;
    const entries = level === this.codec.startLevel ? this.codec.startEntries : 512;
    for (let i = 0; i < entries; i++) {
      const at = (tablePa >>> 2) + i * 2;
      const lo = descLoadLo(this.#i32, at);
      if (!this.codec.present(lo) || this.codec.isLeaf(level, lo)) continue;
      const child = this.codec.addr(level, lo, descLoadHi(this.#i32, at));
      this.#retireTree(child, level + 1);
      this.#frames.put(child / 4096);
    }
  }

  /** Frames used by tables (start tables included). */
  tableFrames(): number {
    return this.#rootFrames + this.#countTables(this.rootPa, this.codec.startLevel);
  }

  #countTables(tablePa: number, level: number): number {
    if (level >= 3) return 0;
    const entries = level === this.codec.startLevel ? this.codec.startEntries : 512;
    let n = 0;
    for (let i = 0; i < entries; i++) {
      const at = (tablePa >>> 2) + i * 2;
      const lo = descLoadLo(this.#i32, at);
      if (!this.codec.present(lo) || this.codec.isLeaf(level, lo)) continue;
      n += 1 + this.#countTables(this.codec.addr(level, lo, descLoadHi(this.#i32, at)), level + 1);
    }
    return n;
  }
}
