/**
 * The guest's I/O page fault path for SMMUv3 (Linux `drivers/iommu/io-pgfault.c` over
 * arm-smmu-v3's `arm_smmu_handle_evt` and a PRIQ thread): recoverable faults become page requests
 * (`struct iommu_fault_page_request`), collected per group until the request with Last, then the
 * whole group goes to a handler (`iopf_handler`, an SVA domain's `handle_mm_fault` loop), whose
 * verdict is the group's one response (`iopf_complete_group` -> `ops->page_response`).
 *
 * A stall event is a group of one (grpid = STAG, Last). PRI requests carry their PRG index as
 * grpid and are grouped per (StreamID, PRG index). A PRI queue overflow drops the partial groups
 * (`iopf_queue_discard_partial`): their last request was lost and the unit answered it.
 */
import { Opcode, PriResp, ResumeResp, type CommandFields } from '../../vendor/smmuv3/commands.js';

/** Page response codes (Linux `enum iommu_page_response_code`). */
export const IopfResponse = {
  /** The fault was fixed: retry (RESUME Retry, PRI_RESP Success). */
  Success: 0,
  /** The request is invalid: do not retry (RESUME Abort, PRI_RESP Deny). */
  Invalid: 1,
  /** The handler failed (RESUME Abort, PRI_RESP Fail). */
  Failure: 2,
} as const;

/** A page request as the handler sees it. */
export interface SmmuPageRequest {
  /** How the fault arrived: a stalled transaction or a PCIe page request. */
  readonly kind: 'stall' | 'pri';
  readonly sid: number;
  /** The PASID (SubstreamID), or undefined. */
  readonly ssid: number | undefined;
  /** The page address. */
  readonly addr: number;
  readonly read: boolean;
  readonly write: boolean;
  readonly exec: boolean;
  readonly privileged: boolean;
  /** STAG (stall) or PRG index (PRI). */
  readonly grpid: number;
  /** Last request of its group. */
  readonly last: boolean;
}

/**
 * A fault handler: fixes what the group asks for in domain `domain` and returns its response (an
 * {@link IopfResponse} code).
 */
export type SmmuIopfHandler = (group: readonly SmmuPageRequest[], domain: number) => number;

/** Counters of the fault path. */
export interface SmmuIopfStats {
  /** Page requests received (stall events and PRI requests), and complete groups handled. */
  requests: number;
  groups: number;
  /** Groups answered Success, and otherwise. */
  fixed: number;
  refused: number;
  /** Requests nobody handles (no fault-capable domain, a stage-2 fault): answered Abort / Deny. */
  unhandled: number;
  /** Partial groups dropped after a PRI queue overflow. */
  partialDiscarded: number;
}

/** Collects page requests into groups and runs complete ones through a handler. */
export class IopfQueue {
  readonly #partial = new Map<number, SmmuPageRequest[]>();
  readonly stats: SmmuIopfStats = { requests: 0, groups: 0, fixed: 0, refused: 0, unhandled: 0, partialDiscarded: 0 };

  /**
   * `iommu_report_device_fault` for a request of a device in `domain`: a request that completes
   * its group runs `handler` on the group and `respond` with the verdict; others wait.
   */
  report(
    r: SmmuPageRequest,
    domain: number,
    handler: SmmuIopfHandler,
    respond: (r: SmmuPageRequest, code: number) => void,
  ): void {
    this.stats.requests++;
    const k = r.sid * 512 + r.grpid;
    let group: SmmuPageRequest[] = [r];
    if (r.kind === 'pri') {
      const held = this.#partial.get(k);
      if (held !== undefined) {
        held.push(r);
        group = held;
      }
      if (!r.last) {
        if (held === undefined) this.#partial.set(k, group);
        return;
      }
      this.#partial.delete(k);
    }
    this.stats.groups++;
    const code = handler(group, domain);
    if (code === IopfResponse.Success) this.stats.fixed++;
    else this.stats.refused++;
    respond(r, code);
  }

  /** `iopf_queue_discard_partial`: drops every incomplete group; returns how many. */
  discardPartial(): number {
    const n = this.#partial.size;
    this.#partial.clear();
    this.stats.partialDiscarded += n;
    return n;
  }

  /** Partial groups waiting for their last request. */
  get partialGroups(): number {
    return this.#partial.size;
  }
}

/**
 * `arm_smmu_page_response`: the command that answers `r` with `code`: RESUME (Retry on Success,
 * else Abort) for a stall; PRI_RESP (Success, Deny for Invalid, Fail for Failure) for a group.
 */
export function pageResponse(r: SmmuPageRequest, code: number): { opcode: number; fields: CommandFields } {
  if (r.kind === 'stall') {
    const resp = code === IopfResponse.Success ? ResumeResp.Retry : ResumeResp.Abort;
    return { opcode: Opcode.Resume, fields: { sid: r.sid, stag: r.grpid, ac: resp & 1, ab: resp >>> 1 } };
  }
  const resp =
    code === IopfResponse.Success ? PriResp.Success : code === IopfResponse.Invalid ? PriResp.Deny : PriResp.Fail;
  const ssid = r.ssid === undefined ? {} : { ssv: 1, ssid: r.ssid };
  return { opcode: Opcode.PriResp, fields: { sid: r.sid, ...ssid, prgi: r.grpid, resp } };
}
