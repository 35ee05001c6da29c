/**
 * vEVENTQ (IOMMU_VEVENTQ_ALLOC, reference/iommufd.md §2): a vIOMMU's queue of vendor event
 * records for the guest (SMMUv3: 256-bit event records with the StreamID rewritten to the
 * vSID), one queue per type. Each event carries a header `{u32 flags; u32 sequence}`; the
 * sequence wraps INT_MAX → 0, and on overflow a single LOST_EVENTS header stands at the tail.
 */
import { Subject, type Observable } from 'rxjs';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import type { VeventqObject, ViommuObject } from './objects.js';

/** vEVENTQ types (IOMMU_VEVENTQ_TYPE_*): the SMMUv3 event record, or the selftest's `{u32 virt_id}`. */
export type VeventqType = 'arm-smmuv3' | 'selftest';
/** `struct iommufd_vevent_header` flags. */
export const VEVENT_FLAG = { LostEvents: 1 } as const;
/** Bytes of a vEVENT header. */
export const VEVENT_HEADER_BYTES = 8;
const INT_MAX = 0x7fffffff;

/** One event as read: its header, and the vendor payload (none for the LOST_EVENTS header). */
export interface VeventRecord {
  /** VEVENT_FLAG bits: LOST_EVENTS (the header alone: events were dropped before this point). */
  flags: number;
  /** The event's sequence number (a gap after a LOST_EVENTS header counts what was lost). */
  sequence: number;
  /** The payload (SMMUv3: 32 bytes, the event record; selftest: 4 bytes, the virt_id), little-endian. */
  data: Uint8Array;
}

interface Entry {
  flags: number;
  sequence: number;
  data: Uint8Array;
}

/**
 * The VMM's end of a vEVENTQ (the kernel's anon fd): reads whole events, streams them on
 * {@link events$}. Close it as the fd would be closed; the object can then be destroyed.
 */
export class VeventQueue {
  /** The vEVENTQ object's id. */
  readonly id: number;
  /** Its type. */
  readonly type: VeventqType;
  /** At most this many events are queued; more are lost (LOST_EVENTS). */
  readonly depth: number;
  readonly #events: Entry[] = [];
  /** Events queued (the lost header is not one). */
  #count = 0;
  #sequence = 0;
  /** The shared LOST_EVENTS header, when it stands at the tail. */
  #lost: Entry | undefined;
  #closed = false;
  readonly #onClose: () => void;
  readonly #stream = new Subject<VeventRecord>();
  /** Every event (and lost-events header) as it is queued. */
  readonly events$: Observable<VeventRecord> = this.#stream.asObservable();
  /** Totals: events queued, and events lost to overflow. */
  readonly stats = { queued: 0, lost: 0 };

  /** A handle for vEVENTQ `id`; `onClose` drops the fd's reference. */
  constructor(id: number, type: VeventqType, depth: number, onClose: () => void) {
    this.id = id;
    this.type = type;
    this.depth = depth;
    this.#onClose = onClose;
  }

  /** Events waiting to be read (a trailing LOST_EVENTS header counts as one). */
  get pending(): number {
    return this.#events.length;
  }

  /** read(): whole events, oldest first, at most `max`. */
  read(max = Number.POSITIVE_INFINITY): VeventRecord[] {
    this.#live();
    const out: VeventRecord[] = [];
    while (this.#events.length > 0 && out.length < max) out.push(this.#take());
    return out;
  }

  /**
   * read() into `buf`: whole events (an 8-byte header, then the payload) while they fit. Returns
   * the bytes written (0 when the next event does not fit or nothing is queued).
   */
  readBytes(buf: Uint8Array): number {
    this.#live();
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    while (this.#events.length > 0) {
      const e = this.#events[0]!;
      if (at + VEVENT_HEADER_BYTES + e.data.length > buf.byteLength) break;
      this.#take();
      view.setUint32(at, e.flags, true);
      view.setUint32(at + 4, e.sequence, true);
      buf.set(e.data, at + VEVENT_HEADER_BYTES);
      at += VEVENT_HEADER_BYTES + e.data.length;
    }
    return at;
  }

  /** Closes the handle (the fd's release). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
  }

  /**
   * Queues a vendor event (the registry's report path, `iommufd_viommu_report_event`): a full
   * queue drops it and puts the LOST_EVENTS header at the tail instead; a real event that finds
   * that header trailing takes its place. Either way the sequence moves on.
   */
  report(data: Uint8Array): void {
    let e: Entry;
    if (this.#count >= this.depth) {
      this.stats.lost++;
      if (this.#lost !== undefined) this.#events.splice(this.#events.indexOf(this.#lost), 1);
      e = this.#lost = { flags: VEVENT_FLAG.LostEvents, sequence: 0, data: new Uint8Array(0) };
    } else {
      if (this.#lost !== undefined && this.#events.at(-1) === this.#lost) {
        this.#events.pop();
        this.#lost = undefined;
      }
      e = { flags: 0, sequence: 0, data: data.slice() };
      this.#count++;
      this.stats.queued++;
    }
    e.sequence = this.#sequence;
    this.#sequence = this.#sequence === INT_MAX ? 0 : this.#sequence + 1;
    this.#events.push(e);
    this.#stream.next({ flags: e.flags, sequence: e.sequence, data: e.data });
  }

  /** Sets the next sequence number (tests of the wrap at INT_MAX). */
  setSequenceForTest(sequence: number): void {
    this.#sequence = sequence;
  }

  /** The object is destroyed: the stream completes. */
  destroy(): void {
    this.#stream.complete();
  }

  #take(): VeventRecord {
    const e = this.#events.shift()!;
    if (e === this.#lost) this.#lost = undefined;
    else this.#count--;
    return { flags: e.flags, sequence: e.sequence, data: e.data };
  }

  #live(): void {
    if (this.#closed) throw new IommufdError('EBADF', `vEVENTQ ${this.id} is closed`);
  }
}

/**
 * IOMMU_VEVENTQ_ALLOC on vIOMMU `viommu`: depth 0 EINVAL, a second queue of one type EEXIST. The
 * queue holds the vIOMMU (destroying it is EBUSY meanwhile) and its handle holds the queue.
 */
export function veventqAlloc(ctx: IommufdCtx, viommu: ViommuObject, type: VeventqType, depth: number): VeventQueue {
  if (depth === 0) throw new IommufdError('EINVAL', 'veventq depth must be at least 1');
  const queues = (viommu.veventqs ??= new Map());
  if (queues.has(type)) throw new IommufdError('EEXIST', `vIOMMU ${viommu.id} already has a ${type} vEVENTQ`);
  ctx.faults.step('veventq allocation');
  const id = ctx.objects.reserve();
  const obj: VeventqObject = {
    type: 'veventq',
    id,
    users: 2, // the table's and the handle's
    viommu,
    queue: new VeventQueue(id, type, depth, () => {
      obj.users--;
    }),
  };
  queues.set(type, obj);
  viommu.users++;
  ctx.objects.finalize(obj);
  return obj.queue;
}

/** IOMMU_DESTROY of a vEVENTQ: the vIOMMU is released. */
export function veventqDestroy(ctx: IommufdCtx, q: VeventqObject): void {
  q.viommu.veventqs?.delete(q.queue.type);
  q.viommu.users--;
  q.queue.destroy();
  ctx.objects.remove(q.id);
}

/**
 * `iommufd_viommu_report_event`: an event of `type` for vIOMMU `viommu`. Returns whether a queue
 * of that type took it (without one it is dropped, as the kernel's report fails).
 */
export function reportVevent(viommu: ViommuObject, type: VeventqType, data: Uint8Array): boolean {
  const q = viommu.veventqs?.get(type);
  if (q === undefined) return false;
  q.queue.report(data);
  return true;
}
