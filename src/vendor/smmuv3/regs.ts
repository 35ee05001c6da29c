import type { Observable } from 'rxjs';
import { RegisterFile } from '../vtd/regs-file.js';
import {
  resolveSmmuOptions,
  smmuIdr0,
  smmuIdr1,
  smmuIdr3,
  smmuIdr5,
  type ResolvedSmmuOptions,
  type SmmuRegisterOptions,
} from './regs-caps.js';
import {
  CMDQ_CONS,
  CR0,
  CR1,
  CR2,
  GBPA,
  GERROR,
  IRQ_CFG,
  IRQ_CTRL,
  Q_INDEX,
  QUEUE_ENTRY_BYTES,
  SMMU_MMIO_SIZE,
  SMMU_PAGE1,
  SMMU_QUAD_REGS,
  SMMU_REG,
  SMMU_REG_BYTES,
  STRTAB_BASE,
  STRTAB_BASE_CFG,
  STRTAB_FMT,
  STRTAB_SPLITS,
} from './regs-defs.js';
import { SmmuInterrupts, type SmmuInterrupt } from './regs-events.js';
import { GUARD_ALL_BITS, guardedBits } from './regs-guards.js';
import { SmmuQueueRegisters } from './regs-queue.js';

export type { ResolvedSmmuOptions, SmmuRegisterOptions } from './regs-caps.js';
export type { SmmuInterrupt, SmmuInterruptKind, SmmuMsi } from './regs-events.js';
export type { SmmuQueueKind } from './regs-queue.js';

/** The output queues: events and PRI requests. */
export type SmmuOutQueueKind = 'evtq' | 'priq';

/** The stream table as STRTAB_BASE and STRTAB_BASE_CFG describe it (effective values). */
export interface SmmuStreamTable {
  /** Guest-physical address of the linear table or of the level-1 table, aligned to the table size. */
  readonly address: number;
  /** FMT: 2-level only when the unit advertises it and FMT = 0b01; reserved values behave as linear. */
  readonly format: 'linear' | '2-level';
  /** MIN(LOG2SIZE, IDR1.SIDSIZE): StreamIDs at or above 2^log2Size are out of range. */
  readonly log2Size: number;
  /** SPLIT for a 2-level table: 6, 8 or 10 (reserved values behave as 6). */
  readonly split: number;
}

/**
 * Calls toward the device model. Each runs synchronously inside the MMIO write that caused it and
 * may call back into the registers (for example `setCmdqCons` and `raiseGerror` from `cmdqDoorbell`).
 */
export interface SmmuRegisterHooks {
  /**
   * The command queue should be considered for processing, with PROD = `prod` (index and wrap bit):
   * a CMDQ_PROD write while CMDQEN is set and CMDQ_ERR is not active; or, with commands waiting, an
   * Update of CMDQEN to 1 or the acknowledgement of CMDQ_ERR (QEMU consumes on CR0 and GERRORN writes).
   */
  cmdqDoorbell?(prod: number): void;
  /** CR0 was written and CR0ACK changed: `changed` holds the bits that flipped. */
  controlChanged?(cr0ack: number, changed: number): void;
  /** STRTAB_BASE or STRTAB_BASE_CFG was written (only possible while SMMUEN = 0). */
  streamTableChanged?(table: SmmuStreamTable): void;
  /** GBPA was updated (a write with Update = 1); `gbpa` is the new value. */
  bypassChanged?(gbpa: number): void;
  /**
   * An output queue may have become writable again: software wrote its CONS, enabled it, or
   * acknowledged its abort error. A held stall event can be retried now.
   */
  outQueueUpdated?(kind: SmmuOutQueueKind): void;
  /**
   * Writes an MSI: 32-bit `data` at guest-physical `addr` (little-endian). Returns false if the
   * write aborted, which activates the source's GERROR.MSI_*_ABT_ERR. Without this hook MSIs are
   * only reported on `interrupts$`.
   */
  msiWrite?(addr: number, data: number): boolean;
}

/** Every message the register model can raise (one place, STYLE.md). */
const ERRORS = {
  size: (size: number) => `MMIO access size must be 4 or 8, got ${size}`,
  value32: (v: unknown) => `a 4-byte MMIO write takes an integer number in [-2^31, 2^32), got ${String(v)}`,
  value64: (v: unknown) =>
    `an 8-byte MMIO write takes a bigint in [0, 2^64) or a safe non-negative integer, got ${String(v)}`,
  cons: (v: number, mask: number) =>
    `CMDQ_CONS index ${v} must be an integer within the queue's index and wrap bits (mask 0x${mask.toString(16)})`,
  err: (v: number) => `CMDQ_CONS.ERR must be an integer in [0, 127], got ${v}`,
  gerror: (bits: number, mask: number) =>
    `GERROR bits 0x${(bits >>> 0).toString(16)} are not all implemented (mask 0x${mask.toString(16)})`,
} as const;

/** Page-1 registers (offsets within page 1); they share storage with their page-0 aliases. */
const PAGE1_WORDS: readonly number[] = [SMMU_REG.EVTQ_PROD, SMMU_REG.EVTQ_CONS, SMMU_REG.PRIQ_PROD, SMMU_REG.PRIQ_CONS];

/**
 * The Non-secure register pages (0 and 1) of one emulated SMMUv3: ID registers built from the
 * options, reset values and write masks, the CR0/CR0ACK and IRQ_CTRL/IRQ_CTRLACK handshakes
 * (Updates complete at once), GERROR/GERRORN, Guarded registers, the three queues' BASE/PROD/CONS,
 * the stream table registers and the interrupt sources, after QEMU `hw/arm/smmuv3.c` and IHI0070
 * §6 (reference/viommu-queues.md §1.1, §3.1).
 *
 * MMIO convention (as VtdRegisters): `size` is 4 or 8. A 4-byte access carries a number (reads
 * return an unsigned 32-bit number; writes take any integer in [-2^31, 2^32)). An 8-byte access
 * carries a bigint (writes also take a safe non-negative integer) and is accepted only at the
 * 64-bit registers; elsewhere it reads 0 and is ignored (IHI0070 §6.2 permits RAZ/WI). A 64-bit
 * register can also be accessed as two 4-byte halves, low half first. Misaligned accesses,
 * offsets outside any register and registers the options leave out read 0 and ignore writes.
 * Page 1 holds EVTQ_PROD/CONS and PRIQ_PROD/CONS; their page-0 offsets alias them.
 *
 * Guest-physical addresses (queue bases, the stream table, MSI targets) are numbers: they are
 * below 2^52, so they are exact.
 */
export class SmmuRegisters {
  /** Interrupts as they would reach the CPU (wired edges, with the MSI when one was written). */
  readonly interrupts$: Observable<SmmuInterrupt>;
  /** The options with defaults applied. */
  readonly options: ResolvedSmmuOptions;
  /** IDR0 as advertised. */
  readonly idr0: number;
  /** IDR1 as advertised. */
  readonly idr1: number;
  /** IDR3 as advertised. */
  readonly idr3: number;
  /** IDR5 as advertised. */
  readonly idr5: number;
  /** Bytes of the MMIO window (pages 0 and 1). */
  readonly mmioSize = SMMU_MMIO_SIZE;
  /** The command queue's BASE/PROD/CONS. */
  readonly cmdq: SmmuQueueRegisters;
  /** The event queue's BASE/PROD/CONS. */
  readonly evtq: SmmuQueueRegisters;
  /** The PRI queue's BASE/PROD/CONS (never enabled without PRI). */
  readonly priq: SmmuQueueRegisters;

  readonly #hooks: SmmuRegisterHooks;
  readonly #file = new RegisterFile(SMMU_REG_BYTES);
  readonly #irqs: SmmuInterrupts;
  /** GERROR bits this unit implements. */
  readonly #gerrorMask: number;
  /** High-word address bits below the output address size. */
  readonly #addrHi: number;
  #streamTable: SmmuStreamTable = { address: 0, format: 'linear', log2Size: 0, split: 6 };

  constructor(options: SmmuRegisterOptions = {}, hooks: SmmuRegisterHooks = {}) {
    const o = resolveSmmuOptions(options);
    this.options = o;
    this.idr0 = smmuIdr0(o);
    this.idr1 = smmuIdr1(o);
    this.idr3 = smmuIdr3(o);
    this.idr5 = smmuIdr5(o);
    this.#hooks = hooks;
    this.#addrHi = o.oas > 32 ? 2 ** (o.oas - 32) - 1 : 0;
    let gerror = GERROR.CMDQ_ERR | GERROR.EVTQ_ABT_ERR | GERROR.SFM_ERR;
    if (o.pri) gerror |= GERROR.PRIQ_ABT_ERR;
    if (o.msi) gerror |= GERROR.MSI_CMDQ_ABT_ERR | GERROR.MSI_EVTQ_ABT_ERR | GERROR.MSI_GERROR_ABT_ERR;
    if (o.msi && o.pri) gerror |= GERROR.MSI_PRIQ_ABT_ERR;
    this.#gerrorMask = gerror;
    const msiWrite = hooks.msiWrite?.bind(hooks);
    this.#irqs = new SmmuInterrupts(this.#file, o.msi, msiWrite, (bits) => {
      this.raiseGerror(bits);
    });
    this.interrupts$ = this.#irqs.interrupts$.asObservable();
    this.cmdq = new SmmuQueueRegisters(this.#file, 'cmdq', QUEUE_ENTRY_BYTES.cmdq, o.cmdqMaxLog2);
    this.evtq = new SmmuQueueRegisters(this.#file, 'evtq', QUEUE_ENTRY_BYTES.evtq, o.evtqMaxLog2);
    this.priq = new SmmuQueueRegisters(this.#file, 'priq', QUEUE_ENTRY_BYTES.priq, o.pri ? o.priqMaxLog2 : 0);
    this.reset();
  }

  /** Returns every register to its reset value and forgets latched state; no hooks run. */
  reset(): void {
    const f = this.#file;
    const o = this.options;
    f.clear();
    f.defineLong(SMMU_REG.IDR0, this.idr0);
    f.defineLong(SMMU_REG.IDR1, this.idr1);
    f.defineLong(SMMU_REG.IDR2, 0);
    f.defineLong(SMMU_REG.IDR3, this.idr3);
    f.defineLong(SMMU_REG.IDR4, 0);
    f.defineLong(SMMU_REG.IDR5, this.idr5);
    f.defineLong(SMMU_REG.IIDR, o.iidr >>> 0);
    f.defineLong(SMMU_REG.AIDR, o.archMinorRevision);
    const cr0 = CR0.SMMUEN | CR0.EVTQEN | CR0.CMDQEN | (o.pri ? CR0.PRIQEN : 0) | (o.ats ? CR0.ATSCHK : 0);
    f.defineLong(SMMU_REG.CR0, 0, cr0);
    f.defineLong(SMMU_REG.CR0ACK, 0);
    f.defineLong(SMMU_REG.CR1, 0, CR1.QueueMask | CR1.TableMask);
    f.defineLong(SMMU_REG.CR2, 0, CR2.RECINVSID | (o.hyp ? CR2.E2H : 0));
    f.defineLong(SMMU_REG.STATUSR, 0);
    // GBPA is written only through #gbpaWrite (the Update protocol), so no write mask here.
    f.defineLong(SMMU_REG.GBPA, GBPA.Reset | (o.gbpaAbort ? GBPA.ABORT : 0));
    f.defineLong(SMMU_REG.IRQ_CTRL, 0, IRQ_CTRL.GERROR_IRQEN | IRQ_CTRL.EVTQ_IRQEN | (o.pri ? IRQ_CTRL.PRIQ_IRQEN : 0));
    f.defineLong(SMMU_REG.IRQ_CTRLACK, 0);
    f.defineLong(SMMU_REG.GERROR, 0);
    f.defineLong(SMMU_REG.GERRORN, 0, this.#gerrorMask);
    this.#irqs.define('gerror', this.#addrHi);
    this.#irqs.define('evtq', this.#addrHi);
    if (o.pri) this.#irqs.define('priq', this.#addrHi);
    f.defineLong(SMMU_REG.STRTAB_BASE, 0, STRTAB_BASE.AddrLowMask);
    f.defineLong(SMMU_REG.STRTAB_BASE + 4, 0, this.#addrHi | STRTAB_BASE.RA_HI);
    const split = STRTAB_BASE_CFG.SplitMask << STRTAB_BASE_CFG.SplitShift;
    const fmt = STRTAB_BASE_CFG.FmtMask << STRTAB_BASE_CFG.FmtShift;
    f.defineLong(SMMU_REG.STRTAB_BASE_CFG, 0, STRTAB_BASE_CFG.Log2SizeMask | (o.twoLevelStreamTable ? split | fmt : 0));
    // CMDQ_CONS.ERR is the SMMU's (IHI0070 lets a write with CMDQEN = 0 be ignored there).
    this.cmdq.define(this.#addrHi, 0, 0);
    this.evtq.define(this.#addrHi, Q_INDEX.OVF, Q_INDEX.OVF);
    if (o.pri) this.priq.define(this.#addrHi, Q_INDEX.OVF, Q_INDEX.OVF);
    this.#latchStreamTable();
  }

  // ---- MMIO ---------------------------------------------------------------------------------

  /** A guest read. See the class comment for the value convention. */
  mmioRead(offset: number, size: 4): number;
  mmioRead(offset: number, size: 8): bigint;
  mmioRead(offset: number, size: 4 | 8): number | bigint;
  mmioRead(offset: number, size: 4 | 8): number | bigint {
    checkSize(size);
    const reg = decodeOffset(offset, size);
    if (size === 4) return reg < 0 ? 0 : this.#file.guestRead(reg);
    if (reg < 0) return 0n;
    return (BigInt(this.#file.guestRead(reg + 4)) << 32n) | BigInt(this.#file.guestRead(reg));
  }

  /** A guest write, then the register's side effects. See the class comment for the value convention. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void {
    checkSize(size);
    const [low, high] = size === 4 ? [toU32(value), 0] : toU64Words(value);
    const reg = decodeOffset(offset, size);
    if (reg < 0) return;
    if (reg === SMMU_REG.GBPA) {
      this.#gbpaWrite(low);
      return;
    }
    const before = this.#file.get(reg);
    let accepted = this.#writeWord(reg, low);
    if (size === 8) accepted = this.#writeWord(reg + 4, high) || accepted;
    if (accepted) this.#afterWrite(SMMU_QUAD_REGS.includes(reg - 4) ? reg - 4 : reg, before);
  }

  /** A guest write of one word, keeping Guarded bits; returns whether any bit was writable. */
  #writeWord(reg: number, value: number): boolean {
    const locked = this.#lockedBits(reg);
    if (locked === GUARD_ALL_BITS) return false;
    const f = this.#file;
    f.guestWrite(reg, (value & ~locked) | (f.get(reg) & locked));
    return true;
  }

  /** The bits of the word at `reg` that its guards make read-only right now. */
  #lockedBits(reg: number): number {
    const f = this.#file;
    const cr0 = f.get(SMMU_REG.CR0) | f.get(SMMU_REG.CR0ACK);
    const irq = f.get(SMMU_REG.IRQ_CTRL) | f.get(SMMU_REG.IRQ_CTRLACK);
    return guardedBits(reg, cr0, irq);
  }

  /** Side effects of an accepted guest write to the register at `reg` (`before`: its old low word). */
  #afterWrite(reg: number, before: number): void {
    switch (reg) {
      case SMMU_REG.CR0:
        return this.#cr0Write();
      case SMMU_REG.IRQ_CTRL:
        // Enables Update at once; an occurrence while disabled is never delivered later (IHI0070 §6.3.16).
        this.#file.set(SMMU_REG.IRQ_CTRLACK, this.#file.get(SMMU_REG.IRQ_CTRL));
        return;
      case SMMU_REG.GERRORN:
        return this.#gerrornWrite(before);
      case SMMU_REG.STRTAB_BASE:
      case SMMU_REG.STRTAB_BASE_CFG:
        this.#latchStreamTable();
        this.#hooks.streamTableChanged?.(this.#streamTable);
        return;
      case SMMU_REG.CMDQ_BASE:
        return this.cmdq.latchBase();
      case SMMU_REG.EVTQ_BASE:
        return this.evtq.latchBase();
      case SMMU_REG.PRIQ_BASE:
        return this.priq.latchBase();
      case SMMU_REG.CMDQ_PROD:
        if (this.cmdqEnabled && !this.cmdqErrorPending) this.#hooks.cmdqDoorbell?.(this.cmdqProd);
        return;
      case SMMU_REG.EVTQ_CONS:
        return this.#hooks.outQueueUpdated?.('evtq');
      case SMMU_REG.PRIQ_CONS:
        if (this.options.pri) this.#hooks.outQueueUpdated?.('priq');
        return;
    }
  }

  /** CR0 fields Update at once: CR0ACK takes the written value (reserved bits are not writeable). */
  #cr0Write(): void {
    const f = this.#file;
    const ack = f.get(SMMU_REG.CR0);
    const changed = (f.get(SMMU_REG.CR0ACK) ^ ack) >>> 0;
    f.set(SMMU_REG.CR0ACK, ack);
    if (changed === 0) return;
    this.#hooks.controlChanged?.(ack, changed);
    if ((changed & CR0.CMDQEN) !== 0) this.#resumeCmdq();
    if ((changed & CR0.EVTQEN) !== 0 && this.evtq.enabled) this.#hooks.outQueueUpdated?.('evtq');
    if ((changed & (CR0.PRIQEN | CR0.SMMUEN)) !== 0 && this.priq.enabled) this.#hooks.outQueueUpdated?.('priq');
  }

  /**
   * GERRORN keeps what software wrote (IHI0070 §6.3.20). Toggling an inactive error is CONSTRAINED
   * UNPREDICTABLE; like QEMU, the bit is stored and so reads as an active error (no interrupt).
   */
  #gerrornWrite(before: number): void {
    const f = this.#file;
    const gerror = f.get(SMMU_REG.GERROR);
    const acked = (gerror ^ before) & ~(gerror ^ f.get(SMMU_REG.GERRORN));
    if ((acked & GERROR.CMDQ_ERR) !== 0) this.#resumeCmdq();
    if ((acked & GERROR.EVTQ_ABT_ERR) !== 0) this.#hooks.outQueueUpdated?.('evtq');
    if ((acked & GERROR.PRIQ_ABT_ERR) !== 0) this.#hooks.outQueueUpdated?.('priq');
  }

  /** Commands are waiting and nothing stops the queue: ring the doorbell. */
  #resumeCmdq(): void {
    if (this.cmdqEnabled && !this.cmdqErrorPending && !this.cmdq.empty) this.#hooks.cmdqDoorbell?.(this.cmdqProd);
  }

  /**
   * GBPA takes a write only together with Update = 1 (a write without it is IGNORED, the only
   * SMMUv3.2 behaviour); the update completes at once, so Update always reads 0.
   */
  #gbpaWrite(value: number): void {
    if ((value & GBPA.UPDATE) === 0) return;
    const gbpa = (value & GBPA.FieldsMask) >>> 0;
    this.#file.set(SMMU_REG.GBPA, gbpa);
    this.#hooks.bypassChanged?.(gbpa);
  }

  /**
   * The effective stream table: LOG2SIZE capped at SIDSIZE, reserved SPLIT as 6, reserved FMT as
   * linear, and the address aligned to the table size (the linear table or the level-1 array),
   * as QEMU's `smmu_find_ste` does.
   */
  #latchStreamTable(): void {
    const f = this.#file;
    const cfg = f.get(SMMU_REG.STRTAB_BASE_CFG);
    const twoLevel = ((cfg >>> STRTAB_BASE_CFG.FmtShift) & STRTAB_BASE_CFG.FmtMask) === STRTAB_FMT.TwoLevel;
    const log2Size = Math.min(cfg & STRTAB_BASE_CFG.Log2SizeMask, this.options.sidBits);
    const rawSplit = (cfg >>> STRTAB_BASE_CFG.SplitShift) & STRTAB_BASE_CFG.SplitMask;
    const split = STRTAB_SPLITS.includes(rawSplit) ? rawSplit : 6;
    const bytes = twoLevel ? 8 * 2 ** Math.max(0, log2Size - split) : 64 * 2 ** log2Size;
    const low = f.get(SMMU_REG.STRTAB_BASE) & STRTAB_BASE.AddrLowMask;
    const raw = (f.get(SMMU_REG.STRTAB_BASE + 4) & this.#addrHi) * 2 ** 32 + (low >>> 0);
    const address = raw - (raw % Math.max(64, bytes));
    this.#streamTable = { address, format: twoLevel ? '2-level' : 'linear', log2Size, split };
  }

  // ---- command queue -------------------------------------------------------------------------

  /** Command queue base address (latched from CMDQ_BASE). */
  get cmdqBase(): number {
    return this.cmdq.base;
  }

  /** log2 of the command queue's entries, capped at IDR1.CMDQS. */
  get cmdqLog2Size(): number {
    return this.cmdq.log2Size;
  }

  /** CMDQ_PROD: index and wrap bit. */
  get cmdqProd(): number {
    return this.cmdq.prod & this.cmdq.indexMask;
  }

  /** CMDQ_CONS.RD: index and wrap bit. */
  get cmdqCons(): number {
    return this.cmdq.cons & this.cmdq.indexMask;
  }

  /** CMDQ_CONS.ERR: the CERROR code of the last command error. */
  get cmdqError(): number {
    return (this.cmdq.cons >>> CMDQ_CONS.ErrShift) & CMDQ_CONS.ErrMask;
  }

  /** CR0ACK.CMDQEN. */
  get cmdqEnabled(): boolean {
    return this.cmdq.enabled;
  }

  /** GERROR.CMDQ_ERR is active: the SMMU fetches no commands until software acknowledges it. */
  get cmdqErrorPending(): boolean {
    return (this.gerrorActive & GERROR.CMDQ_ERR) !== 0;
  }

  /**
   * The device model consumed commands up to `cons` (index and wrap bit). With `errCode` (a CERROR
   * code) CMDQ_CONS.ERR takes it; without, ERR keeps its value, as QEMU's `queue_cons_incr`. A
   * command error also needs `raiseGerror(GERROR.CMDQ_ERR)`.
   */
  setCmdqCons(cons: number, errCode?: number): void {
    const mask = this.cmdq.indexMask;
    if (!Number.isInteger(cons) || cons < 0 || (cons & ~mask) !== 0) throw new RangeError(ERRORS.cons(cons, mask));
    let err = this.cmdqError;
    if (errCode !== undefined) {
      if (!Number.isInteger(errCode) || errCode < 0 || errCode > CMDQ_CONS.ErrMask)
        throw new RangeError(ERRORS.err(errCode));
      err = errCode;
    }
    this.cmdq.setCons(cons | (err << CMDQ_CONS.ErrShift));
  }

  // ---- errors and interrupts -----------------------------------------------------------------

  /** GERROR bits whose error is active (GERROR != GERRORN). */
  get gerrorActive(): number {
    const f = this.#file;
    return ((f.get(SMMU_REG.GERROR) ^ f.get(SMMU_REG.GERRORN)) & this.#gerrorMask) >>> 0;
  }

  /**
   * Activates global errors: toggles each GERROR bit of `bits` whose error is not already active
   * (an active error is not toggled again), then fires the GERROR interrupt if IRQ_CTRL enables it.
   * Returns whether any error became active. `bits` must be GERROR bits this unit implements.
   */
  raiseGerror(bits: number): boolean {
    if (!Number.isInteger(bits) || ((bits >>> 0) & ~this.#gerrorMask) !== 0)
      throw new RangeError(ERRORS.gerror(bits, this.#gerrorMask));
    const fresh = (bits & ~this.gerrorActive) >>> 0;
    if (fresh === 0) return false;
    const f = this.#file;
    f.set(SMMU_REG.GERROR, (f.get(SMMU_REG.GERROR) ^ fresh) >>> 0);
    this.#irqs.raise('gerror');
    return true;
  }

  /** Fires the event or PRI queue interrupt if IRQ_CTRL enables it (the output queue writer's job); returns whether it fired. */
  raiseQueueInterrupt(kind: SmmuOutQueueKind): boolean {
    if (kind === 'priq' && !this.options.pri) return false;
    return this.#irqs.raise(kind);
  }

  /**
   * A CMD_SYNC with CS = SIG_IRQ completed: the wired CMD_SYNC interrupt and, on a unit with MSIs
   * when `msiAddr` (the command's MSIAddress) is not zero, the MSI of `msiData`. Returns false if
   * the MSI aborted (GERROR.MSI_CMDQ_ABT_ERR is then active).
   */
  signalCmdSync(msiAddr = 0, msiData = 0): boolean {
    return this.#irqs.cmdSync(msiAddr, msiData);
  }

  /** IRQ_CTRLACK. */
  get irqCtrl(): number {
    return this.#file.get(SMMU_REG.IRQ_CTRLACK);
  }

  /** PRIQ_IRQ_CFG2.LO: the PRI queue interrupts only for requests with Last = 1. */
  get priqLastOnly(): boolean {
    return this.options.pri && (this.#file.get(SMMU_REG.PRIQ_IRQ_CFG2) & IRQ_CFG.LO) !== 0;
  }

  // ---- control -------------------------------------------------------------------------------

  /** CR0ACK. */
  get cr0(): number {
    return this.#file.get(SMMU_REG.CR0ACK);
  }

  /** CR0ACK.SMMUEN: streams are translated (else GBPA applies). */
  get smmuEnabled(): boolean {
    return (this.cr0 & CR0.SMMUEN) !== 0;
  }

  /** CR0ACK.ATSCHK: ATS-translated traffic is checked against STE.EATS. */
  get atsCheck(): boolean {
    return (this.cr0 & CR0.ATSCHK) !== 0;
  }

  /** CR1 (table and queue memory attributes). */
  get cr1(): number {
    return this.#file.get(SMMU_REG.CR1);
  }

  /** CR2 (E2H, RECINVSID). */
  get cr2(): number {
    return this.#file.get(SMMU_REG.CR2);
  }

  /** CR2.RECINVSID: out-of-range StreamIDs record C_BAD_STREAMID. */
  get recordInvalidSid(): boolean {
    return (this.cr2 & CR2.RECINVSID) !== 0;
  }

  /** GBPA (Update always 0). */
  get gbpa(): number {
    return this.#file.get(SMMU_REG.GBPA);
  }

  /** GBPA.ABORT: with SMMUEN = 0, transactions abort instead of bypassing. */
  get bypassAbort(): boolean {
    return (this.gbpa & GBPA.ABORT) !== 0;
  }

  /** The stream table, as last written (effective values). */
  get streamTable(): SmmuStreamTable {
    return this.#streamTable;
  }
}

/** The page-0 word that backs `offset`, or -1 when no register answers an access of `size` there. */
function decodeOffset(offset: number, size: number): number {
  if (!Number.isInteger(offset) || offset < 0 || offset % size !== 0 || offset + size > SMMU_MMIO_SIZE) return -1;
  if (size === 8) return SMMU_QUAD_REGS.includes(offset) ? offset : -1;
  if (offset >= SMMU_PAGE1) return PAGE1_WORDS.includes(offset - SMMU_PAGE1) ? offset - SMMU_PAGE1 : -1;
  return offset < SMMU_REG_BYTES ? offset : -1;
}

function checkSize(size: number): void {
  if (size !== 4 && size !== 8) throw new RangeError(ERRORS.size(size));
}

function toU32(v: number | bigint): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 32)
    throw new RangeError(ERRORS.value32(v));
  return v >>> 0;
}

function toU64Words(v: number | bigint): [number, number] {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(ERRORS.value64(v));
    return [v % 2 ** 32, Math.floor(v / 2 ** 32)];
  }
  if (v < 0n || v >= 1n << 64n) throw new RangeError(ERRORS.value64(v));
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}
