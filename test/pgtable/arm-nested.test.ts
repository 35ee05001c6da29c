// The SMMUv3 nested walk (reference/config-formats.md §1.8, §5.1; viommu-queues.md §1.6): a
// stage-1 table built in a guest's RAM (a PhysMemory window where address 0 is IPA 0), whose
// table addresses and output IPAs go through a stage-2 table in host physical memory.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameAllocator, GuestRam, PhysMemory, SystemMemory } from '../../src/memory/index.js';
import {
  Access,
  ARM_HI,
  ARM_LO,
  armAddr,
  armNestedWalk,
  armS1Codec,
  armS1Config,
  armS1Walk,
  armS2Codec,
  armS2Config,
  armS2Walk,
  levelSize,
  packWalkConfig,
  Prot,
  RadixPageTable,
  SMMU_EVT,
  TranslateFault,
  WalkFault,
} from '../../src/pgtable/index.js';
import { EVT_CLASS } from '../../src/vendor/smmuv3/resolve-events.js';

const PAGE = 4096;
const MIB = 2 ** 20;
const MIB2 = 2 * MIB;
const GIB = 2 ** 30;
const R = Access.Read;
const W = Access.Write;
const X = Access.Exec;
const P = Access.Priv;
/** Data IPAs: above guest RAM, inside the 40-bit IPA space of the stage 2 below. */
const DATA_IPA = 0x40_0000_0000;
/** Data PAs: synthetic, beyond host memory (a walk never reads its output). */
const DATA_PA = 2 ** 44;
const S1_BITS = 48;
const S2_BITS = 40;

interface Nest {
  sys: SystemMemory;
  ram: GuestRam;
  /** The guest's RAM as a physical memory: address = IPA. */
  gp: PhysMemory;
  s1: RadixPageTable;
  s2: RadixPageTable;
  s1Cfg: number;
  s2Cfg: number;
  /** The nested walk over host memory. */
  walk(iova: number, access: number, f: WalkFault, s1Cfg?: number): number;
}

/**
 * Host memory with the stage-2 table first (so guest RAM does not start at PA 0), then guest RAM
 * holding the stage-1 tables. Stage 2 maps guest RAM at IPA 0, read-only, in 4 KiB pages: table
 * fetches are reads.
 */
function nest(hostBytes = 16 * MIB, ramBytes = 4 * MIB): Nest {
  const sys = new SystemMemory(hostBytes);
  const s2c = armS2Config(64 - S2_BITS, 1); // start L1, 2 concatenated tables
  const s2 = new RadixPageTable(sys.phys, sys.frames, armS2Codec(s2c));
  const ram = new GuestRam(sys.phys, sys.frames, ramBytes);
  const gp = ram.guestPhys();
  const guestFrames = new FrameAllocator(gp);
  guestFrames.alloc(); // keep IPA 0 out of use
  const s1c = armS1Config(64 - S1_BITS); // start L0
  const s1 = new RadixPageTable(gp, guestFrames, armS1Codec(s1c));
  s2.map(0, ram.bytes, (o) => ram.basePa + o, Prot.Read, false);
  const s1Cfg = packWalkConfig(s1c.startLevel, s1c.inputSize, s1c.outputSize);
  const s2Cfg = packWalkConfig(s2c.startLevel, s2c.inputSize, s2c.outputSize);
  const i32 = sys.phys.i32;
  return {
    sys,
    ram,
    gp,
    s1,
    s2,
    s1Cfg,
    s2Cfg,
    walk: (iova, access, f, cfg = s1Cfg) => armNestedWalk(i32, s1.rootPa, cfg, s2.rootPa, s2Cfg, iova, access, f),
  };
}

/** IPAs of the stage-1 tables a walk of `iova` reads, start table first (read from guest RAM). */
function tablePath(n: Nest, iova: number): number[] {
  const out = [n.s1.rootPa];
  let table = n.s1.rootPa;
  for (let level = 0; level < 3; level++) {
    const at = table / 4 + (Math.floor(iova / levelSize(level)) % 512) * 2;
    const lo = n.gp.i32[at]!;
    if ((lo & ARM_LO.Valid) === 0 || (lo & ARM_LO.TableOrPage) === 0) break;
    table = armAddr(level, lo, n.gp.i32[at + 1]!);
    out.push(table);
  }
  return out;
}

/** The int32 index, in guest RAM, of the level-3 descriptor of `iova`. */
function leafIndex(n: Nest, iova: number): number {
  const path = tablePath(n, iova);
  expect(path).toHaveLength(4);
  return path[3]! / 4 + (Math.floor(iova / PAGE) % 512) * 2;
}

/** Remaps one 4 KiB stage-2 page of guest RAM (IPA `ipa`) to `pa` with `prot`. */
function remapS2(n: Nest, ipa: number, pa: number, prot: number): void {
  expect(n.s2.unmap(ipa, PAGE)).toBe(PAGE);
  n.s2.map(ipa, PAGE, () => pa, prot, false);
}

const hex = (v: number): string => (v < 0 ? String(v) : `0x${v.toString(16)}`);

/** Checks a stage-2 fault record of the nested walk. */
function expectS2Fault(f: WalkFault, code: number, event: number, cls: number, ipa: number, iova: number): void {
  expect(f.words[0]).toBe(code);
  expect(f.words[4]).toBe(event);
  expect({ s2: f.s2, faultClass: f.faultClass, ipa: hex(f.ipa), iova: hex(f.iova) }).toEqual({
    s2: 1,
    faultClass: cls,
    ipa: hex(ipa),
    iova: hex(iova),
  });
}

describe('armNestedWalk: translation', () => {
  it('equals armS2Walk of armS1Walk over IPA space, and reads the stage-1 tables through stage 2', () => {
    const n = nest();
    expect(n.ram.basePa).toBeGreaterThan(0); // IPA ≠ PA for every stage-1 table
    // 4 KiB pages in three 512 GiB regions, a 2 MiB block, and one page whose IPA stage 2 lacks.
    const iovas = [0x1234_5000, 0x1234_6000, 511 * GIB + 0x7000, 2 ** 47 + 0x3000];
    iovas.forEach((iova, k) => n.s1.map(iova, PAGE, () => DATA_IPA + k * PAGE, Prot.Read | Prot.Write, false));
    n.s1.map(3 * GIB, MIB2, (o) => DATA_IPA + MIB2 + o, Prot.Read, true);
    n.s1.map(5 * GIB, PAGE, () => DATA_IPA + 0x10_0000, Prot.Read | Prot.Write, false);
    // Stage 2 scatters the data IPAs: page k → DATA_PA + (7 - k) pages; the 2 MiB in 4 KiB pages.
    for (let k = 0; k < iovas.length; k++)
      n.s2.map(DATA_IPA + k * PAGE, PAGE, () => DATA_PA + (7 - k) * PAGE, 3, false);
    n.s2.map(DATA_IPA + MIB2, MIB2, (o) => DATA_PA + 64 * MIB + o, Prot.Read, false);

    const f = new WalkFault();
    const g = new WalkFault();
    const probes = [...iovas, 3 * GIB, 3 * GIB + MIB2 - 1, 5 * GIB, 0x1234_7000, 6 * GIB].flatMap((v) => [
      v,
      v + 0xabc,
    ]);
    let ok = 0;
    for (const iova of probes) {
      for (const access of [R, W, R | P, W | P, X]) {
        const ipa = armS1Walk(n.gp.i32, n.s1.rootPa, n.s1Cfg, iova, access, g);
        const want = ipa < 0 ? ipa : armS2Walk(n.sys.phys.i32, n.s2.rootPa, n.s2Cfg, ipa, access & ~P, g);
        expect(hex(n.walk(iova, access, f)), `${hex(iova)} access ${access}`).toBe(hex(want));
        if (want >= 0) ok++;
      }
    }
    expect(ok).toBeGreaterThan(20);
    expect(n.walk(0x1234_5010, R, f)).toBe(DATA_PA + 7 * PAGE + 0x10);
    // Read without stage 2, the stage-1 root's IPA is not where the tables are.
    expect(armS1Walk(n.sys.phys.i32, n.s1.rootPa, n.s1Cfg, 0x1234_5000, R, g)).toBeLessThan(0);
  });

  it('agrees with a model of IOVA → IPA and IPA → PA maps, unmapped pages and faults included', () => {
    const IOVA_BASES = [0, GIB - MIB2, 511 * GIB, 2 ** 47 + 3 * GIB];
    const IPA_PAGES = 12; // data IPA pages; index IPA_PAGES is an IPA beyond stage 2's input size
    const OUT_IPA = 2 ** 41;
    const where = { base: fc.constantFrom(...IOVA_BASES), page: fc.integer({ min: 0, max: 1023 }) };
    const arb = fc.record({
      s1: fc.array(fc.record({ ...where, ipa: fc.integer({ min: 0, max: IPA_PAGES }), write: fc.boolean() }), {
        maxLength: 20,
      }),
      s2: fc.array(
        fc.option(fc.record({ page: fc.integer({ min: 0, max: 4095 }), prot: fc.constantFrom(1, 2, 3) }), {
          nil: undefined,
          freq: 4,
        }),
        { minLength: IPA_PAGES, maxLength: IPA_PAGES },
      ),
      dropRoot: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      probes: fc.array(fc.record({ ...where, off: fc.integer({ min: 0, max: PAGE - 1 }) }), { maxLength: 12 }),
      off: fc.integer({ min: 0, max: PAGE - 1 }),
    });

    fc.assert(
      fc.property(arb, (c) => {
        const n = nest(8 * MIB, 2 * MIB);
        const s1 = new Map<number, { ipa: number; write: boolean }>();
        for (const e of c.s1) {
          const iova = e.base + e.page * PAGE;
          if (s1.has(iova)) continue;
          const ipa = e.ipa === IPA_PAGES ? OUT_IPA : DATA_IPA + e.ipa * PAGE;
          s1.set(iova, { ipa, write: e.write });
          n.s1.map(iova, PAGE, () => ipa, e.write ? Prot.Read | Prot.Write : Prot.Read, false);
        }
        const s2 = new Map<number, { pa: number; prot: number }>();
        c.s2.forEach((d, j) => {
          if (d === undefined) return;
          s2.set(DATA_IPA + j * PAGE, { pa: DATA_PA + d.page * PAGE, prot: d.prot });
          n.s2.map(DATA_IPA + j * PAGE, PAGE, () => DATA_PA + d.page * PAGE, d.prot, false);
        });
        const root = n.s1.rootPa;
        if (c.dropRoot) n.s2.unmap(root, PAGE);

        type Want = { r: number; event?: number; s2?: number; cls?: number; ipa?: number };
        const s1f = (r: number, event: number): Want => ({ r, event, s2: 0, cls: EVT_CLASS.IN, ipa: 0 });
        const s2f = (r: number, event: number, cls: number, ipa: number): Want => ({ r, event, s2: 1, cls, ipa });
        const model = (iova: number, access: number): Want => {
          if (iova >= 2 ** S1_BITS) return s1f(TranslateFault.NotMapped, SMMU_EVT.F_TRANSLATION);
          if (c.dropRoot) return s2f(TranslateFault.NotMapped, SMMU_EVT.F_TRANSLATION, EVT_CLASS.TT, root);
          const e = s1.get(iova - (iova % PAGE));
          if (e === undefined) return s1f(TranslateFault.NotMapped, SMMU_EVT.F_TRANSLATION);
          if ((access & W) !== 0 && !e.write) return s1f(TranslateFault.Permission, SMMU_EVT.F_PERMISSION);
          const ipa = e.ipa + (iova % PAGE);
          const d = s2.get(e.ipa);
          if (d === undefined) return s2f(TranslateFault.NotMapped, SMMU_EVT.F_TRANSLATION, EVT_CLASS.IN, ipa);
          if (
            ((access & (R | X)) !== 0 && (d.prot & Prot.Read) === 0) ||
            ((access & W) !== 0 && (d.prot & Prot.Write) === 0)
          )
            return s2f(TranslateFault.Permission, SMMU_EVT.F_PERMISSION, EVT_CLASS.IN, ipa);
          return { r: d.pa + (iova % PAGE) };
        };

        const probes = [2 ** S1_BITS, 2 ** S1_BITS + c.off];
        for (const iova of s1.keys()) probes.push(iova + c.off, iova - PAGE + c.off, iova + PAGE);
        for (const p of c.probes) probes.push(p.base + p.page * PAGE + p.off);
        const f = new WalkFault();
        for (const iova of probes) {
          if (iova < 0) continue;
          for (const access of [R, W, R | P, W | P, X]) {
            const want = model(iova, access);
            const r = n.walk(iova, access, f);
            const got: Want = r >= 0 ? { r } : { r, event: f.words[4]!, s2: f.s2, cls: f.faultClass, ipa: f.ipa };
            expect({ iova: hex(iova), access, ...got }).toEqual({ iova: hex(iova), access, ...want });
            if (r < 0) expect([f.words[0], f.iova]).toEqual([r, iova]);
            else expect(f.leafShift).toBe(12);
          }
        }
      }),
      { numRuns: Number(process.env['PGTABLE_PROPERTY_RUNS'] ?? 60) },
    );
  });

  it('fault.leafShift is the smaller of the two leaves', () => {
    const n = nest();
    const f = new WalkFault();
    const g = new WalkFault();
    // A 2 MiB stage-1 block over 4 KiB stage-2 pages.
    n.s1.map(4 * GIB, MIB2, (o) => DATA_IPA + o, Prot.Read | Prot.Write, true);
    n.s2.map(DATA_IPA, MIB2, (o) => DATA_PA + o, Prot.Read | Prot.Write, false);
    expect(armS1Walk(n.gp.i32, n.s1.rootPa, n.s1Cfg, 4 * GIB, R, g)).toBe(DATA_IPA);
    expect(g.leafShift).toBe(21);
    expect(n.walk(4 * GIB + 0x12_3456, W, f)).toBe(DATA_PA + 0x12_3456);
    expect(f.leafShift).toBe(12);
    // A 2 MiB block over a 2 MiB block (the table fetches hit 4 KiB stage-2 pages: they do not count).
    n.s1.map(6 * GIB, MIB2, (o) => DATA_IPA + 2 * MIB2 + o, Prot.Read, true);
    n.s2.map(DATA_IPA + 2 * MIB2, MIB2, (o) => DATA_PA + 2 * MIB2 + o, Prot.Read, true);
    expect(n.walk(6 * GIB + 0x1f_0008, R, f)).toBe(DATA_PA + 2 * MIB2 + 0x1f_0008);
    expect(f.leafShift).toBe(21);
    // A 4 KiB stage-1 page over a 2 MiB stage-2 block.
    n.s1.map(7 * GIB, PAGE, () => DATA_IPA + 2 * MIB2 + 5 * PAGE, Prot.Read, false);
    expect(armS2Walk(n.sys.phys.i32, n.s2.rootPa, n.s2Cfg, DATA_IPA + 2 * MIB2, R, g)).toBe(DATA_PA + 2 * MIB2);
    expect(g.leafShift).toBe(21);
    expect(n.walk(7 * GIB + 8, R, f)).toBe(DATA_PA + 2 * MIB2 + 5 * PAGE + 8);
    expect(f.leafShift).toBe(12);
  });
});

describe('armNestedWalk: stage-2 faults', () => {
  const IOVA = 0x7f_1234_5678;
  const setUp = (): Nest => {
    const n = nest();
    n.s1.map(IOVA - (IOVA % PAGE), PAGE, () => DATA_IPA, Prot.Read | Prot.Write, false);
    n.s2.map(DATA_IPA, PAGE, () => DATA_PA, Prot.Read | Prot.Write, false);
    return n;
  };

  it('on each stage-1 table fetch: s2 = 1, CLASS = TT, the IPA of the table, the input address kept', () => {
    const n = setUp();
    const f = new WalkFault();
    expect(n.walk(IOVA, W, f)).toBe(DATA_PA + (IOVA % PAGE)); // table pages are read-only at stage 2
    const path = tablePath(n, IOVA);
    expect(path).toHaveLength(4); // levels 0..3
    expect(new Set(path).size).toBe(4);
    for (const table of path) {
      expect(n.s2.unmap(table, PAGE)).toBe(PAGE);
      expect(n.walk(IOVA, R, f), `table at IPA ${hex(table)}`).toBe(TranslateFault.NotMapped);
      expectS2Fault(f, TranslateFault.NotMapped, SMMU_EVT.F_TRANSLATION, EVT_CLASS.TT, table, IOVA);
      expect(f.words[1]).toBe(3); // the stage-2 level (its L3 table is still there)
      // Write-only at stage 2: a table fetch is a read, so a Permission fault.
      n.s2.map(table, PAGE, () => n.ram.basePa + table, Prot.Write, false);
      expect(n.walk(IOVA, W, f)).toBe(TranslateFault.Permission);
      expectS2Fault(f, TranslateFault.Permission, SMMU_EVT.F_PERMISSION, EVT_CLASS.TT, table, IOVA);
      remapS2(n, table, n.ram.basePa + table, Prot.Read);
      expect(n.walk(IOVA, W, f)).toBe(DATA_PA + (IOVA % PAGE));
    }
  });

  it('on the output address: CLASS = IN and the output IPA', () => {
    const n = setUp();
    const f = new WalkFault();
    expect(n.s2.unmap(DATA_IPA, PAGE)).toBe(PAGE);
    expect(n.walk(IOVA, R | P, f)).toBe(TranslateFault.NotMapped);
    expectS2Fault(f, TranslateFault.NotMapped, SMMU_EVT.F_TRANSLATION, EVT_CLASS.IN, DATA_IPA + (IOVA % PAGE), IOVA);
    // Beyond stage 2's input size: a stage-2 Translation fault too.
    n.s1.map(0x1000, PAGE, () => 2 ** S2_BITS + PAGE, Prot.Read, false);
    expect(n.walk(0x1010, R, f)).toBe(TranslateFault.NotMapped);
    expectS2Fault(
      f,
      TranslateFault.NotMapped,
      SMMU_EVT.F_TRANSLATION,
      EVT_CLASS.IN,
      2 ** S2_BITS + PAGE + 0x10,
      0x1010,
    );
  });

  it('a write to a read-only stage-2 page is a stage-2 Permission fault', () => {
    const n = setUp();
    const f = new WalkFault();
    remapS2(n, DATA_IPA, DATA_PA, Prot.Read);
    expect(n.walk(IOVA, R, f)).toBe(DATA_PA + (IOVA % PAGE));
    for (const access of [W, W | P, R | W]) {
      expect(n.walk(IOVA, access, f)).toBe(TranslateFault.Permission);
      expectS2Fault(f, TranslateFault.Permission, SMMU_EVT.F_PERMISSION, EVT_CLASS.IN, DATA_IPA + (IOVA % PAGE), IOVA);
    }
    // Write-only: reads and instruction fetches fault, writes pass.
    remapS2(n, DATA_IPA, DATA_PA, Prot.Write);
    expect(n.walk(IOVA, W, f)).toBe(DATA_PA + (IOVA % PAGE));
    for (const access of [R, X]) {
      expect(n.walk(IOVA, access, f)).toBe(TranslateFault.Permission);
      expectS2Fault(f, TranslateFault.Permission, SMMU_EVT.F_PERMISSION, EVT_CLASS.IN, DATA_IPA + (IOVA % PAGE), IOVA);
    }
  });

  it('WalkFault.set clears the stage-2 fields, so other walkers report s2 = 0', () => {
    const n = setUp();
    const f = new WalkFault();
    expect(n.s2.unmap(DATA_IPA, PAGE)).toBe(PAGE);
    expect(n.walk(IOVA, R, f)).toBe(TranslateFault.NotMapped);
    expect(f.s2).toBe(1);
    expect(armS2Walk(n.sys.phys.i32, n.s2.rootPa, n.s2Cfg, DATA_IPA, R, f)).toBe(TranslateFault.NotMapped);
    expect([f.s2, f.faultClass, f.ipa, f.iova]).toEqual([0, 0, 0, DATA_IPA]);
    expect(n.walk(IOVA, R, f)).toBe(TranslateFault.NotMapped);
    expect(armS1Walk(n.gp.i32, n.s1.rootPa, n.s1Cfg, 2 ** S1_BITS, R, f)).toBe(TranslateFault.NotMapped);
    expect([f.s2, f.faultClass, f.ipa]).toEqual([0, 0, 0]);
  });
});

describe('armNestedWalk: stage-1 faults', () => {
  const IOVA = 0x7f_1234_5678;
  const PAGE_IOVA = IOVA - (IOVA % PAGE);

  /** The nested walk faults exactly as armS1Walk over IPA space does, with s2 = 0 and CLASS = IN. */
  function expectS1Fault(n: Nest, iova: number, access: number, code: number, s1Cfg = n.s1Cfg): void {
    const want = new WalkFault();
    const got = new WalkFault();
    expect(armS1Walk(n.gp.i32, n.s1.rootPa, s1Cfg, iova, access, want)).toBe(code);
    expect(n.walk(iova, access, got, s1Cfg)).toBe(code);
    expect([...got.words]).toEqual([...want.words]);
    expect({ iova: hex(got.iova), s2: got.s2, faultClass: got.faultClass, ipa: got.ipa }).toEqual({
      iova: hex(iova),
      s2: 0,
      faultClass: EVT_CLASS.IN,
      ipa: 0,
    });
  }

  const setUp = (): Nest => {
    const n = nest();
    n.s1.map(PAGE_IOVA, PAGE, () => DATA_IPA, Prot.Read, false);
    n.s2.map(DATA_IPA, PAGE, () => DATA_PA, Prot.Read | Prot.Write, false);
    return n;
  };

  it('input out of range, unmapped IOVA, write to a read-only page', () => {
    const n = setUp();
    expectS1Fault(n, 2 ** S1_BITS, R, TranslateFault.NotMapped);
    expectS1Fault(n, PAGE_IOVA + PAGE, R, TranslateFault.NotMapped);
    expectS1Fault(n, 0x10_0000, R, TranslateFault.NotMapped);
    expectS1Fault(n, IOVA, W, TranslateFault.Permission);
    expectS1Fault(n, IOVA, W | P, TranslateFault.Permission);
  });

  it('access flag, AP[1], UXN / PXN and APTable in the guest descriptors', () => {
    const n = setUp();
    const f = new WalkFault();
    const at = leafIndex(n, IOVA);
    const lo = n.gp.i32[at]!;
    const hi = n.gp.i32[at + 1]!;
    const set = (l: number, h: number): void => {
      Atomics.store(n.gp.i32, at + 1, h);
      Atomics.store(n.gp.i32, at, l);
    };
    set(lo & ~ARM_LO.AF, hi);
    expectS1Fault(n, IOVA, R, TranslateFault.AccessFlag);
    set(lo & ~ARM_LO.AP1, hi);
    expectS1Fault(n, IOVA, R, TranslateFault.Permission);
    expect(n.walk(IOVA, R | P, f)).toBe(DATA_PA + (IOVA % PAGE));
    set(lo, hi | ARM_HI.UXN);
    expectS1Fault(n, IOVA, X, TranslateFault.Permission);
    expect(n.walk(IOVA, X | P, f)).toBe(DATA_PA + (IOVA % PAGE));
    set(lo, hi | ARM_HI.PXN);
    expectS1Fault(n, IOVA, X | P, TranslateFault.Permission);
    set(lo, hi);
    // APTable in the level-2 table descriptor: no unprivileged access below.
    const l2 = tablePath(n, IOVA)[2]! / 4 + (Math.floor(IOVA / MIB2) % 512) * 2;
    Atomics.store(n.gp.i32, l2 + 1, n.gp.i32[l2 + 1]! | ARM_HI.APTableNoUser);
    expectS1Fault(n, IOVA, R, TranslateFault.Permission);
    expect(n.walk(IOVA, R | P, f)).toBe(DATA_PA + (IOVA % PAGE));
  });

  it('output address size: an IPA at or beyond the stage-1 output size', () => {
    const n = setUp();
    const f = new WalkFault();
    const small = packWalkConfig(0, S1_BITS, 38); // DATA_IPA = 2^38
    expect(DATA_IPA).toBe(2 ** 38);
    expectS1Fault(n, IOVA, R, TranslateFault.AddressSize, small);
    expect(n.walk(IOVA, R, f, packWalkConfig(0, S1_BITS, 39))).toBe(DATA_PA + (IOVA % PAGE));
  });

  it('a stage-1 table whose stage-2 output is outside memory: a stage-1 walk abort', () => {
    const n = setUp();
    const f = new WalkFault();
    const path = tablePath(n, IOVA);
    const memBytes = n.sys.phys.i32.length * 4;
    remapS2(n, path[3]!, memBytes, Prot.Read);
    expect(n.walk(IOVA, R, f)).toBe(TranslateFault.WalkAbort);
    expect([f.words[1], f.words[4], f.s2, f.faultClass, f.iova]).toEqual([
      3,
      SMMU_EVT.F_WALK_EABT,
      0,
      EVT_CLASS.IN,
      IOVA,
    ]);
    remapS2(n, path[3]!, n.ram.basePa + path[3]!, Prot.Read);
    remapS2(n, path[0]!, memBytes, Prot.Read);
    expect(n.walk(IOVA, R, f)).toBe(TranslateFault.WalkAbort);
    expect([f.words[1], f.words[4], f.s2, f.faultClass]).toEqual([0, SMMU_EVT.F_WALK_EABT, 0, EVT_CLASS.IN]);
  });
});
