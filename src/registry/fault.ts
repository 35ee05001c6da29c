/**
 * The iommufd FAULT object (IOMMU_FAULT_QUEUE_ALLOC, reference/iommufd.md §2): the queue of I/O
 * page-fault groups that the HWPTs allocated with its id report to, read by the VMM in whole
 * groups and answered by cookie. What the kernel's anon fd does (read, write, poll, release) is
 * the {@link FaultQueue} handle; the registry side reports faults into it and answers groups
 * automatically when their attach handle goes away.
 */
import { Subject, type Observable } from 'rxjs';
import { Access } from '../pgtable/index.js';
import { DOMAIN_IOPF, NO_PASID } from '../translate/index.js';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import type { AttachableHwpt, DeviceObject, FaultObject } from './objects.js';

/** `struct iommu_hwpt_pgfault` flags. */
export const PGFAULT_FLAG = { PasidValid: 1, LastPage: 2 } as const;
/** `struct iommu_hwpt_pgfault` perm bits. */
export const PGFAULT_PERM = { Read: 1, Write: 2, Exec: 4, Priv: 8 } as const;
/** The PGFAULT_PERM bits of a request with Access bits `access`. */
export function pgfaultPerm(access: number): number {
  return (
    ((access & Access.Read) !== 0 ? PGFAULT_PERM.Read : 0) |
    ((access & Access.Write) !== 0 ? PGFAULT_PERM.Write : 0) |
    ((access & Access.Exec) !== 0 ? PGFAULT_PERM.Exec : 0) |
    ((access & Access.Priv) !== 0 ? PGFAULT_PERM.Priv : 0)
  );
}

/** `struct iommu_hwpt_page_response` codes. */
export const PAGE_RESPONSE = { Success: 0, Invalid: 1 } as const;
/** Bytes of one `struct iommu_hwpt_pgfault` record. */
export const PGFAULT_BYTES = 40;
/** Bytes of one `struct iommu_hwpt_page_response`. */
export const PAGE_RESPONSE_BYTES = 8;

/** One fault of a group, as `read()` returns it (`struct iommu_hwpt_pgfault`). */
export interface PageFaultRecord {
  /** PGFAULT_FLAG bits: PASID_VALID, LAST_PAGE (the group's last record). */
  flags: number;
  /** The device's id in this iommufd. */
  devId: number;
  /** The PASID (meaningful with PASID_VALID), else 0. */
  pasid: number;
  /** The page request group index. */
  grpid: number;
  /** PGFAULT_PERM bits the access needed. */
  perm: number;
  /** The faulting address (page-aligned, as a page request carries it). */
  addr: bigint;
  /** A prefetch hint: always 0, as in the kernel. */
  length: number;
  /** The group's cookie, the same in each of its records: what the response names. */
  cookie: number;
}

/** A response to a group: its cookie, and SUCCESS (retry the access) or INVALID (fail it). */
export interface PageResponse {
  cookie: number;
  code: number | 'success' | 'invalid';
}

/** How a group was answered: by the VMM, or automatically (detach, replace, queue destroyed). */
export interface GroupAnswer {
  devId: number;
  /** The PASID, or -1 without one. */
  pasid: number;
  grpid: number;
  /** The group's cookie (0 if it was answered before any read). */
  cookie: number;
  /** PAGE_RESPONSE code. */
  code: number;
  /** Answered by the kernel's auto-response rather than by a write. */
  auto: boolean;
  /** The faults of the group. */
  faults: readonly { addr: bigint; perm: number }[];
}

/** What a queue tells when a group is answered: the device side of the FAULT object. */
export type AnswerSink = (devId: number, pasid: number, grpid: number, code: number) => void;

/** u32 words per queued record: the 10 of `struct iommu_hwpt_pgfault`, the HWPT id, and the group word. */
const REC = 12;
/** Word of a record: flags, devId, pasid, grpid, perm, (reserved), addr low, addr high, length, cookie. */
const R_FLAGS = 0;
const R_DEV = 1;
const R_PASID = 2;
const R_GRPID = 3;
const R_PERM = 4;
const R_ADDR_LO = 6;
const R_ADDR_HI = 7;
const R_COOKIE = 9;
const R_HWPT = 10;
/** On a group's first record: its record count, with DEAD set once it was auto-answered while queued. */
const R_GROUP = 11;
const DEAD = 0x8000_0000;
/** u32 words per cookie of the awaiting table: records (0: free), devId, pasid + 1, grpid, HWPT id, perm, addr low, addr high. */
const AW = 8;
const TWO32 = 2 ** 32;

/**
 * The VMM's end of a FAULT object (the kernel's `[iommufd-pgfault]` fd): reads whole groups,
 * writes responses, and streams queued groups on {@link faults$}. Close it as the fd would be
 * closed: the object can then be destroyed (which answers everything still pending INVALID).
 *
 * Queued records and the groups awaiting a response live in typed arrays, in the uAPI's record
 * layout: {@link readInto}, {@link readBytes}, {@link respondWords} and {@link writeBytes}
 * allocate nothing per group, so a VMM's fault loop runs allocation-free. The typed-object calls
 * ({@link read}, {@link respond}) and the streams build objects only for what they return.
 */
export class FaultQueue {
  /** The FAULT object's id. */
  readonly id: number;
  /** Queued records: a ring of REC words each, `#head` ≤ `#tail` (record counts, masked by the capacity). */
  #q = new Uint32Array(64 * REC);
  #qMask = 63;
  #head = 0;
  #tail = 0;
  #pending = 0;
  /** Groups read and awaiting a response, by cookie (AW words each; cookie 0 unused). */
  #aw = new Uint32Array(64 * AW);
  /** The faults of an awaiting group of more than one record, by cookie (the answer stream's `faults`). */
  readonly #awMulti = new Map<number, { addr: bigint; perm: number }[]>();
  #awaiting = 0;
  /** The lowest cookie that may be free, and one past the highest ever given. */
  #low = 1;
  #high = 1;
  #closed = false;
  #destroyed = false;
  readonly #faults = new Subject<readonly PageFaultRecord[]>();
  readonly #answers = new Subject<GroupAnswer>();
  readonly #ready = new Subject<number>();
  readonly #onClose: () => void;
  readonly #sink: AnswerSink;
  /** Each group as it is queued, as the records a read would return (cookie 0: not read yet). */
  readonly faults$: Observable<readonly PageFaultRecord[]> = this.#faults.asObservable();
  /** Every answer to a group: written responses and auto-responses, in order. */
  readonly answers$: Observable<GroupAnswer> = this.#answers.asObservable();
  /**
   * Poll's EPOLLIN edge: the number of groups pending (1) each time the queue goes from empty to
   * non-empty. A handler that drains the queue on each emission sees every group, with one
   * notification per burst rather than one per group.
   */
  readonly ready$: Observable<number> = this.#ready.asObservable();
  /** Totals: groups queued, read, answered by a write, answered automatically. */
  readonly stats = { queued: 0, read: 0, answered: 0, autoAnswered: 0 };

  /** A handle for FAULT object `id`; `onClose` drops the fd's reference; `sink` learns every answer (the devices' side). */
  constructor(id: number, onClose: () => void, sink: AnswerSink = () => undefined) {
    this.id = id;
    this.#onClose = onClose;
    this.#sink = sink;
  }

  /** Groups queued and not yet read (poll's EPOLLIN when non-zero). */
  get pending(): number {
    return this.#pending;
  }

  /** Groups read and not yet answered. */
  get awaiting(): number {
    return this.#awaiting;
  }

  /**
   * read(): whole groups, as typed records, while they fit in `maxRecords` (a group that does not
   * fit stays queued). Each group read gets a cookie and waits for its response.
   */
  read(maxRecords = Number.POSITIVE_INFINITY): PageFaultRecord[] {
    this.#live();
    const out: PageFaultRecord[] = [];
    for (;;) {
      const n = this.#nextGroup();
      if (n === 0 || out.length + n > maxRecords) break;
      const first = this.#head;
      this.#take(n);
      for (let i = 0; i < n; i++) out.push(this.#record(first + i));
      this.#head += n;
    }
    return out;
  }

  /**
   * read() into `out` as `struct iommu_hwpt_pgfault` records of 10 u32 words each (the 40-byte
   * layout, addr as two words, low first), from word `at`: whole groups while they fit. Returns
   * the records written. Allocation-free.
   */
  readInto(out: Uint32Array, at = 0): number {
    this.#live();
    if (!(out instanceof Uint32Array)) throw new IommufdError('EINVAL', 'readInto needs a Uint32Array');
    if (!Number.isInteger(at) || at < 0 || at > out.length)
      throw new IommufdError('EINVAL', `word offset ${String(at)} is outside the array`);
    const max = Math.floor((out.length - at) / 10);
    const q = this.#q;
    const mask = this.#qMask;
    let done = 0;
    for (;;) {
      const n = this.#nextGroup();
      if (n === 0 || done + n > max) break;
      const first = this.#head;
      this.#take(n);
      for (let i = 0; i < n; i++) {
        const r = ((first + i) & mask) * REC;
        const o = at + (done + i) * 10;
        for (let w = 0; w < 10; w++) out[o + w] = q[r + w]!;
      }
      this.#head += n;
      done += n;
    }
    return done;
  }

  /**
   * read() into `buf` as 40-byte `struct iommu_hwpt_pgfault` records (little-endian): a length
   * that is not a multiple of 40 is ESPIPE. Returns the bytes written (0 when nothing fits).
   */
  readBytes(buf: Uint8Array): number {
    this.#live();
    if (buf.byteLength % PGFAULT_BYTES !== 0)
      throw new IommufdError('ESPIPE', `a read must be a multiple of ${PGFAULT_BYTES} bytes`);
    if (buf.byteOffset % 4 === 0)
      return this.readInto(new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4)) * PGFAULT_BYTES;
    const words = new Uint32Array(buf.byteLength / 4);
    const n = this.readInto(words);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < n * 10; i++) view.setUint32(i * 4, words[i]!, true);
    return n * PGFAULT_BYTES;
  }

  /**
   * write(): answers groups by cookie, in order. A code other than SUCCESS or INVALID, or an
   * unknown or already answered cookie, is EINVAL and stops the processing: the entries before
   * it took effect and their count is returned; if the first entry is bad, the error is thrown.
   */
  respond(responses: readonly PageResponse[]): number {
    this.#live();
    let done = 0;
    for (const r of responses) {
      const code = r.code === 'success' ? 0 : r.code === 'invalid' ? 1 : r.code;
      const bad = this.#check(r.cookie, code);
      if (bad !== undefined) {
        if (done > 0) return done;
        throw new IommufdError('EINVAL', bad);
      }
      this.#respond(r.cookie, code);
      done++;
    }
    return done;
  }

  /**
   * write() of `count` responses from `words` (from word `at`): pairs of u32 {cookie, code}, the
   * layout of `struct iommu_hwpt_page_response`. The rules of {@link respond}; allocation-free.
   */
  respondWords(words: Uint32Array, count: number, at = 0): number {
    this.#live();
    if (!(words instanceof Uint32Array)) throw new IommufdError('EINVAL', 'respondWords needs a Uint32Array');
    if (!Number.isInteger(count) || !Number.isInteger(at) || count < 0 || at < 0 || at + 2 * count > words.length)
      throw new IommufdError('EINVAL', `${String(count)} responses from word ${String(at)} do not fit the array`);
    let done = 0;
    for (let i = 0; i < count; i++) {
      const cookie = words[at + 2 * i]!;
      const code = words[at + 2 * i + 1]!;
      const bad = this.#check(cookie, code);
      if (bad !== undefined) {
        if (done > 0) return done;
        throw new IommufdError('EINVAL', bad);
      }
      this.#respond(cookie, code);
      done++;
    }
    return done;
  }

  /** write() of 8-byte `struct iommu_hwpt_page_response {u32 cookie; u32 code}` entries: ESPIPE unless a multiple of 8; returns bytes consumed. */
  writeBytes(buf: Uint8Array): number {
    this.#live();
    if (buf.byteLength % PAGE_RESPONSE_BYTES !== 0)
      throw new IommufdError('ESPIPE', `a write must be a multiple of ${PAGE_RESPONSE_BYTES} bytes`);
    const count = buf.byteLength / PAGE_RESPONSE_BYTES;
    let words: Uint32Array;
    if (buf.byteOffset % 4 === 0) words = new Uint32Array(buf.buffer, buf.byteOffset, count * 2);
    else {
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      words = new Uint32Array(count * 2);
      for (let i = 0; i < count * 2; i++) words[i] = view.getUint32(i * 4, true);
    }
    return this.respondWords(words, count) * PAGE_RESPONSE_BYTES;
  }

  /** Closes the handle (the fd's release): the FAULT object can then be destroyed. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
  }

  /** Whether the handle was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  // ---- the registry's side -------------------------------------------------------------------

  /**
   * Queues a one-page group (the registry's report path, allocation-free): device `devId`'s
   * request on `pasid` (-1 for none) in group `grpid`, through HWPT `hwptId`, for the page at
   * `addr` (an integer below 2^53) with PGFAULT_PERM `perm`.
   */
  enqueueOne(devId: number, pasid: number, grpid: number, hwptId: number, perm: number, addr: number): void {
    const r = this.#room(1);
    this.#put(r, devId, pasid, grpid, hwptId, perm, addr % TWO32, Math.floor(addr / TWO32), true);
    this.#q[r + R_GROUP] = 1;
    this.#tail++;
    this.#queued();
  }

  /** Queues a whole group (the registry's report path). */
  enqueue(
    devId: number,
    pasid: number,
    grpid: number,
    hwptId: number,
    faults: readonly { addr: bigint; perm: number }[],
  ): void {
    const n = faults.length;
    this.#room(n);
    for (let i = 0; i < n; i++) {
      const f = faults[i]!;
      const r = ((this.#tail + i) & this.#qMask) * REC;
      this.#put(
        r,
        devId,
        pasid,
        grpid,
        hwptId,
        f.perm,
        Number(f.addr & 0xffff_ffffn),
        Number(f.addr >> 32n),
        i === n - 1,
      );
      this.#q[r + R_GROUP] = i === 0 ? n : 0;
    }
    this.#tail += n;
    this.#queued();
  }

  /**
   * Answers INVALID every queued and every read-but-unanswered group of (device, PASID) on
   * `hwpt` (a detach or a replace away from it). Returns the groups answered.
   */
  autoRespond(dev: DeviceObject, pasid: number, hwpt: AttachableHwpt): number {
    let n = 0;
    const q = this.#q;
    for (let at = this.#head; at < this.#tail;) {
      const r = (at & this.#qMask) * REC;
      const count = q[r + R_GROUP]! & ~DEAD;
      if (
        (q[r + R_GROUP]! & DEAD) === 0 &&
        q[r + R_DEV] === dev.id &&
        q[r + R_HWPT] === hwpt.id &&
        routedTo(dev, pasid, (q[r + R_FLAGS]! & PGFAULT_FLAG.PasidValid) === 0 ? NO_PASID : q[r + R_PASID]!, hwpt)
      ) {
        q[r + R_GROUP] = (count | DEAD) >>> 0;
        this.#pending--;
        this.#auto(this.#queuedAnswer(at, count));
        n++;
      }
      at += count;
    }
    const aw = this.#aw;
    for (let c = 1; c < this.#high; c++) {
      const a = c * AW;
      if (aw[a] === 0 || aw[a + 1] !== dev.id || aw[a + 4] !== hwpt.id) continue;
      if (!routedTo(dev, pasid, aw[a + 2]! - 1, hwpt)) continue;
      this.#auto(c);
      n++;
    }
    return n;
  }

  /** The object is destroyed: everything pending is answered INVALID and the streams complete. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const q = this.#q;
    for (let at = this.#head; at < this.#tail;) {
      const r = (at & this.#qMask) * REC;
      const count = q[r + R_GROUP]! & ~DEAD;
      if ((q[r + R_GROUP]! & DEAD) === 0) this.#auto(this.#queuedAnswer(at, count));
      at += count;
    }
    this.#head = this.#tail;
    this.#pending = 0;
    for (let c = 1; c < this.#high; c++) if (this.#aw[c * AW] !== 0) this.#auto(c);
    this.#faults.complete();
    this.#answers.complete();
    this.#ready.complete();
  }

  // ---- internals -----------------------------------------------------------------------------

  /** The record count of the next live group (skipping auto-answered ones), or 0 when none is queued. */
  #nextGroup(): number {
    const q = this.#q;
    while (this.#head < this.#tail) {
      const g = q[(this.#head & this.#qMask) * REC + R_GROUP]!;
      if ((g & DEAD) === 0) return g;
      this.#head += g & ~DEAD;
    }
    return 0;
  }

  /** The group of `n` records at the head gets the lowest free cookie and moves to the awaiting table. */
  #take(n: number): void {
    let c = this.#low;
    const aw0 = this.#aw;
    while (c < this.#high && aw0[c * AW] !== 0) c++;
    if (c >= this.#high) this.#high = c + 1;
    if ((c + 1) * AW > this.#aw.length) {
      const grown = new Uint32Array(this.#aw.length * 2);
      grown.set(this.#aw);
      this.#aw = grown;
    }
    this.#low = c + 1;
    const q = this.#q;
    const mask = this.#qMask;
    const r = (this.#head & mask) * REC;
    const aw = this.#aw;
    const a = c * AW;
    const pasidValid = (q[r + R_FLAGS]! & PGFAULT_FLAG.PasidValid) !== 0;
    aw[a] = n;
    aw[a + 1] = q[r + R_DEV]!;
    aw[a + 2] = pasidValid ? q[r + R_PASID]! + 1 : 0;
    aw[a + 3] = q[r + R_GRPID]!;
    aw[a + 4] = q[r + R_HWPT]!;
    aw[a + 5] = q[r + R_PERM]!;
    aw[a + 6] = q[r + R_ADDR_LO]!;
    aw[a + 7] = q[r + R_ADDR_HI]!;
    for (let i = 0; i < n; i++) q[((this.#head + i) & mask) * REC + R_COOKIE] = c;
    if (n > 1) {
      const faults: { addr: bigint; perm: number }[] = [];
      for (let i = 0; i < n; i++) {
        const ri = ((this.#head + i) & mask) * REC;
        faults.push({ addr: addrOf(q, ri), perm: q[ri + R_PERM]! });
      }
      this.#awMulti.set(c, faults);
    }
    this.#pending--;
    this.#awaiting++;
    this.stats.read++;
  }

  /** Why answering `cookie` with `code` is EINVAL, or undefined. */
  #check(cookie: unknown, code: unknown): string | undefined {
    if (code !== PAGE_RESPONSE.Success && code !== PAGE_RESPONSE.Invalid)
      return `response code ${String(code)} is neither SUCCESS nor INVALID`;
    if (typeof cookie !== 'number' || !(cookie >= 1 && cookie < this.#high) || this.#aw[cookie * AW] === 0)
      return `cookie ${String(cookie)} names no group awaiting a response`;
    return undefined;
  }

  #respond(cookie: number, code: number): void {
    this.stats.answered++;
    this.#answer(cookie, code, false);
  }

  #auto(cookie: number): void {
    this.stats.autoAnswered++;
    this.#answer(cookie, PAGE_RESPONSE.Invalid, true);
  }

  /**
   * Answers awaiting group `cookie` (or, with cookie ≥ 2^32, the queued group staged there by
   * {@link #queuedAnswer}): frees the cookie, tells the devices' side, and streams the answer.
   */
  #answer(cookie: number, code: number, auto: boolean): void {
    const aw = this.#aw;
    const a = cookie * AW;
    const devId = aw[a + 1]!;
    const pasid = aw[a + 2]! - 1;
    const grpid = aw[a + 3]!;
    if (this.#answers.observed) {
      const faults = this.#awMulti.get(cookie) ?? [
        { addr: BigInt(aw[a + 6]!) | (BigInt(aw[a + 7]!) << 32n), perm: aw[a + 5]! },
      ];
      this.#answers.next({ devId, pasid, grpid, cookie: cookie === 0 ? 0 : cookie, code, auto, faults });
    }
    aw[a] = 0;
    if (this.#awMulti.size !== 0) this.#awMulti.delete(cookie);
    if (cookie !== 0) {
      this.#awaiting--;
      if (cookie < this.#low) this.#low = cookie;
    }
    this.#sink(devId, pasid, grpid, code);
  }

  /** Stages the queued group of `count` records at `at` in cookie slot 0 (never a real cookie), to be answered. */
  #queuedAnswer(at: number, count: number): number {
    const q = this.#q;
    const r = (at & this.#qMask) * REC;
    const aw = this.#aw;
    aw[0] = count;
    aw[1] = q[r + R_DEV]!;
    aw[2] = (q[r + R_FLAGS]! & PGFAULT_FLAG.PasidValid) !== 0 ? q[r + R_PASID]! + 1 : 0;
    aw[3] = q[r + R_GRPID]!;
    aw[4] = q[r + R_HWPT]!;
    aw[5] = q[r + R_PERM]!;
    aw[6] = q[r + R_ADDR_LO]!;
    aw[7] = q[r + R_ADDR_HI]!;
    if (count > 1 && this.#answers.observed) {
      const faults: { addr: bigint; perm: number }[] = [];
      for (let i = 0; i < count; i++) {
        const ri = ((at + i) & this.#qMask) * REC;
        faults.push({ addr: addrOf(q, ri), perm: q[ri + R_PERM]! });
      }
      this.#awMulti.set(0, faults);
    }
    return 0;
  }

  /** The ring offset (in words) of the next record, after making room for `n` more. */
  #room(n: number): number {
    const cap = this.#qMask + 1;
    if (this.#tail - this.#head + n > cap) {
      let size = cap * 2;
      while (this.#tail - this.#head + n > size) size *= 2;
      const grown = new Uint32Array(size * REC);
      for (let at = this.#head, i = 0; at < this.#tail; at++, i++)
        grown.set(this.#q.subarray((at & this.#qMask) * REC, (at & this.#qMask) * REC + REC), i * REC);
      this.#tail -= this.#head;
      this.#head = 0;
      this.#q = grown;
      this.#qMask = size - 1;
    }
    return (this.#tail & this.#qMask) * REC;
  }

  #put(
    r: number,
    devId: number,
    pasid: number,
    grpid: number,
    hwptId: number,
    perm: number,
    addrLo: number,
    addrHi: number,
    last: boolean,
  ): void {
    const q = this.#q;
    const pasidValid = pasid !== NO_PASID;
    q[r + R_FLAGS] = (pasidValid ? PGFAULT_FLAG.PasidValid : 0) | (last ? PGFAULT_FLAG.LastPage : 0);
    q[r + R_DEV] = devId;
    q[r + R_PASID] = pasidValid ? pasid : 0;
    q[r + R_GRPID] = grpid;
    q[r + R_PERM] = perm;
    q[r + 5] = 0;
    q[r + R_ADDR_LO] = addrLo;
    q[r + R_ADDR_HI] = addrHi;
    q[r + 8] = 0;
    q[r + R_COOKIE] = 0;
    q[r + R_HWPT] = hwptId;
  }

  /** A group was queued: count it, and tell the streams (objects only for an observed `faults$`). */
  #queued(): void {
    this.#pending++;
    this.stats.queued++;
    if (this.#faults.observed) {
      const q = this.#q;
      let at = this.#tail - 1;
      while ((q[(at & this.#qMask) * REC + R_GROUP]! & ~DEAD) === 0) at--;
      const out: PageFaultRecord[] = [];
      for (; at < this.#tail; at++) out.push(this.#record(at));
      this.#faults.next(out);
    }
    if (this.#pending === 1 && this.#ready.observed) this.#ready.next(1);
  }

  /** The queued record at ring index `at`, as a typed object. */
  #record(at: number): PageFaultRecord {
    const q = this.#q;
    const r = (at & this.#qMask) * REC;
    return {
      flags: q[r + R_FLAGS]!,
      devId: q[r + R_DEV]!,
      pasid: q[r + R_PASID]!,
      grpid: q[r + R_GRPID]!,
      perm: q[r + R_PERM]!,
      addr: addrOf(q, r),
      length: 0,
      cookie: q[r + R_COOKIE]!,
    };
  }

  #live(): void {
    if (this.#closed) throw new IommufdError('EBADF', `fault queue ${this.id} is closed`);
  }
}

/**
 * Whether a group of `recordPasid` on `hwpt` goes with the attach of (device, `pasid`): the same
 * PASID, or a PASID with no attach of its own whose faults the RID's HWPT took (an SMMUv3 vSTE).
 */
function routedTo(dev: DeviceObject, pasid: number, recordPasid: number, hwpt: AttachableHwpt): boolean {
  if (recordPasid === pasid) return true;
  return pasid === NO_PASID && dev.pasids.get(recordPasid) !== hwpt;
}

/** The address of the record at word `r` of `q`. */
function addrOf(q: Uint32Array, r: number): bigint {
  return BigInt(q[r + R_ADDR_LO]!) | (BigInt(q[r + R_ADDR_HI]!) << 32n);
}

/**
 * The HWPT that (device, PASID)'s faults go to: the one attached there, or, for a PASID with no
 * attach of its own, an SMMUv3 vSTE on the RID (whose CD table serves every SubstreamID), as
 * `iommu_report_device_fault` falls back to the RID's nested attach handle.
 */
function attachedAt(dev: DeviceObject, pasid: number): AttachableHwpt | undefined {
  if (pasid === NO_PASID) return dev.rid;
  const own = dev.pasids.get(pasid);
  if (own !== undefined) return own;
  const rid = dev.rid;
  return rid?.type === 'hwpt-nested' && rid.vste !== undefined ? rid : undefined;
}

/** A number naming (PASID or -1, group index) within a device: 21 + 16 bits. */
function groupKey(pasid: number, grpid: number): number {
  return (pasid + 1) * 65536 + grpid;
}

/** IOMMU_FAULT_QUEUE_ALLOC: a FAULT object and its handle (which holds a reference, as the fd does). */
export function faultQueueAlloc(ctx: IommufdCtx): FaultQueue {
  ctx.faults.step('fault queue allocation');
  const id = ctx.objects.reserve();
  const obj: FaultObject = {
    type: 'fault',
    id,
    users: 2, // the table's, and the handle's (the fd's)
    queue: new FaultQueue(
      id,
      () => {
        obj.users--;
      },
      (devId, pasid, grpid, code) => ctx.requests.answer(devId, pasid, grpid, code),
    ),
    partial: new Map(),
  };
  ctx.objects.finalize(obj);
  return obj.queue;
}

/** FAULT_ID_VALID on HWPT_ALLOC: `faultId` must name a FAULT (ENOENT); the HWPT holds a reference on it. */
export function bindFault(ctx: IommufdCtx, hwpt: AttachableHwpt, faultId: number, undo: (() => void)[]): void {
  const fault = ctx.objects.get(faultId, 'fault');
  fault.users++;
  hwpt.fault = fault;
  // The data plane learns that the domain's translation faults are recoverable.
  const d = hwpt.type === 'hwpt-paging' ? hwpt.domain.descriptor : hwpt.descriptor;
  if (d !== 0) ctx.tables.addDomainFlags(d, DOMAIN_IOPF);
  undo.push(() => {
    fault.users--;
    hwpt.fault = undefined;
  });
}

/** Drops a destroyed HWPT's reference on its FAULT object. */
export function unbindFault(hwpt: AttachableHwpt): void {
  if (hwpt.fault !== undefined) hwpt.fault.users--;
  hwpt.fault = undefined;
}

/** IOMMU_DESTROY of a FAULT (or the fd's teardown): every pending group is answered INVALID. */
export function faultDestroy(ctx: IommufdCtx, fault: FaultObject): void {
  fault.queue.destroy();
  ctx.objects.remove(fault.id);
}

/** The queue that (device, PASID)'s page requests go to now: ENODEV when nothing fault-capable is attached there. */
export function faultQueueOf(dev: DeviceObject, pasid: number): FaultQueue {
  const hwpt = attachedAt(dev, pasid);
  const fault = hwpt?.fault;
  if (fault === undefined)
    throw new IommufdError('ENODEV', `device ${dev.id} has no fault-capable domain attached there`);
  return fault.queue;
}

/**
 * A device reports an I/O page fault on (device, PASID): `iommu_report_device_fault` with a page
 * request. Faults of one group (device, PASID, `grpid`) collect until the one with `last`, then
 * the whole group is queued on the FAULT object of the HWPT attached there. ENODEV when nothing
 * fault-capable is attached (the kernel's report finds no IOPF handler). Returns that queue.
 */
export function reportPageFault(
  dev: DeviceObject,
  pasid: number,
  f: { grpid: number; perm: number; addr: bigint; last: boolean },
): FaultQueue {
  const hwpt = attachedAt(dev, pasid);
  const fault = hwpt?.fault;
  if (hwpt === undefined || fault === undefined)
    throw new IommufdError('ENODEV', `device ${dev.id} has no fault-capable domain attached there`);
  const one = { addr: f.addr, perm: f.perm };
  let mine = fault.partial.get(dev.id);
  const key = groupKey(pasid, f.grpid);
  const earlier = mine?.get(key);
  // A one-page group (the common case) never enters the partial map.
  if (f.last && earlier === undefined) {
    fault.queue.enqueue(dev.id, pasid, f.grpid, hwpt.id, [one]);
    return fault.queue;
  }
  const faults = earlier ?? [];
  faults.push(one);
  if (!f.last) {
    if (mine === undefined) fault.partial.set(dev.id, (mine = new Map<number, { addr: bigint; perm: number }[]>()));
    mine.set(key, faults);
    return fault.queue;
  }
  mine!.delete(key);
  fault.queue.enqueue(dev.id, pasid, f.grpid, hwpt.id, faults);
  return fault.queue;
}

/**
 * The allocation-free report of a one-page group (a whole page request group, LAST_PAGE set):
 * device `dev` on `pasid` (or NO_PASID), group `grpid`, PGFAULT_PERM `perm`, the page at `addr`
 * (an integer below 2^53). Returns false, queuing nothing, when nothing fault-capable is attached
 * there, or when the group already has earlier pages collecting (then the slow path is needed).
 */
export function reportPageRequest(
  dev: DeviceObject,
  pasid: number,
  grpid: number,
  perm: number,
  addr: number,
): boolean {
  const hwpt = attachedAt(dev, pasid);
  const fault = hwpt?.fault;
  if (hwpt === undefined || fault === undefined) return false;
  if (fault.partial.size !== 0 && fault.partial.get(dev.id)?.has(groupKey(pasid, grpid)) === true) return false;
  fault.queue.enqueueOne(dev.id, pasid, grpid, hwpt.id, perm, addr);
  return true;
}

/** A detach or replace of (device, PASID) away from `old`: its groups are answered INVALID, its partial groups dropped. */
export function faultDetach(dev: DeviceObject, pasid: number, old: AttachableHwpt): void {
  const fault = old.fault;
  if (fault === undefined) return;
  const mine = fault.partial.get(dev.id);
  if (mine !== undefined)
    for (const key of [...mine.keys()]) if (Math.floor(key / 65536) === pasid + 1) mine.delete(key);
  fault.queue.autoRespond(dev, pasid, old);
}
