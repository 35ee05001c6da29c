/**
 * The unit's side of the VT-d page request queue (VT-d spec §7.5; reference/viommu-queues.md
 * §2.4, §3.5): page request groups written at PQT in guest memory, PRS.PPR and the page request
 * event, overflow (PRS.PRO) with the unit's own answer to a dropped last request, and the page
 * group responses (descriptor 0x9) that complete the groups the devices wait on.
 *
 * Groups are keyed by (requester id, PRG index), as PCIe numbers them per function; a response
 * must name an outstanding group and its PASID, else it is ignored and counted, as hardware
 * ignores a response that matches no outstanding request.
 */
import { Access } from '../../pgtable/index.js';
import { IommufdError } from '../../util/errors.js';
import { encodePageRequest, PageRequestDescriptor, PRG_RESPONSE, PRGI_COUNT } from './page-request.js';
import { PRQ_DESC_BYTES, PRS, VTD_REG } from './regs-defs.js';
import type { VtdRegisters } from './regs.js';

/**
 * What the unit answers itself for a group whose last request an overflow dropped (the queue was
 * full, or PRS.PRO was set): Success, so that the device retries and asks again for the pages
 * still missing. The references leave the VT-d code to the spec, which is not among them
 * (QEMU returns -ENOSPC to the device model instead). The choice rests on four points:
 * - A PCIe Response Failure is a catastrophic error: the function disables its page request
 *   interface until software resets it. That is too much for a queue that software can drain.
 * - The RISC-V IOMMU spec answers an overflow Success and a queue memory fault Response Failure,
 *   "to allow the OS to be able to recover from a temporary overflow" (riscv-non-isa/riscv-iommu
 *   issue #262, answered by its editor).
 * - The SMMUv3 unit here answers a lost Last request Success (smmuv3/pri.ts).
 * - Linux handles an overflow by discarding the partial groups (`iopf_queue_discard_partial`),
 *   which assumes the device asks again.
 */
export const OVERFLOW_RESPONSE = PRG_RESPONSE.Success;

/**
 * What the unit answers itself for a group whose last request it could not write because the
 * queue lies outside guest RAM (the write aborts): Response Failure, as the RISC-V IOMMU answers
 * after a queue memory fault, and the SMMUv3 unit here for a queue it cannot use.
 */
export const ABORT_RESPONSE = PRG_RESPONSE.Failure;

/** Counters of the page request queue. */
export interface VtdPrqStats {
  /** Page request groups raised by devices. */
  groups: number;
  /** Page request descriptors written to the queue. */
  requests: number;
  /** Requests dropped: the queue was full or PRS.PRO was set, or the queue lies outside guest RAM. */
  dropped: number;
  /** Times the unit set PRS.PRO. */
  overflows: number;
  /** Groups the unit answered itself (their last request was dropped): Success after an overflow. */
  autoResponses: number;
  /** Of those, the groups answered Response Failure (the queue lies outside guest RAM). */
  autoFailures: number;
  /** Page group responses that completed an outstanding group. */
  responses: number;
  /** Page group responses that matched no outstanding group (or not its PASID): ignored. */
  unmatchedResponses: number;
}

/** A group a device waits on. */
interface Group {
  readonly pasid: number;
  readonly done: (code: number) => void;
}

/** Every message this file raises (one place, STYLE.md). */
const ERRORS = {
  noPrgi: (sid: number) => `SID 0x${sid.toString(16)} has ${PRGI_COUNT} page request groups outstanding`,
} as const;

/** The page request queue of one unit. */
export class VtdPageRequestQueue {
  readonly #regs: VtdRegisters;
  readonly #mem: Int32Array;
  readonly #ramBytes: number;
  readonly #groups = new Map<number, Group>();
  /** Next PRG index to try, by requester id. */
  readonly #nextPrgi = new Map<number, number>();
  readonly #d = new PageRequestDescriptor();
  readonly #stats: VtdPrqStats = {
    groups: 0,
    requests: 0,
    dropped: 0,
    overflows: 0,
    autoResponses: 0,
    autoFailures: 0,
    responses: 0,
    unmatchedResponses: 0,
  };

  /** The queue of the unit whose registers are `regs`, over guest RAM `mem` of `ramBytes`. */
  constructor(regs: VtdRegisters, mem: Int32Array, ramBytes: number) {
    this.#regs = regs;
    this.#mem = mem;
    this.#ramBytes = ramBytes;
  }

  /** Counters (a copy). */
  stats(): VtdPrqStats {
    return { ...this.#stats };
  }

  /** Groups raised and not yet answered. */
  get outstanding(): number {
    return this.#groups.size;
  }

  /**
   * Raises one page request group for `pages` (page addresses, at least one) of requester `sid`
   * with `pasid` (-1: none) and `access` (Access bits), the last one with LPIG; resolves with the
   * response code. The group is registered before its first descriptor is written, because
   * software may answer from inside the page request event. EBUSY when all 512 PRG indexes of
   * the requester are outstanding.
   */
  raise(sid: number, pasid: number, pages: readonly number[], access: number): Promise<number> {
    const prgi = this.#allocPrgi(sid);
    const key = sid * PRGI_COUNT + prgi;
    const answer = new Promise<number>((resolve) => this.#groups.set(key, { pasid, done: resolve }));
    this.#stats.groups++;
    const d = this.#d;
    d.rid = sid;
    d.pasid = pasid;
    d.prgi = prgi;
    d.read = (access & Access.Read) !== 0;
    d.write = (access & Access.Write) !== 0;
    d.exec = (access & Access.Exec) !== 0;
    d.priv = (access & Access.Priv) !== 0;
    for (let i = 0; i < pages.length; i++) {
      d.address = pages[i]!;
      d.lpig = i === pages.length - 1;
      const outcome = this.#write(d);
      // A dropped last request is answered by the unit, so the device does not wait forever.
      if (outcome !== 'queued' && d.lpig) {
        const g = this.#groups.get(key);
        if (g !== undefined) {
          this.#groups.delete(key);
          this.#stats.autoResponses++;
          if (outcome === 'aborted') this.#stats.autoFailures++;
          g.done(outcome === 'aborted' ? ABORT_RESPONSE : OVERFLOW_RESPONSE);
        }
      }
    }
    return answer;
  }

  /**
   * A page group response descriptor: completes the group (`rid`, `prgi`) when it is outstanding
   * and `pasid` (-1 when PP = 0) is its PASID; anything else is ignored and counted. RC 0 is
   * success, 1 invalid request, any other code response failure.
   */
  respond(rid: number, pasid: number, prgi: number, code: number): void {
    const key = rid * PRGI_COUNT + prgi;
    const g = this.#groups.get(key);
    if (g === undefined || g.pasid !== pasid) {
      this.#stats.unmatchedResponses++;
      return;
    }
    this.#groups.delete(key);
    this.#stats.responses++;
    g.done(code === PRG_RESPONSE.Success || code === PRG_RESPONSE.InvalidRequest ? code : PRG_RESPONSE.Failure);
  }

  /** Answers every outstanding group with `code` (the unit is closing). */
  abortAll(code: number = PRG_RESPONSE.Failure): void {
    const groups = [...this.#groups.values()];
    this.#groups.clear();
    for (const g of groups) g.done(code);
  }

  #allocPrgi(sid: number): number {
    const start = this.#nextPrgi.get(sid) ?? 0;
    for (let i = 0; i < PRGI_COUNT; i++) {
      const prgi = (start + i) % PRGI_COUNT;
      if (!this.#groups.has(sid * PRGI_COUNT + prgi)) {
        this.#nextPrgi.set(sid, (prgi + 1) % PRGI_COUNT);
        return prgi;
      }
    }
    throw new IommufdError('EBUSY', ERRORS.noPrgi(sid));
  }

  /**
   * Writes one descriptor at PQT, advances PQT and sets PRS.PPR (the event fires only when PPR and
   * PRO were both clear, QEMU `vtd_generate_page_request_event`). While PRO is set nothing is
   * written; a full queue sets PRO (with its event) and drops the request. Returns what became
   * of it: queued, dropped by an overflow, or aborted (the queue lies outside guest RAM).
   */
  #write(d: PageRequestDescriptor): 'queued' | 'overflow' | 'aborted' {
    const regs = this.#regs;
    if ((Number(regs.mmioRead(VTD_REG.PRS, 4)) & PRS.PRO) !== 0) {
      this.#stats.dropped++;
      return 'overflow';
    }
    if (regs.prqFull) {
      this.#stats.dropped++;
      this.#stats.overflows++;
      regs.setPrs({ pro: true });
      return 'overflow';
    }
    const tail = regs.prqTail;
    const at = Number(regs.prqBase) + tail;
    if (at + PRQ_DESC_BYTES > this.#ramBytes) {
      // The write aborts: nothing reaches software.
      this.#stats.dropped++;
      return 'aborted';
    }
    encodePageRequest(d, this.#mem, at / 4);
    regs.setPageRequestTail((tail + PRQ_DESC_BYTES) % (regs.prqSizeEntries * PRQ_DESC_BYTES));
    this.#stats.requests++;
    regs.setPrs({ ppr: true });
    return 'queued';
  }
}
