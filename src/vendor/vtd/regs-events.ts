import { Subject } from 'rxjs';
import { EVENT_ADDR, EVENT_CTL, EVENT_DATA, FSTS, VTD_REG } from './regs-defs.js';
import type { RegisterFile } from './regs-file.js';

/** Which event register set raised an interrupt. */
export type VtdInterruptKind = 'fault' | 'inv-completion' | 'page-request';

/** An MSI the unit sends: the event's address (upper:lower address registers) and data register. */
export interface VtdInterrupt {
  readonly kind: VtdInterruptKind;
  readonly address: bigint;
  readonly data: number;
}

/** The three event register sets, one row each (keep in VtdInterruptKind order). */
const EVENT_REGS = {
  fault: { ctl: VTD_REG.FECTL, data: VTD_REG.FEDATA, addr: VTD_REG.FEADDR, uaddr: VTD_REG.FEUADDR },
  'inv-completion': { ctl: VTD_REG.IECTL, data: VTD_REG.IEDATA, addr: VTD_REG.IEADDR, uaddr: VTD_REG.IEUADDR },
  'page-request': { ctl: VTD_REG.PECTL, data: VTD_REG.PEDATA, addr: VTD_REG.PEADDR, uaddr: VTD_REG.PEUADDR },
} as const;

/**
 * The fault, invalidation-completion and page-request event registers (control, data, address,
 * upper address) and the IM/IP protocol they share, after QEMU's `vtd_generate_fault_event`,
 * `vtd_generate_completion_event`, `vtd_generate_page_request_event` and the FECTL/IECTL/PECTL and
 * FSTS/ICS/PRS write handlers: an event sets IP; with IM clear the MSI goes out and IP clears; with
 * IM set it waits until software clears IM, or is dropped once software clears the event's status.
 */
export class VtdEventRegisters {
  /** Interrupts as they would reach the CPU. */
  readonly interrupts$ = new Subject<VtdInterrupt>();
  readonly #file: RegisterFile;

  constructor(file: RegisterFile) {
    this.#file = file;
  }

  /**
   * Defines the registers of `kind`: IM resets to 1 (spec; QEMU resets PECTL.IM to 0). With
   * extended interrupt mode the data keeps bits 31:16 and the upper address is writeable.
   */
  define(kind: VtdInterruptKind, eim: boolean): void {
    const r = EVENT_REGS[kind];
    this.#file.defineLong(r.ctl, EVENT_CTL.IM, EVENT_CTL.IM);
    this.#file.defineLong(r.data, 0, eim ? EVENT_DATA.MaskEim : EVENT_DATA.Mask);
    this.#file.defineLong(r.addr, 0, EVENT_ADDR.Mask);
    this.#file.defineLong(r.uaddr, 0, eim ? 0xffffffff : 0);
  }

  /** The fault event fires only if no fault condition was pending before this one (VT-d 7.3.1). */
  faultEvent(fstsBefore: number): void {
    if ((fstsBefore & FSTS.Pending) === 0) this.raise('fault');
  }

  /** Sets IP; if IM is clear, sends the MSI and clears IP. */
  raise(kind: VtdInterruptKind): void {
    const ctl = EVENT_REGS[kind].ctl;
    this.#file.setBits(ctl, EVENT_CTL.IP);
    if ((this.#file.get(ctl) & EVENT_CTL.IM) === 0) this.#send(kind);
  }

  /** After a guest write to the control register: clearing IM with IP set sends the held interrupt. */
  controlWritten(kind: VtdInterruptKind): void {
    const ctl = this.#file.get(EVENT_REGS[kind].ctl);
    if ((ctl & EVENT_CTL.IP) !== 0 && (ctl & EVENT_CTL.IM) === 0) this.#send(kind);
  }

  /** After a guest write to the event's status register: once nothing is pending, a held interrupt is dropped. */
  statusWritten(kind: VtdInterruptKind, stillPending: boolean): void {
    if (!stillPending) this.#file.clearBits(EVENT_REGS[kind].ctl, EVENT_CTL.IP);
  }

  #send(kind: VtdInterruptKind): void {
    const r = EVENT_REGS[kind];
    const f = this.#file;
    f.clearBits(r.ctl, EVENT_CTL.IP);
    const address = (BigInt(f.get(r.uaddr)) << 32n) | BigInt(f.get(r.addr));
    this.interrupts$.next({ kind, address, data: f.get(r.data) });
  }
}
