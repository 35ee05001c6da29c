// Inspecting walks through an emulated SMMUv3: for random stage-1 mappings built by the Linux
// guest driver model, and stage-2 and nested configurations built by hand, the inspected result
// is what the unit's translate returns (address, or fault with its event), and the inspection
// leaves guest memory, the event queue and every counter as it found them.
import { afterEach, describe, expect, it } from 'vitest';
import { SmmuGuestDriver } from '../../src/guest/smmuv3/index.js';
import { inspectSmmu, type WalkTrace } from '../../src/inspect/index.js';
import { Iommufd } from '../../src/iommufd.js';
import { FrameAllocator } from '../../src/memory/index.js';
import { armS1Codec, armS1Config, armS2Codec, armS2Config, RadixPageTable, SMMU_EVT } from '../../src/pgtable/index.js';
import type { SmmuIommu } from '../../src/vendor/smmuv3/iommu.js';
import { decodeEvent } from '../../src/vendor/smmuv3/records.js';
import { CR0, SMMU_PAGE1_REG, SMMU_REG } from '../../src/vendor/smmuv3/regs-defs.js';
import { SMMU_CFG_EVT } from '../../src/vendor/smmuv3/resolve-events.js';
import { Cd, encodeCd } from '../../src/vendor/smmuv3/structures-cd.js';
import { encodeSte, Ste, STE_CONFIG } from '../../src/vendor/smmuv3/structures.js';
import { below, expectSameResult, expectUnchanged, rng, snapshot } from './helpers.js';

const MIB = 2 ** 20;
const PAGE = 4096;
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

interface Case {
  sid: number;
  ssid?: number;
  iova: number;
  access: number;
}

/** Inspects every case (nothing may change), then translates each and compares; returns the events seen. */
function checkAgainstTranslate(
  fd: Iommufd,
  unit: SmmuIommu,
  cases: readonly Case[],
): { ok: number; events: Set<number>; traces: WalkTrace[] } {
  const mem = snapshot(unit.guest.u8);
  const stats = unit.stats();
  const cache = fd.cacheStats();
  const evtqProd = unit.mmioRead(SMMU_PAGE1_REG.EVTQ_PROD, 4);
  const req = (c: Case) => ({ sid: c.sid, ...(c.ssid === undefined ? {} : { ssid: c.ssid }) });
  const traces = cases.map((c) => inspectSmmu(unit, req(c), c.iova, c.access));
  expectUnchanged(unit.guest.u8, mem, 'guest RAM after the inspections');
  expect(unit.stats()).toEqual(stats);
  expect(fd.cacheStats()).toEqual(cache);
  expect(unit.mmioRead(SMMU_PAGE1_REG.EVTQ_PROD, 4)).toBe(evtqProd);
  const events = new Set<number>();
  let ok = 0;
  cases.forEach((c, i) => {
    const pa = unit.translate(req(c), c.iova, c.access);
    expectSameResult(
      traces[i]!,
      { pa, vendorCode: unit.lastEvent },
      `sid ${c.sid} iova 0x${c.iova.toString(16)} access ${c.access}`,
    );
    if (pa >= 0) ok++;
    else events.add(unit.lastEvent);
  });
  return { ok, events, traces };
}

describe('SMMUv3 stage-1 walks built by the guest driver', () => {
  for (const seed of [11, 12, 13]) {
    it(`seed ${seed}: mapped, unmapped, read-only-written and misconfigured streams give what translate gives`, () => {
      const fd = newFd();
      const unit = fd.smmuCreate({ guestRamBytes: 32 * MIB });
      const drv = new SmmuGuestDriver(unit);
      drv.probe();
      const SID = 0x10;
      drv.attachDevice(SID);
      drv.addDevice(SID + 1); // added, not attached: an abort STE
      const r = rng(seed);
      const mapped: number[] = [];
      for (let i = 0; i < 24; i++) {
        const iova = (below(r, 4) === 0 ? below(r, 2 ** 26) : 0x4000_0000 + below(r, 2048)) * PAGE;
        if (mapped.includes(iova)) continue;
        drv.map(SID, iova, drv.frames.alloc() * PAGE, PAGE, [R, W, R | W][below(r, 3)]!);
        mapped.push(iova);
      }
      drv.map(SID, 0x8000_0000, 8 * MIB, 2 * MIB, R); // a 2 MiB block
      const cases: Case[] = [];
      for (const iova of mapped) {
        for (const access of [R, W, R | W | 8]) cases.push({ sid: SID, iova: iova + below(r, PAGE), access });
        cases.push({ sid: SID, iova: iova + 3 * PAGE, access: R });
      }
      cases.push({ sid: SID, iova: 0x8000_0000 + below(r, 2 * MIB), access: R });
      cases.push({ sid: SID, iova: 0x8000_0000 + below(r, 2 * MIB), access: W });
      cases.push({ sid: SID, iova: 2 ** 49, access: R }); // beyond the input size
      cases.push({ sid: SID, ssid: 1, iova: mapped[0]!, access: R }); // no substreams: C_BAD_SUBSTREAMID
      cases.push({ sid: SID + 1, iova: mapped[0]!, access: R }); // abort STE: no event
      cases.push({ sid: 0x7f00, iova: mapped[0]!, access: R }); // no level-2 table: C_BAD_STREAMID
      const { ok, events } = checkAgainstTranslate(fd, unit, cases);
      expect(ok).toBeGreaterThan(20);
      expect(events).toContain(SMMU_EVT.F_TRANSLATION);
      expect(events).toContain(SMMU_CFG_EVT.C_BAD_SUBSTREAMID);
    });
  }

  it('the trace reads the L1STD, STE, CD and one descriptor per level, and marks the faulting one', () => {
    const fd = newFd();
    const unit = fd.smmuCreate({ guestRamBytes: 32 * MIB });
    const drv = new SmmuGuestDriver(unit);
    drv.probe();
    drv.attachDevice(0x10, { asid: 9 });
    const gpa = drv.frames.alloc() * PAGE;
    drv.map(0x10, 0x1234_5000, gpa, PAGE, R);
    const t = inspectSmmu(unit, { sid: 0x10 }, 0x1234_5678, W);
    expect(t.translation).toBe('stage1');
    expect(t.steps.map((s) => s.structure)).toEqual(['l1-std', 'ste', 'cd', 'pte', 'pte', 'pte', 'pte']);
    expect(t.context).toMatchObject({ config: 'stage1', asid: 9 });
    expect(t.steps[2]!.fields).toMatchObject({ valid: true, asid: 9, ttb0: drv.domain(0x10).ttb0 });
    expect(t.steps.at(-1)).toMatchObject({ level: 3, outcome: 'fault', fields: { kind: 'page', AP: 3, AF: true } });
    expect(t.result).toMatchObject({
      ok: false,
      fault: { vendorName: 'F_PERMISSION', stage: 'stage1', reason: 'write-denied', recorded: true },
    });
    const ok = inspectSmmu(unit, { sid: 0x10 }, 0x1234_5678, R);
    expect(ok.result).toMatchObject({ ok: true, hpa: unit.ram.gpaToPa(gpa) + 0x678, gpa: gpa + 0x678, pageShift: 12 });
  });

  it('with SMMUEN = 0 the transaction bypasses (GBPA)', () => {
    const fd = newFd();
    const unit = fd.smmuCreate({ guestRamBytes: 32 * MIB });
    const t = inspectSmmu(unit, { sid: 3 }, 0x7000, R);
    expect(t.result).toMatchObject({ ok: true, hpa: unit.ram.gpaToPa(0x7000) });
    expect(unit.translate({ sid: 3 }, 0x7000, R)).toBe(unit.ram.gpaToPa(0x7000));
  });
});

describe('SMMUv3 stage-2 and nested walks, built by hand', () => {
  const STRTAB = 0x10000; // linear, 2^8 STEs
  const EVTQ = 0x20000;
  const IPA = 2 ** 30; // stage 2: IPA = GPA + 1 GiB
  const VMID = 3;

  /** A unit with a linear stream table, SMMUEN, and a stage-2 table (IPA + [0, 8 MiB) → GPA, the upper 4 MiB read-only). */
  function setup() {
    const fd = newFd();
    const unit = fd.smmuCreate({ guestRamBytes: 32 * MIB });
    const gp = unit.guest;
    const frames = new FrameAllocator(gp);
    frames.allocContiguous(0x100000 / PAGE);
    unit.mmioWrite(SMMU_REG.STRTAB_BASE, BigInt(STRTAB), 8);
    unit.mmioWrite(SMMU_REG.STRTAB_BASE_CFG, 8, 4);
    unit.mmioWrite(SMMU_REG.EVTQ_BASE, BigInt(EVTQ | 7), 8); // 128 records
    unit.mmioWrite(SMMU_REG.CR0, CR0.EVTQEN, 4);
    unit.mmioWrite(SMMU_REG.CR0, CR0.EVTQEN | CR0.SMMUEN, 4);
    const s2 = new RadixPageTable(gp, frames, armS2Codec(armS2Config(24, 1)));
    s2.map(IPA, 4 * MIB, (o) => o, R | W, false);
    s2.map(IPA + 4 * MIB, 4 * MIB, (o) => 4 * MIB + o, R, false);
    const ste2: Partial<Ste> = {
      valid: true,
      config: STE_CONFIG.S2,
      s2Vmid: VMID,
      s2T0sz: 24,
      s2Sl0: 1,
      s2Tg: 0,
      s2Ps: 5,
      s2Aa64: true,
      s2R: true,
      s2Ttb: s2.rootPa,
    };
    const ste = (sid: number, fields: Partial<Ste>): void => {
      encodeSte(Object.assign(new Ste(), fields), gp.i32, (STRTAB + sid * 64) / 4);
    };
    const cd = (at: number, fields: Partial<Cd>): void => {
      const base = { valid: true, aa64: true, a: true, r: true, t0sz: 16, ips: 5, epd1: true };
      encodeCd(Object.assign(new Cd(), base, fields), gp.i32, at / 4);
    };
    return { fd, unit, frames, s2, ste2, ste, cd };
  }

  it('stage 2 only and nested: results and events match translate, including stage-2 faults of table and CD fetches', () => {
    const { fd, unit, frames, ste2, ste, cd } = setup();
    const r = rng(21);
    // SID 1: stage 2 only. SID 2: nested, CD at IPA, stage-1 tables at IPAs. SID 3: nested, CD beyond stage 2.
    ste(1, ste2);
    const s1 = new RadixPageTable(unit.guest, frames, armS1Codec(armS1Config(16)));
    const cdGpa = frames.alloc() * PAGE;
    const leaves: number[] = [];
    for (let i = 0; i < 12; i++) {
      const iova = 0x4000_0000 + below(r, 1024) * PAGE;
      if (leaves.includes(iova)) continue;
      const data = frames.alloc() * PAGE;
      const out =
        below(r, 5) === 0 ? IPA + 4 * MIB + below(r, 1024) * PAGE : below(r, 6) === 0 ? IPA + 64 * MIB : IPA + data;
      s1.map(iova, PAGE, () => out, [R, R | W][below(r, 2)]!, false);
      leaves.push(iova);
    }
    relocateArmTables(unit, s1.rootPa, 0, IPA);
    cd(cdGpa, { asid: 4, ttb0: IPA + s1.rootPa });
    ste(2, { ...ste2, config: STE_CONFIG.Nested, s1ContextPtr: IPA + cdGpa });
    ste(3, { ...ste2, config: STE_CONFIG.Nested, s1ContextPtr: IPA + 16 * MIB });
    const cases: Case[] = [];
    for (let i = 0; i < 10; i++) {
      const gpa = below(r, 8 * MIB);
      cases.push({ sid: 1, iova: IPA + gpa - (gpa % 8), access: [R, W][below(r, 2)]! });
    }
    cases.push({ sid: 1, iova: IPA + 9 * MIB, access: R }); // stage 2 does not map it
    for (const iova of leaves) for (const access of [R, W]) cases.push({ sid: 2, iova: iova + below(r, PAGE), access });
    cases.push({ sid: 2, iova: 0x5000_0000, access: R });
    cases.push({ sid: 3, iova: leaves[0]!, access: R });
    const { ok, events, traces } = checkAgainstTranslate(fd, unit, cases);
    expect(ok).toBeGreaterThan(10);
    expect(events.size).toBeGreaterThan(1);
    // The event records the unit wrote are the faults the traces say it records, with their stage, class and IPA.
    const expected = traces.flatMap((t) =>
      !t.result.ok && t.result.fault.recorded === true
        ? [
            {
              type: t.result.fault.vendorCode,
              stage2: t.result.fault.stage === 'stage2',
              class: ['CD', 'TT', 'IN'].indexOf(t.result.fault.eventClass ?? 'IN'),
              // The record holds IPA[51:12].
              address2: (t.result.fault.ipa ?? 0) - ((t.result.fault.ipa ?? 0) % PAGE),
            },
          ]
        : [],
    );
    const prod = Number(unit.mmioRead(SMMU_PAGE1_REG.EVTQ_PROD, 4)) & 0xff;
    const written = [];
    for (let i = 0; i < prod; i++) {
      const e = decodeEvent(unit.guest.i32.slice(EVTQ / 4 + i * 8, EVTQ / 4 + i * 8 + 8));
      written.push({ type: e.type, stage2: e.stage2, class: e.class, address2: Number(e.address2) });
    }
    expect(written).toEqual(expected);
    expect(expected.length).toBeGreaterThan(3);
    // The nested trace: each stage-1 entry comes after the stage-2 walk of its table; the CD read after the stage-2 walk of its IPA.
    const t = inspectSmmu(unit, { sid: 2 }, leaves[0]!, R);
    expect(t.translation).toBe('nested');
    const cdAt = t.steps.findIndex((s) => s.structure === 'cd');
    expect(t.steps[cdAt - 1]).toMatchObject({ stage: 'stage2', s2: { purpose: 'cd', input: IPA + cdGpa } });
    expect(t.steps[cdAt]).toMatchObject({ ipa: IPA + cdGpa, gpa: cdGpa });
    const s1Steps = t.steps.filter((s) => s.stage === 'stage1');
    expect(s1Steps.map((s) => s.level)).toEqual([0, 1, 2, 3]);
    const bad = inspectSmmu(unit, { sid: 3 }, leaves[0]!, R);
    expect(bad.result).toMatchObject({
      ok: false,
      fault: { stage: 'stage2', eventClass: 'CD', ipa: IPA + 16 * MIB, vendorName: 'F_TRANSLATION' },
    });
  });
});

/** Adds `delta` to the next-table address of every table descriptor under the Arm stage-1 table at GPA `table`. */
function relocateArmTables(unit: SmmuIommu, table: number, level: number, delta: number): void {
  const i32 = unit.guest.i32;
  for (let i = 0; i < 512; i++) {
    const at = table / 4 + i * 2;
    const lo = i32[at]!;
    if ((lo & 3) !== 3 || level === 3) continue;
    const next = (lo & 0xfffff000) >>> 0;
    relocateArmTables(unit, next, level + 1, delta);
    i32[at] = ((next + delta) % 2 ** 32) | (lo & 0xfff) | 0;
    i32[at + 1] = (i32[at + 1]! + Math.floor((next + delta) / 2 ** 32)) | 0;
  }
}
