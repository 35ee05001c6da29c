// The QEMU-style VT-d unit (src/baseline/vtd-unit.ts) as a guest drives it: the IOTLB looked up by
// source id before the context entry, the context cache's generation (a global invalidation
// makes every device fetch again, a device-selective one only the device), IOTLB invalidations
// through the queue, and the Linux driver model's strict unmap.
import { describe, expect, it } from 'vitest';
import { QemuVtdUnit } from '../../src/baseline/index.js';
import { VtdGuestDriver } from '../../src/guest/vtd/index.js';
import { Access } from '../../src/pgtable/index.js';
import { VtdTraceGuest } from '../../src/replay/vtd-guest.js';
import { DescType, encodeDescriptor, GRAN, type DescriptorFields } from '../../src/vendor/vtd/descriptors.js';

const RAM = 16 * 2 ** 20;
const IOVA = 0xffff_8000;
const IOVA2 = 0xffff_9000;

function rig() {
  const unit = new QemuVtdUnit({ guestRamBytes: RAM, addressWidth: 39 });
  const guest = new VtdTraceGuest(unit, false);
  const page = (): number => guest.driver.frames.alloc() * 4096;
  const words = new Uint32Array(8);
  /** Queues `descs` and a status-writing wait, rings once; returns the outcome. */
  const ring = (...descs: [number, DescriptorFields][]) => {
    for (const [type, f] of [...descs, [DescType.Wait, { sw: 1, statusData: 1 }] as [number, DescriptorFields]]) {
      encodeDescriptor(type, f, words, 0, false);
      guest.put(words, 0);
    }
    return { ...guest.ring() };
  };
  const xlate = (sid: number, iova: number, access: number = Access.Read) => unit.translate({ sid }, iova, access);
  return { unit, guest, page, ring, xlate, pa: (gpa: number) => unit.ram.gpaToPa(gpa) };
}

describe('QEMU-style VT-d', () => {
  it('refuses what QEMU 7.2 does not implement', () => {
    expect(() => new QemuVtdUnit({ scalableMode: true, firstStage: true })).toThrow(/firstStage: the QEMU 7.2 model/);
    expect(() => new QemuVtdUnit({ scalableMode: true, pasidWidth: 20 })).toThrow(RangeError);
  });

  it('a context entry stays cached until its generation moves; the IOTLB, keyed by source id, until an IOTLB invalidation', () => {
    const { unit, guest, page, ring, xlate, pa } = rig();
    const [a, b, c] = [page(), page(), page()];
    const d1 = guest.newDomain();
    d1.table.map(IOVA, 4096, (off) => a + off, 3, false);
    guest.attach(0x10, d1, 4);
    expect(xlate(0x10, IOVA + 8)).toBe(pa(a + 8));
    // The guest points the device at another domain without invalidating anything.
    const d2 = guest.newDomain();
    d2.table.map(IOVA, 4096, (off) => b + off, 3, false);
    d2.table.map(IOVA2, 4096, (off) => c + off, 3, false);
    guest.attach(0x10, d2, 5);
    expect(xlate(0x10, IOVA2)).toBeLessThan(0); // the cached context still names the old table
    expect(unit.stats().context.gen).toBe(1);
    // A global context-cache invalidation: generation 2, the device fetches its entry again.
    expect(ring([DescType.ContextCache, { g: GRAN.Global }])).toEqual({ rejected: 0, lostWaits: 0 });
    expect(unit.stats().context.gen).toBe(2);
    expect(xlate(0x10, IOVA2)).toBe(pa(c));
    // The IOTLB is looked up by source id before the context: the old page is still served.
    expect(xlate(0x10, IOVA + 8)).toBe(pa(a + 8));
    ring([DescType.Iotlb, { g: GRAN.Domain, did: 4 }]);
    expect(xlate(0x10, IOVA + 8)).toBe(pa(b + 8));
    unit.close();
  });

  it('a device-selective context invalidation makes only that device fetch again, by a scan of every device', () => {
    const { unit, guest, page, ring, xlate } = rig();
    const p = page();
    for (const sid of [0x10, 0x18]) {
      const d = guest.newDomain();
      d.table.map(IOVA, 4096, (off) => p + off, 3, false);
      guest.attach(sid, d, sid);
    }
    xlate(0x10, IOVA);
    xlate(0x18, IOVA);
    // The IOTLB emptied too, so that both translations consult the context cache.
    ring([DescType.Iotlb, { g: GRAN.Global }], [DescType.ContextCache, { g: GRAN.Selective, sid: 0x10 }]);
    const before = unit.stats().context;
    xlate(0x10, IOVA);
    xlate(0x18, IOVA);
    const after = unit.stats().context;
    expect(after.misses - before.misses).toBe(1);
    expect(after.hits - before.hits).toBe(1);
    expect(after.scans).toBe(1);
    expect(after.scannedEntries).toBe(2);
    expect(after.gen).toBe(1);
    unit.close();
  });

  it('a page-selective invalidation through the queue drops the page: the next translation walks the new table', () => {
    const { unit, guest, page, ring, xlate, pa } = rig();
    const [a, b] = [page(), page()];
    const d = guest.newDomain();
    d.table.map(IOVA, 4096, (off) => a + off, 3, false);
    guest.attach(0x10, d, 4);
    expect(xlate(0x10, IOVA, Access.Write)).toBe(pa(a));
    d.table.unmap(IOVA, 4096);
    d.table.map(IOVA, 4096, (off) => b + off, 1, false);
    expect(xlate(0x10, IOVA)).toBe(pa(a));
    ring([DescType.Iotlb, { g: GRAN.Selective, did: 4, addr: IOVA, am: 0 }]);
    expect(xlate(0x10, IOVA)).toBe(pa(b));
    expect(xlate(0x10, IOVA, Access.Write)).toBeLessThan(0); // the new page is read-only
    expect(unit.stats()).toMatchObject({ faults: 1, faultsRecorded: 1, iotlb: { scans: 1, removed: 1 } });
    unit.close();
  });

  for (const mode of ['legacy', 'scalable'] as const) {
    it(`the Linux driver model brings it up in ${mode} mode, maps, and its strict unmap (PSI + wait) takes the page away`, () => {
      const unit = new QemuVtdUnit({ guestRamBytes: RAM, addressWidth: 39, scalableMode: mode === 'scalable' });
      const driver = new VtdGuestDriver(unit, { mode, policy: 'strict' });
      driver.probe();
      driver.attach(0x10, { did: 4 });
      const gpa = driver.frames.alloc() * 4096;
      driver.map(0x10, 0x10_0000, gpa, 4096, 3);
      expect(unit.translate({ sid: 0x10 }, 0x10_0123, Access.Read)).toBe(unit.ram.gpaToPa(gpa + 0x123));
      expect(unit.translate({ sid: 0x10 }, 0x10_0456, Access.Write)).toBe(unit.ram.gpaToPa(gpa + 0x456));
      expect(driver.unmap(0x10, 0x10_0000, 4096)).toBe(4096);
      expect(unit.translate({ sid: 0x10 }, 0x10_0123, Access.Read)).toBeLessThan(0);
      const s = unit.stats();
      expect(s.queue.queueErrors).toBe(0);
      expect(s.queue.waits).toBe(driver.stats().waits);
      expect(s.iotlb).toMatchObject({ hits: 1, removed: 1 });
      unit.close();
    });
  }
});
