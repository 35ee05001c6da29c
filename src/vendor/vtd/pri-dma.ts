/**
 * The device's side of PRI DMA through a VT-d unit (PCIe ATS/PRI as the unit sees it; DESIGN.md
 * "Faults"): translate every page of a transfer, send the pages that fault recoverably as one
 * page request group, wait for the page group response, and retry after a Success. The transfer
 * itself happens only once every page translates, so a failed DMA moved no byte.
 */
import type { PhysMemory } from '../../memory/index.js';
import { Access, TranslateFault } from '../../pgtable/index.js';
import { IommufdError } from '../../util/errors.js';
import { PRG_RESPONSE } from './page-request.js';

/** One DMA transfer of a PRI-capable device. */
export interface VtdDmaTransfer {
  /** First byte. */
  iova: number;
  /** Access bits (Access.Read or Access.Write, optionally Exec and Priv). */
  access: number;
  /** Bytes to read (reads only). */
  length?: number;
  /** Bytes to write (writes only). */
  data?: Uint8Array;
}

/** What the transfer needs of the unit. */
export interface PriDmaPort {
  /** Host memory that translated addresses index. */
  readonly phys: PhysMemory;
  /** A physical address, TranslateFault.Pending for a recoverable fault, or another fault (recorded). */
  translate(iova: number, access: number): number;
  /** Raises one page request group; resolves with its response code. */
  raise(pages: readonly number[], access: number): Promise<number>;
  /** The error of a fault that is not recoverable at `iova`. */
  fault(iova: number): Error;
  /** The unit was closed while the device waited. */
  closed(): boolean;
}

/** Page request groups a transfer may raise before it gives up (a handler that never maps). */
export const PRI_MAX_GROUPS = 16;

const RESPONSE_NAME: Record<number, string> = {
  [PRG_RESPONSE.InvalidRequest]: 'Invalid Request',
  [PRG_RESPONSE.Failure]: 'Response Failure',
};

/** Every message this file raises (one place, STYLE.md). */
const ERRORS = {
  transfer: (what: string) => `a PRI DMA transfer needs ${what}`,
  response: (iova: number, code: number) =>
    `page request group for 0x${iova.toString(16)} answered ${RESPONSE_NAME[code] ?? `RC ${code}`}`,
  retries: (iova: number) =>
    `DMA at 0x${iova.toString(16)} still faults after ${PRI_MAX_GROUPS} successful page request groups`,
  closed: 'the VT-d unit was closed while the DMA waited for a page group response',
} as const;

/** Runs `t` through `port`; resolves with the bytes read or written (see VtdIommu.dma). */
export async function priDma(port: PriDmaPort, t: VtdDmaTransfer): Promise<Uint8Array> {
  const write = (t.access & Access.Write) !== 0;
  if (write && t.data === undefined) throw new IommufdError('EINVAL', ERRORS.transfer('data for a write'));
  const length = write ? t.data!.length : (t.length ?? 0);
  if (!Number.isSafeInteger(t.iova) || t.iova < 0) throw new IommufdError('EINVAL', ERRORS.transfer('an iova >= 0'));
  if (!Number.isSafeInteger(length) || length <= 0) throw new IommufdError('EINVAL', ERRORS.transfer('a length > 0'));
  const pieces = Math.ceil(((t.iova % 4096) + length) / 4096);
  const pas = new Array<number>(pieces);
  for (let groups = 0; ; groups++) {
    const missing: number[] = [];
    for (let i = 0; i < pieces; i++) {
      const at = i === 0 ? t.iova : (Math.floor(t.iova / 4096) + i) * 4096;
      const pa = port.translate(at, t.access);
      if (pa === TranslateFault.Pending) missing.push(at - (at % 4096));
      else if (pa < 0) throw port.fault(at);
      else pas[i] = pa;
    }
    if (missing.length === 0) break;
    if (groups === PRI_MAX_GROUPS) throw new IommufdError('EFAULT', ERRORS.retries(missing[0]!));
    const code = await port.raise(missing, t.access);
    if (port.closed()) throw new IommufdError('EBADF', ERRORS.closed);
    if (code !== PRG_RESPONSE.Success) throw new IommufdError('EFAULT', ERRORS.response(missing[0]!, code));
  }
  const u8 = port.phys.u8;
  const out = write ? t.data! : new Uint8Array(length);
  let off = 0;
  for (let i = 0; i < pieces; i++) {
    const at = t.iova + off;
    const n = Math.min(length - off, 4096 - (at % 4096));
    const pa = pas[i]!;
    if (write) u8.set(out.subarray(off, off + n), pa);
    else out.set(u8.subarray(pa, pa + n), off);
    off += n;
  }
  return out;
}
