// The QEMU-style SMMU IOTLB (src/baseline/smmu-iotlb.ts): QEMU 7.2's capacity rule (256 entries,
// emptied whole when full), lookups by level, and invalidations by ASID and by VA that remove
// exactly the entries QEMU's predicates match, by a full-table scan unless one exact key does.
import { describe, expect, it } from 'vitest';
import { dmaAlignedPow2Size, floorPow2, lowestSetBit } from '../../src/baseline/dma-pow2.js';
import { SMMU_IOTLB_MAX_SIZE, SmmuIotlb, SmmuTlbEntry } from '../../src/baseline/smmu-iotlb.js';

const PAGE = 4096;
const BLOCK = 2 * 2 ** 20;

/** A 4 KiB page (level 3) or 2 MiB block (level 2) entry of `asid` at `iova`. */
function page(asid: number, iova: number, gpa = 0x10_0000): SmmuTlbEntry {
  return new SmmuTlbEntry(asid, 0, iova, 1, 3, PAGE, gpa, 3);
}
function block(asid: number, iova: number): SmmuTlbEntry {
  return new SmmuTlbEntry(asid, 0, iova, 1, 2, BLOCK, 0x20_0000, 3);
}
/** The (asid, iova) of every entry that a 4 KiB lookup at level 0 finds, for the keys given. */
function present(t: SmmuIotlb, keys: readonly [number, number][]): [number, number][] {
  return keys.filter(([asid, iova]) => t.lookup(asid, 0, iova, 0, 12) !== undefined);
}

describe('QEMU-style SMMU IOTLB', () => {
  it('holds 256 entries; the 257th insert empties the table first and is then its only entry', () => {
    const t = new SmmuIotlb();
    for (let i = 0; i < SMMU_IOTLB_MAX_SIZE; i++) t.insert(page(1, i * PAGE));
    expect(SMMU_IOTLB_MAX_SIZE).toBe(256);
    expect(t.size).toBe(256);
    expect(t.stats().capacityFlushes).toBe(0);
    t.insert(page(2, 0x4000_0000));
    expect(t.size).toBe(1);
    expect(t.stats().capacityFlushes).toBe(1);
    expect(t.lookup(1, 0, 0, 0, 12)).toBeUndefined();
    expect(t.lookup(2, 0, 0x4000_0000, 0, 12)?.asid).toBe(2);
  });

  it('inserting a key already present replaces its entry without growing the table', () => {
    const t = new SmmuIotlb();
    t.insert(page(1, 0x1000, 0x5000));
    t.insert(page(1, 0x1000, 0x6000));
    expect(t.size).toBe(1);
    expect(t.lookup(1, 0, 0x1234, 0, 12)?.gpa).toBe(0x6000);
  });

  it('a lookup probes every level: an address inside a 2 MiB block finds the block', () => {
    const t = new SmmuIotlb();
    t.insert(block(1, 0x4020_0000));
    expect(t.lookup(1, 0, 0x4020_0000 + 0x12_3456, 0, 12)?.level).toBe(2);
    expect(t.lookup(1, 0, 0x4040_0000, 0, 12)).toBeUndefined();
    expect(t.lookup(2, 0, 0x4020_0000, 0, 12)).toBeUndefined();
    expect(t.stats()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('TLBI_NH_ASID scans the whole table and removes exactly that ASID', () => {
    const t = new SmmuIotlb();
    const keys: [number, number][] = [];
    for (let i = 0; i < 10; i++) {
      t.insert(page(1 + (i % 3), i * PAGE));
      keys.push([1 + (i % 3), i * PAGE]);
    }
    t.invalidateAsid(2, 0);
    expect(present(t, keys)).toEqual(keys.filter(([asid]) => asid !== 2));
    expect(t.stats()).toMatchObject({ scans: 1, scannedEntries: 10, removed: 3, entries: 7 });
  });

  it('a range TLBI_NH_VA removes the pages in the range and the block holding its start, nothing else', () => {
    const t = new SmmuIotlb();
    const base = 0x8000_0000;
    // Pages 0..7 of ASID 1, the same pages of ASID 2, and a block of ASID 1 around `blockBase`.
    for (let i = 0; i < 8; i++) t.insert(page(1, base + i * PAGE));
    for (let i = 0; i < 8; i++) t.insert(page(2, base + i * PAGE));
    const blockBase = 0x9000_0000;
    t.insert(block(1, blockBase));
    // Four pages at base + 4 pages (an aligned chunk), ASID 1.
    t.invalidateIova(1, 0, base + 4 * PAGE, 1, 4, 3);
    // One page inside the block: the entry holding the address goes.
    t.invalidateIova(1, 0, blockBase + 7 * PAGE, 1, 1, 3);
    const keys: [number, number][] = [];
    for (let i = 0; i < 8; i++) keys.push([1, base + i * PAGE], [2, base + i * PAGE]);
    keys.push([1, blockBase]);
    const left = present(t, keys);
    expect(left).toEqual(
      keys.filter(([asid, iova]) => !(asid === 1 && (iova >= base + 4 * PAGE || iova === blockBase))),
    );
    // The one-page command had a TTL but no entry of that exact key: it fell back to a scan.
    expect(t.stats()).toMatchObject({ scans: 2, exactRemovals: 0, removed: 5 });
  });

  it('one page with a TTL is one exact-key removal, without a scan; TTL 0 scans', () => {
    const t = new SmmuIotlb();
    for (let i = 0; i < 5; i++) t.insert(page(1, i * PAGE));
    t.invalidateIova(1, 0, 2 * PAGE, 1, 1, 3);
    expect(t.stats()).toMatchObject({ exactRemovals: 1, scans: 0, entries: 4 });
    t.invalidateIova(1, 0, 3 * PAGE, 1, 1, 0);
    expect(t.stats()).toMatchObject({ exactRemovals: 1, scans: 1, scannedEntries: 4, entries: 3 });
    expect(t.lookup(1, 0, 2 * PAGE, 0, 12)).toBeUndefined();
    expect(t.lookup(1, 0, 3 * PAGE, 0, 12)).toBeUndefined();
    expect(t.lookup(1, 0, 4 * PAGE, 0, 12)).toBeDefined();
  });

  it('TLBI_NH_VAA (ASID -1) removes the page in every ASID', () => {
    const t = new SmmuIotlb();
    for (const asid of [1, 2, 3]) t.insert(page(asid, 0x7000));
    t.insert(page(1, 0x8000));
    t.invalidateIova(-1, 0, 0x7000, 1, 1, 3);
    expect(t.size).toBe(1);
    expect(t.lookup(1, 0, 0x8000, 0, 12)).toBeDefined();
  });

  it('TLBI_NH_ALL empties the table, counted as a flush and not as a capacity flush', () => {
    const t = new SmmuIotlb();
    for (let i = 0; i < 3; i++) t.insert(page(1, i * PAGE));
    t.invalidateAll();
    expect(t.stats()).toMatchObject({ entries: 0, flushes: 1, capacityFlushes: 0, removed: 3 });
  });
});

describe("dma_aligned_pow2_mask: QEMU's split of a range into aligned power-of-two chunks", () => {
  /** The chunks (start, bytes) of [start, start + bytes). */
  function chunks(start: number, bytes: number): [number, number][] {
    const out: [number, number][] = [];
    const end = start + bytes - 1;
    for (let a = start; a !== end + 1;) {
      const n = dmaAlignedPow2Size(a, end);
      out.push([a, n]);
      a += n;
    }
    return out;
  }

  it('splits 34 pages at 0xffa40000 into 32 + 2 pages, as the smmu trace prints it', () => {
    expect(chunks(0xffa4_0000, 34 * PAGE)).toEqual([
      [0xffa4_0000, 32 * PAGE],
      [0xffa6_0000, 2 * PAGE],
    ]);
  });

  it('grows with the alignment of the start, then shrinks to what is left', () => {
    expect(chunks(0x3000, 0xe000)).toEqual([
      [0x3000, 0x1000],
      [0x4000, 0x4000],
      [0x8000, 0x8000],
      [0x1_0000, 0x1000],
    ]);
  });

  it('works above 2^32 and from address 0', () => {
    expect(chunks(2 ** 40, 3 * 2 ** 33)).toEqual([
      [2 ** 40, 2 ** 34],
      [2 ** 40 + 2 ** 34, 2 ** 33],
    ]);
    expect(chunks(0, 5 * PAGE)).toEqual([
      [0, 4 * PAGE],
      [4 * PAGE, PAGE],
    ]);
    expect(lowestSetBit(3 * 2 ** 36)).toBe(2 ** 36);
    expect(floorPow2(2 ** 45 + 1)).toBe(2 ** 45);
    expect(floorPow2(0xffff_ffff)).toBe(2 ** 31);
  });
});
