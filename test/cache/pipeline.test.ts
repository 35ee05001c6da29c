import { afterAll, describe, expect, it } from 'vitest';
import { ConfigCache, Iotlb, NO_SSID } from '../../src/cache/index.js';
import { Op, OpFlag, OpList } from '../../src/ops/index.js';
import { InvalidationPipeline, type Completion } from '../../src/pipeline/index.js';

const R = 1 | 8;
const TAG = 3;

function filled(pages: number, shards = 4): Iotlb {
  const t = new Iotlb(pages * 4, shards);
  for (let p = 0; p < pages; p++)
    t.fill(TAG, p * 4096, 0x100_0000 + p * 4096, 12, R, t.fillSeq(TAG, p * 4096), t.fillClock(), 1);
  return t;
}

const live = (t: Iotlb, pages: number): number[] => {
  const out: number[] = [];
  for (let p = 0; p < pages; p++) if (t.lookup(TAG, p * 4096, R) >= 0) out.push(p);
  return out;
};

describe('invalidation pipeline, inline', () => {
  it('a range op routed by region clears exactly its pages; the barrier completes with its sequence', async () => {
    const t = filled(2048); // 8 MiB: four 2 MiB regions, spread over shards
    const before = live(t, 2048); // set conflicts may have evicted a few fills
    const p = new InvalidationPipeline(t, { threads: 0 });
    const seen: Completion[] = [];
    p.completions$.subscribe((c) => seen.push(c));
    const ops = new OpList(8);
    ops.push(Op.IotlbRange, 1, TAG, 0, 100 * 4096, 1000); // crosses two regions
    ops.push(Op.Barrier, 2);
    expect(await p.submit(ops, 7)).toBe(2);
    expect(seen).toEqual([{ queue: 7, seq: 2 }]);
    expect(live(t, 2048)).toEqual(before.filter((x) => x < 100 || x >= 1100));
    await p.close();
  });

  it('wide flushes are epoch stores: a tag flush and a global flush', async () => {
    const t = filled(64);
    const p = new InvalidationPipeline(t, { threads: 0 });
    t.fill(9, 0, 0x5000, 12, R, t.fillSeq(9, 0), t.fillClock(), 1);
    const a = new OpList(4);
    a.push(Op.IotlbTag, 1, TAG);
    await p.submit(a);
    expect(live(t, 64)).toEqual([]);
    expect(t.lookup(9, 0, R)).toBe(0x5000);
    const b = new OpList(4);
    b.push(Op.IotlbAll, 2);
    await p.submit(b);
    expect(t.lookup(9, 0, R)).toBe(-1);
    let m = { epochFlushes: 0 };
    p.metrics$.subscribe((x) => (m = x));
    expect(m.epochFlushes).toBe(2);
    await p.close();
  });

  it('barriers complete in order, batches in submission order, under backpressure', async () => {
    const t = filled(16);
    const before16 = live(t, 16);
    const p = new InvalidationPipeline(t, { threads: 0, maxQueued: 2 });
    const seen: number[] = [];
    p.completions$.subscribe((c) => seen.push(c.seq));
    const all = Array.from({ length: 10 }, (_, k) => {
      const ops = new OpList(4);
      ops.push(Op.IotlbRange, 2 * k, TAG, 0, k * 4096, 1);
      ops.push(Op.Barrier, 2 * k + 1);
      return p.submit(ops);
    });
    expect(await Promise.all(all)).toEqual(Array.from({ length: 10 }, (_, k) => 2 * k + 1));
    expect(seen).toEqual(Array.from({ length: 10 }, (_, k) => 2 * k + 1));
    expect(live(t, 16)).toEqual([10, 11, 12, 13, 14, 15].filter((x) => before16.includes(x)));
    await p.close();
    await expect(p.submit(new OpList(1))).rejects.toMatchObject({ errno: 'EBADF' });
  });
});

describe('pipeline edges', () => {
  it('close() while a submitter waits for room: the waiter gets EBADF, accepted work finishes', async () => {
    const t = filled(16);
    const p = new InvalidationPipeline(t, { threads: 0, maxQueued: 1 });
    const ops = new OpList(2);
    ops.push(Op.IotlbRange, 1, TAG, 0, 0, 1);
    ops.push(Op.Barrier, 2);
    const a = p.submit(ops);
    const b = p.submit(ops);
    await p.close();
    await expect(a).resolves.toBe(2);
    await expect(b).rejects.toMatchObject({ errno: 'EBADF' });
  });

  it('ATC invalidation ops reach the ATC table (by device slot), a whole device with all pages', async () => {
    const t = filled(16);
    const atc = new Iotlb(1024, 4, undefined, true);
    for (const slot of [5, 6])
      for (let p = 0; p < 4; p++)
        atc.fill(slot, p * 4096, p * 4096, 12, R, atc.fillSeq(slot, p * 4096), atc.fillClock(), 1);
    const p = new InvalidationPipeline(t, { threads: 0, atc });
    const ops = new OpList(4);
    ops.push(Op.AtcInv, 1, 0, 5, 4096, 2); // device 5, pages 1..2
    ops.push(Op.AtcInv, 2, 0, 6, 0, 0xffffffff); // all of device 6
    ops.push(Op.Barrier, 3);
    expect(p.submitSync(ops)).toBe(3);
    expect([0, 1, 2, 3].map((q) => atc.lookup(5, q * 4096, R) >= 0)).toEqual([true, false, false, true]);
    expect([0, 1, 2, 3].map((q) => atc.lookup(6, q * 4096, R) >= 0)).toEqual([false, false, false, false]);
    await p.close();
  });
});

describe('the doorbell path (submitSync)', () => {
  it('runs inline, emits the completion and returns the barrier before it returns', () => {
    const t = filled(64);
    const before = live(t, 64);
    const p = new InvalidationPipeline(t, { threads: 0 });
    const seen: number[] = [];
    p.completions$.subscribe((c) => seen.push(c.seq));
    const ops = new OpList(4);
    ops.push(Op.IotlbRange, 10, TAG, 0, 8 * 4096, 8);
    ops.push(Op.Barrier, 11);
    expect(p.submitSync(ops)).toBe(11);
    expect(seen).toEqual([11]);
    expect(live(t, 64)).toEqual(before.filter((x) => x < 8 || x >= 16));
    void p.close();
  });

  it('refuses to overtake batches in flight (EBUSY), and works again once they are done', async () => {
    const t = filled(64);
    const p = new InvalidationPipeline(t, { threads: 0 });
    const ops = new OpList(4);
    ops.push(Op.IotlbRange, 1, TAG, 0, 0, 1);
    ops.push(Op.Barrier, 2);
    const pending = p.submit(ops);
    expect(() => p.submitSync(ops)).toThrow(expect.objectContaining({ errno: 'EBUSY' }));
    await pending;
    expect(p.submitSync(ops)).toBe(2);
    await p.close();
  });
});

describe('invalidation pipeline: ASID, config and ATC ops', () => {
  it('IotlbAsid and IotlbRange name one ASID of a domain; IotlbRangeAllAsid every ASID', () => {
    const t = new Iotlb(4096, 4);
    const put = (asid: number, p: number): void => {
      const tw = Iotlb.tagWord(TAG, asid);
      t.fill(tw, p * 4096, 0x10000 + p * 4096, 12, R, t.fillSeq(tw, p * 4096), t.fillClock(), 1);
    };
    const has = (asid: number, p: number): boolean => t.lookup(Iotlb.tagWord(TAG, asid), p * 4096, R) >= 0;
    for (const a of [1, 2]) for (let p = 0; p < 4; p++) put(a, p);
    const p = new InvalidationPipeline(t, { threads: 0 });
    const ops = new OpList(8);
    ops.push(Op.IotlbRange, 1, TAG, 1, 4096, 1); // ASID 1, page 1
    ops.push(Op.IotlbAsid, 2, TAG, 2); // all of ASID 2
    ops.push(Op.Barrier, 3);
    expect(p.submitSync(ops)).toBe(3);
    expect([0, 1, 2, 3].map((q) => has(1, q))).toEqual([true, false, true, true]);
    expect([0, 1, 2, 3].map((q) => has(2, q))).toEqual([false, false, false, false]);
    const all = new OpList(2);
    all.push(Op.IotlbRangeAllAsid, 4, TAG, 0, 0, 1);
    p.submitSync(all);
    expect(has(1, 3)).toBe(false); // a domain with ASIDs: the range for every ASID flushes it whole
    void p.close();
  });

  it("config ops: exact ones run in the SID's shard, wide ones are epoch stores", async () => {
    const t = new Iotlb(1024, 4);
    const cfg = new ConfigCache(1024, 4);
    const out = new Int32Array(8);
    const put = (sid: number, ssid: number, did: number): void => {
      cfg.fill(sid, ssid, did, [sid * 100 + ssid], cfg.fillSeq(sid), cfg.fillClock(), 1);
    };
    const has = (sid: number, ssid: number): boolean => cfg.lookup(sid, ssid, out) >= 0;
    const load = (): void => {
      for (const sid of [1, 2, 3]) for (const ssid of [NO_SSID, 1]) put(sid, ssid, sid === 3 ? 9 : 8);
    };
    const state = (): boolean[] => [1, 2, 3].flatMap((sid) => [has(sid, NO_SSID), has(sid, 1)]);
    const p = new InvalidationPipeline(t, { threads: 0, config: cfg });
    const run = (fn: (o: OpList) => void): void => {
      load();
      const o = new OpList(4);
      fn(o);
      o.push(Op.Barrier, 99);
      p.submitSync(o);
    };
    run((o) => o.push(Op.CfgSidSsid, 1, 1, 2)); // (SID 2, SSID 1)
    expect(state()).toEqual([true, true, true, false, true, true]);
    run((o) => o.push(Op.CfgSid, 1, 0, 1, 0, 2)); // SIDs 1 and 2
    expect(state()).toEqual([false, false, false, false, true, true]);
    run((o) => o.push(Op.CfgDid, 1, 9));
    expect(state()).toEqual([true, true, true, true, false, false]);
    run((o) => o.push(Op.CfgDidPasid, 1, 8, 1));
    expect(state()).toEqual([true, false, true, false, true, true]);
    run((o) => o.push(Op.CfgAll, 1));
    expect(state()).toEqual([false, false, false, false, false, false]);
    let m = { unsupported: -1 };
    p.metrics$.subscribe((x) => (m = x));
    expect(m.unsupported).toBe(0);
    await p.close();
  });

  it('ATC ops name a device and a PASID, or every PASID of the device', async () => {
    const t = new Iotlb(1024, 4);
    const atc = new Iotlb(1024, 4, undefined, true);
    const put = (dev: number, pasid: number, q: number): void => {
      const tw = Iotlb.tagWord(dev, pasid);
      atc.fill(tw, q * 4096, q * 4096, 12, R, atc.fillSeq(tw, q * 4096), atc.fillClock(), 1);
    };
    const has = (dev: number, pasid: number, q: number): boolean =>
      atc.lookup(Iotlb.tagWord(dev, pasid), q * 4096, R) >= 0;
    for (const pasid of [0, 4]) for (let q = 0; q < 4; q++) put(5, pasid, q);
    const p = new InvalidationPipeline(t, { threads: 0, atc });
    const ops = new OpList(4);
    ops.push(Op.AtcInv, 1, 4, 5, 0, 2); // device 5, PASID 4, pages 0..1
    ops.push(Op.Barrier, 2);
    p.submitSync(ops);
    expect([0, 1, 2, 3].map((q) => has(5, 4, q))).toEqual([false, false, true, true]);
    expect([0, 1, 2, 3].map((q) => has(5, 0, q))).toEqual([true, true, true, true]);
    const all = new OpList(2);
    all.push(Op.AtcInv, 3, 0, 5, 3 * 4096, 1, OpFlag.AllPasids); // page 3 of every PASID
    p.submitSync(all);
    expect([has(5, 0, 3), has(5, 4, 3), has(5, 0, 2)]).toEqual([false, false, false]); // the device had PASIDs: all of it
    await p.close();
  });

  it('refuses caches with another shard count than the IOTLB', () => {
    expect(
      () => new InvalidationPipeline(new Iotlb(1024, 4), { threads: 0, config: new ConfigCache(1024, 2) }),
    ).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });
});

describe('invalidation pipeline, on the pool', () => {
  const t = filled(4096, 8);
  const p = new InvalidationPipeline(t, { threads: 2, inlineThreshold: 4 });
  afterAll(() => p.close());

  it('large segments run on the workers, each shard under its owner word', async () => {
    const before = live(t, 4096);
    const ops = new OpList(64);
    for (let k = 0; k < 32; k++) ops.push(Op.IotlbRange, k, TAG, 0, k * 128 * 4096, 64); // the first half of each 128-page run
    ops.push(Op.Barrier, 99);
    expect(await p.submit(ops)).toBe(99);
    expect(live(t, 4096)).toEqual(before.filter((x) => x % 128 >= 64));
    let m = { poolSegments: 0 };
    p.metrics$.subscribe((x) => (m = x));
    expect(m.poolSegments).toBeGreaterThan(0);
  });

  it('a worker that dies mid-batch holding its owner word is recovered, and the ops run again', async () => {
    const ops = new OpList(64);
    for (let k = 0; k < 8; k++) ops.push(Op.IotlbRange, k, TAG, 0, k * 128 * 4096 + 64 * 4096, 64);
    ops.push(Op.Crash, 8, 1, 0, 0, 1); // shard 1's worker exits once
    ops.push(Op.Barrier, 9);
    expect(await p.submit(ops)).toBe(9);
    let m = { recoveries: 0 };
    p.metrics$.subscribe((x) => (m = x));
    expect(m.recoveries).toBeGreaterThanOrEqual(1);
    for (let s = 0; s < t.shards; s++) expect(t.ownerOf(s)).toBe(0);
    for (let k = 0; k < 8; k++) expect(t.lookup(TAG, (k * 128 + 64) * 4096, R)).toBe(-1);
  });

  it('a synchronous invalidation never hangs on the owner word of a dead worker: it takes it back', async () => {
    const crash = new OpList(16);
    for (let k = 0; k < 8; k++) crash.push(Op.IotlbRange, k, TAG, 0, k * 2097152, 1); // enough to run on the pool
    // Shard 3's worker exits holding its owner word, 1.5 s after it took it: time for this thread
    // to see its id there before the pipeline's recovery (which starts at the exit) can run.
    crash.push(Op.Crash, 9, 3, 1500, 0, 1);
    const pending = p.submit(crash);
    pending.catch(() => {}); // awaited below; no unhandled rejection meanwhile
    for (let i = 0; i < 10000 && t.ownerOf(3) < 1001; i++) await new Promise((r) => setTimeout(r, 1));
    const region = Array.from({ length: 64 }, (_, k) => k * 2097152).find((a) => t.shardOf(TAG, a) === 3)!;
    expect(t.ownerOf(3)).toBeGreaterThanOrEqual(1001); // the dead worker still holds it
    t.invalidateRange(TAG, region, 4096); // would wait forever without the bounded wait
    expect(t.counters().stolenOwners).toBe(1);
    await expect(pending).resolves.toBe(-1);
    for (let s = 0; s < t.shards; s++) expect(t.ownerOf(s)).toBe(0);
  });

  it('a batch that keeps killing its worker fails with EIO (the vendor error), and the pipeline goes on', async () => {
    const bad = new OpList(8);
    for (let k = 0; k < 4; k++) bad.push(Op.IotlbRange, k, TAG, 0, k * 4096, 1);
    bad.push(Op.Crash, 5, 2, 0, 0, 10);
    await expect(p.submit(bad)).rejects.toMatchObject({ errno: 'EIO' });
    const good = new OpList(8);
    good.push(Op.IotlbRange, 1, TAG, 0, 3000 * 4096, 1);
    good.push(Op.Barrier, 2);
    expect(await p.submit(good)).toBe(2);
    for (let s = 0; s < t.shards; s++) expect(t.ownerOf(s)).toBe(0);
  });
});

describe('invalidation pipeline: config and ATC slices on the pool', () => {
  it("workers attach to the config cache and the ATC, and run exact ops under their shards' owner words", async () => {
    const t = new Iotlb(1024, 4);
    const cfg = new ConfigCache(1024, 4);
    const atc = new Iotlb(1024, 4, undefined, true);
    const out = new Int32Array(8);
    for (let sid = 0; sid < 16; sid++) cfg.fill(sid, 1, 0, [sid], cfg.fillSeq(sid), cfg.fillClock(), 1);
    for (let dev = 1; dev <= 8; dev++) atc.fill(dev, 0, 0x1000, 12, R, atc.fillSeq(dev, 0), atc.fillClock(), 1);
    const p = new InvalidationPipeline(t, { threads: 2, inlineThreshold: 1, config: cfg, atc });
    const ops = new OpList(32);
    for (let sid = 0; sid < 16; sid += 2) ops.push(Op.CfgSidSsid, sid, 1, sid);
    for (let dev = 1; dev <= 8; dev += 2) ops.push(Op.AtcInv, 20 + dev, 0, dev, 0, 1);
    ops.push(Op.Barrier, 40);
    expect(await p.submit(ops)).toBe(40);
    let m = { poolSegments: 0, cleared: 0 };
    p.metrics$.subscribe((x) => (m = x));
    expect(m.poolSegments).toBe(1);
    expect(m.cleared).toBe(12);
    for (let sid = 0; sid < 16; sid++) expect(cfg.lookup(sid, 1, out) >= 0).toBe(sid % 2 === 1);
    for (let dev = 1; dev <= 8; dev++) expect(atc.lookup(dev, 0, R) >= 0).toBe(dev % 2 === 0);
    for (let s = 0; s < 4; s++) expect([t.ownerOf(s), cfg.ownerOf(s), atc.ownerOf(s)]).toEqual([0, 0, 0]);
    await p.close();
  });
});
