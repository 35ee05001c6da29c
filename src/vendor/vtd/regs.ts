import type { Observable } from 'rxjs';
import { resolveVtdOptions, vtdCap, vtdEcap, type ResolvedVtdOptions, type VtdRegisterOptions } from './regs-caps.js';
import {
  CCMD_HI,
  FRCD_BYTES,
  FSTS,
  GCMD,
  GSTS,
  ICS,
  INV_GRANULARITY,
  IOTLB_HI,
  IQ_OFFSET,
  IQA,
  IQEI,
  IQER,
  IRTA,
  IVA,
  PQ_OFFSET,
  PQA,
  PRQ_DESC_BYTES,
  PRS,
  RTADDR,
  TTM,
  VTD_REG,
} from './regs-defs.js';
import { VtdEventRegisters, type VtdInterrupt } from './regs-events.js';
import { VtdFaultRecorder, type VtdFault, type VtdFaultOutcome } from './regs-faults.js';
import { RegisterFile } from './regs-file.js';

export type { VtdRegisterOptions } from './regs-caps.js';
export type { VtdInterrupt, VtdInterruptKind } from './regs-events.js';
export type { VtdFault, VtdFaultOutcome, VtdFaultType } from './regs-faults.js';

/** How a latched RTADDR.TTM is read: `invalid` covers 10b, 11b, and 01b without ECAP.SMTS. */
export type VtdRootTableMode = 'legacy' | 'scalable' | 'invalid';

/** The root table latched by SRTP. */
export interface VtdRootTable {
  readonly address: bigint;
  readonly mode: VtdRootTableMode;
  /** The raw RTADDR.TTM field. */
  readonly ttm: number;
}

/** The interrupt-remapping table latched by SIRTP. */
export interface VtdInterruptRemapTable {
  readonly address: bigint;
  /** 2^(IRTA.S + 1). */
  readonly entries: number;
  /** IRTA.EIME: x2APIC-format destinations. */
  readonly x2apic: boolean;
}

/** A register-based invalidation the guest issued through CCMD or the IOTLB registers. */
export type VtdRegisterInvalidation =
  | {
      readonly kind: 'context';
      readonly granularity: 'global' | 'domain' | 'device';
      readonly did: number;
      readonly sid: number;
      /** CCMD.FM: how many low devfn bits to ignore (0–3). */
      readonly functionMask: number;
    }
  | {
      readonly kind: 'iotlb';
      readonly granularity: 'global' | 'domain' | 'page';
      readonly did: number;
      /** IVA address (page-selective only, else 0n). */
      readonly address: bigint;
      /** IVA.AM: 2^AM pages (page-selective only). */
      readonly addressMask: number;
      /** IVA.IH: only leaf entries changed. */
      readonly leafOnly: boolean;
      readonly drainReads: boolean;
      readonly drainWrites: boolean;
    };

/**
 * Calls toward the device model. Each runs synchronously inside the MMIO write that caused it
 * and may call back into the registers (for example `setQueueHead` or `completeWait` from `doorbell`).
 */
export interface VtdRegisterHooks {
  /** IQT was written while QIE is enabled and fetching is not halted; `tail` is a byte offset. */
  doorbell?(tail: number): void;
  /** SRTP latched RTADDR. QEMU drops its IOTLB and context cache here. */
  rootTableSet?(root: VtdRootTable): void;
  /** GSTS.TES changed. QEMU drops its IOTLB and context cache here. */
  translationEnable?(enabled: boolean): void;
  /** GSTS.QIES changed; on enable the queue base, size and width are latched. */
  queueEnable?(enabled: boolean): void;
  /** The guest wrote PQH (a byte offset): it consumed page requests up to there. */
  pageRequestHead?(head: number): void;
  /** CCMD.ICC or IOTLB.IVT was set while QI is disabled; the actual granularity reported is the requested one. */
  registerInvalidation?(request: VtdRegisterInvalidation): void;
  /** SIRTP latched IRTA. */
  interruptRemapTableSet?(table: VtdInterruptRemapTable): void;
  /** GSTS.IRES changed (only with interrupt remapping advertised). */
  interruptRemapEnable?(enabled: boolean): void;
}

const CONTEXT_GRANULARITY = [undefined, 'global', 'domain', 'device'] as const;
const IOTLB_GRANULARITY = [undefined, 'global', 'domain', 'page'] as const;

/** Every message the register model can raise (one place, STYLE.md). */
const ERRORS = {
  size: (size: number) => `MMIO access size must be 4 or 8, got ${size}`,
  value32: (v: unknown) => `a 4-byte MMIO write takes an integer number in [-2^31, 2^32), got ${String(v)}`,
  value64: (v: unknown) =>
    `an 8-byte MMIO write takes a bigint in [0, 2^64) or a safe non-negative integer, got ${String(v)}`,
  queueHead: (v: number, bytes: number, width: number) =>
    `queue head ${v} must be a multiple of ${width / 8} below the queue size ${bytes}`,
  prqTail: (v: number, bytes: number) =>
    `page request tail ${v} must be a multiple of 32 below the queue size ${bytes}`,
  noPrq: 'this unit has no page request queue (options.pageRequests is false)',
  queueReason: (v: number) => `IQEI must be an integer in [0, 15], got ${v}`,
} as const;

/**
 * The register block of one emulated VT-d remapping unit: reset values, write masks, the GCMD/GSTS
 * handshakes, the invalidation-queue and page-request-queue pointers, fault recording and the three
 * event interrupts, following QEMU `hw/i386/intel_iommu.c` (reference/viommu-queues.md §2, §3.3–3.5).
 *
 * MMIO convention: `size` is 4 or 8. A 4-byte access carries a number (reads return an unsigned
 * 32-bit number; writes take any integer in [-2^31, 2^32), so `1 << 31` works). An 8-byte access
 * carries a bigint (writes also take a safe non-negative integer number). Every 64-bit register
 * can also be accessed as two 4-byte halves, low half at the lower address; a command triggered by
 * a 64-bit register fires on the half holding its command bit (CCMD and IOTLB: the high half;
 * IQT: the low half), as in QEMU. Misaligned accesses, offsets outside any defined register and
 * registers the options leave out read 0 and ignore writes.
 *
 * Addresses (root table, queue bases, MSI addresses) are bigints; queue heads and tails are byte
 * offsets into their queue, exactly as the registers hold them.
 */
export class VtdRegisters {
  /** Interrupts as they would reach the CPU: only when unmasked, or later when IM is cleared with IP set. */
  readonly interrupts$: Observable<VtdInterrupt>;
  /** The options with defaults applied. */
  readonly options: ResolvedVtdOptions;
  /** CAP as advertised. */
  readonly cap: bigint;
  /** ECAP as advertised. */
  readonly ecap: bigint;
  /** Bytes of the MMIO window that hold registers (through the last fault recording register). */
  readonly mmioSize: number;

  readonly #hooks: VtdRegisterHooks;
  readonly #file: RegisterFile;
  readonly #events: VtdEventRegisters;
  readonly #faults: VtdFaultRecorder;
  /** Bits 63:32 that an address register keeps: those below the host address width. */
  readonly #hawHi: number;
  #root: VtdRootTable = { address: 0n, mode: 'legacy', ttm: TTM.Legacy };
  #iqBase = 0n;
  #iqEntries = 0;
  #iqWide = false;

  constructor(options: VtdRegisterOptions = {}, hooks: VtdRegisterHooks = {}) {
    this.options = resolveVtdOptions(options);
    this.cap = vtdCap(this.options);
    this.ecap = vtdEcap(this.options);
    this.mmioSize = VTD_REG.FRCD + FRCD_BYTES * this.options.faultRecords;
    this.#hooks = hooks;
    this.#file = new RegisterFile(this.mmioSize);
    this.#events = new VtdEventRegisters(this.#file);
    this.#faults = new VtdFaultRecorder(
      this.#file,
      this.#events,
      this.options.faultRecords,
      this.options.collapseFaults,
    );
    this.interrupts$ = this.#events.interrupts$.asObservable();
    this.#hawHi = 2 ** (this.options.addressWidth - 32) - 1;
    this.reset();
  }

  /** Returns every register to its reset value and forgets latched state (QEMU `vtd_init`); no hooks run. */
  reset(): void {
    const f = this.#file;
    const o = this.options;
    const haw = (low: number) => (BigInt(this.#hawHi) << 32n) | BigInt(low >>> 0);
    f.clear();
    f.defineLong(VTD_REG.VER, o.version);
    f.defineQuad(VTD_REG.CAP, this.cap);
    f.defineQuad(VTD_REG.ECAP, this.ecap);
    f.defineLong(VTD_REG.GCMD, 0, GCMD.Mask, 0, GCMD.Mask);
    f.defineLong(VTD_REG.GSTS, 0);
    f.defineQuad(VTD_REG.RTADDR, 0n, haw(RTADDR.AddrMask | (RTADDR.TtmMask << RTADDR.TtmShift)));
    f.defineQuad(VTD_REG.CCMD, 0n, (BigInt(CCMD_HI.WriteMask) << 32n) | 0xffffffffn);
    f.defineLong(VTD_REG.FSTS, 0, 0, FSTS.W1C);
    this.#events.define('fault', o.interruptRemapping);
    this.#events.define('inv-completion', o.interruptRemapping);
    f.defineQuad(VTD_REG.IQH, 0n);
    f.defineQuad(VTD_REG.IQT, 0n, BigInt(IQ_OFFSET.Mask));
    f.defineQuad(VTD_REG.IQA, 0n, haw(IQA.AddrMask | IQA.QsMask | (o.wideDescriptors ? IQA.DW : 0)));
    f.defineLong(VTD_REG.ICS, 0, 0, ICS.IWC);
    f.defineQuad(VTD_REG.IQER, 0n);
    f.defineQuad(VTD_REG.IRTA, 0n, haw(IRTA.AddrMask | IRTA.EIME | IRTA.SizeMask));
    if (o.pageRequests) {
      f.defineQuad(VTD_REG.PQH, 0n, BigInt(PQ_OFFSET.Mask));
      f.defineQuad(VTD_REG.PQT, 0n, BigInt(PQ_OFFSET.Mask));
      f.defineQuad(VTD_REG.PQA, 0n, haw(PQA.AddrMask | PQA.PqsMask));
      f.defineLong(VTD_REG.PRS, 0, 0, PRS.PPR | PRS.PRO);
      this.#events.define('page-request', o.interruptRemapping);
    }
    const iva = haw(IVA.AddrMask | IVA.IH | IVA.AmMask);
    f.defineQuad(VTD_REG.IVA, 0n, iva, 0n, 0xffffffffffffffffn);
    f.defineQuad(VTD_REG.IOTLB, 0n, BigInt(IOTLB_HI.WriteMask) << 32n);
    this.#faults.define();
    this.#root = { address: 0n, mode: 'legacy', ttm: TTM.Legacy };
    this.#iqBase = 0n;
    this.#iqEntries = 0;
    this.#iqWide = false;
  }

  // ---- MMIO ---------------------------------------------------------------------------------

  /** A guest read. See the class comment for the value convention. */
  mmioRead(offset: number, size: 4): number;
  mmioRead(offset: number, size: 8): bigint;
  mmioRead(offset: number, size: 4 | 8): number | bigint;
  mmioRead(offset: number, size: 4 | 8): number | bigint {
    checkSize(size);
    const inRange = this.#inRange(offset, size);
    if (size === 4) return inRange ? this.#file.guestRead(offset) : 0;
    if (!inRange) return 0n;
    return (BigInt(this.#file.guestRead(offset + 4)) << 32n) | BigInt(this.#file.guestRead(offset));
  }

  /** A guest write, then the register's side effects. See the class comment for the value convention. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void {
    checkSize(size);
    const [low, high] = size === 4 ? [toU32(value), 0] : toU64Words(value);
    if (!this.#inRange(offset, size)) return;
    const f = this.#file;
    const before = f.get(offset);
    f.guestWrite(offset, low);
    if (size === 4) {
      this.#afterWrite(offset, before, low);
      return;
    }
    const beforeHigh = f.get(offset + 4);
    f.guestWrite(offset + 4, high);
    this.#afterWrite(offset, before, low);
    this.#afterWrite(offset + 4, beforeHigh, high);
  }

  #inRange(offset: number, size: number): boolean {
    return Number.isInteger(offset) && offset >= 0 && offset % size === 0 && offset + size <= this.mmioSize;
  }

  /** Side effects of a guest write to the word at `offset` (`before` is its old raw value). */
  #afterWrite(offset: number, before: number, written: number): void {
    switch (offset) {
      case VTD_REG.GCMD:
        return this.#gcmdWrite(written & GCMD.Mask);
      case VTD_REG.CCMD + 4:
        return this.#ccmdWrite();
      case VTD_REG.FSTS:
        return this.#fstsWrite(before);
      case VTD_REG.IQT:
        return this.#iqtWrite();
      case VTD_REG.IQA:
        // IQA.DW is reserved without 256-bit support: the bit stays 0 and the queue reports an
        // invalid descriptor width, as VirtualBox's DMAR does (QEMU silently uses 128-bit).
        if ((written & IQA.DW) !== 0 && !this.options.wideDescriptors) this.reportQueueError(IQEI.InvalidWidth);
        return;
      case VTD_REG.ICS:
        return this.#events.statusWritten('inv-completion', (this.#file.get(VTD_REG.ICS) & ICS.IWC) !== 0);
      case VTD_REG.PQH:
        if (this.options.pageRequests) this.#hooks.pageRequestHead?.(this.prqHead);
        return;
      case VTD_REG.PRS:
        if (this.options.pageRequests) this.#events.statusWritten('page-request', this.#file.get(VTD_REG.PRS) !== 0);
        return;
      case VTD_REG.FECTL:
        return this.#events.controlWritten('fault');
      case VTD_REG.IECTL:
        return this.#events.controlWritten('inv-completion');
      case VTD_REG.PECTL:
        if (this.options.pageRequests) this.#events.controlWritten('page-request');
        return;
      case VTD_REG.IOTLB + 4:
        return this.#iotlbWrite();
    }
    // The F bit of a fault recording register (bit 127) may have been cleared: PPF follows.
    if (this.#faults.isFaultWord(offset)) this.#faults.updatePpf();
  }

  // ---- GCMD / GSTS handshakes (QEMU vtd_handle_gcmd_write) ------------------------------------

  /**
   * Persistent bits (TE, QIE, IRE, CFI) act when they differ from GSTS; one-shot bits (SRTP, SIRTP)
   * act whenever written 1. WBF, SFL and EAFL are accepted without effect (CAP.RWBF and CAP.AFL are 0).
   */
  #gcmdWrite(cmd: number): void {
    const changed = (this.#file.get(VTD_REG.GSTS) ^ cmd) >>> 0;
    if ((changed & GCMD.TE) !== 0) this.#setTranslation((cmd & GCMD.TE) !== 0);
    if ((cmd & GCMD.SRTP) !== 0) this.#latchRootTable();
    if ((changed & GCMD.QIE) !== 0) this.#setQueuedInvalidation((cmd & GCMD.QIE) !== 0);
    if ((cmd & GCMD.SIRTP) !== 0) this.#latchInterruptRemapTable();
    // IRE needs ECAP.IR, as QEMU's x86_iommu_ir_supported check; CFIS simply follows CFI.
    if (!this.options.interruptRemapping) return;
    if ((changed & GCMD.IRE) !== 0) {
      const enable = (cmd & GCMD.IRE) !== 0;
      this.#setStatus(GSTS.IRES, enable);
      this.#hooks.interruptRemapEnable?.(enable);
    }
    if ((changed & GCMD.CFI) !== 0) this.#setStatus(GSTS.CFIS, (cmd & GCMD.CFI) !== 0);
  }

  #setStatus(bit: number, on: boolean): void {
    if (on) this.#file.setBits(VTD_REG.GSTS, bit);
    else this.#file.clearBits(VTD_REG.GSTS, bit);
  }

  #setTranslation(enabled: boolean): void {
    this.#setStatus(GSTS.TES, enabled);
    // QEMU vtd_handle_gcmd_te: disabling translation restarts fault recording at record 0.
    if (!enabled) this.#faults.restart();
    this.#hooks.translationEnable?.(enabled);
  }

  #latchRootTable(): void {
    const f = this.#file;
    const low = f.get(VTD_REG.RTADDR);
    const ttm = (low >>> RTADDR.TtmShift) & RTADDR.TtmMask;
    const scalable = ttm === TTM.Scalable && this.options.scalableMode;
    const mode: VtdRootTableMode = ttm === TTM.Legacy ? 'legacy' : scalable ? 'scalable' : 'invalid';
    const address = (BigInt(f.get(VTD_REG.RTADDR + 4)) << 32n) | BigInt((low & RTADDR.AddrMask) >>> 0);
    this.#root = { address, mode, ttm };
    f.setBits(VTD_REG.GSTS, GSTS.RTPS);
    this.#hooks.rootTableSet?.(this.#root);
  }

  /**
   * Enable latches IQA (base, QS, DW) and resets IQH; if the guest already moved IQT, the queue is
   * processed at once (QEMU tolerates this for Windows). Disable is refused while descriptors are
   * outstanding (IQH ≠ IQT), as QEMU's `vtd_queued_inv_disable_check`; QIES then stays set.
   */
  #setQueuedInvalidation(enable: boolean): void {
    const f = this.#file;
    if (!enable && this.queueHead !== this.queueTail) return;
    f.set(VTD_REG.IQH, 0);
    f.set(VTD_REG.IQH + 4, 0);
    if (enable) {
      const low = f.get(VTD_REG.IQA);
      this.#iqBase = (BigInt(f.get(VTD_REG.IQA + 4)) << 32n) | BigInt((low & IQA.AddrMask) >>> 0);
      this.#iqWide = (low & IQA.DW) !== 0;
      this.#iqEntries = 2 ** ((low & IQA.QsMask) + 8 - (this.#iqWide ? 1 : 0));
    }
    this.#setStatus(GSTS.QIES, enable);
    this.#hooks.queueEnable?.(enable);
    if (enable && this.queueTail !== 0) this.#ringDoorbell();
  }

  #latchInterruptRemapTable(): void {
    const f = this.#file;
    const low = f.get(VTD_REG.IRTA);
    const address = (BigInt(f.get(VTD_REG.IRTA + 4)) << 32n) | BigInt((low & IRTA.AddrMask) >>> 0);
    f.setBits(VTD_REG.GSTS, GSTS.IRTPS);
    this.#hooks.interruptRemapTableSet?.({
      address,
      entries: 2 ** ((low & IRTA.SizeMask) + 1),
      x2apic: (low & IRTA.EIME) !== 0,
    });
  }

  // ---- register-based invalidation -----------------------------------------------------------

  /** CCMD.ICC: refused (ICC stays set) while QI is enabled, as QEMU; else done at once. */
  #ccmdWrite(): void {
    const f = this.#file;
    const high = f.get(VTD_REG.CCMD + 4);
    if ((high & CCMD_HI.ICC) === 0 || this.queueEnabled) return;
    const cirg = (high >>> CCMD_HI.CirgShift) & 0x3;
    const granularity = CONTEXT_GRANULARITY[cirg];
    if (granularity !== undefined) {
      const low = f.get(VTD_REG.CCMD);
      const did = low & 0xffff;
      const sid = low >>> 16;
      this.#hooks.registerInvalidation?.({
        kind: 'context',
        granularity,
        did,
        sid,
        functionMask: high & CCMD_HI.FmMask,
      });
    }
    const caig = granularity === undefined ? INV_GRANULARITY.Invalid : cirg;
    f.set(VTD_REG.CCMD + 4, (high & ~CCMD_HI.ICC & ~(0x3 << CCMD_HI.CaigShift)) | (caig << CCMD_HI.CaigShift));
  }

  /** IOTLB.IVT: refused while QI is enabled; a page-selective request with IVA.AM > MAMV is not performed (IAIG 0). */
  #iotlbWrite(): void {
    const f = this.#file;
    const high = f.get(VTD_REG.IOTLB + 4);
    if ((high & IOTLB_HI.IVT) === 0 || this.queueEnabled) return;
    const iirg = (high >>> IOTLB_HI.IirgShift) & 0x3;
    let granularity = IOTLB_GRANULARITY[iirg];
    const ivaLow = f.get(VTD_REG.IVA);
    const addressMask = ivaLow & IVA.AmMask;
    if (granularity === 'page' && addressMask > this.options.mamv) granularity = undefined;
    if (granularity !== undefined) {
      const page = granularity === 'page';
      this.#hooks.registerInvalidation?.({
        kind: 'iotlb',
        granularity,
        did: high & IOTLB_HI.DidMask,
        address: page ? (BigInt(f.get(VTD_REG.IVA + 4)) << 32n) | BigInt((ivaLow & IVA.AddrMask) >>> 0) : 0n,
        addressMask: page ? addressMask : 0,
        leafOnly: page && (ivaLow & IVA.IH) !== 0,
        drainReads: (high & IOTLB_HI.DR) !== 0,
        drainWrites: (high & IOTLB_HI.DW) !== 0,
      });
    }
    const iaig = granularity === undefined ? INV_GRANULARITY.Invalid : iirg;
    f.set(VTD_REG.IOTLB + 4, (high & ~IOTLB_HI.IVT & ~(0x3 << IOTLB_HI.IaigShift)) | (iaig << IOTLB_HI.IaigShift));
  }

  // ---- invalidation queue --------------------------------------------------------------------

  /** A bad IQT (bit 4 set with 256-bit descriptors) raises IQE even with QI off, as QEMU's `vtd_handle_iqt_write`. */
  #iqtWrite(): void {
    const wide = this.queueEnabled ? this.#iqWide : (this.#file.get(VTD_REG.IQA) & IQA.DW) !== 0;
    if (wide && (this.#file.get(VTD_REG.IQT) & IQ_OFFSET.Bit4) !== 0) {
      this.reportQueueError(IQEI.TailMisaligned);
      return;
    }
    this.#ringDoorbell();
  }

  #ringDoorbell(): void {
    if (!this.queueEnabled || this.queueErrorPending) return;
    const tail = this.queueTail;
    if (tail >= this.#queueBytes()) {
      this.reportQueueError(IQEI.InvalidTail);
      return;
    }
    this.#hooks.doorbell?.(tail);
  }

  #queueBytes(): number {
    return this.#iqEntries * (this.#iqWide ? 32 : 16);
  }

  /** Byte offset of the next descriptor the unit will fetch (IQH). */
  get queueHead(): number {
    return this.#file.get(VTD_REG.IQH) & IQ_OFFSET.Mask;
  }

  /** Byte offset one past the last descriptor software submitted (IQT). */
  get queueTail(): number {
    return this.#file.get(VTD_REG.IQT) & IQ_OFFSET.Mask;
  }

  /** Invalidation queue base address, latched when QI was enabled. */
  get queueBase(): bigint {
    return this.#iqBase;
  }

  /** Descriptors in the queue, latched when QI was enabled: 2^(QS+8) 128-bit or 2^(QS+7) 256-bit. */
  get queueSizeEntries(): number {
    return this.#iqEntries;
  }

  /** Descriptor width in bits, latched when QI was enabled. */
  get descriptorWidth(): 128 | 256 {
    return this.#iqWide ? 256 : 128;
  }

  /** GSTS.QIES. */
  get queueEnabled(): boolean {
    return (this.#file.get(VTD_REG.GSTS) & GSTS.QIES) !== 0;
  }

  /** FSTS.IQE or FSTS.ITE: the unit fetches no descriptors until software clears them. */
  get queueErrorPending(): boolean {
    return (this.#file.get(VTD_REG.FSTS) & (FSTS.IQE | FSTS.ITE)) !== 0;
  }

  /** The device model consumed descriptors up to `byteOffset` (IQH). */
  setQueueHead(byteOffset: number): void {
    const bytes = this.#queueBytes();
    const width = this.descriptorWidth;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset >= bytes || byteOffset % (width / 8) !== 0)
      throw new RangeError(ERRORS.queueHead(byteOffset, bytes, width));
    this.#file.set(VTD_REG.IQH, byteOffset);
    this.#file.set(VTD_REG.IQH + 4, 0);
  }

  /** Invalidation queue error: FSTS.IQE, IQER.IQEI = `reason` (IQEI codes), fault event. IQH stays put. */
  reportQueueError(reason: number): void {
    if (!Number.isInteger(reason) || reason < 0 || reason > IQER.IqeiMask)
      throw new RangeError(ERRORS.queueReason(reason));
    const f = this.#file;
    const fsts = f.get(VTD_REG.FSTS);
    if ((fsts & FSTS.IQE) !== 0) return;
    f.setBits(VTD_REG.FSTS, FSTS.IQE);
    f.set(VTD_REG.IQER, (f.get(VTD_REG.IQER) & ~IQER.IqeiMask) | reason);
    this.#events.faultEvent(fsts);
  }

  /** A device-TLB invalidation of `sid` timed out: FSTS.ITE, IQER.ITESID, fault event. */
  reportInvTimeout(sid: number): void {
    this.#invError(FSTS.ITE, IQER.ItesidShift, sid);
  }

  /** A device-TLB invalidation of `sid` completed badly: FSTS.ICE, IQER.ICESID, fault event. */
  reportInvCompletionError(sid: number): void {
    this.#invError(FSTS.ICE, IQER.IcesidShift, sid);
  }

  #invError(bit: number, shift: number, sid: number): void {
    const f = this.#file;
    const fsts = f.get(VTD_REG.FSTS);
    if ((fsts & bit) !== 0) return;
    f.setBits(VTD_REG.FSTS, bit);
    const high = VTD_REG.IQER + 4;
    f.set(high, (f.get(high) & ~(0xffff << shift)) | ((sid & 0xffff) << shift));
    this.#events.faultEvent(fsts);
  }

  /**
   * An invalidation wait descriptor completed. With `interrupt` (its IF bit) the unit sets ICS.IWC and
   * raises the completion event, unless IWC was already set (QEMU `vtd_generate_completion_event`).
   * Without it nothing here changes: the status write (SW) goes to guest memory.
   */
  completeWait(interrupt: boolean): void {
    if (!interrupt) return;
    const f = this.#file;
    if ((f.get(VTD_REG.ICS) & ICS.IWC) !== 0) return;
    f.setBits(VTD_REG.ICS, ICS.IWC);
    this.#events.raise('inv-completion');
  }

  // ---- faults --------------------------------------------------------------------------------

  /**
   * Records a non-recoverable fault in the fault recording registers (see VtdFaultRecorder): PFO on
   * overflow, PPF and FRI, and the fault event when no fault condition was already pending.
   */
  recordFault(fault: VtdFault): VtdFaultOutcome {
    return this.#faults.record(fault);
  }

  /**
   * After a W1C write: IQER fields go with their FSTS bits; IP clears once nothing is owed; and
   * clearing the last of IQE/ITE lets the unit fetch again from IQH (the spec's resume; QEMU waits
   * for the next IQT write instead).
   */
  #fstsWrite(before: number): void {
    const f = this.#file;
    const fsts = f.get(VTD_REG.FSTS);
    if ((fsts & FSTS.IQE) === 0) f.clearBits(VTD_REG.IQER, IQER.IqeiMask);
    if ((fsts & FSTS.ITE) === 0) f.clearBits(VTD_REG.IQER + 4, 0xffff << IQER.ItesidShift);
    if ((fsts & FSTS.ICE) === 0) f.clearBits(VTD_REG.IQER + 4, 0xffff << IQER.IcesidShift);
    this.#events.statusWritten('fault', (fsts & FSTS.Pending) !== 0);
    const halt = FSTS.IQE | FSTS.ITE;
    if ((before & halt) !== 0 && (fsts & halt) === 0 && this.queueHead !== this.queueTail) this.#ringDoorbell();
  }

  // ---- page request queue --------------------------------------------------------------------

  /** Page request queue base address (PQA, read live as QEMU does); 0n without a page request queue. */
  get prqBase(): bigint {
    return (
      (BigInt(this.#file.get(VTD_REG.PQA + 4)) << 32n) | BigInt((this.#file.get(VTD_REG.PQA) & PQA.AddrMask) >>> 0)
    );
  }

  /** Page request descriptors in the queue: 2^(PQS+7); 0 without a page request queue. */
  get prqSizeEntries(): number {
    return this.options.pageRequests ? 2 ** ((this.#file.get(VTD_REG.PQA) & PQA.PqsMask) + 7) : 0;
  }

  /** Byte offset of the next descriptor software will read (PQH). */
  get prqHead(): number {
    return this.#file.get(VTD_REG.PQH) & PQ_OFFSET.Mask;
  }

  /** Byte offset where the unit writes the next descriptor (PQT). */
  get prqTail(): number {
    return this.#file.get(VTD_REG.PQT) & PQ_OFFSET.Mask;
  }

  /** Whether one more descriptor would make PQT reach PQH (QEMU's overflow check). */
  get prqFull(): boolean {
    if (!this.options.pageRequests) return false;
    return (this.prqTail + PRQ_DESC_BYTES) % (this.prqSizeEntries * PRQ_DESC_BYTES) === this.prqHead;
  }

  /** The device model wrote descriptors up to `byteOffset` (PQT). */
  setPageRequestTail(byteOffset: number): void {
    this.#requirePrq();
    const bytes = this.prqSizeEntries * PRQ_DESC_BYTES;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset >= bytes || byteOffset % PRQ_DESC_BYTES !== 0)
      throw new RangeError(ERRORS.prqTail(byteOffset, bytes));
    this.#file.set(VTD_REG.PQT, byteOffset);
    this.#file.set(VTD_REG.PQT + 4, 0);
  }

  /**
   * Sets PRS.PPR and/or PRS.PRO; the page request event fires only if both were clear before
   * (QEMU `vtd_generate_page_request_event`). Software clears them (W1C).
   */
  setPrs(status: { readonly ppr?: boolean; readonly pro?: boolean }): void {
    this.#requirePrq();
    const bits = (status.ppr === true ? PRS.PPR : 0) | (status.pro === true ? PRS.PRO : 0);
    if (bits === 0) return;
    const before = this.#file.get(VTD_REG.PRS);
    this.#file.setBits(VTD_REG.PRS, bits);
    if ((before & (PRS.PPR | PRS.PRO)) === 0) this.#events.raise('page-request');
  }

  #requirePrq(): void {
    if (!this.options.pageRequests) throw new Error(ERRORS.noPrq);
  }

  // ---- other state ---------------------------------------------------------------------------

  /** The root table latched by the last SRTP. */
  get rootTable(): VtdRootTable {
    return this.#root;
  }

  /** Whether the latched root table uses scalable-mode entries. */
  get scalableMode(): boolean {
    return this.#root.mode === 'scalable';
  }

  /** GSTS.TES. */
  get translationEnabled(): boolean {
    return (this.#file.get(VTD_REG.GSTS) & GSTS.TES) !== 0;
  }

  /** GSTS.IRES. */
  get interruptRemapEnabled(): boolean {
    return (this.#file.get(VTD_REG.GSTS) & GSTS.IRES) !== 0;
  }
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
