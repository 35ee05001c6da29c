/**
 * The bench library (src/bench): its correctness gate must catch a dropped invalidation, its
 * command stream must follow from the seed, and its figures (percentiles, spreads, comparisons)
 * must say what they claim.
 */
import { describe, expect, it } from 'vitest';
import {
  BenchOptionError,
  compareDocuments,
  LatencyHistogram,
  Prng,
  resolveBenchOptions,
  runOnce,
  runSuite,
  spread,
  type BenchState,
  type BenchDocument,
  type BenchResult,
  type BenchRun,
} from '../../src/bench/index.js';
import { IovaSlots } from '../../src/bench/iova-slots.js';
import { Access } from '../../src/pgtable/index.js';

describe('the correctness gate', () => {
  it.each(['vtd', 'smmu'] as const)(
    '%s: invalidations dropped at the end of a run leave stale entries that the final probe finds',
    async (vendor) => {
      // 300 measured ops after 30 warm-up ones, one IOTLB invalidation each: drop the last 5.
      const o = resolveBenchOptions({
        vendor,
        scenario: 'strict',
        ops: 300,
        liveEntries: 64,
        dropInvalidationsFrom: 325,
      });
      const r = await runOnce(o);
      expect(r.correctness.droppedInvalidations).toBe(5);
      expect(r.correctness.ok).toBe(false);
      expect(r.correctness.stale).toBeGreaterThan(0);
      const probe = r.correctness.failures.filter((f) => f.when === 'final-probe');
      expect(probe.length).toBeGreaterThan(0);
      expect(probe[0]!.kind).toBe('stale');
      expect(probe[0]!.message).toMatch(/IOVA 0x[0-9a-f]+ translated to PA 0x[0-9a-f]+ but the guest unmapped it/);
    },
  );

  it.each([
    ['vtd', 64, 1200],
    ['smmu', 256, 1500],
  ] as const)(
    'faults on %s with %i DMAs in flight: a page left mapped (its unmap and invalidation dropped) stops faulting, and the gate says so',
    async (vendor, depth, ops) => {
      // 1024 pages cycle; from op 100 on each page stays mapped, so ops 1124.. find a translation.
      const o = resolveBenchOptions({
        vendor,
        scenario: 'faults',
        ops,
        warmupOps: 0,
        liveEntries: depth,
        dropInvalidationsFrom: 100,
      });
      const r = await runOnce(o);
      expect(r.correctness.ok).toBe(false);
      expect(r.correctness.droppedInvalidations).toBe(ops - 100);
      expect(r.correctness.stale).toBe(ops - 1124 + 1); // the DMAs that did not fault, and the queue count
      expect(r.correctness.wrongAddress).toBe(0);
      expect(r.correctness.failures[0]).toMatchObject({ kind: 'stale', when: 'during-run' });
      expect(r.correctness.failures[0]!.message).toMatch(/^DMA 1124 at IOVA 0x[0-9a-f]+: 0 retries, 0 requests/);
      expect(r.correctness.failures.at(-1)).toMatchObject({ kind: 'stale', when: 'final-probe' });
    },
  );

  it('faults: without the hook every DMA faults once and lands in the page the handler mapped', async () => {
    const r = await runOnce(resolveBenchOptions({ vendor: 'smmu', scenario: 'faults', ops: 1200, warmupOps: 0 }));
    expect(r.correctness).toMatchObject({ ok: true, stale: 0, wrongAddress: 0, droppedInvalidations: 0 });
    expect(r.correctness.checkedDuringRun).toBe(1200);
  });

  it.each([
    ['vtd', 1],
    ['vtd', 512],
    ['smmu', 300],
  ] as const)(
    'faults on %s with %i DMAs in flight: each lands in its own page, and the queue adds up',
    async (vendor, depth) => {
      // With several in flight, a completion must be matched to its own write: a mix-up lands the
      // wrong byte in a page, or checks a page that did not fault.
      const r = await runOnce(
        resolveBenchOptions({ vendor, scenario: 'faults', ops: 3000, warmupOps: 100, liveEntries: depth }),
      );
      expect(r.correctness).toMatchObject({ ok: true, stale: 0, wrongAddress: 0, checkedDuringRun: 3000 });
      expect(r.barriers).toBe(3000); // one answer per fault
      expect(r.commands).toBe(6000);
    },
  );

  it('faults for a duration: the run lets timers fire while DMAs complete from microtasks', async () => {
    // Completions resubmit from microtasks; without its pauses the run would starve the event
    // loop until the end, and this interval would not fire once before runOnce returns.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      const r = await runOnce(
        resolveBenchOptions({ vendor: 'smmu', scenario: 'faults', durationMs: 400, warmupOps: 0 }),
      );
      expect(r.correctness.ok).toBe(true);
      expect(r.ops).toBeGreaterThan(0);
      expect(ticks).toBeGreaterThan(0);
    } finally {
      clearInterval(timer);
    }
  });

  it('faults: more DMAs in flight than a PRI device has group indices is refused', async () => {
    await expect(
      runOnce(resolveBenchOptions({ vendor: 'vtd', scenario: 'faults', ops: 10, liveEntries: 513 })),
    ).rejects.toThrow(/at most 512 writes in flight/);
  });

  it('a DMA after a dropped invalidation reaches the old page: found during the run', async () => {
    const o = resolveBenchOptions({
      vendor: 'smmu',
      scenario: 'strict',
      ops: 300,
      liveEntries: 16,
      dropInvalidationsFrom: 0,
    });
    const r = await runOnce(o);
    expect(r.correctness.ok).toBe(false);
    expect(r.correctness.wrongAddress).toBeGreaterThan(0);
    expect(r.correctness.failures[0]).toMatchObject({ kind: 'wrong-address', when: 'during-run' });
  });

  it('without DMA nothing is cached, so dropped invalidations harm nothing and the check passes', async () => {
    const o = resolveBenchOptions({
      vendor: 'vtd',
      scenario: 'strict',
      ops: 300,
      dma: false,
      dropInvalidationsFrom: 0,
    });
    const r = await runOnce(o);
    expect(r.correctness.droppedInvalidations).toBe(330);
    expect(r.correctness).toMatchObject({ ok: true, stale: 0, wrongAddress: 0, faults: 0 });
  });

  it.each(['strict', 'lazy', 'range', 'asid-churn', 'mixed', 'multi-guest'] as const)(
    '%s passes the check on both vendors, every page ever mapped probed',
    async (scenario) => {
      for (const vendor of ['vtd', 'smmu'] as const) {
        const r = await runOnce(resolveBenchOptions({ vendor, scenario, ops: 200, batch: 16 }));
        expect(r.correctness, `${vendor} ${scenario}`).toMatchObject({
          ok: true,
          stale: 0,
          wrongAddress: 0,
          faults: 0,
        });
        expect(r.correctness.probedPages).toBeGreaterThan(0);
      }
    },
  );
});

describe('the command stream', () => {
  const shape = (r: BenchRun): number[] => [
    r.commands,
    r.barriers,
    r.doorbells,
    r.cache.fills,
    r.cache.invalidated,
    r.correctness.probedPages,
    r.correctness.checkedDuringRun,
  ];

  it('follows from the seed: the same seed, the same commands; another seed, others', async () => {
    const run = (seed: number): Promise<BenchRun> =>
      runOnce(resolveBenchOptions({ vendor: 'smmu', scenario: 'mixed', ops: 300, seed }));
    const [a, b, c] = [await run(3), await run(3), await run(4)];
    expect(shape(a)).toEqual(shape(b));
    expect(shape(c)).not.toEqual(shape(a));
  });

  it('lazy: one barrier per --batch unmaps', async () => {
    const r = await runOnce(
      resolveBenchOptions({ vendor: 'vtd', scenario: 'lazy', ops: 640, warmupOps: 0, batch: 64 }),
    );
    // The initial population fills no flush queue; every 64th unmap after it drains one.
    expect(r.barriers).toBe(640 / 64 - 1);
  });

  it('open loop: operations start on their schedule', async () => {
    const r = await runOnce(resolveBenchOptions({ vendor: 'vtd', scenario: 'strict', ops: 200, rate: 10000 }));
    expect(r.schedule?.rate).toBe(10000);
    expect(r.wallMs).toBeGreaterThanOrEqual(19.9);
  });
});

describe('the state at the end of a run', () => {
  it.each(['vtd', 'smmu'] as const)(
    '%s: the hook sees the live units and, per device, what the guest maps, which the unit translates so',
    async (vendor) => {
      const o = resolveBenchOptions({ vendor, scenario: 'mixed', ops: 100, liveEntries: 64 });
      let seen: BenchState | undefined;
      let translated = 0;
      const r = await runOnce(o, undefined, (s) => {
        seen = s;
        const u = s.units[0]!;
        for (const d of s.devices) {
          for (const m of d.mappings) {
            const last = m.iova + (m.pages - 1) * 4096;
            expect(u.unit.translate({ sid: d.sid }, last, Access.Read)).toBe(u.unit.ram.gpaToPa(m.gpa + last - m.iova));
            translated++;
          }
        }
      });
      expect(r.correctness.ok).toBe(true);
      const s = seen!;
      expect(s.options).toBe(o);
      expect(s.units.map((u) => u.vendor)).toEqual([vendor]);
      expect(s.devices.map((d) => d.sid)).toEqual([0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17]);
      expect(s.devices.map((d) => d.ats)).toEqual([false, true, false, true, false, true, false, true]);
      // Every device holds its share of the live entries, by IOVA, in its own domain.
      for (const d of s.devices) {
        expect(d.mappings).toHaveLength(8);
        expect(d.mappings.map((m) => m.iova)).toEqual([...d.mappings.map((m) => m.iova)].sort((a, b) => a - b));
      }
      expect(new Set(s.devices.map((d) => d.domain)).size).toBe(8);
      expect(translated).toBe(64);
    },
  );

  it('multi-guest: one unit per guest, each device on its unit', async () => {
    let units = 0;
    let perUnit: number[] = [];
    await runOnce(
      resolveBenchOptions({ vendor: 'smmu', scenario: 'multi-guest', ops: 50, guests: 3 }),
      undefined,
      (s) => {
        units = s.units.length;
        perUnit = s.devices.map((d) => d.unit);
      },
    );
    expect(units).toBe(3);
    expect(perUnit).toEqual([0, 1, 2]);
  });
});

describe('host DMA on worker threads', () => {
  it('workers translate a host device the whole run, without a fault, and the check still passes', async () => {
    const o = resolveBenchOptions({ vendor: 'vtd', scenario: 'strict', durationMs: 400, hostDmaThreads: 2 });
    const r = await runOnce(o);
    expect(r.hostDma).toMatchObject({ threads: 2, faults: 0 });
    expect(r.hostDma!.translations).toBeGreaterThan(0);
    expect(r.hostDma!.translationsPerSecond).toBeGreaterThan(0);
    expect(r.correctness.ok).toBe(true);
  });

  it('is off by default, and a suite passes it to its measured runs', async () => {
    expect(resolveBenchOptions({ vendor: 'smmu' }).hostDmaThreads).toBe(0);
    expect((await runOnce(resolveBenchOptions({ vendor: 'smmu', ops: 50 }))).hostDma).toBeUndefined();
    const [res] = await runSuite({ base: { ops: 50, hostDmaThreads: 1 }, vendors: ['smmu'], runs: 1 });
    expect(res!.runs[0]!.hostDma?.threads).toBe(1);
  });
});

describe('figures', () => {
  it('Prng: a sequence that follows from the seed, and integers in range', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(new Prng(43).next()).not.toBe(xs[0]);
    const r = new Prng(1);
    for (let i = 0; i < 1000; i++) {
      const v = r.below(7);
      expect(Number.isInteger(v) && v >= 0 && v < 7).toBe(true);
    }
  });

  it('LatencyHistogram: percentiles within a bucket (±4.5 %) of the exact ones', () => {
    const h = new LatencyHistogram();
    const samples: number[] = [];
    for (let i = 1; i <= 10000; i++) {
      const ns = 1000 + ((i * 7919) % 10000) * 10;
      samples.push(ns);
      h.record(ns);
    }
    samples.sort((x, y) => x - y);
    const s = h.summary();
    expect(s.samples).toBe(10000);
    for (const [q, got] of [
      [0.5, s.p50],
      [0.99, s.p99],
      [0.999, s.p999],
    ] as const) {
      const exact = samples[Math.ceil(q * samples.length) - 1]! / 1000;
      expect(Math.abs(got / exact - 1)).toBeLessThan(0.045);
    }
    expect(s.min).toBe(1);
    expect(h.buckets(2).reduce((n, b) => n + b.count, 0)).toBe(10000);
  });

  it('spread: the median of an even count is the mean of the middle two', () => {
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4 });
  });

  it('IovaSlots: a lazily unmapped slot is reused only after the flush queue drained', () => {
    const s = new IovaSlots(2);
    const rng = new Prng(1);
    const first = s.takeFree(rng);
    s.takeFree(rng);
    s.releaseLive(s.liveAt(0) === first ? 0 : 1, true);
    expect(() => s.takeFree(rng)).toThrow(RangeError);
    s.settlePending();
    expect(s.takeFree(rng)).toBe(first);
  });

  it('options out of range are BenchOptionErrors', () => {
    expect(() => resolveBenchOptions({ vendor: 'vtd', shards: 0 })).toThrow(BenchOptionError);
    expect(() => resolveBenchOptions({ vendor: 'vtd', scenario: 'range', liveEntries: 1 << 20 })).toThrow(/do not fit/);
  });

  it('compareDocuments: a change outside both noise bands has a verdict, inside them it is noise', () => {
    const o = resolveBenchOptions({ vendor: 'vtd' });
    const band = (median: number, min: number, max: number) => ({ median, min, max });
    const result = (cps: ReturnType<typeof band>, p99: ReturnType<typeof band>): BenchResult => {
      const s = band(1, 1, 1);
      return {
        vendor: 'vtd',
        scenario: 'strict',
        options: o,
        workload: '',
        summary: {
          commandsPerSecond: cps,
          barriersPerSecond: s,
          opsPerSecond: s,
          barrierP50Us: s,
          barrierP99Us: p99,
          barrierP999Us: s,
          iotlbHitRate: s,
          overInvalidations: s,
        },
        runs: [{}, {}, {}] as BenchRun[],
        ok: true,
      };
    };
    const doc = (r: BenchResult): BenchDocument =>
      ({ tool: 'ioasid bench', schema: 1, results: [r] }) as unknown as BenchDocument;
    const cmp = compareDocuments(
      doc(result(band(100, 95, 105), band(10, 9, 11))),
      doc(result(band(150, 140, 160), band(10.5, 9.5, 12))),
    );
    const row = (m: string) => cmp.rows.find((r) => r.metric === m)!;
    expect(row('commandsPerSecond')).toMatchObject({ verdict: 'better', change: 0.5 });
    expect(row('barrierP99Us').verdict).toBe('within noise');
    expect(cmp.unmatched).toEqual([]);
  });
});
