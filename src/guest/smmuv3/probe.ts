/**
 * Bringing an SMMUv3 up as Linux 6.1's arm-smmu-v3 does (`arm_smmu_device_hw_probe`,
 * `arm_smmu_device_reset`, `arm_smmu_write_reg_sync`, `arm_smmu_update_gbpa`): what the ID
 * registers say, and the register sequence that enables the unit once the queues and the stream
 * table exist in guest memory.
 */
import { CFGI_ALL_RANGE, Opcode } from '../../vendor/smmuv3/commands.js';
import {
  CR0,
  CR2,
  GBPA,
  IDR0,
  IDR1,
  IDR3,
  IDR5,
  IRQ_CTRL,
  OAS_ENCODING,
  SMMU_PAGE1_REG,
  SMMU_REG,
  ST_LEVEL,
  STALL_MODEL,
  TTF,
} from '../../vendor/smmuv3/regs-defs.js';
import { queueBaseRegister, SH_ISH, type CommandQueue } from './cmdq.js';
import { DRIVER_ERRORS } from './errors.js';
import type { EventQueue } from './evtq.js';
import type { SmmuMmio } from './port.js';
import type { StreamTable } from './strtab.js';

/** What probe() read from IDR0, IDR1, IDR3 and IDR5. */
export interface SmmuGuestCaps {
  /** IDR0.S1P, IDR0.S2P. */
  readonly s1p: boolean;
  readonly s2p: boolean;
  /** IDR0.HYP: the reset also issues TLBI_EL2_ALL. */
  readonly hyp: boolean;
  /** IDR3.RIL: range invalidation. */
  readonly ril: boolean;
  /** IDR0.ATS, IDR0.PRI. */
  readonly ats: boolean;
  readonly pri: boolean;
  /** IDR0.MSI, IDR0.COHACC, IDR0.SEV. */
  readonly msi: boolean;
  readonly coherent: boolean;
  readonly sev: boolean;
  /** IDR0.ST_LEVEL = 2-level stream tables supported. */
  readonly twoLevelStrtab: boolean;
  /** IDR0.CD2L. */
  readonly cd2l: boolean;
  /** IDR0.STALL_MODEL allows stalls (Linux `ARM_SMMU_FEAT_STALLS`): STEs get S1STALLD. */
  readonly stalls: boolean;
  /** IDR1.SIDSIZE, IDR1.SSIDSIZE. */
  readonly sidBits: number;
  readonly ssidBits: number;
  /** IDR1.CMDQS, EVTQS, PRIQS. */
  readonly cmdqs: number;
  readonly evtqs: number;
  readonly priqs: number;
  /** IDR5.OAS in bits, and Linux's `ias` (max(OAS, 40 with AArch32 tables)): the CD's IPS. */
  readonly oas: number;
  readonly ias: number;
  /** 16 with IDR0.ASID16, else 8; 16 with IDR0.VMID16, else 8. */
  readonly asidBits: number;
  readonly vmidBits: number;
}

/** What the reset programs into the unit. */
export interface ResetParts {
  readonly caps: SmmuGuestCaps;
  readonly cmdq: CommandQueue;
  readonly evtq: EventQueue;
  readonly strtab: StreamTable;
  /** The PRI queue (with IDR0.PRI): guest-physical base and log2 of its entries. */
  readonly priqBase: number;
  readonly priqBits: number;
}

/** CR1 and cache attributes (Linux `CR1_*`, `CR1_CACHE_WB`). */
const CR1_CACHE_WB = 1;
const CR1_TABLE_SH_SHIFT = 10;
const CR1_TABLE_OC_SHIFT = 8;
const CR1_TABLE_IC_SHIFT = 6;
const CR1_QUEUE_SH_SHIFT = 4;
const CR1_QUEUE_OC_SHIFT = 2;
/** The CR1 value of `arm_smmu_device_reset`: write-back, inner shareable tables and queues (0xd75). */
const LINUX_CR1 =
  (SH_ISH << CR1_TABLE_SH_SHIFT) |
  (CR1_CACHE_WB << CR1_TABLE_OC_SHIFT) |
  (CR1_CACHE_WB << CR1_TABLE_IC_SHIFT) |
  (SH_ISH << CR1_QUEUE_SH_SHIFT) |
  (CR1_CACHE_WB << CR1_QUEUE_OC_SHIFT) |
  CR1_CACHE_WB;

/**
 * `arm_smmu_device_hw_probe`: reads IDR0, IDR1, IDR3 and IDR5. ENODEV for a unit Linux refuses
 * (no AArch64 tables, a command queue of 64 entries or fewer), EOPNOTSUPP for one this model
 * cannot drive (no stage 1, no 4 KiB granule, forced stalls).
 */
export function hwProbe(mmio: SmmuMmio): SmmuGuestCaps {
  const idr0 = mmio.read32(SMMU_REG.IDR0);
  const ttf = (idr0 >>> IDR0.TtfShift) & IDR0.Field2Mask;
  if (ttf !== TTF.AArch64 && ttf !== TTF.AArch32AArch64) throw DRIVER_ERRORS.noAArch64();
  if ((idr0 & IDR0.S1P) === 0) throw DRIVER_ERRORS.noStage1();
  const stallModel = (idr0 >>> IDR0.StallModelShift) & IDR0.Field2Mask;
  if (stallModel === STALL_MODEL.StallForced) throw DRIVER_ERRORS.stallForced();
  const idr1 = mmio.read32(SMMU_REG.IDR1);
  const f5 = IDR1.Field5Mask;
  const cmdqs = (idr1 >>> IDR1.CmdqsShift) & f5;
  if (cmdqs <= 6) throw DRIVER_ERRORS.cmdqTooSmall(cmdqs);
  const idr3 = mmio.read32(SMMU_REG.IDR3);
  const idr5 = mmio.read32(SMMU_REG.IDR5);
  if ((idr5 & IDR5.GRAN4K) === 0) throw DRIVER_ERRORS.no4k();
  // An unknown OAS is truncated to 48 bits, as Linux does.
  const oasCode = idr5 & IDR5.OasMask;
  const oas = Number(Object.entries(OAS_ENCODING).find(([, code]) => code === oasCode)?.[0] ?? 48);
  return {
    s1p: true,
    s2p: (idr0 & IDR0.S2P) !== 0,
    hyp: (idr0 & IDR0.HYP) !== 0,
    ril: (idr3 & IDR3.RIL) !== 0,
    ats: (idr0 & IDR0.ATS) !== 0,
    pri: (idr0 & IDR0.PRI) !== 0,
    msi: (idr0 & IDR0.MSI) !== 0,
    coherent: (idr0 & IDR0.COHACC) !== 0,
    sev: (idr0 & IDR0.SEV) !== 0,
    twoLevelStrtab: ((idr0 >>> IDR0.StLevelShift) & IDR0.Field2Mask) === ST_LEVEL.TwoLevel,
    cd2l: (idr0 & IDR0.CD2L) !== 0,
    stalls: stallModel === STALL_MODEL.StallAndTerminate,
    sidBits: (idr1 >>> IDR1.SidsizeShift) & IDR1.SidsizeMask,
    ssidBits: (idr1 >>> IDR1.SsidsizeShift) & f5,
    cmdqs,
    evtqs: (idr1 >>> IDR1.EvtqsShift) & f5,
    priqs: (idr1 >>> IDR1.PriqsShift) & f5,
    oas,
    ias: Math.max(oas, ttf === TTF.AArch32AArch64 ? 40 : 0),
    asidBits: (idr0 & IDR0.ASID16) !== 0 ? 16 : 8,
    vmidBits: (idr0 & IDR0.VMID16) !== 0 ? 16 : 8,
  };
}

/**
 * `arm_smmu_device_reset`, in the order of traces/smmu-lazy.clean.log: CR0 = 0, CR1, CR2, the
 * stream table and command queue registers, CMDQEN, CFGI_ALL + SYNC, (TLBI_EL2_ALL + SYNC on a
 * Hyp unit), TLBI_NSNH_ALL + SYNC, the event queue, EVTQEN, (the PRI queue, PRIQEN), (ATSCHK),
 * the interrupts (`arm_smmu_setup_irqs`), SMMUEN. Each CR0 and IRQ_CTRL write waits for its ACK.
 */
export function deviceReset(mmio: SmmuMmio, unit: ResetParts, pollLimit: number): void {
  const { caps, cmdq, evtq, strtab } = unit;
  const sync = (reg: number, value: number, ack: number, name: string): void =>
    writeRegSync(mmio, reg, value, ack, name, pollLimit);
  // Firmware left the unit enabled: abort incoming traffic while it is reset.
  if ((mmio.read32(SMMU_REG.CR0) & CR0.SMMUEN) !== 0) updateGbpa(mmio, GBPA.ABORT, pollLimit);
  sync(SMMU_REG.CR0, 0, SMMU_REG.CR0ACK, 'CR0');
  mmio.write32(SMMU_REG.CR1, LINUX_CR1);
  mmio.write32(SMMU_REG.CR2, CR2.PTM | CR2.RECINVSID);
  mmio.write64(SMMU_REG.STRTAB_BASE, strtab.baseRegister);
  mmio.write32(SMMU_REG.STRTAB_BASE_CFG, strtab.baseCfgRegister);
  mmio.write64(SMMU_REG.CMDQ_BASE, cmdq.baseRegister);
  mmio.write32(SMMU_REG.CMDQ_PROD, cmdq.prod);
  mmio.write32(SMMU_REG.CMDQ_CONS, cmdq.cons);
  let enables = CR0.CMDQEN;
  sync(SMMU_REG.CR0, enables, SMMU_REG.CR0ACK, 'CR0');
  cmdq.issueCmd(Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE }, true);
  if (caps.hyp) cmdq.issueCmd(Opcode.TlbiEl2All, {}, true);
  cmdq.issueCmd(Opcode.TlbiNsnhAll, {}, true);
  mmio.write64(SMMU_REG.EVTQ_BASE, evtq.baseRegister);
  mmio.write32(SMMU_PAGE1_REG.EVTQ_PROD, evtq.prod);
  mmio.write32(SMMU_PAGE1_REG.EVTQ_CONS, evtq.cons);
  enables |= CR0.EVTQEN;
  sync(SMMU_REG.CR0, enables, SMMU_REG.CR0ACK, 'CR0');
  if (caps.pri) {
    mmio.write64(SMMU_REG.PRIQ_BASE, queueBaseRegister(unit.priqBase, unit.priqBits));
    mmio.write32(SMMU_PAGE1_REG.PRIQ_PROD, 0);
    mmio.write32(SMMU_PAGE1_REG.PRIQ_CONS, 0);
    enables |= CR0.PRIQEN;
    sync(SMMU_REG.CR0, enables, SMMU_REG.CR0ACK, 'CR0');
  }
  if (caps.ats) {
    enables |= CR0.ATSCHK;
    sync(SMMU_REG.CR0, enables, SMMU_REG.CR0ACK, 'CR0');
  }
  // arm_smmu_setup_irqs: disabled, the MSI addresses cleared (wired interrupts), enabled.
  sync(SMMU_REG.IRQ_CTRL, 0, SMMU_REG.IRQ_CTRLACK, 'IRQ_CTRL');
  mmio.write64(SMMU_REG.GERROR_IRQ_CFG0, 0n);
  mmio.write64(SMMU_REG.EVTQ_IRQ_CFG0, 0n);
  if (caps.pri) mmio.write64(SMMU_REG.PRIQ_IRQ_CFG0, 0n);
  const irqs = IRQ_CTRL.GERROR_IRQEN | IRQ_CTRL.EVTQ_IRQEN | (caps.pri ? IRQ_CTRL.PRIQ_IRQEN : 0);
  sync(SMMU_REG.IRQ_CTRL, irqs, SMMU_REG.IRQ_CTRLACK, 'IRQ_CTRL');
  enables |= CR0.SMMUEN;
  sync(SMMU_REG.CR0, enables, SMMU_REG.CR0ACK, 'CR0');
}

/** `arm_smmu_write_reg_sync`: writes `value` and polls `ack` until it reads the same (EIO after `pollLimit` reads). */
export function writeRegSync(
  mmio: SmmuMmio,
  reg: number,
  value: number,
  ack: number,
  name: string,
  pollLimit: number,
): void {
  mmio.write32(reg, value);
  for (let i = 0; i < pollLimit; i++) {
    if (mmio.read32(ack) === value >>> 0) return;
  }
  throw DRIVER_ERRORS.handshake(name, value, pollLimit);
}

/** `arm_smmu_update_gbpa(smmu, set, 0)`: a GBPA write with Update, polled until Update clears. */
function updateGbpa(mmio: SmmuMmio, set: number, pollLimit: number): void {
  const gbpa = mmio.read32(SMMU_REG.GBPA);
  mmio.write32(SMMU_REG.GBPA, (gbpa | set | GBPA.UPDATE) >>> 0);
  for (let i = 0; i < pollLimit; i++) {
    if ((mmio.read32(SMMU_REG.GBPA) & GBPA.UPDATE) === 0) return;
  }
  throw DRIVER_ERRORS.handshake('GBPA', gbpa | set, pollLimit);
}
