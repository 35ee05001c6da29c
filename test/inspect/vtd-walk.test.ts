// Inspecting walks through an emulated VT-d unit: for random mappings built by the Linux guest
// driver model (legacy, scalable second stage, scalable first stage) and by hand (nested, pass-
// through), the inspected result is what the unit's translate returns, address or fault reason,
// and the inspection leaves guest memory and every counter as it found them.
import { afterEach, describe, expect, it } from 'vitest';
import { VtdGuestDriver, type VtdGuestDriverOptions } from '../../src/guest/vtd/index.js';
import { inspectVtd } from '../../src/inspect/index.js';
import { Iommufd } from '../../src/iommufd.js';
import { FrameAllocator } from '../../src/memory/index.js';
import { RadixPageTable, vtdSecondStageCodec, VTD_FR, x86FirstStageCodec } from '../../src/pgtable/index.js';
import type { VtdIommu, VtdIommuOptions } from '../../src/vendor/vtd/iommu.js';
import { GCMD, VTD_REG } from '../../src/vendor/vtd/regs-defs.js';
import { encodeSmContextEntry, encodeSmRootEntry } from '../../src/vendor/vtd/structures.js';
import {
  encodePasidDirEntry,
  encodePasidEntry,
  FLPM,
  PasidEntry,
  PGTT,
} from '../../src/vendor/vtd/structures-pasid.js';
import { below, expectSameResult, expectUnchanged, rng, snapshot } from './helpers.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const SID = 0x0010;
const R = 1;
const W = 2;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

function newFd(): Iommufd {
  const fd = Iommufd.open({ memoryBytes: 128 * MIB });
  open.push(fd);
  return fd;
}

/**
 * Inspects every (iova, access) of `cases` with the unit untouched (memory bytes, unit and fd
 * counters compared), then translates each and compares.
 */
function checkAgainstTranslate(
  fd: Iommufd,
  unit: VtdIommu,
  cases: readonly { iova: number; access: number; pasid?: number }[],
): { ok: number; faults: Set<number> } {
  const mem = snapshot(unit.guest.u8);
  const unitStats = unit.stats();
  const cache = fd.cacheStats();
  const fsts = unit.mmioRead(VTD_REG.FSTS, 4);
  const traces = cases.map((c) =>
    inspectVtd(unit, { sid: SID, ...(c.pasid === undefined ? {} : { pasid: c.pasid }) }, c.iova, c.access),
  );
  expectUnchanged(unit.guest.u8, mem, 'guest RAM after the inspections');
  expect(unit.stats()).toEqual(unitStats);
  expect(fd.cacheStats()).toEqual(cache);
  expect(unit.mmioRead(VTD_REG.FSTS, 4)).toBe(fsts);
  const faults = new Set<number>();
  let ok = 0;
  const recorded0 = unit.stats().faultsRecorded;
  cases.forEach((c, i) => {
    const pa = unit.translate({ sid: SID, ...(c.pasid === undefined ? {} : { pasid: c.pasid }) }, c.iova, c.access);
    expectSameResult(
      traces[i]!,
      { pa, vendorCode: unit.lastFaultReason },
      `iova 0x${c.iova.toString(16)} access ${c.access}`,
    );
    if (pa >= 0) ok++;
    else faults.add(unit.lastFaultReason);
  });
  // Every fault the traces say the unit records was recorded (the units here have room for all, uncollapsed).
  const recorded = traces.filter((t) => !t.result.ok && t.result.fault.recorded === true).length;
  expect(unit.stats().faultsRecorded - recorded0).toBe(recorded);
  return { ok, faults };
}

const MODES = {
  legacy: { unit: {}, drv: { mode: 'legacy' } },
  scalable: { unit: { scalableMode: true }, drv: { mode: 'scalable' } },
  'scalable-fl': { unit: { scalableMode: true, firstStage: true }, drv: { mode: 'scalable' } },
} satisfies Record<string, { unit: VtdIommuOptions; drv: VtdGuestDriverOptions }>;

describe('VT-d unit walks built by the guest driver', () => {
  for (const [mode, o] of Object.entries(MODES)) {
    for (const seed of [1, 2, 3]) {
      it(`${mode}, seed ${seed}: mapped, unmapped and read-only-written addresses give what translate gives`, () => {
        const fd = newFd();
        const unit = fd.vtdCreate({ guestRamBytes: 32 * MIB, faultRecords: 256, collapseFaults: false, ...o.unit });
        const drv = new VtdGuestDriver(unit, o.drv);
        drv.probe();
        drv.attach(SID, { did: 5 });
        const r = rng(seed);
        const mapped: { iova: number; prot: number }[] = [];
        for (let i = 0; i < 24; i++) {
          // Clustered IOVAs share tables; a few far ones get their own.
          const iova = (below(r, 4) === 0 ? below(r, 2 ** 27) : 0x4000_0000 + below(r, 2048)) * PAGE;
          if (mapped.some((m) => m.iova === iova)) continue;
          const prot = [R, W, R | W][below(r, 3)]!;
          const gpa = drv.frames.alloc() * PAGE;
          drv.map(SID, iova, gpa, PAGE, prot);
          mapped.push({ iova, prot });
        }
        // A 2 MiB mapping where the unit allows large pages.
        drv.map(SID, 0x8000_0000, 16 * MIB, 2 * MIB, R | W);
        const cases: { iova: number; access: number }[] = [];
        for (const m of mapped) {
          for (const access of [R, W, R | W]) cases.push({ iova: m.iova + below(r, PAGE), access });
          cases.push({ iova: m.iova + PAGE, access: R }); // usually not mapped
        }
        cases.push({ iova: 0x8000_0000 + below(r, 2 * MIB), access: W });
        cases.push({ iova: 2 ** 47 + PAGE, access: R }); // beyond the input width / non-canonical
        const { ok, faults } = checkAgainstTranslate(fd, unit, cases);
        expect(ok).toBeGreaterThan(20);
        expect(faults.size).toBeGreaterThan(0);
      });
    }
  }

  it('the trace names every structure read, level by level, with guest- and host-physical addresses', () => {
    const fd = newFd();
    const unit = fd.vtdCreate({ guestRamBytes: 32 * MIB, scalableMode: true, firstStage: true });
    const drv = new VtdGuestDriver(unit, { mode: 'scalable' });
    drv.probe();
    drv.attach(SID, { did: 9 });
    const gpa = drv.frames.alloc() * PAGE;
    drv.map(SID, 0x1234_5000, gpa, PAGE, R);
    const t = inspectVtd(unit, { sid: SID }, 0x1234_5678, W);
    expect(t.translation).toBe('first-stage');
    expect(t.steps.map((s) => s.structure)).toEqual([
      'sm-root-entry',
      'sm-context-entry',
      'pasid-dir-entry',
      'pasid-entry',
      'pte',
      'pte',
      'pte',
      'pte',
    ]);
    expect(t.steps.filter((s) => s.structure === 'pte').map((s) => s.level)).toEqual([0, 1, 2, 3]);
    for (const s of t.steps) {
      expect(s.hpa).toBe(unit.ram.gpaToPa(s.gpa!));
      expect(s.raw.length).toBeGreaterThan(0);
    }
    expect(t.steps[3]!.fields['pgtt']).toBe(PGTT.FirstStage);
    expect(t.steps[3]!.fields['did']).toBe(9);
    // A write to a read-only page: the leaf is where it faults, with the scalable-mode write reason.
    expect(t.steps.at(-1)!.outcome).toBe('fault');
    expect(t.result).toMatchObject({
      ok: false,
      fault: { vendorCode: VTD_FR.SM_WRITE, vendorName: 'SM_WRITE', recorded: true },
    });
    expect(unit.translate({ sid: SID }, 0x1234_5678, W)).toBe(t.result.ok ? 0 : t.result.fault.code);
    // The first-stage walk would set A (and D on a write) in the entries it reads; it did not.
    const read = inspectVtd(unit, { sid: SID }, 0x1234_5678, R);
    expect(read.result).toMatchObject({
      ok: true,
      hpa: unit.ram.gpaToPa(gpa) + 0x678,
      gpa: gpa + 0x678,
      pageShift: 12,
    });
    expect(
      read.steps.filter((s) => s.structure === 'pte').every((s) => s.fields['A'] === true || s.wouldSet === 'A'),
    ).toBe(true);
  });

  it('configuration faults stop at the structure that failed, with its reason', () => {
    const fd = newFd();
    const unit = fd.vtdCreate({ guestRamBytes: 32 * MIB });
    const drv = new VtdGuestDriver(unit, { mode: 'legacy' });
    drv.probe();
    drv.attach(SID, { did: 5 });
    // Another device on the same bus: its context entry is not present (0x2).
    const other = inspectVtd(unit, { sid: SID + 1 }, 0x1000, R);
    expect(other.steps.map((s) => [s.structure, s.outcome])).toEqual([
      ['root-entry', 'read'],
      ['context-entry', 'fault'],
    ]);
    expect(other.result).toMatchObject({
      ok: false,
      fault: { code: -1, vendorCode: 0x2, vendorName: 'CONTEXT_ENTRY_P', stage: 'config' },
    });
    unit.translate({ sid: SID + 1 }, 0x1000, R);
    expect(unit.lastFaultReason).toBe(0x2);
    // Another bus: the root entry is not present (0x1).
    const bus = inspectVtd(unit, { sid: 0x0300 }, 0x1000, R);
    expect(bus.steps.map((s) => s.structure)).toEqual(['root-entry']);
    expect(bus.result).toMatchObject({ ok: false, fault: { vendorCode: 0x1 } });
    // A PASID on a legacy root table: 0x31 before any read.
    const pasid = inspectVtd(unit, { sid: SID, pasid: 3 }, 0x1000, R);
    expect(pasid.steps).toEqual([]);
    expect(pasid.result).toMatchObject({ ok: false, fault: { vendorCode: 0x31 } });
  });

  it('with translation disabled the address is guest-physical', () => {
    const fd = newFd();
    const unit = fd.vtdCreate({ guestRamBytes: 32 * MIB });
    const t = inspectVtd(unit, { sid: SID }, 0x5000, R);
    expect(t.result).toEqual({ ok: true, hpa: unit.ram.gpaToPa(0x5000), gpa: 0x5000, pageShift: 12, unitShift: 12 });
    expect(unit.translate({ sid: SID }, 0x5000, R)).toBe(unit.ram.gpaToPa(0x5000));
    expect(t.notes[0]).toMatch(/disabled/);
  });
});

describe('VT-d unit nested (PGTT 3) and pass-through walks, built by hand', () => {
  /** A scalable-mode unit whose RID_PASID entry is nested and PASID 1 pass-through. */
  function nestedUnit() {
    const fd = newFd();
    const unit = fd.vtdCreate({
      guestRamBytes: 32 * MIB,
      faultRecords: 256,
      collapseFaults: false,
      scalableMode: true,
      firstStage: true,
      secondStage: true,
      nesting: true,
      pasidWidth: 8,
    });
    const gp = unit.guest;
    const frames = new FrameAllocator(gp);
    frames.alloc();
    const page = (): number => frames.alloc() * PAGE;
    // The second stage maps IPA = GPA + 64 MiB over the first 16 MiB of guest RAM, read-only
    // over the 4 MiB after the first-stage tables' 4 MiB (so a table fetch there faults: the
    // walk would set A/D and fetches for write), and not at all beyond.
    const IPA = 64 * MIB;
    const ss = new RadixPageTable(gp, frames, vtdSecondStageCodec(48));
    const fs = new RadixPageTable(gp, frames, x86FirstStageCodec(48));
    ss.map(IPA, 8 * MIB, (o) => o, R | W, false);
    ss.map(IPA + 8 * MIB, 8 * MIB, (o) => 8 * MIB + o, R, false);
    const root = page();
    const ctxTable = page();
    const dir = page();
    const ptbl = page();
    encodeSmRootEntry({ lp: true, lctp: ctxTable, up: false, uctp: 0 }, gp.i32, root / 4);
    encodeSmContextEntry(
      {
        present: true,
        fpd: false,
        dte: false,
        paside: true,
        pre: false,
        pdts: 0,
        pasidDirPtr: dir,
        ridPasid: 0,
        ridPriv: false,
      },
      gp.i32,
      (ctxTable + (SID & 0x7f) * 32) / 4,
    );
    encodePasidDirEntry({ present: true, fpd: false, pasidTablePtr: ptbl }, gp.i32, dir / 4);
    const pe = (pasid: number, fields: Partial<PasidEntry>): void => {
      encodePasidEntry(
        Object.assign(new PasidEntry(), { present: true, did: 3, aw: 2, ...fields }),
        gp.i32,
        (ptbl + pasid * 64) / 4,
      );
    };
    pe(0, { pgtt: PGTT.Nested, slptptr: ss.rootPa, flptptr: IPA + fs.rootPa, flpm: FLPM.Level4 });
    pe(1, { pgtt: PGTT.PassThrough });
    unit.mmioWrite(VTD_REG.RTADDR, BigInt(root) | (1n << 10n), 8);
    unit.mmioWrite(VTD_REG.GCMD, GCMD.SRTP, 4);
    unit.mmioWrite(VTD_REG.GCMD, GCMD.TE, 4);
    return { fd, unit, frames, ss, fs, IPA };
  }

  it('every first-stage table fetch carries its second-stage walk; results and faults match translate', () => {
    const { fd, unit, frames, fs, IPA } = nestedUnit();
    // The first stage's own tables point at their next levels by GPA: give them IPAs by moving
    // every table entry's address up by IPA (the codec built them with GPAs).
    const r = rng(7);
    const leaves: number[] = [];
    for (let i = 0; i < 12; i++) {
      const iova = 0x4000_0000 + below(r, 4096) * PAGE;
      if (leaves.includes(iova)) continue;
      const data = frames.alloc() * PAGE; // below 8 MiB: read-write at stage 2
      const outIpa =
        below(r, 5) === 0 ? IPA + 8 * MIB + below(r, 512) * PAGE : below(r, 7) === 0 ? 200 * MIB : IPA + data;
      fs.map(iova, PAGE, () => outIpa, [R, R | W][below(r, 2)]!, false);
      leaves.push(iova);
    }
    relocateTables(unit, fs.rootPa, 0, IPA);
    const cases: { iova: number; access: number; pasid?: number }[] = [];
    for (const iova of leaves) for (const access of [R, W]) cases.push({ iova: iova + below(r, PAGE), access });
    cases.push({ iova: 0x5000_0000, access: R }); // no first-stage entry
    cases.push({ iova: 0x1000, access: R, pasid: 1 }); // pass-through
    const { ok, faults } = checkAgainstTranslate(fd, unit, cases);
    expect(ok).toBeGreaterThan(5);
    expect(faults.size).toBeGreaterThan(1);
    const t = inspectVtd(unit, { sid: SID }, leaves[0]!, R);
    expect(t.translation).toBe('nested');
    // The root's stage-2 walk comes first, then each stage-1 entry after the stage-2 walk of its table.
    const first = t.steps.findIndex((s) => s.structure === 'pte');
    expect(t.steps[first]!.stage).toBe('stage2');
    expect(t.steps[first]!.s2).toEqual({ purpose: 'table', input: IPA + fs.rootPa });
    const s1 = t.steps.filter((s) => s.stage === 'stage1');
    expect(s1.map((s) => s.level)).toEqual([0, 1, 2, 3]);
    expect(s1[0]!.ipa).toBe(IPA + fs.rootPa + 0 * 8);
  });

  it('a stage-1 table on a read-only stage-2 page faults on the fetch (the walk would write A/D there)', () => {
    const { unit, IPA, ss } = nestedUnit();
    // A first-stage root page in the read-only part of stage 2.
    const rootGpa = 8 * MIB + 16 * PAGE;
    unit.guest.u8.fill(0, rootGpa, rootGpa + PAGE);
    // Rewrite RID_PASID's entry in place (the unit's caches know nothing of it yet).
    const peGpa = inspectVtd(unit, { sid: SID }, 0x1000, R).steps.find((s) => s.structure === 'pasid-entry')!.gpa!;
    const pe = Object.assign(new PasidEntry(), {
      present: true,
      did: 3,
      aw: 2,
      pgtt: PGTT.Nested,
      slptptr: ss.rootPa,
      flptptr: IPA + rootGpa,
      flpm: FLPM.Level4,
    });
    encodePasidEntry(pe, unit.guest.i32, peGpa / 4);
    const t = inspectVtd(unit, { sid: SID }, 0x1000, R);
    expect(t.result).toMatchObject({
      ok: false,
      fault: { stage: 'stage2', vendorCode: VTD_FR.SM_WRITE, ipa: IPA + rootGpa },
    });
    const pa = unit.translate({ sid: SID }, 0x1000, R);
    expectSameResult(t, { pa, vendorCode: unit.lastFaultReason }, 'read-only stage-1 root');
  });
});

/**
 * Adds `delta` to the address of every present non-leaf entry of the x86 first-stage table at
 * guest-physical `table` (level `level`, Arm numbering), recursively: the codec builds tables
 * that point at GPAs, a nested first stage needs IPAs.
 */
function relocateTables(unit: VtdIommu, table: number, level: number, delta: number): void {
  const i32 = unit.guest.i32;
  for (let i = 0; i < 512; i++) {
    const at = table / 4 + i * 2;
    const lo = i32[at]!;
    if ((lo & 1) === 0 || level === 3 || (lo & 0x80) !== 0) continue;
    const next = (lo & 0xfffff000) >>> 0;
    relocateTables(unit, next, level + 1, delta);
    const moved = next + delta;
    i32[at] = moved | (lo & 0xfff) | 0;
  }
}
