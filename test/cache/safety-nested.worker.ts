/**
 * A device thread for the nested safety test (safety-nested.test.ts): translates the test's
 * IOVAs through a VT-d nested domain until told to stop, and counts results that a completed
 * barrier had already removed (DESIGN.md invariant 1), as safety.worker.ts does for plain
 * domains. Unlike that worker it builds its translator with the software-nesting shadow
 * (attachTranslator, the production path); it can also be told to fill slowly (a wider race
 * window) and, for the negative controls, to drop a fill guard.
 */
import { Iotlb, ShadowTable, type ShadowHandles } from '../../src/cache/index.js';
import { SystemMemory } from '../../src/memory/index.js';
import { Access } from '../../src/pgtable/index.js';
import {
  attachTranslator,
  ContextTables,
  NO_PASID,
  Translator,
  type DataPlaneHandles,
} from '../../src/translate/index.js';

/** What the main thread gives a walker. */
export interface NestedSafetyConfig {
  dataPlane: DataPlaneHandles;
  /**
   * [stop, barrier, walkers started, -, passes of walker 0, passes of walker 1]: barrier k means
   * the mappings of cycles < k are removed; a walker counts its passes over the IOVAs.
   */
  control: SharedArrayBuffer;
  /** Per frame: the cycle whose mapping uses it, or -1. */
  frameCycle: SharedArrayBuffer;
  dev: number;
  iovas: number[];
  /** The IOTLB's and the ATC's fill guard (Iotlb.fillGuard); false only in a negative control. */
  iotlbGuard: boolean;
  /**
   * The shadow's fill guard: false (a negative control only) makes every shadow fill re-read
   * the shard's sequence just before it checks it, so a sync or stage-2 drop that raced the
   * nested walk no longer refuses the fill.
   */
  shadowGuard: boolean;
  /**
   * Microseconds to spin between a walk (or a shadow hit) and the fill that follows it, in every
   * table: a slow device thread, which widens the window an invalidation can race a fill in.
   */
  fillDelayUs: number;
}

/** What a walker reports. */
export interface NestedSafetyReport {
  translations: number;
  mapped: number;
  stale: number;
  unknown: number;
  samples: string[];
  /** This thread's translator counters. */
  hits: number;
  misses: number;
  atcHits: number;
  shadowHits: number;
  shadowMisses: number;
  /** The IOTLB shard of each IOVA (under the device's domain at the end of the run). */
  shards: number[];
}

function spin(us: number): void {
  if (us <= 0) return;
  const until = performance.now() + us / 1000;
  while (performance.now() < until);
}

/** An IOTLB (or ATC) view whose fills wait `delayUs` first. */
class SlowIotlb extends Iotlb {
  delayUs = 0;

  override fill(
    tag: number,
    iova: number,
    pa: number,
    shift: number,
    access: number,
    s0: number,
    c0: number,
    owner: number,
  ): boolean {
    spin(this.delayUs);
    return super.fill(tag, iova, pa, shift, access, s0, c0, owner);
  }
}

/** A shadow view whose fills wait `delayUs` first and, unguarded, ignore the sequence read before the walk. */
class TestShadow extends ShadowTable {
  readonly #tlb: Iotlb;
  readonly #guard: boolean;
  readonly #delayUs: number;

  constructor(iotlb: Iotlb, entries: number, handles: ShadowHandles, guard: boolean, delayUs: number) {
    super(iotlb, entries, handles);
    this.#tlb = iotlb;
    this.#guard = guard;
    this.#delayUs = delayUs;
  }

  override fill(
    tag: number,
    pasid: number,
    iova: number,
    pa: number,
    access: number,
    f: { gpa: number; tableGpas: Float64Array; tableCount: number; unitShift: number },
    s0: number,
    c0: number,
    owner: number,
    iotlbToo: boolean,
  ): boolean {
    spin(this.#delayUs);
    const seq = this.#guard ? s0 : this.#tlb.fillSeq(tag, iova);
    return super.fill(tag, pasid, iova, pa, access, f, seq, c0, owner, iotlbToo);
  }
}

/** attachTranslator's translator, with the test's fill guards and delay. */
function testTranslator(cfg: NestedSafetyConfig): { translator: Translator; release: () => void } {
  const h = cfg.dataPlane;
  const memory = new SystemMemory(0, h.memory);
  const tables = new ContextTables(memory.phys, undefined, h.tables);
  const slot = memory.reclaimer.acquireSlot();
  if (slot < 0) throw new Error('no free reader slot');
  const t = h.iotlb!;
  const iotlb = new SlowIotlb(t.entries, t.shards, t.handles);
  iotlb.fillGuard = cfg.iotlbGuard;
  iotlb.delayUs = cfg.fillDelayUs;
  const a = h.atc;
  const atc = a === undefined ? undefined : new SlowIotlb(a.entries, a.shards, a.handles, true);
  if (atc !== undefined) {
    atc.fillGuard = cfg.iotlbGuard;
    atc.delayUs = cfg.fillDelayUs;
  }
  const sh = h.shadow;
  const shadow =
    sh === undefined ? undefined : new TestShadow(iotlb, sh.entries, sh.handles, cfg.shadowGuard, cfg.fillDelayUs);
  return {
    translator: new Translator(memory.phys, tables, memory.reclaimer, slot, iotlb, atc, shadow),
    release: () => memory.reclaimer.releaseSlot(slot),
  };
}

export default function walk(cfg: NestedSafetyConfig): NestedSafetyReport {
  // The production path unless the run changes the fill protocol.
  const { translator, release } =
    cfg.iotlbGuard && cfg.shadowGuard && cfg.fillDelayUs === 0 ? attachTranslator(cfg.dataPlane) : testTranslator(cfg);
  const control = new Int32Array(cfg.control);
  const frameCycle = new Int32Array(cfg.frameCycle);
  const r: NestedSafetyReport = {
    translations: 0,
    mapped: 0,
    stale: 0,
    unknown: 0,
    samples: [],
    hits: 0,
    misses: 0,
    atcHits: 0,
    shadowHits: 0,
    shadowMisses: 0,
    shards: [],
  };
  const passes = 4 + Atomics.add(control, 2, 1);
  try {
    for (let pass = 1; Atomics.load(control, 0) === 0; pass++) {
      for (const iova of cfg.iovas) {
        const barrier = Atomics.load(control, 1); // read before the translation starts
        const pa = translator.translate(cfg.dev, iova, Access.Read, NO_PASID);
        r.translations++;
        if (pa < 0) continue;
        r.mapped++;
        const cycle = frameCycle[Math.floor(pa / 4096)]!;
        if (cycle < 0) {
          r.unknown++;
          if (r.samples.length < 5) r.samples.push(`iova 0x${iova.toString(16)} -> unknown frame 0x${pa.toString(16)}`);
        } else if (cycle + 1 <= barrier) {
          r.stale++;
          if (r.samples.length < 5)
            r.samples.push(`iova 0x${iova.toString(16)} -> cycle ${cycle} after barrier ${barrier}`);
        }
      }
      Atomics.store(control, passes, pass);
    }
  } finally {
    release();
  }
  r.hits = translator.hits;
  r.misses = translator.misses;
  r.atcHits = translator.atcHits;
  r.shadowHits = translator.shadowHits;
  r.shadowMisses = translator.shadowMisses;
  const t = cfg.dataPlane.iotlb;
  if (t !== undefined) {
    const memory = new SystemMemory(0, cfg.dataPlane.memory);
    const domain = new ContextTables(memory.phys, undefined, cfg.dataPlane.tables).ridDomain(cfg.dev);
    const iotlb = new Iotlb(t.entries, t.shards, t.handles);
    r.shards = cfg.iovas.map((iova) => iotlb.shardOf(domain, iova));
  }
  return r;
}
