import { CR0, Q_BASE, SMMU_REG } from './regs-defs.js';
import type { RegisterFile } from '../vtd/regs-file.js';

/** The three SMMUv3 queues. */
export type SmmuQueueKind = 'cmdq' | 'evtq' | 'priq';

/**
 * A PROD or CONS index advanced by one entry: `(wrap|idx) + 1` truncated to `log2Size + 1` bits,
 * so the wrap bit toggles when the index passes the end (reference/viommu-queues.md §1.1). Flag
 * bits above the wrap bit (OVFLG, CMDQ_CONS.ERR) are the caller's to keep.
 */
export function queueIncrement(index: number, log2Size: number): number {
  return (index + 1) & ((2 << log2Size) - 1);
}

/** Whether PROD and CONS describe an empty queue: index and wrap bit equal. */
export function queueEmpty(prod: number, cons: number, log2Size: number): boolean {
  return ((prod ^ cons) & ((2 << log2Size) - 1)) === 0;
}

/** Whether PROD and CONS describe a full queue: index equal, wrap bit different. */
export function queueFull(prod: number, cons: number, log2Size: number): boolean {
  return ((prod ^ cons) & ((2 << log2Size) - 1)) === 1 << log2Size;
}

/** The slot an index names: bits [log2Size-1:0]. */
export function queueSlot(index: number, log2Size: number): number {
  return index & ((1 << log2Size) - 1);
}

/** Register offsets and CR0 enable bits of each queue. */
const QUEUE_LAYOUT = {
  cmdq: { base: SMMU_REG.CMDQ_BASE, prod: SMMU_REG.CMDQ_PROD, cons: SMMU_REG.CMDQ_CONS, enable: CR0.CMDQEN },
  evtq: { base: SMMU_REG.EVTQ_BASE, prod: SMMU_REG.EVTQ_PROD, cons: SMMU_REG.EVTQ_CONS, enable: CR0.EVTQEN },
  // PRIQEN is effective only while SMMUEN is set (IHI0070 §6.3.9.5).
  priq: {
    base: SMMU_REG.PRIQ_BASE,
    prod: SMMU_REG.PRIQ_PROD,
    cons: SMMU_REG.PRIQ_CONS,
    enable: CR0.PRIQEN | CR0.SMMUEN,
  },
} as const;

/**
 * One queue's BASE / PROD / CONS registers and the base and size latched from BASE. LOG2SIZE reads
 * back as written, but every use is capped at the IDR1 maximum; the base is aligned to the larger
 * of the queue size and 32 bytes, and bits above the output address size are RES0 (IHI0070
 * §6.3.26, QEMU `smmu_writel` A_CMDQ_BASE). PROD and CONS are the raw registers, flags included.
 */
export class SmmuQueueRegisters {
  /** Which queue. */
  readonly kind: SmmuQueueKind;
  /** Bytes per entry: 16 (commands, PRI requests) or 32 (events). */
  readonly entryBytes: number;
  /** The IDR1 limit on LOG2SIZE. */
  readonly maxLog2Size: number;
  /** Offset of the BASE register. */
  readonly baseReg: number;
  /** Page-0 offset of the PROD register. */
  readonly prodReg: number;
  /** Page-0 offset of the CONS register. */
  readonly consReg: number;
  /** The CR0ACK bits that must all be set for the queue to be enabled. */
  readonly enableBits: number;
  readonly #file: RegisterFile;
  #base = 0;
  #log2Size = 0;
  #addrHiMask = 0;

  constructor(file: RegisterFile, kind: SmmuQueueKind, entryBytes: number, maxLog2Size: number) {
    const layout = QUEUE_LAYOUT[kind];
    this.#file = file;
    this.kind = kind;
    this.entryBytes = entryBytes;
    this.maxLog2Size = maxLog2Size;
    this.baseReg = layout.base;
    this.prodReg = layout.prod;
    this.consReg = layout.cons;
    this.enableBits = layout.enable;
  }

  /**
   * Defines BASE, PROD and CONS (reset 0) and forgets the latched base. `addrHiMask` is the high
   * word's writeable address bits (those below the output address size); PROD and CONS keep index
   * bits up to the largest queue's wrap bit plus `prodFlags` / `consFlags`.
   */
  define(addrHiMask: number, prodFlags: number, consFlags: number): void {
    const f = this.#file;
    const indexMask = (2 << this.maxLog2Size) - 1;
    f.defineLong(this.baseReg, 0, Q_BASE.AddrLowMask | Q_BASE.Log2SizeMask);
    f.defineLong(this.baseReg + 4, 0, addrHiMask | Q_BASE.ALLOC_HI);
    f.defineLong(this.prodReg, 0, (indexMask | prodFlags) >>> 0);
    f.defineLong(this.consReg, 0, (indexMask | consFlags) >>> 0);
    this.#addrHiMask = addrHiMask;
    this.#base = 0;
    this.#log2Size = 0;
  }

  /** Latches base and size from BASE (after a guest write to either half). */
  latchBase(): void {
    const f = this.#file;
    const low = f.get(this.baseReg);
    this.#log2Size = Math.min(low & Q_BASE.Log2SizeMask, this.maxLog2Size);
    const align = Math.max(32, this.entryBytes << this.#log2Size);
    const address = (f.get(this.baseReg + 4) & this.#addrHiMask) * 2 ** 32 + ((low & Q_BASE.AddrLowMask) >>> 0);
    this.#base = address - (address % align);
  }

  /** Guest-physical address of slot 0 (latched). */
  get base(): number {
    return this.#base;
  }

  /** log2 of the number of entries (latched, capped at the IDR1 maximum). */
  get log2Size(): number {
    return this.#log2Size;
  }

  /** Number of entries. */
  get entries(): number {
    return 1 << this.#log2Size;
  }

  /** Bits of PROD / CONS that hold the index and the wrap bit. */
  get indexMask(): number {
    return (2 << this.#log2Size) - 1;
  }

  /** The raw PROD register. */
  get prod(): number {
    return this.#file.get(this.prodReg);
  }

  /** The raw CONS register. */
  get cons(): number {
    return this.#file.get(this.consReg);
  }

  /** Sets the raw PROD register (the SMMU's side of an output queue). */
  setProd(value: number): void {
    this.#file.set(this.prodReg, value >>> 0);
  }

  /** Sets the raw CONS register (the SMMU's side of the command queue). */
  setCons(value: number): void {
    this.#file.set(this.consReg, value >>> 0);
  }

  /** Whether CR0ACK enables the queue (for the PRI queue: PRIQEN and SMMUEN). */
  get enabled(): boolean {
    return (this.#file.get(SMMU_REG.CR0ACK) & this.enableBits) === this.enableBits;
  }

  /** Whether PROD and CONS describe an empty queue. */
  get empty(): boolean {
    return queueEmpty(this.prod, this.cons, this.#log2Size);
  }

  /** Whether PROD and CONS describe a full queue. */
  get full(): boolean {
    return queueFull(this.prod, this.cons, this.#log2Size);
  }

  /** Guest-physical address of the entry an index names. */
  entryAddress(index: number): number {
    return this.#base + queueSlot(index, this.#log2Size) * this.entryBytes;
  }
}
