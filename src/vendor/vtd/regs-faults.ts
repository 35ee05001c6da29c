import { FRCD_BYTES, FRCD_W2, FRCD_W3, FSTS, VTD_REG } from './regs-defs.js';
import type { VtdEventRegisters } from './regs-events.js';
import type { RegisterFile } from './regs-file.js';

/** Request type of a fault record: FRCD T2:T1 = 00 write, 01 read, 10 page request, 11 atomic. */
export type VtdFaultType = 'write' | 'read' | 'page-request' | 'atomic';

/** A non-recoverable fault to record (config-formats.md §5.4). */
export interface VtdFault {
  readonly sid: number;
  /** Present for a request with PASID (FRCD.PP = 1, PV = pasid). */
  readonly pasid?: number;
  /** The faulting address; bits 11:0 are dropped (FRCD.FI). */
  readonly address: bigint | number;
  /** Fault reason code (config-formats.md §5.2–5.3). */
  readonly reason: number;
  readonly type: VtdFaultType;
  /** FRCD.EXE: execute requested. */
  readonly exec?: boolean;
  /** FRCD.PRIV: supervisor request. */
  readonly priv?: boolean;
}

/**
 * What recording did: `recorded`; `collapsed` (this SID already has a pending record, as QEMU);
 * `overflow` (the next record was busy, PFO now set); `dropped` (PFO was already set).
 */
export type VtdFaultOutcome = 'recorded' | 'collapsed' | 'overflow' | 'dropped';

/**
 * Primary fault logging over `count` fault recording registers at CAP.FRO (VT-d 7.2.1; QEMU
 * `vtd_report_frcd_fault`, which has one record). FSTS.PPF is derived from the F bits, FSTS.FRI
 * names the record written when PPF went 0 → 1, and the next record index wraps.
 */
export class VtdFaultRecorder {
  readonly #file: RegisterFile;
  readonly #events: VtdEventRegisters;
  readonly #count: number;
  readonly #collapse: boolean;
  #next = 0;

  constructor(file: RegisterFile, events: VtdEventRegisters, count: number, collapse: boolean) {
    this.#file = file;
    this.#events = events;
    this.#count = count;
    this.#collapse = collapse;
  }

  /** Defines the records (read-only but for F, bit 127, which is W1C) and restarts at record 0. */
  define(): void {
    for (let i = 0; i < this.#count; i++) {
      const base = VTD_REG.FRCD + FRCD_BYTES * i;
      this.#file.defineQuad(base, 0n);
      this.#file.defineLong(base + 8, 0);
      this.#file.defineLong(base + 12, 0, 0, FRCD_W3.F);
    }
    this.#next = 0;
  }

  /** Whether `offset` is the word holding a record's F bit. */
  isFaultWord(offset: number): boolean {
    const rel = offset - VTD_REG.FRCD;
    return rel >= 0 && rel < FRCD_BYTES * this.#count && rel % FRCD_BYTES === 12;
  }

  /** The next fault goes to record 0 (QEMU does this when translation is disabled). */
  restart(): void {
    this.#next = 0;
  }

  /**
   * Drop while PFO is set; collapse onto a pending record of the same SID (if enabled); set PFO if
   * the record at the next index is still busy; else fill it, set F and PPF (and FRI when PPF was
   * clear), advance the index, and raise the fault event when no fault condition was pending.
   */
  record(fault: VtdFault): VtdFaultOutcome {
    const f = this.#file;
    const fsts = f.get(VTD_REG.FSTS);
    if ((fsts & FSTS.PFO) !== 0) return 'dropped';
    const sid = fault.sid & FRCD_W2.SidMask;
    if (this.#collapse && this.#pendingRecordOf(sid)) return 'collapsed';
    const index = this.#next;
    const base = VTD_REG.FRCD + FRCD_BYTES * index;
    if ((f.get(base + 12) & FRCD_W3.F) !== 0) {
      f.setBits(VTD_REG.FSTS, FSTS.PFO);
      return 'overflow';
    }
    const address = BigInt.asUintN(64, BigInt(fault.address));
    const t2 = fault.type === 'page-request' || fault.type === 'atomic';
    const t1 = fault.type === 'read' || fault.type === 'atomic';
    f.set(base, Number(address & 0xfffff000n));
    f.set(base + 4, Number(address >> 32n));
    f.set(
      base + 8,
      sid |
        (t2 ? FRCD_W2.T2 : 0) |
        (fault.priv === true ? FRCD_W2.PRIV : 0) |
        (fault.exec === true ? FRCD_W2.EXE : 0) |
        (fault.pasid !== undefined ? FRCD_W2.PP : 0),
    );
    f.set(
      base + 12,
      (fault.reason & FRCD_W3.FrMask) |
        (((fault.pasid ?? 0) & FRCD_W3.PvMask) << FRCD_W3.PvShift) |
        (t1 ? FRCD_W3.T1 : 0) |
        FRCD_W3.F,
    );
    this.#next = (index + 1) % this.#count;
    if ((fsts & FSTS.PPF) !== 0) {
      this.updatePpf();
      return 'recorded';
    }
    f.set(VTD_REG.FSTS, (fsts & ~(FSTS.FriMask << FSTS.FriShift)) | (index << FSTS.FriShift));
    this.updatePpf();
    this.#events.faultEvent(fsts);
    return 'recorded';
  }

  /** FSTS.PPF is set exactly while some record has F set (QEMU `vtd_update_fsts_ppf`). */
  updatePpf(): void {
    let pending = false;
    for (let i = 0; i < this.#count && !pending; i++)
      pending = (this.#file.get(VTD_REG.FRCD + FRCD_BYTES * i + 12) & FRCD_W3.F) !== 0;
    if (pending) this.#file.setBits(VTD_REG.FSTS, FSTS.PPF);
    else this.#file.clearBits(VTD_REG.FSTS, FSTS.PPF);
  }

  #pendingRecordOf(sid: number): boolean {
    for (let i = 0; i < this.#count; i++) {
      const base = VTD_REG.FRCD + FRCD_BYTES * i;
      if ((this.#file.get(base + 12) & FRCD_W3.F) !== 0 && (this.#file.get(base + 8) & FRCD_W2.SidMask) === sid)
        return true;
    }
    return false;
  }
}
