// Range dumps: a domain's mapped runs, from the whole table, are exactly the mapped set the guest
// driver models or the IOAS built (input pages, output pages, permissions), runs are coalesced,
// and for iommufd every dumped page translates where the dump says.
import { afterEach, describe, expect, it } from 'vitest';
import { SmmuGuestDriver } from '../../src/guest/smmuv3/index.js';
import { VtdGuestDriver } from '../../src/guest/vtd/index.js';
import { iommufdRanges, smmuRanges, vtdRanges, type RangeDump } from '../../src/inspect/index.js';
import { Access, Iommufd } from '../../src/index.js';
import { CTXS, DATA_PAGES, Rig, SLOTS, slotIova, type Mode, type Vendor } from '../property/nesting-rig.js';
import { below, rng } from './helpers.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const R = 1;
const W = 2;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

/** Every page of a dump: input page → [output page, 'rw'-style permissions]. */
function pages(d: RangeDump, page = PAGE): Map<number, [number, string]> {
  const m = new Map<number, [number, string]>();
  for (const r of d.ranges) {
    expect(r.size % page).toBe(0);
    expect(r.size % r.pageSize).toBe(0);
    for (let off = 0; off < r.size; off += page)
      m.set(r.iova + off, [r.output + off, `${r.perms.read ? 'r' : '-'}${r.perms.write ? 'w' : '-'}`]);
  }
  return m;
}

/** Runs that could have been one: adjacent in input and output, same permissions and page size. */
function mergeable(d: RangeDump): number {
  let n = 0;
  for (let i = 1; i < d.ranges.length; i++) {
    const a = d.ranges[i - 1]!;
    const b = d.ranges[i]!;
    const same = JSON.stringify(a.perms) === JSON.stringify(b.perms) && a.pageSize === b.pageSize;
    if (same && a.iova + a.size === b.iova && a.output + a.size === b.output) n++;
  }
  return n;
}

describe('range dumps of guest-managed tables', () => {
  for (const mode of ['legacy', 'scalable', 'scalable-fl'] as const) {
    it(`VT-d ${mode}: the dump is the driver's mapped set, coalesced, and follows an unmap`, () => {
      const fd = Iommufd.open({ memoryBytes: 128 * MIB });
      open.push(fd);
      const unit = fd.vtdCreate({
        guestRamBytes: 32 * MIB,
        ...(mode === 'legacy' ? {} : { scalableMode: true, firstStage: mode === 'scalable-fl' }),
      });
      const drv = new VtdGuestDriver(unit, { mode: mode === 'legacy' ? 'legacy' : 'scalable' });
      drv.probe();
      drv.attach(0x10, { did: 3 });
      const r = rng(mode.length);
      const model = new Map<number, [number, string]>();
      const firstStage = mode === 'scalable-fl';
      const permsOf = (prot: number): string =>
        `${firstStage || (prot & R) !== 0 ? 'r' : '-'}${(prot & W) !== 0 ? 'w' : '-'}`;
      for (let i = 0; i < 20; i++) {
        const n = 1 + below(r, 6);
        const iova = 0x4000_0000 + below(r, 8192) * PAGE;
        if ([...Array(n + 2).keys()].some((k) => model.has(iova + (k - 1) * PAGE))) continue;
        const gpa = drv.frames.allocContiguous(n) * PAGE;
        const prot = [R, W, R | W][below(r, 3)]!;
        drv.map(0x10, iova, gpa, n * PAGE, prot);
        for (let k = 0; k < n; k++) model.set(iova + k * PAGE, [gpa + k * PAGE, permsOf(prot)]);
      }
      drv.map(0x10, 0x8000_0000, 8 * MIB, 2 * MIB, R | W); // a 2 MiB page where the unit has them
      for (let k = 0; k < 512; k++) model.set(0x8000_0000 + k * PAGE, [8 * MIB + k * PAGE, permsOf(R | W)]);
      const d = vtdRanges(unit, { sid: 0x10 });
      expect(d.outputSpace).toBe('gpa');
      expect(pages(d)).toEqual(model);
      expect(mergeable(d)).toBe(0);
      expect(d.ranges.find((x) => x.iova === 0x8000_0000)).toMatchObject({ size: 2 * MIB, pageSize: 2 * MIB });
      expect(d.invalidEntries).toBe(0);
      const [gone] = [...model.keys()];
      drv.unmap(0x10, gone!, PAGE);
      model.delete(gone!);
      expect(pages(vtdRanges(unit, { sid: 0x10 }))).toEqual(model);
      // A device with no context entry has no ranges, and says why.
      expect(vtdRanges(unit, { sid: 0x11 })).toMatchObject({
        ranges: [],
        notes: [expect.stringMatching(/CONTEXT_ENTRY_P|0x41/)],
      });
    });
  }

  it("SMMUv3 stage 1: the dump is the driver's mapped set, coalesced", () => {
    const fd = Iommufd.open({ memoryBytes: 128 * MIB });
    open.push(fd);
    const unit = fd.smmuCreate({ guestRamBytes: 32 * MIB });
    const drv = new SmmuGuestDriver(unit);
    drv.probe();
    drv.attachDevice(0x10);
    const r = rng(5);
    const model = new Map<number, [number, string]>();
    for (let i = 0; i < 20; i++) {
      const n = 1 + below(r, 6);
      const iova = 0x4000_0000 + below(r, 8192) * PAGE;
      if ([...Array(n + 2).keys()].some((k) => model.has(iova + (k - 1) * PAGE))) continue;
      const gpa = drv.frames.allocContiguous(n) * PAGE;
      const prot = [R, W, R | W][below(r, 3)]!;
      drv.map(0x10, iova, gpa, n * PAGE, prot);
      // Arm stage 1 cannot say write-only: IOMMU_WRITE alone maps read/write.
      for (let k = 0; k < n; k++) model.set(iova + k * PAGE, [gpa + k * PAGE, (prot & W) !== 0 ? 'rw' : 'r-']);
    }
    const d = smmuRanges(unit, { sid: 0x10 });
    expect(d.format).toBe('arm-stage1');
    expect(pages(d)).toEqual(model);
    expect(mergeable(d)).toBe(0);
    expect(d.ranges.every((x) => x.perms.accessFlag === true && x.perms.user === true)).toBe(true);
    expect(d.ranges.length).toBeLessThan(model.size);
  });
});

describe('range dumps of iommufd domains', () => {
  for (const kind of ['mock', 'smmuv3', 'vtd'] as const) {
    it(`${kind}: the dump covers exactly the IOAS areas, and every page translates where it says`, () => {
      const fd = Iommufd.open({ memoryBytes: 64 * MIB });
      open.push(fd);
      const ioas = fd.ioasAlloc();
      const dev = fd.deviceBind({ iommu: kind });
      fd.deviceAttach(dev, ioas);
      const va = fd.memory.mmap(BigInt(4 * MIB));
      const r = rng(kind.length + 50);
      const page = kind === 'mock' ? 2048 : PAGE;
      const mapped = new Set<number>();
      let vaOff = 0;
      for (let i = 0; i < 12; i++) {
        const length = (1 + below(r, 4)) * PAGE;
        const iova = 2 ** 24 + below(r, 2048) * PAGE;
        if ([...mapped].some((m) => m >= iova - PAGE && m < iova + length + PAGE)) continue;
        const readable = below(r, 3) !== 0;
        fd.ioasMap(ioas, {
          userVa: va + BigInt(vaOff),
          length: BigInt(length),
          iova: BigInt(iova),
          flags: { fixedIova: true, readable, writeable: !readable || below(r, 2) === 0 },
        });
        vaOff += length;
        for (let off = 0; off < length; off += page) mapped.add(iova + off);
      }
      const d = iommufdRanges(fd, { devId: dev });
      expect(d.outputSpace).toBe('hpa');
      const dumped = pages(d, page);
      expect(new Set(dumped.keys())).toEqual(mapped);
      expect(mergeable(d)).toBe(0);
      for (const [iova, [out, perms]] of dumped) {
        const access = perms[0] === 'r' ? Access.Read : Access.Write;
        expect(fd.translate(dev, iova + 5, access), `0x${iova.toString(16)} ${perms}`).toBe(out + 5);
        if (perms[1] === '-') expect(fd.translate(dev, iova, Access.Write)).toBeLessThan(0);
      }
    });
  }

  for (const vendor of ['vtd', 'smmuv3'] as Vendor[]) {
    for (const mode of ['hardware', 'software'] as Mode[]) {
      it(`${vendor} nested (${mode}): stage 1 composed with stage 2 gives what translate gives, page by page`, () => {
        const rig = new Rig({ vendor, mode });
        open.push(rig.fd);
        const r = rng(61);
        for (let c = 0; c < CTXS; c++)
          for (let s = 0; s < SLOTS; s++)
            if (below(r, 4) !== 0)
              rig.setLeaf(c, s, { page: below(r, DATA_PAGES), write: below(r, 2) === 0, dirty: true, af: true });
        rig.setBlock(0, 2, { write: true, dirty: true, af: true }); // region C of context 0: a 2 MiB block onto GPA 0
        rig.s2Unmap(3); // the block's fourth page has no stage 2
        for (let c = 0; c < CTXS; c++) {
          const d = iommufdRanges(rig.fd, { devId: rig.dev, ...(c === 0 ? {} : { pasid: c }) });
          expect(d.format).toMatch(/nested/);
          const dumped = pages(d);
          expect(dumped.size).toBeGreaterThan(10);
          for (const [iova, [out, perms]] of dumped) {
            const access = perms[1] === 'w' ? Access.Read | Access.Write : Access.Read;
            expect(
              rig.fd.translate(rig.dev, iova, access, c === 0 ? undefined : c),
              `ctx ${c} 0x${iova.toString(16)}`,
            ).toBe(out);
          }
          // Every slot that translates is in the dump.
          for (let s = 0; s < SLOTS; s++) {
            const pa = rig.fd.translate(rig.dev, slotIova(s), Access.Read, c === 0 ? undefined : c);
            expect(pa >= 0, `ctx ${c} slot ${s}`).toBe(dumped.has(slotIova(s)));
          }
          if (c === 0) {
            const block = d.ranges.filter((x) => x.iova >= 0x8000_0000 && x.iova < 0x8020_0000);
            // Stage 2 maps guest pages 0..131 (RAM and the spare pages) but page 3: 131 of the block's 512 pages.
            expect(block.reduce((n, x) => n + x.size, 0)).toBe(131 * PAGE);
          }
        }
      });
    }
  }
});
