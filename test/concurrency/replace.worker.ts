/**
 * A device thread for the replace-under-DMA test (a piscina task that lasts the whole run): it
 * translates the test's IOVAs for the RID and the PASID of every device, in a loop, while the main
 * thread replaces them back and forth between a domain A and a domain B, and judges each result
 * against the generation window it read around the translation ({@link judgeReplace}).
 *
 * The generation protocol (per target: a device's RID, or one of its PASIDs):
 * - the main thread stores `begin = g` before replace number g of the target, and `end = g` once
 *   the replace call has returned (its ATC flush included);
 * - the walker loads `end` before the translation and `begin` after it;
 * - so the translation ran while the target was in some generation g in [before, after]: replace
 *   `before` had completed when it started, and replace `after + 1` had not yet begun when it ended.
 *   Generation g means domain A when g is even, B when it is odd.
 *
 * Modes, besides the sound one (attachTranslator: the shared IOTLB and ATC, a reader slot):
 * - `private-atc`: the translator's ATC is a private table that no replace flushes (a device
 *   cache that the switch does not reach): old-domain ATC hits must show as violations;
 * - `stale-context`: the translator reads device contexts from a private copy refreshed only every
 *   {@link STALE_REFRESH} translations (a config cache that the switch does not drop);
 * - `no-slot`: no reader slot, so nothing holds back the reclamation of a destroyed domain's
 *   descriptor and tables while this thread walks them (the grace-period control).
 */
import { Iotlb } from '../../src/cache/index.js';
import { SystemMemory } from '../../src/memory/index.js';
import { Access } from '../../src/pgtable/index.js';
import {
  attachTranslator,
  ContextTables,
  MAX_DEVICES,
  NO_PASID,
  Translator,
  type DataPlaneHandles,
} from '../../src/translate/index.js';

/** 4 KiB. */
export const PAGE = 4096;

/** Pages that take most translations (the rest go to every page). */
export const HOT_PAGES = 8;

/** How a walker translates. */
export type WalkerMode = 'sound' | 'private-atc' | 'stale-context' | 'no-slot';

/** In `stale-context` mode, the private device contexts are refreshed every this many translations. */
export const STALE_REFRESH = 256;

/** One translated thing: a device's RID or one of its PASIDs, and what each domain maps its pages to. */
export interface ReplaceTarget {
  /** For reports: device kind and RID or PASID. */
  label: string;
  /** The device's data-plane slot. */
  slot: number;
  /** The PASID, or NO_PASID for the RID. */
  pasid: number;
  /** Physical address of each page in domain A (even generations). */
  paA: number[];
  /** Physical address of each page in domain B (odd generations). */
  paB: number[];
}

/** Words of the control buffer (Int32). */
export const CTL = {
  /** Set by the main thread to stop the walkers. */
  Stop: 0,
  /** Walkers that have started translating. */
  Ready: 1,
  /** From here, two words per target: [begin, end] generations. */
  Gens: 2,
} as const;

/** Index of target `t`'s `begin` word (its `end` word follows). */
export function beginWord(t: number): number {
  return CTL.Gens + 2 * t;
}

/** First progress word of walker `id` ([translations, violations]), after the generations of `targets` targets. */
export function progressWord(targets: number, id: number): number {
  return CTL.Gens + 2 * targets + 2 * id;
}

/** Int32 words of a control buffer for `targets` targets and `walkers` walkers. */
export function controlWords(targets: number, walkers: number): number {
  return progressWord(targets, walkers);
}

/** What a walker is given. */
export interface ReplaceWalkerConfig {
  dataPlane: DataPlaneHandles;
  control: SharedArrayBuffer;
  targets: ReplaceTarget[];
  /** First IOVA; page p of a target is at iovaBase + p * PAGE. */
  iovaBase: number;
  id: number;
  seed: number;
  mode: WalkerMode;
}

/** How one translation is judged. */
export const Verdict = {
  /** The address of the page in a domain that was current at some generation of the window. */
  Ok: 0,
  /** The address the page has in the other domain, which no generation of the window had: stale or early. */
  WrongDomain: 1,
  /** A fault: every page is mapped in both domains, so no fault is allowed. */
  Fault: 2,
  /** An address that the page has in neither domain: a mix of the two, a torn read, a freed table. */
  Illegal: 3,
} as const;

/** One of the {@link Verdict} values. */
export type VerdictCode = (typeof Verdict)[keyof typeof Verdict];

/**
 * Judges a translation whose window was [before, after] (generations; A at even ones, B at odd
 * ones) against the page's addresses in A and B.
 */
export function judgeReplace(result: number, paA: number, paB: number, before: number, after: number): VerdictCode {
  const aSeen = before % 2 === 0 || after > before;
  const bSeen = before % 2 === 1 || after > before;
  if (result === paA) return aSeen ? Verdict.Ok : Verdict.WrongDomain;
  if (result === paB) return bSeen ? Verdict.Ok : Verdict.WrongDomain;
  if (result < 0) return Verdict.Fault;
  return Verdict.Illegal;
}

/** A translation that was judged wrong. */
export interface ReplaceAnomaly {
  verdict: string;
  target: string;
  iova: string;
  result: number | string;
  expectA: number;
  expectB: number;
  before: number;
  after: number;
}

/** What a walker reports when it stops. */
export interface ReplaceWalkerReport {
  translations: number;
  ok: number;
  /** Translations whose window held one generation (before = after): only one domain was allowed. */
  exact: number;
  /** Results from domain A, and from domain B. */
  okA: number;
  okB: number;
  wrongDomain: number;
  faults: number;
  illegal: number;
  exceptions: number;
  /** Count per fault code. */
  faultCodes: Record<string, number>;
  /** ATC hits, IOTLB hits, and walks (IOTLB misses) of this walker's translator. */
  atcHits: number;
  iotlbHits: number;
  walks: number;
  samples: ReplaceAnomaly[];
}

const VERDICT_NAMES = ['ok', 'wrong-domain', 'fault', 'illegal'];

interface Walker {
  translator: Translator;
  /** The slot to translate target t with (the device's, or a private one). */
  slotOf: (t: number) => number;
  /** The PASID to translate target t with. */
  pasidOf: (t: number) => number;
  /** Called every {@link STALE_REFRESH} translations. */
  refresh: () => void;
  release: () => void;
}

function walkerFor(cfg: ReplaceWalkerConfig): Walker {
  const targets = cfg.targets;
  const own = {
    slotOf: (t: number) => targets[t]!.slot,
    pasidOf: (t: number) => targets[t]!.pasid,
    refresh: () => {},
  };
  if (cfg.mode === 'sound') {
    const { translator, release } = attachTranslator(cfg.dataPlane);
    return { translator, release, ...own };
  }
  const memory = new SystemMemory(0, cfg.dataPlane.memory);
  const live = new ContextTables(memory.phys, undefined, cfg.dataPlane.tables);
  const t = cfg.dataPlane.iotlb;
  const iotlb = t === undefined ? undefined : new Iotlb(t.entries, t.shards, t.handles);
  const a = cfg.dataPlane.atc;
  const sharedAtc = a === undefined ? undefined : new Iotlb(a.entries, a.shards, a.handles, true);
  if (cfg.mode === 'no-slot') {
    return {
      translator: new Translator(memory.phys, live, memory.reclaimer, -1, iotlb, sharedAtc),
      release: () => {},
      ...own,
    };
  }
  const slot = memory.reclaimer.acquireSlot();
  if (slot < 0) throw new Error('no free reader slot');
  const release = (): void => memory.reclaimer.releaseSlot(slot);
  if (cfg.mode === 'private-atc') {
    // The same geometry as the shared ATC, in buffers of its own: nothing the control plane does reaches it.
    const privateAtc = new Iotlb(a?.entries ?? 1024, a?.shards ?? 1, undefined, true);
    return {
      translator: new Translator(memory.phys, live, memory.reclaimer, slot, iotlb, privateAtc),
      release,
      ...own,
    };
  }
  // stale-context: the live descriptors, but device contexts of our own (slot t + 1 holds target
  // t's domain index as last copied; no ATS flag, so no ATC). Only sound while descriptors are
  // not recycled (the fixed-domain run).
  const stale = new ContextTables(memory.phys, undefined, {
    domains: cfg.dataPlane.tables.domains,
    devices: new SharedArrayBuffer(MAX_DEVICES * 16),
  });
  const refresh = (): void => {
    targets.forEach((x, i) => {
      const d = x.pasid === NO_PASID ? live.ridDomain(x.slot) : live.pasidDomain(x.slot, x.pasid);
      stale.setRidDomain(i + 1, d);
    });
  };
  refresh();
  return {
    translator: new Translator(memory.phys, stale, memory.reclaimer, slot, iotlb),
    release,
    slotOf: (i) => i + 1,
    pasidOf: () => NO_PASID,
    refresh,
  };
}

/** Translates until the stop flag is raised; returns what it saw. */
export default function walkUnderReplace(cfg: ReplaceWalkerConfig): ReplaceWalkerReport {
  const w = walkerFor(cfg);
  try {
    return walkLoop(cfg, w);
  } finally {
    w.release();
  }
}

function walkLoop(cfg: ReplaceWalkerConfig, w: Walker): ReplaceWalkerReport {
  const ctl = new Int32Array(cfg.control);
  const targets = cfg.targets;
  const r: ReplaceWalkerReport = {
    translations: 0,
    ok: 0,
    exact: 0,
    okA: 0,
    okB: 0,
    wrongDomain: 0,
    faults: 0,
    illegal: 0,
    exceptions: 0,
    faultCodes: {},
    atcHits: 0,
    iotlbHits: 0,
    walks: 0,
    samples: [],
  };
  let rng = cfg.seed | 0 || 1;
  const random = (): number => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return rng >>> 0;
  };
  const pages = targets[0]!.paA.length;
  const progress = progressWord(targets.length, cfg.id);
  const { translator } = w;
  const sample = (a: Omit<ReplaceAnomaly, 'iova'> & { iova: number }): void => {
    if (r.samples.length < 12) r.samples.push({ ...a, iova: `0x${a.iova.toString(16)}` });
  };
  Atomics.add(ctl, CTL.Ready, 1);

  while (Atomics.load(ctl, CTL.Stop) === 0) {
    for (let k = 0; k < 1024; k++) {
      if ((r.translations & (STALE_REFRESH - 1)) === 0) w.refresh();
      const x = random();
      const t = x % targets.length;
      const target = targets[t]!;
      // Three translations in four go to the first HOT_PAGES pages, so that an entry left stale by
      // a switch is likely to be looked up before the target's next switch flushes it.
      const page = random() % ((x & 0x60000) === 0 ? pages : HOT_PAGES);
      const offset = (x >>> 8) & 0xff8;
      const access = (x & 0x10000) === 0 ? Access.Read : Access.Write;
      const iova = cfg.iovaBase + page * PAGE + offset;
      const expectA = target.paA[page]! + offset;
      const expectB = target.paB[page]! + offset;
      const before = Atomics.load(ctl, beginWord(t) + 1); // end: replaces <= before are complete
      let result: number | string;
      try {
        result = translator.translate(w.slotOf(t), iova, access, w.pasidOf(t));
      } catch (e) {
        result = String(e);
      }
      const after = Atomics.load(ctl, beginWord(t)); // begin: no replace > after has started
      r.translations++;
      if (before === after) r.exact++;
      if (typeof result === 'string') {
        r.exceptions++;
        sample({ verdict: 'exception', target: target.label, iova, result, expectA, expectB, before, after });
        continue;
      }
      const verdict = judgeReplace(result, expectA, expectB, before, after);
      switch (verdict) {
        case Verdict.Ok:
          r.ok++;
          if (result === expectA) r.okA++;
          else r.okB++;
          continue;
        case Verdict.WrongDomain:
          r.wrongDomain++;
          break;
        case Verdict.Fault:
          r.faults++;
          r.faultCodes[result] = (r.faultCodes[result] ?? 0) + 1;
          break;
        case Verdict.Illegal:
          r.illegal++;
          break;
      }
      const name = VERDICT_NAMES[verdict]!;
      sample({ verdict: name, target: target.label, iova, result, expectA, expectB, before, after });
    }
    Atomics.store(ctl, progress, r.translations);
    Atomics.store(ctl, progress + 1, r.wrongDomain + r.faults + r.illegal + r.exceptions);
  }
  r.atcHits = translator.atcHits;
  r.iotlbHits = translator.hits;
  r.walks = translator.misses;
  return r;
}
