// Inspecting walks of iommufd devices: for random IOAS mappings on every kind's paging domain,
// and for nested domains (VT-d first stage over a nest parent, SMMUv3 vSTEs) in hardware and
// software nesting built with the nesting rig, the inspected result is what `fd.translate` and
// `fd.lastFault()` report (code, level, reason, vendor code), and the inspection leaves physical
// memory and the cache counters as it found them.
import { afterEach, describe, expect, it } from 'vitest';
import { inspectIommufd, type WalkTrace } from '../../src/inspect/index.js';
import { Access, Iommufd } from '../../src/index.js';
import {
  Rig,
  SLOTS,
  DATA_PAGES,
  GUEST_PAGES,
  CTXS,
  slotIova,
  tableGpa,
  type Vendor,
  type Mode,
} from '../property/nesting-rig.js';
import { below, expectSameResult, expectUnchanged, rng, snapshot } from './helpers.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const R = Access.Read;
const W = Access.Write;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

interface Case {
  devId: number;
  pasid?: number;
  iova: number;
  access: number;
}

/** Inspects every case (physical memory and cache counters must not change), then translates each and compares. */
function checkAgainstTranslate(
  fd: Iommufd,
  cases: readonly Case[],
): { ok: number; faults: Set<string>; traces: WalkTrace[] } {
  const phys = new Uint8Array(fd.dataPlane().memory.phys);
  const mem = snapshot(phys);
  const cache = fd.cacheStats();
  const req = (c: Case) => ({ devId: c.devId, ...(c.pasid === undefined ? {} : { pasid: c.pasid }) });
  const traces = cases.map((c) => inspectIommufd(fd, req(c), c.iova, c.access));
  expectUnchanged(phys, mem, 'physical memory after the inspections');
  expect(fd.cacheStats()).toEqual(cache);
  const faults = new Set<string>();
  let ok = 0;
  cases.forEach((c, i) => {
    const pa = fd.translate(c.devId, c.iova, c.access, c.pasid);
    const f = fd.lastFault();
    const translated =
      pa >= 0 ? { pa, vendorCode: 0 } : { pa, vendorCode: f.vendorCode, level: f.level, reason: f.reason };
    expectSameResult(
      traces[i]!,
      translated,
      `dev ${c.devId} pasid ${c.pasid ?? '-'} iova 0x${c.iova.toString(16)} access ${c.access}`,
    );
    if (pa >= 0) ok++;
    else faults.add(`${f.reason}/${f.vendorCode}`);
  });
  return { ok, faults, traces };
}

describe('iommufd paging domains', () => {
  for (const kind of ['mock', 'smmuv3', 'vtd'] as const) {
    for (const seed of [31, 32]) {
      it(`${kind}, seed ${seed}: random IOAS mappings give what translate gives`, () => {
        const fd = Iommufd.open({ memoryBytes: 64 * MIB });
        open.push(fd);
        const ioas = fd.ioasAlloc();
        const dev = fd.deviceBind({ iommu: kind });
        fd.deviceAttach(dev, ioas);
        const va = fd.memory.mmap(BigInt(8 * MIB));
        const r = rng(seed);
        const base = 2 ** 24; // inside every kind's aperture
        const areas: { iova: number; length: number; readable: boolean; writeable: boolean }[] = [];
        let vaOff = 0;
        for (let i = 0; i < 16; i++) {
          const length = (1 + below(r, 4)) * PAGE;
          const iova = base + below(r, 4096) * PAGE;
          if (areas.some((a) => iova < a.iova + a.length + PAGE && a.iova < iova + length + PAGE)) continue;
          const [readable, writeable] = [
            [true, false],
            [false, true],
            [true, true],
          ][below(r, 3)]! as [boolean, boolean];
          fd.ioasMap(ioas, {
            userVa: va + BigInt(vaOff),
            length: BigInt(length),
            iova: BigInt(iova),
            flags: { fixedIova: true, readable, writeable },
          });
          vaOff += length;
          areas.push({ iova, length, readable, writeable });
        }
        const cases: Case[] = [];
        for (const a of areas) {
          for (const access of [R, W, R | W]) cases.push({ devId: dev, iova: a.iova + below(r, a.length), access });
          cases.push({ devId: dev, iova: a.iova + a.length + below(r, PAGE), access: R }); // the gap after it
        }
        cases.push({ devId: dev, iova: 2 ** 31 + 5, access: R }); // beyond the mock aperture
        cases.push({ devId: dev, iova: 2 ** 50, access: R }); // beyond every input size
        const { ok, faults } = checkAgainstTranslate(fd, cases);
        expect(ok).toBeGreaterThan(10);
        expect(faults.size).toBeGreaterThan(1);
      });
    }
  }

  it('a device with nothing attached, and a trace of a VT-d second-stage walk', () => {
    const fd = Iommufd.open({ memoryBytes: 64 * MIB });
    open.push(fd);
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'vtd' });
    const none = inspectIommufd(fd, { devId: dev }, 0x1000, R);
    expect(none.result).toMatchObject({
      ok: false,
      fault: { name: 'no-domain', reason: 'no-domain', stage: 'config' },
    });
    expect(fd.translate(dev, 0x1000, R)).toBe(-1);
    fd.deviceAttach(dev, ioas);
    const va = fd.memory.mmap(BigInt(PAGE));
    fd.ioasMap(ioas, {
      userVa: va,
      length: BigInt(PAGE),
      iova: 0x40_0000n,
      flags: { fixedIova: true, readable: true, writeable: false },
    });
    const t = inspectIommufd(fd, { devId: dev }, 0x40_0123, W);
    expect(t.translation).toBe('vtd-second-stage');
    expect(t.steps.map((s) => [s.level, s.outcome])).toEqual([
      [0, 'table'],
      [1, 'table'],
      [2, 'table'],
      [3, 'fault'],
    ]);
    expect(t.steps[3]!.fields).toMatchObject({ kind: 'leaf', R: true, W: false });
    expect(t.steps.every((s) => s.gpa === undefined && s.hpa >= 0)).toBe(true);
    expect(t.result).toMatchObject({ ok: false, fault: { reason: 'write-denied', vendorName: 'WRITE', level: 3 } });
  });
  it('an IOPF-capable domain: a translation fault is reported as pending, as translate reports it', () => {
    const fd = Iommufd.open({ memoryBytes: 64 * MIB });
    open.push(fd);
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'smmuv3' });
    const { faultId } = fd.faultQueueAlloc();
    const hwpt = fd.hwptAlloc({ devId: dev, ptId: ioas, faultId });
    fd.deviceAttach(dev, hwpt);
    const t = inspectIommufd(fd, { devId: dev }, 0x4000_0000, R);
    expect(t.result).toMatchObject({
      ok: false,
      fault: { name: 'pending', reason: 'not-present', vendorName: 'F_TRANSLATION' },
    });
    expect(t.notes.join()).toMatch(/page request/);
    const pa = fd.translate(dev, 0x4000_0000, R);
    const f = fd.lastFault();
    expectSameResult(t, { pa, vendorCode: f.vendorCode, level: f.level, reason: f.reason }, 'IOPF');
  });
});

describe('iommufd nested domains (the nesting rig)', () => {
  for (const vendor of ['vtd', 'smmuv3'] as Vendor[]) {
    for (const mode of ['hardware', 'software'] as Mode[]) {
      it(`${vendor}, ${mode} nesting: random stage-1 leaves, blocks and stage-2 holes give what translate gives`, () => {
        const rig = new Rig({ vendor, mode });
        open.push(rig.fd);
        const r = rng(vendor === 'vtd' ? 41 : 42);
        for (let c = 0; c < CTXS; c++) {
          for (let s = 0; s < SLOTS; s++) {
            if (below(r, 5) === 0) continue; // no leaf
            rig.setLeaf(c, s, {
              page: below(r, DATA_PAGES),
              write: below(r, 2) === 0,
              dirty: true,
              af: below(r, 6) !== 0,
            });
          }
        }
        rig.setBlock(1, 1, { write: false, dirty: true, af: true }); // region B of context 1: a 2 MiB block
        rig.s2Unmap(GUEST_PAGES - 1); // a guest page stage 2 no longer maps
        rig.s2Unmap(tableGpa(1, 6) / PAGE); // context 1's L3 table of region C: its fetch faults at stage 2
        for (let c = 0; c < CTXS; c++)
          rig.invalidate(c, [
            [slotIova(0), 8],
            [slotIova(8), 8],
            [slotIova(16), 8],
          ]);
        const cases: Case[] = [];
        for (let c = 0; c < CTXS; c++) {
          for (let s = 0; s < SLOTS; s++) {
            for (const access of [R, W]) {
              cases.push({
                devId: rig.dev,
                ...(c === 0 ? {} : { pasid: c }),
                iova: slotIova(s) + below(r, PAGE),
                access,
              });
            }
          }
        }
        const { ok, faults, traces } = checkAgainstTranslate(rig.fd, cases);
        expect(ok).toBeGreaterThan(20);
        expect(faults.size).toBeGreaterThan(1);
        // A stage-2 fault of a stage-1 table fetch is reported as such, with the table's IPA.
        const s2Table = traces.find(
          (t) => !t.result.ok && t.result.fault.stage === 'stage2' && t.result.fault.ipa === tableGpa(1, 6),
        );
        expect(s2Table).toBeDefined();
      });
    }
  }

  it('the trace of a nested walk interleaves the stage-2 walks of the stage-1 tables', () => {
    const rig = new Rig({ vendor: 'smmuv3', mode: 'hardware' });
    open.push(rig.fd);
    rig.setLeaf(0, 3, { page: 2, write: true, dirty: true, af: true });
    const t = inspectIommufd(rig.fd, { devId: rig.dev }, slotIova(3) + 0x10, W);
    expect(t.translation).toBe('arm-nested');
    expect(t.steps.map((s) => s.structure).slice(0, 5)).toEqual(['pte', 'pte', 'pte', 'pte', 'cd']); // the CD's stage-2 walk, then the CD
    const purposes = t.steps.filter((s) => s.stage === 'stage2').map((s) => s.s2!.purpose);
    expect(new Set(purposes)).toEqual(new Set(['cd', 'table', 'output']));
    // Slot 3 is IOVA 0x401fb000: indexes 0, 1, 0, 0x1fb through the L0, L1, L2 and region A's L3 tables.
    expect(t.steps.filter((s) => s.stage === 'stage1').map((s) => s.ipa)).toEqual([
      tableGpa(0, 0),
      tableGpa(0, 1) + 8,
      tableGpa(0, 2),
      tableGpa(0, 4) + 0x1fb * 8,
    ]);
    expect(t.result).toMatchObject({ ok: true, ipa: 0x40000 + 2 * PAGE + 0x10, pageShift: 12 });
    expect(rig.fd.translate(rig.dev, slotIova(3) + 0x10, W)).toBe(t.result.ok ? t.result.hpa : -99);
  });
});
