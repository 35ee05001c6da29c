import { Access, FaultReason, TranslateFault, type WalkFault } from '../types.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel, POW2 } from '../walk-config.js';
import { INTERRUPT_RANGE, SL_HI, SL_LO, VTD_FR, X86_HI, X86_LO } from './desc.js';

/*
 * x86-64 first-stage and VT-d second-stage walkers (reference/config-formats.md §2, §5.2, §5.3).
 * Allocation-free. Levels use the Arm numbering (3 = the 4 KiB level, 0 = PML4, -1 = PML5); faults
 * carry the VT-d fault reason code.
 *
 * The first-stage and second-stage walkers are separate functions on purpose, though they share their shape: each stays
 * monomorphic on the translation hot path, and their checks and fault codes differ. Merging them
 * behind flags would cost a branch per level in every walk. The nested walk is different: it is
 * the first-stage walk with every table address translated, so the two share one loop (the
 * branch cost no measurable first-stage throughput; see the commit that merged them).
 */

// Bytes per entry at levels -1..3 (index level + 1).
const SIZE = [2 ** 48, 2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const;
// Reserved low bits of a large leaf's address, in the low word: 2 MiB (level 2) and 1 GiB (level 1).
const FL_LARGE_RSVD = [0, 0, 0x3fffe000, 0x1fe000, 0] as const; // bit 12 is PAT on x86
const SL_LARGE_RSVD = [0, 0, 0x3ffff000, 0x1ff000, 0] as const;

/**
 * Walks an x86-64 first-stage table (VT-d scalable mode). Without Access.Priv the request is a
 * user request. With the SET_AD configuration flag, A is set in every entry walked and D in the
 * leaf of a write, with atomic ORs of the valid word.
 */
export function x86FirstStageWalk(
  i32: Int32Array,
  rootPa: number,
  cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  return x86Walk(i32, rootPa, cfg, -1, 0, iova, access, fault);
}

/**
 * The VT-d nested walk (PGTT = nested, reference/config-formats.md §4.4): an x86-64 first-stage
 * walk whose table addresses and output are second-stage inputs. The root, every table fetch
 * and the output go through `vtdSecondStageWalk` (rooted at `s2Root`); a second-stage fault
 * during a first-stage fetch is reported with its second-stage reason, as VT-d does. The result
 * is the second stage's output; `fault.leafShift` is the smaller of the two leaves.
 */
export function x86NestedWalk(
  i32: Int32Array,
  s1Root: number,
  s1Cfg: number,
  s2Root: number,
  s2Cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  return x86Walk(i32, s1Root, s1Cfg, s2Root, s2Cfg, iova, access, fault);
}

/**
 * Both first-stage walks in one loop: `s2Root` < 0 walks physical addresses; otherwise each
 * table address and the output are translated by the second stage first. One predictable
 * branch per level keeps a single copy of the first-stage checks.
 */
function x86Walk(
  i32: Int32Array,
  root: number,
  cfg: number,
  s2Root: number,
  s2Cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  const level = cfgStartLevel(cfg);
  const width = cfgInputSize(cfg);
  // Canonical: the bits above the top implemented bit must copy it. A non-negative number below
  // 2^53 can only be canonical in the lower half.
  if (iova >= POW2[width - 1]!)
    return fault.set(TranslateFault.NotMapped, level, FaultReason.NonCanonical, iova, VTD_FR.FS_NON_CANONICAL);
  const memBytes = i32.length * 4;
  const nested = s2Root >= 0;
  // Nested table fetches read (and, setting A/D, write) guest memory through the second stage.
  const fetch = (cfg & CFG.SET_AD) !== 0 ? Access.Read | Access.Write : Access.Read;
  fault.pdeTablePa = -1;
  const tablePa = nested ? vtdSecondStageWalk(i32, s2Root, s2Cfg, root, fetch, fault) : root;
  if (tablePa < 0) return tablePa;
  if (nested) fault.tableGpas[0] = root - (root % 4096);
  if (tablePa + 4096 > memBytes)
    return fault.set(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, iova, VTD_FR.FS_PAGING_ENTRY_INV);
  return x86WalkFrom(i32, tablePa, level, 0, nested ? 1 : 0, cfg, s2Root, s2Cfg, iova, access, fault);
}

/**
 * The VT-d nested walk resumed at its last table (level 3), as a paging-structure cache entry
 * (the PDE cache) lets hardware do: `tablePa` is the host address of the 4 KiB-level table that
 * the upper levels led to, `xd` their execute-disable, and `tables` the stage-1 table addresses
 * already in `fault.tableGpas` (the cache's copy). The caller has checked that the upper levels
 * grant the access ({@link WalkFault.pdeGrant}); the leaf, its checks, A/D and the output's
 * second-stage walk are as in {@link x86NestedWalk}.
 */
export function x86NestedWalkLeaf(
  i32: Int32Array,
  tablePa: number,
  xd: number,
  tables: number,
  s1Cfg: number,
  s2Root: number,
  s2Cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  fault.pdeTablePa = -1;
  return x86WalkFrom(i32, tablePa, 3, xd, tables, s1Cfg, s2Root, s2Cfg, iova, access, fault);
}

/**
 * The level loop of {@link x86Walk}, from table `tablePa` (a host address) at `level`, with the
 * execute-disable `xd` of the levels above and `tables` stage-1 table addresses recorded. On the
 * way into the 4 KiB-level table it records that table and what the levels above granted
 * (`fault.pdeTablePa`, `pdeGrant`, `pdeXd`, `pdeTables`): what a PDE cache keeps.
 */
function x86WalkFrom(
  i32: Int32Array,
  tablePa: number,
  level: number,
  xd: number,
  tables: number,
  cfg: number,
  s2Root: number,
  s2Cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  const haw = POW2[cfgOutputSize(cfg)]!;
  const memBytes = i32.length * 4;
  const user = (access & Access.Priv) === 0;
  const write = (access & Access.Write) !== 0;
  const setAd = (cfg & CFG.SET_AD) !== 0;
  const wpOff = (cfg & CFG.WP_OFF) !== 0;
  const nested = s2Root >= 0;
  const fetch = setAd ? Access.Read | Access.Write : Access.Read;
  // What every level so far granted: US and RW, ANDed (the PDE cache's permission summary).
  let grant = X86_LO.US | X86_LO.RW;
  for (;;) {
    const at = (tablePa >>> 2) + ((iova / SIZE[level + 1]!) & 511) * 2; // int32: Atomics.load's fast path
    const lo = Atomics.load(i32, at);
    if ((lo & X86_LO.P) === 0)
      return fault.set(TranslateFault.NotMapped, level, FaultReason.NotPresent, iova, VTD_FR.FS_PAGING_ENTRY_P);
    const hi = i32[at + 1]!;
    if (Atomics.load(i32, at) !== lo) continue; // cleared and reinstalled meanwhile: read it again
    if (user && (lo & X86_LO.US) === 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.UserDenied, iova, VTD_FR.FS_PAGING_ENTRY_US);
    if (write && (lo & X86_LO.RW) === 0 && (user || !wpOff))
      return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, iova, VTD_FR.SM_WRITE);
    const ps = (lo & X86_LO.PS) !== 0;
    const addr = (hi & X86_HI.AddrMask) * 2 ** 32 + ((lo & X86_LO.AddrMask) >>> 0);
    if ((ps && level <= 0) || addr >= haw || (ps && (lo & FL_LARGE_RSVD[level + 1]!) !== 0)) {
      return fault.set(TranslateFault.Reserved, level, FaultReason.ReservedBits, iova, VTD_FR.FS_PAGING_ENTRY_RSVD);
    }
    xd |= hi & X86_HI.XD;
    grant &= lo;
    if (setAd) {
      // As the hardware does: a locked update only when a bit is still clear.
      const ad = level === 3 || ps ? X86_LO.A | (write ? X86_LO.D : 0) : X86_LO.A;
      if ((lo & ad) !== ad) Atomics.or(i32, at, ad);
    }
    if (level === 3 || ps) {
      if ((access & Access.Exec) !== 0 && xd !== 0)
        return fault.set(TranslateFault.Permission, level, FaultReason.ExecDenied, iova, VTD_FR.SM_EXEC);
      const size = SIZE[level + 1]!;
      const s1Shift = 12 + 9 * (3 - level);
      const out = addr - (addr % size) + (iova % size);
      if (!nested) {
        fault.leafShift = fault.unitShift = s1Shift;
        return out;
      }
      const pa = vtdSecondStageWalk(i32, s2Root, s2Cfg, out, access & ~Access.Priv, fault);
      if (pa >= 0) {
        if (s1Shift < fault.leafShift) fault.leafShift = s1Shift;
        fault.unitShift = s1Shift;
        fault.gpa = out;
        fault.tableCount = tables;
        // A write by the same requester passes stage 1 without a change to the leaf.
        const s1Writable = ((lo & X86_LO.RW) !== 0 || (!user && wpOff)) && (!setAd || (lo & X86_LO.D) !== 0);
        fault.leafWritable = s1Writable && fault.s2Writable !== 0 ? 1 : 0;
      }
      return pa;
    }
    tablePa = nested ? vtdSecondStageWalk(i32, s2Root, s2Cfg, addr, fetch, fault) : addr;
    if (tablePa < 0) return tablePa;
    if (nested) fault.tableGpas[tables++] = addr;
    if (tablePa + 4096 > memBytes)
      return fault.set(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, iova, VTD_FR.FS_PAGING_ENTRY_INV);
    level++;
    if (level === 3 && nested) {
      fault.pdeTablePa = tablePa;
      fault.pdeGrant = grant & (X86_LO.US | X86_LO.RW);
      fault.pdeXd = xd;
      fault.pdeTables = tables;
    }
  }
}

/**
 * Walks a VT-d second-stage table. A read (or execute) request needs R and a write needs W in
 * every entry on the way, as QEMU's `vtd_iova_to_slpte` checks; "not present" is R = W = 0 and
 * faults the same way. Fault codes are legacy (0x4–0xE) or scalable-mode (0x78–0x87) by the
 * SCALABLE configuration flag.
 */
export function vtdSecondStageWalk(
  i32: Int32Array,
  rootPa: number,
  cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  let level = cfgStartLevel(cfg);
  const sm = (cfg & CFG.SCALABLE) !== 0;
  if (iova >= POW2[cfgInputSize(cfg)]!) {
    return fault.set(
      TranslateFault.NotMapped,
      level,
      FaultReason.Aperture,
      iova,
      sm ? VTD_FR.SM_INPUT_BEYOND_MAX : VTD_FR.ADDR_BEYOND_MGAW,
    );
  }
  const haw = POW2[cfgOutputSize(cfg)]!;
  const memBytes = i32.length * 4;
  const read = (access & (Access.Read | Access.Exec)) !== 0;
  const write = (access & Access.Write) !== 0;
  if (rootPa + 4096 > memBytes) {
    return fault.set(
      TranslateFault.WalkAbort,
      level,
      FaultReason.WalkAbort,
      iova,
      sm ? VTD_FR.SS_PAGING_ENTRY_INV : VTD_FR.PAGING_ENTRY_INV,
    );
  }
  let tablePa = rootPa;
  let writable = SL_LO.W; // W in every entry so far: a write needs it at each level
  for (;;) {
    const at = (tablePa >>> 2) + ((iova / SIZE[level + 1]!) & 511) * 2; // int32: Atomics.load's fast path
    const lo = Atomics.load(i32, at);
    const present = (lo & (SL_LO.R | SL_LO.W)) !== 0;
    if (read && (lo & SL_LO.R) === 0) {
      return fault.set(
        present ? TranslateFault.Permission : TranslateFault.NotMapped,
        level,
        present ? FaultReason.ReadDenied : FaultReason.NotPresent,
        iova,
        sm ? VTD_FR.SM_READ : VTD_FR.READ,
      );
    }
    if (write && (lo & SL_LO.W) === 0) {
      return fault.set(
        present ? TranslateFault.Permission : TranslateFault.NotMapped,
        level,
        present ? FaultReason.WriteDenied : FaultReason.NotPresent,
        iova,
        sm ? VTD_FR.SM_WRITE : VTD_FR.WRITE,
      );
    }
    if (!present)
      return fault.set(
        TranslateFault.NotMapped,
        level,
        FaultReason.NotPresent,
        iova,
        sm ? VTD_FR.SM_READ : VTD_FR.READ,
      );
    const hi = i32[at + 1]!;
    if (Atomics.load(i32, at) !== lo) continue; // cleared and reinstalled meanwhile: read it again
    const ps = (lo & SL_LO.PS) !== 0;
    const addr = (hi & SL_HI.AddrMask) * 2 ** 32 + ((lo & SL_LO.AddrMask) >>> 0);
    if ((ps && level <= 0) || addr >= haw || (ps && (lo & SL_LARGE_RSVD[level + 1]!) !== 0)) {
      return fault.set(
        TranslateFault.Reserved,
        level,
        FaultReason.ReservedBits,
        iova,
        sm ? VTD_FR.SS_PAGING_ENTRY_RSVD : VTD_FR.PAGING_ENTRY_RSVD,
      );
    }
    writable &= lo;
    if (level === 3 || ps) {
      const size = SIZE[level + 1]!;
      const out = addr + (iova % size);
      if (out >= INTERRUPT_RANGE.start && out <= INTERRUPT_RANGE.last) {
        return fault.set(
          TranslateFault.NotMapped,
          level,
          FaultReason.InterruptRange,
          iova,
          sm ? VTD_FR.SM_INTERRUPT_ADDR : VTD_FR.INTERRUPT_ADDR,
        );
      }
      fault.leafShift = fault.unitShift = 12 + 9 * (3 - level);
      fault.s2Writable = writable === 0 ? 0 : 1;
      return out;
    }
    if (addr + 4096 > memBytes) {
      return fault.set(
        TranslateFault.WalkAbort,
        level + 1,
        FaultReason.WalkAbort,
        iova,
        sm ? VTD_FR.SS_PAGING_ENTRY_INV : VTD_FR.PAGING_ENTRY_INV,
      );
    }
    tablePa = addr;
    level++;
  }
}
