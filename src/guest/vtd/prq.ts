/**
 * The guest side of the VT-d page request queue: Linux's drivers/iommu/intel/prq.c
 * (`intel_iommu_enable_prq`, `prq_event_thread`, `handle_bad_prq_event`) with the iopf layer's
 * grouping (reference/viommu-queues.md §2.4). Requests are gathered per group (requester id,
 * PRG index) until the one with LPIG; the whole group is then handed to the driver, whose answer
 * goes back as one page group response. Stop markers (LPIG without R/W) get no response; a
 * privileged request that reads or writes, or an execute request that reads, is answered
 * Invalid Request at once, as Linux does.
 */
import type { FrameAllocator } from '../../memory/index.js';
import { decodePageRequest, PageRequestDescriptor, PRG_RESPONSE, PRGI_COUNT } from '../../vendor/vtd/page-request.js';
import { EVENT_CTL, PQ_OFFSET, PRQ_DESC_BYTES, PRS, VTD_REG } from '../../vendor/vtd/regs-defs.js';
import type { VtdUnitPort } from './queue.js';

/** One page request as the driver handles it. */
export interface VtdPageRequest {
  /** Requester id. */
  readonly sid: number;
  /** The PASID, or -1 when the request had none. */
  readonly pasid: number;
  /** Page address. */
  readonly address: number;
  readonly read: boolean;
  readonly write: boolean;
  readonly exec: boolean;
  readonly priv: boolean;
}

/** A complete page request group: its pages in arrival order, the last one with LPIG. */
export interface VtdPageRequestGroup {
  readonly sid: number;
  readonly pasid: number;
  readonly prgi: number;
  readonly pages: readonly VtdPageRequest[];
}

/** Counters of the guest's page request handling. */
export interface VtdPrqHandlerStats {
  /** Handler runs (interrupts or polls). */
  runs: number;
  /** Descriptors read from the queue. */
  requests: number;
  /** Complete groups handed to the driver. */
  groups: number;
  /** Responses sent, by code. */
  success: number;
  invalid: number;
  failure: number;
  /** Stop markers dropped. */
  stopMarkers: number;
  /** Requests rejected before grouping (privileged or execute with a read). */
  badRequests: number;
  /** Times PRS.PRO was found set, and cleared once the queue drained. */
  overflowsCleared: number;
  /** Requests of partial groups discarded when PRO was cleared (`iopf_queue_discard_partial`). */
  discarded: number;
}

/** Page request counters at zero: a new queue's, and a driver's before it enables page requests. */
export function zeroPrqStats(): VtdPrqHandlerStats {
  return {
    runs: 0,
    requests: 0,
    groups: 0,
    success: 0,
    invalid: 0,
    failure: 0,
    stopMarkers: 0,
    badRequests: 0,
    overflowsCleared: 0,
    discarded: 0,
  };
}

/** What the queue needs of the driver. */
export interface PageRequestPort {
  /** Handles a complete group; returns the response code. */
  handleGroup(group: VtdPageRequestGroup): number;
  /** Sends a page group response (one `qi_submit_sync`). */
  respond(sid: number, pasid: number, prgi: number, code: number): void;
}

/** `PRQ_ORDER`: Linux's queue is 2^4 pages, 2048 descriptors. */
export const PRQ_ORDER = 4;

/** A guest's page request queue over one unit. */
export class GuestPageRequestQueue {
  /** Guest-physical base of the ring. */
  readonly base: number;
  /** PQA.PQS: the ring is 2^order pages. */
  readonly order: number;
  /** Descriptors in the ring. */
  readonly entries: number;
  /** Counters. */
  readonly stats: VtdPrqHandlerStats = zeroPrqStats();
  readonly #unit: VtdUnitPort;
  readonly #port: PageRequestPort;
  readonly #partial = new Map<number, VtdPageRequest[]>();
  readonly #d = new PageRequestDescriptor();
  #running = false;
  #again = false;

  /** Allocates the ring (2^order contiguous pages) from `frames`; nothing is written to the unit yet. */
  constructor(unit: VtdUnitPort, frames: FrameAllocator, port: PageRequestPort, order = PRQ_ORDER) {
    this.#unit = unit;
    this.#port = port;
    this.order = order;
    const pages = 2 ** order;
    this.base = (pages === 1 ? frames.alloc() : frames.allocContiguous(pages)) * 4096;
    this.entries = (pages * 4096) / PRQ_DESC_BYTES;
  }

  /** `intel_iommu_enable_prq`: PQH = PQT = 0, PQA = base | order, then the event unmasked. */
  enable(): void {
    this.#unit.mmioWrite(VTD_REG.PQH, 0n, 8);
    this.#unit.mmioWrite(VTD_REG.PQT, 0n, 8);
    this.#unit.mmioWrite(VTD_REG.PQA, BigInt(this.base) | BigInt(this.order), 8);
    this.#unit.mmioWrite(VTD_REG.PECTL, 0, 4); // dmar_msi_unmask
  }

  /** `intel_iommu_finish_prq`: PQH, PQT and PQA back to 0, the event masked. */
  disable(): void {
    this.#unit.mmioWrite(VTD_REG.PECTL, EVENT_CTL.IM, 4);
    this.#unit.mmioWrite(VTD_REG.PQH, 0n, 8);
    this.#unit.mmioWrite(VTD_REG.PQT, 0n, 8);
    this.#unit.mmioWrite(VTD_REG.PQA, 0n, 8);
    this.#partial.clear();
  }

  /**
   * `prq_event_thread`: clears PRS.PPR first (so a request queued meanwhile raises a new event),
   * walks PQH to PQT, writes PQH = tail, then, if PRS.PRO is set and the queue is empty, discards
   * the partial groups and clears PRO. A run that the unit's event re-enters (a response resumes
   * nothing synchronously, but the VMM may deliver events inline) is folded into the running one.
   * Returns the descriptors read.
   */
  run(): number {
    if (this.#running) {
      this.#again = true;
      return 0;
    }
    this.#running = true;
    let n = 0;
    try {
      do {
        this.#again = false;
        n += this.#runOnce();
      } while (this.#again);
    } finally {
      this.#running = false;
    }
    return n;
  }

  #runOnce(): number {
    const unit = this.#unit;
    this.stats.runs++;
    unit.mmioWrite(VTD_REG.PRS, PRS.PPR, 4);
    const tail = this.#read32(VTD_REG.PQT) & PQ_OFFSET.Mask;
    let head = this.#read32(VTD_REG.PQH) & PQ_OFFSET.Mask;
    const ring = this.entries * PRQ_DESC_BYTES;
    let n = 0;
    while (head !== tail) {
      this.#handle(decodePageRequest(unit.guest.i32, (this.base + head) / 4, this.#d));
      head = (head + PRQ_DESC_BYTES) % ring;
      n++;
    }
    unit.mmioWrite(VTD_REG.PQH, BigInt(tail), 8);
    if ((this.#read32(VTD_REG.PRS) & PRS.PRO) !== 0) {
      const h = this.#read32(VTD_REG.PQH) & PQ_OFFSET.Mask;
      const t = this.#read32(VTD_REG.PQT) & PQ_OFFSET.Mask;
      if (h === t) {
        for (const p of this.#partial.values()) this.stats.discarded += p.length;
        this.#partial.clear();
        unit.mmioWrite(VTD_REG.PRS, PRS.PRO, 4);
        this.stats.overflowsCleared++;
      }
    }
    return n;
  }

  #handle(d: PageRequestDescriptor): void {
    this.stats.requests++;
    if ((d.priv && (d.read || d.write)) || (d.exec && d.read)) {
      this.stats.badRequests++;
      if (d.lpig) this.#respond(d.rid, d.pasid, d.prgi, PRG_RESPONSE.InvalidRequest);
      return;
    }
    if (d.lpig && !d.read && !d.write) {
      this.stats.stopMarkers++;
      return;
    }
    const key = d.rid * PRGI_COUNT + d.prgi;
    const page: VtdPageRequest = {
      sid: d.rid,
      pasid: d.pasid,
      address: d.address,
      read: d.read,
      write: d.write,
      exec: d.exec,
      priv: d.priv,
    };
    let pages = this.#partial.get(key);
    if (pages === undefined) {
      pages = [];
      this.#partial.set(key, pages);
    }
    pages.push(page);
    if (!d.lpig) return;
    this.#partial.delete(key);
    this.stats.groups++;
    const code = this.#port.handleGroup({ sid: d.rid, pasid: d.pasid, prgi: d.prgi, pages });
    this.#respond(d.rid, d.pasid, d.prgi, code);
  }

  #respond(sid: number, pasid: number, prgi: number, code: number): void {
    if (code === PRG_RESPONSE.Success) this.stats.success++;
    else if (code === PRG_RESPONSE.InvalidRequest) this.stats.invalid++;
    else this.stats.failure++;
    this.#port.respond(sid, pasid, prgi, code);
  }

  #read32(offset: number): number {
    return Number(this.#unit.mmioRead(offset, 4));
  }
}
