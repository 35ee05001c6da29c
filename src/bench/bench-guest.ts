/**
 * One emulated unit with the Linux-like guest driver that drives it, as the bench's workloads see
 * it: the same calls for both vendors, so a scenario is written once (vtd-guest.ts and
 * smmu-guest.ts adapt the two drivers).
 */
import type { InstrumentedPort } from './instrumented-port.js';
import type { DropperCounts } from './invalidation-dropper.js';
import type { BenchUnit } from './state.js';
import type { BenchVendor } from './types.js';

/** The unit's counters that a run reports as deltas. */
export interface UnitCounters {
  /** Commands consumed (VT-d descriptors, SMMUv3 commands), barriers included. */
  commands: number;
  /** Barriers completed (wait descriptors, CMD_SYNCs). */
  barriers: number;
  iotlbHits: number;
  iotlbMisses: number;
  /** Device-TLB (ATC) hits. */
  atcHits: number;
}

/** A unit and its guest driver. */
export interface BenchGuest {
  readonly vendor: BenchVendor;
  /**
   * The emulated unit itself, for inspection (state.ts); the workloads go through the driver.
   * Undefined on the QEMU-style baseline, which inspect does not read.
   */
  readonly target: BenchUnit | undefined;
  /** The unit's MMIO window as the driver sees it (doorbells counted and timed). */
  readonly port: InstrumentedPort;
  /** Attaches device `sid` to a new domain of its own; with `ats`, its translations are cached in its ATC too. */
  attach(sid: number, ats: boolean): void;
  /**
   * Tears down the device's domain and gives it a fresh one, with the domain-wide invalidation
   * that implies: SMMUv3 detach (the domain freed with TLBI_NH_ASID, its ASID released) and a
   * new attach (Linux's lowest free ASID); VT-d unmaps the whole domain window, which needs a
   * domain-selective invalidation (the driver model has no detach: the DID is kept).
   */
  rebuild(sid: number): void;
  /** Maps [iova, iova + bytes) of the device's domain to guest-physical `gpa`, read/write. */
  map(sid: number, iova: number, gpa: number, bytes: number): void;
  /** Unmaps [iova, iova + bytes) of the device's domain (strict: invalidated before it returns). */
  unmap(sid: number, iova: number, bytes: number): void;
  /** Lazy policy: unmaps waiting in the flush queues. */
  readonly pendingFlushes: number;
  /** Drains every lazy flush queue (the flush-queue timer). */
  flushLazy(): void;
  /** A global IOTLB invalidation and its barrier. */
  invalidateAll(): void;
  /** A device's DMA translation: the host physical address, or a negative fault code. */
  translate(sid: number, iova: number, access: number): number;
  /** The host physical address of guest-physical `gpa`. */
  paOf(gpa: number): number;
  /** Allocates `pages` contiguous guest pages (zeroed); returns their guest-physical address. */
  allocBuffer(pages: number): number;
  /** Cumulative counters of the unit. */
  counters(): UnitCounters;
  /** The device's domain in the vendor's words ('DID 3', 'ASID 5'), for messages. */
  domainLabel(sid: number): string;
  /** Installs the test hook of invalidation-dropper.ts on the port. */
  dropInvalidations(from: number, counts: DropperCounts): void;
}

/** How a scenario wants its units built. */
export interface BenchGuestOptions {
  policy: 'strict' | 'lazy';
  /** Lazy policy: flush-queue entries per drain. */
  batch: number;
  /** Guest RAM of the unit, bytes. */
  guestRamBytes: number;
  /** The unit models device TLBs (VT-d ECAP.DT, SMMUv3 IDR0.ATS). */
  ats: boolean;
  /**
   * Bytes at the base of every domain's IOVA window that a VT-d rebuild unmaps at once: a power of
   * two above CAP.MAMV's 2^18 pages, so the invalidation is domain-selective.
   */
  teardownSpan: number;
  /** First IOVA of every domain's window (aligned to `teardownSpan`). */
  windowBase: number;
}
