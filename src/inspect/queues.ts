/*
 * Queue, fault and error state of an emulated unit, read through its MMIO registers only, as a
 * debugger attached to the register window sees it: VT-d's invalidation queue (IQA, IQH, IQT,
 * IQER, ICS), fault status and fault recording registers; SMMUv3's command, event and PRI queues
 * (BASE, PROD, CONS) and global errors. Register reads have no side effects on either unit.
 */
import {
  CERROR,
  CMDQ_CONS,
  CR0,
  GBPA,
  GERROR,
  IDR0,
  IDR1,
  Q_BASE,
  Q_INDEX,
  SMMU_PAGE1_REG,
  SMMU_REG,
  STRTAB_BASE,
  STRTAB_BASE_CFG,
  STRTAB_FMT,
} from '../vendor/smmuv3/regs-defs.js';
import {
  CAP,
  EVENT_CTL,
  FRCD_BYTES,
  FRCD_W2,
  FRCD_W3,
  FSTS,
  GSTS,
  ICS,
  IQ_OFFSET,
  IQA,
  IQEI,
  IQER,
  RTADDR,
  TTM,
  VTD_REG,
} from '../vendor/vtd/regs-defs.js';
import { vtdReasonName } from './names.js';
import type { SmmuQueueState, SmmuRegisterState, VtdFaultRecord, VtdRegisterState } from './types.js';

/** A register window: what a unit's `mmioRead` is. */
export interface MmioReader {
  mmioRead(offset: number, size: 4 | 8): number | bigint;
}

const r32 = (u: MmioReader, offset: number): number => Number(u.mmioRead(offset, 4)) >>> 0;
const r64 = (u: MmioReader, offset: number): bigint => BigInt(u.mmioRead(offset, 8));
const bit = (w: number, mask: number): boolean => (w & mask) !== 0;
const nameOf = (table: Record<string, number>, v: number): string =>
  Object.entries(table).find(([, x]) => x === v)?.[0] ?? String(v);

/** A 64-bit register's address field: bits 51:`low`, from the whole register. */
function address(v: bigint, lowMask: number): number {
  return Number(v & 0xf_ffff_0000_0000n) + ((Number(v & 0xffff_ffffn) & lowMask) >>> 0);
}

/** A VT-d unit's queue and fault state, from its registers. */
export function vtdRegisterState(unit: MmioReader): VtdRegisterState {
  const gsts = r32(unit, VTD_REG.GSTS);
  const rtaddr = r64(unit, VTD_REG.RTADDR);
  const ttm = (Number(rtaddr & 0xfffn) >>> RTADDR.TtmShift) & RTADDR.TtmMask;
  const iqa = r64(unit, VTD_REG.IQA);
  const iqaLo = Number(iqa & 0xffff_ffffn);
  const wide = bit(iqaLo, IQA.DW);
  const qs = iqaLo & IQA.QsMask;
  const entries = 2 ** (qs + (wide ? 7 : 8));
  const bytes = wide ? 32 : 16;
  const headOffset = r32(unit, VTD_REG.IQH) & IQ_OFFSET.Mask;
  const tailOffset = r32(unit, VTD_REG.IQT) & IQ_OFFSET.Mask;
  const head = headOffset / bytes;
  const tail = Math.floor(tailOffset / bytes);
  const iqei = r32(unit, VTD_REG.IQER) & IQER.IqeiMask;
  const fsts = r32(unit, VTD_REG.FSTS);
  const fectl = r32(unit, VTD_REG.FECTL);
  const cap = r64(unit, VTD_REG.CAP);
  const fro = Number((cap >> CAP.FroShift) & 0x3ffn) * 16;
  const nfr = Number((cap >> CAP.NfrShift) & 0xffn) + 1;
  const faultRecords: VtdFaultRecord[] = [];
  for (let i = 0; i < nfr; i++) {
    const at = fro + i * FRCD_BYTES;
    const w2 = r32(unit, at + 8);
    const w3 = r32(unit, at + 12);
    const reason = w3 & FRCD_W3.FrMask;
    faultRecords.push({
      index: i,
      valid: bit(w3, FRCD_W3.F),
      reason,
      reasonName: vtdReasonName(reason),
      sid: w2 & FRCD_W2.SidMask,
      address: address(r64(unit, at), 0xfffff000),
      type: bit(w3, FRCD_W3.T1) ? 'read' : 'write',
      ...(bit(w2, FRCD_W2.PP) ? { pasid: (w3 >>> FRCD_W3.PvShift) & FRCD_W3.PvMask } : {}),
      priv: bit(w2, FRCD_W2.PRIV),
      exec: bit(w2, FRCD_W2.EXE),
    });
  }
  return {
    gsts: {
      tes: bit(gsts, GSTS.TES),
      rtps: bit(gsts, GSTS.RTPS),
      qies: bit(gsts, GSTS.QIES),
      ires: bit(gsts, GSTS.IRES),
    },
    rootTable: {
      address: address(rtaddr, 0xfffff000),
      ttm,
      mode:
        ttm === TTM.Legacy
          ? 'legacy'
          : ttm === TTM.Scalable
            ? 'scalable'
            : ttm === TTM.AbortDma
              ? 'abort-dma'
              : 'reserved',
    },
    invalidationQueue: {
      base: address(iqa, IQA.AddrMask),
      qs,
      descriptorBits: wide ? 256 : 128,
      entries,
      headOffset,
      tailOffset,
      head,
      tail,
      pending: (tail - head + entries) % entries,
      iqei,
      iqeiName: nameOf(IQEI, iqei),
      waitCompleted: bit(r32(unit, VTD_REG.ICS), ICS.IWC),
    },
    faultStatus: {
      pfo: bit(fsts, FSTS.PFO),
      ppf: bit(fsts, FSTS.PPF),
      iqe: bit(fsts, FSTS.IQE),
      ice: bit(fsts, FSTS.ICE),
      ite: bit(fsts, FSTS.ITE),
      fri: (fsts >>> FSTS.FriShift) & FSTS.FriMask,
    },
    faultEvent: { masked: bit(fectl, EVENT_CTL.IM), pending: bit(fectl, EVENT_CTL.IP) },
    faultRecords,
  };
}

/** One SMMUv3 queue from its BASE, PROD and CONS registers; `maxLog2` caps LOG2SIZE (IDR1). */
function smmuQueue(
  unit: MmioReader,
  baseReg: number,
  prodReg: number,
  consReg: number,
  maxLog2: number,
  enabled: boolean,
  kind: 'cmdq' | 'out',
): SmmuQueueState {
  const base = r64(unit, baseReg);
  const log2Size = Math.min(Number(base & BigInt(Q_BASE.Log2SizeMask)), maxLog2);
  const prod = r32(unit, prodReg);
  const cons = r32(unit, consReg);
  const wrap = 2 ** log2Size;
  const mask = 2 * wrap - 1;
  const p = prod & mask;
  const c = cons & mask;
  const q: SmmuQueueState = {
    base: address(base, Q_BASE.AddrLowMask),
    log2Size,
    prod: p,
    cons: c,
    pending: (p - c + 2 * wrap) % (2 * wrap),
    enabled,
  };
  if (kind === 'cmdq') {
    q.error = (cons >>> CMDQ_CONS.ErrShift) & CMDQ_CONS.ErrMask;
    q.errorName = nameOf(CERROR, q.error);
  } else {
    q.overflow = ((prod ^ cons) & Q_INDEX.OVF) !== 0;
  }
  return q;
}

/** An SMMUv3's queue and error state, from its registers. */
export function smmuRegisterState(unit: MmioReader): SmmuRegisterState {
  const cr0 = r32(unit, SMMU_REG.CR0ACK);
  const gerror = r32(unit, SMMU_REG.GERROR);
  const gerrorn = r32(unit, SMMU_REG.GERRORN);
  const active = (gerror ^ gerrorn) >>> 0;
  const idr1 = r32(unit, SMMU_REG.IDR1);
  const field = (shift: number): number => (idr1 >>> shift) & IDR1.Field5Mask;
  const cfg = r32(unit, SMMU_REG.STRTAB_BASE_CFG);
  const state: SmmuRegisterState = {
    cr0: {
      smmuen: bit(cr0, CR0.SMMUEN),
      cmdqen: bit(cr0, CR0.CMDQEN),
      evtqen: bit(cr0, CR0.EVTQEN),
      priqen: bit(cr0, CR0.PRIQEN),
      atschk: bit(cr0, CR0.ATSCHK),
    },
    gbpaAbort: bit(r32(unit, SMMU_REG.GBPA), GBPA.ABORT),
    gerror,
    gerrorn,
    activeErrors: Object.entries(GERROR)
      .filter(([, b]) => (active & b) !== 0)
      .map(([name]) => name),
    streamTable: {
      base: address(r64(unit, SMMU_REG.STRTAB_BASE), STRTAB_BASE.AddrLowMask),
      format:
        ((cfg >>> STRTAB_BASE_CFG.FmtShift) & STRTAB_BASE_CFG.FmtMask) === STRTAB_FMT.TwoLevel ? '2-level' : 'linear',
      log2Size: cfg & STRTAB_BASE_CFG.Log2SizeMask,
      split: (cfg >>> STRTAB_BASE_CFG.SplitShift) & STRTAB_BASE_CFG.SplitMask,
    },
    cmdq: smmuQueue(
      unit,
      SMMU_REG.CMDQ_BASE,
      SMMU_REG.CMDQ_PROD,
      SMMU_REG.CMDQ_CONS,
      field(IDR1.CmdqsShift),
      bit(cr0, CR0.CMDQEN),
      'cmdq',
    ),
    evtq: smmuQueue(
      unit,
      SMMU_REG.EVTQ_BASE,
      SMMU_PAGE1_REG.EVTQ_PROD,
      SMMU_PAGE1_REG.EVTQ_CONS,
      field(IDR1.EvtqsShift),
      bit(cr0, CR0.EVTQEN),
      'out',
    ),
  };
  if (bit(r32(unit, SMMU_REG.IDR0), IDR0.PRI)) {
    state.priq = smmuQueue(
      unit,
      SMMU_REG.PRIQ_BASE,
      SMMU_PAGE1_REG.PRIQ_PROD,
      SMMU_PAGE1_REG.PRIQ_CONS,
      field(IDR1.PriqsShift),
      bit(cr0, CR0.PRIQEN),
      'out',
    );
  }
  return state;
}
