/**
 * A published domain descriptor and the caches tagged by it. The descriptor index is the IOTLB
 * tag of every translation made through it, and the ATS devices attached to it (`atsDevices`)
 * hold device-TLB entries from it: publishing, invalidating and retiring a descriptor go through
 * these, for paging and nested domains alike.
 */
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';

/**
 * Publishes a descriptor (`parent`: a nested domain's nest parent) and starts its IOTLB tag from
 * the current clock, since a reused index must not find its previous user's entries. ENOMEM when
 * the table is full.
 */
export function publishDescriptor(
  ctx: IommufdCtx,
  format: number,
  rootPa: number,
  walkConfig: number,
  parent = 0,
): number {
  const d = ctx.tables.publishDomain(format, rootPa, walkConfig, parent);
  if (d < 0) throw new IommufdError('ENOMEM', 'domain descriptor table is full');
  ctx.iotlb?.resetTag(d);
  return d;
}

/** Invalidates [iova, iova+length) of descriptor `d` in the IOTLB, then in its ATS devices' device-TLBs. */
export function invalidateDescriptorRange(ctx: IommufdCtx, d: number, iova: number, length: number): void {
  ctx.iotlb?.invalidateRange(d, iova, length);
  const ats = ctx.atsDevices.get(d);
  if (ats !== undefined) for (const tag of ats) ctx.atc?.invalidateRange(tag, iova, length);
}

/** Invalidates everything of descriptor `d`: its IOTLB tag with one epoch store, and its ATS devices' device-TLBs. */
export function flushDescriptor(ctx: IommufdCtx, d: number): void {
  ctx.iotlb?.flushTag(d);
  const ats = ctx.atsDevices.get(d);
  if (ats !== undefined) for (const tag of ats) ctx.atc?.flushAsid(tag);
}

/** Retires descriptor `d` (nothing is attached to it any more): its index is reused after the grace period. */
export function retireDescriptor(ctx: IommufdCtx, d: number): void {
  flushDescriptor(ctx, d);
  ctx.atsDevices.delete(d);
  ctx.memory.retireOther(d);
}
