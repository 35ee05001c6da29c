import { Piscina } from 'piscina';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Access, Iommufd } from '../../src/index.js';
import { X86_LO } from '../../src/pgtable/index.js';
import { Iotlb } from '../../src/cache/index.js';
import { SystemMemory } from '../../src/memory/index.js';
import { ContextTables } from '../../src/translate/index.js';
import type { NestedSafetyConfig, NestedSafetyReport } from './safety-nested.worker.js';
import type { SafetyConfig, SafetyReport } from './safety.worker.js';

/*
 * DESIGN.md invariant 1, "no stale translation after a barrier", through a VT-d nested domain,
 * in hardware nesting (the IOTLB caches the two-stage walk) and in software nesting (the shadow
 * stands in for the walk, under the IOTLB's owner words and sequences). Two device threads
 * translate one IOVA per IOTLB shard all the while; every host page is used by one cycle only (a
 * probe IOAS keeps them all pinned, so no frame is reused), so a result is stale exactly when it
 * is a page whose barrier had completed before the translation started. Two kinds of barrier:
 *
 * - stage-1: each cycle the guest points the IOVA's first-stage leaf at a fresh guest page (its
 *   own host page), then clears the leaf and invalidates (IOMMU_HWPT_INVALIDATE vtd-s1, a range
 *   of SPAN pages that ends with the IOVA's): the return of hwptInvalidate is the barrier. Half
 *   the IOVAs are also invalidated right after the map, as a caching-mode guest does (software
 *   nesting: ShadowSync prefetches the entry, and translations hit it); the other half are not
 *   (the first translation misses the shadow, walks and fills it).
 * - stage-2: the guest's leaf stays; each cycle the VMM maps a fresh host page at the guest page
 *   behind it (IOMMU_IOAS_MAP), then unmaps it (IOMMU_IOAS_UNMAP): the return of ioasUnmap is the
 *   barrier (software nesting: the shadow's reverse index, ShadowTable.dropGpaInShard).
 *
 * On even cycles the main thread lets both device threads finish two passes before the barrier
 * (they cache the mapping, so the barrier has entries to remove); on odd cycles it does not (the
 * barrier races their walks and fills). By default one device thread is the production
 * translator (attachTranslator) and one waits 20 µs before each fill, which widens the window in
 * which a barrier races a fill. The guest writes its leaf entries with one atomic 32-bit store
 * (the upper half is always 0), as a guest kernel writes a PTE: fd.memory.write copies bytes, and
 * a device thread could see a torn entry. NESTED_SAFETY_CYCLES makes it a long soak.
 */

const CYCLES = Number(process.env['NESTED_SAFETY_CYCLES'] ?? 600);
/** The test's IOVAs: one 2 MiB region of the first stage per IOTLB shard (NestedVm picks them). */
const SHARDS = 4;
/** Guest-physical [0, TABLES): the first-stage tables (one IOAS area, never unmapped). */
const TABLES = 0x10_0000;
const ROOT = 0x1000;
/** Where the probe IOAS maps all of the VMM's memory, to learn each page's host frame. */
const PROBE = 0x1_0000_0000;
const MEMORY_BYTES = 128 * 2 ** 20;
/** Pages in a stage-1 barrier's invalidation (see `RunOptions.span`). */
const SPAN = Number(process.env['NESTED_SAFETY_SPAN'] ?? 64);
const PTE_BITS = X86_LO.P | X86_LO.RW | X86_LO.US;

type Mode = 'hardware' | 'software';
type Barrier = 'stage-1' | 'stage-2';

/**
 * A device thread: its fill guards and delay (see NestedSafetyConfig), or `plain`: safety.worker.ts,
 * whose translator has the IOTLB but not the shadow.
 */
type Walker = WalkerFill | 'plain';
type WalkerFill = Pick<NestedSafetyConfig, 'iotlbGuard' | 'shadowGuard' | 'fillDelayUs'>;

/** The production translator (attachTranslator). */
const PRODUCTION: WalkerFill = { iotlbGuard: true, shadowGuard: true, fillDelayUs: 0 };
/** A guarded translator that waits between each walk (or shadow hit) and its fill: invalidations race its fills far more often. */
const SLOW: WalkerFill = { iotlbGuard: true, shadowGuard: true, fillDelayUs: 20 };

interface RunOptions {
  mode: Mode;
  barrier: Barrier;
  cycles: number;
  ats?: boolean;
  /** Stage-1 barriers: the pages each barrier's invalidation covers, ending with the test IOVA's. */
  span?: number;
  /** The two device threads (default: one production, one slow). */
  walkers?: [Walker, Walker];
}

/** The one-line JSON summary of a run. */
interface Summary {
  mode: Mode;
  barrier: Barrier;
  ats: boolean;
  walkers: string[];
  cycles: number;
  translations: number;
  /** Translations that returned a page (the others faulted). */
  mapped: number;
  stale: number;
  /** Results that are no test page at all. */
  unknown: number;
  /** The device threads' translator counters. */
  hits: number;
  misses: number;
  atcHits: number;
  shadowHits: number;
  shadowMisses: number;
  /** The IOTLB shard of each IOVA. */
  shards: number[];
  discardedFills: number;
  invalidated: number;
  /** The shadow's counters (fills, syncs' rewrites, prefetches and drops, stage-2 drops...). */
  shadow: ReturnType<Iommufd['cacheStats']>['shadow'];
  samples: string[];
}

interface RunResult {
  reports: (NestedSafetyReport | SafetyReport)[];
  summary: Summary;
  stats: ReturnType<Iommufd['cacheStats']>;
}

let pool: Piscina<NestedSafetyConfig | SafetyConfig, NestedSafetyReport | SafetyReport>;
const NESTED_WORKER = new URL('./safety-nested.worker.ts', import.meta.url).href;
const PLAIN_WORKER = new URL('./safety.worker.ts', import.meta.url).href;

beforeAll(() => {
  // One pool for the file: the tsx start-up of a worker costs more than a run.
  pool = new Piscina({
    filename: NESTED_WORKER,
    execArgv: [...process.execArgv, '--import', 'tsx'],
    minThreads: 2,
    maxThreads: 2,
    idleTimeout: 60_000,
  });
  pool.on('error', () => {});
});

afterAll(async () => {
  await pool.destroy();
});

/** A VM with a VT-d nested domain over guest RAM at GPA 0 of an IOAS, and a probe device that knows every host frame. */
class NestedVm {
  readonly fd = Iommufd.open({
    memoryBytes: MEMORY_BYTES,
    iotlb: { entries: 4096, shards: SHARDS },
    shadow: { entries: 4096 },
  });
  readonly ioas = this.fd.ioasAlloc();
  readonly dev: number;
  readonly nested: number;
  /** The test's IOVAs, one per IOTLB shard of the nested domain. */
  readonly iovas: number[];
  /** The VMM's memory: the tables' guest RAM, then one page per (cycle, IOVA). */
  readonly va: bigint;
  readonly #phys: Int32Array;
  readonly #probe: number;
  #nextTable = ROOT + 0x1000;

  constructor(mode: Mode, barrier: Barrier, pages: number, ats: boolean) {
    const fd = this.fd;
    this.va = fd.memory.mmap(BigInt(TABLES + pages * 4096));
    const probeIoas = fd.ioasAlloc();
    this.#probe = fd.deviceBind({ iommu: 'vtd' });
    fd.deviceAttach(this.#probe, probeIoas);
    fd.ioasMap(probeIoas, {
      userVa: this.va,
      length: BigInt(TABLES + pages * 4096),
      iova: BigInt(PROBE),
      flags: { fixedIova: true },
    });
    // Stage-1 barriers: all guest RAM (tables and data pages) is one area. Stage-2 barriers: only
    // the tables; each cycle maps its data pages one 4 KiB area at a time.
    fd.ioasMap(this.ioas, {
      userVa: this.va,
      length: BigInt(barrier === 'stage-1' ? TABLES + pages * 4096 : TABLES),
      iova: 0n,
      flags: { fixedIova: true, readable: true, writeable: true },
    });
    this.dev = fd.deviceBind({ iommu: 'vtd', ats });
    const parent = fd.hwptAlloc({ devId: this.dev, ptId: this.ioas, flags: { nestParent: true }, nesting: mode });
    this.nested = fd.hwptAlloc({
      devId: this.dev,
      ptId: parent,
      dataType: 'vtd-s1',
      data: { pgtblAddr: ROOT, addrWidth: 48 },
    });
    fd.deviceAttach(this.dev, this.nested);
    const plane = fd.dataPlane();
    this.#phys = new Int32Array(plane.memory.phys);
    // One 2 MiB region per shard: the first ones above 4 MiB that the domain's tag sends there.
    const t = plane.iotlb!;
    const iotlb = new Iotlb(t.entries, t.shards, t.handles);
    const tables = new ContextTables(new SystemMemory(0, plane.memory).phys, undefined, plane.tables);
    const domain = tables.ridDomain(fd.deviceSlot(this.dev));
    const byShard = new Map<number, number>();
    for (let region = 2; byShard.size < t.shards; region++) {
      const iova = region * 2 ** 21 + 0x10_0000; // mid-region: a range invalidation ending here stays in it
      const shard = iotlb.shardOf(domain, iova);
      if (!byShard.has(shard)) byShard.set(shard, iova);
    }
    this.iovas = [...byShard.values()].sort((a, b) => a - b);
  }

  /** The host address of byte `offset` of the VMM's memory (guest-physical, for the tables). */
  host(offset: number): number {
    const pa = this.fd.translate(this.#probe, PROBE + offset, Access.Read);
    if (pa < 0) throw new Error(`probe fault at 0x${offset.toString(16)}`);
    return pa;
  }

  #read64(gpa: number): bigint {
    return new DataView(this.fd.memory.read(this.va + BigInt(gpa), 8).buffer).getBigUint64(0, true);
  }

  #write64(gpa: number, v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.fd.memory.write(this.va + BigInt(gpa), b);
  }

  /**
   * Builds the first-stage tables down to `iova`'s leaf table (before any device thread runs)
   * and returns the int32 index of its leaf entry's low word in physical memory.
   */
  leafWord(iova: number): number {
    let table = ROOT;
    for (let level = 0; level < 3; level++) {
      const at = table + (Math.floor(iova / 2 ** (39 - 9 * level)) % 512) * 8;
      let e = this.#read64(at);
      if ((e & 1n) === 0n) {
        const next = this.#nextTable;
        this.#nextTable += 0x1000;
        if (next >= TABLES) throw new Error('out of table pages');
        e = BigInt(next | PTE_BITS);
        this.#write64(at, e);
      }
      table = Number(e & 0xf_ffff_ffff_f000n);
    }
    return (this.host(table) + (Math.floor(iova / 4096) % 512) * 8) / 4;
  }

  /** The guest's one-store update of a leaf entry whose upper half is 0. */
  setLeaf(word: number, lo: number): void {
    Atomics.store(this.#phys, word, lo);
  }

  /** Invalidates the `pages` pages that end with `iova`'s. */
  invalidate(iova: number, pages = 1): void {
    this.fd.hwptInvalidate(this.nested, {
      dataType: 'vtd-s1',
      entries: [{ addr: iova - (pages - 1) * 4096, npages: pages }],
    });
  }
}

async function run(o: RunOptions): Promise<RunResult> {
  const n = SHARDS;
  const pages = o.cycles * n;
  const vm = new NestedVm(o.mode, o.barrier, pages, o.ats === true);
  const { fd, iovas } = vm;
  const frames = new Int32Array(pages);
  for (let p = 0; p < pages; p++) frames[p] = vm.host(TABLES + p * 4096) / 4096;
  const frameCycle = new Int32Array(new SharedArrayBuffer((4 * MEMORY_BYTES) / 4096)).fill(-1);
  const kinds: Walker[] = o.walkers ?? [PRODUCTION, SLOW];
  const control = new Int32Array(new SharedArrayBuffer(4 * 6));
  const counted = kinds.every((w) => w !== 'plain');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  /**
   * Gives the device threads the CPUs for a moment (the main thread sleeps rather than spins: a
   * machine may have fewer cores than threads). With walkers that count their passes, waits (for
   * a few ms at most) until each has finished two more passes over the IOVAs: they see this
   * cycle's mappings, and cache them, before the barrier removes them.
   */
  const pace = (): void => {
    if (!counted) {
      Atomics.wait(nap, 0, 0, 0.2);
      return;
    }
    const from = [Atomics.load(control, 4), Atomics.load(control, 5)];
    const until = performance.now() + 5;
    while (
      (Atomics.load(control, 4) < from[0]! + 2 || Atomics.load(control, 5) < from[1]! + 2) &&
      performance.now() < until
    )
      Atomics.wait(nap, 0, 0, 0.02);
  };
  const leaves = iovas.map((iova) => vm.leafWord(iova));
  // Stage-2 barriers: guest page j stands behind IOVA j for the whole run.
  const gpaOf = (j: number): number => TABLES + j * 4096;
  if (o.barrier === 'stage-2') leaves.forEach((w, j) => vm.setLeaf(w, gpaOf(j) | PTE_BITS));
  const base = { dataPlane: fd.dataPlane(), control: control.buffer, frameCycle: frameCycle.buffer };
  const dev = fd.deviceSlot(vm.dev);
  const walkers = kinds.map((w) =>
    w === 'plain'
      ? pool.run({ ...base, dev, iovas, fillGuard: true }, { filename: PLAIN_WORKER })
      : pool.run({ ...base, dev, iovas, ...w }),
  );
  const started = Date.now();
  while (Atomics.load(control, 2) < 2) {
    if (Date.now() - started > 20_000) throw new Error('the device threads did not start');
    await new Promise((r) => setTimeout(r, 5));
  }
  for (let k = 0; k < o.cycles; k++) {
    if (o.barrier === 'stage-1') {
      for (let j = 0; j < n; j++) {
        const p = k * n + j;
        frameCycle[frames[p]!] = k;
        vm.setLeaf(leaves[j]!, (TABLES + p * 4096) | PTE_BITS);
        if (j % 2 === 0) vm.invalidate(iovas[j]!); // a caching-mode guest invalidates after a map too
      }
      if (k % 2 === 0) pace(); // odd cycles: the barrier races the walks and fills of the new mappings
      for (let j = 0; j < n; j++) {
        vm.setLeaf(leaves[j]!, 0);
        // Returns after the shadow and the IOTLB (and ATC) forgot the page. A range that ends with
        // the page, as a guest unmapping a buffer sends: a software-nesting sync re-walks the pages
        // in order, so the page's entry outlives the sync's start by a while.
        vm.invalidate(iovas[j]!, o.span ?? SPAN);
      }
    } else {
      for (let j = 0; j < n; j++) {
        const p = k * n + j;
        frameCycle[frames[p]!] = k;
        fd.ioasMap(vm.ioas, {
          userVa: vm.va + BigInt(TABLES + p * 4096),
          length: 4096n,
          iova: BigInt(gpaOf(j)),
          flags: { fixedIova: true, readable: true, writeable: true },
        });
      }
      if (k % 2 === 0) pace(); // odd cycles: the barrier races the walks and fills of the new mappings
      for (let j = 0; j < n; j++) fd.ioasUnmap(vm.ioas, BigInt(gpaOf(j)), 4096n);
    }
    Atomics.store(control, 1, k + 1); // the barrier: every mapping of cycles <= k is gone
  }
  Atomics.store(control, 0, 1);
  const reports = await Promise.all(walkers);
  const stats = fd.cacheStats();
  await fd.close();
  const sum = (f: (r: NestedSafetyReport) => number | undefined): number =>
    reports.reduce((a, r) => a + (f(r as NestedSafetyReport) ?? 0), 0);
  const summary: Summary = {
    mode: o.mode,
    barrier: o.barrier,
    ats: o.ats === true,
    walkers: kinds.map((w) =>
      w === 'plain'
        ? 'no-shadow'
        : `${w.iotlbGuard ? '' : 'iotlb-unguarded,'}${w.shadowGuard ? '' : 'shadow-unguarded,'}delay=${w.fillDelayUs}us`,
    ),
    cycles: o.cycles,
    translations: sum((r) => r.translations),
    mapped: sum((r) => r.mapped),
    stale: sum((r) => r.stale),
    unknown: sum((r) => r.unknown),
    hits: sum((r) => r.hits),
    misses: sum((r) => r.misses),
    atcHits: sum((r) => r.atcHits),
    shadowHits: sum((r) => r.shadowHits),
    shadowMisses: sum((r) => r.shadowMisses),
    shards: reports.find((r): r is NestedSafetyReport => 'shards' in r)?.shards ?? [],
    discardedFills: stats.discardedFills,
    invalidated: stats.invalidated,
    shadow: stats.shadow,
    samples: reports.flatMap((r) => r.samples).slice(0, 3),
  };
  console.log('nested safety:', JSON.stringify(summary));
  return { reports, summary, stats };
}

/** The common checks of a run that must keep the invariant. */
function expectSafe({ reports, summary }: RunResult): void {
  expect(reports.flatMap((r) => r.samples)).toEqual([]);
  expect(summary.stale).toBe(0);
  expect(summary.unknown).toBe(0);
  expect(summary.translations).toBeGreaterThan(5_000); // the walkers really ran alongside
  expect(summary.mapped).toBeGreaterThan(0); // and saw live mappings, not just faults
}

describe('nested safety: no stale translation after a barrier (DESIGN.md invariant 1), VT-d nested domains', () => {
  const cases = (['hardware', 'software'] as const).flatMap((mode) =>
    (['stage-1', 'stage-2'] as const).map((barrier) => ({ mode, barrier })),
  );

  it.each(cases)('$mode nesting, $barrier barrier: no device thread sees a removed page', async ({ mode, barrier }) => {
    const r = await run({ mode, barrier, cycles: CYCLES });
    expectSafe(r);
    expect(new Set(r.summary.shards).size).toBe(SHARDS); // one IOVA per shard
    const sh = r.stats.shadow;
    if (mode === 'hardware') {
      expect(r.summary.shadowHits + r.summary.shadowMisses).toBe(0);
      expect(sh.fills).toBe(0);
    } else {
      expect(r.summary.shadowMisses).toBeGreaterThan(0); // translations went through the shadow
      expect(sh.fills).toBeGreaterThan(0);
      if (barrier === 'stage-1') {
        expect(sh.prefetched).toBeGreaterThan(0); // ShadowSync after a map
        expect(sh.dropped).toBeGreaterThan(0); // ShadowSync after a clear
      } else {
        expect(sh.s2Dropped).toBeGreaterThan(0); // the reverse index found the entries
      }
    }
  });

  it('software nesting, stage-1 barrier, two slow device threads: a shadow hit that raced a sync never refills the IOTLB', async () => {
    // Both threads wait between a shadow hit and its IOTLB fill, so the IOTLB often lacks the
    // page while a barrier's sync re-walks the range (the even IOVAs: prefetched, then hit): a
    // translation that reads the sequence and hits the shadow in the middle of the sync must not
    // get its fill in after the sync (a stale IOTLB entry for every later translation).
    const r = await run({ mode: 'software', barrier: 'stage-1', cycles: CYCLES, walkers: [SLOW, SLOW] });
    expectSafe(r);
    expect(r.summary.shadowHits).toBeGreaterThan(0);
  });

  it.each(cases)(
    '$mode nesting, $barrier barrier, ATS device: the device-TLB keeps it too',
    async ({ mode, barrier }) => {
      const r = await run({ mode, barrier, cycles: CYCLES, ats: true });
      expectSafe(r);
      expect(r.summary.atcHits).toBeGreaterThan(0);
    },
  );
});

/** Both device threads slow, with `guards` off. */
function unguarded(guards: { iotlbGuard?: boolean; shadowGuard?: boolean }): [Walker, Walker] {
  const w: WalkerFill = { ...SLOW, ...guards };
  return [w, w];
}

async function staleWithin(attempts: number, o: RunOptions): Promise<number> {
  let stale = 0;
  for (let attempt = 0; attempt < attempts && stale === 0; attempt++) stale = (await run(o)).summary.stale;
  return stale;
}

describe('nested safety, negative controls (software nesting): the check does catch stale translations', () => {
  it.each(['stage-1', 'stage-2'] as const)(
    '%s barrier: with the shadow fill guard off in the device threads, stale translations appear',
    async (barrier) => {
      const o = { mode: 'software', barrier, cycles: CYCLES, walkers: unguarded({ shadowGuard: false }) } as const;
      expect(await staleWithin(5, o)).toBeGreaterThan(0);
    },
  );

  it('stage-1 barrier: with the IOTLB fill guard off (after a shadow hit), stale translations appear', async () => {
    const o = {
      mode: 'software',
      barrier: 'stage-1',
      cycles: CYCLES,
      walkers: unguarded({ iotlbGuard: false }),
    } as const;
    expect(await staleWithin(5, o)).toBeGreaterThan(0);
  });

  it('stage-2 barrier: a device thread whose translator lacks the shadow (safety.worker.ts) fills IOTLB entries the reverse index cannot find', async () => {
    const r = await run({ mode: 'software', barrier: 'stage-2', cycles: 100, walkers: ['plain', 'plain'] });
    expect(r.summary.stale).toBeGreaterThan(0);
  });
});
