// The Linux 6.1 intel-iommu guest driver model against the emulated VT-d unit, end to end:
// the driver talks to the unit only through MMIO and guest memory; devices DMA through the unit.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { VtdGuestDriver, psiMask, type VtdGuestDriverOptions } from '../../src/guest/vtd/index.js';
import { Iommufd } from '../../src/iommufd.js';
import { IommufdError } from '../../src/util/errors.js';
import { decodeDescriptor, DescType, VtdDescriptor } from '../../src/vendor/vtd/descriptors.js';
import type { VtdIommu, VtdIommuOptions } from '../../src/vendor/vtd/iommu.js';
import { FRCD_W3, FSTS, GSTS, IQER, VTD_REG } from '../../src/vendor/vtd/regs-defs.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const SID = 0x0010; // 00:02.0
const R = 1;
const W = 2;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

function setup(unitOpts: VtdIommuOptions = {}, drvOpts: VtdGuestDriverOptions = {}) {
  const fd = Iommufd.open({ memoryBytes: 256 * MIB });
  open.push(fd);
  const unit = fd.vtdCreate({ guestRamBytes: 32 * MIB, ...unitOpts });
  const drv = new VtdGuestDriver(unit, drvOpts);
  drv.probe();
  return { fd, unit, drv };
}

/** A fresh guest page filled with `fill`; returns its GPA. */
function dataPage(unit: VtdIommu, drv: VtdGuestDriver, fill = 0): number {
  const gpa = drv.frames.alloc() * PAGE;
  unit.guest.u8.fill(fill, gpa, gpa + PAGE);
  return gpa;
}

function reg32(unit: VtdIommu, offset: number): number {
  return Number(unit.mmioRead(offset, 4));
}

/** The descriptors in queue slots [from, to) (wrapping), decoded. */
function slots(unit: VtdIommu, drv: VtdGuestDriver, from: number, to: number): VtdDescriptor[] {
  const q = drv.queue;
  const out: VtdDescriptor[] = [];
  for (let s = from; s !== to; s = (s + 1) % q.entries) {
    const d = new VtdDescriptor();
    decodeDescriptor(unit.guest.i32, q.slotAddress(s) / 4, q.wide, 63, d);
    out.push(d);
  }
  return out;
}

/** Runs `fn` and returns the descriptors it queued. */
function queued(unit: VtdIommu, drv: VtdGuestDriver, fn: () => void): VtdDescriptor[] {
  const from = drv.queue.head;
  fn();
  return slots(unit, drv, from, drv.queue.head);
}

function kinds(descs: VtdDescriptor[]): string[] {
  const name: Record<number, string> = { 1: 'cc', 2: 'iotlb', 3: 'devtlb', 5: 'wait', 6: 'piotlb', 7: 'pc' };
  return descs.map((d) => (d.type === DescType.Wait ? 'wait' : `${name[d.type] ?? d.type}/g${d.get('g')}`));
}

function faults(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    if (e instanceof IommufdError && e.errno === 'EFAULT') return true;
    throw e;
  }
}

describe('probe', () => {
  it('enables QI, latches the root table, flushes globally with waits, then enables translation (legacy, as the trace)', () => {
    const { unit, drv } = setup();
    const on = (GSTS.QIES | GSTS.RTPS | GSTS.TES) >>> 0;
    expect((reg32(unit, VTD_REG.GSTS) & on) >>> 0).toBe(on);
    expect(unit.regs.rootTable.mode).toBe('legacy');
    const descs = slots(unit, drv, 0, drv.queue.head);
    expect(kinds(descs)).toEqual(['cc/g1', 'wait', 'iotlb/g1', 'wait']);
    // The exact low words Linux wrote in traces/vtd-nocm-lazy.clean.log: 0x11, 0xd2, and the
    // wait 0x25 with status data 2 (QI_DONE).
    const w = (slot: number, word: number) => unit.guest.i32[drv.queue.slotAddress(slot) / 4 + word]! >>> 0;
    expect([w(0, 0), w(1, 0), w(1, 1), w(2, 0), w(3, 0)]).toEqual([0x11, 0x25, 2, 0xd2, 0x25]);
    expect(descs[1]!.get('statusAddrLo')).toBe(drv.queue.statusBase + 4 * 1);
    expect(drv.stats()).toMatchObject({ submissions: 2, waits: 2, doorbells: 2, descriptors: 4 });
    expect(unit.stats().waits).toBe(2);
    expect(reg32(unit, VTD_REG.IQH)).toBe(reg32(unit, VTD_REG.IQT));
    expect(drv.queue.free).toBe(drv.queue.entries); // every slot reclaimed
  });

  it('scalable mode: TTM 01, 256-bit descriptors, and a global PASID-cache invalidation', () => {
    const { unit, drv } = setup({ scalableMode: true });
    expect(drv.scalable).toBe(true);
    expect(unit.regs.rootTable.mode).toBe('scalable');
    expect(unit.regs.descriptorWidth).toBe(256);
    expect(drv.queue.entries).toBe(256);
    expect(kinds(slots(unit, drv, 0, drv.queue.head))).toEqual(['cc/g1', 'wait', 'pc/g3', 'wait', 'iotlb/g1', 'wait']);
  });

  it('refuses scalable mode on a unit without ECAP.SMTS, and a second probe', () => {
    const fd = Iommufd.open({ memoryBytes: 256 * MIB });
    open.push(fd);
    const unit = fd.vtdCreate({ guestRamBytes: 32 * MIB });
    expect(() => new VtdGuestDriver(unit, { mode: 'scalable' }).probe()).toThrow(/EOPNOTSUPP/);
    const drv = new VtdGuestDriver(unit);
    drv.probe();
    expect(() => drv.probe()).toThrow(/EBUSY/);
  });
});

describe('the page-selective mask (iommu_flush_iotlb_psi)', () => {
  it('rounds the count up to a power of two and grows it until first and last page share the high bits', () => {
    expect(psiMask(0, 1)).toBe(0);
    expect(psiMask(0, 3)).toBe(2);
    expect(psiMask(4, 4)).toBe(2);
    expect(psiMask(1, 2)).toBe(2); // pages 1, 2 straddle a 2-page boundary: the 4-page block
    expect(psiMask(0x1ff, 2)).toBe(10); // 0x1ff and 0x200 share bits from 10 up
    for (const [pfn, pages] of [
      [3, 5],
      [0x12345, 77],
      [511, 1],
    ] as const) {
      const m = psiMask(pfn, pages);
      const base = pfn - (pfn % 2 ** m);
      expect(base + 2 ** m).toBeGreaterThanOrEqual(pfn + pages);
    }
  });
});

/** The unit and driver options of a mode: 'scalable-fl' is scalable mode with first-level domains. */
function modeOpts(mode: 'legacy' | 'scalable' | 'scalable-fl'): { unit: VtdIommuOptions; drv: VtdGuestDriverOptions } {
  if (mode === 'legacy') return { unit: {}, drv: { mode: 'legacy' } };
  return { unit: { scalableMode: true, firstStage: mode === 'scalable-fl' }, drv: { mode: 'scalable' } };
}

for (const mode of ['legacy', 'scalable', 'scalable-fl'] as const) {
  // First-level domains are invalidated with PASID-based IOTLB descriptors (qi_flush_piotlb).
  const psi = mode === 'scalable-fl' ? 'piotlb/g3' : 'iotlb/g3';
  for (const cachingMode of [false, true]) {
    describe(`${mode}, caching mode ${cachingMode ? 'on' : 'off'}, strict`, () => {
      const o = modeOpts(mode);
      const make = () => setup({ ...o.unit, cachingMode }, { ...o.drv, policy: 'strict' });

      it('attach writes the context entry and invalidates only in caching mode', () => {
        const { unit, drv } = make();
        const descs = queued(unit, drv, () => drv.attach(SID, { did: 5 }));
        if (!cachingMode) expect(descs).toEqual([]);
        else if (mode === 'legacy') expect(kinds(descs)).toEqual(['cc/g3', 'wait', 'iotlb/g2', 'wait']);
        else expect(kinds(descs)).toEqual(['pc/g1', 'wait', 'piotlb/g2', 'wait', 'cc/g3', 'wait', 'iotlb/g2', 'wait']);
        if (cachingMode) {
          const cc = descs.find((d) => d.type === DescType.ContextCache)!;
          expect([cc.get('did'), cc.get('sid')]).toEqual([0, SID]); // DID 0: where CM caches not-present entries
        }
        drv.attach(SID, { did: 5 }); // again: a no-op
        expect(() => drv.attach(SID, { did: 6 })).toThrow(/EBUSY/);
      });

      it('DMA reaches the mapped guest pages; after unmap returns the page faults and is recorded', () => {
        const { unit, drv } = make();
        drv.attach(SID, { did: 5 });
        const iova = 0x40_0000;
        const gpas = [dataPage(unit, drv, 0xa1), dataPage(unit, drv, 0xa2), dataPage(unit, drv, 0xa3)];
        const mapDescs = queued(unit, drv, () => gpas.forEach((g, i) => drv.map(SID, iova + i * PAGE, g, PAGE, R | W)));
        // Caching mode: every map is invalidated (PSI, no device-TLB); otherwise maps are silent.
        expect(kinds(mapDescs)).toEqual(cachingMode ? [psi, 'wait', psi, 'wait', psi, 'wait'] : []);
        for (let i = 0; i < 3; i++)
          expect(unit.dmaRead({ sid: SID }, iova + i * PAGE + 8, 4)).toEqual(new Uint8Array(4).fill(0xa1 + i));
        unit.dmaWrite({ sid: SID }, iova + PAGE + 100, new Uint8Array([1, 2, 3]));
        expect([...unit.guest.u8.subarray(gpas[1]! + 100, gpas[1]! + 103)]).toEqual([1, 2, 3]);

        const before = unit.stats().faultsRecorded;
        const descs = queued(unit, drv, () => expect(drv.unmap(SID, iova + PAGE, PAGE)).toBe(PAGE));
        expect(kinds(descs)).toEqual([psi, 'wait']);
        expect([descs[0]!.get('addr'), descs[0]!.get('am'), descs[0]!.get('ih')]).toEqual([iova + PAGE, 0, 1]);
        if (mode === 'scalable-fl') expect([descs[0]!.get('did'), descs[0]!.get('pasid')]).toEqual([5, 0]);
        expect(unit.translate({ sid: SID }, iova + PAGE, R)).toBeLessThan(0);
        expect(unit.stats().faultsRecorded).toBe(before + 1);
        const w3 = reg32(unit, VTD_REG.FRCD + 12);
        expect(w3 & FRCD_W3.F).not.toBe(0);
        expect(reg32(unit, VTD_REG.FSTS) & FSTS.PPF).not.toBe(0);
        expect(drv.readFaults()).toEqual([{ sid: SID, address: iova + PAGE, reason: w3 & 0xff, write: false }]);
        expect(reg32(unit, VTD_REG.FSTS) & FSTS.PPF).toBe(0);
        // The neighbours are untouched.
        expect(unit.dmaRead({ sid: SID }, iova, 1)[0]).toBe(0xa1);
        expect(unit.dmaRead({ sid: SID }, iova + 2 * PAGE, 1)[0]).toBe(0xa3);
        expect(faults(() => unit.dmaWrite({ sid: SID }, iova + PAGE, new Uint8Array(1)))).toBe(true);
      });

      it('an ATS device gets a device-TLB invalidation after the IOTLB one', () => {
        const { unit, drv } = setup({ ...o.unit, cachingMode, deviceTlb: true }, { ...o.drv, policy: 'strict' });
        unit.addAtsDevice(SID);
        drv.attach(SID, { did: 7, ats: true });
        const iova = 0x80_0000;
        const gpa = dataPage(unit, drv, 0x5a);
        for (let i = 0; i < 4; i++) drv.map(SID, iova + i * PAGE, gpa, PAGE, R);
        expect(unit.dmaRead({ sid: SID }, iova + 3 * PAGE, 1)[0]).toBe(0x5a);
        expect(unit.dmaRead({ sid: SID }, iova + 3 * PAGE, 1)[0]).toBe(0x5a);
        expect(unit.stats().devTlbHits).toBeGreaterThan(0);
        const descs = queued(unit, drv, () => drv.unmap(SID, iova, 4 * PAGE));
        expect(kinds(descs)).toEqual([psi, 'wait', 'devtlb/g0', 'wait']);
        const dev = descs[2]!;
        // 4 pages: mask 2, so Addr carries one trailing 1 bit above bit 12 and S = 1 (16 KiB).
        expect([dev.get('sid'), dev.get('s'), dev.get('addr')]).toEqual([SID, 1, iova + PAGE]);
        expect(unit.translate({ sid: SID }, iova + 3 * PAGE, R)).toBeLessThan(0);
        expect(drv.stats().devTlb).toBe(1);
      });
    });
  }
}

describe('invalidation width', () => {
  it('a range whose mask exceeds CAP.MAMV falls back to a domain-selective invalidation', () => {
    const { unit, drv } = setup({ mamv: 2 });
    drv.attach(SID, { did: 3 });
    const gpa = dataPage(unit, drv, 7);
    drv.map(SID, 0x10_0000, gpa, 8 * PAGE, R); // 8 pages → mask 3 > MAMV 2
    expect(unit.dmaRead({ sid: SID }, 0x10_7000, 1)[0]).toBe(0);
    const descs = queued(unit, drv, () => drv.unmap(SID, 0x10_0000, 8 * PAGE));
    expect(kinds(descs)).toEqual(['iotlb/g2', 'wait']);
    expect(descs[0]!.get('did')).toBe(3);
    expect(unit.translate({ sid: SID }, 0x10_7000, R)).toBeLessThan(0);
  });

  it('an unmap that frees a table page clears the invalidation hint and releases the page after the flush', () => {
    const { unit, drv } = setup();
    drv.attach(SID, { did: 3 });
    drv.map(SID, 0x1000, dataPage(unit, drv), PAGE, R); // the first 512 GiB already have a table
    const inUse0 = drv.frames.inUse;
    drv.map(SID, 0x4000_0000, dataPage(unit, drv), PAGE, R); // a new 1 GiB region: two new tables
    const tables = drv.frames.inUse - inUse0 - 1;
    expect(tables).toBe(2);
    const descs = queued(unit, drv, () => drv.unmap(SID, 0x4000_0000, PAGE));
    expect(descs[0]!.get('ih')).toBe(0);
    expect(drv.frames.inUse).toBe(inUse0 + 1);
  });
});

describe('lazy policy (flush queue)', () => {
  it('unmap defers the flush: the IOTLB may still hit until the drain, then the page is unreachable', () => {
    const { unit, drv } = setup({}, { policy: 'lazy' });
    expect(drv.policy).toBe('lazy');
    drv.attach(SID, { did: 4 });
    const gpa = dataPage(unit, drv, 0x33);
    drv.map(SID, 0x20_0000, gpa, PAGE, R | W);
    expect(unit.dmaRead({ sid: SID }, 0x20_0000, 1)[0]).toBe(0x33); // fills the IOTLB
    const doorbells = drv.stats().doorbells;
    drv.unmap(SID, 0x20_0000, PAGE);
    expect(drv.stats().doorbells).toBe(doorbells);
    expect(drv.pendingFlushes).toBe(1);
    // Stale but allowed: the entry is still cached (this unit's IOTLB is large enough to keep it).
    expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBe(unit.ram.gpaToPa(gpa));
    expect(() => drv.map(SID, 0x20_0000, gpa, PAGE, R)).toThrow(/EBUSY/);
    const descs = queued(unit, drv, () => expect(drv.flushLazy()).toBe(1));
    expect(kinds(descs)).toEqual(['iotlb/g2', 'wait']); // DSI, as the trace's 0x400e2
    expect(descs[0]!.get('did')).toBe(4);
    expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBeLessThan(0);
    expect(drv.pendingFlushes).toBe(0);
    drv.map(SID, 0x20_0000, gpa, PAGE, R); // the IOVA is free again
  });

  it('a full flush queue is drained before the next entry goes in', () => {
    const { unit, drv } = setup({}, { policy: 'lazy', flushQueueSize: 4 });
    drv.attach(SID, { did: 4 });
    const gpa = dataPage(unit, drv, 0x44);
    for (let i = 0; i < 5; i++) {
      drv.map(SID, i * PAGE + 0x100_0000, gpa, PAGE, R);
      expect(unit.dmaRead({ sid: SID }, i * PAGE + 0x100_0000, 1)[0]).toBe(0x44);
    }
    for (let i = 0; i < 5; i++) drv.unmap(SID, i * PAGE + 0x100_0000, PAGE);
    expect(drv.stats().flushQueueDrains).toBe(1);
    expect(drv.pendingFlushes).toBe(1);
    for (let i = 0; i < 5; i++) expect(unit.translate({ sid: SID }, i * PAGE + 0x100_0000, R)).toBeLessThan(0);
  });

  it('table pages freed by a lazy unmap are released only by the drain', () => {
    const { unit, drv } = setup({}, { policy: 'lazy' });
    drv.attach(SID, { did: 4 });
    const gpa = dataPage(unit, drv);
    drv.map(SID, 0x1000, gpa, PAGE, R); // the first 512 GiB already have a table
    const inUse0 = drv.frames.inUse;
    drv.map(SID, 0x8000_0000, gpa, PAGE, R); // a new 1 GiB region: two new tables
    drv.unmap(SID, 0x8000_0000, PAGE);
    expect(drv.frames.inUse).toBe(inUse0 + 2);
    drv.flushLazy();
    expect(drv.frames.inUse).toBe(inUse0);
  });

  it('an ATS device gets a whole-device-TLB invalidation in the drain', () => {
    const { unit, drv } = setup({ deviceTlb: true }, { policy: 'lazy' });
    unit.addAtsDevice(SID);
    drv.attach(SID, { did: 4, ats: true });
    const gpa = dataPage(unit, drv, 0x66);
    drv.map(SID, 0x30_0000, gpa, PAGE, R);
    unit.dmaRead({ sid: SID }, 0x30_0000, 1);
    expect(unit.dmaRead({ sid: SID }, 0x30_0000, 1)[0]).toBe(0x66);
    expect(unit.stats().devTlbHits).toBeGreaterThan(0);
    drv.unmap(SID, 0x30_0000, PAGE);
    const descs = queued(unit, drv, () => drv.flushLazy());
    expect(kinds(descs)).toEqual(['iotlb/g2', 'wait', 'devtlb/g0', 'wait']);
    expect(descs[2]!.get('s')).toBe(1);
    expect(unit.translate({ sid: SID }, 0x30_0000, R)).toBeLessThan(0);
  });

  it('caching mode forces strict, as Linux ("IOMMU batching disallowed due to virtualization")', () => {
    const { unit, drv } = setup({ cachingMode: true }, { policy: 'lazy' });
    expect(drv.policy).toBe('strict');
    drv.attach(SID, { did: 4 });
    drv.map(SID, 0x20_0000, dataPage(unit, drv), PAGE, R);
    unit.dmaRead({ sid: SID }, 0x20_0000, 1);
    drv.unmap(SID, 0x20_0000, PAGE);
    expect(drv.pendingFlushes).toBe(0);
    expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBeLessThan(0);
  });
});

describe('invalidation queue errors (qi_check_fault)', () => {
  for (const [name, bad, iqei] of [
    ['an unknown type', { words: [0, 0, 0, 0] }, 3],
    ['a page-selective AM above MAMV', { type: DescType.Iotlb, fields: { g: 3, did: 4, am: 40 } }, 4],
  ] as const) {
    it(`${name}: IQE, IQH stays on it, earlier descriptors took effect; Linux's recovery resumes the queue`, () => {
      const { unit, drv } = setup({}, { policy: 'lazy' });
      drv.attach(SID, { did: 4 });
      const gpa = dataPage(unit, drv, 0x77);
      drv.map(SID, 0x20_0000, gpa, PAGE, R);
      drv.map(SID, 0x20_1000, gpa, PAGE, R);
      unit.dmaRead({ sid: SID }, 0x20_0000, 1);
      unit.dmaRead({ sid: SID }, 0x20_1000, 1);
      drv.unmap(SID, 0x20_0000, 2 * PAGE); // lazy: both still cached
      const q = drv.queue;
      const shift = q.wide ? 5 : 4;
      // A valid PSI of the first page, then the bad descriptor, then (by post) the wait.
      const psi = { type: DescType.Iotlb, fields: { g: 3, did: 4, addr: 0x20_0000, am: 0 } };
      const ticket = q.post([psi, bad]);
      expect(reg32(unit, VTD_REG.FSTS) & FSTS.IQE).not.toBe(0);
      expect(reg32(unit, VTD_REG.IQER) & IQER.IqeiMask).toBe(iqei);
      expect(reg32(unit, VTD_REG.IQH)).toBe(((ticket.index + 1) % q.entries) << shift);
      expect(q.status(ticket.waitIndex)).toBe(1); // QI_IN_USE: the wait did not run
      expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBeLessThan(0); // the PSI before it took effect
      expect(unit.translate({ sid: SID }, 0x20_1000, R)).toBeGreaterThanOrEqual(0); // still stale
      drv.readFaults();

      // Linux copies the wait over the bad slot, clears IQE (the unit resumes from IQH) and fails
      // the submission with EINVAL.
      expect(() => q.complete(ticket)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
      expect(reg32(unit, VTD_REG.FSTS) & FSTS.IQE).toBe(0);
      expect(reg32(unit, VTD_REG.IQH)).toBe(reg32(unit, VTD_REG.IQT));
      expect(q.free).toBe(q.entries);
      expect(drv.stats().queueErrors).toBe(1);

      // The queue works again.
      expect(drv.flushLazy()).toBe(1);
      expect(unit.translate({ sid: SID }, 0x20_1000, R)).toBeLessThan(0);
    });
  }

  it('a wait that never completes is reported after the poll limit (EIO)', () => {
    const { unit, drv } = setup({}, { pollLimit: 5 });
    // Disable QI behind the driver's back: the doorbell is ignored and the status never written.
    unit.regs.reset();
    expect(() => drv.queue.submit([{ type: DescType.Iotlb, fields: { g: 1 } }])).toThrow(/EIO/);
  });
});

describe('random map / unmap / DMA sequences (strict) agree with a page model', () => {
  for (const mode of ['legacy', 'scalable', 'scalable-fl'] as const) {
    it(`${mode}`, () => {
      const o = modeOpts(mode);
      const { unit, drv } = setup({ ...o.unit, mamv: 4 }, { ...o.drv, policy: 'strict' });
      drv.attach(SID, { did: 9 });
      const PAGES = 48;
      const base = 0x20_0000 - 16 * PAGE; // the window straddles a 2 MiB table boundary
      const data = Array.from({ length: 16 }, () => dataPage(unit, drv));
      const op = fc.oneof(
        fc.record({
          k: fc.constant('map' as const),
          at: fc.nat(PAGES - 1),
          n: fc.integer({ min: 1, max: 20 }),
          d: fc.nat(15),
        }),
        fc.record({ k: fc.constant('unmap' as const), at: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 20 }) }),
        fc.record({ k: fc.constant('dma' as const), at: fc.nat(PAGES - 1), write: fc.boolean() }),
        // A read of every page: fills the IOTLB, so a later unmap must invalidate all of it.
        fc.record({ k: fc.constant('sweep' as const) }),
      );
      let stamp = 0;
      const model = new Map<number, number>(); // page → GPA
      /** A DMA to `page` hits its mapped data, or faults with one fault record. */
      const dma = (page: number, write: boolean): void => {
        const iova = base + page * PAGE + 64;
        const gpa = model.get(page);
        const v = ++stamp & 0xff;
        if (gpa === undefined) {
          const before = unit.stats().faultsRecorded;
          const access = write
            ? () => unit.dmaWrite({ sid: SID }, iova, new Uint8Array([v]))
            : () => unit.dmaRead({ sid: SID }, iova, 1);
          expect(faults(access)).toBe(true);
          expect(unit.stats().faultsRecorded).toBe(before + 1);
          expect(drv.readFaults().map((r) => [r.address, r.write])).toEqual([[iova - 64, write]]);
        } else if (write) {
          unit.dmaWrite({ sid: SID }, iova, new Uint8Array([v]));
          expect(unit.guest.u8[gpa + 64]).toBe(v);
        } else {
          unit.guest.u8[gpa + 64] = v;
          expect(unit.dmaRead({ sid: SID }, iova, 1)[0]).toBe(v);
        }
      };
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
          drv.unmap(SID, base, PAGES * PAGE);
          drv.readFaults();
          model.clear();
          for (const o of ops) {
            if (o.k === 'map') {
              const n = Math.min(o.n, PAGES - o.at);
              let free = true;
              for (let p = o.at; p < o.at + n; p++) free &&= !model.has(p);
              if (!free) {
                expect(() => drv.map(SID, base + o.at * PAGE, data[o.d]!, PAGE * n, R | W)).toThrow(/EEXIST/);
                continue;
              }
              // Page by page, so the GPAs need not be contiguous.
              for (let p = 0; p < n; p++) {
                const gpa = data[(o.d + p) % 16]!;
                drv.map(SID, base + (o.at + p) * PAGE, gpa, PAGE, R | W);
                model.set(o.at + p, gpa);
              }
            } else if (o.k === 'unmap') {
              const n = Math.min(o.n, PAGES - o.at);
              let mapped = 0;
              for (let p = o.at; p < o.at + n; p++) if (model.delete(p)) mapped += PAGE;
              expect(drv.unmap(SID, base + o.at * PAGE, n * PAGE)).toBe(mapped);
            } else if (o.k === 'dma') {
              dma(o.at, o.write);
            } else {
              for (let p = 0; p < PAGES; p++) dma(p, false);
            }
          }
        }),
        { numRuns: 50 },
      );
    });
  }
});

describe('first-level domains (scalable mode with ECAP.FLTS)', () => {
  const fl = (unit: VtdIommuOptions = {}, drv: VtdGuestDriverOptions = {}) =>
    setup({ scalableMode: true, firstStage: true, ...unit }, drv);

  it("are Linux's default when the unit has FLTS, and refused without it", () => {
    expect(fl().drv.firstLevel).toBe(true);
    expect(fl({}, { firstLevel: false }).drv.firstLevel).toBe(false);
    expect(setup({ scalableMode: true }).drv.firstLevel).toBe(false);
    const fd = Iommufd.open({ memoryBytes: 64 * MIB });
    open.push(fd);
    const drv = new VtdGuestDriver(fd.vtdCreate({ guestRamBytes: 8 * MIB, scalableMode: true }), { firstLevel: true });
    expect(() => drv.probe()).toThrow(/EOPNOTSUPP/);
  });

  it('the unit sets A, and D on a write, in the guest first-stage entry', () => {
    const { unit, drv } = fl();
    drv.attach(SID, { did: 2 });
    const gpa = dataPage(unit, drv, 9);
    drv.map(SID, 0x30_0000, gpa, PAGE, R | W);
    // The leaf entry: walk the 4-level table the driver built (GPA = guest memory offset).
    const leafAt = (): number => {
      let t = firstStageRoot(unit);
      for (let level = 0; level < 3; level++) {
        const at = t / 4 + (Math.floor(0x30_0000 / 2 ** (39 - 9 * level)) % 512) * 2;
        t = (unit.guest.i32[at]! & ~0xfff) >>> 0;
      }
      return t / 4 + (Math.floor(0x30_0000 / PAGE) % 512) * 2;
    };
    const A = 1 << 5;
    const D = 1 << 6;
    // Linux maps with A (and D when writable) already set; clear them as a dirty-tracking guest would.
    expect(unit.guest.i32[leafAt()]! & (A | D)).toBe(A | D);
    const leaf = leafAt();
    unit.guest.i32[leaf] = unit.guest.i32[leaf]! & ~(A | D);
    expect(unit.guest.i32[leafAt()]! & (A | D)).toBe(0);
    unit.dmaRead({ sid: SID }, 0x30_0000, 1);
    expect(unit.guest.i32[leafAt()]! & (A | D)).toBe(A);
    unit.dmaWrite({ sid: SID }, 0x30_0010, new Uint8Array([1]));
    expect(unit.guest.i32[leafAt()]! & (A | D)).toBe(A | D);
  });

  it('lazy: the drain is one PASID-selective PASID-based IOTLB invalidation', () => {
    const { unit, drv } = fl({}, { policy: 'lazy' });
    drv.attach(SID, { did: 4 });
    const gpa = dataPage(unit, drv, 0x33);
    drv.map(SID, 0x20_0000, gpa, PAGE, R);
    expect(unit.dmaRead({ sid: SID }, 0x20_0000, 1)[0]).toBe(0x33);
    drv.unmap(SID, 0x20_0000, PAGE);
    expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBe(unit.ram.gpaToPa(gpa)); // stale until the drain
    const descs = queued(unit, drv, () => drv.flushLazy());
    expect(kinds(descs)).toEqual(['piotlb/g2', 'wait']);
    expect([descs[0]!.get('did'), descs[0]!.get('pasid')]).toEqual([4, 0]);
    expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBeLessThan(0);
  });

  it('a mask above CAP.MAMV falls back to the PASID-selective form (the unit would reject it)', () => {
    const { unit, drv } = fl({ mamv: 2 });
    drv.attach(SID, { did: 3 });
    drv.map(SID, 0x10_0000, dataPage(unit, drv, 7), 8 * PAGE, R);
    expect(unit.dmaRead({ sid: SID }, 0x10_7000, 1)[0]).toBe(0);
    const descs = queued(unit, drv, () => drv.unmap(SID, 0x10_0000, 8 * PAGE));
    expect(kinds(descs)).toEqual(['piotlb/g2', 'wait']);
    expect(unit.translate({ sid: SID }, 0x10_7000, R)).toBeLessThan(0);
    expect(unit.stats().queueErrors).toBe(0);
  });
});

/** The first-stage root of the RID_PASID entry of SID (context entry → PASID directory → entry). */
function firstStageRoot(unit: VtdIommu): number {
  const i32 = unit.guest.i32;
  const rta = Number(BigInt(unit.mmioRead(VTD_REG.RTADDR, 8)) & ~0xfffn);
  const bus = SID >>> 8;
  const devfn = SID & 0xff;
  const lctp = (i32[(rta + bus * 16) / 4]! & ~0xfff) >>> 0;
  const ce = lctp + (devfn & 127) * 32;
  const dir = (i32[ce / 4]! & ~0xfff) >>> 0;
  const table = (i32[dir / 4]! & ~0xfff) >>> 0;
  // PASID entry 0: FLPTPTR in qword 2 (word 4) bits 63:12.
  return (i32[table / 4 + 4]! & ~0xfff) >>> 0;
}
