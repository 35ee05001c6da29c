import { describe, expect, it } from 'vitest';
import { FrameAllocator, PhysMemory } from '../../src/memory/index.js';
import {
  Access,
  FaultReason,
  MOCK_APERTURE_START,
  MOCK_DESC,
  MockPageTable,
  mockWalk,
  Prot,
  TranslateFault,
  WalkFault,
} from '../../src/pgtable/index.js';
import { FaultInjector } from '../../src/util/fail-nth.js';

const MiB = 2 ** 20;

function setup(bytes = 8 * MiB): { m: PhysMemory; a: FrameAllocator; pt: MockPageTable; f: WalkFault } {
  const m = new PhysMemory(bytes);
  const a = new FrameAllocator(m);
  return { m, a, pt: new MockPageTable(m, a), f: new WalkFault() };
}

/** The 64-bit descriptor at entry `i` of the table at `tablePa`, as [lo, hi]. */
function entry(m: PhysMemory, tablePa: number, i: number): [number, number] {
  return [m.i32[tablePa / 4 + i * 2]!, m.i32[tablePa / 4 + i * 2 + 1]!];
}

describe('mock format', () => {
  it('encodes a 2 KiB page as root table -> L1 table -> L0 page with V|PAGE|R|W and the address in bits 31:11', () => {
    const { m, pt } = setup();
    const iova = MOCK_APERTURE_START + 3 * 2048; // bits 30:29 = 0, 28:20 = 16, 19:11 = 3
    pt.map(iova, 2048, () => 0x5800, Prot.Read | Prot.Write, true);
    const [lo2, hi2] = entry(m, pt.rootPa, 0);
    expect(lo2 & 0x7ff).toBe(MOCK_DESC.Valid | MOCK_DESC.Table);
    expect(hi2).toBe(0);
    const l1 = (lo2 & ~0x7ff) >>> 0;
    const [lo1] = entry(m, l1, 16);
    expect(lo1 & 0x7ff).toBe(MOCK_DESC.Valid | MOCK_DESC.Table);
    const [lo0, hi0] = entry(m, (lo1 & ~0x7ff) >>> 0, 3);
    expect(lo0).toBe(0x5800 | 0b1111); // address bits 31:11 | V | PAGE | R | W
    expect(hi0).toBe(0);
  });

  it('encodes a 1 MiB block at level 1 with TABLE clear, only when IOVA and PA are aligned and contiguous', () => {
    const { m, pt } = setup();
    const iova = MOCK_APERTURE_START + MiB;
    pt.map(iova, MiB, (off) => 2 * MiB + off, Prot.Read, true);
    const l1 = (entry(m, pt.rootPa, 0)[0] & ~0x7ff) >>> 0;
    const [lo1, hi1] = entry(m, l1, 17);
    expect(lo1).toBe(2 * MiB + (MOCK_DESC.Valid | MOCK_DESC.Read));
    expect(hi1).toBe(0);
    // The same range with huge pages off is 512 pages under a table.
    const other = setup();
    other.pt.map(iova, MiB, (off) => 2 * MiB + off, Prot.Read, false);
    const l1b = (entry(other.m, other.pt.rootPa, 0)[0] & ~0x7ff) >>> 0;
    expect(entry(other.m, l1b, 17)[0] & 0x7ff).toBe(MOCK_DESC.Valid | MOCK_DESC.Table);
    // A physical run that is not contiguous cannot be a block either.
    const third = setup();
    third.pt.map(iova, MiB, (off) => (off < MiB / 2 ? 2 * MiB + off : 5 * MiB + off), Prot.Read, true);
    const l1c = (entry(third.m, third.pt.rootPa, 0)[0] & ~0x7ff) >>> 0;
    expect(entry(third.m, l1c, 17)[0] & MOCK_DESC.Table).toBe(MOCK_DESC.Table);
  });

  it('walks pages and blocks to the right byte', () => {
    const { m, pt, f } = setup();
    const base = MOCK_APERTURE_START;
    pt.map(base, 2048, () => 0x10000, Prot.Read, true);
    pt.map(base + MiB, MiB, (off) => 3 * MiB + off, Prot.Read, true);
    expect(mockWalk(m.i32, pt.rootPa, base + 5, Access.Read, f)).toBe(0x10005);
    expect(mockWalk(m.i32, pt.rootPa, base + MiB + 0x12345, Access.Read, f)).toBe(3 * MiB + 0x12345);
  });

  it('reports each fault kind with its level and reason', () => {
    const { m, pt, f } = setup();
    const base = MOCK_APERTURE_START;
    pt.map(base, 2048, () => 0x10000, Prot.Read, true);
    pt.map(base + MiB, MiB, (off) => 3 * MiB + off, Prot.Write, true);
    expect(mockWalk(m.i32, pt.rootPa, 0x1000, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[1], f.words[2], f.iova]).toEqual([2, FaultReason.Aperture, 0x1000]);
    expect(mockWalk(m.i32, pt.rootPa, 2 ** 30, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[1], f.words[2]]).toEqual([2, FaultReason.NotPresent]);
    expect(mockWalk(m.i32, pt.rootPa, base + 2 * MiB, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[1], f.words[2]]).toEqual([1, FaultReason.NotPresent]);
    expect(mockWalk(m.i32, pt.rootPa, base + 2048, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[1], f.words[2]]).toEqual([0, FaultReason.NotPresent]);
    expect(mockWalk(m.i32, pt.rootPa, base, Access.Write, f)).toBe(TranslateFault.Permission);
    expect([f.words[1], f.words[2]]).toEqual([0, FaultReason.WriteDenied]);
    expect(mockWalk(m.i32, pt.rootPa, base + MiB, Access.Read, f)).toBe(TranslateFault.Permission);
    expect([f.words[1], f.words[2]]).toEqual([1, FaultReason.ReadDenied]);
    expect(mockWalk(m.i32, pt.rootPa, base + MiB, Access.Exec, f)).toBe(TranslateFault.Permission);
  });

  it('unmap clears what it covers, reports the bytes, and retires emptied tables', () => {
    const { pt, a, m, f } = setup();
    const base = MOCK_APERTURE_START;
    pt.map(base, 4 * 2048, (off) => 0x40000 + off, Prot.Read, true);
    expect(a.inUse).toBe(3); // root, L1, L0
    expect(pt.unmap(base + 2048, 2048)).toBe(2048);
    expect(mockWalk(m.i32, pt.rootPa, base + 2048, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(mockWalk(m.i32, pt.rootPa, base, Access.Read, f)).toBe(0x40000);
    expect(a.inUse).toBe(3);
    expect(pt.unmap(base, 4 * 2048)).toBe(3 * 2048);
    expect(a.inUse).toBe(1); // only the root
    expect(pt.tableFrames()).toBe(1);
    pt.free();
    expect(a.inUse).toBe(0);
  });

  it('a map that runs out of memory half-way leaves nothing mapped and no table allocated', () => {
    const { pt, a, m, f } = setup();
    const faults = new FaultInjector();
    a.faults = faults;
    const base = MOCK_APERTURE_START;
    faults.arm(3); // root's L1 is step 1, the first L0 step 2, the second L0 step 3
    expect(() => pt.map(base, 3 * MiB, (off) => 0x100800 + off, Prot.Read, false)).toThrow(
      expect.objectContaining({ errno: 'ENOMEM' }),
    );
    expect(mockWalk(m.i32, pt.rootPa, base, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(a.inUse).toBe(1);
  });

  it('a map that fails on its first entry leaves no empty table behind', () => {
    const { pt, a } = setup();
    const faults = new FaultInjector();
    a.faults = faults;
    faults.arm(2); // the L1 table is allocated, the L0 table is not
    expect(() => pt.map(MOCK_APERTURE_START, 2048, () => 0x800, Prot.Read, true)).toThrow(
      expect.objectContaining({ errno: 'ENOMEM' }),
    );
    expect(a.inUse).toBe(1);
    expect(pt.tableFrames()).toBe(1);
  });

  it('refuses to map over a live entry (break-before-make)', () => {
    const { pt } = setup();
    pt.map(MOCK_APERTURE_START, 2048, () => 0, Prot.Read, true);
    expect(() => pt.map(MOCK_APERTURE_START, 2048, () => 0x800, Prot.Read, true)).toThrow(/live IOVA/);
  });
});
