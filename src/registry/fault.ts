/**
 * The iommufd FAULT object (IOMMU_FAULT_QUEUE_ALLOC, reference/iommufd.md §2): the queue of I/O
 * page-fault groups that the HWPTs allocated with its id report to, read by the VMM in whole
 * groups and answered by cookie. What the kernel's anon fd does (read, write, poll, release) is
 * the {@link FaultQueue} handle; the registry side reports faults into it and answers groups
 * automatically when their attach handle goes away.
 */
import { Subject, type Observable } from 'rxjs';
import { DOMAIN_IOPF, NO_PASID } from '../translate/index.js';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import type { AttachableHwpt, DeviceObject, FaultObject } from './objects.js';

/** `struct iommu_hwpt_pgfault` flags. */
export const PGFAULT_FLAG = { PasidValid: 1, LastPage: 2 } as const;
/** `struct iommu_hwpt_pgfault` perm bits. */
export const PGFAULT_PERM = { Read: 1, Write: 2, Exec: 4, Priv: 8 } as const;
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

/** A fault group: the faults of one page request group, whole once its last page arrived. */
interface Group {
  dev: DeviceObject;
  pasid: number;
  grpid: number;
  hwpt: AttachableHwpt;
  faults: { addr: bigint; perm: number }[];
  cookie: number;
}

/**
 * The VMM's end of a FAULT object (the kernel's `[iommufd-pgfault]` fd): reads whole groups,
 * writes responses, and streams queued groups on {@link faults$}. Close it as the fd would be
 * closed: the object can then be destroyed (which answers everything still pending INVALID).
 */
export class FaultQueue {
  /** The FAULT object's id. */
  readonly id: number;
  readonly #queued: Group[] = [];
  readonly #awaiting = new Map<number, Group>();
  /** Cookies given back, smallest first taken (xa_alloc from 1 takes the lowest free index). */
  readonly #freeCookies: number[] = [];
  #nextCookie = 1;
  #closed = false;
  #destroyed = false;
  readonly #faults = new Subject<readonly PageFaultRecord[]>();
  readonly #answers = new Subject<GroupAnswer>();
  /** Who waits for the answer to a group, by device id, then {@link groupKey}: what the device's DMA resumes on. */
  readonly #waiters = new Map<number, Map<number, (code: number) => void>>();
  readonly #onClose: () => void;
  /** Each group as it is queued, as the records a read would return (cookie 0: not read yet). */
  readonly faults$: Observable<readonly PageFaultRecord[]> = this.#faults.asObservable();
  /** Every answer to a group: written responses and auto-responses, in order. */
  readonly answers$: Observable<GroupAnswer> = this.#answers.asObservable();
  /** Totals: groups queued, read, answered by a write, answered automatically. */
  readonly stats = { queued: 0, read: 0, answered: 0, autoAnswered: 0 };

  /** A handle for FAULT object `id`; `onClose` drops the fd's reference. */
  constructor(id: number, onClose: () => void) {
    this.id = id;
    this.#onClose = onClose;
  }

  /** Groups queued and not yet read (poll's EPOLLIN when non-zero). */
  get pending(): number {
    return this.#queued.length;
  }

  /** Groups read and not yet answered. */
  get awaiting(): number {
    return this.#awaiting.size;
  }

  /**
   * read(): whole groups, as typed records, while they fit in `maxRecords` (a group that does not
   * fit stays queued). Each group read gets a cookie and waits for its response.
   */
  read(maxRecords = Number.POSITIVE_INFINITY): PageFaultRecord[] {
    this.#live();
    const out: PageFaultRecord[] = [];
    while (this.#queued.length > 0 && out.length + this.#queued[0]!.faults.length <= maxRecords) {
      const g = this.#queued.shift()!;
      g.cookie = this.#takeCookie();
      this.#awaiting.set(g.cookie, g);
      this.stats.read++;
      out.push(...records(g));
    }
    return out;
  }

  /**
   * read() into `buf` as 40-byte `struct iommu_hwpt_pgfault` records (little-endian): a length
   * that is not a multiple of 40 is ESPIPE. Returns the bytes written (0 when nothing fits).
   */
  readBytes(buf: Uint8Array): number {
    this.#live();
    if (buf.byteLength % PGFAULT_BYTES !== 0)
      throw new IommufdError('ESPIPE', `a read must be a multiple of ${PGFAULT_BYTES} bytes`);
    const recs = this.read(buf.byteLength / PGFAULT_BYTES);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    recs.forEach((r, i) => {
      const at = i * PGFAULT_BYTES;
      view.setUint32(at, r.flags, true);
      view.setUint32(at + 4, r.devId, true);
      view.setUint32(at + 8, r.pasid, true);
      view.setUint32(at + 12, r.grpid, true);
      view.setUint32(at + 16, r.perm, true);
      view.setUint32(at + 20, 0, true);
      view.setBigUint64(at + 24, r.addr, true);
      view.setUint32(at + 32, r.length, true);
      view.setUint32(at + 36, r.cookie, true);
    });
    return recs.length * PGFAULT_BYTES;
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
      const g = typeof r.cookie === 'number' ? this.#awaiting.get(r.cookie) : undefined;
      const bad =
        code !== PAGE_RESPONSE.Success && code !== PAGE_RESPONSE.Invalid
          ? `response code ${String(r.code)} is neither SUCCESS nor INVALID`
          : g === undefined
            ? `cookie ${String(r.cookie)} names no group awaiting a response`
            : undefined;
      if (bad !== undefined) {
        if (done > 0) return done;
        throw new IommufdError('EINVAL', bad);
      }
      this.#awaiting.delete(g!.cookie);
      this.#giveCookie(g!.cookie);
      this.stats.answered++;
      this.#answer(g!, code, false);
      done++;
    }
    return done;
  }

  /** write() of 8-byte `struct iommu_hwpt_page_response {u32 cookie; u32 code}` entries: ESPIPE unless a multiple of 8; returns bytes consumed. */
  writeBytes(buf: Uint8Array): number {
    this.#live();
    if (buf.byteLength % PAGE_RESPONSE_BYTES !== 0)
      throw new IommufdError('ESPIPE', `a write must be a multiple of ${PAGE_RESPONSE_BYTES} bytes`);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const rs: PageResponse[] = [];
    for (let at = 0; at < buf.byteLength; at += PAGE_RESPONSE_BYTES)
      rs.push({ cookie: view.getUint32(at, true), code: view.getUint32(at + 4, true) });
    return this.respond(rs) * PAGE_RESPONSE_BYTES;
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

  /** Queues a whole group (the registry's report path). */
  enqueue(dev: DeviceObject, pasid: number, grpid: number, hwpt: AttachableHwpt, faults: Group['faults']): void {
    const g: Group = { dev, pasid, grpid, hwpt, faults, cookie: 0 };
    this.#queued.push(g);
    this.stats.queued++;
    this.#faults.next(records(g));
  }

  /**
   * Answers INVALID every queued and every read-but-unanswered group of (device, PASID) on
   * `hwpt` (a detach or a replace away from it). Returns the groups answered.
   */
  autoRespond(dev: DeviceObject, pasid: number, hwpt: AttachableHwpt): number {
    const mine = (g: Group): boolean => g.dev === dev && g.pasid === pasid && g.hwpt === hwpt;
    let n = 0;
    for (let i = 0; i < this.#queued.length;) {
      const g = this.#queued[i]!;
      if (!mine(g)) {
        i++;
        continue;
      }
      this.#queued.splice(i, 1);
      this.#auto(g);
      n++;
    }
    for (const [cookie, g] of [...this.#awaiting]) {
      if (!mine(g)) continue;
      this.#awaiting.delete(cookie);
      this.#giveCookie(cookie);
      this.#auto(g);
      n++;
    }
    return n;
  }

  /**
   * Calls `done` with the answer to group (`devId`, `pasid`, `grpid`) once it is answered (by a
   * write or an auto-response; INVALID if the queue is destroyed first). One waiter per group: a
   * device holds a group index until its answer. Register before the group can be answered.
   */
  onAnswer(devId: number, pasid: number, grpid: number, done: (code: number) => void): void {
    if (this.#destroyed) {
      done(PAGE_RESPONSE.Invalid);
      return;
    }
    let mine = this.#waiters.get(devId);
    if (mine === undefined) this.#waiters.set(devId, (mine = new Map<number, (code: number) => void>()));
    mine.set(groupKey(pasid, grpid), done);
  }

  /** The object is destroyed: everything pending is answered INVALID and the streams complete. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const g of this.#queued.splice(0)) this.#auto(g);
    for (const g of this.#awaiting.values()) this.#auto(g);
    this.#awaiting.clear();
    // Waiters whose group was never reported (or is still collecting pages) fail too.
    for (const mine of this.#waiters.values()) for (const done of mine.values()) done(PAGE_RESPONSE.Invalid);
    this.#waiters.clear();
    this.#faults.complete();
    this.#answers.complete();
  }

  #auto(g: Group): void {
    this.stats.autoAnswered++;
    this.#answer(g, PAGE_RESPONSE.Invalid, true);
  }

  #answer(g: Group, code: number, auto: boolean): void {
    const mine = this.#waiters.get(g.dev.id);
    const key = groupKey(g.pasid, g.grpid);
    const done = mine?.get(key);
    if (done !== undefined) {
      mine!.delete(key);
      done(code);
    }
    if (!this.#answers.observed) return;
    this.#answers.next({
      devId: g.dev.id,
      pasid: g.pasid,
      grpid: g.grpid,
      cookie: g.cookie,
      code,
      auto,
      faults: g.faults,
    });
  }

  #takeCookie(): number {
    const free = this.#freeCookies;
    if (free.length === 0) return this.#nextCookie++;
    // The smallest free cookie (a short sorted list: answered cookies come back here).
    return free.shift()!;
  }

  #giveCookie(cookie: number): void {
    const free = this.#freeCookies;
    let i = free.length;
    while (i > 0 && free[i - 1]! > cookie) i--;
    free.splice(i, 0, cookie);
  }

  #live(): void {
    if (this.#closed) throw new IommufdError('EBADF', `fault queue ${this.id} is closed`);
  }
}

/** A number naming (PASID or -1, group index) within a device: 21 + 16 bits. */
function groupKey(pasid: number, grpid: number): number {
  return (pasid + 1) * 65536 + grpid;
}

function records(g: Group): PageFaultRecord[] {
  const pasidValid = g.pasid !== NO_PASID;
  return g.faults.map((f, i) => ({
    flags: (pasidValid ? PGFAULT_FLAG.PasidValid : 0) | (i === g.faults.length - 1 ? PGFAULT_FLAG.LastPage : 0),
    devId: g.dev.id,
    pasid: pasidValid ? g.pasid : 0,
    grpid: g.grpid,
    perm: f.perm,
    addr: f.addr,
    length: 0,
    cookie: g.cookie,
  }));
}

/** IOMMU_FAULT_QUEUE_ALLOC: a FAULT object and its handle (which holds a reference, as the fd does). */
export function faultQueueAlloc(ctx: IommufdCtx): FaultQueue {
  ctx.faults.step('fault queue allocation');
  const id = ctx.objects.reserve();
  const obj: FaultObject = {
    type: 'fault',
    id,
    users: 2, // the table's, and the handle's (the fd's)
    queue: new FaultQueue(id, () => {
      obj.users--;
    }),
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
  const hwpt = pasid === NO_PASID ? dev.rid : dev.pasids.get(pasid);
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
  const hwpt = pasid === NO_PASID ? dev.rid : dev.pasids.get(pasid);
  const fault = hwpt?.fault;
  if (hwpt === undefined || fault === undefined)
    throw new IommufdError('ENODEV', `device ${dev.id} has no fault-capable domain attached there`);
  const one = { addr: f.addr, perm: f.perm };
  let mine = fault.partial.get(dev.id);
  const key = groupKey(pasid, f.grpid);
  const earlier = mine?.get(key);
  // A one-page group (the common case) never enters the partial map.
  if (f.last && earlier === undefined) {
    fault.queue.enqueue(dev, pasid, f.grpid, hwpt, [one]);
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
  fault.queue.enqueue(dev, pasid, f.grpid, hwpt, faults);
  return fault.queue;
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
