// The config cache: unit tests of its keys, epochs and fill protocol, and a model-based property
// test: after any sequence of fills (some racing an invalidation) and invalidations, a lookup
// returns nothing or a value filled since the last invalidation that covers its key.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONFIG_PAYLOAD_WORDS, ConfigCache, NO_SSID, OWNER_WORKER_BASE } from '../../src/cache/index.js';

const out = new Int32Array(CONFIG_PAYLOAD_WORDS);

function fill(c: ConfigCache, sid: number, ssid: number, did: number, value: number): boolean {
  const s0 = c.fillSeq(sid);
  const c0 = c.fillClock();
  return c.fill(sid, ssid, did, [value, value + 1], s0, c0, 1);
}

function get(c: ConfigCache, sid: number, ssid: number): number | undefined {
  return c.lookup(sid, ssid, out) >= 0 ? out[0] : undefined;
}

describe('config cache', () => {
  it('keys on (SID, SSID): the stream entry and each substream entry are distinct, and the payload round-trips', () => {
    const c = new ConfigCache(1024, 4);
    expect(get(c, 3, NO_SSID)).toBeUndefined();
    fill(c, 3, NO_SSID, 10, 100);
    fill(c, 3, 0, 10, 200);
    fill(c, 3, 5, 11, 300);
    expect(c.lookup(3, 5, out)).toBe(11); // the DID comes back with the payload
    expect([out[0], out[1]]).toEqual([300, 301]);
    expect([get(c, 3, NO_SSID), get(c, 3, 0), get(c, 4, NO_SSID)]).toEqual([100, 200, undefined]);
    expect([c.hits, c.misses]).toEqual([3, 2]);
    expect(c.bytesPerEntry).toBe(64);
  });

  it('flushes by SID (with a range), DID, (DID, PASID) and everything, each as one epoch store', () => {
    const c = new ConfigCache(1024, 4);
    const load = (): void => {
      fill(c, 1, NO_SSID, 7, 1);
      fill(c, 1, 2, 7, 2);
      fill(c, 2, NO_SSID, 8, 3);
      fill(c, 3, 2, 8, 4);
    };
    const all = (): (number | undefined)[] => [get(c, 1, NO_SSID), get(c, 1, 2), get(c, 2, NO_SSID), get(c, 3, 2)];
    load();
    c.flushSids(1);
    expect(all()).toEqual([undefined, undefined, 3, 4]);
    load();
    c.flushSids(2, 2); // SIDs 2 and 3
    expect(all()).toEqual([1, 2, undefined, undefined]);
    load();
    c.flushDid(8);
    expect(all()).toEqual([1, 2, undefined, undefined]);
    load();
    c.flushDidPasid(8, 2); // only substream entries with DID 8 and PASID 2
    expect(all()).toEqual([1, 2, 3, undefined]);
    load();
    c.flushAll();
    expect(all()).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('an exact invalidation drops one entry and moves its shard sequence, so a racing fill is discarded', () => {
    const c = new ConfigCache(1024, 4);
    fill(c, 9, 1, 5, 1);
    fill(c, 9, 2, 5, 2);
    const s0 = c.fillSeq(9);
    const c0 = c.fillClock();
    expect(c.invalidate(9, 1)).toBe(1);
    expect([get(c, 9, 1), get(c, 9, 2)]).toEqual([undefined, 2]);
    expect(c.fill(9, 1, 5, [1], s0, c0, 1)).toBe(false); // the walk read the old structure
    expect(get(c, 9, 1)).toBeUndefined();
    expect(c.counters().discardedFills).toBe(1);
  });

  it('a fill that finds the shard owned is skipped, never waits; a SID range beyond the epoch table flushes everything', () => {
    const c = new ConfigCache(1024, 2);
    const shard = c.shardOf(4);
    expect(c.tryOwn(shard, 77)).toBe(true);
    expect(fill(c, 4, NO_SSID, 1, 1)).toBe(false);
    c.release(shard);
    expect(fill(c, 4, NO_SSID, 1, 1)).toBe(true);
    c.flushSids(1 << 20, 1 << 20);
    expect(get(c, 4, NO_SSID)).toBeUndefined();
    expect(c.counters().overInvalidations).toBe(1);
  });

  it('a control-plane invalidation takes back the owner word of a dead worker after a bounded wait, and flushes', () => {
    const c = new ConfigCache(1024, 2);
    fill(c, 4, NO_SSID, 1, 1);
    const shard = c.shardOf(5);
    expect(c.tryOwn(shard, OWNER_WORKER_BASE + 7)).toBe(true); // a worker that died holding it
    c.invalidate(5, NO_SSID); // waited forever before the config cache shared the IOTLB's protocol
    expect(c.ownerOf(shard)).toBe(0);
    expect(c.counters().stolenOwners).toBe(1);
    expect(get(c, 4, NO_SSID)).toBeUndefined(); // what the dead worker may have half done is gone
  });

  it('the clock rolls over instead of wrapping: the table empties and fills work again', () => {
    const c = new ConfigCache(1024, 2);
    fill(c, 1, NO_SSID, 1, 1);
    c.setClockForTest(2 ** 31 - 2 ** 20);
    c.flushDid(99);
    expect(c.counters().rollovers).toBe(1);
    expect(get(c, 1, NO_SSID)).toBeUndefined();
    fill(c, 1, NO_SSID, 1, 2);
    expect(get(c, 1, NO_SSID)).toBe(2);
  });

  it('a worker attaches to the same table through its handles', () => {
    const c = new ConfigCache(1024, 4);
    const d = new ConfigCache(c.capacity, c.shards, c.handles());
    fill(d, 6, NO_SSID, 2, 42);
    expect(get(c, 6, NO_SSID)).toBe(42);
    c.flushSids(6);
    expect(get(d, 6, NO_SSID)).toBeUndefined();
  });
});

// ---- the model-based property test ------------------------------------------------------------

type Inv =
  | { k: 'exact'; sid: number; ssid: number }
  | { k: 'sid'; sid: number; count: number }
  | { k: 'did'; did: number }
  | { k: 'didPasid'; did: number; pasid: number }
  | { k: 'all' };
type Step =
  | { k: 'fill'; sid: number; ssid: number; did: number }
  | { k: 'race'; sid: number; ssid: number; did: number; inv: Inv }
  | { k: 'inv'; inv: Inv }
  | { k: 'lookup'; sid: number; ssid: number };

// A small key space, so that fills, invalidations and lookups meet often.
const sidA = fc.integer({ min: 0, max: 2 });
const ssidA = fc.constantFrom(NO_SSID, 1);
const didA = fc.integer({ min: 0, max: 1 });
const invA: fc.Arbitrary<Inv> = fc.oneof(
  fc.record({ k: fc.constant('exact' as const), sid: sidA, ssid: ssidA }),
  fc.record({ k: fc.constant('sid' as const), sid: sidA, count: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ k: fc.constant('did' as const), did: didA }),
  fc.record({ k: fc.constant('didPasid' as const), did: didA, pasid: fc.constantFrom(0, 1) }),
  fc.record({ k: fc.constant('all' as const) }),
);
const stepA: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ k: fc.constant('fill' as const), sid: sidA, ssid: ssidA, did: didA }),
  fc.record({ k: fc.constant('race' as const), sid: sidA, ssid: ssidA, did: didA, inv: invA }),
  fc.record({ k: fc.constant('inv' as const), inv: invA }),
  fc.record({ k: fc.constant('lookup' as const), sid: sidA, ssid: ssidA }),
);

/** Whether `inv` covers an entry (sid, ssid) with DID `did`. */
function covers(inv: Inv, sid: number, ssid: number, did: number): boolean {
  switch (inv.k) {
    case 'exact':
      return inv.sid === sid && inv.ssid === ssid;
    case 'sid':
      return sid >= inv.sid && sid < inv.sid + inv.count;
    case 'did':
      return did === inv.did;
    case 'didPasid':
      return did === inv.did && ssid === inv.pasid;
    case 'all':
      return true;
  }
}

function apply(c: ConfigCache, inv: Inv): void {
  if (inv.k === 'exact') c.invalidate(inv.sid, inv.ssid);
  else if (inv.k === 'sid') c.flushSids(inv.sid, inv.count);
  else if (inv.k === 'did') c.flushDid(inv.did);
  else if (inv.k === 'didPasid') c.flushDidPasid(inv.did, inv.pasid);
  else c.flushAll();
}

/** Runs `steps`; returns a description of the first stale hit, or undefined. */
function run(steps: Step[], guard: boolean): string | undefined {
  const c = new ConfigCache(64, 2); // small: evictions happen too
  c.fillGuard = guard;
  // The model: per key, the (DID, value) pairs filled since the last invalidation covering them.
  const ok = new Map<string, { did: number; value: number }[]>();
  const key = (sid: number, ssid: number): string => `${sid}/${ssid}`;
  const invalidate = (inv: Inv): void => {
    for (const [k, list] of ok) {
      const [sid, ssid] = k.split('/').map(Number) as [number, number];
      ok.set(
        k,
        list.filter((e) => !covers(inv, sid, ssid, e.did)),
      );
    }
  };
  let value = 1;
  for (const s of steps) {
    if (s.k === 'fill' || s.k === 'race') {
      const v = value++;
      const s0 = c.fillSeq(s.sid);
      const c0 = c.fillClock();
      let stale = false;
      if (s.k === 'race') {
        apply(c, s.inv); // the invalidation lands while the fill's fetch is in flight
        invalidate(s.inv);
        stale = covers(s.inv, s.sid, s.ssid, s.did);
      }
      c.fill(s.sid, s.ssid, s.did, [v], s0, c0, 1);
      if (!stale) ok.set(key(s.sid, s.ssid), [...(ok.get(key(s.sid, s.ssid)) ?? []), { did: s.did, value: v }]);
    } else if (s.k === 'inv') {
      apply(c, s.inv);
      invalidate(s.inv);
    } else {
      const did = c.lookup(s.sid, s.ssid, out);
      if (did < 0) continue;
      const allowed = ok.get(key(s.sid, s.ssid)) ?? [];
      if (!allowed.some((e) => e.value === out[0] && e.did === did))
        return `stale hit (${s.sid}, ${s.ssid}) -> value ${out[0]} DID ${did}`;
    }
  }
  return undefined;
}

describe('config cache: model-based', () => {
  const runs = Number(process.env['CONFIG_PROPERTY_RUNS'] ?? 300);

  it('never returns an entry that an invalidation covered, with fills racing invalidations', () => {
    fc.assert(
      fc.property(fc.array(stepA, { maxLength: 80 }), (steps) => run(steps, true) === undefined),
      { numRuns: runs },
    );
  });

  it('negative control: without the fill guard, the same test finds a stale hit', () => {
    const r = fc.check(
      fc.property(fc.array(stepA, { maxLength: 80 }), (steps) => run(steps, false) === undefined),
      { numRuns: 2000, seed: 1 },
    );
    expect(r.failed).toBe(true);
    expect(run(r.counterexample![0], false)).toMatch(/^stale hit/); // it failed for the right reason
    expect(run(r.counterexample![0], true)).toBeUndefined(); // and the guard fixes that very sequence
  });
});
