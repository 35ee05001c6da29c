import { Access, FaultReason, TranslateFault, type WalkFault } from '../types.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel, POW2 } from '../walk-config.js';
import { ARM_HI, ARM_LO, SMMU_EVT } from './desc.js';

/*
 * VMSAv8-64 walkers, 4 KiB granule (reference/config-formats.md §1.8 and §5.1). Allocation-free;
 * valid words are loaded with Atomics.load before the high word is read. Faults carry the level
 * and the SMMUv3 event number. Leaf checks run in QEMU's order: access flag, permission, then
 * output address size.
 *
 * Stage 1 and stage 2 are separate functions on purpose, though they share their shape: each stays
 * monomorphic on the translation hot path, and their checks and fault codes differ. Merging them
 * behind flags would cost a branch per level in every walk.
 */

const SIZE = [2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const; // bytes per entry at levels 0..3

function tableAddr(lo: number, hi: number): number {
  return (hi & ARM_HI.AddrMask) * 2 ** 32 + ((lo & ARM_LO.AddrMask) >>> 0);
}

/**
 * Walks a stage-1 table. `access` is a set of Access bits; without Access.Priv the request is
 * unprivileged. Returns the output address or a negative TranslateFault.
 */
export function armS1Walk(
  i32: Int32Array,
  rootPa: number,
  cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  let level = cfgStartLevel(cfg);
  const inputSize = cfgInputSize(cfg);
  if (iova >= POW2[inputSize]!)
    return fault.set(TranslateFault.NotMapped, level, FaultReason.Aperture, iova, SMMU_EVT.F_TRANSLATION);
  const limit = POW2[cfgOutputSize(cfg)]!;
  const memBytes = i32.length * 4;
  const entries = POW2[inputSize]! / SIZE[level]!;
  if (rootPa + entries * 8 > memBytes)
    return fault.set(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, iova, SMMU_EVT.F_WALK_EABT);
  let tablePa = rootPa;
  let index = (iova / SIZE[level]!) & (entries - 1);
  let tableBits = 0;
  const had = (cfg & CFG.HAD) !== 0;
  for (;;) {
    const at = (tablePa >>> 2) + index * 2; // an int32 index keeps Atomics.load on its fast path
    const lo = Atomics.load(i32, at);
    if ((lo & ARM_LO.Valid) === 0)
      return fault.set(TranslateFault.NotMapped, level, FaultReason.NotPresent, iova, SMMU_EVT.F_TRANSLATION);
    const hi = i32[at + 1]!;
    if (Atomics.load(i32, at) !== lo) continue; // cleared and reinstalled meanwhile: read it again
    const tableOrPage = (lo & ARM_LO.TableOrPage) !== 0;
    if (level < 3 && tableOrPage) {
      const next = tableAddr(lo, hi);
      if (next >= limit)
        return fault.set(TranslateFault.AddressSize, level, FaultReason.AddressSize, iova, SMMU_EVT.F_ADDR_SIZE);
      if (next + 4096 > memBytes)
        return fault.set(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, iova, SMMU_EVT.F_WALK_EABT);
      if (!had) tableBits |= hi;
      tablePa = next;
      level++;
      index = (iova / SIZE[level]!) & 511;
      continue;
    }
    // A block at level 0, or bits[1:0] = 01 at level 3, is reserved: a Translation fault.
    if (level === 0 || (level === 3 && !tableOrPage)) {
      return fault.set(TranslateFault.NotMapped, level, FaultReason.ReservedBits, iova, SMMU_EVT.F_TRANSLATION);
    }
    if ((lo & ARM_LO.AF) === 0 && (cfg & CFG.AFFD) === 0) {
      return fault.set(TranslateFault.AccessFlag, level, FaultReason.AccessFlag, iova, SMMU_EVT.F_ACCESS);
    }
    const priv = (access & Access.Priv) !== 0;
    if ((access & Access.Write) !== 0 && ((lo & ARM_LO.AP2) !== 0 || (tableBits & ARM_HI.APTableNoWrite) !== 0)) {
      return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, iova, SMMU_EVT.F_PERMISSION);
    }
    if (!priv && ((lo & ARM_LO.AP1) === 0 || (tableBits & ARM_HI.APTableNoUser) !== 0)) {
      return fault.set(TranslateFault.Permission, level, FaultReason.UserDenied, iova, SMMU_EVT.F_PERMISSION);
    }
    if ((access & Access.Exec) !== 0) {
      const xn = priv
        ? (hi | tableBits) & (ARM_HI.PXN | ARM_HI.PXNTable)
        : (hi | tableBits) & (ARM_HI.UXN | ARM_HI.UXNTable);
      if (xn !== 0)
        return fault.set(TranslateFault.Permission, level, FaultReason.ExecDenied, iova, SMMU_EVT.F_PERMISSION);
    }
    const size = SIZE[level]!;
    const low = (lo & ARM_LO.AddrMask) >>> 0;
    const oa = (hi & ARM_HI.AddrMask) * 2 ** 32 + (low - (low % Math.min(size, 2 ** 32)));
    if (oa >= limit)
      return fault.set(TranslateFault.AddressSize, level, FaultReason.AddressSize, iova, SMMU_EVT.F_ADDR_SIZE);
    fault.leafShift = fault.unitShift = 12 + 9 * (3 - level);
    return oa + (iova % size);
  }
}

/**
 * Walks a stage-2 table, whose start level may be concatenated tables. A read needs S2AP[0], a
 * write S2AP[1], an instruction fetch XN clear. Returns the output address or a negative fault.
 */
export function armS2Walk(
  i32: Int32Array,
  rootPa: number,
  cfg: number,
  ipa: number,
  access: number,
  fault: WalkFault,
): number {
  let level = cfgStartLevel(cfg);
  const inputSize = cfgInputSize(cfg);
  if (ipa >= POW2[inputSize]!)
    return fault.set(TranslateFault.NotMapped, level, FaultReason.Aperture, ipa, SMMU_EVT.F_TRANSLATION);
  const limit = POW2[cfgOutputSize(cfg)]!;
  const memBytes = i32.length * 4;
  const entries = POW2[inputSize]! / SIZE[level]!;
  if (rootPa + entries * 8 > memBytes)
    return fault.set(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, ipa, SMMU_EVT.F_WALK_EABT);
  let tablePa = rootPa;
  let index = (ipa / SIZE[level]!) & (entries - 1);
  for (;;) {
    const at = (tablePa >>> 2) + index * 2; // an int32 index keeps Atomics.load on its fast path
    const lo = Atomics.load(i32, at);
    if ((lo & ARM_LO.Valid) === 0)
      return fault.set(TranslateFault.NotMapped, level, FaultReason.NotPresent, ipa, SMMU_EVT.F_TRANSLATION);
    const hi = i32[at + 1]!;
    if (Atomics.load(i32, at) !== lo) continue; // cleared and reinstalled meanwhile: read it again
    const tableOrPage = (lo & ARM_LO.TableOrPage) !== 0;
    if (level < 3 && tableOrPage) {
      const next = tableAddr(lo, hi);
      if (next >= limit)
        return fault.set(TranslateFault.AddressSize, level, FaultReason.AddressSize, ipa, SMMU_EVT.F_ADDR_SIZE);
      if (next + 4096 > memBytes)
        return fault.set(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, ipa, SMMU_EVT.F_WALK_EABT);
      tablePa = next;
      level++;
      index = (ipa / SIZE[level]!) & 511;
      continue;
    }
    if (level === 0 || (level === 3 && !tableOrPage)) {
      return fault.set(TranslateFault.NotMapped, level, FaultReason.ReservedBits, ipa, SMMU_EVT.F_TRANSLATION);
    }
    if ((lo & ARM_LO.AF) === 0 && (cfg & CFG.AFFD) === 0) {
      return fault.set(TranslateFault.AccessFlag, level, FaultReason.AccessFlag, ipa, SMMU_EVT.F_ACCESS);
    }
    if ((access & (Access.Read | Access.Exec)) !== 0 && (lo & ARM_LO.S2AP_R) === 0) {
      return fault.set(TranslateFault.Permission, level, FaultReason.ReadDenied, ipa, SMMU_EVT.F_PERMISSION);
    }
    if ((access & Access.Write) !== 0 && (lo & ARM_LO.S2AP_W) === 0) {
      return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, ipa, SMMU_EVT.F_PERMISSION);
    }
    if ((access & Access.Exec) !== 0 && (hi & ARM_HI.UXN) !== 0) {
      return fault.set(TranslateFault.Permission, level, FaultReason.ExecDenied, ipa, SMMU_EVT.F_PERMISSION);
    }
    const size = SIZE[level]!;
    const low = (lo & ARM_LO.AddrMask) >>> 0;
    const oa = (hi & ARM_HI.AddrMask) * 2 ** 32 + (low - (low % Math.min(size, 2 ** 32)));
    if (oa >= limit)
      return fault.set(TranslateFault.AddressSize, level, FaultReason.AddressSize, ipa, SMMU_EVT.F_ADDR_SIZE);
    fault.leafShift = fault.unitShift = 12 + 9 * (3 - level);
    fault.s2Writable = (lo & ARM_LO.S2AP_W) === 0 ? 0 : 1;
    return oa + (ipa % size);
  }
}
