/**
 * The guest side of the VT-d invalidation queue: Linux 6.1's `qi_submit_sync` and
 * `qi_check_fault` (drivers/iommu/intel/dmar.c; reference/viommu-queues.md §2.1, §4.2).
 *
 * Each submission copies its descriptors at `free_head`, appends an invalidation wait with a
 * status write (SW = 1, data QI_DONE, address = its `desc_status` slot), writes IQT once and
 * polls the status slot, checking FSTS for queue errors on every round. The `desc_status`
 * array lives in guest memory, so the unit's status write lands there.
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { DescType, encodeDescriptor } from '../../vendor/vtd/descriptors.js';
import { FSTS, IQ_OFFSET, IQA, IQER, VTD_REG } from '../../vendor/vtd/regs-defs.js';
import { DRIVER_ERRORS } from './errors.js';
import type { QueueEntry } from './invalidations.js';

/** What the driver model needs of a VT-d unit: its MMIO window and guest memory. */
export interface VtdUnitPort {
  /** An MMIO read (size 4: number, size 8: bigint). */
  mmioRead(offset: number, size: 4 | 8): number | bigint;
  /** An MMIO write. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
}

/** `desc_status` values (Linux `QI_FREE`, `QI_IN_USE`, `QI_DONE`, `QI_ABORT`). */
export const QI_STATUS = { Free: 0, InUse: 1, Done: 2, Abort: 3 } as const;

/** A submission written to the queue: its first slot, its descriptor count, and its wait's slot. */
export interface QueueTicket {
  readonly index: number;
  readonly count: number;
  readonly waitIndex: number;
  /** The descriptors, kept to resubmit after an invalidation time-out (ITE). */
  readonly descs: readonly QueueEntry[];
}

/** Counters of the guest's queue use. */
export interface QueueStats {
  /** Descriptors written to the queue, waits included. */
  descriptors: number;
  /** Wait descriptors written (one per submission). */
  waits: number;
  /** IQT writes. */
  doorbells: number;
  /** Status polls that found the wait not yet done. */
  pollSpins: number;
  /** Queue errors (FSTS.IQE) handled. */
  queueErrors: number;
  /** Submissions restarted after an invalidation time-out (FSTS.ITE). */
  restarts: number;
}

/** Options of the queue. */
export interface InvalidationQueueOptions {
  /** IQA.QS: the queue is 2^QS 4 KiB pages. */
  readonly qs: number;
  /** IQA.DW: 256-bit descriptors. */
  readonly wide: boolean;
  /** Status polls before a submission is declared lost (EIO). */
  readonly pollLimit: number;
}

/** A guest's invalidation queue over one unit. */
export class InvalidationQueue {
  /** Guest-physical base of the descriptor ring. */
  readonly base: number;
  /** Descriptors in the ring (Linux's QI_LENGTH). */
  readonly entries: number;
  /** 256-bit descriptors. */
  readonly wide: boolean;
  /** IQA.QS. */
  readonly qs: number;
  /** Guest-physical address of `desc_status[0]` (32-bit words). */
  readonly statusBase: number;
  /** Counters. */
  readonly stats: QueueStats = { descriptors: 0, waits: 0, doorbells: 0, pollSpins: 0, queueErrors: 0, restarts: 0 };
  readonly #unit: VtdUnitPort;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array;
  readonly #words: number;
  readonly #shift: number;
  readonly #pollLimit: number;
  #freeHead = 0;
  #freeTail = 0;
  #freeCnt: number;
  /** IQER.IQEI of the last queue error handled. */
  #lastIqei = 0;

  /** Allocates the ring (2^qs contiguous pages) and the status array from `frames`. */
  constructor(unit: VtdUnitPort, frames: FrameAllocator, opts: InvalidationQueueOptions) {
    this.#unit = unit;
    this.#u32 = new Uint32Array(unit.guest.sab, unit.guest.i32.byteOffset, unit.guest.i32.length);
    this.#i32 = unit.guest.i32;
    this.wide = opts.wide;
    this.qs = opts.qs;
    this.#pollLimit = opts.pollLimit;
    this.#shift = opts.wide ? 5 : 4;
    this.#words = opts.wide ? 8 : 4;
    this.entries = 2 ** (opts.qs + 12 - this.#shift);
    const pages = 2 ** opts.qs;
    this.base = (pages === 1 ? frames.alloc() : frames.allocContiguous(pages)) * 4096;
    const statusPages = Math.ceil((this.entries * 4) / 4096);
    this.statusBase = (statusPages === 1 ? frames.alloc() : frames.allocContiguous(statusPages)) * 4096;
    this.#freeCnt = this.entries;
  }

  /** The IQA register value: base, DW and QS. */
  get iqa(): bigint {
    return BigInt(this.base) | BigInt(this.wide ? IQA.DW : 0) | BigInt(this.qs);
  }

  /** Slots free for new descriptors (Linux `free_cnt`). */
  get free(): number {
    return this.#freeCnt;
  }

  /** The slot the next submission starts at (Linux `free_head`). */
  get head(): number {
    return this.#freeHead;
  }

  /** `desc_status[slot]`. */
  status(slot: number): number {
    return this.#i32[this.statusBase / 4 + slot]!;
  }

  /** Guest-physical address of descriptor slot `slot`. */
  slotAddress(slot: number): number {
    return this.base + (slot << this.#shift);
  }

  /** Submits `descs` and a wait, and returns once the wait completed (`qi_submit_sync`). */
  submit(descs: readonly QueueEntry[]): void {
    for (;;) {
      const ticket = this.post(descs);
      if (this.complete(ticket)) return;
      this.stats.restarts++;
    }
  }

  /**
   * The first half of `qi_submit_sync`: copies `descs` and a status-writing wait into the ring,
   * marks their status slots in use and rings the doorbell (one IQT write). The unit may finish
   * the work before this returns; {@link complete} polls for it.
   */
  post(descs: readonly QueueEntry[]): QueueTicket {
    const count = descs.length;
    if (count + 2 > this.entries) throw DRIVER_ERRORS.tooMany(count, this.entries);
    this.#reclaim();
    // Linux waits here for free slots; submissions are synchronous, so only a ticket that was
    // posted and never completed can hold them.
    if (this.#freeCnt < count + 2) throw DRIVER_ERRORS.queueFull(this.#freeCnt, count + 2);
    const index = this.#freeHead;
    const waitIndex = (index + count) % this.entries;
    const statusWord = this.statusBase / 4;
    for (let i = 0; i < count; i++) {
      const slot = (index + i) % this.entries;
      const d = descs[i]!;
      const at = this.slotAddress(slot) / 4;
      if ('words' in d) {
        this.#u32.fill(0, at, at + this.#words);
        for (let w = 0; w < Math.min(d.words.length, this.#words); w++) this.#u32[at + w] = d.words[w]! >>> 0;
      } else {
        encodeDescriptor(d.type, d.fields, this.#u32, at, this.wide);
      }
      this.#i32[statusWord + slot] = QI_STATUS.InUse;
    }
    this.#i32[statusWord + waitIndex] = QI_STATUS.InUse;
    const statusAddr = this.statusBase + waitIndex * 4;
    encodeDescriptor(
      DescType.Wait,
      {
        sw: 1,
        statusData: QI_STATUS.Done,
        statusAddrLo: statusAddr % 2 ** 32,
        statusAddrHi: Math.floor(statusAddr / 2 ** 32),
      },
      this.#u32,
      this.slotAddress(waitIndex) / 4,
      this.wide,
    );
    this.#freeHead = (this.#freeHead + count + 1) % this.entries;
    this.#freeCnt -= count + 1;
    this.stats.descriptors += count + 1;
    this.stats.waits++;
    this.stats.doorbells++;
    this.#unit.mmioWrite(VTD_REG.IQT, this.#freeHead << this.#shift, 4);
    return { index, count, waitIndex, descs };
  }

  /**
   * The second half of `qi_submit_sync`: polls the wait's status slot, running `qi_check_fault`
   * each round, then marks the submission done and reclaims slots. Returns false when an
   * invalidation time-out aborted the wait (the caller posts again). Throws EINVAL after a queue
   * error in this submission (the bad descriptor is replaced by the wait and IQE cleared, as
   * Linux does), EIO when the wait never completes within the poll limit.
   */
  complete(ticket: QueueTicket): boolean {
    const statusWord = this.statusBase / 4;
    let outcome: 'done' | 'again' | 'invalid' = 'done';
    let badSlot = -1;
    let iqei = 0;
    for (let spins = 0; this.#i32[statusWord + ticket.waitIndex] !== QI_STATUS.Done; spins++) {
      const fault = this.#checkFault(ticket);
      if (fault === 'again') {
        outcome = 'again';
        break;
      }
      if (fault >= 0) {
        outcome = 'invalid';
        badSlot = fault;
        iqei = this.#lastIqei;
        break;
      }
      if (spins >= this.#pollLimit) {
        throw DRIVER_ERRORS.waitTimeout(spins, this.#read32(VTD_REG.IQH), this.#read32(VTD_REG.IQT));
      }
      this.stats.pollSpins++;
    }
    for (let i = 0; i < ticket.count; i++) this.#i32[statusWord + ((ticket.index + i) % this.entries)] = QI_STATUS.Done;
    this.#reclaim();
    if (outcome === 'invalid') throw DRIVER_ERRORS.queueError(badSlot, iqei);
    return outcome === 'done';
  }

  /**
   * `qi_check_fault`: an IQE whose IQH is on a descriptor of this submission gets the wait copied
   * over the bad slot and IQE cleared (the unit resumes there), and returns that slot; an ITE
   * aborts every in-use status slot and returns 'again' if this submission's wait was among
   * them; ICE is cleared. Returns -1 when there is nothing to handle.
   *
   * Linux 6.1 compares IQH only with the submission's first slot (it queues one descriptor per
   * submission); this model accepts any slot before the wait, so batches are handled too.
   */
  #checkFault(ticket: QueueTicket): number | 'again' {
    const statusWord = this.statusBase / 4;
    if (this.#i32[statusWord + ticket.waitIndex] === QI_STATUS.Abort) return 'again';
    const fsts = this.#read32(VTD_REG.FSTS);
    if ((fsts & FSTS.IQE) !== 0) {
      const head = (this.#read32(VTD_REG.IQH) & IQ_OFFSET.Mask) >>> this.#shift;
      const offset = (head - ticket.index + this.entries) % this.entries;
      if (offset < ticket.count) {
        this.#lastIqei = this.#read32(VTD_REG.IQER) & IQER.IqeiMask;
        const dst = this.slotAddress(head) / 4;
        const src = this.slotAddress(ticket.waitIndex) / 4;
        this.#u32.copyWithin(dst, src, src + this.#words);
        this.stats.queueErrors++;
        this.#unit.mmioWrite(VTD_REG.FSTS, FSTS.IQE, 4);
        return head;
      }
    }
    if ((fsts & FSTS.ITE) !== 0) {
      for (let slot = 0; slot < this.entries; slot++) {
        if (this.#i32[statusWord + slot] === QI_STATUS.InUse) this.#i32[statusWord + slot] = QI_STATUS.Abort;
      }
      this.#unit.mmioWrite(VTD_REG.FSTS, FSTS.ITE, 4);
      if (this.#i32[statusWord + ticket.waitIndex] === QI_STATUS.Abort) return 'again';
    }
    if ((fsts & FSTS.ICE) !== 0) this.#unit.mmioWrite(VTD_REG.FSTS, FSTS.ICE, 4);
    return -1;
  }

  /** `reclaim_free_desc`: slots done or aborted, from `free_tail` on, become free. */
  #reclaim(): void {
    const statusWord = this.statusBase / 4;
    while (this.#freeCnt < this.entries) {
      const s = this.#i32[statusWord + this.#freeTail]!;
      if (s !== QI_STATUS.Done && s !== QI_STATUS.Abort) break;
      this.#i32[statusWord + this.#freeTail] = QI_STATUS.Free;
      this.#freeTail = (this.#freeTail + 1) % this.entries;
      this.#freeCnt++;
    }
  }

  #read32(offset: number): number {
    return Number(this.#unit.mmioRead(offset, 4));
  }
}
