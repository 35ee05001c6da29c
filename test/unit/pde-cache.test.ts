import { describe, expect, it } from 'vitest';
import { Access, Iommufd, TranslateFault } from '../../src/index.js';
import { X86_LO } from '../../src/pgtable/index.js';

/*
 * The PDE cache of VT-d hardware-nested walks (src/translate/pde-cache.ts): a walk resumes at
 * the stage-1 leaf table of a region it has walked before, and every invalidation the IOTLB sees
 * for that region (the guest's, or a nest parent's change) drops the cached table.
 *
 * Guest-physical layout: L0 0x1000, L1 0x2000, L2 0x3000, the leaf tables LA 0x4000 and LB
 * 0x5000 (the region at IOVA is LA's until the guest repoints it), data pages from 0x10000.
 * Guest RAM is mapped one 4 KiB area per page so that the VMM can move any page.
 */
const GUEST_PAGES = 64;
const L0 = 0x1000;
const L1 = 0x2000;
const L2 = 0x3000;
const LA = 0x4000;
const LB = 0x5000;
const DATA = 0x10000;
const IOVA = 0x4000_0000;
const TABLE = X86_LO.P | X86_LO.RW | X86_LO.US | X86_LO.A;
const LEAF = TABLE | X86_LO.D;

function rig(nesting: 'hardware' | 'software' = 'hardware') {
  const fd = Iommufd.open({ memoryBytes: 32 * 2 ** 20 });
  const ioas = fd.ioasAlloc();
  const va = fd.memory.mmap(BigInt(GUEST_PAGES * 4096));
  for (let p = 0; p < GUEST_PAGES; p++)
    fd.ioasMap(ioas, {
      userVa: va + BigInt(p * 4096),
      length: 4096n,
      iova: BigInt(p * 4096),
      flags: { fixedIova: true },
    });
  const dev = fd.deviceBind({ iommu: 'vtd' });
  const parent = fd.hwptAlloc({ devId: dev, ptId: ioas, flags: { nestParent: true }, nesting });
  const hwpt = fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'vtd-s1', data: { pgtblAddr: L0, addrWidth: 48 } });
  fd.deviceAttach(dev, hwpt);
  const guest = fd.memory.window(va, BigInt(GUEST_PAGES * 4096));
  // Each data page starts with its number, so a DMA read shows where a translation landed.
  for (let p = 0; p < 32; p++) guest.write32(DATA + p * 4096, 0xd000 + p);
  const set = (gpa: number, lo: number): void => guest.write64(gpa, lo, 0);
  set(L0 + (Math.floor(IOVA / 2 ** 39) % 512) * 8, L1 | TABLE);
  set(L1 + (Math.floor(IOVA / 2 ** 30) % 512) * 8, L2 | TABLE);
  set(L2 + (Math.floor(IOVA / 2 ** 21) % 512) * 8, LA | TABLE);
  const leaf = (table: number, page: number, dataPage: number): void =>
    set(table + page * 8, (DATA + dataPage * 4096) | LEAF);
  const translate = (page: number, access: number = Access.Read): number =>
    fd.translate(dev, IOVA + page * 4096, access);
  // The data page a DMA read of IOVA page `page` lands in.
  const landed = (page: number): number =>
    new DataView(fd.dmaRead(dev, IOVA + page * 4096, 4).buffer).getUint32(0, true) - 0xd000;
  return { fd, ioas, va, dev, hwpt, set, leaf, translate, landed };
}

describe('PDE cache (VT-d hardware nesting)', () => {
  it('a second page of a walked region resumes at its leaf table', async () => {
    const r = rig();
    for (let p = 0; p < 4; p++) r.leaf(LA, p, p);
    expect(r.translate(0)).toBeGreaterThan(0);
    const before = r.fd.cacheStats();
    expect(r.translate(1)).toBeGreaterThan(0); // an IOTLB miss: walks, from the cached leaf table
    const after = r.fd.cacheStats();
    expect(r.landed(1)).toBe(1);
    expect(after.pdeHits - before.pdeHits).toBe(1);
    expect(after.misses - before.misses).toBe(1);
    await r.fd.close();
  });

  it('a fault at the leaf records the region too: the retry after the guest maps the page resumes there', async () => {
    const r = rig();
    expect(r.translate(5)).toBe(TranslateFault.NotMapped);
    const before = r.fd.cacheStats();
    r.leaf(LA, 5, 9);
    expect(r.translate(5)).toBeGreaterThan(0);
    expect(r.fd.cacheStats().pdeHits - before.pdeHits).toBe(1);
    expect(r.landed(5)).toBe(9);
    await r.fd.close();
  });

  it("the guest repoints the region's table and invalidates one page: the next walk reads the new table", async () => {
    const r = rig();
    for (let p = 0; p < 4; p++) r.leaf(LA, p, p);
    for (let p = 0; p < 4; p++) r.leaf(LB, p, 10 + p);
    expect(r.landed(0)).toBe(0);
    r.set(L2 + (Math.floor(IOVA / 2 ** 21) % 512) * 8, LB | TABLE);
    r.fd.hwptInvalidate(r.hwpt, { dataType: 'vtd-s1', entries: [{ addr: IOVA, npages: 1 }] });
    expect(r.landed(3)).toBe(13); // never cached in the IOTLB: a walk, which must not use LA
    await r.fd.close();
  });

  it('without an invalidation the cached table stays in use, as hardware paging-structure caches do', async () => {
    const r = rig();
    for (let p = 0; p < 4; p++) r.leaf(LA, p, p);
    for (let p = 0; p < 4; p++) r.leaf(LB, p, 10 + p);
    expect(r.landed(0)).toBe(0);
    r.set(L2 + (Math.floor(IOVA / 2 ** 21) % 512) * 8, LB | TABLE);
    expect(r.landed(3)).toBe(3); // still LA's leaf: the guest owes an invalidation
    await r.fd.close();
  });

  it("the VMM moves the leaf table's guest page to another host page: the walk follows stage 2", async () => {
    const r = rig();
    for (let p = 0; p < 4; p++) r.leaf(LA, p, p);
    expect(r.landed(0)).toBe(0);
    // A new host page for GPA LA, whose copy of the table maps page 3 to data page 20.
    const moved = r.fd.memory.mmap(4096n);
    const copy = new Uint8Array(4096);
    const view = new DataView(copy.buffer);
    for (let p = 0; p < 4; p++) view.setUint32(p * 8, (DATA + (p === 3 ? 20 : p) * 4096) | LEAF, true);
    r.fd.memory.write(moved, copy);
    r.fd.ioasUnmap(r.ioas, BigInt(LA), 4096n);
    r.fd.ioasMap(r.ioas, { userVa: moved, length: 4096n, iova: BigInt(LA), flags: { fixedIova: true } });
    expect(r.landed(3)).toBe(20);
    await r.fd.close();
  });

  it('an upper level without RW: a read records the region, and a write still faults at that level', async () => {
    const r = rig();
    r.set(L1 + (Math.floor(IOVA / 2 ** 30) % 512) * 8, L2 | (TABLE & ~X86_LO.RW));
    r.leaf(LA, 0, 0);
    r.leaf(LA, 1, 1);
    expect(r.translate(0)).toBeGreaterThan(0);
    const hits = r.fd.cacheStats().pdeHits;
    expect(r.translate(1, Access.Write)).toBe(TranslateFault.Permission);
    expect(r.fd.lastFault().level).toBe(1);
    expect(r.fd.cacheStats().pdeHits).toBe(hits); // the cache does not grant what the levels above refuse
    expect(r.translate(1)).toBeGreaterThan(0);
    expect(r.fd.cacheStats().pdeHits).toBe(hits + 1);
    await r.fd.close();
  });
});

describe('PDE cache: a region recorded by a faulting walk', () => {
  it.each(['hardware', 'software'] as const)(
    '%s nesting: the VMM moves the leaf table the fault walked through, and the next walk follows stage 2',
    async (nesting) => {
      const r = rig(nesting);
      // Only page 0 is mapped: a walk of page 3 reaches LA and faults at its leaf. With software
      // nesting no shadow entry then names LA's page; the unmap's shadow sync still moves every
      // shard's sequence, which drops the region's entry (translate/pde-cache.ts).
      r.leaf(LA, 0, 0);
      expect(r.translate(3)).toBe(TranslateFault.NotMapped);
      // A new host page for GPA LA, whose copy of the table maps page 3 to data page 20.
      const moved = r.fd.memory.mmap(4096n);
      const copy = new Uint8Array(4096);
      const view = new DataView(copy.buffer);
      view.setUint32(0, DATA | LEAF, true);
      view.setUint32(3 * 8, (DATA + 20 * 4096) | LEAF, true);
      r.fd.memory.write(moved, copy);
      r.fd.ioasUnmap(r.ioas, BigInt(LA), 4096n);
      r.fd.ioasMap(r.ioas, { userVa: moved, length: 4096n, iova: BigInt(LA), flags: { fixedIova: true } });
      expect(r.landed(3)).toBe(20);
      await r.fd.close();
    },
  );
});
