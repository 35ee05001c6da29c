/*
 * The walk of one DMA request of an iommufd device, level by level, read-only, over the data
 * plane's shared buffers: the device's domain descriptor as the Translator picks it, then the
 * domain's walk, traced: a paging domain's table (mock, Arm stage 1 or 2, VT-d second stage, x86
 * first stage); a VT-d nested domain's guest first stage with the parent's second-stage walk of
 * every table fetch and of the output; an SMMUv3 vSTE's CD fetch through stage 2 and its nested
 * walk. The result is what `Iommufd.translate` and `lastFault()` report (code, level, reason,
 * vendor code), as long as the caches hold nothing stale: the context says what the IOTLB and
 * the ATC hold for the address, and nothing is filled.
 */
import { cacheAccess, Iotlb } from '../cache/iotlb.js';
import type { Iommufd } from '../iommufd.js';
import { SMMU_EVT } from '../pgtable/arm/desc.js';
import { Access, FaultReason, TranslateFault, WalkFault } from '../pgtable/types.js';
import { CFG } from '../pgtable/walk-config.js';
import { VTD_FR } from '../pgtable/x86/desc.js';
import { DEV_ATS, DOMAIN_IOPF, DOMAIN_SHADOW, DomainFormat, NO_PASID, S2_ONLY_ASID } from '../translate/index.js';
import { SMMU_ABORT, SMMU_RESOLVED, SmmuConfig } from '../vendor/smmuv3/resolve-config.js';
import { SMMU_CFG_EVT } from '../vendor/smmuv3/resolve-events.js';
import { STE_CONFIG } from '../vendor/smmuv3/structures.js';
import { armNestedSte, dataPlaneView, DOMAIN_FORMAT_NAMES, hostSmmuResolver, requestDomain } from './iommufd-view.js';
import { hostSpace } from './memory.js';
import { hex, smmuEventName, vtdReasonName } from './names.js';
import { markLastFault, requestOf, walkFault } from './result.js';
import { smmuContext, STE_CONFIG_NAMES, walkConfigFields } from './smmu-config.js';
import { SmmuConfigRecorder } from './smmu-reads.js';
import type { Fields, InspectResult, WalkStage, WalkStep, WalkTrace } from './types.js';
import { traceArmNested, traceArmStage1, traceArmStage2 } from './walk-arm.js';
import { traceMock } from './walk-mock.js';
import type { TraceSink } from './walk-step.js';
import { traceVtdSecondStage, traceX86FirstStage } from './walk-x86.js';

/** A request to inspect: the device and, optionally, a PASID (an SMMUv3 vSTE's SubstreamID). */
export interface IommufdInspectRequest {
  devId: number;
  pasid?: number;
}

/** The vendor names of a descriptor format's codes. */
function vendorNames(format: number): (code: number) => string {
  return format === DomainFormat.VtdSecondStage ||
    format === DomainFormat.X86FirstStage ||
    format === DomainFormat.VtdNested
    ? vtdReasonName
    : format === DomainFormat.Mock
      ? () => ''
      : smmuEventName;
}

/** The TranslateFault and FaultReason of a stage-2 fault event of a nested CD fetch (arm-nested.ts). */
function cdFetchFault(event: number): [number, number] {
  switch (event) {
    case SMMU_EVT.F_ADDR_SIZE:
      return [TranslateFault.AddressSize, FaultReason.AddressSize];
    case SMMU_EVT.F_ACCESS:
      return [TranslateFault.AccessFlag, FaultReason.AccessFlag];
    case SMMU_EVT.F_PERMISSION:
      return [TranslateFault.Permission, FaultReason.ReadDenied];
    case SMMU_EVT.F_WALK_EABT:
      return [TranslateFault.WalkAbort, FaultReason.WalkAbort];
    default:
      return [TranslateFault.NotMapped, FaultReason.NotPresent];
  }
}

/**
 * Inspects the translation of `iova` for `access` (Access bits) by device `req.devId` of `fd`
 * (with `req.pasid`): every descriptor read, and the result or fault as `fd.translate` and
 * `fd.lastFault()` report them. Writes nothing. ENOENT for an unknown device.
 */
export function inspectIommufd(fd: Iommufd, req: IommufdInspectRequest, iova: number, access: number): WalkTrace {
  const slot = fd.deviceSlot(req.devId);
  const v = dataPlaneView(fd);
  const t = v.tables;
  const space = hostSpace(v.phys);
  const steps: WalkStep[] = [];
  const notes: string[] = [];
  const sink: TraceSink = { space, steps };
  const pasid = req.pasid ?? NO_PASID;
  const want = cacheAccess(access);
  const context: Fields = { deviceSlot: slot };
  const f = new WalkFault();
  const domain = requestDomain(t, slot, pasid);
  const format = domain === 0 ? DomainFormat.None : t.domainFormat(domain);
  const names = vendorNames(format);
  let translation = DOMAIN_FORMAT_NAMES[format] ?? String(format);
  let faultStage: WalkStage = 'stage1';

  // The device's ATC is looked up first (PASID 0 is never attached, so it has none).
  if (v.atc !== undefined && (t.deviceFlags(slot) & DEV_ATS) !== 0 && pasid !== 0) {
    const atag = slot | ((pasid === NO_PASID ? 0 : pasid) << 12);
    const hit = v.atc.lookup(atag, iova, want);
    context['atc'] = hit >= 0 ? hit : 'miss';
    if (hit >= 0) notes.push(`the device's ATC holds this address: translate returns ${hex(hit)} from it`);
  }

  let result: number;
  if (domain === 0) {
    translation = '';
    result = f.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
    faultStage = 'config';
  } else {
    // A nested first stage's root is guest-physical (52 bits); a host root is below 4 GiB.
    const root = format === DomainFormat.VtdNested ? t.domainRootFull(domain) : t.domainRoot(domain);
    const cfg = t.domainConfig(domain);
    const parent = t.domainParent(domain);
    Object.assign(context, { descriptor: domain, format: translation, root: t.domainRootFull(domain) });
    if (format !== DomainFormat.Mock && format !== DomainFormat.ArmNested)
      Object.assign(context, walkConfigFields('walk', cfg));
    if (parent !== 0) Object.assign(context, { parent, parentRoot: t.domainRoot(parent) });
    const shadowed = (t.domainFlags(domain) & DOMAIN_SHADOW) !== 0;
    if (shadowed)
      notes.push('software nesting: translate serves this domain from the shadow table when it holds the address');
    let tag = domain;
    if (format === DomainFormat.ArmNested) {
      const ste = armNestedSte(t, domain);
      context['vste'] = STE_CONFIG_NAMES[ste.config] ?? String(ste.config);
      Object.assign(context, { s1ContextPtr: ste.s1ContextPtr, s1CdMax: ste.s1CdMax, s1Dss: ste.s1Dss });
      const rec = new SmmuConfigRecorder(sink, false);
      const out = new SmmuConfig();
      const r = hostSmmuResolver(rec.reader, rec.stage2).resolveSte(ste, pasid, out);
      if (r === SMMU_RESOLVED) {
        Object.assign(context, smmuContext(out));
        tag = Iotlb.tagWord(domain, out.kind === STE_CONFIG.Nested ? out.asid : S2_ONLY_ASID);
        result = traceArmNestedDomain(sink, out, iova, access, f);
        translation = out.kind === STE_CONFIG.Nested ? 'arm-nested' : 'arm-nested (stage 2 only)';
      } else {
        tag = -1;
        markLastFault(steps);
        faultStage = out.stage2 === 1 ? 'stage2' : 'config';
        if (r === SMMU_ABORT || r < 0) {
          result = f.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova, 0);
        } else if (out.stage2 === 1) {
          const [code, reason] = cdFetchFault(r);
          result = f.set(code, 0, reason, iova, r);
          f.s2 = 1;
          f.ipa = out.ipa;
        } else if (r === SMMU_CFG_EVT.F_CD_FETCH) {
          result = f.set(TranslateFault.WalkAbort, 0, FaultReason.WalkAbort, iova, r);
        } else {
          result = f.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova, r);
        }
      }
    } else {
      ({ result, stage: faultStage } = traceDomain(
        sink,
        format,
        root,
        cfg,
        t.domainRoot(parent),
        t.domainConfig(parent),
        iova,
        access,
        f,
      ));
    }
    if (sink.faultStage !== undefined) faultStage = sink.faultStage;
    if (tag >= 0 && v.iotlb !== undefined) {
      const hit = v.iotlb.lookup(tag, iova, want);
      context['iotlbTag'] = tag;
      context['iotlb'] = hit >= 0 ? hit : 'miss';
      if (hit >= 0 && hit !== result)
        notes.push(`the IOTLB holds ${hex(hit)} for this address: translate returns that`);
    }
    // An IOPF-capable domain: a fault a page request can resolve is reported as pending.
    if (
      result < 0 &&
      result >= TranslateFault.AccessFlag &&
      result <= TranslateFault.NotMapped &&
      (t.domainFlags(domain) & DOMAIN_IOPF) !== 0
    ) {
      notes.push(
        `IOPF-capable domain: the ${f.words[2] === FaultReason.NotPresent ? 'translation' : 'access'} fault raises a page request`,
      );
      result = f.words[0] = TranslateFault.Pending;
    }
  }

  const trace: WalkTrace = {
    target: 'iommufd',
    request: requestOf({ devId: req.devId, pasid }, iova, access),
    translation,
    context,
    steps,
    result: outcome(
      result,
      f,
      faultStage,
      names,
      format === DomainFormat.VtdNested || format === DomainFormat.ArmNested,
    ),
    notes,
  };
  return trace;
}

/** The result of a walk; `nested`: the domain is nested, so a stage-2 fault names its intermediate address. */
function outcome(
  result: number,
  f: WalkFault,
  stage: WalkStage,
  names: (code: number) => string,
  nested: boolean,
): InspectResult {
  if (result < 0) {
    // Arm records the IPA apart; the VT-d second stage records it as the fault's address.
    const extra = nested && stage === 'stage2' ? { ipa: f.s2 !== 0 ? f.ipa : f.iova } : {};
    return { ok: false, fault: walkFault(result, f, stage, names, extra) };
  }
  return {
    ok: true,
    hpa: result,
    ...(nested ? { ipa: f.gpa } : {}),
    pageShift: f.leafShift,
    unitShift: f.unitShift,
  };
}

/** The walk of a non-ArmNested descriptor (Translator #walk), traced; its result and the stage a fault is in. */
function traceDomain(
  sink: TraceSink,
  format: number,
  root: number,
  cfg: number,
  parentRoot: number,
  parentCfg: number,
  iova: number,
  access: number,
  f: WalkFault,
): { result: number; stage: WalkStage } {
  switch (format) {
    case DomainFormat.Mock:
      return { result: traceMock(sink, root, iova, access, f), stage: 'stage1' };
    case DomainFormat.ArmS1:
      return { result: traceArmStage1(sink, root, cfg, iova, access, f), stage: 'stage1' };
    case DomainFormat.ArmS2:
      return { result: traceArmStage2(sink, root, cfg, iova, access, f), stage: 'stage2' };
    case DomainFormat.VtdSecondStage:
      return { result: traceVtdSecondStage(sink, root, cfg, iova, access, f), stage: 'stage2' };
    case DomainFormat.X86FirstStage:
      return { result: traceX86FirstStage(sink, root, cfg, undefined, iova, access, f), stage: 'stage1' };
    case DomainFormat.VtdNested:
      // vtdNestedWalk: a supervisor request without SRE is refused before the walk.
      if ((access & Access.Priv) !== 0 && (cfg & CFG.SRE) === 0)
        return {
          result: f.set(TranslateFault.Permission, 0, FaultReason.UserDenied, iova, VTD_FR.SM_SRE_CLEAR),
          stage: 'config',
        };
      return {
        result: traceX86FirstStage(sink, root, cfg, { root: parentRoot, cfg: parentCfg }, iova, access, f),
        stage: 'stage1',
      };
    default:
      return { result: f.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova), stage: 'config' };
  }
}

/** An ArmNested descriptor's walk after its configuration (ArmNestedTranslator.walk), traced. */
function traceArmNestedDomain(sink: TraceSink, out: SmmuConfig, iova: number, access: number, f: WalkFault): number {
  if (out.kind !== STE_CONFIG.Nested) {
    const pa = traceArmStage2(sink, out.s2Root, out.s2Cfg, iova, access & ~Access.Priv, f);
    if (pa < 0) sink.faultStage = 'stage2';
    else f.gpa = iova;
    return pa;
  }
  if (out.ttb0Cfg === 0)
    return f.set(TranslateFault.NotMapped, 0, FaultReason.NotPresent, iova, SMMU_EVT.F_TRANSLATION);
  return traceArmNested(sink, out.ttb0, out.ttb0Cfg, { root: out.s2Root, cfg: out.s2Cfg }, iova, access, f);
}
