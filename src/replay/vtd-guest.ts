/**
 * The replay's VT-d guest: the Linux-like driver model brings the unit up (`probe`: queued
 * invalidation, root table, translation enable), then the replay is the only writer of the queue
 * and of the root and context tables.
 *
 * - The queue: trace descriptors are copied into the guest's ring as they are and IQT is written
 *   once per trace doorbell. One field is rewritten: a wait's status address, which names the
 *   traced guest's `desc_status` slot (a GPA of another machine, possibly inside this guest's page
 *   tables); it is pointed at the replay's own status word for that slot, so that the write
 *   lands harmlessly and its completion can be checked.
 * - Domains: the driver model can only unmap together with its own invalidation, while a replay
 *   must unmap silently and let the trace's invalidation follow. So the replay builds a trace
 *   domain's second-stage table itself (the same radix builder and codec as the driver) and
 *   points the device's legacy context entry at it.
 */
import { VtdGuestDriver } from '../guest/vtd/index.js';
import { RadixPageTable, vtdSecondStageCodec } from '../pgtable/index.js';
import { DescType, encodeDescriptor, GRAN } from '../vendor/vtd/descriptors.js';
import { FSTS, IQ_OFFSET, VTD_REG } from '../vendor/vtd/regs-defs.js';
import {
  CONTEXT_TT,
  ContextEntry,
  decodeRootEntry,
  encodeContextEntry,
  encodeRootEntry,
  RootEntry,
} from '../vendor/vtd/structures.js';
import { ReplayDomain } from './mappings.js';
import type { ReplayUnit } from './units.js';

/** Word 0 of a wait descriptor: SW (status write). */
const WAIT_SW = 1 << 5;
/** A wait with no flags: a no-op that the replay writes over a descriptor the unit rejected. */
const NOOP_WAIT = DescType.Wait;

/** What ringing the doorbell found. */
export interface RingOutcome {
  /** Descriptors the unit rejected (IQE), each skipped so the queue could go on. */
  rejected: number;
  /** Status-writing waits whose status did not arrive. */
  lostWaits: number;
}

/** The replay's VT-d guest over one unit. */
export class VtdTraceGuest {
  /** The unit (this project's, or the QEMU-style baseline). */
  readonly unit: ReplayUnit;
  /** The driver model that brought the unit up (its page allocator is the guest's). */
  readonly driver: VtdGuestDriver;
  /** 256-bit descriptors. */
  readonly wide: boolean;
  readonly #i32: Int32Array;
  readonly #u32: Uint32Array;
  readonly #base: number;
  readonly #entries: number;
  readonly #shift: number;
  readonly #words: number;
  /** The replay's status words, one per slot. */
  readonly #statusBase: number;
  /** Slots of the status-writing waits in the batch being written, and their data. */
  readonly #waitSlots: Int32Array;
  readonly #waitData: Int32Array;
  #waitCount = 0;
  /** The slot the next descriptor goes to, and the slot the unit's head was at the last ring. */
  #tail: number;
  #head: number;
  readonly #root: number;
  readonly #ce = new ContextEntry();
  readonly #re = new RootEntry();
  readonly #scratch = new Int32Array(4);
  readonly #desc = new Uint32Array(8);
  readonly #result: RingOutcome = { rejected: 0, lostWaits: 0 };

  /** Brings `unit` up with the driver model, in scalable mode or legacy mode. */
  constructor(unit: ReplayUnit, scalable: boolean) {
    this.unit = unit;
    this.driver = new VtdGuestDriver(unit, { mode: scalable ? 'scalable' : 'legacy', policy: 'strict' });
    this.driver.probe();
    const q = this.driver.queue;
    this.wide = q.wide;
    this.#i32 = unit.guest.i32;
    this.#u32 = new Uint32Array(this.#i32.buffer, this.#i32.byteOffset, this.#i32.length);
    this.#base = q.base;
    this.#entries = q.entries;
    this.#shift = q.wide ? 5 : 4;
    this.#words = q.wide ? 8 : 4;
    this.#statusBase = this.driver.frames.allocContiguous(Math.ceil((q.entries * 4) / 4096)) * 4096;
    this.#waitSlots = new Int32Array(q.entries);
    this.#waitData = new Int32Array(q.entries);
    this.#tail = (Number(unit.mmioRead(VTD_REG.IQT, 4)) & IQ_OFFSET.Mask) >>> this.#shift;
    this.#head = this.#tail;
    this.#root = Number(BigInt(unit.mmioRead(VTD_REG.RTADDR, 8)) & ~0xfffn);
  }

  /** Descriptors the ring holds between two doorbells (one slot stays empty). */
  get capacity(): number {
    return this.#entries - 1;
  }

  /**
   * Writes one descriptor (qw0, qw1 as 32-bit words: `words[at..at+4)`) at the tail; the upper
   * half of a 256-bit slot is zero. A status-writing wait gets the replay's status word for its
   * slot. The caller makes room first ({@link hasRoom}, {@link ring}).
   */
  put(words: Uint32Array, at: number): void {
    const slot = this.#tail;
    const w = (this.#base + (slot << this.#shift)) >>> 2;
    const u32 = this.#u32;
    u32[w] = words[at]!;
    u32[w + 1] = words[at + 1]!;
    let lo = words[at + 2]!;
    let hi = words[at + 3]!;
    if ((words[at]! & 0xf) === DescType.Wait && (words[at]! & 0xe00) === 0 && (words[at]! & WAIT_SW) !== 0) {
      // Point the status write at this slot's status word; mark it not yet written.
      const addr = this.#statusBase + slot * 4;
      lo = addr;
      hi = 0;
      const data = words[at + 1]! | 0;
      this.#i32[addr >>> 2] = ~data;
      this.#waitSlots[this.#waitCount] = slot;
      this.#waitData[this.#waitCount] = data;
      this.#waitCount++;
    }
    u32[w + 2] = lo;
    u32[w + 3] = hi;
    for (let k = 4; k < this.#words; k++) u32[w + k] = 0;
    this.#tail = (slot + 1) % this.#entries;
  }

  /** Whether the ring has room for `n` more descriptors before the next doorbell. */
  hasRoom(n: number): boolean {
    return (this.#tail - this.#head + this.#entries) % this.#entries <= this.capacity - n;
  }

  /**
   * Writes IQT (the doorbell). The unit consumes everything before returning; a descriptor it
   * rejects (FSTS.IQE, IQH on it) is overwritten by a no-op wait and IQE cleared, so the queue
   * goes on, as Linux's `qi_check_fault` lets it. Then the status of every status-writing wait
   * is checked. The outcome object is reused.
   */
  ring(): RingOutcome {
    const unit = this.unit;
    const r = this.#result;
    r.rejected = 0;
    r.lostWaits = 0;
    unit.mmioWrite(VTD_REG.IQT, this.#tail << this.#shift, 4);
    for (let guard = 0; guard <= this.#entries; guard++) {
      if ((Number(unit.mmioRead(VTD_REG.FSTS, 4)) & FSTS.IQE) === 0) break;
      const bad = (Number(unit.mmioRead(VTD_REG.IQH, 4)) & IQ_OFFSET.Mask) >>> this.#shift;
      this.#desc.fill(0);
      this.#desc[0] = NOOP_WAIT;
      const w = (this.#base + (bad << this.#shift)) >>> 2;
      for (let k = 0; k < this.#words; k++) this.#u32[w + k] = this.#desc[k]!;
      r.rejected++;
      unit.mmioWrite(VTD_REG.FSTS, FSTS.IQE, 4);
    }
    this.#head = (Number(unit.mmioRead(VTD_REG.IQH, 4)) & IQ_OFFSET.Mask) >>> this.#shift;
    for (let i = 0; i < this.#waitCount; i++) {
      const slot = this.#waitSlots[i]!;
      if (this.#i32[(this.#statusBase >>> 2) + slot] !== this.#waitData[i]) r.lostWaits++;
    }
    this.#waitCount = 0;
    return r;
  }

  /** A new second-stage domain of the unit's address width (the table lives in guest RAM). */
  newDomain(): ReplayDomain {
    const width = 30 + 9 * this.driver.caps.agaw;
    return new ReplayDomain(
      new RadixPageTable(this.unit.guest, this.driver.frames, vtdSecondStageCodec(width as 39 | 48 | 57)),
    );
  }

  /**
   * Points the legacy context entry of `sid` at `domain` with domain id `did` (the root entry and
   * context table are created on first use). A present entry is cleared first (its P word), as
   * a present-to-present change must not be torn; the caller then invalidates (see {@link rebind}).
   */
  attach(sid: number, domain: ReplayDomain, did: number): void {
    const rootAt = (this.#root + (sid >>> 8) * 16) >>> 2;
    const re = decodeRootEntry(this.#i32, rootAt, this.#re);
    const w = this.#scratch;
    if (!re.present) {
      re.present = true;
      re.ctp = this.driver.frames.alloc() * 4096;
      this.#publish(rootAt, encodeRootEntry(re, w));
    }
    const at = (re.ctp + (sid & 0xff) * 16) >>> 2;
    Atomics.store(this.#i32, at, 0);
    const ce = this.#ce;
    ce.present = true;
    ce.fpd = false;
    ce.tt = CONTEXT_TT.MultiLevel;
    ce.slptptr = domain.table.rootPa;
    ce.aw = this.driver.caps.agaw;
    ce.avail = 0;
    ce.did = did;
    this.#publish(at, encodeContextEntry(ce, w));
  }

  /**
   * Moves `sid` to `domain` under `did` after it ran under `oldDid`: the context entry is
   * rewritten, then the context cache (device-selective) and the old domain's IOTLB entries are
   * invalidated with a wait, as Linux does for a context change. Returns the descriptors issued.
   */
  rebind(sid: number, domain: ReplayDomain, did: number, oldDid: number): number {
    this.attach(sid, domain, did);
    const d = this.#desc;
    encodeDescriptor(DescType.ContextCache, { g: GRAN.Selective, sid }, d, 0, false);
    this.put(d, 0);
    encodeDescriptor(DescType.Iotlb, { g: GRAN.Domain, did: oldDid }, d, 0, false);
    this.put(d, 0);
    encodeDescriptor(DescType.Wait, { sw: 1, statusData: 1 }, d, 0, false);
    this.put(d, 0);
    this.ring();
    return 3;
  }

  /** Copies a 4-word entry to guest memory, word 0 (which holds P) last. */
  #publish(at: number, w: Int32Array): void {
    this.#i32[at + 3] = w[3]!;
    this.#i32[at + 2] = w[2]!;
    this.#i32[at + 1] = w[1]!;
    Atomics.store(this.#i32, at, w[0]!);
  }
}
