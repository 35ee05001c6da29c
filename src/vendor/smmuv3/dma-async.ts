/**
 * A device's asynchronous DMA through an SMMUv3 unit, with recoverable faults (issue 9 item 3):
 * the device model behind `SmmuIommu.dma`. Every page of the transfer is translated first; the
 * pages whose translation is recoverable (a stallable fault of a stream configured to stall, or an
 * ATS translation of a device with PRI) become
 *
 * - stalled transactions (a platform device under the stall model): one per faulting page, each
 *   with its own STAG and stall event; every one must be resumed with Retry;
 * - or one page request group (a PCIe device with ATS and PRI): a PRIQ record per faulting page,
 *   Last = 1 on the final one; the group's response must be Success;
 *
 * and then the whole transfer is retried. A terminating fault, a RESUME Terminate / Abort, a
 * STALL_TERM, a PRI response other than Success, or `maxRetries` rounds without completing fail
 * the DMA with EFAULT. Pages transfer only once every page translates, so a failed DMA moved no
 * data. This is fd.dma's loop (src/iommufd.ts) with the unit's own queues in place of the
 * iommufd fault queue.
 */
import type { PhysMemory } from '../../memory/index.js';
import { Access, TranslateFault } from '../../pgtable/types.js';
import { IommufdError } from '../../util/errors.js';
import { dmaRead, dmaWrite } from '../dma.js';
import type { SmmuPageFault } from './events.js';
import type { SmmuRequest } from './iommu.js';
import type { SmmuStallOutcome } from './stall.js';

/** How a device recovers from a translation fault: the stall model, or PCIe PRI. */
export type SmmuFaultModel = 'stall' | 'pri';

/** The arguments of an asynchronous DMA. */
export interface SmmuDmaArgs {
  /** First byte. */
  iova: number;
  /** Bytes to read (a write transfers `data`). */
  length?: number;
  /** Access bits: Read, or Write (with `data`); Exec and Priv as the transaction carries them. */
  access: number;
  /** The bytes of a write. */
  data?: Uint8Array;
  /** Retry rounds before the DMA gives up; default 8. */
  maxRetries?: number;
}

/** What an asynchronous DMA did. */
export interface SmmuDmaResult {
  /** The bytes read (empty for a write). */
  data: Uint8Array;
  /** Rounds retried after recoverable faults. */
  retries: number;
  /** Stalled transactions or page requests raised. */
  requests: number;
}

/** What the DMA loop needs of its unit. */
export interface SmmuDmaHost {
  /** Host physical memory (the transfer's target). */
  readonly phys: PhysMemory;
  /** The recoverable fault of the last translation that returned Pending. */
  readonly held: SmmuPageFault;
  /** Throws EBADF once the unit is closed. */
  live(): void;
  /** The device's fault model. */
  model(sid: number): SmmuFaultModel;
  /**
   * Translates `iova` for `access` with recoverable faults allowed under `model`: a physical
   * address, TranslateFault.Pending (the fault in `held`), or a negative code (terminated).
   */
  translate(req: SmmuRequest, iova: number, access: number, model?: SmmuFaultModel): number;
  /** Holds a stalled transaction for `f` and writes its stall event; undefined when it cannot be held. */
  stall(req: SmmuRequest, f: SmmuPageFault): Promise<SmmuStallOutcome> | undefined;
  /** Sends one page request group for `pages`; its response (PriResp), or undefined when no PRG index is free. */
  pageRequest(req: SmmuRequest, pages: readonly SmmuPageFault[]): Promise<number> | undefined;
  /** The error of a DMA that failed at `at`, for `why`. */
  fault(req: SmmuRequest, at: number, why: string): IommufdError;
}

const PAGE = 4096;
/** PriResp.Success (commands.ts), the one response that lets the device retry. */
const PRI_SUCCESS = 2;

/** Runs one asynchronous DMA of `req` on `host` (see the file comment). */
export async function smmuDma(host: SmmuDmaHost, req: SmmuRequest, a: SmmuDmaArgs): Promise<SmmuDmaResult> {
  host.live();
  const write = (a.access & Access.Write) !== 0;
  if (write && !(a.data instanceof Uint8Array)) throw new IommufdError('EINVAL', 'a DMA write needs data');
  const length = write ? a.data!.length : (a.length ?? 0);
  if (!Number.isInteger(length) || length < 0) throw new IommufdError('EINVAL', `bad DMA length ${String(a.length)}`);
  if (!Number.isInteger(a.iova) || a.iova < 0) throw new IommufdError('EINVAL', `bad DMA address ${String(a.iova)}`);
  const maxRetries = a.maxRetries ?? 8;
  const model = host.model(req.sid);
  let requests = 0;
  for (let round = 0; ; round++) {
    host.live();
    const waiting: SmmuPageFault[] = [];
    for (let at = a.iova; at < a.iova + Math.max(length, 1); at = at - (at % PAGE) + PAGE) {
      const r = host.translate(req, at, a.access, model);
      if (r === TranslateFault.Pending) waiting.push({ ...host.held });
      else if (r < 0) throw host.fault(req, at, 'terminated');
    }
    if (waiting.length === 0) {
      const plain = (at: number, access: number): number => host.translate(req, at, access);
      const fail = (at: number): Error => host.fault(req, at, 'terminated');
      if (write) dmaWrite(host.phys, plain, a.iova, a.data!, fail);
      const data = write ? new Uint8Array(0) : dmaRead(host.phys, plain, a.iova, length, fail);
      return { data, retries: round, requests };
    }
    if (round >= maxRetries) throw host.fault(req, waiting[0]!.iova, `still faulting after ${maxRetries} retries`);
    if (model === 'pri') {
      const answer = host.pageRequest(req, waiting);
      if (answer === undefined) throw new IommufdError('EBUSY', 'the device has every PRG index outstanding');
      requests += waiting.length;
      const resp = await answer;
      if (resp !== PRI_SUCCESS) throw host.fault(req, waiting[0]!.iova, `page request answered ${resp}`);
      continue;
    }
    const held: Promise<SmmuStallOutcome>[] = [];
    let refused: SmmuPageFault | undefined;
    for (const f of waiting) {
      const p = host.stall(req, f);
      if (p === undefined) {
        refused = f;
        break;
      }
      held.push(p);
      requests++;
    }
    const outcomes = await Promise.all(held);
    const bad = outcomes.findIndex((o) => o !== 'retry');
    if (bad >= 0) throw host.fault(req, waiting[bad]!.iova, `stalled transaction ended with ${outcomes[bad]}`);
    if (refused !== undefined) throw host.fault(req, refused.iova, 'not held (STALL_MAX transactions stalled)');
  }
}
