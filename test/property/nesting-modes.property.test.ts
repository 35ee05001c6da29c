// Hardware vs software nesting: the same random guest workload — stage-1 maps (with or without
// the caching-mode invalidation after them), unmaps and permission changes each followed by the
// guest's invalidation (one page, a range, several ranges in one call, or 512 pages and more),
// the VMM's stage-2 unmaps and remaps of data pages and of stage-1 table pages, 2 MiB stage-1
// blocks put in and taken out (a block's removal or change invalidated by one address of it, so
// every 4 KiB piece the caches hold of it must go), and translations for read and write — runs on two fds, one per nesting mode, and on a reference model computed
// from the guest's tables and stage 2 alone. Every translation must give the same host page and
// offset on both fds and in the model, or fault with the same code on both fds (and the model's
// code). VT-d: two nested HWPTs over one parent (the RID's and PASID 1's); SMMUv3: a vSTE on a
// vIOMMU, CD 0 (ASID 1) without PASID and CD 1 (ASID 2) for PASID 1, TLBI_NH_VA by ASID.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Access } from '../../src/index.js';
import {
  CDTAB,
  CTXS,
  DATA,
  DATA_PAGES,
  Model,
  regionIova,
  Rig,
  SLOTS,
  slotIova,
  SPARE_PAGES,
  tableGpa,
  TABLES_PER_CTX,
  type Leaf,
  type Mode,
  type Outcome,
  type RigOptions,
  type Vendor,
} from './nesting-rig.js';

// NESTING_PROPERTY_RUNS=1000 for a longer soak.
const NUM_RUNS = Number(process.env['NESTING_PROPERTY_RUNS'] ?? 150);

type Op =
  | { k: 'map'; ctx: number; slot: number; page: number; write: boolean; dirty: boolean; af: boolean; inv: boolean }
  | { k: 'mapMany'; ctx: number; slot: number; n: number; page: number; write: boolean; dirty: boolean; inv: boolean }
  | { k: 'unmap'; ctx: number; slot: number; before: number; after: number }
  | { k: 'unmapMany'; ctx: number; slot: number; n: number }
  | { k: 'protect'; ctx: number; slot: number; write: boolean; dirty: boolean }
  | { k: 'bigInv'; ctx: number }
  | { k: 's2Data'; page: number; n: number; spare: number; writeable: boolean }
  | { k: 's2Table'; ctx: number; t: number }
  | { k: 'xlate'; ctx: number; slot: number; mapped: boolean; off: number; write: boolean; times: number }
  | { k: 'xlateAll' }
  | { k: 'block'; ctx: number; region: number; on: boolean; write: boolean; dirty: boolean; af: boolean; page: number };

const ctxA = fc.integer({ min: 0, max: CTXS - 1 });
const slotA = fc.integer({ min: 0, max: SLOTS - 1 });
const mapManyA = fc.record({
  k: fc.constant('mapMany' as const),
  ctx: ctxA,
  slot: slotA,
  n: fc.integer({ min: 2, max: 12 }),
  page: fc.integer({ min: 0, max: DATA_PAGES - 1 }),
  write: fc.boolean(),
  dirty: fc.boolean(),
  inv: fc.boolean(),
});
const opA: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('map' as const),
      ctx: ctxA,
      slot: slotA,
      page: fc.integer({ min: 0, max: DATA_PAGES - 1 }),
      write: fc.boolean(),
      dirty: fc.boolean(),
      af: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      inv: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: mapManyA },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('unmap' as const),
      ctx: ctxA,
      slot: slotA,
      before: fc.integer({ min: 0, max: 2 }),
      after: fc.integer({ min: 0, max: 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('unmapMany' as const),
      ctx: ctxA,
      slot: slotA,
      n: fc.integer({ min: 2, max: 10 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('protect' as const),
      ctx: ctxA,
      slot: slotA,
      write: fc.boolean(),
      dirty: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('bigInv' as const), ctx: ctxA }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('s2Data' as const),
      page: fc.integer({ min: 0, max: DATA_PAGES - 1 }),
      n: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 4 }) }),
      spare: fc.integer({ min: -SPARE_PAGES, max: SPARE_PAGES - 1 }), // < 0: the page's own host page
      writeable: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    }),
  },
  {
    weight: 1,
    // t = TABLES_PER_CTX: the CD table (SMMUv3; VT-d: L0).
    arbitrary: fc.record({
      k: fc.constant('s2Table' as const),
      ctx: ctxA,
      t: fc.integer({ min: 0, max: TABLES_PER_CTX }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('xlate' as const),
      ctx: ctxA,
      slot: fc.nat(),
      // Mostly a slot the context maps (picked among them by `slot`), else any slot.
      mapped: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      off: fc.integer({ min: 0, max: 4095 }),
      write: fc.boolean(),
      times: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ k: 'xlateAll' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('block' as const),
      ctx: ctxA,
      region: fc.integer({ min: 0, max: 2 }),
      on: fc.boolean(),
      write: fc.boolean(),
      dirty: fc.boolean(),
      af: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      // The page of the block whose address a removal or change is invalidated by.
      page: fc.integer({ min: 0, max: 511 }),
    }),
  },
);

/** The fds' options and the guest's choices that hold for one run. */
interface RunOpts {
  ats: boolean;
  iotlb: { entries: number; shards: number };
  shadowEntries: number;
  smmuModeOn: 'viommu' | 'parent';
  /** SMMUv3: range invalidations as RIL commands (else one TLBI_NH_VA per page). */
  ril: boolean;
}

const optsA: fc.Arbitrary<RunOpts> = fc.record({
  ats: fc.boolean(),
  iotlb: fc.constantFrom(
    { entries: 8, shards: 1 },
    { entries: 64, shards: 2 },
    { entries: 65536, shards: 8 },
    { entries: 4096, shards: 4 },
  ),
  shadowEntries: fc.constantFrom(8, 16, 64, 32768),
  smmuModeOn: fc.constantFrom('viommu' as const, 'parent' as const),
  ril: fc.boolean(),
});

/** Totals over the runs of one vendor, to show the workload reached every shadow path. */
interface Totals {
  translations: number;
  shadowHits: number;
  shadowMisses: number;
  fills: number;
  rewritten: number;
  prefetched: number;
  dropped: number;
  s2Dropped: number;
  evictions: number;
  faults: number;
}

/** Runs `ops` on a model and one rig per mode; every translation compared. */
function runWorkload(vendor: Vendor, o: RunOpts, ops: Op[], totals: Totals): void {
  const base: Omit<RigOptions, 'mode'> = {
    vendor,
    ats: o.ats,
    iotlb: o.iotlb,
    shadowEntries: o.shadowEntries,
    smmuModeOn: o.smmuModeOn,
  };
  const rigs = (['hardware', 'software'] as Mode[]).map((mode) => new Rig({ ...base, mode }));
  const model = new Model(vendor);
  const each = (f: (r: Rig) => void): void => rigs.forEach(f);
  const slotsInGroup = (s: number): [number, number] => (s < 16 ? [0, 16] : [16, 24]);
  /** The range [first, first + n) of slots, clamped to the group of contiguous IOVAs `s` is in. */
  const range = (s: number, first: number, n: number): [number, number] => {
    const [lo, hi] = slotsInGroup(s);
    const a = Math.max(lo, first);
    const b = Math.min(hi, first + n);
    return [slotIova(a), b - a];
  };
  const xlate = (ctx: number, slot: number, off: number, write: boolean, step: number): void => {
    const access = write ? Access.Write : Access.Read;
    const iova = slotIova(slot) + off;
    const [hw, sw] = rigs.map((r) => r.translate(ctx, iova, access)) as [Outcome, Outcome];
    totals.translations++;
    const where = `step ${step}: ctx ${ctx} slot ${slot} ${write ? 'write' : 'read'}`;
    expect(sw, `${where}: software vs hardware`).toEqual(hw);
    const want = model.expect(ctx, slot, off, access);
    if (typeof want === 'number') {
      expect(hw.ok ? 'translated' : hw.code, `${where}: model`).toBe(want);
      totals.faults++;
    } else {
      expect(hw, `${where}: model`).toEqual({ ok: true, ...want });
    }
  };
  try {
    ops.forEach((op, step) => {
      switch (op.k) {
        case 'map': {
          const leaf: Leaf = { page: op.page, write: op.write, dirty: op.dirty, af: op.af };
          const present = model.leaves[op.ctx]![op.slot] !== null;
          model.leaves[op.ctx]![op.slot] = leaf;
          each((r) => r.setLeaf(op.ctx, op.slot, leaf));
          // A present entry replaced must be invalidated; a new one may be (caching mode).
          if (present || op.inv) each((r) => r.invalidate(op.ctx, [range(op.slot, op.slot, 1)], o.ril));
          break;
        }
        case 'mapMany': {
          // n slots (clamped to contiguous IOVAs), then one range invalidation if any was present
          // or the guest is in caching mode.
          const [iova, n] = range(op.slot, op.slot, op.n);
          let present = false;
          for (let s = op.slot; s < op.slot + n; s++) {
            const leaf: Leaf = { page: (op.page + s) % DATA_PAGES, write: op.write, dirty: op.dirty, af: true };
            present ||= model.leaves[op.ctx]![s] !== null;
            model.leaves[op.ctx]![s] = leaf;
            each((r) => r.setLeaf(op.ctx, s, leaf));
          }
          if (present || op.inv) each((r) => r.invalidate(op.ctx, [[iova, n]], o.ril));
          break;
        }
        case 'unmap': {
          model.leaves[op.ctx]![op.slot] = null;
          each((r) => r.setLeaf(op.ctx, op.slot, null));
          const inv = range(op.slot, op.slot - op.before, op.before + 1 + op.after);
          each((r) => r.invalidate(op.ctx, [inv], o.ril));
          break;
        }
        case 'unmapMany': {
          // Clears up to n slots, then one call: a range, or one entry (command) per two pages.
          const [iova, n] = range(op.slot, op.slot, op.n);
          for (let s = op.slot; s < op.slot + n; s++) {
            model.leaves[op.ctx]![s] = null;
            each((r) => r.setLeaf(op.ctx, s, null));
          }
          const ranges: [number, number][] =
            op.n % 2 === 0 ? [[iova, n]] : Array.from({ length: Math.ceil(n / 2) }, (_, i) => [iova + i * 8192, 2]);
          each((r) => r.invalidate(op.ctx, ranges, o.ril));
          break;
        }
        case 'protect': {
          const l = model.leaves[op.ctx]![op.slot];
          if (l === null || l === undefined) break;
          const leaf = { ...l, write: op.write, dirty: op.dirty };
          model.leaves[op.ctx]![op.slot] = leaf;
          each((r) => r.setLeaf(op.ctx, op.slot, leaf));
          each((r) => r.invalidate(op.ctx, [range(op.slot, op.slot, 1)], o.ril));
          break;
        }
        case 'bigInv':
          // 1024 pages from 0x4000_0000: at least 512, so a flush of the tag (or ASID).
          each((r) => r.invalidate(op.ctx, [[0x4000_0000, 1024]], true));
          break;
        case 's2Data': {
          const g = DATA / 4096 + op.page;
          if (model.s2[g] !== null) {
            // Unmap the run of mapped data pages from `page`, at most n, in one call.
            let n = 0;
            while (n < op.n && op.page + n < DATA_PAGES && model.s2[g + n] !== null) n++;
            for (let k = 0; k < n; k++) model.s2[g + k] = null;
            each((r) => r.s2Unmap(g, n));
          } else {
            const name = op.spare < 0 ? `r${g}` : `s${op.spare}`;
            model.s2[g] = { name, writeable: op.writeable };
            each((r) => r.s2Map(g, name, op.writeable));
          }
          break;
        }
        case 's2Table': {
          const g =
            (op.t === TABLES_PER_CTX ? (vendor === 'smmuv3' ? CDTAB : tableGpa(op.ctx, 0)) : tableGpa(op.ctx, op.t)) /
            4096;
          if (model.s2[g] !== null) {
            model.s2[g] = null;
            each((r) => r.s2Unmap(g));
          } else {
            model.s2[g] = { name: `r${g}`, writeable: true };
            each((r) => r.s2Map(g, `r${g}`, true));
          }
          break;
        }
        case 'xlate': {
          const mapped = model.leaves[op.ctx]!.flatMap((l, s) => (l === null ? [] : [s]));
          const slot = op.mapped && mapped.length > 0 ? mapped[op.slot % mapped.length]! : op.slot % SLOTS;
          for (let t = 0; t < op.times; t++) xlate(op.ctx, slot, op.off, op.write, step);
          break;
        }
        case 'block': {
          const was = model.blocks[op.ctx]![op.region]!;
          if (!op.on && was === null) break;
          const b = op.on ? { write: op.write, dirty: op.dirty, af: op.af } : null;
          model.blocks[op.ctx]![op.region] = b;
          each((r) => r.setBlock(op.ctx, op.region, b));
          const base = regionIova(op.region);
          // Table to block: the L3 leaves go, the whole region. A block removed or changed: one
          // address of it covers it whole.
          const inv: [number, number] = was === null ? [base, 512] : [base + op.page * 4096, 1];
          each((r) => r.invalidate(op.ctx, [inv], o.ril));
          break;
        }
        case 'xlateAll':
          for (let c = 0; c < CTXS; c++)
            for (let s = 0; s < SLOTS; s++) for (const w of [false, true]) xlate(c, s, 0x10, w, step);
          break;
      }
    });
    for (let c = 0; c < CTXS; c++)
      for (let s = 0; s < SLOTS; s++) for (const w of [false, true, false]) xlate(c, s, 0x20, w, ops.length);
    const hw = rigs[0]!.fd.cacheStats();
    const st = rigs[1]!.fd.cacheStats();
    // Hardware nesting never touches the shadow.
    expect(hw.shadowHits + hw.shadowMisses + hw.shadow.fills + hw.shadow.prefetched).toBe(0);
    totals.shadowHits += st.shadowHits;
    totals.shadowMisses += st.shadowMisses;
    totals.fills += st.shadow.fills;
    totals.rewritten += st.shadow.rewritten;
    totals.prefetched += st.shadow.prefetched;
    totals.dropped += st.shadow.dropped;
    totals.s2Dropped += st.shadow.s2Dropped;
    totals.evictions += st.shadow.evictions;
  } finally {
    each((r) => r.close());
  }
}

describe.each(['vtd', 'smmuv3'] as const)('hardware and software nesting agree (%s)', (vendor) => {
  const totals: Totals = {
    translations: 0,
    shadowHits: 0,
    shadowMisses: 0,
    fills: 0,
    rewritten: 0,
    prefetched: 0,
    dropped: 0,
    s2Dropped: 0,
    evictions: 0,
    faults: 0,
  };

  it('every translation of a random workload: same address or same fault, and the reference model', () => {
    fc.assert(
      fc.property(
        optsA,
        fc.array(mapManyA, { minLength: 1, maxLength: 4 }),
        fc.array(opA, { minLength: 10, maxLength: 80 }),
        (o, start, ops) => runWorkload(vendor, o, [...start, ...ops], totals),
      ),
      { numRuns: NUM_RUNS },
    );
  });

  afterAll(() => {
    // The workload reached the shadow's paths (a sanity check on the generator, not the property).
    expect(totals.shadowHits).toBeGreaterThan(0);
    expect(totals.fills).toBeGreaterThan(0);
    expect(totals.rewritten).toBeGreaterThan(0);
    expect(totals.dropped).toBeGreaterThan(0);
    expect(totals.s2Dropped).toBeGreaterThan(0);
    expect(totals.evictions).toBeGreaterThan(0);
    if (vendor === 'vtd') expect(totals.prefetched).toBeGreaterThan(0);
    else expect(totals.prefetched).toBe(0); // no prefetch without a single stage-1 table per descriptor
    expect(totals.faults).toBeGreaterThan(0);
  });
});
