import { Access, FaultReason, TranslateFault, type WalkFault } from '../types.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel, POW2 } from '../walk-config.js';
import { ARM_HI, ARM_LO, SMMU_EVT } from './desc.js';
import { armS2Walk } from './walk.js';

/*
 * The SMMUv3 nested walk (STE.Config = nested; reference/config-formats.md §1.8, §5.1): a
 * VMSAv8-64 stage-1 walk, 4 KiB granule, whose start table, next-level tables and output are
 * IPAs, each translated by armS2Walk before it is used. Table fetches are reads; the output is
 * translated with the request's access (stage 2 has no privilege). QEMU translates a table's base
 * address (`translate_table_addr_ipa`), so one stage-2 walk covers the whole 4 KiB table.
 *
 * Faults fill the WalkFault for the event record (viommu-queues.md §1.6): a stage-1 fault has
 * s2 = 0 and CLASS = IN; a stage-2 fault has s2 = 1, the stage-2 event number, CLASS = TT on a
 * table fetch or IN on the output, and `ipa` = the IPA that faulted. `iova` is always the
 * transaction's input address.
 *
 * Why this is not merged into armS1Walk (as x86Walk merges the VT-d first-stage and nested walks):
 * walk.ts keeps stage 1 and stage 2 apart so that each stays monomorphic and branch-free per level
 * on the translation hot path, and the nested loop would add a branch per level there and a
 * fault-record fix-up on every table fetch. The stage-1 checks below are armS1Walk's, in the same
 * order with the same fault codes; keep the two in step (test/pgtable/arm-nested.test.ts compares
 * them).
 */

const SIZE = [2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const; // bytes per entry at levels 0..3

// EVT_CLASS of src/vendor/smmuv3/resolve-events.ts (pgtable does not import from vendor).
const CLASS_TT = 1;
const CLASS_IN = 2;

function tableAddr(lo: number, hi: number): number {
  return (hi & ARM_HI.AddrMask) * 2 ** 32 + ((lo & ARM_LO.AddrMask) >>> 0);
}

/** A stage-1 fault: recorded as armS1Walk does, with CLASS = IN. */
function s1Fault(fault: WalkFault, code: number, level: number, reason: number, iova: number, evt: number): number {
  fault.set(code, level, reason, iova, evt);
  fault.faultClass = CLASS_IN;
  return code;
}

/** A stage-2 fault that armS2Walk has recorded for `ipa`: marks it stage 2 and restores the input address. */
function s2Fault(fault: WalkFault, code: number, cls: number, ipa: number, iova: number): number {
  fault.s2 = 1;
  fault.faultClass = cls;
  fault.ipa = ipa;
  fault.iova = iova;
  return code;
}

/**
 * The SMMUv3 nested walk: walks the stage-1 table at IPA `s1Root` (CD.TTB0) with the armS1Walk
 * packed configuration `s1Cfg`, translating the start table, every next-level table (for a read)
 * and the output IPA (for `access` without Access.Priv) through the stage-2 table at physical
 * `s2Root` with the armS2Walk configuration `s2Cfg`. Returns the physical address, or a negative
 * TranslateFault with `fault` filled in: `words[4]` the SMMU event of the stage that faulted,
 * `iova` the input address, and for a stage-2 fault `s2` = 1, `faultClass` = TT (table fetch) or
 * IN (output) and `ipa` the IPA that faulted; a stage-1 fault has `s2` = 0, `faultClass` = IN.
 * On success `fault.leafShift` is the smaller of the two stages' leaf shifts.
 */
export function armNestedWalk(
  i32: Int32Array,
  s1Root: number,
  s1Cfg: number,
  s2Root: number,
  s2Cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  let level = cfgStartLevel(s1Cfg);
  const inputSize = cfgInputSize(s1Cfg);
  if (iova >= POW2[inputSize]!)
    return s1Fault(fault, TranslateFault.NotMapped, level, FaultReason.Aperture, iova, SMMU_EVT.F_TRANSLATION);
  const limit = POW2[cfgOutputSize(s1Cfg)]!;
  const memBytes = i32.length * 4;
  const entries = POW2[inputSize]! / SIZE[level]!;
  let tablePa = armS2Walk(i32, s2Root, s2Cfg, s1Root, Access.Read, fault);
  if (tablePa < 0) return s2Fault(fault, tablePa, CLASS_TT, s1Root, iova);
  if (tablePa + entries * 8 > memBytes)
    return s1Fault(fault, TranslateFault.WalkAbort, level, FaultReason.WalkAbort, iova, SMMU_EVT.F_WALK_EABT);
  let index = (iova / SIZE[level]!) & (entries - 1);
  let tableBits = 0;
  let tables = 0;
  fault.tableGpas[tables++] = s1Root - (s1Root % 4096);
  const had = (s1Cfg & CFG.HAD) !== 0;
  for (;;) {
    const at = (tablePa >>> 2) + index * 2; // an int32 index keeps Atomics.load on its fast path
    const lo = Atomics.load(i32, at);
    if ((lo & ARM_LO.Valid) === 0)
      return s1Fault(fault, TranslateFault.NotMapped, level, FaultReason.NotPresent, iova, SMMU_EVT.F_TRANSLATION);
    const hi = i32[at + 1]!;
    if (Atomics.load(i32, at) !== lo) continue; // cleared and reinstalled meanwhile: read it again
    const tableOrPage = (lo & ARM_LO.TableOrPage) !== 0;
    if (level < 3 && tableOrPage) {
      const next = tableAddr(lo, hi);
      if (next >= limit)
        return s1Fault(fault, TranslateFault.AddressSize, level, FaultReason.AddressSize, iova, SMMU_EVT.F_ADDR_SIZE);
      const nextPa = armS2Walk(i32, s2Root, s2Cfg, next, Access.Read, fault);
      if (nextPa < 0) return s2Fault(fault, nextPa, CLASS_TT, next, iova);
      if (nextPa + 4096 > memBytes)
        return s1Fault(fault, TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, iova, SMMU_EVT.F_WALK_EABT);
      if (!had) tableBits |= hi;
      fault.tableGpas[tables++] = next;
      tablePa = nextPa;
      level++;
      index = (iova / SIZE[level]!) & 511;
      continue;
    }
    // A block at level 0, or bits[1:0] = 01 at level 3, is reserved: a Translation fault.
    if (level === 0 || (level === 3 && !tableOrPage)) {
      return s1Fault(fault, TranslateFault.NotMapped, level, FaultReason.ReservedBits, iova, SMMU_EVT.F_TRANSLATION);
    }
    if ((lo & ARM_LO.AF) === 0 && (s1Cfg & CFG.AFFD) === 0) {
      return s1Fault(fault, TranslateFault.AccessFlag, level, FaultReason.AccessFlag, iova, SMMU_EVT.F_ACCESS);
    }
    const priv = (access & Access.Priv) !== 0;
    if ((access & Access.Write) !== 0 && ((lo & ARM_LO.AP2) !== 0 || (tableBits & ARM_HI.APTableNoWrite) !== 0)) {
      return s1Fault(fault, TranslateFault.Permission, level, FaultReason.WriteDenied, iova, SMMU_EVT.F_PERMISSION);
    }
    if (!priv && ((lo & ARM_LO.AP1) === 0 || (tableBits & ARM_HI.APTableNoUser) !== 0)) {
      return s1Fault(fault, TranslateFault.Permission, level, FaultReason.UserDenied, iova, SMMU_EVT.F_PERMISSION);
    }
    if ((access & Access.Exec) !== 0) {
      const xn = priv
        ? (hi | tableBits) & (ARM_HI.PXN | ARM_HI.PXNTable)
        : (hi | tableBits) & (ARM_HI.UXN | ARM_HI.UXNTable);
      if (xn !== 0)
        return s1Fault(fault, TranslateFault.Permission, level, FaultReason.ExecDenied, iova, SMMU_EVT.F_PERMISSION);
    }
    const size = SIZE[level]!;
    const low = (lo & ARM_LO.AddrMask) >>> 0;
    const oa = (hi & ARM_HI.AddrMask) * 2 ** 32 + (low - (low % Math.min(size, 2 ** 32)));
    if (oa >= limit)
      return s1Fault(fault, TranslateFault.AddressSize, level, FaultReason.AddressSize, iova, SMMU_EVT.F_ADDR_SIZE);
    const ipa = oa + (iova % size);
    const pa = armS2Walk(i32, s2Root, s2Cfg, ipa, access & ~Access.Priv, fault);
    if (pa < 0) return s2Fault(fault, pa, CLASS_IN, ipa, iova);
    const s1Shift = 12 + 9 * (3 - level);
    if (s1Shift < fault.leafShift) fault.leafShift = s1Shift;
    fault.unitShift = s1Shift;
    fault.gpa = ipa;
    fault.tableCount = tables;
    // No HTTU: a writable leaf (AP[2] = 0, no APTable write restriction) needs no change for a
    // write, if stage 2 allows it too.
    const s1Writable = (lo & ARM_LO.AP2) === 0 && (tableBits & ARM_HI.APTableNoWrite) === 0;
    fault.leafWritable = s1Writable && fault.s2Writable !== 0 ? 1 : 0;
    return pa;
  }
}
