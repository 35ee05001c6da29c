/*
 * Tracing copies of the VMSAv8-64 walkers (src/pgtable/arm/walk.ts, walk-nested.ts): the same
 * checks in QEMU's order with the same fault records, every descriptor read recorded. The Arm
 * walkers write nothing (no HTTU), so these differ from them only in what they record. Keep in
 * step with those files: test/inspect compares every result with the units' and the fd's
 * translate.
 */
import { ARM_HI, ARM_LO, SMMU_EVT } from '../pgtable/arm/desc.js';
import { Access, FaultReason, TranslateFault, type WalkFault } from '../pgtable/types.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel } from '../pgtable/walk-config.js';
import type { PteFormat, WalkStage } from './types.js';
import { readEntry, type Stage2Context, type TraceSink } from './walk-step.js';
import type { SecondStage } from './walk-x86.js';

const SIZE = [2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const; // bytes per entry at levels 0..3

// EVT_CLASS values (src/vendor/smmuv3/resolve-events.ts), as armNestedWalk records them.
const CLASS_TT = 1;
const CLASS_IN = 2;

function tableAddr(lo: number, hi: number): number {
  return (hi & ARM_HI.AddrMask) * 2 ** 32 + ((lo & ARM_LO.AddrMask) >>> 0);
}

function leafOa(level: number, lo: number, hi: number): number {
  const low = (lo & ARM_LO.AddrMask) >>> 0;
  return (hi & ARM_HI.AddrMask) * 2 ** 32 + (low - (low % Math.min(SIZE[level]!, 2 ** 32)));
}

/**
 * The stage-1 leaf checks after the descriptor type (armS1Walk / armNestedWalk order): access
 * flag, write, unprivileged, execute. Returns 0 or the fault code set in `fault`.
 */
function s1LeafCheck(
  level: number,
  lo: number,
  hi: number,
  tableBits: number,
  cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  if ((lo & ARM_LO.AF) === 0 && (cfg & CFG.AFFD) === 0)
    return fault.set(TranslateFault.AccessFlag, level, FaultReason.AccessFlag, iova, SMMU_EVT.F_ACCESS);
  const priv = (access & Access.Priv) !== 0;
  if ((access & Access.Write) !== 0 && ((lo & ARM_LO.AP2) !== 0 || (tableBits & ARM_HI.APTableNoWrite) !== 0))
    return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, iova, SMMU_EVT.F_PERMISSION);
  if (!priv && ((lo & ARM_LO.AP1) === 0 || (tableBits & ARM_HI.APTableNoUser) !== 0))
    return fault.set(TranslateFault.Permission, level, FaultReason.UserDenied, iova, SMMU_EVT.F_PERMISSION);
  if ((access & Access.Exec) !== 0) {
    const xn = priv
      ? (hi | tableBits) & (ARM_HI.PXN | ARM_HI.PXNTable)
      : (hi | tableBits) & (ARM_HI.UXN | ARM_HI.UXNTable);
    if (xn !== 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.ExecDenied, iova, SMMU_EVT.F_PERMISSION);
  }
  return 0;
}

/** Traces an Arm stage-1 walk (armS1Walk). */
export function traceArmStage1(
  sink: TraceSink,
  rootPa: number,
  cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  return traceArmS1(sink, rootPa, cfg, undefined, iova, access, fault);
}

/**
 * Traces the SMMUv3 nested walk (armNestedWalk): the stage-1 walk of IPA `s1Root`, its start
 * table, next tables (reads) and output (the request's access without Priv) translated by stage 2.
 */
export function traceArmNested(
  sink: TraceSink,
  s1Root: number,
  s1Cfg: number,
  s2: SecondStage,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  return traceArmS1(sink, s1Root, s1Cfg, s2, iova, access, fault);
}

function traceArmS1(
  sink: TraceSink,
  root: number,
  cfg: number,
  s2: SecondStage | undefined,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  let level = cfgStartLevel(cfg);
  const inputSize = cfgInputSize(cfg);
  const s1Fault = (code: number, lvl: number, reason: number, evt: number): number => {
    fault.set(code, lvl, reason, iova, evt);
    if (s2 !== undefined) fault.faultClass = CLASS_IN;
    return code;
  };
  // A stage-2 fault (recorded by the stage-2 walk for `ipa`): stage 2, the class, the input address restored.
  const s2Fault = (code: number, cls: number, ipa: number): number => {
    sink.faultStage = 'stage2';
    fault.s2 = 1;
    fault.faultClass = cls;
    fault.ipa = ipa;
    fault.iova = iova;
    return code;
  };
  if (iova >= 2 ** inputSize)
    return s1Fault(TranslateFault.NotMapped, level, FaultReason.Aperture, SMMU_EVT.F_TRANSLATION);
  const limit = 2 ** cfgOutputSize(cfg);
  const memBytes = sink.space.i32.length * 4;
  const entries = 2 ** inputSize / SIZE[level]!;
  let tablePa = root;
  if (s2 !== undefined) {
    tablePa = traceArmStage2(sink, s2.root, s2.cfg, root, Access.Read, fault, { purpose: 'table', input: root });
    if (tablePa < 0) return s2Fault(tablePa, CLASS_TT, root);
  }
  if (tablePa + entries * 8 > memBytes)
    return s1Fault(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, SMMU_EVT.F_WALK_EABT);
  let tableIpa = root;
  let index = Math.floor(iova / SIZE[level]!) % entries;
  let tableBits = 0;
  const had = (cfg & CFG.HAD) !== 0;
  for (;;) {
    const { step, lo, hi } = readEntry(sink, {
      format: 'arm-stage1',
      stage: 'stage1',
      level,
      table: tablePa,
      index,
      ...(s2 === undefined ? {} : { tableIpa }),
    });
    step.outcome = 'fault';
    if ((lo & ARM_LO.Valid) === 0)
      return s1Fault(TranslateFault.NotMapped, level, FaultReason.NotPresent, SMMU_EVT.F_TRANSLATION);
    const tableOrPage = (lo & ARM_LO.TableOrPage) !== 0;
    if (level < 3 && tableOrPage) {
      const next = tableAddr(lo, hi);
      if (next >= limit)
        return s1Fault(TranslateFault.AddressSize, level, FaultReason.AddressSize, SMMU_EVT.F_ADDR_SIZE);
      step.outcome = 'table';
      let nextPa = next;
      if (s2 !== undefined) {
        nextPa = traceArmStage2(sink, s2.root, s2.cfg, next, Access.Read, fault, { purpose: 'table', input: next });
        if (nextPa < 0) return s2Fault(nextPa, CLASS_TT, next);
      }
      if (nextPa + 4096 > memBytes)
        return s1Fault(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, SMMU_EVT.F_WALK_EABT);
      if (!had) tableBits |= hi;
      tablePa = nextPa;
      tableIpa = next;
      level++;
      index = Math.floor(iova / SIZE[level]!) % 512;
      continue;
    }
    if (level === 0 || (level === 3 && !tableOrPage))
      return s1Fault(TranslateFault.NotMapped, level, FaultReason.ReservedBits, SMMU_EVT.F_TRANSLATION);
    const denied = s1LeafCheck(level, lo, hi, tableBits, cfg, iova, access, fault);
    if (denied !== 0) {
      if (s2 !== undefined) fault.faultClass = CLASS_IN;
      return denied;
    }
    const size = SIZE[level]!;
    const oa = leafOa(level, lo, hi);
    if (oa >= limit) return s1Fault(TranslateFault.AddressSize, level, FaultReason.AddressSize, SMMU_EVT.F_ADDR_SIZE);
    step.outcome = 'leaf';
    const s1Shift = 12 + 9 * (3 - level);
    if (s2 === undefined) {
      fault.leafShift = fault.unitShift = s1Shift;
      return oa + (iova % size);
    }
    const ipa = oa + (iova % size);
    const pa = traceArmStage2(sink, s2.root, s2.cfg, ipa, access & ~Access.Priv, fault, {
      purpose: 'output',
      input: ipa,
    });
    if (pa < 0) return s2Fault(pa, CLASS_IN, ipa);
    if (s1Shift < fault.leafShift) fault.leafShift = s1Shift;
    fault.unitShift = s1Shift;
    fault.gpa = ipa;
    return pa;
  }
}

/**
 * Traces an Arm stage-2 walk (armS2Walk), whose start level may be concatenated tables. `s2`
 * marks the steps of a nested walk's (or nested CD fetch's) stage-2 translation.
 */
export function traceArmStage2(
  sink: TraceSink,
  rootPa: number,
  cfg: number,
  ipa: number,
  access: number,
  fault: WalkFault,
  s2?: Stage2Context,
): number {
  let level = cfgStartLevel(cfg);
  const inputSize = cfgInputSize(cfg);
  if (ipa >= 2 ** inputSize)
    return fault.set(TranslateFault.NotMapped, level, FaultReason.Aperture, ipa, SMMU_EVT.F_TRANSLATION);
  const limit = 2 ** cfgOutputSize(cfg);
  const memBytes = sink.space.i32.length * 4;
  const entries = 2 ** inputSize / SIZE[level]!;
  if (rootPa + entries * 8 > memBytes)
    return fault.set(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, ipa, SMMU_EVT.F_WALK_EABT);
  let tablePa = rootPa;
  let index = Math.floor(ipa / SIZE[level]!) % entries;
  const format: PteFormat = 'arm-stage2';
  const stage: WalkStage = 'stage2';
  for (;;) {
    const at = { format, stage, level, table: tablePa, index, ...(s2 === undefined ? {} : { s2 }) };
    const { step, lo, hi } = readEntry(sink, at);
    step.outcome = 'fault';
    if ((lo & ARM_LO.Valid) === 0)
      return fault.set(TranslateFault.NotMapped, level, FaultReason.NotPresent, ipa, SMMU_EVT.F_TRANSLATION);
    const tableOrPage = (lo & ARM_LO.TableOrPage) !== 0;
    if (level < 3 && tableOrPage) {
      const next = tableAddr(lo, hi);
      if (next >= limit)
        return fault.set(TranslateFault.AddressSize, level, FaultReason.AddressSize, ipa, SMMU_EVT.F_ADDR_SIZE);
      if (next + 4096 > memBytes)
        return fault.set(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, ipa, SMMU_EVT.F_WALK_EABT);
      step.outcome = 'table';
      tablePa = next;
      level++;
      index = Math.floor(ipa / SIZE[level]!) % 512;
      continue;
    }
    if (level === 0 || (level === 3 && !tableOrPage))
      return fault.set(TranslateFault.NotMapped, level, FaultReason.ReservedBits, ipa, SMMU_EVT.F_TRANSLATION);
    if ((lo & ARM_LO.AF) === 0 && (cfg & CFG.AFFD) === 0)
      return fault.set(TranslateFault.AccessFlag, level, FaultReason.AccessFlag, ipa, SMMU_EVT.F_ACCESS);
    if ((access & (Access.Read | Access.Exec)) !== 0 && (lo & ARM_LO.S2AP_R) === 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.ReadDenied, ipa, SMMU_EVT.F_PERMISSION);
    if ((access & Access.Write) !== 0 && (lo & ARM_LO.S2AP_W) === 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, ipa, SMMU_EVT.F_PERMISSION);
    if ((access & Access.Exec) !== 0 && (hi & ARM_HI.UXN) !== 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.ExecDenied, ipa, SMMU_EVT.F_PERMISSION);
    const oa = leafOa(level, lo, hi);
    if (oa >= limit)
      return fault.set(TranslateFault.AddressSize, level, FaultReason.AddressSize, ipa, SMMU_EVT.F_ADDR_SIZE);
    step.outcome = 'leaf';
    fault.leafShift = fault.unitShift = 12 + 9 * (3 - level);
    fault.s2Writable = (lo & ARM_LO.S2AP_W) === 0 ? 0 : 1;
    return oa + (ipa % SIZE[level]!);
  }
}
