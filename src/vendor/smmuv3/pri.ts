/**
 * PCIe page requests through the SMMUv3 PRI queue (reference/viommu-queues.md §1.8; IHI0070 §8).
 * A device with ATS and PRI whose ATS translation faults sends page requests, one page request
 * group (PRG) per transfer under a PRG index of its own (9 bits), Last = 1 on the group's final
 * page. The unit writes each request as a 16-byte PRIQ record; software answers the group once,
 * with CMD_PRI_RESP (SID, SSID, PRG index, Resp Deny / Fail / Success).
 *
 * What the unit answers itself (IHI0070 §8.1, §8.2): a request lost because the queue is full or
 * in an unacknowledged overflow (PROD.OVFLG != CONS.OVACKFLG; the queue writer toggles OVFLG) is
 * discarded, and when it has Last = 1 the unit sends the group's response, Success, so that the
 * device retries (and asks again for what is still missing). A request lost because the queue is
 * disabled or its abort error is active gets Response Failure. Software never sees those groups
 * (a partial group whose last request was lost is discarded by the handler, as Linux's
 * `iopf_queue_discard_partial`), so it never answers them.
 *
 * A PRI_RESP naming no outstanding group is ignored, and counted.
 */
import { PriResp } from './commands.js';
import type { SmmuPageFault } from './events.js';
import { SmmuOutQueue, type SmmuGuestWrite } from './queues.js';
import { encodePriRequest, type SmmuPriRequest } from './records.js';
import type { SmmuRegisters } from './regs.js';
import { Access } from '../../pgtable/types.js';

/** Counters of the PRI queue writer. */
export interface SmmuPriStats {
  /** Page requests written to the PRI queue, and groups sent. */
  requests: number;
  groups: number;
  /** Requests lost to a full or overflowed queue, and to a disabled or aborted one. */
  overflows: number;
  dropped: number;
  /** Groups the unit answered itself: Success (overflow), Response Failure (queue unusable). */
  autoSuccess: number;
  autoFailure: number;
  /** Groups answered by PRI_RESP, and PRI_RESPs that named no outstanding group. */
  responses: number;
  ignoredResponses: number;
}

/** An outstanding group. */
interface Group {
  readonly sid: number;
  readonly prgi: number;
  readonly settle: (resp: number) => void;
}

const PRG_INDICES = 512;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The unit's PRI queue writer and its outstanding page request groups. */
export class SmmuPriQueue {
  readonly #queue: SmmuOutQueue;
  readonly #groups = new Map<number, Group>();
  readonly #next = new Map<number, number>();
  readonly #r: Mutable<SmmuPriRequest> = { sid: 0, prgIndex: 0, address: 0 };
  readonly #stats: SmmuPriStats = {
    requests: 0,
    groups: 0,
    overflows: 0,
    dropped: 0,
    autoSuccess: 0,
    autoFailure: 0,
    responses: 0,
    ignoredResponses: 0,
  };

  /** A writer into `regs`' PRI queue; `write` stores a record in guest memory (false: abort). */
  constructor(regs: SmmuRegisters, write: SmmuGuestWrite) {
    this.#queue = new SmmuOutQueue(regs, 'priq', write);
  }

  /** The counters (a copy). */
  stats(): SmmuPriStats {
    return { ...this.#stats };
  }

  /** Groups waiting for a response. */
  get outstanding(): number {
    return this.#groups.size;
  }

  /**
   * Sends one page request group of (`sid`, `ssid` or -1) for `pages` (at least one; each names
   * its page and access), Last = 1 on the final one. `settle` gets the group's response (a
   * {@link PriResp} code), from PRI_RESP or from the unit itself (then before this returns).
   * Returns the PRG index, or -1 when the device has all 512 outstanding (nothing is sent).
   */
  request(sid: number, ssid: number, pages: readonly SmmuPageFault[], settle: (resp: number) => void): number {
    const prgi = this.#freeIndex(sid);
    if (prgi < 0) return -1;
    const k = key(sid, prgi);
    this.#groups.set(k, { sid, prgi, settle });
    this.#stats.groups++;
    const r = this.#r;
    r.sid = sid;
    r.ssid = ssid >= 0 ? ssid : undefined;
    r.prgIndex = prgi;
    const q = this.#queue;
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      r.address = p.iova - (p.iova % 4096);
      r.read = (p.access & Access.Write) === 0;
      r.write = (p.access & Access.Write) !== 0;
      r.exec = (p.access & Access.Exec) !== 0;
      r.privileged = (p.access & Access.Priv) !== 0;
      r.last = i === pages.length - 1;
      const outcome = q.push(encodePriRequest(q.record, r));
      if (outcome === 'written') {
        this.#stats.requests++;
        continue;
      }
      const lost = outcome === 'overflow';
      if (lost) this.#stats.overflows++;
      else this.#stats.dropped++;
      if (r.last === true) {
        if (lost) this.#stats.autoSuccess++;
        else this.#stats.autoFailure++;
        this.#settle(k, lost ? PriResp.Success : PriResp.Fail);
      }
    }
    return prgi;
  }

  /** CMD_PRI_RESP: answers group `prgi` of `sid` with `resp`; false (counted) when none is outstanding. */
  respond(sid: number, prgi: number, resp: number): boolean {
    const k = key(sid, prgi);
    if (!this.#groups.has(k)) {
      this.#stats.ignoredResponses++;
      return false;
    }
    this.#stats.responses++;
    this.#settle(k, resp);
    return true;
  }

  /** Answers every outstanding group with Response Failure (the unit closes). */
  failAll(): void {
    for (const k of [...this.#groups.keys()]) this.#settle(k, PriResp.Fail);
  }

  #settle(k: number, resp: number): void {
    const g = this.#groups.get(k)!;
    this.#groups.delete(k);
    g.settle(resp);
  }

  /** The device's next free PRG index, round-robin, or -1. */
  #freeIndex(sid: number): number {
    const start = this.#next.get(sid) ?? 0;
    for (let i = 0; i < PRG_INDICES; i++) {
      const prgi = (start + i) % PRG_INDICES;
      if (!this.#groups.has(key(sid, prgi))) {
        this.#next.set(sid, (prgi + 1) % PRG_INDICES);
        return prgi;
      }
    }
    return -1;
  }
}

function key(sid: number, prgi: number): number {
  return sid * PRG_INDICES + prgi;
}
