/**
 * Issue 8, "Atomic replace under DMA" (README "The thread model", DESIGN.md "Nesting, shadow
 * updates and replace"): device threads translate continuously while the main thread replaces
 * RIDs and PASIDs back and forth between two domains that map the same IOVAs to different host
 * pages. Every translation must return the address of a domain that was current at some moment of
 * the translation (a generation window, see replace.worker.ts): never a fault, never an address of
 * the wrong domain, never one of neither. Replace and detach drop the device's ATC entries, and a
 * replaced domain's descriptor and tables are reclaimed only after the grace period.
 *
 * REPLACE_UNDER_DMA_REPLACES sets the size of the main run (default 10^5 replaces).
 */
import type { Piscina } from 'piscina';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Iotlb } from '../../src/cache/index.js';
import { Access, Iommufd, TranslateFault } from '../../src/index.js';
import { SystemMemory } from '../../src/memory/index.js';
import {
  ContextTables,
  DomainFormat,
  MAX_DEVICES,
  NO_PASID,
  Translator,
  type DataPlaneHandles,
} from '../../src/translate/index.js';
import { POISON } from './check.js';
import {
  buildRig,
  domainIndex,
  IOVA_BASE,
  PASID,
  pasidOpt,
  runReplaceUnderDma,
  translateAll,
  walkerPool,
  type RunSummary,
  type Target,
} from './replace-rig.js';
import { judgeReplace, PAGE, Verdict, type ReplaceWalkerConfig, type ReplaceWalkerReport } from './replace.worker.js';

const REPLACES = Number(process.env['REPLACE_UNDER_DMA_REPLACES'] ?? 100_000);

/** Prints the one-line summary of a run, with its first two anomalies. */
function report(name: string, r: RunSummary): void {
  const { samples, faultCodes, ...totals } = r;
  console.log(
    `${name}:`,
    JSON.stringify({ ...totals, faultCodes, anomalies: samples.length, first: samples.slice(0, 2) }),
  );
}

let pool: Piscina<ReplaceWalkerConfig, ReplaceWalkerReport>;
beforeAll(() => {
  pool = walkerPool();
});
afterAll(async () => {
  await pool.destroy();
});

describe('the generation-window judge', () => {
  it('accepts exactly the domains of the generations in [before, after]', () => {
    const [a, b] = [0x1000, 0x2000];
    expect(judgeReplace(a, a, b, 4, 4)).toBe(Verdict.Ok);
    expect(judgeReplace(b, a, b, 4, 4)).toBe(Verdict.WrongDomain); // only generation 4 (A) was current
    expect(judgeReplace(b, a, b, 5, 5)).toBe(Verdict.Ok);
    expect(judgeReplace(a, a, b, 5, 5)).toBe(Verdict.WrongDomain);
    expect(judgeReplace(a, a, b, 5, 6)).toBe(Verdict.Ok); // the window spans a switch: both
    expect(judgeReplace(b, a, b, 4, 5)).toBe(Verdict.Ok);
    expect(judgeReplace(TranslateFault.NotMapped, a, b, 4, 5)).toBe(Verdict.Fault);
    expect(judgeReplace(TranslateFault.NoDomain, a, b, 4, 4)).toBe(Verdict.Fault);
    expect(judgeReplace(0x3000, a, b, 4, 9)).toBe(Verdict.Illegal);
  });
});

describe('atomic replace under DMA: device threads translate while the main thread replaces', () => {
  it(`vtd, smmuv3 and VT-d nested, RID and PASID, ATS and IOTLB on: ${REPLACES} replaces, every translation from the old domain or the new one`, async () => {
    const r = await runReplaceUnderDma(pool, {
      switching: 'fixed',
      walker: 'sound',
      replaces: REPLACES,
      maxMs: 15_000 * Math.max(1, REPLACES / 100_000), // a bound, not a target: 10^5 replaces take about 1 s
    });
    report('replace-under-dma', r);
    expect({
      violations: r.violations,
      samples: r.samples,
      finalMismatches: r.finalMismatches,
      framesAfterClose: r.framesAfterClose,
    }).toEqual({ violations: 0, samples: [], finalMismatches: 0, framesAfterClose: 0 });
    // The run exercised what it claims: all the replaces, many translations, most of them in a
    // one-generation window (one domain allowed), results from both domains, through the ATC and
    // the IOTLB.
    expect(r.replaces).toBe(REPLACES);
    expect(r.translations).toBeGreaterThan(100_000);
    expect(r.exact).toBeGreaterThan(r.translations / 4);
    expect(r.okA).toBeGreaterThan(0);
    expect(r.okB).toBeGreaterThan(0);
    expect(r.atcHits).toBeGreaterThan(0);
    expect(r.iotlbHits).toBeGreaterThan(0);
  });

  it('negative control: an ATC that replace does not flush serves the old domain, and the check sees it', async () => {
    const r = await runReplaceUnderDma(pool, {
      switching: 'fixed',
      walker: 'private-atc',
      replaces: REPLACES,
      maxMs: 5000,
      stopOnViolation: true,
    });
    report('replace-under-dma, private ATC', r);
    expect(r.wrongDomain).toBeGreaterThan(0);
    expect(r.samples.some((s) => s.verdict === 'wrong-domain' && s.before === s.after)).toBe(true);
    expect(r.framesAfterClose).toBe(0);
  });

  it('negative control: a device context kept across the switch (a config cache not dropped) is seen too', async () => {
    const r = await runReplaceUnderDma(pool, {
      switching: 'fixed',
      walker: 'stale-context',
      replaces: REPLACES,
      maxMs: 5000,
      stopOnViolation: true,
    });
    report('replace-under-dma, stale context', r);
    expect(r.wrongDomain).toBeGreaterThan(0);
    expect(r.framesAfterClose).toBe(0);
  });

  it('replaced HWPTs destroyed under the walkers: no fault and no freed table, as the grace period holds them', async () => {
    const r = await runReplaceUnderDma(pool, {
      switching: 'recycle',
      walker: 'sound',
      replaces: 20_000,
      maxMs: 3000,
    });
    report('replace-under-dma, recycle', r);
    expect({
      violations: r.violations,
      samples: r.samples,
      finalMismatches: r.finalMismatches,
      framesAfterClose: r.framesAfterClose,
    }).toEqual({ violations: 0, samples: [], finalMismatches: 0, framesAfterClose: 0 });
    expect(r.destroyed).toBeGreaterThan(500);
    expect(r.walks).toBeGreaterThan(1000);
    // Some destroys found a walker inside: their descriptors waited for the grace period.
    expect(r.deferred).toBeGreaterThan(0);
  });

  it('negative control: walkers without a reader slot read reclaimed descriptors or tables, and the check sees it', async () => {
    const r = await runReplaceUnderDma(pool, {
      switching: 'recycle',
      walker: 'no-slot',
      replaces: 1_000_000,
      maxMs: 6000,
      stopOnViolation: true,
    });
    report('replace-under-dma, recycle, no reader slot', r);
    expect(r.faults + r.illegal + r.exceptions).toBeGreaterThan(0);
    expect(r.deferred).toBe(0); // nothing held a grace period open
    expect(r.framesAfterClose).toBe(0);
  });
});

describe('replace and detach drop the ATC (one thread, deterministic)', () => {
  it('vtd, smmuv3, VT-d nested, RID and PASID: after a replace, the next translation gives the new domain, not a cached old one', async () => {
    const rig = buildRig();
    const { fd, targets } = rig;
    const iova = IOVA_BASE + 3 * PAGE + 0x40;
    for (const t of targets) {
      const read = (): number => fd.translate(t.devId, iova, Access.Read, t.pasid);
      expect(read(), t.label).toBe(t.paA[3]! + 0x40); // fills the ATC
      const hits = fd.cacheStats().atcHits;
      expect(read(), t.label).toBe(t.paA[3]! + 0x40);
      expect(fd.cacheStats().atcHits, `${t.label}: the second translation is an ATC hit`).toBe(hits + 1);
      fd.deviceReplace(t.devId, t.hwptB, pasidOpt(t));
      expect(read(), `${t.label} after replace A -> B`).toBe(t.paB[3]! + 0x40);
      expect(fd.cacheStats().atcHits, `${t.label}: not from the ATC`).toBe(hits + 1);
      expect(read(), t.label).toBe(t.paB[3]! + 0x40);
      fd.deviceReplace(t.devId, t.hwptA, pasidOpt(t));
      expect(read(), `${t.label} after replace B -> A`).toBe(t.paA[3]! + 0x40);
      // Every page, both ways.
      expect(translateAll(rig, t)).toEqual(t.paA.map((pa) => pa + 8));
      fd.deviceReplace(t.devId, t.hwptB, pasidOpt(t));
      expect(translateAll(rig, t)).toEqual(t.paB.map((pa) => pa + 8));
    }
    await fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('after a detach, a cached translation is not served: NoDomain until attached again', async () => {
    const rig = buildRig();
    const { fd, targets } = rig;
    const iova = IOVA_BASE + 7 * PAGE;
    // PASIDs first: the RID of a device with PASIDs attached must stay PASID-compatible.
    for (const t of [...targets.filter((x) => x.pasid !== NO_PASID), ...targets.filter((x) => x.pasid === NO_PASID)]) {
      const read = (): number => fd.translate(t.devId, iova, Access.Read, t.pasid);
      expect(read()).toBe(t.paA[7]);
      expect(read()).toBe(t.paA[7]);
      fd.deviceDetach(t.devId, pasidOpt(t));
      expect(read(), `${t.label} after detach`).toBe(TranslateFault.NoDomain);
      fd.deviceAttach(t.devId, t.hwptB, pasidOpt(t));
      expect(read(), `${t.label} attached to B`).toBe(t.paB[7]);
      fd.deviceDetach(t.devId, pasidOpt(t));
    }
    await fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('a device-TLB fill from a walk that began before the replace is dead on arrival; the same fill without a replace is served', async () => {
    const rig = buildRig();
    const { fd } = rig;
    const atc = attachedAtc(fd.dataPlane());
    const planted = 0x7777_0000;
    for (const t of rig.targets) {
      const tag = Iotlb.tagWord(t.slot, t.pasid === NO_PASID ? 0 : t.pasid);
      const want = Access.Read | 8; // what a translator caches for an unprivileged read
      const page = 9;
      const iova = IOVA_BASE + page * PAGE;
      const read = (at: number): number => fd.translate(t.devId, at, Access.Read, t.pasid);
      // Control: a fill with no switch since its step 1 is served (the ATC is live), as a planted address shows.
      let s0 = atc.fillSeq(tag, iova + PAGE);
      let c0 = atc.fillClock();
      expect(atc.fill(tag, iova + PAGE, planted, 12, want, s0, c0, 60)).toBe(true);
      expect(read(iova + PAGE), `${t.label}: control`).toBe(planted);
      // A walker's step 1 (sequence and clock), then its walk of the old domain A...
      s0 = atc.fillSeq(tag, iova);
      c0 = atc.fillClock();
      fd.deviceReplace(t.devId, t.hwptB, pasidOpt(t));
      // ...whose fill lands after the switch: it must never be served.
      atc.fill(tag, iova, t.paA[page]!, 12, want, s0, c0, 60);
      expect(read(iova), t.label).toBe(t.paB[page]);
      expect(read(iova + PAGE), `${t.label}: the planted entry went with the switch`).toBe(t.paB[page + 1]);
    }
    await fd.close();
    expect(fd.framesInUse()).toBe(0);
  });

  it('a walk that read the device context just before the switch returns the old domain, and its ATC fill never serves a later translation', async () => {
    const rig = buildRig();
    const { fd } = rig;
    const w = switchingTranslator(fd.dataPlane());
    rig.targets.forEach((t, i) => {
      // A page that no translation of this target has put in its ATC yet: the straddling walk
      // must miss the ATC, or it would return before it reads the device context.
      const page = 20 + 2 * i;
      const walk = (p: number): number => w.translator.translate(t.slot, IOVA_BASE + p * PAGE, Access.Read, t.pasid);
      w.tables.hook = () => fd.deviceReplace(t.devId, t.hwptB, pasidOpt(t));
      expect(walk(page), `${t.label}: the walk that straddles the switch`).toBe(t.paA[page]);
      expect(w.tables.hook, `${t.label}: the switch ran inside the walk`).toBeUndefined();
      expect(walk(page), `${t.label}: the next walk`).toBe(t.paB[page]);
      expect(fd.translate(t.devId, IOVA_BASE + page * PAGE, Access.Read, t.pasid), t.label).toBe(t.paB[page]);
      // Likewise with a detach: the straddling walk completes in B, then nothing is served. (B's
      // ATC entry may be a 2 MiB block that covers every page: two replaces empty the device's ATC.)
      fd.deviceReplace(t.devId, t.hwptA, pasidOpt(t));
      fd.deviceReplace(t.devId, t.hwptB, pasidOpt(t));
      w.tables.hook = () => fd.deviceDetach(t.devId, pasidOpt(t));
      expect(walk(page + 1), `${t.label}: the walk that straddles the detach`).toBe(t.paB[page + 1]);
      expect(w.tables.hook, `${t.label}: the detach ran inside the walk`).toBeUndefined();
      expect(walk(page + 1), `${t.label}: after the detach`).toBe(TranslateFault.NoDomain);
      expect(walk(page), `${t.label}: after the detach`).toBe(TranslateFault.NoDomain);
    });
    w.release();
    await fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});

/**
 * Device contexts that run `hook` once, right after a translator has read a device's domain index:
 * the control plane's switch then lands inside that translation, after its context read and
 * before its walk and its cache fills.
 */
class SwitchInsideWalk extends ContextTables {
  hook: (() => void) | undefined;

  override ridDomain(slot: number): number {
    const d = super.ridDomain(slot);
    this.#fire();
    return d;
  }

  override pasidDomain(slot: number, pasid: number): number {
    const d = super.pasidDomain(slot, pasid);
    this.#fire();
    return d;
  }

  #fire(): void {
    const h = this.hook;
    this.hook = undefined;
    h?.();
  }
}

/** A translator over the fd's shared tables and caches, with a reader slot (or none), whose context reads can run a switch. */
function switchingTranslator(
  dp: DataPlaneHandles,
  withSlot = true,
): {
  translator: Translator;
  tables: SwitchInsideWalk;
  memory: SystemMemory;
  slot: number;
  release: () => void;
} {
  const memory = new SystemMemory(0, dp.memory);
  const tables = new SwitchInsideWalk(memory.phys, undefined, dp.tables);
  const t = dp.iotlb!;
  const slot = withSlot ? memory.reclaimer.acquireSlot() : -1;
  const translator = new Translator(
    memory.phys,
    tables,
    memory.reclaimer,
    slot,
    new Iotlb(t.entries, t.shards, t.handles),
    attachedAtc(dp),
  );
  const release = (): void => {
    if (slot >= 0) memory.reclaimer.releaseSlot(slot);
  };
  return { translator, tables, memory, slot, release };
}

/** The fd's ATC, attached from this thread. */
function attachedAtc(dp: DataPlaneHandles): Iotlb {
  const a = dp.atc!;
  return new Iotlb(a.entries, a.shards, a.handles, true);
}

/**
 * The grace period, one thread. Either a reader slot is held "inside a walk" that read the
 * device's domain index before the switch, and the walk is finished through that index with a
 * translator over the live descriptors (and device contexts of its own); or the switch runs inside
 * a real translation, right after its context read ({@link SwitchInsideWalk}). Meanwhile the old
 * HWPT is destroyed and new HWPTs are allocated.
 */
describe('the old domain descriptor is reclaimed only after the grace period (one thread)', () => {
  interface Grace {
    fd: Iommufd;
    t: Target;
    held: number;
    before: { format: number; root: number; config: number };
    /** Finishes the walk that read `held`: the translation of page 2 through it. */
    finishWalk: () => number;
    /** Whether every word of the old root table is the poison pattern (freed). */
    rootPoisoned: () => boolean;
    memory: SystemMemory;
    tables: ContextTables;
    /** Replaces the device's RID and PASID with B and destroys A. */
    switchAndDestroy: () => void;
    /** The descriptor index of a new HWPT on IOAS B, attached to `spare` to read it. */
    newDescriptor: () => number;
    /** A vtd device without ATS. */
    spare: number;
  }

  function setUp(): Grace {
    const rig = buildRig();
    const { fd, tables, memory } = rig;
    const t = rig.targets.find((x) => x.kind === 'vtd' && x.pasid === NO_PASID)!;
    const held = domainIndex(rig, t);
    const before = {
      format: tables.domainFormat(held),
      root: tables.domainRoot(held),
      config: tables.domainConfig(held),
    };
    const own = new ContextTables(memory.phys, undefined, {
      domains: tables.domains.buffer as SharedArrayBuffer,
      devices: new SharedArrayBuffer(MAX_DEVICES * 16),
    });
    own.setRidDomain(1, held);
    const walker = new Translator(memory.phys, own, memory.reclaimer, -1);
    const spare = fd.deviceBind({ iommu: 'vtd' });
    let spareAttached = false;
    return {
      fd,
      t,
      held,
      before,
      memory,
      tables,
      spare,
      finishWalk: () => walker.translate(1, IOVA_BASE + 2 * PAGE, Access.Read, NO_PASID),
      rootPoisoned: () => new Int32Array(memory.phys.sab, before.root, 1024).every((w) => w === POISON),
      switchAndDestroy: () => {
        fd.deviceReplace(t.devId, t.hwptB);
        fd.deviceReplace(t.devId, t.hwptB, { pasid: PASID });
        fd.destroy(t.hwptA);
      },
      newDescriptor: () => {
        const h = fd.hwptAlloc({ devId: spare, ptId: rig.ioasB });
        if (spareAttached) fd.deviceReplace(spare, h);
        else fd.deviceAttach(spare, h);
        spareAttached = true;
        return tables.ridDomain(fd.deviceSlot(spare));
      },
    };
  }

  it('a reader inside a walk that began before the switch keeps the descriptor and its tables; they go when it leaves', async () => {
    const g = setUp();
    const { reclaimer } = g.memory;
    const slot = reclaimer.acquireSlot();
    reclaimer.enter(slot); // the walk begins...
    expect(g.tables.ridDomain(g.t.slot)).toBe(g.held); // ...and reads the device's domain: A
    g.switchAndDestroy();
    expect(g.tables.ridDomain(g.t.slot)).not.toBe(g.held);
    // Retired, not reclaimed: the descriptor is unchanged, its table intact, and new HWPTs get other indexes.
    expect(reclaimer.pending).toBeGreaterThan(0);
    const unchanged = (): void => {
      expect({
        format: g.tables.domainFormat(g.held),
        root: g.tables.domainRoot(g.held),
        config: g.tables.domainConfig(g.held),
      }).toEqual(g.before);
      expect(g.rootPoisoned()).toBe(false);
      expect(g.finishWalk()).toBe(g.t.paA[2]); // the walk completes in the old domain
    };
    unchanged();
    for (let i = 0; i < 8; i++) expect(g.newDescriptor()).not.toBe(g.held);
    unchanged();
    g.fd.ioasAlloc(); // any control-plane call reclaims: still held
    unchanged();

    reclaimer.exit(slot); // the walk ends
    g.fd.ioasAlloc();
    expect(g.tables.domainFormat(g.held)).toBe(DomainFormat.None);
    expect(g.rootPoisoned()).toBe(true);
    expect(g.finishWalk()).toBe(TranslateFault.NoDomain);
    // The index is free again: a later HWPT takes it.
    const next = Array.from({ length: 4 }, () => g.newDescriptor());
    expect(next).toContain(g.held);
    reclaimer.releaseSlot(slot);
    await g.fd.close();
    expect(g.fd.framesInUse()).toBe(0);
  });

  it('negative control: with no reader inside, the destroy reclaims at once, and the same checks see it', async () => {
    const g = setUp();
    expect(g.finishWalk()).toBe(g.t.paA[2]);
    g.switchAndDestroy();
    expect(g.tables.domainFormat(g.held)).toBe(DomainFormat.None);
    expect(g.rootPoisoned()).toBe(true);
    expect(g.finishWalk()).not.toBe(g.t.paA[2]);
    expect(g.newDescriptor()).toBe(g.held); // reused by the very next HWPT
    await g.fd.close();
    expect(g.fd.framesInUse()).toBe(0);
  });

  it.each([
    ['with a reader slot, it completes in the old domain', true],
    ['negative control: without one, it reads a recycled descriptor or freed tables', false],
  ] as const)('a walk that straddles the replace and destroy of its domain: %s', async (_, withSlot) => {
    const g = setUp();
    const w = switchingTranslator(g.fd.dataPlane(), withSlot);
    const page = 30;
    const iova = IOVA_BASE + page * PAGE;
    const fresh: number[] = [];
    w.tables.hook = () => {
      g.switchAndDestroy();
      for (let i = 0; i < 4; i++) fresh.push(g.newDescriptor());
    };
    const result = w.translator.translate(g.t.slot, iova, Access.Read, NO_PASID);
    expect(w.tables.hook, 'the switch ran inside the walk').toBeUndefined();
    if (!withSlot) {
      expect(fresh, 'the descriptor was recycled at once').toContain(g.held);
      expect(result).not.toBe(g.t.paA[page]);
    } else {
      expect(fresh).not.toContain(g.held);
      expect(result).toBe(g.t.paA[page]);
      // The walk's IOTLB fill went under the retired descriptor's tag. Once the walk is over, the
      // index is recycled, and the HWPT that takes it must not inherit that entry.
      let reused = false;
      for (let i = 0; i < 4 && !reused; i++) {
        if (g.newDescriptor() !== g.held) continue;
        reused = true;
        expect(g.fd.translate(g.spare, iova, Access.Read)).toBe(g.t.paB[page]);
      }
      expect(reused, 'the index was recycled after the walk').toBe(true);
    }
    w.release();
    await g.fd.close();
    expect(g.fd.framesInUse()).toBe(0);
  });

  it('a reader that entered after the retirement does not hold it back', async () => {
    const g = setUp();
    const { reclaimer } = g.memory;
    const early = reclaimer.acquireSlot();
    const late = reclaimer.acquireSlot();
    reclaimer.enter(early);
    g.switchAndDestroy();
    expect(g.tables.domainFormat(g.held)).toBe(g.before.format);
    reclaimer.enter(late); // a walk that began after the switch: it cannot reach the old descriptor
    expect(g.tables.ridDomain(g.t.slot)).not.toBe(g.held);
    reclaimer.exit(early);
    g.fd.ioasAlloc();
    expect(g.tables.domainFormat(g.held)).toBe(DomainFormat.None);
    reclaimer.exit(late);
    reclaimer.releaseSlot(early);
    reclaimer.releaseSlot(late);
    await g.fd.close();
    expect(g.fd.framesInUse()).toBe(0);
  });
});
