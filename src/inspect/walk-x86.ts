/*
 * Tracing, read-only copies of the x86-64 first-stage, VT-d nested and VT-d second-stage walkers
 * (src/pgtable/x86/walk.ts): the same checks in the same order with the same fault records, but
 * every entry read is recorded, and A/D bits are never written (the real first-stage walk sets
 * them with SET_AD; a step says what it would set instead). Keep in step with walk.ts:
 * test/inspect compares every result with the units' and the fd's translate.
 *
 * A nested walk's stage-1 table fetches go through stage 2 for a read and, when the walk would
 * set A/D, a write, exactly as x86Walk asks: a stage-1 table on a read-only stage-2 page faults
 * there even though this inspection writes nothing.
 */
import { Access, FaultReason, TranslateFault, type WalkFault } from '../pgtable/types.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel } from '../pgtable/walk-config.js';
import { INTERRUPT_RANGE, SL_HI, SL_LO, VTD_FR, X86_HI, X86_LO } from '../pgtable/x86/desc.js';
import { readEntry, type Stage2Context, type TraceSink } from './walk-step.js';

// Bytes per entry at levels -1..3 (index level + 1), and the reserved low address bits of large leaves.
const SIZE = [2 ** 48, 2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const;
const FL_LARGE_RSVD = [0, 0, 0x3fffe000, 0x1fe000, 0] as const;
const SL_LARGE_RSVD = [0, 0, 0x3ffff000, 0x1ff000, 0] as const;

const indexAt = (iova: number, level: number): number => Math.floor(iova / SIZE[level + 1]!) % 512;

/** A nested walk's second stage: its root table and packed configuration. */
export interface SecondStage {
  root: number;
  cfg: number;
}

/**
 * Traces an x86-64 first-stage walk (`s2` undefined) or a VT-d nested walk (`s2`: every table
 * address and the output go through that second stage first). Returns what x86FirstStageWalk /
 * x86NestedWalk return, with `fault` filled the same way.
 */
export function traceX86FirstStage(
  sink: TraceSink,
  root: number,
  cfg: number,
  s2: SecondStage | undefined,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  let level = cfgStartLevel(cfg);
  const width = cfgInputSize(cfg);
  if (iova >= 2 ** (width - 1))
    return fault.set(TranslateFault.NotMapped, level, FaultReason.NonCanonical, iova, VTD_FR.FS_NON_CANONICAL);
  const haw = 2 ** cfgOutputSize(cfg);
  const memBytes = sink.space.i32.length * 4;
  const user = (access & Access.Priv) === 0;
  const write = (access & Access.Write) !== 0;
  const setAd = (cfg & CFG.SET_AD) !== 0;
  const wpOff = (cfg & CFG.WP_OFF) !== 0;
  const fetch = setAd ? Access.Read | Access.Write : Access.Read;
  const translate = (ipa: number, acc: number, purpose: Stage2Context['purpose']): number => {
    const pa = traceVtdSecondStage(sink, s2!.root, s2!.cfg, ipa, acc, fault, { purpose, input: ipa });
    if (pa < 0) sink.faultStage = 'stage2';
    return pa;
  };
  let tablePa = s2 === undefined ? root : translate(root, fetch, 'table');
  if (tablePa < 0) return tablePa;
  let tableIpa = root;
  if (tablePa + 4096 > memBytes)
    return fault.set(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, iova, VTD_FR.FS_PAGING_ENTRY_INV);
  let xd = 0;
  for (;;) {
    const { step, lo, hi } = readEntry(sink, {
      format: 'x86-first-stage',
      stage: 'stage1',
      level,
      table: tablePa,
      index: indexAt(iova, level),
      ...(s2 === undefined ? {} : { tableIpa }),
    });
    step.outcome = 'fault';
    if ((lo & X86_LO.P) === 0)
      return fault.set(TranslateFault.NotMapped, level, FaultReason.NotPresent, iova, VTD_FR.FS_PAGING_ENTRY_P);
    if (user && (lo & X86_LO.US) === 0)
      return fault.set(TranslateFault.Permission, level, FaultReason.UserDenied, iova, VTD_FR.FS_PAGING_ENTRY_US);
    if (write && (lo & X86_LO.RW) === 0 && (user || !wpOff))
      return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, iova, VTD_FR.SM_WRITE);
    const ps = (lo & X86_LO.PS) !== 0;
    const addr = (hi & X86_HI.AddrMask) * 2 ** 32 + ((lo & X86_LO.AddrMask) >>> 0);
    if ((ps && level <= 0) || addr >= haw || (ps && (lo & FL_LARGE_RSVD[level + 1]!) !== 0))
      return fault.set(TranslateFault.Reserved, level, FaultReason.ReservedBits, iova, VTD_FR.FS_PAGING_ENTRY_RSVD);
    xd |= hi & X86_HI.XD;
    const leaf = level === 3 || ps;
    if (setAd) {
      const want = leaf && write ? X86_LO.A | X86_LO.D : X86_LO.A;
      if ((lo & want) !== want) step.wouldSet = want === X86_LO.A ? 'A' : 'A+D';
    }
    if (leaf) {
      if ((access & Access.Exec) !== 0 && xd !== 0)
        return fault.set(TranslateFault.Permission, level, FaultReason.ExecDenied, iova, VTD_FR.SM_EXEC);
      step.outcome = 'leaf';
      const size = SIZE[level + 1]!;
      const s1Shift = 12 + 9 * (3 - level);
      const out = addr - (addr % size) + (iova % size);
      if (s2 === undefined) {
        fault.leafShift = fault.unitShift = s1Shift;
        return out;
      }
      const pa = translate(out, access & ~Access.Priv, 'output');
      if (pa >= 0) {
        if (s1Shift < fault.leafShift) fault.leafShift = s1Shift;
        fault.unitShift = s1Shift;
        fault.gpa = out;
      }
      return pa;
    }
    step.outcome = 'table';
    tablePa = s2 === undefined ? addr : translate(addr, fetch, 'table');
    if (tablePa < 0) return tablePa;
    tableIpa = addr;
    if (tablePa + 4096 > memBytes)
      return fault.set(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, iova, VTD_FR.FS_PAGING_ENTRY_INV);
    level++;
  }
}

/**
 * Traces a VT-d second-stage walk (vtdSecondStageWalk): R for a read or execute and W for a
 * write in every entry; legacy or scalable-mode codes by CFG.SCALABLE. `s2` marks the steps of
 * a nested walk's stage-2 translation.
 */
export function traceVtdSecondStage(
  sink: TraceSink,
  rootPa: number,
  cfg: number,
  iova: number,
  access: number,
  fault: WalkFault,
  s2?: Stage2Context,
): number {
  let level = cfgStartLevel(cfg);
  const sm = (cfg & CFG.SCALABLE) !== 0;
  if (iova >= 2 ** cfgInputSize(cfg)) {
    const code = sm ? VTD_FR.SM_INPUT_BEYOND_MAX : VTD_FR.ADDR_BEYOND_MGAW;
    return fault.set(TranslateFault.NotMapped, level, FaultReason.Aperture, iova, code);
  }
  const haw = 2 ** cfgOutputSize(cfg);
  const memBytes = sink.space.i32.length * 4;
  const read = (access & (Access.Read | Access.Exec)) !== 0;
  const write = (access & Access.Write) !== 0;
  const walkAbort = sm ? VTD_FR.SS_PAGING_ENTRY_INV : VTD_FR.PAGING_ENTRY_INV;
  if (rootPa + 4096 > memBytes)
    return fault.set(TranslateFault.WalkAbort, level, FaultReason.WalkAbort, iova, walkAbort);
  let tablePa = rootPa;
  let writable = SL_LO.W;
  for (;;) {
    const { step, lo, hi } = readEntry(sink, {
      format: 'vtd-second-stage',
      stage: 'stage2',
      level,
      table: tablePa,
      index: indexAt(iova, level),
      ...(s2 === undefined ? {} : { s2 }),
    });
    step.outcome = 'fault';
    const present = (lo & (SL_LO.R | SL_LO.W)) !== 0;
    const denied = present ? TranslateFault.Permission : TranslateFault.NotMapped;
    if (read && (lo & SL_LO.R) === 0) {
      const reason = present ? FaultReason.ReadDenied : FaultReason.NotPresent;
      return fault.set(denied, level, reason, iova, sm ? VTD_FR.SM_READ : VTD_FR.READ);
    }
    if (write && (lo & SL_LO.W) === 0) {
      const reason = present ? FaultReason.WriteDenied : FaultReason.NotPresent;
      return fault.set(denied, level, reason, iova, sm ? VTD_FR.SM_WRITE : VTD_FR.WRITE);
    }
    if (!present)
      return fault.set(
        TranslateFault.NotMapped,
        level,
        FaultReason.NotPresent,
        iova,
        sm ? VTD_FR.SM_READ : VTD_FR.READ,
      );
    const ps = (lo & SL_LO.PS) !== 0;
    const addr = (hi & SL_HI.AddrMask) * 2 ** 32 + ((lo & SL_LO.AddrMask) >>> 0);
    if ((ps && level <= 0) || addr >= haw || (ps && (lo & SL_LARGE_RSVD[level + 1]!) !== 0)) {
      const code = sm ? VTD_FR.SS_PAGING_ENTRY_RSVD : VTD_FR.PAGING_ENTRY_RSVD;
      return fault.set(TranslateFault.Reserved, level, FaultReason.ReservedBits, iova, code);
    }
    writable &= lo;
    if (level === 3 || ps) {
      const out = addr + (iova % SIZE[level + 1]!);
      if (out >= INTERRUPT_RANGE.start && out <= INTERRUPT_RANGE.last) {
        const code = sm ? VTD_FR.SM_INTERRUPT_ADDR : VTD_FR.INTERRUPT_ADDR;
        return fault.set(TranslateFault.NotMapped, level, FaultReason.InterruptRange, iova, code);
      }
      step.outcome = 'leaf';
      fault.leafShift = fault.unitShift = 12 + 9 * (3 - level);
      fault.s2Writable = writable === 0 ? 0 : 1;
      return out;
    }
    step.outcome = 'table';
    if (addr + 4096 > memBytes)
      return fault.set(TranslateFault.WalkAbort, level + 1, FaultReason.WalkAbort, iova, walkAbort);
    tablePa = addr;
    level++;
  }
}
