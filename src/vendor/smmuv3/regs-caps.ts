import {
  HTTU,
  IDR0,
  IDR1,
  IDR3,
  IDR5,
  OAS_ENCODING,
  Q_INDEX,
  ST_LEVEL,
  STALL_MODEL,
  TTENDIAN,
  TTF,
} from './regs-defs.js';
import type { SmmuCaps } from './resolve-config.js';

/** An output address size IDR5.OAS can report, in bits. */
export type SmmuOas = keyof typeof OAS_ENCODING;

/**
 * Features a VMM chooses for its emulated SMMUv3 (QEMU `arm-smmuv3` properties in brackets). The
 * defaults describe a capable unit, as an iommufd-backed VMM exposes it: both stages (so nesting),
 * range invalidation, ATS and PRI, MSIs, 20-bit SubstreamIDs with 2-level CD tables; each can be
 * turned off.
 */
export interface SmmuRegisterOptions {
  /** IDR0.S1P [stage=1|nested]; default true. */
  stage1?: boolean;
  /** IDR0.S2P [stage=2|nested]; default true. Both stages together are what nesting needs. */
  stage2?: boolean;
  /** IDR3.RIL, range invalidation [ril]; default true. */
  ril?: boolean;
  /** IDR0.ATS [ats]; default true. */
  ats?: boolean;
  /** IDR0.PRI and the PRI queue (needs ATS); default = ats. */
  pri?: boolean;
  /** IDR0.STALL_MODEL = 0b00 (stall and terminate) instead of 0b01 (terminate only, as QEMU); default false. */
  stall?: boolean;
  /** IDR0.STALL_MODEL = 0b10, stall forced (needs stall); default false. */
  stallForce?: boolean;
  /** IDR5.STALL_MAX with stall, 1–65535; default 128. */
  stallMax?: number;
  /** IDR0.ST_LEVEL = 2-level stream tables; default true (the architecture needs it when sidBits ≥ 7). */
  twoLevelStreamTable?: boolean;
  /** IDR0.CD2L, 2-level context descriptor tables (needs ssidBits > 0); default = ssidBits > 0. */
  twoLevelCdTable?: boolean;
  /** IDR0.MSI and the *_IRQ_CFG registers; default true. */
  msi?: boolean;
  /** IDR0.SEV, WFE wake-up events; default false (a VMM cannot send them to a vCPU). */
  sev?: boolean;
  /** IDR1.SSIDSIZE, 0–20 [ssidsize]; default 20. */
  ssidBits?: number;
  /** IDR1.SIDSIZE, 0–32; default 16, as QEMU. */
  sidBits?: number;
  /** IDR5.OAS in bits [oas]; default 48. */
  oas?: SmmuOas;
  /** IDR1.CMDQS, log2 of the largest command queue, 0–19; default 19, as QEMU. */
  cmdqMaxLog2?: number;
  /** IDR1.EVTQS, log2 of the largest event queue, 0–19; default 19, as QEMU. */
  evtqMaxLog2?: number;
  /** IDR1.PRIQS, log2 of the largest PRI queue, 0–19 (reported as 0 without PRI); default 19. */
  priqMaxLog2?: number;
  /** IDR0.TTF: AArch64 tables only, or AArch32 (LPAE) as well; default 'aarch64', as QEMU. */
  ttf?: 'aarch64' | 'aarch32+aarch64';
  /** IDR0.TTENDIAN; default 'little', as QEMU. */
  ttEndian?: 'mixed' | 'little' | 'big';
  /** IDR0.COHACC, coherent table, queue and MSI accesses; default true, as QEMU. */
  coherent?: boolean;
  /** IDR0.HYP, EL2 / EL2-E2H stage 1 contexts (needs both stages); default = stage1 && stage2 (mandatory from SMMUv3.2). */
  hyp?: boolean;
  /** IDR0.VMID16; default = stage2 (the field matters only with stage 2). */
  vmid16?: boolean;
  /** IDR0.ASID16; default = stage1 (the field matters only with stage 1). */
  asid16?: boolean;
  /** IDR0.HTTU, hardware Access/Dirty flag updates; default 'none', as QEMU. */
  httu?: 'none' | 'access' | 'access-dirty';
  /** IDR0.TERM_MODEL = 0: CD.A may choose RAZ/WI for terminated transactions; default false (always abort, as QEMU). */
  terminateRazWi?: boolean;
  /** IDR3.HAD, hierarchical attribute disable; default true, as QEMU. */
  had?: boolean;
  /** IDR5.GRAN4K; default true. */
  granule4k?: boolean;
  /** IDR5.GRAN16K; default false, as QEMU. */
  granule16k?: boolean;
  /** IDR5.GRAN64K; default true, as QEMU. */
  granule64k?: boolean;
  /** AIDR.ArchMinorRev, 0–15: SMMUv3.<n>; default 2 (RIL and the IGNORED Guarded writes are SMMUv3.2 rules). */
  archMinorRevision?: number;
  /** IIDR value; default 0 (no implementer, so a Linux guest applies no errata workarounds). */
  iidr?: number;
  /** GBPA.ABORT at reset: abort instead of bypass while SMMUEN = 0; default false, as QEMU. */
  gbpaAbort?: boolean;
}

/** Options with every default applied. */
export type ResolvedSmmuOptions = Required<SmmuRegisterOptions> & {
  /** Both stages: the unit can nest (IHI0070 has no separate nesting bit). */
  readonly nesting: boolean;
};

/** Every message an option check can raise (one place, STYLE.md). */
const OPTION_ERRORS = {
  noStage: 'an SMMU needs stage1 or stage2',
  priNeedsAts: 'pri needs ats (IDR0.PRI is RES0 when IDR0.ATS == 0)',
  stallForceNeedsStall: 'stallForce needs stall',
  hypNeedsBothStages: 'hyp needs stage1 and stage2 (IDR0.Hyp is RES0 otherwise)',
  cd2lNeedsSsid: 'twoLevelCdTable needs ssidBits > 0',
  linearNeedsSmallSid: 'sidBits >= 7 needs twoLevelStreamTable (IHI0070: SIDSIZE >= 7 implies ST_LEVEL != 0)',
  noGranule: 'at least one of granule4k, granule16k, granule64k is needed',
  intRange: (name: string, v: number, lo: number, hi: number) =>
    `${name} must be an integer in [${lo}, ${hi}], got ${String(v)}`,
  oas: (v: number) => `oas must be one of ${Object.keys(OAS_ENCODING).join(', ')}, got ${String(v)}`,
  choice: (name: string, v: string, allowed: readonly string[]) =>
    `${name} must be one of ${allowed.join(', ')}, got ${String(v)}`,
} as const;

const TTF_CHOICES = ['aarch64', 'aarch32+aarch64'] as const;
const ENDIAN_CHOICES = ['mixed', 'little', 'big'] as const;
const HTTU_CHOICES = ['none', 'access', 'access-dirty'] as const;

function checkInt(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(OPTION_ERRORS.intRange(name, v, lo, hi));
}

function checkChoice(name: string, v: string, allowed: readonly string[]): void {
  if (!allowed.includes(v)) throw new RangeError(OPTION_ERRORS.choice(name, v, allowed));
}

/** Applies defaults and rejects combinations the architecture does not allow. */
export function resolveSmmuOptions(o: SmmuRegisterOptions = {}): ResolvedSmmuOptions {
  const stage1 = o.stage1 ?? true;
  const stage2 = o.stage2 ?? true;
  const ats = o.ats ?? true;
  const stall = o.stall ?? false;
  const ssidBits = o.ssidBits ?? 20;
  const r: ResolvedSmmuOptions = {
    stage1,
    stage2,
    nesting: stage1 && stage2,
    ril: o.ril ?? true,
    ats,
    pri: o.pri ?? ats,
    stall,
    stallForce: o.stallForce ?? false,
    stallMax: o.stallMax ?? 128,
    twoLevelStreamTable: o.twoLevelStreamTable ?? true,
    twoLevelCdTable: o.twoLevelCdTable ?? ssidBits > 0,
    msi: o.msi ?? true,
    sev: o.sev ?? false,
    ssidBits,
    sidBits: o.sidBits ?? 16,
    oas: o.oas ?? 48,
    cmdqMaxLog2: o.cmdqMaxLog2 ?? Q_INDEX.MaxLog2Size,
    evtqMaxLog2: o.evtqMaxLog2 ?? Q_INDEX.MaxLog2Size,
    priqMaxLog2: o.priqMaxLog2 ?? Q_INDEX.MaxLog2Size,
    ttf: o.ttf ?? 'aarch64',
    ttEndian: o.ttEndian ?? 'little',
    coherent: o.coherent ?? true,
    hyp: o.hyp ?? (stage1 && stage2),
    vmid16: o.vmid16 ?? stage2,
    asid16: o.asid16 ?? stage1,
    httu: o.httu ?? 'none',
    terminateRazWi: o.terminateRazWi ?? false,
    had: o.had ?? true,
    granule4k: o.granule4k ?? true,
    granule16k: o.granule16k ?? false,
    granule64k: o.granule64k ?? true,
    archMinorRevision: o.archMinorRevision ?? 2,
    iidr: o.iidr ?? 0,
    gbpaAbort: o.gbpaAbort ?? false,
  };
  checkInt('ssidBits', r.ssidBits, 0, 20);
  checkInt('sidBits', r.sidBits, 0, 32);
  checkInt('cmdqMaxLog2', r.cmdqMaxLog2, 0, Q_INDEX.MaxLog2Size);
  checkInt('evtqMaxLog2', r.evtqMaxLog2, 0, Q_INDEX.MaxLog2Size);
  checkInt('priqMaxLog2', r.priqMaxLog2, 0, Q_INDEX.MaxLog2Size);
  checkInt('stallMax', r.stallMax, 1, IDR5.StallMaxMask);
  checkInt('archMinorRevision', r.archMinorRevision, 0, 15);
  checkInt('iidr', r.iidr, 0, 0xffffffff);
  if (!(r.oas in OAS_ENCODING)) throw new RangeError(OPTION_ERRORS.oas(r.oas));
  checkChoice('ttf', r.ttf, TTF_CHOICES);
  checkChoice('ttEndian', r.ttEndian, ENDIAN_CHOICES);
  checkChoice('httu', r.httu, HTTU_CHOICES);
  if (!r.stage1 && !r.stage2) throw new RangeError(OPTION_ERRORS.noStage);
  if (r.pri && !r.ats) throw new RangeError(OPTION_ERRORS.priNeedsAts);
  if (r.stallForce && !r.stall) throw new RangeError(OPTION_ERRORS.stallForceNeedsStall);
  if (r.hyp && !r.nesting) throw new RangeError(OPTION_ERRORS.hypNeedsBothStages);
  if (r.twoLevelCdTable && r.ssidBits === 0) throw new RangeError(OPTION_ERRORS.cd2lNeedsSsid);
  if (!r.twoLevelStreamTable && r.sidBits >= 7) throw new RangeError(OPTION_ERRORS.linearNeedsSmallSid);
  if (!r.granule4k && !r.granule16k && !r.granule64k) throw new RangeError(OPTION_ERRORS.noGranule);
  return r;
}

const TTF_VALUE = { aarch64: TTF.AArch64, 'aarch32+aarch64': TTF.AArch32AArch64 } as const;
const TTENDIAN_VALUE = { mixed: TTENDIAN.Mixed, little: TTENDIAN.Little, big: TTENDIAN.Big } as const;
const HTTU_VALUE = { none: HTTU.None, access: HTTU.Access, 'access-dirty': HTTU.AccessDirty } as const;

/** The IDR0.STALL_MODEL value the options select. */
export function smmuStallModel(o: ResolvedSmmuOptions): number {
  if (!o.stall) return STALL_MODEL.TerminateOnly;
  return o.stallForce ? STALL_MODEL.StallForced : STALL_MODEL.StallAndTerminate;
}

/**
 * What a configuration resolver of a unit with options `o` may accept: its stages, table
 * formats, ID widths, output size, stall and terminate models, HTTU and ASID/VMID widths (the 4
 * KiB granule only, as the walkers implement).
 */
export function smmuResolverCaps(o: ResolvedSmmuOptions): SmmuCaps {
  return {
    s1p: o.stage1,
    s2p: o.stage2,
    stLevel2: o.twoLevelStreamTable,
    cd2l: o.twoLevelCdTable,
    sidBits: o.sidBits,
    ssidBits: o.ssidBits,
    oas: OAS_ENCODING[o.oas],
    gran4k: true,
    gran16k: false,
    gran64k: false,
    ats: o.ats,
    stallModel: smmuStallModel(o),
    termModel: !o.terminateRazWi,
    httu: HTTU_VALUE[o.httu],
    asid16: o.asid16,
    vmid16: o.vmid16,
  };
}

/** IDR0: stages, table formats and levels, stall and terminate models, ATS/PRI, MSI/SEV, ID widths. */
export function smmuIdr0(o: ResolvedSmmuOptions): number {
  let v =
    (TTF_VALUE[o.ttf] << IDR0.TtfShift) |
    (HTTU_VALUE[o.httu] << IDR0.HttuShift) |
    (TTENDIAN_VALUE[o.ttEndian] << IDR0.TtendianShift) |
    (smmuStallModel(o) << IDR0.StallModelShift) |
    ((o.twoLevelStreamTable ? ST_LEVEL.TwoLevel : ST_LEVEL.Linear) << IDR0.StLevelShift);
  if (o.stage2) v |= IDR0.S2P;
  if (o.stage1) v |= IDR0.S1P;
  if (o.coherent) v |= IDR0.COHACC;
  if (o.hyp) v |= IDR0.HYP;
  if (o.ats) v |= IDR0.ATS;
  if (o.asid16) v |= IDR0.ASID16;
  if (o.msi) v |= IDR0.MSI;
  if (o.sev) v |= IDR0.SEV;
  if (o.pri) v |= IDR0.PRI;
  if (o.vmid16) v |= IDR0.VMID16;
  if (o.twoLevelCdTable) v |= IDR0.CD2L;
  if (!o.terminateRazWi) v |= IDR0.TERM_MODEL;
  return v >>> 0;
}

/** IDR1: SIDSIZE, SSIDSIZE and the queue size limits (PRIQS reads 0 without PRI). */
export function smmuIdr1(o: ResolvedSmmuOptions): number {
  return (
    ((o.sidBits << IDR1.SidsizeShift) |
      (o.ssidBits << IDR1.SsidsizeShift) |
      ((o.pri ? o.priqMaxLog2 : 0) << IDR1.PriqsShift) |
      (o.evtqMaxLog2 << IDR1.EvtqsShift) |
      (o.cmdqMaxLog2 << IDR1.CmdqsShift)) >>>
    0
  );
}

/** IDR3: RIL and HAD. */
export function smmuIdr3(o: ResolvedSmmuOptions): number {
  return ((o.ril ? IDR3.RIL : 0) | (o.had ? IDR3.HAD : 0)) >>> 0;
}

/** IDR5: OAS, the translation granules and, with stall, STALL_MAX. */
export function smmuIdr5(o: ResolvedSmmuOptions): number {
  let v = OAS_ENCODING[o.oas];
  if (o.granule4k) v |= IDR5.GRAN4K;
  if (o.granule16k) v |= IDR5.GRAN16K;
  if (o.granule64k) v |= IDR5.GRAN64K;
  if (o.stall) v |= o.stallMax << IDR5.StallMaxShift;
  return v >>> 0;
}
