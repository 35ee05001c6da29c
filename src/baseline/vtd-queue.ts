/**
 * A model of QEMU 7.2's VT-d invalidation queue (hw/i386/intel_iommu.c `vtd_fetch_inv_desc`,
 * `vtd_process_inv_desc`; reference/viommu-queues.md §3.3), not QEMU itself.
 *
 * Synchronous per doorbell: the IQT write fetches and executes every descriptor from IQH to IQT
 * before it returns, one at a time, updating IQH after each ("Must update the IQH_REG in time").
 * An invalid descriptor stops the queue on it with FSTS.IQE, until the guest clears IQE.
 *
 * Per descriptor, as QEMU: a context-cache invalidation bumps the generation (global and
 * domain-selective) or zeroes matching devices' generations (device-selective); an IOTLB
 * invalidation empties the table (global) or scans it (domain- and page-selective); a wait
 * writes its status at once (everything before it is done) and raises the completion event with
 * IF. Device-TLB, PASID-cache, PASID-IOTLB, interrupt-entry-cache and page-group-response
 * descriptors change nothing the model caches (QEMU 7.2 accepts the PASID ones as no-ops, and
 * has device-TLB and IEC notifiers only for vhost and KVM, which the replayed guests lack).
 *
 * Decoding and its checks are the project's (vendor/vtd/descriptors.ts), so both targets of a
 * replay accept and reject the same descriptors; a status address outside guest RAM is counted
 * and skipped as the project's unit does.
 */
import { BqlDoorbell } from './doorbell.js';
import {
  decodeDescriptor,
  DescStatus,
  DescType,
  Field,
  GRAN,
  iqeiOf,
  VtdDescriptor,
} from '../vendor/vtd/descriptors.js';
import { IQEI } from '../vendor/vtd/regs-defs.js';
import type { VtdRegisters } from '../vendor/vtd/regs.js';
import type { VtdContextCache } from './vtd-context-cache.js';
import type { VtdIotlb } from './vtd-iotlb.js';

/** Counters of the invalidation queue. */
export interface QemuQueueStats {
  /** Doorbells served (QI enabled, no error pending). */
  doorbells: number;
  /** Descriptors executed, and waits among them. */
  descriptors: number;
  waits: number;
  /** Invalid descriptors (IQE raised). */
  queueErrors: number;
  /** Waits whose status address was outside guest RAM or unaligned (no status written). */
  badStatusWrites: number;
}

/** The invalidation queue of one QEMU-style VT-d unit. */
export class QemuVtdQueue {
  readonly #regs: VtdRegisters;
  readonly #mem: Int32Array;
  readonly #iotlb: VtdIotlb;
  readonly #contexts: VtdContextCache;
  readonly #desc = new VtdDescriptor();
  readonly #doorbell = new BqlDoorbell(() => this.#consumeOnce());
  readonly #stats: QemuQueueStats = { doorbells: 0, descriptors: 0, waits: 0, queueErrors: 0, badStatusWrites: 0 };

  /** The queue of `regs` in guest RAM `mem` (GPA 0 = word 0), invalidating `iotlb` and `contexts`. */
  constructor(regs: VtdRegisters, mem: Int32Array, iotlb: VtdIotlb, contexts: VtdContextCache) {
    this.#regs = regs;
    this.#mem = mem;
    this.#iotlb = iotlb;
    this.#contexts = contexts;
  }

  /** The counters (a copy). */
  stats(): QemuQueueStats {
    return { ...this.#stats };
  }

  /** Stops consuming for good (the unit closed). */
  stop(): void {
    this.#doorbell.stop();
  }

  /**
   * The doorbell. A doorbell rung from inside it (an interrupt handler of a wait) is served when
   * this one is done, as QEMU's BQL serialises the trap.
   */
  consume(): void {
    this.#doorbell.ring();
  }

  #consumeOnce(): void {
    const regs = this.#regs;
    if (regs.queueErrorPending || !regs.queueEnabled) return;
    this.#stats.doorbells++;
    const bytes = regs.descriptorWidth === 256 ? 32 : 16;
    const wide = bytes === 32;
    const entries = regs.queueSizeEntries;
    const base = Number(regs.queueBase);
    const tail = regs.queueTail / bytes;
    const mamv = regs.options.mamv;
    const mem = this.#mem;
    const d = this.#desc;
    let head = regs.queueHead / bytes;
    while (head !== tail) {
      const addr = base + head * bytes;
      const status = addr + bytes > mem.length * 4 ? -1 : decodeDescriptor(mem, addr / 4, wide, mamv, d);
      if (status !== DescStatus.Ok) {
        regs.reportQueueError(status < 0 ? IQEI.FetchError : iqeiOf(status as DescStatus));
        this.#stats.queueErrors++;
        return;
      }
      this.#execute(d);
      head = (head + 1) % entries;
      regs.setQueueHead(head * bytes);
    }
  }

  /** QEMU's `vtd_process_inv_desc`. */
  #execute(d: VtdDescriptor): void {
    const f = d.f;
    this.#stats.descriptors++;
    switch (d.type) {
      case DescType.ContextCache:
        if (f[Field.g] === GRAN.Selective) this.#contexts.invalidateDevice(f[Field.sid]!, f[Field.fm]!);
        else this.#contexts.invalidateGlobal();
        return;
      case DescType.Iotlb: {
        const g = f[Field.g];
        if (g === GRAN.Global) this.#iotlb.invalidateAll();
        else if (g === GRAN.Domain) this.#iotlb.invalidateDomain(f[Field.did]!);
        else this.#iotlb.invalidatePages(f[Field.did]!, f[Field.addr]!, f[Field.am]!);
        return;
      }
      case DescType.Wait:
        this.#wait(f);
        return;
      default:
        return;
    }
  }

  /** `vtd_process_wait_desc`: the status write at once, then the completion event with IF. */
  #wait(f: Float64Array): void {
    this.#stats.waits++;
    if (f[Field.sw] !== 0) {
      const addr = f[Field.statusAddrHi]! * 2 ** 32 + f[Field.statusAddrLo]!;
      if (addr % 4 === 0 && addr + 4 <= this.#mem.length * 4) this.#mem[addr / 4] = f[Field.statusData]! | 0;
      else this.#stats.badStatusWrites++;
    }
    this.#regs.completeWait(f[Field.if] !== 0);
  }
}
