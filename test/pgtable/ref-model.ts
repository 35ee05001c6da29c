// Reference model and shared harness for the page-table format property tests (*.property.test.ts
// in this folder). The model is deliberately naive: a sorted list of disjoint linear extents
// (IOVA [start, end) → PA start, prot). It knows nothing of tables; the table-count bounds below
// are derived from the extents and from which levels the reference allows leaves at.
//
// Everything is exact in doubles: IOVAs stay below 2^53 and PAs below 2^48.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameAllocator, PhysMemory } from '../../src/memory/index.js';
import {
  Access,
  Prot,
  RadixPageTable,
  TranslateFault,
  WalkFault,
  type PaSource,
  type RadixCodec,
} from '../../src/pgtable/index.js';

export const PAGE = 4096;
export const MIB2 = 2 ** 21;
export const GIB = 2 ** 30;
const PAGES_PER_GIB = GIB / PAGE;

/** Bytes one entry at `level` maps (Arm numbering: 3 = 4 KiB, 2 = 2 MiB, 1 = 1 GiB, 0 = 512 GiB, -1 = 256 TiB). */
export const entrySize = (level: number): number => 2 ** (12 + 9 * (3 - level));
const ENTRY_SIZE = [-1, 0, 1, 2, 3].map(entrySize); // index level + 1

/** Levels above 3 that may hold a block in every format here: 1 GiB and 2 MiB (§1.1; §2.1, §2.2). */
export const BLOCK_LEVELS: readonly number[] = [1, 2];

// ------------------------------------------------------------------------------------ the model

/** One linearly mapped run: [start, end) → [pa, pa + end - start). */
export interface Extent {
  start: number;
  end: number;
  pa: number;
  prot: number;
  /** Mapped with huge = true: only then may the builder use blocks. */
  huge: boolean;
}

/** A run of a map's PA source: offsets [off, off + len) of the map go to pa + (offset - off). */
export interface Piece {
  off: number;
  len: number;
  pa: number;
}

/** A half-open interval [0] .. [1]. */
export type Interval = [number, number];

export class RefModel {
  /** Disjoint, sorted by start. */
  extents: Extent[] = [];

  get empty(): boolean {
    return this.extents.length === 0;
  }

  /** The extent holding `iova` (binary search over the sorted, disjoint extents). */
  lookup(iova: number): Extent | undefined {
    let lo = 0;
    let hi = this.extents.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.extents[mid]!.end <= iova) lo = mid + 1;
      else hi = mid;
    }
    const e = this.extents[lo];
    return e !== undefined && e.start <= iova ? e : undefined;
  }

  /** End of the unmapped run that begins at `start`, capped at `end`; `start` if `start` is mapped. */
  gapEnd(start: number, end: number): number {
    if (this.lookup(start) !== undefined) return start;
    let stop = end;
    for (const e of this.extents) if (e.start >= start && e.start < stop) stop = e.start;
    return stop;
  }

  /** Records a map of `pieces` (offsets relative to `iova`). The range must be unmapped. */
  map(iova: number, pieces: readonly Piece[], prot: number, huge: boolean): void {
    for (const p of pieces) {
      if (this.gapEnd(iova + p.off, iova + p.off + p.len) !== iova + p.off + p.len)
        throw new Error('model: map over a mapped range');
      this.extents.push({ start: iova + p.off, end: iova + p.off + p.len, pa: p.pa, prot, huge });
    }
    this.extents.sort((x, y) => x.start - y.start);
  }

  /** Removes [start, end) and returns the intervals that were mapped in it, sorted. */
  unmap(start: number, end: number): Interval[] {
    const removed: Interval[] = [];
    const kept: Extent[] = [];
    for (const e of this.extents) {
      if (e.end <= start || e.start >= end) {
        kept.push(e);
        continue;
      }
      const lo = Math.max(e.start, start);
      const hi = Math.min(e.end, end);
      removed.push([lo, hi]);
      if (e.start < lo) kept.push({ ...e, end: lo });
      if (hi < e.end) kept.push({ ...e, start: hi, pa: e.pa + (hi - e.start) });
    }
    this.extents = kept.sort((x, y) => x.start - y.start);
    return removed;
  }

  /** Indices of the `size`-aligned regions that hold at least one mapped byte. */
  touched(size: number): Set<number> {
    const s = new Set<number>();
    for (const e of this.extents)
      for (let r = Math.floor(e.start / size); r <= Math.floor((e.end - 1) / size); r++) s.add(r);
    return s;
  }

  /**
   * Whether region `r` of `size` bytes may be one block: one huge extent (a piece of one map call)
   * maps all of it, from a `size`-aligned PA.
   */
  blockable(r: number, size: number): boolean {
    const lo = r * size;
    return this.extents.some(
      (e) => e.huge && e.start <= lo && e.end >= lo + size && (e.pa + (lo - e.start)) % size === 0,
    );
  }
}

/** Merges sorted-or-not intervals into sorted, disjoint, non-adjacent ones. */
export function mergeIntervals(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((x, y) => x[0] - y[0]);
  const out: Interval[] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export function paSource(pieces: readonly Piece[]): PaSource {
  return (off) => {
    for (const p of pieces) if (off >= p.off && off < p.off + p.len) return p.pa + (off - p.off);
    throw new Error(`PA source asked for offset 0x${off.toString(16)} outside the map`);
  };
}

// ------------------------------------------------------------------------------------ formats

export type Walker = (
  i32: Int32Array,
  rootPa: number,
  cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
) => number;

export interface Format {
  name: string;
  codec: () => RadixCodec;
  walk: Walker;
  /** Packed walk configuration. */
  cfg: number;
  /** Input size in bits: the builder covers [0, 2^inputBits). */
  inputBits: number;
  /** Expected from the reference: start level, start-table entries, start-table frames. */
  startLevel: number;
  startEntries: number;
  rootFrames: number;
  /** Whether a mapping without Prot.Read denies reads (Arm S2, VT-d SL); else write-only is mapped RW. */
  readGated: boolean;
  /** The IOVA window the ops work in: [base, base + size), base 1 GiB-aligned unless size < 1 GiB. */
  base: number;
  size: number;
}

/**
 * Wraps a codec so that the builder asking about a level outside [startLevel, 3] fails at once
 * instead of walking past the leaf level (which can loop forever or corrupt memory).
 */
export function guardCodec(c: RadixCodec): RadixCodec {
  const check = (level: number): void => {
    if (!Number.isInteger(level) || level < c.startLevel || level > 3)
      throw new Error(`builder used level ${level}, outside [${c.startLevel}, 3]`);
  };
  return {
    startLevel: c.startLevel,
    startEntries: c.startEntries,
    blockLevels: c.blockLevels,
    table: (pa) => c.table(pa),
    leaf: (level, pa, prot) => {
      check(level);
      c.leaf(level, pa, prot);
    },
    splitLeaf: (lo, hi, level, childLevel, pa) => {
      check(level);
      check(childLevel);
      c.splitLeaf(lo, hi, level, childLevel, pa);
    },
    present: (lo) => c.present(lo),
    isLeaf: (level, lo) => {
      check(level);
      return c.isLeaf(level, lo);
    },
    addr: (level, lo, hi) => {
      check(level);
      return c.addr(level, lo, hi);
    },
  };
}

/** A fresh memory, allocator and table, as the brief sets them up. */
export function setUp(fmt: Format): { m: PhysMemory; a: FrameAllocator; pt: RadixPageTable } {
  const m = new PhysMemory(64 * 2 ** 20);
  const a = new FrameAllocator(m);
  const pt = new RadixPageTable(m, a, guardCodec(fmt.codec()));
  return { m, a, pt };
}

// ------------------------------------------------------------------------------------ ops

/** Synthetic, 1 GiB-aligned PA bases (the builder never touches mapped memory). All runs stay below 2^48 and away from the VT-d interrupt range. */
export const PA_BASES = [0, 2 ** 32, 2 ** 46 + 2 ** 40, 2 ** 47 + 2 ** 45] as const;
/** Where the odd page of a broken run goes. */
const BREAK_PA = 2 ** 45;

interface Where {
  /** Offset into the window = (g GiB + b 2 MiB + c 4 KiB) mod window size. */
  g: number;
  b: number;
  c: number;
  /** Length in pages, or the whole window. */
  pages: number | 'all';
}
export type Op =
  | ({ kind: 'map'; prot: number; huge: boolean; paBase: number; skew: number; brk: number | null } & Where)
  | ({ kind: 'unmap' } & Where);

// Lengths in pages: mostly small, often around 2 MiB, or a GiB or more (unmaps; maps have their own variant).
const pagesArb = (big: boolean): fc.Arbitrary<number> =>
  fc.oneof(
    { weight: 10, arbitrary: fc.integer({ min: 1, max: 16 }) },
    { weight: 8, arbitrary: fc.constantFrom(511, 512, 513, 1024, 1536) },
    { weight: big ? 4 : 0, arbitrary: fc.constantFrom(PAGES_PER_GIB, PAGES_PER_GIB + 512) },
  );
const whereArb = {
  g: fc.integer({ min: 0, max: 2 }),
  b: fc.oneof(fc.constantFrom(0, 1, 255, 256, 510, 511), fc.integer({ min: 0, max: 511 })),
  c: fc.oneof(fc.constantFrom(0, 1, 511), fc.integer({ min: 0, max: 511 })),
};

const mapFields = (pageSkew: number) => ({
  prot: fc.constantFrom(Prot.Read, Prot.Write, Prot.Read | Prot.Write),
  paBase: fc.constantFrom(...PA_BASES),
  // 0 keeps the IOVA's alignment (blocks possible); 4 KiB forbids blocks; 2 MiB forbids 1 GiB blocks.
  skew: fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(0, MIB2) },
    { weight: pageSkew, arbitrary: fc.constant(PAGE) },
  ),
  // Page (as a fraction of the run) whose PA breaks the contiguity of the run (null: none).
  brk: fc.option(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { freq: 2 }),
});

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      ...whereArb,
      pages: pagesArb(false),
      huge: fc.boolean(),
      ...mapFields(4),
    }),
  },
  {
    // A GiB (or a GiB + 2 MiB) from a 1 GiB boundary, or from 2 MiB past one (straddling the next),
    // mostly huge: 1 GiB blocks, their splits, and runs of 2 MiB blocks across a 1 GiB boundary.
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      g: fc.integer({ min: 0, max: 2 }),
      b: fc.constantFrom(0, 0, 1),
      c: fc.constant(0),
      pages: fc.constantFrom(PAGES_PER_GIB, PAGES_PER_GIB + 512),
      // Rarely 4 KiB pages: a GiB of them is slow to build.
      huge: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      ...mapFields(1),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('unmap' as const),
      ...whereArb,
      pages: fc.oneof({ weight: 8, arbitrary: pagesArb(true) }, { weight: 1, arbitrary: fc.constant('all' as const) }),
    }),
  },
);

export const opsArb = fc.array(opArb, { maxLength: 30 });

/**
 * A fixed tour that every format runs first: a 1 GiB-aligned huge GiB (a 1 GiB block, or 2 MiB
 * blocks when the start level is 2), a 4 KiB hole punched in it (1 GiB → 2 MiB → 4 KiB splits),
 * a 2 MiB run straddling a 1 GiB boundary, then everything unmapped.
 */
export const TOUR: Op[] = [
  { kind: 'map', g: 0, b: 0, c: 0, pages: PAGES_PER_GIB, huge: true, prot: 3, paBase: 2 ** 32, skew: 0, brk: null },
  { kind: 'unmap', g: 0, b: 3, c: 7, pages: 1 },
  { kind: 'map', g: 1, b: 511, c: 256, pages: 512, huge: true, prot: 1, paBase: 0, skew: 0, brk: null },
  { kind: 'unmap', g: 0, b: 0, c: 0, pages: 'all' },
];

/** The window range an op touches, clipped to the window. */
function range(fmt: Format, w: Where): Interval {
  if (w.pages === 'all') return [fmt.base, fmt.base + fmt.size];
  const start = fmt.base + ((w.g * GIB + w.b * MIB2 + w.c * PAGE) % fmt.size);
  return [start, Math.min(start + w.pages * PAGE, fmt.base + fmt.size)];
}

function pieces(fmt: Format, op: Extract<Op, { kind: 'map' }>, start: number, len: number): Piece[] {
  const pa = op.paBase + (start - fmt.base) + op.skew;
  if (op.brk === null) return [{ off: 0, len, pa }];
  const k = Math.floor(op.brk * (len / PAGE)) * PAGE;
  const out: Piece[] = [];
  if (k > 0) out.push({ off: 0, len: k, pa });
  out.push({ off: k, len: PAGE, pa: BREAK_PA + k });
  if (k + PAGE < len) out.push({ off: k + PAGE, len: len - k - PAGE, pa: pa + k + PAGE });
  return out;
}

// ------------------------------------------------------------------------------------ checks

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Expected walk result for `iova` under the model. */
export function expected(fmt: Format, model: RefModel, iova: number, access: number): number {
  const e = model.lookup(iova);
  if (e === undefined) return TranslateFault.NotMapped;
  if (access === Access.Write && (e.prot & Prot.Write) === 0) return TranslateFault.Permission;
  if (access === Access.Read && fmt.readGated && (e.prot & Prot.Read) === 0) return TranslateFault.Permission;
  return e.pa + (iova - e.start);
}

/**
 * Probe IOVAs: fixed points of the window, the edges of every extent, and around the op's range
 * (where splits happen): every page of the 2 MiB regions holding its ends, and one page (at a
 * varying offset) of every 2 MiB region of the 1 GiB regions holding its ends.
 */
function probes(fmt: Format, model: RefModel, op: Interval | undefined, salt: number): number[] {
  const b = fmt.base;
  const out = [b, b + MIB2 - PAGE, b + MIB2, b + GIB - PAGE, b + GIB, b + GIB + MIB2, b + 2 * GIB, b + fmt.size - PAGE];
  const edges = (s: number, e: number): void => {
    out.push(s - PAGE, s, s + 0xabc, e - PAGE, e - 1, e);
  };
  for (const e of model.extents) edges(e.start, e.end);
  if (op !== undefined) {
    edges(op[0], op[1]);
    for (const at of new Set([op[0], op[1] - 1])) {
      const r2 = at - (at % MIB2);
      for (let p = r2; p < r2 + MIB2; p += PAGE) out.push(p + ((p / PAGE) % 8) * 0x1f8); // a varying byte offset in the page
      const r1 = at - (at % GIB);
      for (let k = 0; k < GIB / MIB2; k++) out.push(r1 + k * MIB2 + ((k * 37 + salt * 101) % 512) * PAGE);
    }
  }
  return out.filter((p) => p >= b && p < b + fmt.size);
}

function checkWalks(fmt: Format, m: PhysMemory, pt: RadixPageTable, model: RefModel, op?: Interval, salt = 0): void {
  const fault = new WalkFault();
  for (const iova of probes(fmt, model, op, salt)) {
    for (const access of [Access.Read, Access.Write]) {
      const want = expected(fmt, model, iova, access);
      const got = fmt.walk(m.i32, pt.rootPa, fmt.cfg, iova, access, fault);
      if (got !== want)
        throw new Error(
          `${fmt.name}: walk(${hex(iova)}, ${access === Access.Read ? 'read' : 'write'}) = ${got < 0 ? got : hex(got)}, model says ${want < 0 ? want : hex(want)}`,
        );
      if (got < 0 && (fault.words[0] !== got || fault.iova !== iova))
        throw new Error(`${fmt.name}: fault record [${fault.words.join(',')}] @${hex(fault.iova)} for ${hex(iova)}`);
    }
  }
}

/** Table-frame bounds implied by the model, on top of the start tables. */
export function tableBounds(fmt: Format, model: RefModel): [number, number] {
  let lower = 0;
  let upper = 0;
  // A table hangs under a level-l entry (startLevel <= l <= 2). Emptied tables are freed, so the
  // entry's region must hold a mapping; and a region that cannot be one block must be a table.
  for (let l = fmt.startLevel; l <= 2; l++) {
    const size = entrySize(l);
    for (const r of model.touched(size)) {
      upper++;
      if (!BLOCK_LEVELS.includes(l) || !model.blockable(r, size)) lower++;
    }
  }
  return [lower, upper];
}

function checkTables(fmt: Format, a: FrameAllocator, pt: RadixPageTable, model: RefModel): void {
  const frames = pt.tableFrames();
  expect(a.inUse, `${fmt.name}: allocator frames vs table frames`).toBe(frames);
  const [lower, upper] = tableBounds(fmt, model);
  const extra = frames - fmt.rootFrames;
  if (extra < lower || extra > upper)
    throw new Error(`${fmt.name}: ${extra} tables beyond the start tables, model allows [${lower}, ${upper}]`);
  if (model.empty) expect(frames, `${fmt.name}: nothing mapped, only the start tables`).toBe(fmt.rootFrames);
}

interface Cleared {
  iova: number;
  size: number;
  level: number;
}

function checkUnmap(fmt: Format, pt: RadixPageTable, model: RefModel, [start, end]: Interval): void {
  const cleared: Cleared[] = [];
  const bytes = pt.unmap(start, end - start, (iova, size, level) => cleared.push({ iova, size, level }));
  const removed = model.unmap(start, end);
  const want = removed.reduce((n, [a, b]) => n + b - a, 0);
  if (bytes !== want)
    throw new Error(`${fmt.name}: unmap(${hex(start)}, ${hex(end - start)}) = ${hex(bytes)}, model ${hex(want)}`);
  // The gather comes in IOVA order from the walk; sort only if it does not, as order is not promised.
  if (cleared.some((c, i) => i > 0 && c.iova < cleared[i - 1]!.iova)) cleared.sort((x, y) => x.iova - y.iova);
  // Each range is one whole leaf, disjoint from the others; merged, they tile what the model removed.
  const tiles: Interval[] = [];
  for (const c of cleared) {
    const levelOk = c.level === 3 || (BLOCK_LEVELS.includes(c.level) && c.level >= fmt.startLevel);
    const last = tiles[tiles.length - 1];
    if (
      !levelOk ||
      c.size !== ENTRY_SIZE[c.level + 1] ||
      c.iova % c.size !== 0 ||
      (last !== undefined && c.iova < last[1])
    )
      throw new Error(`${fmt.name}: bad cleared range ${hex(c.iova)}+${hex(c.size)} level ${c.level}`);
    if (last !== undefined && c.iova === last[1]) last[1] += c.size;
    else tiles.push([c.iova, c.iova + c.size]);
  }
  expect(tiles, `${fmt.name}: cleared ranges of unmap(${hex(start)}, ${hex(end - start)})`).toEqual(
    mergeIntervals(removed),
  );
}

/** Runs `ops` against a fresh table and the model, checking after every op; tears down at the end. */
export function runOps(fmt: Format, ops: readonly Op[]): void {
  const { m, a, pt } = setUp(fmt);
  const model = new RefModel();
  checkTables(fmt, a, pt, model);
  for (const [i, op] of ops.entries()) {
    const [start, rawEnd] = range(fmt, op);
    if (op.kind === 'map') {
      // Preconditions: map only over unmapped IOVA, so clip to the free run at `start`.
      const end = model.gapEnd(start, rawEnd);
      if (end <= start) continue;
      const ps = pieces(fmt, op, start, end - start);
      pt.map(start, end - start, paSource(ps), op.prot, op.huge);
      model.map(start, ps, op.prot, op.huge);
      checkWalks(fmt, m, pt, model, [start, end], i);
    } else {
      checkUnmap(fmt, pt, model, [start, rawEnd]);
      checkWalks(fmt, m, pt, model, [start, rawEnd], i);
    }
    checkTables(fmt, a, pt, model);
  }
  checkUnmap(fmt, pt, model, [fmt.base, fmt.base + fmt.size]);
  checkWalks(fmt, m, pt, model);
  checkTables(fmt, a, pt, model);
  expect(a.inUse, `${fmt.name}: frames after unmapping everything`).toBe(fmt.rootFrames);
  pt.free();
  expect(a.inUse, `${fmt.name}: frames after free`).toBe(0);
}

// ------------------------------------------------------------------------------------ suites

const linear =
  (pa: number): PaSource =>
  (off) =>
    pa + off;

/** Maps [iova, iova + size) huge with a `size`-aligned PA and checks walks, table frames and the unmap gather. */
function checkBlock(fmt: Format, iova: number, size: number, pa: number, huge: boolean, leafLevel: number): number {
  const { m, a, pt } = setUp(fmt);
  pt.map(iova, size, linear(pa), Prot.Read | Prot.Write, huge);
  const frames = pt.tableFrames();
  expect(a.inUse).toBe(frames);
  const fault = new WalkFault();
  for (const off of [0, 0xabc, PAGE, size / 2 + 0x10, size - PAGE, size - 1]) {
    for (const access of [Access.Read, Access.Write]) {
      const got = fmt.walk(m.i32, pt.rootPa, fmt.cfg, iova + off, access, fault);
      expect(got, `${fmt.name}: walk ${hex(iova + off)}`).toBe(pa + off);
    }
  }
  for (const off of [-PAGE, size])
    if (iova + off >= fmt.base && iova + off < fmt.base + fmt.size)
      expect(fmt.walk(m.i32, pt.rootPa, fmt.cfg, iova + off, Access.Read, fault)).toBe(TranslateFault.NotMapped);
  const cleared: Cleared[] = [];
  expect(pt.unmap(iova, size, (v, s, l) => cleared.push({ iova: v, size: s, level: l }))).toBe(size);
  const step = entrySize(leafLevel);
  expect(cleared.length, `${fmt.name}: leaves cleared`).toBe(size / step);
  expect(cleared.every((c, i) => c.level === leafLevel && c.size === step && c.iova === iova + i * step)).toBe(true);
  expect(pt.tableFrames()).toBe(fmt.rootFrames);
  expect(a.inUse).toBe(fmt.rootFrames);
  return frames;
}

/** The property and block tests for each format. */
export function formatSuite(formats: readonly Format[], numRuns: number): void {
  for (const fmt of formats) {
    describe(fmt.name, () => {
      it('has the start level, start-table entries and start frames of the reference', () => {
        const c = fmt.codec();
        expect([c.startLevel, c.startEntries]).toEqual([fmt.startLevel, fmt.startEntries]);
        const { a, pt } = setUp(fmt);
        expect(pt.inputLimit).toBe(2 ** fmt.inputBits);
        expect(pt.tableFrames()).toBe(fmt.rootFrames);
        expect(a.inUse).toBe(fmt.rootFrames);
        expect(fmt.base % PAGE === 0 && fmt.base + fmt.size <= 2 ** fmt.inputBits).toBe(true);
      });

      it('random map/unmap sequences agree with the reference model', () => {
        fc.assert(
          fc.property(opsArb, (ops) => runOps(fmt, ops)),
          { numRuns, examples: [[TOUR]] },
        );
      });

      it('a 2 MiB-aligned huge map uses one 2 MiB block, and fewer tables than 4 KiB pages', () => {
        fc.assert(
          fc.property(
            fc.integer({ min: 0, max: fmt.size / MIB2 - 1 }),
            fc.constantFrom(...PA_BASES),
            (slot, paBase) => {
              const iova = fmt.base + slot * MIB2;
              const pa = paBase + slot * MIB2;
              const blockFrames = checkBlock(fmt, iova, MIB2, pa, true, 2);
              const pageFrames = checkBlock(fmt, iova, MIB2, pa, false, 3);
              expect(blockFrames).toBe(fmt.rootFrames + 2 - fmt.startLevel);
              expect(pageFrames).toBe(fmt.rootFrames + 3 - fmt.startLevel);
            },
          ),
          { numRuns: 8 },
        );
      });

      // With start level 2 (Arm S1 T0SZ >= 34, S2 SL0 = 0), the start table's entries are the
      // largest leaves: a 1 GiB run must become 512 2 MiB blocks; there is no level-1 entry to hold it.
      if (fmt.size >= GIB)
        it('a 1 GiB-aligned huge map of 1 GiB uses the largest block at or below the start level', () => {
          fc.assert(
            fc.property(fc.integer({ min: 0, max: fmt.size / GIB - 1 }), fc.constantFrom(...PA_BASES), (g, paBase) => {
              // Blocks exist at levels 1 and 2 only (§1.1, §2.1), and a table has no entry above its start level.
              const level = Math.max(1, fmt.startLevel);
              const frames = checkBlock(fmt, fmt.base + g * GIB, GIB, paBase + g * GIB, true, level);
              expect(frames).toBe(fmt.rootFrames + Math.max(0, level - fmt.startLevel));
            }),
            { numRuns: 3 },
          );
        });
    });
  }
}
