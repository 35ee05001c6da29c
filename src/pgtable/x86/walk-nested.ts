import { Access, FaultReason, TranslateFault, type WalkFault } from '../types.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel, POW2 } from '../walk-config.js';
import { VTD_FR, X86_HI, X86_LO } from './desc.js';
import { vtdSecondStageWalk } from './walk.js';

// Bytes per entry at levels -1..3 (index level + 1).
const SIZE = [2 ** 48, 2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const;
const FL_LARGE_RSVD = [0, 0, 0x3fffe000, 0x1fe000, 0] as const;

/**
 * The VT-d nested walk (PGTT = nested, reference/config-formats.md §4.4): an x86-64 first-stage
 * walk whose table addresses and output are guest-physical, each translated by the second stage
 * before use. The root, every table fetch and the output go through `vtdSecondStageWalk`; a
 * second-stage fault during a first-stage fetch is reported with its second-stage reason, as
 * VT-d does. The result is the second stage's output; `fault.leafShift` is the smaller of the
 * two leaves. Allocation-free.
 */
export function x86NestedWalk(
  i32: Int32Array,
  s1RootGpa: number,
  s1Cfg: number,
  s2Root: number,
  s2Cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  let level = cfgStartLevel(s1Cfg);
  const width = cfgInputSize(s1Cfg);
  if (iova >= POW2[width - 1]!)
    return fault.set(TranslateFault.NotMapped, level, FaultReason.NonCanonical, iova, VTD_FR.FS_NON_CANONICAL);
  const haw = POW2[cfgOutputSize(s1Cfg)]!;
  const user = (access & Access.Priv) === 0;
  const write = (access & Access.Write) !== 0;
  const setAd = (s1Cfg & CFG.SET_AD) !== 0;
  // Table fetches read (and, setting A/D, write) guest memory through the second stage.
  const fetch = setAd ? Access.Read | Access.Write : Access.Read;
  const memBytes = i32.length * 4;
  let tablePa = vtdSecondStageWalk(i32, s2Root, s2Cfg, s1RootGpa, fetch, fault);
  if (tablePa < 0) return tablePa;
  if (tablePa + 4096 > memBytes)
    return fault.set(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, iova, VTD_FR.FS_PAGING_ENTRY_INV);
  let xd = 0;
  for (;;) {
    const at = (tablePa >>> 2) + ((iova / SIZE[level + 1]!) & 511) * 2;
    const lo = Atomics.load(i32, at);
    if ((lo & X86_LO.P) === 0)
      return fault.set(TranslateFault.NotMapped, level, FaultReason.NotPresent, iova, VTD_FR.FS_PAGING_ENTRY_P);
    const hi = i32[at + 1]!;
    if (Atomics.load(i32, at) !== lo) continue;
    if (user && (lo & X86_LO.US) === 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.UserDenied, iova, VTD_FR.FS_PAGING_ENTRY_US);
    if (write && (lo & X86_LO.RW) === 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, iova, VTD_FR.SM_WRITE);
    const ps = (lo & X86_LO.PS) !== 0;
    const addr = (hi & X86_HI.AddrMask) * 2 ** 32 + ((lo & X86_LO.AddrMask) >>> 0);
    if ((ps && level <= 0) || addr >= haw || (ps && (lo & FL_LARGE_RSVD[level + 1]!) !== 0))
      return fault.set(TranslateFault.Reserved, level, FaultReason.ReservedBits, iova, VTD_FR.FS_PAGING_ENTRY_RSVD);
    xd |= hi & X86_HI.XD;
    if (setAd) Atomics.or(i32, at, level === 3 || ps ? X86_LO.A | (write ? X86_LO.D : 0) : X86_LO.A);
    if (level === 3 || ps) {
      if ((access & Access.Exec) !== 0 && xd !== 0)
        return fault.set(TranslateFault.Permission, level, FaultReason.ExecDenied, iova, VTD_FR.SM_EXEC);
      const size = SIZE[level + 1]!;
      const s1Shift = 12 + 9 * (3 - level);
      const gpa = addr - (addr % size) + (iova % size);
      const out = vtdSecondStageWalk(i32, s2Root, s2Cfg, gpa, access & ~Access.Priv, fault);
      if (out < 0) return out;
      if (s1Shift < fault.leafShift) fault.leafShift = s1Shift;
      return out;
    }
    tablePa = vtdSecondStageWalk(i32, s2Root, s2Cfg, addr, fetch, fault);
    if (tablePa < 0) return tablePa;
    if (tablePa + 4096 > memBytes)
      return fault.set(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, iova, VTD_FR.FS_PAGING_ENTRY_INV);
    level++;
  }
}
