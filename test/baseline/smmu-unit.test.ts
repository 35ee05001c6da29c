// The QEMU-style SMMUv3 (src/baseline/smmu-unit.ts) as a guest drives it: the configuration
// cache that only CFGI_* invalidates, the IOTLB that only TLBI_* invalidates (stale entries are
// served until then, as QEMU serves them), and the Linux driver model's strict unmap.
import { describe, expect, it } from 'vitest';
import { QemuSmmuUnit } from '../../src/baseline/index.js';
import { SmmuGuestDriver } from '../../src/guest/smmuv3/index.js';
import { Access } from '../../src/pgtable/index.js';
import { SmmuTraceGuest } from '../../src/replay/smmu-guest.js';
import { CFGI_ALL_RANGE, encodeCommand, Opcode, SyncCs, type CommandFields } from '../../src/vendor/smmuv3/commands.js';

const RAM = 16 * 2 ** 20;
const IOVA = 0xffff_8000;
const IOVA2 = 0xffff_9000;

/** A unit brought up by the replay's guest, and a page allocator's data pages. */
function rig() {
  const unit = new QemuSmmuUnit({ guestRamBytes: RAM });
  const guest = new SmmuTraceGuest(unit);
  const page = (): number => guest.driver.frames.alloc() * 4096;
  /** Issues `cmds` and a CMD_SYNC in one doorbell; returns the issue outcome. */
  const issue = (...cmds: [number, CommandFields][]) => {
    const words = new Uint32Array((cmds.length + 1) * 4);
    cmds.forEach(([op, f], i) => encodeCommand(op, f, words, i * 4));
    encodeCommand(Opcode.Sync, { cs: SyncCs.Sev }, words, cmds.length * 4);
    return { ...guest.issue(words, cmds.length + 1) };
  };
  const xlate = (sid: number, iova: number, access: number = Access.Read) => unit.translate({ sid }, iova, access);
  return { unit, guest, page, issue, xlate, pa: (gpa: number) => unit.ram.gpaToPa(gpa) };
}

describe('QEMU-style SMMUv3', () => {
  it('has QEMU 7.2 ID registers by default, and refuses what the model lacks', () => {
    const unit = new QemuSmmuUnit({ guestRamBytes: RAM });
    expect(unit.regs.options).toMatchObject({
      stage1: true,
      stage2: false,
      ril: true,
      ats: false,
      pri: false,
      oas: 44,
    });
    expect(() => new QemuSmmuUnit({ stage2: true })).toThrow(/stage2: the QEMU 7.2 model implements stage 1/);
    expect(() => new QemuSmmuUnit({ ats: true })).toThrow(RangeError);
    unit.close();
  });

  it('a configuration stays cached until CFGI_STE: a new CD and table are not seen before it', () => {
    const { unit, guest, page, issue, xlate, pa } = rig();
    const [a, b, c] = [page(), page(), page()];
    const d1 = guest.install(0x8, 1);
    d1.table.map(IOVA, 4096, (off) => a + off, 3, false);
    expect(xlate(0x8, IOVA + 0x10)).toBe(pa(a + 0x10));
    // The guest moves the device to a new domain (ASID 2) without invalidating.
    const d2 = guest.install(0x8, 2);
    d2.table.map(IOVA, 4096, (off) => b + off, 3, false);
    d2.table.map(IOVA2, 4096, (off) => c + off, 3, false);
    expect(xlate(0x8, IOVA + 0x10)).toBe(pa(a + 0x10)); // the old config, and its IOTLB entry
    expect(xlate(0x8, IOVA2)).toBeLessThan(0); // walks the old table, where IOVA2 is not mapped
    expect(issue([Opcode.CfgiSte, { sid: 0x8, leaf: 1 }]).drained).toBe(true);
    expect(xlate(0x8, IOVA + 0x10)).toBe(pa(b + 0x10));
    expect(xlate(0x8, IOVA2)).toBe(pa(c));
    // Invalidations: the probe's CFGI_ALL, and this CFGI_STE.
    expect(unit.stats().config).toMatchObject({ entries: 1, invalidations: 2, misses: 2 });
    unit.close();
  });

  it('CFGI_STE_RANGE scans the configuration cache and drops exactly the StreamIDs of its aligned block', () => {
    const { unit, guest, page, issue, xlate } = rig();
    const p = page();
    for (const sid of [0x8, 0x9, 0x10]) guest.install(sid, sid).table.map(IOVA, 4096, (off) => p + off, 3, false);
    for (const sid of [0x8, 0x9, 0x10]) xlate(sid, IOVA);
    const before = unit.stats().config;
    // Range 0: the aligned pair 0x8..0x9.
    issue([Opcode.CfgiSteRange, { sid: 0x9, range: 0 }]);
    for (const sid of [0x8, 0x9, 0x10]) xlate(sid, IOVA);
    const after = unit.stats().config;
    expect(after.misses - before.misses).toBe(2);
    expect(after.scans - before.scans).toBe(1);
    expect(after.scannedEntries - before.scannedEntries).toBe(3);
    // CFGI_ALL (range 31): every device.
    issue([Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE }]);
    for (const sid of [0x8, 0x9, 0x10]) xlate(sid, IOVA);
    expect(unit.stats().config.misses - after.misses).toBe(3);
    unit.close();
  });

  it('a stale IOTLB entry is served until TLBI_NH_VA, which one exact key removes', () => {
    const { unit, guest, page, issue, xlate, pa } = rig();
    const [a, b] = [page(), page()];
    const d = guest.install(0x8, 1);
    d.table.map(IOVA, 4096, (off) => a + off, 3, false);
    expect(xlate(0x8, IOVA, Access.Write)).toBe(pa(a));
    d.table.unmap(IOVA, 4096);
    d.table.map(IOVA, 4096, (off) => b + off, 3, false);
    expect(xlate(0x8, IOVA)).toBe(pa(a));
    issue([Opcode.TlbiNhVa, { asid: 1, addr: IOVA, tg: 1, ttl: 3, leaf: 1 }]);
    expect(xlate(0x8, IOVA)).toBe(pa(b));
    expect(unit.stats().iotlb).toMatchObject({ exactRemovals: 1, scans: 0 });
    // TLBI_NH_ASID: a scan.
    issue([Opcode.TlbiNhAsid, { asid: 1 }]);
    expect(unit.stats().iotlb).toMatchObject({ scans: 1, entries: 0 });
    unit.close();
  });

  it('a write through an entry a read filled walks again and gets the walk’s answer', () => {
    const { unit, guest, page, xlate, pa } = rig();
    const [a, b] = [page(), page()];
    const d = guest.install(0x8, 1);
    d.table.map(IOVA, 4096, (off) => a + off, 1, false);
    d.table.map(IOVA2, 4096, (off) => b + off, 3, false);
    expect(xlate(0x8, IOVA, Access.Read)).toBe(pa(a));
    expect(xlate(0x8, IOVA, Access.Write)).toBeLessThan(0); // read-only page: a permission fault
    expect(xlate(0x8, IOVA2, Access.Read)).toBe(pa(b));
    expect(xlate(0x8, IOVA2, Access.Write)).toBe(pa(b));
    expect(xlate(0x8, IOVA2, Access.Write)).toBe(pa(b));
    expect(unit.stats()).toMatchObject({ faults: 1, iotlb: { inserts: 3 } });
    unit.close();
  });

  it('the Linux driver model brings it up, maps, and its strict unmap (TLBI_NH_VA + CMD_SYNC) takes the page away', () => {
    const unit = new QemuSmmuUnit({ guestRamBytes: RAM });
    const driver = new SmmuGuestDriver(unit, { policy: 'strict' });
    driver.probe();
    driver.attachDevice(0x8);
    const gpa = driver.frames.alloc() * 4096;
    driver.map(0x8, 0x10_0000, gpa, 4096, 3);
    expect(unit.translate({ sid: 0x8 }, 0x10_0123, Access.Read)).toBe(unit.ram.gpaToPa(gpa + 0x123));
    expect(driver.unmap(0x8, 0x10_0000, 4096)).toBe(4096);
    expect(unit.translate({ sid: 0x8 }, 0x10_0123, Access.Read)).toBeLessThan(0);
    const s = unit.stats();
    expect(s.cmdq.errors).toBe(0);
    expect(s.cmdq.syncs).toBeGreaterThan(0);
    expect(s.iotlb.removed).toBeGreaterThanOrEqual(1);
    unit.close();
  });
});
