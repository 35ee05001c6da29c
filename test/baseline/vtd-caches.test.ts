// The QEMU-style VT-d caches (src/baseline/vtd-iotlb.ts, vtd-context-cache.ts): the IOTLB's
// capacity rule (1024 entries, emptied whole when full), domain- and page-selective
// invalidations that remove exactly what QEMU's predicates match by a full-table scan, and the
// context cache's generation counter.
import { describe, expect, it } from 'vitest';
import { VTD_CONTEXT_CACHE_GEN_MAX, VtdContextCache } from '../../src/baseline/vtd-context-cache.js';
import { iotlbGfn, VTD_IOTLB_MAX_SIZE, VtdIotlb, VtdIotlbEntry } from '../../src/baseline/vtd-iotlb.js';

const PAGE = 4096;

/** A 4 KiB (level 1) entry of `sid` in domain `did` at `addr`; level 2 is a 2 MiB page. */
function entry(sid: number, did: number, addr: number, level = 1): VtdIotlbEntry {
  return new VtdIotlbEntry(sid, -1, iotlbGfn(addr, level), level, did, 0x40_0000, 3);
}

describe('QEMU-style VT-d IOTLB', () => {
  it('holds 1024 entries; the 1025th insert empties the table first and is then its only entry', () => {
    const t = new VtdIotlb();
    for (let i = 0; i < VTD_IOTLB_MAX_SIZE; i++) t.insert(entry(0x10, 4, i * PAGE));
    expect(VTD_IOTLB_MAX_SIZE).toBe(1024);
    expect(t.size).toBe(1024);
    t.insert(entry(0x18, 5, 0));
    expect(t.stats()).toMatchObject({ entries: 1, capacityFlushes: 1, inserts: 1025 });
    expect(t.lookup(0x10, -1, 0)).toBeUndefined();
    expect(t.lookup(0x18, -1, 0x123)?.domainId).toBe(5);
  });

  it('is keyed by source id: the same page of another device of the domain is another entry', () => {
    const t = new VtdIotlb();
    t.insert(entry(0x10, 4, 0x5000));
    expect(t.lookup(0x18, -1, 0x5000)).toBeUndefined();
    expect(t.lookup(0x10, -1, 0x5fff)?.gfn).toBe(5);
  });

  it('a lookup probes the 4 KiB, 2 MiB and 1 GiB levels', () => {
    const t = new VtdIotlb();
    t.insert(entry(0x10, 4, 0x20_0000, 2));
    t.insert(entry(0x10, 4, 0x4000_0000, 3));
    expect(t.lookup(0x10, -1, 0x3f_f000)?.level).toBe(2);
    expect(t.lookup(0x10, -1, 0x7fff_f000)?.level).toBe(3);
    expect(t.lookup(0x10, -1, 0x40_0000)).toBeUndefined();
  });

  it('a domain-selective invalidation scans the table and removes exactly that domain, every device of it', () => {
    const t = new VtdIotlb();
    for (let i = 0; i < 6; i++) {
      t.insert(entry(0x10, 4, i * PAGE));
      t.insert(entry(0x11, 4, i * PAGE));
      t.insert(entry(0x18, 5, i * PAGE));
    }
    t.invalidateDomain(4);
    expect(t.stats()).toMatchObject({ scans: 1, scannedEntries: 18, removed: 12, entries: 6 });
    expect(t.lookup(0x18, -1, 0)).toBeDefined();
    expect(t.lookup(0x10, -1, 0)).toBeUndefined();
    expect(t.lookup(0x11, -1, 5 * PAGE)).toBeUndefined();
  });

  it('a page-selective invalidation removes the aligned 2^AM pages and the large page holding the address, in its domain only', () => {
    const t = new VtdIotlb();
    for (let i = 0; i < 16; i++) {
      t.insert(entry(0x10, 4, i * PAGE));
      t.insert(entry(0x18, 5, i * PAGE));
    }
    t.insert(entry(0x10, 4, 0x20_0000, 2));
    t.insert(entry(0x10, 4, 0x40_0000, 2));
    // AM = 2: pages 4..7 (the address is rounded down to the 4-page boundary).
    t.invalidatePages(4, 6 * PAGE, 2);
    // AM = 0 inside the first 2 MiB page: the entry that holds it goes.
    t.invalidatePages(4, 0x20_0000 + 9 * PAGE, 0);
    const left = [];
    for (let i = 0; i < 16; i++) if (t.lookup(0x10, -1, i * PAGE) !== undefined) left.push(i);
    expect(left).toEqual([0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15]);
    for (let i = 0; i < 16; i++) expect(t.lookup(0x18, -1, i * PAGE)).toBeDefined();
    expect(t.lookup(0x10, -1, 0x20_0000)).toBeUndefined();
    expect(t.lookup(0x10, -1, 0x40_0000)).toBeDefined();
    expect(t.stats()).toMatchObject({ scans: 2, removed: 5, scannedEntries: 34 + 30 });
  });

  it('a global invalidation empties the table, counted as a flush', () => {
    const t = new VtdIotlb();
    t.insert(entry(0x10, 4, 0));
    t.insert(entry(0x18, 5, 0));
    t.invalidateAll();
    expect(t.stats()).toMatchObject({ entries: 0, flushes: 1, scans: 0 });
  });
});

describe('QEMU-style VT-d context cache', () => {
  it('a global invalidation bumps the generation: every entry is stale, with no scan', () => {
    const c = new VtdContextCache();
    expect(c.gen).toBe(1);
    c.fill(0x10).did = 4;
    c.fill(0x18).did = 5;
    expect(c.lookup(0x10)?.did).toBe(4);
    c.invalidateGlobal();
    expect(c.gen).toBe(2);
    expect(c.lookup(0x10)).toBeUndefined();
    expect(c.lookup(0x18)).toBeUndefined();
    expect(c.stats()).toMatchObject({ scans: 0, invalidations: 1, hits: 1, misses: 2 });
    // A fetch under the new generation is valid again.
    c.fill(0x10);
    expect(c.lookup(0x10)?.gen).toBe(2);
  });

  it('a device-selective invalidation visits every device and zeroes those matching under the function mask', () => {
    const c = new VtdContextCache();
    // Bus 0, device 2, functions 0..3; device 3 function 0; bus 1 device 2 function 0.
    const sids = [0x10, 0x11, 0x12, 0x13, 0x18, 0x110];
    for (const s of sids) c.fill(s);
    c.invalidateDevice(0x11, 0);
    expect(sids.filter((s) => c.lookup(s) !== undefined)).toEqual([0x10, 0x12, 0x13, 0x18, 0x110]);
    // FM = 2 ignores function bits 2:1: the even functions of 00:02 go (0x12 too, not 0x13).
    c.invalidateDevice(0x10, 2);
    expect(sids.filter((s) => c.lookup(s) !== undefined)).toEqual([0x13, 0x18, 0x110]);
    // FM = 3 ignores the whole function number: every function of 00:02 goes.
    c.invalidateDevice(0x10, 3);
    expect(sids.filter((s) => c.lookup(s) !== undefined)).toEqual([0x18, 0x110]);
    expect(c.stats()).toMatchObject({ scans: 3, scannedEntries: 18, invalidations: 3 });
    expect(c.gen).toBe(1);
  });

  it('when the generation reaches its maximum every entry is reset, so an entry of generation 1 cannot come back', () => {
    const c = new VtdContextCache();
    c.fill(0x10); // generation 1
    c.gen = VTD_CONTEXT_CACHE_GEN_MAX - 1;
    c.fill(0x18);
    expect(c.lookup(0x18)).toBeDefined();
    c.invalidateGlobal();
    expect(c.gen).toBe(1);
    expect(c.lookup(0x10)).toBeUndefined();
    expect(c.lookup(0x18)).toBeUndefined();
  });
});
