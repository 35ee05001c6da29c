/**
 * The replace-under-DMA rig (issue 8, "Atomic replace under DMA"): an fd with three ATS devices
 * that each have a RID and a PASID attached, two domains per device that map the same IOVAs to
 * different host pages, device threads (replace.worker.ts) translating all of it, and a main
 * thread that replaces RIDs and PASIDs back and forth between the two domains.
 *
 * The devices and their domains:
 * - `vtd`: A and B are VT-d second-stage paging HWPTs, on IOAS A and IOAS B;
 * - `smmuv3`: A and B are Arm stage-1 paging HWPTs, on IOAS A and IOAS B;
 * - `vtd-nested`: A is a VT-d hardware-nested HWPT (a guest first stage in guest RAM, over a nest
 *   parent on IOAS G), B a paging HWPT on IOAS B.
 *
 * Two ways to switch:
 * - `fixed`: every replace goes to the target's one A or one B HWPT (the descriptors stay);
 * - `recycle`: every replace goes to a HWPT allocated for it, and the one it leaves is destroyed,
 *   so descriptors and table frames are retired under the walkers and reclaimed after the grace
 *   period. Freed frames are poisoned, so a walk of a reclaimed table shows.
 */
import { Piscina } from 'piscina';
import { Access, Iommufd } from '../../src/index.js';
import { SystemMemory } from '../../src/memory/index.js';
import { X86_LO } from '../../src/pgtable/index.js';
import { ContextTables, DomainFormat, NO_PASID } from '../../src/translate/index.js';
import { POISON } from './check.js';
import {
  beginWord,
  controlWords,
  CTL,
  PAGE,
  progressWord,
  type ReplaceAnomaly,
  type ReplaceTarget,
  type ReplaceWalkerConfig,
  type ReplaceWalkerReport,
  type WalkerMode,
} from './replace.worker.js';

const MiB = 2 ** 20;
/** The translated IOVAs: one 2 MiB region, away from both drivers' reserved windows. */
export const IOVA_BASE = 0x4000_0000;
export const PAGES = 512;
const REGION = PAGES * PAGE;
/** The PASID every device has attached beside its RID. */
export const PASID = 5;
/** Guest RAM of the nested device's VM, at GPA 0 of IOAS G; its first-stage tables from ROOT, its data pages from DATA. */
const GUEST_BYTES = 4 * MiB;
const ROOT = 0x1000;
const DATA = 2 * MiB;
/** Device threads. */
export const WALKERS = 2;

/** One replaceable thing: a device's RID or PASID, with the HWPTs of its two sides. */
export interface Target extends ReplaceTarget {
  devId: number;
  kind: 'vtd' | 'smmuv3' | 'vtd-nested';
  /** The side-A and side-B HWPTs allocated at set-up (never destroyed). */
  hwptA: number;
  hwptB: number;
  /** The HWPT attached now, and whether the run allocated it (then it is destroyed when left). */
  current: number;
  owned: boolean;
  /** Generation: replaces done so far (even: A, odd: B). */
  gen: number;
}

/** The fd and what the set-up built. */
export interface Rig {
  fd: Iommufd;
  targets: Target[];
  ioasA: number;
  ioasB: number;
  /** The nest parent on IOAS G. */
  parent: number;
  /** The data plane's tables, read from the main thread. */
  tables: ContextTables;
  /** The reclaimer, read from the main thread. */
  memory: SystemMemory;
}

/** The nested device's stage-1 maps IOVA page p to guest page `perm(p)` of DATA: a permutation, not the identity. */
function perm(p: number): number {
  return (p * 37 + 11) % PAGES;
}

/** Writes the guest's 4-level first stage at ROOT mapping every test page (P, RW, US), as a guest driver would. */
function writeGuestFirstStage(fd: Iommufd, guestVa: bigint): void {
  const view = new DataView(new ArrayBuffer(GUEST_BYTES));
  let next = ROOT + PAGE;
  const entry = (table: number, index: number): number => table + index * 8;
  const tableBits = BigInt(X86_LO.P | X86_LO.RW | X86_LO.US);
  for (let p = 0; p < PAGES; p++) {
    const iova = IOVA_BASE + p * PAGE;
    let table = ROOT;
    for (let level = 0; level < 3; level++) {
      const at = entry(table, Math.floor(iova / 2 ** (39 - 9 * level)) % 512);
      let e = view.getBigUint64(at, true);
      if ((e & 1n) === 0n) {
        e = BigInt(next) | tableBits;
        next += PAGE;
        view.setBigUint64(at, e, true);
      }
      table = Number(e & 0xf_ffff_ffff_f000n);
    }
    view.setBigUint64(entry(table, Math.floor(iova / PAGE) % 512), BigInt(DATA + perm(p) * PAGE) | tableBits, true);
  }
  fd.memory.write(guestVa, new Uint8Array(view.buffer, 0, next));
}

/** Builds the fd, the IOASes, the devices and their HWPTs; attaches every RID and PASID to side A. */
export function buildRig(): Rig {
  const fd = Iommufd.open({ memoryBytes: 64 * MiB, poisonFreedFrames: POISON });
  const flags = { fixedIova: true };
  const vaA = fd.memory.mmap(BigInt(REGION));
  const vaB = fd.memory.mmap(BigInt(REGION));
  const guestVa = fd.memory.mmap(BigInt(GUEST_BYTES));
  const ioasA = fd.ioasAlloc();
  const ioasB = fd.ioasAlloc();
  const ioasG = fd.ioasAlloc();
  fd.ioasMap(ioasA, { userVa: vaA, length: BigInt(REGION), iova: BigInt(IOVA_BASE), flags });
  fd.ioasMap(ioasB, { userVa: vaB, length: BigInt(REGION), iova: BigInt(IOVA_BASE), flags });
  fd.ioasMap(ioasG, { userVa: guestVa, length: BigInt(GUEST_BYTES), iova: 0n, flags });
  writeGuestFirstStage(fd, guestVa);

  // What each side maps the pages to, learned through a probe device (no ATS) on each IOAS.
  const probe = fd.deviceBind({ iommu: 'vtd' });
  const learn = (ioas: number, iova: (p: number) => number): number[] => {
    fd.deviceAttach(probe, ioas);
    const pa = Array.from({ length: PAGES }, (_, p) => fd.translate(probe, iova(p), Access.Read));
    fd.deviceDetach(probe);
    if (pa.some((x) => x < 0)) throw new Error(`probe: a page of IOAS ${ioas} does not translate`);
    return pa;
  };
  const paA = learn(ioasA, (p) => IOVA_BASE + p * PAGE);
  const paB = learn(ioasB, (p) => IOVA_BASE + p * PAGE);
  const paNested = learn(ioasG, (p) => DATA + perm(p) * PAGE);
  fd.deviceUnbind(probe);

  const bind = (iommu: 'vtd' | 'smmuv3'): number => fd.deviceBind({ iommu, pasidBits: 8, ats: true });
  const pasid = { pasid: true };
  const devV = bind('vtd');
  const devS = bind('smmuv3');
  const devN = bind('vtd');
  const parent = fd.hwptAlloc({ devId: devN, ptId: ioasG, flags: { nestParent: true } });
  const sides: { kind: Target['kind']; devId: number; hwptA: number; hwptB: number; paA: number[] }[] = [
    {
      kind: 'vtd',
      devId: devV,
      hwptA: fd.hwptAlloc({ devId: devV, ptId: ioasA, flags: pasid }),
      hwptB: fd.hwptAlloc({ devId: devV, ptId: ioasB, flags: pasid }),
      paA,
    },
    {
      kind: 'smmuv3',
      devId: devS,
      hwptA: fd.hwptAlloc({ devId: devS, ptId: ioasA, flags: pasid }),
      hwptB: fd.hwptAlloc({ devId: devS, ptId: ioasB, flags: pasid }),
      paA,
    },
    {
      kind: 'vtd-nested',
      devId: devN,
      hwptA: nestedHwpt(fd, devN, parent),
      hwptB: fd.hwptAlloc({ devId: devN, ptId: ioasB, flags: pasid }),
      paA: paNested,
    },
  ];
  const targets: Target[] = [];
  for (const s of sides) {
    fd.deviceAttach(s.devId, s.hwptA);
    fd.deviceAttach(s.devId, s.hwptA, { pasid: PASID });
    const slot = fd.deviceSlot(s.devId);
    for (const p of [NO_PASID, PASID]) {
      targets.push({
        label: `${s.kind} ${p === NO_PASID ? 'RID' : `PASID ${p}`}`,
        slot,
        pasid: p,
        paA: s.paA,
        paB,
        devId: s.devId,
        kind: s.kind,
        hwptA: s.hwptA,
        hwptB: s.hwptB,
        current: s.hwptA,
        owned: false,
        gen: 0,
      });
    }
  }
  for (const t of targets) {
    for (let p = 0; p < PAGES; p++) {
      if (t.paA[p] === t.paB[p]) throw new Error(`${t.label}: page ${p} has the same address in A and B`);
    }
  }
  const dp = fd.dataPlane();
  const memory = new SystemMemory(0, dp.memory);
  return { fd, targets, ioasA, ioasB, parent, memory, tables: new ContextTables(memory.phys, undefined, dp.tables) };
}

/** A VT-d nested HWPT for PASID use over `parent`, whose first stage is the guest's table at ROOT. */
function nestedHwpt(fd: Iommufd, devId: number, parent: number): number {
  return fd.hwptAlloc({
    devId,
    ptId: parent,
    dataType: 'vtd-s1',
    data: { pgtblAddr: ROOT, addrWidth: 48 },
    flags: { pasid: true },
  });
}

/** `{ pasid }` for a PASID target, nothing for a RID. */
export function pasidOpt(t: Target): { pasid: number } | undefined {
  return t.pasid === NO_PASID ? undefined : { pasid: t.pasid };
}

/** The descriptor index the target's RID or PASID points at now. */
export function domainIndex(rig: Rig, t: Target): number {
  return t.pasid === NO_PASID ? rig.tables.ridDomain(t.slot) : rig.tables.pasidDomain(t.slot, t.pasid);
}

/** What the main thread sees for every page of `t` now: the address, per page, or a fault. */
export function translateAll(rig: Rig, t: Target): number[] {
  return Array.from({ length: PAGES }, (_, p) =>
    rig.fd.translate(t.devId, IOVA_BASE + p * PAGE + 8, Access.Read, t.pasid),
  );
}

/** The walker pool: two threads, each running one walk task per run. */
export function walkerPool(): Piscina<ReplaceWalkerConfig, ReplaceWalkerReport> {
  const pool = new Piscina<ReplaceWalkerConfig, ReplaceWalkerReport>({
    filename: new URL('./replace.worker.ts', import.meta.url).href,
    execArgv: [...process.execArgv, '--import', 'tsx'],
    minThreads: WALKERS,
    maxThreads: WALKERS,
  });
  pool.on('error', () => {}); // a failing worker rejects its task; never crash the process
  return pool;
}

/** How a run goes. */
export interface RunOptions {
  /** How the main thread switches (see the file comment). */
  switching: 'fixed' | 'recycle';
  /** How the walkers translate. */
  walker: WalkerMode;
  /** Replaces in total (RIDs and PASIDs of all devices). */
  replaces: number;
  /** Stop earlier after this long. */
  maxMs: number;
  /** Stop as soon as a walker reports a violation (the negative controls). */
  stopOnViolation?: boolean;
}

/** What a run saw: totals over the walkers, and the main thread's counts. */
export interface RunSummary {
  switching: string;
  walker: WalkerMode;
  seed: number;
  replaces: number;
  ms: number;
  translations: number;
  ok: number;
  exact: number;
  okA: number;
  okB: number;
  violations: number;
  wrongDomain: number;
  faults: number;
  illegal: number;
  exceptions: number;
  atcHits: number;
  iotlbHits: number;
  walks: number;
  /** recycle: HWPTs destroyed, and how many of their descriptors were still held back when destroy returned. */
  destroyed: number;
  deferred: number;
  /** After the run, main-thread translations that did not give the final generation's domain. */
  finalMismatches: number;
  framesAfterClose: number;
  faultCodes: Record<string, number>;
  samples: ReplaceAnomaly[];
}

/** A small PRNG (xorshift32). */
function prng(seed: number): (n: number) => number {
  let x = seed | 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** Runs walkers against the main thread's replaces; closes the fd. */
export async function runReplaceUnderDma(
  pool: Piscina<ReplaceWalkerConfig, ReplaceWalkerReport>,
  opts: RunOptions,
): Promise<RunSummary> {
  const seed = (Date.now() % 0x7fff_ffff) | 1;
  const rand = prng(seed);
  const rig = buildRig();
  const { fd, targets } = rig;
  // Every target translates as A before the walkers start (this also fills the caches).
  for (const t of targets) {
    const seen = translateAll(rig, t);
    if (seen.some((pa, p) => pa !== t.paA[p]! + 8)) throw new Error(`${t.label} does not translate as domain A`);
  }
  const control = new SharedArrayBuffer(4 * controlWords(targets.length, WALKERS));
  const ctl = new Int32Array(control);
  const runs = Array.from({ length: WALKERS }, (_, id) =>
    pool.run({
      dataPlane: fd.dataPlane(),
      control,
      targets: targets.map(({ label, slot, pasid, paA, paB }) => ({ label, slot, pasid, paA, paB })),
      iovaBase: IOVA_BASE,
      id,
      seed: seed + 7919 * (id + 1),
      mode: opts.walker,
    }),
  );
  let failure: Error | undefined;
  for (const r of runs) r.catch((e: unknown) => (failure ??= e instanceof Error ? e : new Error(String(e))));
  const stop = async (): Promise<ReplaceWalkerReport[]> => {
    Atomics.store(ctl, CTL.Stop, 1);
    return Promise.all(runs);
  };
  try {
    while (Atomics.load(ctl, CTL.Ready) < WALKERS) {
      if (failure !== undefined) throw failure;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } catch (e) {
    await stop().catch(() => []);
    await fd.close();
    throw e;
  }

  const violationsSoFar = (): number => {
    let n = 0;
    for (let w = 0; w < WALKERS; w++) n += Atomics.load(ctl, progressWord(targets.length, w) + 1);
    return n;
  };
  let replaces = 0;
  let destroyed = 0;
  let deferred = 0;
  const start = performance.now();
  try {
    while (replaces < opts.replaces) {
      if ((replaces & 255) === 0) {
        const late = performance.now() - start > opts.maxMs;
        if (late || (opts.stopOnViolation === true && violationsSoFar() > 0)) break;
      }
      const i = rand(targets.length);
      const t = targets[i]!;
      const g = t.gen + 1;
      const toA = g % 2 === 0;
      if (opts.switching === 'fixed') {
        Atomics.store(ctl, beginWord(i), g);
        fd.deviceReplace(t.devId, toA ? t.hwptA : t.hwptB, pasidOpt(t));
        Atomics.store(ctl, beginWord(i) + 1, g);
      } else {
        const next = allocSide(rig, t, toA);
        const old = domainIndex(rig, t);
        Atomics.store(ctl, beginWord(i), g);
        fd.deviceReplace(t.devId, next, pasidOpt(t));
        Atomics.store(ctl, beginWord(i) + 1, g);
        if (t.owned) {
          fd.destroy(t.current);
          destroyed++;
          // Still published: a walker that started before the switch holds its grace period open.
          if (rig.tables.domainFormat(old) !== DomainFormat.None) deferred++;
        }
        t.current = next;
        t.owned = true;
      }
      t.gen = g;
      replaces++;
    }
  } catch (e) {
    await stop().catch(() => []);
    await fd.close();
    throw e;
  }
  const ms = Math.round(performance.now() - start);
  const reports = await stop();

  // After the run, the main thread's own translations give the final generation's domain.
  let finalMismatches = 0;
  for (const t of targets) {
    const pa = t.gen % 2 === 0 ? t.paA : t.paB;
    translateAll(rig, t).forEach((x, p) => {
      if (x !== pa[p]! + 8) finalMismatches++;
    });
  }
  await fd.close();

  const sum = (key: Exclude<keyof ReplaceWalkerReport, 'faultCodes' | 'samples'>): number =>
    reports.reduce((n, r) => n + r[key], 0);
  const faultCodes: Record<string, number> = {};
  for (const r of reports) {
    for (const [code, n] of Object.entries(r.faultCodes)) faultCodes[code] = (faultCodes[code] ?? 0) + n;
  }
  const wrongDomain = sum('wrongDomain');
  const faults = sum('faults');
  const illegal = sum('illegal');
  const exceptions = sum('exceptions');
  return {
    switching: opts.switching,
    walker: opts.walker,
    seed,
    replaces,
    ms,
    translations: sum('translations'),
    ok: sum('ok'),
    exact: sum('exact'),
    okA: sum('okA'),
    okB: sum('okB'),
    violations: wrongDomain + faults + illegal + exceptions,
    wrongDomain,
    faults,
    illegal,
    exceptions,
    atcHits: sum('atcHits'),
    iotlbHits: sum('iotlbHits'),
    walks: sum('walks'),
    destroyed,
    deferred,
    finalMismatches,
    framesAfterClose: fd.framesInUse(),
    faultCodes,
    samples: reports.flatMap((r) => r.samples),
  };
}

/** A new HWPT for `t`'s side A or B (recycle switching). */
function allocSide(rig: Rig, t: Target, toA: boolean): number {
  const { fd } = rig;
  if (toA && t.kind === 'vtd-nested') return nestedHwpt(fd, t.devId, rig.parent);
  return fd.hwptAlloc({ devId: t.devId, ptId: toA ? rig.ioasA : rig.ioasB, flags: { pasid: true } });
}
