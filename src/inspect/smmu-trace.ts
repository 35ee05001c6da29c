/*
 * The walk of one transaction through an emulated SMMUv3, level by level, read-only: the L1STD
 * and STE, the L1CD and CD (each nested CD-table read with the stage-2 walk of its IPA), read by
 * the unit's own resolver over recording readers; then the stage-1, stage-2 or nested walk,
 * traced (walk-arm.ts). The result is what SmmuIommu.translate returns (address, or the
 * TranslateFault with `lastEvent` as the vendor code), as long as the unit's caches hold nothing
 * stale: they are not consulted, nothing is filled and no event is written.
 */
import type { GuestRam } from '../memory/guest-ram.js';
import { payloadRoot } from '../vendor/payload-root.js';
import type { PhysMemory } from '../memory/phys.js';
import { SMMU_EVT } from '../pgtable/arm/desc.js';
import { Access, FaultReason, TranslateFault, WalkFault } from '../pgtable/types.js';
import { CR0 } from '../vendor/smmuv3/regs-defs.js';
import { SMMU_ABORT, SMMU_BYPASS, SMMU_CFG_FLAG, SMMU_RESOLVED, SmmuConfig } from '../vendor/smmuv3/resolve-config.js';
import { SMMU_CFG_EVT } from '../vendor/smmuv3/resolve-events.js';
import { STE_CONFIG } from '../vendor/smmuv3/structures.js';
import { unitSpace } from './memory.js';
import { hex, smmuEventName } from './names.js';
import { markLastFault, plainFault, requestOf, walkFault } from './result.js';
import { smmuContext, smmuResolver, STE_CONFIG_NAMES, type SmmuUnitView } from './smmu-config.js';
import { SmmuConfigRecorder } from './smmu-reads.js';
import type { Fields, InspectResult, WalkStage, WalkStep, WalkTrace } from './types.js';
import { traceArmNested, traceArmStage1, traceArmStage2 } from './walk-arm.js';
import type { TraceSink } from './walk-step.js';

/** What an SMMUv3 inspection needs of the unit: registers, guest RAM (an SmmuIommu has them). */
export interface SmmuInspectUnit extends SmmuUnitView {
  readonly guest: PhysMemory;
  readonly ram: GuestRam;
}

/** A transaction to inspect: its StreamID and, optionally, its SubstreamID. */
export interface SmmuInspectRequest {
  sid: number;
  ssid?: number;
}

const EVT_CLASS_NAMES = ['CD', 'TT', 'IN'] as const;

/**
 * Inspects the translation of `iova` for `access` (Access bits) by the transaction `req` through
 * `unit`: every structure and descriptor read, and the result or fault (with its event) as the
 * unit's translate reports it. Writes nothing (no caches, no event records).
 */
export function inspectSmmu(unit: SmmuInspectUnit, req: SmmuInspectRequest, iova: number, access: number): WalkTrace {
  const space = unitSpace(unit.guest, unit.ram);
  const steps: WalkStep[] = [];
  const notes: string[] = [];
  const context: Fields = {};
  const ssid = req.ssid ?? -1;
  const trace = (translation: string, result: InspectResult): WalkTrace => ({
    target: 'smmuv3',
    request: requestOf({ sid: req.sid, pasid: ssid }, iova, access),
    translation,
    context,
    steps,
    result,
    notes,
  });
  const terminated = (code: number, stage: WalkStage, reason: string): InspectResult => ({
    ok: false,
    fault: plainFault(code, reason, 0, stage, smmuEventName, { recorded: false }),
  });
  const bypass = (why: string): WalkTrace => {
    notes.push(why);
    const pa = unit.ram.gpaToPa(iova);
    if (pa < 0) return trace('bypass', terminated(TranslateFault.WalkAbort, 'config', 'walk-abort'));
    return trace('bypass', { ok: true, hpa: pa, gpa: iova, pageShift: 12, unitShift: 12 });
  };

  if ((unit.regs.cr0 & CR0.SMMUEN) === 0) {
    if (unit.regs.bypassAbort) {
      notes.push('SMMUEN = 0 and GBPA.ABORT = 1: every transaction is terminated, without an event');
      return trace('abort', terminated(TranslateFault.NoDomain, 'config', 'no-domain'));
    }
    return bypass('SMMUEN = 0: GBPA bypass, input addresses are guest-physical');
  }
  notes.push("the unit's caches (config cache, IOTLB, ATC) are not consulted");

  const sink: TraceSink = { space, steps };
  const rec = new SmmuConfigRecorder(sink);
  const out = new SmmuConfig();
  const r = smmuResolver(unit, rec.reader, rec.stage2).resolve(req.sid, ssid, out);
  const t = unit.regs.streamTable;
  Object.assign(context, { strtab: t.address, strtabFormat: t.format, log2Size: t.log2Size });
  if (r === SMMU_ABORT) {
    notes.push('STE.Config = abort: the transaction is terminated, without an event');
    return trace('abort', terminated(TranslateFault.NoDomain, 'config', 'no-domain'));
  }
  if (r !== SMMU_RESOLVED && r !== SMMU_BYPASS) {
    markLastFault(steps);
    const event = out.event;
    const recorded = out.record !== 0 && !(event === SMMU_CFG_EVT.C_BAD_STREAMID && !unit.regs.recordInvalidSid);
    const s2 = out.stage2 !== 0;
    const extra = s2 ? { recorded, ipa: out.ipa, eventClass: EVT_CLASS_NAMES[out.eventClass]! } : { recorded };
    const fault = plainFault(
      TranslateFault.NoDomain,
      'no-domain',
      event,
      s2 ? 'stage2' : 'config',
      smmuEventName,
      extra,
    );
    if (event === SMMU_CFG_EVT.F_STE_FETCH || event === SMMU_CFG_EVT.F_CD_FETCH)
      notes.push(`the fetch at ${hex(out.fetchAddr)} aborted`);
    return trace('', { ok: false, fault });
  }
  Object.assign(context, smmuContext(out));
  if (r === SMMU_BYPASS) return bypass('both stages are bypassed for this transaction (STE or S1DSS)');

  const kind = out.kind;
  const translation = STE_CONFIG_NAMES[kind] ?? String(kind);
  // The unit keeps table roots as 32-bit payload words (vendor/payload-root.ts): a root at or
  // above 4 GiB names no guest RAM, and its walk aborts at the first read.
  for (const [name, ptr] of [
    ['S2TTB', out.s2Root],
    ['TTB0', out.ttb0],
  ] as const) {
    if (ptr >= 2 ** 32) notes.push(`${name} ${hex(ptr)} is beyond guest RAM: the walk aborts at its first read`);
  }
  const s2Root = payloadRoot(out.s2Root) >>> 0;
  const ttb0 = payloadRoot(out.ttb0) >>> 0;
  const f = new WalkFault();
  let gpa: number;
  if (kind === STE_CONFIG.S2) {
    gpa = traceArmStage2(sink, s2Root, out.s2Cfg, iova, access & ~Access.Priv, f);
  } else if (out.ttb0Cfg === 0) {
    notes.push('TTB0 is disabled (CD.EPD0) or the address is in the TTB1 half, which the unit does not walk');
    gpa = f.set(TranslateFault.NotMapped, 0, FaultReason.Aperture, iova, SMMU_EVT.F_TRANSLATION);
  } else if (kind === STE_CONFIG.S1) {
    gpa = traceArmStage1(sink, ttb0, out.ttb0Cfg, iova, access, f);
  } else {
    gpa = traceArmNested(sink, ttb0, out.ttb0Cfg, { root: s2Root, cfg: out.s2Cfg }, iova, access, f);
  }
  if (gpa < 0) {
    const event = f.words[4]!;
    const stage2Only = kind === STE_CONFIG.S2;
    const s2 = stage2Only || f.s2 !== 0;
    const flag = s2 ? SMMU_CFG_FLAG.S2R : SMMU_CFG_FLAG.CD_R;
    const recorded = event !== 0 && (event === SMMU_EVT.F_WALK_EABT || (out.flags & flag) !== 0);
    const eventClass = EVT_CLASS_NAMES[stage2Only || f.s2 === 0 ? 2 : f.faultClass]!;
    const extra = { recorded, eventClass, ...(f.s2 !== 0 ? { ipa: f.ipa } : stage2Only ? { ipa: iova } : {}) };
    return trace(translation, { ok: false, fault: walkFault(gpa, f, s2 ? 'stage2' : 'stage1', smmuEventName, extra) });
  }
  const pa = unit.ram.gpaToPa(gpa);
  if (pa < 0) {
    notes.push(`the output ${hex(gpa)} is outside guest RAM`);
    return trace(
      translation,
      terminated(TranslateFault.WalkAbort, kind === STE_CONFIG.S1 ? 'stage1' : 'stage2', 'walk-abort'),
    );
  }
  return trace(translation, {
    ok: true,
    hpa: pa,
    gpa,
    ...(kind === STE_CONFIG.Nested ? { ipa: f.gpa } : {}),
    pageShift: f.leafShift,
    unitShift: f.unitShift,
  });
}
