import { describe, expect, it } from 'vitest';
import { ALL_ASIDS, cacheAccess, CLOCK_LIMIT, Iotlb, OWNER_CONTROL } from '../../src/cache/index.js';
import { Access, Iommufd, MOCK_APERTURE_START } from '../../src/index.js';

const R = Access.Read;
const W = Access.Write;
const USER = 8;

/** A fill as a translator does it: read the sequence and the clock, "walk", fill. */
function fill(t: Iotlb, tag: number, iova: number, pa: number, shift: number, access: number): boolean {
  const s0 = t.fillSeq(tag, iova);
  const c0 = t.fillClock();
  return t.fill(tag, iova, pa, shift, access, s0, c0, 1);
}

describe('IOTLB', () => {
  it('misses, fills, then hits to the byte, per tag', () => {
    const t = new Iotlb(1024, 4);
    expect(t.lookup(5, 0x1234, R)).toBe(-1);
    expect(fill(t, 5, 0x1234, 0x9_9234, 12, R)).toBe(true);
    expect(t.lookup(5, 0x1ff0, R)).toBe(0x9_9ff0);
    expect(t.lookup(6, 0x1234, R)).toBe(-1); // another domain
    expect(t.lookup(5, 0x2000, R)).toBe(-1); // another page
    expect(t.counters().fills).toBe(1);
  });

  it('a hit needs every access bit a walk granted; a second fill grants the union', () => {
    const t = new Iotlb(1024, 4);
    fill(t, 1, 0x5000, 0x7000, 12, R | USER);
    expect(t.lookup(1, 0x5000, W | USER)).toBe(-1);
    fill(t, 1, 0x5000, 0x7000, 12, W | USER);
    expect(t.lookup(1, 0x5000, W | USER)).toBe(0x7000);
    expect(t.lookup(1, 0x5000, R | USER)).toBe(0x7000);
    // A grant to a privileged request (no USER bit) does not serve an unprivileged one.
    fill(t, 2, 0x5000, 0x7000, 12, R);
    expect(t.lookup(2, 0x5000, R | USER)).toBe(-1);
    expect(t.lookup(2, 0x5000, R)).toBe(0x7000);
  });

  it('caches 2 MiB leaves, and 1 GiB leaves as 2 MiB fragments in the shard of their region', () => {
    const t = new Iotlb(1024, 8);
    fill(t, 1, 0x20_0000 + 0x1234, 0x4000_0000 + 0x1234, 21, R);
    expect(t.lookup(1, 0x3f_ffff, R)).toBe(0x401f_ffff);
    fill(t, 1, 2 ** 30 + 0x50_0123, 0x8000_0000 + 0x50_0123, 30, R);
    expect(t.lookup(1, 2 ** 30 + 0x5f_0000, R)).toBe(0x805f_0000); // same 2 MiB fragment
    expect(t.lookup(1, 2 ** 30 + 0x60_0000, R)).toBe(-1); // the next fragment was never filled
  });

  it('a range invalidation clears exactly the entries in the range', () => {
    const t = new Iotlb(4096, 4);
    for (let p = 0; p < 16; p++) fill(t, 3, p * 4096, 0x10_0000 + p * 4096, 12, R);
    expect(t.invalidateRange(3, 4 * 4096, 8 * 4096)).toBe(8);
    for (let p = 0; p < 16; p++) expect(t.lookup(3, p * 4096, R) >= 0).toBe(p < 4 || p >= 12);
  });

  it('a range larger than the limit flushes the whole tag instead (an over-invalidation)', () => {
    const t = new Iotlb(4096, 4);
    fill(t, 3, 0, 0x1000, 12, R);
    fill(t, 3, 0x4000_0000, 0x2000, 12, R);
    t.invalidateRange(3, 0x10_0000, 1024 * 4096);
    expect(t.lookup(3, 0, R)).toBe(-1);
    expect(t.lookup(3, 0x4000_0000, R)).toBe(-1);
    expect(t.counters().overInvalidations).toBe(1);
  });

  it('flushTag and flushAll are epochs: older stamps stop hitting, later fills hit', () => {
    const t = new Iotlb(1024, 4);
    fill(t, 1, 0, 0x1000, 12, R);
    fill(t, 2, 0, 0x2000, 12, R);
    t.flushTag(1);
    expect(t.lookup(1, 0, R)).toBe(-1);
    expect(t.lookup(2, 0, R)).toBe(0x2000);
    fill(t, 1, 0, 0x3000, 12, R);
    expect(t.lookup(1, 0, R)).toBe(0x3000);
    t.flushAll();
    expect([t.lookup(1, 0, R), t.lookup(2, 0, R)]).toEqual([-1, -1]);
  });

  it('a fill whose walk raced an invalidation is discarded (the fill guard)', () => {
    const t = new Iotlb(1024, 4);
    const s0 = t.fillSeq(1, 0);
    const c0 = t.fillClock();
    t.invalidateRange(1, 0, 4096); // nothing cached yet, but the shard's sequence moves
    fill(t, 1, 0x40_0000, 0x1000, 12, R); // (another region: another shard, unaffected)
    expect(t.fill(1, 0, 0x9000, 12, R, s0, c0, 1)).toBe(false);
    expect(t.lookup(1, 0, R)).toBe(-1);
    expect(t.counters().discardedFills).toBe(1);
    t.fillGuard = false; // without the guard, the stale fill goes in: what the safety test must catch
    expect(t.fill(1, 0, 0x9000, 12, R, s0, c0, 1)).toBe(true);
  });

  it('a fill that finds the shard owned is skipped, never waits', () => {
    const t = new Iotlb(1024, 1);
    expect(t.tryOwn(0, OWNER_CONTROL)).toBe(true);
    expect(fill(t, 1, 0, 0x1000, 12, R)).toBe(false);
    t.release(0);
    expect(fill(t, 1, 0, 0x1000, 12, R)).toBe(true);
  });

  it('a reused tag takes the current clock: old entries never come back', () => {
    const t = new Iotlb(1024, 4);
    fill(t, 9, 0, 0x1000, 12, R);
    t.resetTag(9);
    expect(t.lookup(9, 0, R)).toBe(-1);
  });

  it('evicts round-robin when a set is full, and counts it', () => {
    const t = new Iotlb(8, 1); // one set of 8 ways
    for (let p = 0; p < 12; p++) fill(t, 1, p * 4096, p * 4096, 12, R);
    expect(t.counters().evictions).toBe(4);
    let live = 0;
    for (let p = 0; p < 12; p++) if (t.lookup(1, p * 4096, R) >= 0) live++;
    expect(live).toBe(8);
  });

  it('never wraps silently: near the limit the next flush empties the table and resets the clock', () => {
    const t = new Iotlb(1024, 4);
    t.setClockForTest(CLOCK_LIMIT);
    fill(t, 1, 0, 0x1000, 12, R);
    expect(t.lookup(1, 0, R)).toBe(0x1000);
    t.flushTag(2);
    expect(t.counters().rollovers).toBe(1);
    expect(t.lookup(1, 0, R)).toBe(-1);
    expect(t.fillClock()).toBeLessThan(10);
    fill(t, 1, 0, 0x1000, 12, R);
    expect(t.lookup(1, 0, R)).toBe(0x1000);
  });

  it('a rollover on a thread that holds an owner word (a shard op flushing a tag) does not wait for itself', () => {
    const t = new Iotlb(1024, 4);
    fill(t, 1, 0, 0x1000, 12, R);
    t.setClockForTest(CLOCK_LIMIT);
    t.own(2);
    t.flushTag(3); // rolls over: takes shards 0, 1 and 3, not 2, which it holds
    expect(t.counters().rollovers).toBe(1);
    expect(t.ownerOf(2)).toBe(OWNER_CONTROL);
    expect(t.ownerOf(0)).toBe(0);
    t.release(2);
    expect(t.lookup(1, 0, R)).toBe(-1);
  });

  it('grants are per privilege level: neither an unprivileged grant nor a privileged one serves the other', () => {
    const t = new Iotlb(1024, 4);
    fill(t, 1, 0x5000, 0x7000, 12, cacheAccess(R));
    expect(t.lookup(1, 0x5000, cacheAccess(R))).toBe(0x7000);
    expect(t.lookup(1, 0x5000, cacheAccess(R | Access.Priv))).toBe(-1);
    fill(t, 1, 0x5000, 0x7000, 12, cacheAccess(R | Access.Priv));
    expect(t.lookup(1, 0x5000, cacheAccess(R | Access.Priv))).toBe(0x7000);
    fill(t, 2, 0x5000, 0x7000, 12, cacheAccess(W | Access.Priv));
    expect(t.lookup(2, 0x5000, cacheAccess(W))).toBe(-1);
  });

  it('pieces of a larger translation unit: a range invalidation of one address drops the whole unit', () => {
    const t = new Iotlb(4096, 4);
    // A 2 MiB stage-1 block cached as 4 KiB pieces (stage 2 maps 4 KiB pages).
    const at = (p: number): number => 0x4000_0000 + p * 4096;
    for (const p of [0, 7, 300, 511]) {
      const s0 = t.fillSeq(1, at(p));
      expect(t.fill(1, at(p), 0x10_0000 + p * 4096, 12, R, s0, t.fillClock(), 1, 21)).toBe(true);
    }
    // A 4 KiB leaf of the same domain in the next region is its own unit's business.
    fill(t, 1, 0x4020_0000, 0x9000, 12, R);
    expect(t.unitShiftOf(1)).toBe(21);
    expect(t.invalidateRange(1, at(7), 4096)).toBe(4);
    for (const p of [0, 7, 300, 511]) expect(t.lookup(1, at(p), R)).toBe(-1);
    expect(t.lookup(1, 0x4020_0000, R)).toBe(0x9000);
    // The same through a shard op.
    const s0 = t.fillSeq(1, at(9));
    t.fill(1, at(9), 0x20_0000, 12, R, s0, t.fillClock(), 1, 21);
    const shard = t.shardOf(1, at(9));
    t.own(shard);
    expect(t.invalidateRangeInShard(shard, 1, at(100), 4096)).toBe(1);
    t.release(shard);
    expect(t.lookup(1, at(9), R)).toBe(-1);
    // A unit beyond the 2 MiB region (a 1 GiB block in pieces) flushes the tag, counted.
    const t2 = new Iotlb(4096, 4);
    const s1 = t2.fillSeq(1, 0x4000_0000);
    t2.fill(1, 0x4000_0000, 0x1000, 12, R, s1, t2.fillClock(), 1, 30);
    fill(t2, 1, 0x7000_0000, 0x2000, 12, R);
    t2.invalidateRange(1, 0x5000_0000, 4096);
    expect(t2.lookup(1, 0x4000_0000, R)).toBe(-1);
    expect(t2.lookup(1, 0x7000_0000, R)).toBe(-1);
    expect(t2.counters().overInvalidations).toBe(1);
    // A reused descriptor index starts with no unit.
    t2.resetTag(1);
    expect(t2.unitShiftOf(1)).toBe(0);
  });

  it('a fill that read its sequence after a rollover but its clock before is refused', () => {
    const t = new Iotlb(1024, 4);
    t.setClockForTest(CLOCK_LIMIT);
    const c0 = t.fillClock(); // the old, huge clock
    t.flushTag(2); // rolls over: clock back to 1, sequences bumped
    const s0 = t.fillSeq(1, 0); // the new sequence
    expect(t.fill(1, 0, 0x1000, 12, R, s0, c0, 1)).toBe(false);
    expect(t.lookup(1, 0, R)).toBe(-1);
  });

  it('never caches a physical address it cannot hold (>= 2^32)', () => {
    const t = new Iotlb(1024, 4);
    expect(t.fill(1, 0, 2 ** 32 + 0x1000, 12, R, t.fillSeq(1, 0), t.fillClock(), 1)).toBe(false);
    expect(t.lookup(1, 0, R)).toBe(-1);
  });

  it('stays within 32 bytes per entry', () => {
    expect(new Iotlb(65536, 8).bytesPerEntry).toBe(32);
  });
});

describe('IOTLB in the translation path', () => {
  it('a second translation hits; an unmap invalidates inline, so the next one faults', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'vtd' });
    fd.deviceAttach(dev, ioas);
    const va = fd.memory.mmap(2n ** 21n);
    const iova = Number(MOCK_APERTURE_START);
    fd.ioasMap(ioas, { userVa: va, length: 2n ** 21n, iova: BigInt(iova), flags: { fixedIova: true } });
    const pa = fd.translate(dev, iova + 5, R);
    expect(fd.translate(dev, iova + 5, R)).toBe(pa);
    expect(fd.cacheStats()).toMatchObject({ hits: 1, misses: 1, fills: 1 });
    fd.ioasUnmap(ioas, BigInt(iova), 2n ** 21n);
    expect(fd.translate(dev, iova + 5, R)).toBeLessThan(0);
    expect(fd.cacheStats().invalidated).toBeGreaterThan(0);
    void fd.close();
  });

  it('a replaced-away domain is not served from the IOTLB to the new one', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const a = fd.ioasAlloc();
    const b = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'smmuv3' });
    fd.deviceAttach(dev, a);
    const va = fd.memory.mmap(8192n);
    fd.ioasMap(a, { userVa: va, length: 4096n, iova: 0x100000n, flags: { fixedIova: true } });
    fd.ioasMap(b, { userVa: va + 4096n, length: 4096n, iova: 0x100000n, flags: { fixedIova: true } });
    const pa = fd.translate(dev, 0x100000, R);
    fd.deviceReplace(dev, b);
    expect(fd.translate(dev, 0x100000, R)).toBe(pa + 4096);
    void fd.close();
  });

  it('an ATS device is served from its ATC; an unmap invalidates it inline; a replace drops it', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const a = fd.ioasAlloc();
    const b = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'smmuv3', ats: true });
    const plain = fd.deviceBind({ iommu: 'smmuv3' });
    fd.deviceAttach(dev, a);
    fd.deviceAttach(plain, a);
    const va = fd.memory.mmap(3n * 4096n);
    fd.ioasMap(a, { userVa: va, length: 4096n, iova: 0x100000n, flags: { fixedIova: true } });
    fd.ioasMap(b, { userVa: va + 4096n, length: 4096n, iova: 0x100000n, flags: { fixedIova: true } });
    const pa = fd.translate(dev, 0x100000, R);
    expect(fd.translate(dev, 0x100000, R)).toBe(pa);
    expect(fd.cacheStats().atcHits).toBe(1);
    expect(fd.translate(plain, 0x100000, R)).toBe(pa); // an IOTLB hit: no ATC for this device
    expect(fd.translate(plain, 0x100000, R)).toBe(pa);
    expect(fd.cacheStats().atcHits).toBe(1);
    // Replace: the device's ATC entries go with the old domain.
    fd.deviceReplace(dev, b);
    expect(fd.translate(dev, 0x100000, R)).toBe(pa + 4096);
    // An unmap of the device's domain invalidates its ATC before it returns.
    expect(fd.translate(dev, 0x100000, R)).toBe(pa + 4096);
    fd.ioasUnmap(b, 0x100000n, 4096n);
    expect(fd.translate(dev, 0x100000, R)).toBeLessThan(0);
    void fd.close();
  });

  it('the ATC serves PASID requests too, tagged (device, PASID): an unmap and a PASID replace reach exactly them', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20 });
    const a = fd.ioasAlloc();
    const b = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'smmuv3', ats: true, pasidBits: 8 });
    const ha = fd.hwptAlloc({ devId: dev, ptId: a, flags: { pasid: true } });
    const hb = fd.hwptAlloc({ devId: dev, ptId: b, flags: { pasid: true } });
    fd.deviceAttach(dev, ha);
    fd.deviceAttach(dev, hb, { pasid: 7 });
    const va = fd.memory.mmap(3n * 4096n);
    fd.ioasMap(a, { userVa: va, length: 4096n, iova: 0x100000n, flags: { fixedIova: true } });
    fd.ioasMap(b, { userVa: va + 4096n, length: 4096n, iova: 0x100000n, flags: { fixedIova: true } });
    const rid = fd.translate(dev, 0x100000, R);
    const p7 = fd.translate(dev, 0x100000, R, 7);
    expect(p7).toBe(rid + 4096); // the RID and PASID 7 are cached apart
    expect([fd.translate(dev, 0x100000, R), fd.translate(dev, 0x100000, R, 7)]).toEqual([rid, p7]);
    expect(fd.cacheStats().atcHits).toBe(2);
    fd.ioasUnmap(b, 0x100000n, 4096n); // PASID 7's domain
    expect(fd.translate(dev, 0x100000, R, 7)).toBeLessThan(0);
    expect(fd.translate(dev, 0x100000, R)).toBe(rid);
    expect(fd.cacheStats().atcHits).toBe(3); // the RID's entry survived
    fd.deviceReplace(dev, ha, { pasid: 7 });
    expect(fd.translate(dev, 0x100000, R, 7)).toBe(rid);
    void fd.close();
  });

  it('can be turned off', () => {
    const fd = Iommufd.open({ memoryBytes: 16 * 2 ** 20, iotlb: false });
    expect(fd.cacheStats().capacity).toBe(0);
    void fd.close();
  });
});

describe('IOTLB: the ASID/PASID dimension', () => {
  const A1 = Iotlb.tagWord(7, 1);
  const A2 = Iotlb.tagWord(7, 0xfffff); // the largest PASID
  it('entries of one domain under different ASIDs are distinct, and an ASID flush takes only its own', () => {
    const t = new Iotlb(1024, 4);
    fill(t, A1, 0x1000, 0xa000, 12, R);
    fill(t, A2, 0x1000, 0xb000, 12, R);
    fill(t, 7, 0x1000, 0xc000, 12, R); // ASID 0
    expect([t.lookup(A1, 0x1000, R), t.lookup(A2, 0x1000, R), t.lookup(7, 0x1000, R)]).toEqual([
      0xa000, 0xb000, 0xc000,
    ]);
    t.flushAsid(A1);
    expect([t.lookup(A1, 0x1000, R), t.lookup(A2, 0x1000, R), t.lookup(7, 0x1000, R)]).toEqual([-1, 0xb000, 0xc000]);
    t.flushTag(7); // the domain: every ASID
    expect([t.lookup(A2, 0x1000, R), t.lookup(7, 0x1000, R)]).toEqual([-1, -1]);
  });

  it('a range invalidation under one ASID is exact; "all ASIDs" of a domain with ASIDs flushes the domain', () => {
    const t = new Iotlb(4096, 4);
    for (let p = 0; p < 4; p++) {
      fill(t, A1, p * 4096, 0x10000 + p * 4096, 12, R);
      fill(t, A2, p * 4096, 0x20000 + p * 4096, 12, R);
    }
    expect(t.invalidateRange(A1, 4096, 2 * 4096)).toBe(2);
    expect([0, 1, 2, 3].map((p) => t.lookup(A1, p * 4096, R) >= 0)).toEqual([true, false, false, true]);
    expect([0, 1, 2, 3].map((p) => t.lookup(A2, p * 4096, R) >= 0)).toEqual([true, true, true, true]);
    const over = t.counters().overInvalidations;
    t.invalidateRange(7, 0, 4096, 512, ALL_ASIDS);
    expect(t.counters().overInvalidations).toBe(over + 1);
    expect(t.lookup(A2, 3 * 4096, R)).toBe(-1);
  });

  it('"all ASIDs" of a domain that only ever cached ASID 0 is an exact range invalidation', () => {
    const t = new Iotlb(4096, 4);
    for (let p = 0; p < 4; p++) fill(t, 9, p * 4096, 0x10000 + p * 4096, 12, R);
    expect(t.invalidateRange(9, 0, 2 * 4096, 512, ALL_ASIDS)).toBe(2);
    expect([0, 1, 2, 3].map((p) => t.lookup(9, p * 4096, R) >= 0)).toEqual([false, false, true, true]);
    expect(t.counters().overInvalidations).toBe(0);
  });

  it('an ASID flush defeats a fill in flight (its stamp predates the epoch)', () => {
    const t = new Iotlb(1024, 4);
    const s0 = t.fillSeq(A1, 0);
    const c0 = t.fillClock();
    t.flushAsid(A1);
    expect(t.fill(A1, 0, 0x5000, 12, R, s0, c0, 1)).toBe(true); // inserted, but dead on arrival
    expect(t.lookup(A1, 0, R)).toBe(-1);
  });

  it('a table sharded by tag keeps all of a tag in one shard, and an attacher takes the sharding from the buffer', () => {
    const t = new Iotlb(4096, 8, undefined, true);
    const shards = new Set([0, 1, 2, 3].map((r) => t.shardOf(Iotlb.tagWord(5, 3), r * 2097152)));
    expect(shards.size).toBe(1);
    const attached = new Iotlb(t.capacity, t.shards, t.handles(), false);
    expect(attached.byTag).toBe(true);
    fill(attached, Iotlb.tagWord(5, 3), 0x40_0000, 0x9000, 12, R);
    expect(t.invalidateRange(Iotlb.tagWord(5, 3), 0x40_0000, 4096)).toBe(1);
  });
});
