import { Iotlb } from '../cache/iotlb.js';
import {
  Access,
  armNestedWalk,
  armS2Walk,
  CFG,
  cfgInputSize,
  cfgOutputSize,
  cfgStartLevel,
  FaultReason,
  PS_BITS,
  SMMU_EVT,
  TranslateFault,
  type WalkFault,
} from '../pgtable/index.js';
import { S2_ONLY_ASID } from '../vendor/smmuv3/commands-ops.js';
import { HTTU, STALL_MODEL } from '../vendor/smmuv3/regs-defs.js';
import { SmmuResolver } from '../vendor/smmuv3/resolve.js';
import { SMMU_ABORT, SMMU_RESOLVED, SmmuConfig, type SmmuCaps } from '../vendor/smmuv3/resolve-config.js';
import { SMMU_CFG_EVT } from '../vendor/smmuv3/resolve-events.js';
import { ArmStage2Translator } from '../vendor/smmuv3/resolve-stage2.js';
import { S2TG, Ste, STE_CONFIG } from '../vendor/smmuv3/structures.js';
import { PhysQwordReader } from '../vendor/vtd/resolve-reader.js';
import type { ContextTables } from './tables.js';

/*
 * Translation through an SMMUv3 nested domain (DomainFormat.ArmNested: an `arm-smmuv3` nested
 * HWPT, i.e. a guest's vSTE on a vIOMMU; reference/iommufd.md §3 "ARM SMMUv3"). The host STE is
 * what arm_smmu_make_nested_domain_ste installs: the vSTE's stage-1 fields (Config, S1Fmt,
 * S1ContextPtr, S1CDMax, S1DSS, S1STALLD; EATS for ATS) over the nest parent's stage 2. It is
 * built in a scratch Ste from the descriptor and handed to SmmuResolver.resolveSte, so the checks
 * of config-formats.md §5.1 (SubstreamID against S1CDMax and S1DSS, the CD fetch through stage 2,
 * the CD's validity) are the resolver's, in its order:
 *
 * - vSTE V = 0: the kernel installs an abort STE; the VMM reports C_BAD_STE to the guest. Here
 *   the host STE is left invalid, so the fault carries C_BAD_STE (0x04) as its vendor code.
 * - Config = abort: every transaction is terminated without an event (vendor code 0).
 * - Config = bypass: stage 2 only (the parent's table), as arm_smmu_make_s2_domain_ste. A request
 *   with a SubstreamID is C_BAD_SUBSTREAMID.
 * - Config = S1 translate: the CD table at S1ContextPtr (an IPA: every L1CD and CD read goes
 *   through stage 2), linear or 2-level by S1Fmt; the SSID is the request's PASID (CD 0
 *   without one, S1DSS deciding when S1CDMax > 0); then the stage-1 walk of TTB0 through stage
 *   2 (armNestedWalk). TTB1 covers the upper half of the 64-bit address space (bit 55 set), which
 *   no DMA address here reaches (they are below 2^53), so it is never walked.
 *
 * The IOTLB tag. A stage-1 translation is tagged (descriptor, CD.ASID), so the guest's TLBIs
 * by VMID (every descriptor of its vIOMMU), ASID and VA find it; a stage-2-only translation
 * (bypass, or S1DSS = bypass) is tagged (descriptor, {@link S2_ONLY_ASID}), an ASID no CD can
 * hold, so that it never serves a stage-1 request of ASID 0 nor the other way round. Since the
 * tag needs the ASID, the configuration is fetched before the IOTLB is looked up, on every
 * translation: no CD configuration is cached (so CFGI_CD and CFGI_CD_ALL have nothing to drop,
 * and a CD change is seen by the next translation that misses the IOTLB).
 *
 * Not modelled from the CD: WXN, UWXN, PAN, TBI, HA/HD (the host unit has no HTTU, so a CD
 * asking for them is C_BAD_CD), stall (the host unit is terminate-only, so CD.S = 1 is C_BAD_CD).
 *
 * Allocation-free: one scratch STE, one resolver with its own scratch, one output record.
 */

/** Bits of the walk-configuration word of an ArmNested descriptor (the vSTE's fields, packed). */
export const ARM_NESTED = {
  /** The vSTE's V. */
  V: 1 << 0,
  /** bits 3:1: the host STE's Config: abort (0), stage 2 only (6, vSTE bypass) or nested (7). */
  CONFIG_SHIFT: 1,
  /** bits 5:4: S1Fmt. */
  S1FMT_SHIFT: 4,
  /** bits 10:6: S1CDMax. */
  S1CDMAX_SHIFT: 6,
  /** bits 12:11: S1DSS. */
  S1DSS_SHIFT: 11,
  /** bit 13: S1STALLD. */
  S1STALLD: 1 << 13,
  /** bit 14: ATS enabled (S1 translate with EATS = trans): translations may fill the device's ATC. */
  ATS: 1 << 14,
} as const;

/** The vSTE fields an ArmNested descriptor carries (an ArmVste has them all). */
export interface ArmNestedFields {
  /** STE.V. */
  readonly valid: boolean;
  /** STE.Config. */
  readonly config: 'abort' | 'bypass' | 's1-trans';
  /** STE.S1Fmt, S1CDMax, S1DSS. */
  readonly s1Fmt: number;
  readonly s1CdMax: number;
  readonly s1Dss: number;
  /** STE.S1STALLD. */
  readonly s1Stalld: boolean;
  /** Whether ATS is enabled for the device (S1 translate with EATS = trans). */
  readonly enableAts: boolean;
}

/** Packs the vSTE's fields into an ArmNested descriptor's walk-configuration word. */
export function packArmNestedConfig(v: ArmNestedFields): number {
  const config = v.config === 's1-trans' ? STE_CONFIG.Nested : v.config === 'bypass' ? STE_CONFIG.S2 : STE_CONFIG.Abort;
  const f = ARM_NESTED;
  return (
    (v.valid ? f.V : 0) |
    (config << f.CONFIG_SHIFT) |
    ((v.s1Fmt & 3) << f.S1FMT_SHIFT) |
    ((v.s1CdMax & 31) << f.S1CDMAX_SHIFT) |
    ((v.s1Dss & 3) << f.S1DSS_SHIFT) |
    (v.s1Stalld ? f.S1STALLD : 0) |
    (v.enableAts ? f.ATS : 0)
  );
}

/** The ASID slot of stage-2-only translations through an ArmNested descriptor (commands-ops.ts). */
export { S2_ONLY_ASID };

/**
 * What the physical SMMUv3 under the vIOMMUs implements, as the configuration fetch needs it:
 * both stages, 2-level CD tables, 20-bit SubstreamIDs, 48-bit OAS, 4 KiB granules only (the
 * walkers' granule), ATS, terminate-only, no HTTU, 16-bit ASIDs and VMIDs.
 */
export const HOST_SMMU_CAPS: SmmuCaps = {
  s1p: true,
  s2p: true,
  stLevel2: true,
  cd2l: true,
  sidBits: 32,
  ssidBits: 20,
  oas: 5,
  gran4k: true,
  gran16k: false,
  gran64k: false,
  ats: true,
  stallModel: STALL_MODEL.TerminateOnly,
  termModel: false,
  httu: HTTU.None,
  asid16: true,
  vmid16: true,
};

/** STE.S2PS encoding by output size in bits (-1: none). */
const PS_CODE: readonly number[] = Array.from({ length: 64 }, (_, bits) =>
  (PS_BITS as readonly number[]).indexOf(bits),
);

/** The TranslateFault of an SMMU walk event (a stage-2 fault of a CD fetch). */
function walkEventCode(event: number): number {
  switch (event) {
    case SMMU_EVT.F_ADDR_SIZE:
      return TranslateFault.AddressSize;
    case SMMU_EVT.F_ACCESS:
      return TranslateFault.AccessFlag;
    case SMMU_EVT.F_PERMISSION:
      return TranslateFault.Permission;
    case SMMU_EVT.F_WALK_EABT:
      return TranslateFault.WalkAbort;
    default:
      return TranslateFault.NotMapped;
  }
}

/** The FaultReason of an SMMU walk event. */
function walkEventReason(event: number): number {
  switch (event) {
    case SMMU_EVT.F_ADDR_SIZE:
      return FaultReason.AddressSize;
    case SMMU_EVT.F_ACCESS:
      return FaultReason.AccessFlag;
    case SMMU_EVT.F_PERMISSION:
      return FaultReason.ReadDenied;
    case SMMU_EVT.F_WALK_EABT:
      return FaultReason.WalkAbort;
    default:
      return FaultReason.NotPresent;
  }
}

/**
 * Translates through ArmNested descriptors, for one {@link Translator}: {@link configure} fetches
 * the configuration and returns the IOTLB tag word, then (on an IOTLB miss) {@link walk} walks.
 */
export class ArmNestedTranslator {
  /** After {@link configure}: whether translations may fill the device's ATC (ATS enabled). */
  ats = false;
  readonly #i32: Int32Array;
  readonly #tables: ContextTables;
  readonly #resolver: SmmuResolver;
  readonly #ste = new Ste();
  readonly #out = new SmmuConfig();
  /** After {@link configure}: the stages in effect (STE_CONFIG.S2 or Nested). */
  #kind = 0;

  /** A translator over physical memory `i32` (PhysMemory.i32) and the descriptors of `tables`. */
  constructor(i32: Int32Array, tables: ContextTables) {
    this.#i32 = i32;
    this.#tables = tables;
    this.#resolver = new SmmuResolver(new PhysQwordReader(i32), HOST_SMMU_CAPS, new ArmStage2Translator(i32));
    const ste = this.#ste;
    // The stage-2 fields the host driver sets (arm_smmu_make_s2_domain_ste) that do not depend on
    // the parent: AArch64, 4 KiB granule, faults recorded.
    ste.s2Aa64 = true;
    ste.s2Tg = S2TG.K4;
    ste.s2R = true;
  }

  /**
   * Fetches the configuration of a request to ArmNested descriptor `domain` with SubstreamID
   * `ssid` (-1: none) for input address `iova`: the IOTLB tag word of its translations, or a
   * negative TranslateFault with `fault` filled (vendor code: the SMMU event, 0 for abort; a
   * stage-2 fault of the CD fetch has `s2` = 1 and `ipa`).
   */
  configure(domain: number, ssid: number, iova: number, fault: WalkFault): number {
    const t = this.#tables;
    const c = t.domainConfig(domain);
    const parent = t.domainParent(domain);
    const pcfg = t.domainConfig(parent);
    const f = ARM_NESTED;
    const ste = this.#ste;
    ste.valid = (c & f.V) !== 0;
    ste.config = (c >>> f.CONFIG_SHIFT) & 7;
    ste.s1Fmt = (c >>> f.S1FMT_SHIFT) & 3;
    ste.s1CdMax = (c >>> f.S1CDMAX_SHIFT) & 31;
    ste.s1Dss = (c >>> f.S1DSS_SHIFT) & 3;
    ste.s1StallD = (c & f.S1STALLD) !== 0;
    ste.eats = (c & f.ATS) !== 0 ? 1 : 0;
    ste.s1ContextPtr = t.domainRootFull(domain);
    ste.s2Ttb = t.domainRoot(parent);
    ste.s2T0sz = 64 - cfgInputSize(pcfg);
    ste.s2Sl0 = 2 - cfgStartLevel(pcfg);
    ste.s2Ps = PS_CODE[cfgOutputSize(pcfg)]!;
    ste.s2Affd = (pcfg & CFG.AFFD) !== 0;
    this.ats = (c & f.ATS) !== 0;
    const out = this.#out;
    const r = this.#resolver.resolveSte(ste, ssid, out);
    if (r === SMMU_RESOLVED) {
      this.#kind = out.kind;
      return Iotlb.tagWord(domain, out.kind === STE_CONFIG.Nested ? out.asid : S2_ONLY_ASID);
    }
    // SMMU_BYPASS cannot happen (stage 2 is always on); it would be a configuration error too.
    if (r === SMMU_ABORT || r < 0) return fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova, 0);
    if (out.stage2 === 1) {
      const code = walkEventCode(r);
      fault.set(code, 0, walkEventReason(r), iova, r);
      fault.s2 = 1;
      fault.faultClass = out.eventClass;
      fault.ipa = out.ipa;
      return code;
    }
    if (r === SMMU_CFG_EVT.F_CD_FETCH) {
      return fault.set(TranslateFault.WalkAbort, 0, FaultReason.WalkAbort, iova, r);
    }
    // C_BAD_STE (V = 0), C_BAD_SUBSTREAMID, F_STREAM_DISABLED, C_BAD_CD: no usable context.
    return fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova, r);
  }

  /** Walks `iova` for `access` under the configuration {@link configure} fetched last. */
  walk(iova: number, access: number, fault: WalkFault): number {
    const out = this.#out;
    if (this.#kind !== STE_CONFIG.Nested) {
      // Stage 2 only: the input is the guest-physical address, and no stage-1 table is read.
      const pa = armS2Walk(this.#i32, out.s2Root, out.s2Cfg, iova, access & ~Access.Priv, fault);
      fault.gpa = iova;
      fault.tableCount = 0;
      fault.leafWritable = fault.s2Writable;
      return pa;
    }
    if (out.ttb0Cfg === 0) {
      // CD.EPD0: TTB0 walks are disabled, so a lower-half address is a Translation fault.
      return fault.set(TranslateFault.NotMapped, 0, FaultReason.NotPresent, iova, SMMU_EVT.F_TRANSLATION);
    }
    return armNestedWalk(this.#i32, out.ttb0, out.ttb0Cfg, out.s2Root, out.s2Cfg, iova, access, fault);
  }
}
