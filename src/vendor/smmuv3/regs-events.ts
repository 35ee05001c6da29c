import { Subject } from 'rxjs';
import { GERROR, IRQ_CFG, IRQ_CTRL, SMMU_REG } from './regs-defs.js';
import type { RegisterFile } from '../vtd/regs-file.js';

/** Which source raised an interrupt. */
export type SmmuInterruptKind = 'gerror' | 'evtq' | 'priq' | 'cmd-sync';

/** An MSI the SMMU wrote: 32-bit `data` to guest-physical `addr`. */
export interface SmmuMsi {
  readonly addr: number;
  readonly data: number;
}

/**
 * An interrupt as it would reach the CPU: the wired edge and, when the source's MSI address is not
 * zero on an SMMU with MSIs, the MSI that was written.
 */
export interface SmmuInterrupt {
  readonly kind: SmmuInterruptKind;
  readonly msi?: SmmuMsi;
}

/** Performs an MSI write into guest memory; returns false if the write aborted. */
export type SmmuMsiWriter = (addr: number, data: number) => boolean;

/** The register-configured sources: enable bit, MSI registers and the GERROR bit an aborted MSI raises. */
const SOURCES = {
  gerror: {
    irqen: IRQ_CTRL.GERROR_IRQEN,
    cfg0: SMMU_REG.GERROR_IRQ_CFG0,
    cfg1: SMMU_REG.GERROR_IRQ_CFG1,
    cfg2: SMMU_REG.GERROR_IRQ_CFG2,
    abort: GERROR.MSI_GERROR_ABT_ERR,
  },
  evtq: {
    irqen: IRQ_CTRL.EVTQ_IRQEN,
    cfg0: SMMU_REG.EVTQ_IRQ_CFG0,
    cfg1: SMMU_REG.EVTQ_IRQ_CFG1,
    cfg2: SMMU_REG.EVTQ_IRQ_CFG2,
    abort: GERROR.MSI_EVTQ_ABT_ERR,
  },
  priq: {
    irqen: IRQ_CTRL.PRIQ_IRQEN,
    cfg0: SMMU_REG.PRIQ_IRQ_CFG0,
    cfg1: SMMU_REG.PRIQ_IRQ_CFG1,
    cfg2: SMMU_REG.PRIQ_IRQ_CFG2,
    abort: GERROR.MSI_PRIQ_ABT_ERR,
  },
} as const;

/** A source whose enable and MSI configuration live in registers. */
export type SmmuRegisterIrqSource = keyof typeof SOURCES;

/**
 * The SMMU's interrupt sources (IHI0070 §3.18): each register-configured source fires only while
 * its IRQ_CTRLACK enable is set (an occurrence while disabled is never delivered later); it pulses
 * its wired line and, on an SMMU with MSIs whose *_IRQ_CFG0.ADDR is not zero, writes *_IRQ_CFG1 to
 * that address. An MSI that aborts activates the source's GERROR.MSI_*_ABT_ERR.
 */
export class SmmuInterrupts {
  /** Interrupts as they would reach the CPU. */
  readonly interrupts$ = new Subject<SmmuInterrupt>();
  readonly #file: RegisterFile;
  readonly #msiSupported: boolean;
  readonly #msiWrite: SmmuMsiWriter | undefined;
  readonly #raiseGerror: (bits: number) => void;

  constructor(
    file: RegisterFile,
    msiSupported: boolean,
    msiWrite: SmmuMsiWriter | undefined,
    raiseGerror: (bits: number) => void,
  ) {
    this.#file = file;
    this.#msiSupported = msiSupported;
    this.#msiWrite = msiWrite;
    this.#raiseGerror = raiseGerror;
  }

  /**
   * Defines the *_IRQ_CFG0/1/2 registers of `kind` (reset 0): present only with MSIs, except
   * PRIQ_IRQ_CFG2.LO, which exists whenever the PRI queue does. `addrHiMask` is the high word's
   * writeable address bits.
   */
  define(kind: SmmuRegisterIrqSource, addrHiMask: number): void {
    const s = SOURCES[kind];
    const f = this.#file;
    if (this.#msiSupported) {
      f.defineLong(s.cfg0, 0, IRQ_CFG.AddrLowMask);
      f.defineLong(s.cfg0 + 4, 0, addrHiMask);
      f.defineLong(s.cfg1, 0, 0xffffffff);
    }
    const lo = kind === 'priq' ? IRQ_CFG.LO : 0;
    const attr = this.#msiSupported ? IRQ_CFG.AttrMask : 0;
    if ((lo | attr) !== 0) f.defineLong(s.cfg2, 0, (lo | attr) >>> 0);
  }

  /** The IRQ_CTRL bit that enables `kind`. */
  enableBit(kind: SmmuRegisterIrqSource): number {
    return SOURCES[kind].irqen;
  }

  /** The GERROR bit an aborted MSI of `kind` activates. */
  msiAbortBit(kind: SmmuRegisterIrqSource | 'cmd-sync'): number {
    return kind === 'cmd-sync' ? GERROR.MSI_CMDQ_ABT_ERR : SOURCES[kind].abort;
  }

  /** Fires `kind` if IRQ_CTRLACK enables it; returns whether it fired (an aborted MSI still fired). */
  raise(kind: SmmuRegisterIrqSource): boolean {
    const s = SOURCES[kind];
    if ((this.#file.get(SMMU_REG.IRQ_CTRLACK) & s.irqen) === 0) return false;
    const f = this.#file;
    const addr = this.#msiSupported ? f.get(s.cfg0 + 4) * 2 ** 32 + ((f.get(s.cfg0) & IRQ_CFG.AddrLowMask) >>> 0) : 0;
    this.#send(kind, addr, this.#msiSupported ? f.get(s.cfg1) : 0);
    return true;
  }

  /**
   * A CMD_SYNC with CS = SIG_IRQ completed: the MSI the command carries (when MSIs are supported
   * and `msiAddr` is not zero) and the wired CMD_SYNC line. There is no enable bit for this source.
   * Returns false if the MSI aborted (GERROR.MSI_CMDQ_ABT_ERR is then active).
   */
  cmdSync(msiAddr: number, msiData: number): boolean {
    return this.#send('cmd-sync', this.#msiSupported ? msiAddr : 0, msiData);
  }

  /** Emits the interrupt (with its MSI when `addr` is not zero); returns false if the MSI aborted. */
  #send(kind: SmmuInterruptKind, addr: number, data: number): boolean {
    if (addr === 0) {
      this.interrupts$.next({ kind });
      return true;
    }
    const ok = this.#msiWrite === undefined || this.#msiWrite(addr, data >>> 0);
    this.interrupts$.next({ kind, msi: { addr, data: data >>> 0 } });
    if (!ok) this.#raiseGerror(this.msiAbortBit(kind));
    return ok;
  }
}
