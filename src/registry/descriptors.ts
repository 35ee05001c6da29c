/**
 * A published domain descriptor and the caches tagged by it. The descriptor index is the IOTLB
 * tag of every translation made through it, and the ATS devices attached to it (`atsDevices`)
 * hold device-TLB entries from it: publishing, invalidating and retiring a descriptor go through
 * these, for paging and nested domains alike.
 */
import { Op, OpList } from '../ops/index.js';
import { ALL_ASIDS } from '../cache/index.js';
import { DOMAIN_SHADOW, DomainFormat } from '../translate/index.js';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';

/**
 * Publishes a descriptor (`parent`: a nested domain's nest parent; `flags`: DOMAIN_SHADOW for a
 * software-nested one) and starts its IOTLB tag from
 * the current clock, since a reused index must not find its previous user's entries. ENOMEM when
 * the table is full.
 */
export function publishDescriptor(
  ctx: IommufdCtx,
  format: number,
  rootPa: number,
  walkConfig: number,
  parent = 0,
  flags = 0,
): number {
  const d = ctx.tables.publishDomain(format, rootPa, walkConfig, parent, flags);
  if (d < 0) throw new IommufdError('ENOMEM', 'domain descriptor table is full');
  ctx.iotlb?.resetTag(d);
  return d;
}

/**
 * Whether the device-TLB entries of devices attached to descriptor `d` span every PASID of the
 * device: an SMMUv3 vSTE's CD table serves every SubstreamID through the one RID attach, so
 * its ATS devices cache (device, SSID) tags that `atsDevices` (RID tags) does not name.
 */
export function atcSpansPasids(ctx: IommufdCtx, d: number): boolean {
  return ctx.tables.domainFormat(d) === DomainFormat.ArmNested;
}

/** Drops everything the ATS devices attached to descriptor `d` cache from it. */
export function flushDeviceTlbs(ctx: IommufdCtx, d: number): void {
  const atc = ctx.atc;
  const ats = ctx.atsDevices.get(d);
  if (atc === undefined || ats === undefined) return;
  const every = atcSpansPasids(ctx, d);
  for (const tag of ats) {
    if (every) atc.flushTag(tag);
    else atc.flushAsid(tag);
  }
}

/** Invalidates [iova, iova+length) of descriptor `d` in the IOTLB, then in its ATS devices' device-TLBs. */
export function invalidateDescriptorRange(ctx: IommufdCtx, d: number, iova: number, length: number): void {
  ctx.iotlb?.invalidateRange(d, iova, length);
  const ats = ctx.atsDevices.get(d);
  if (ats === undefined || ctx.atc === undefined) return;
  const every = atcSpansPasids(ctx, d);
  for (const tag of ats) ctx.atc.invalidateRange(tag, iova, length, undefined, every ? ALL_ASIDS : 0);
}

/** Invalidates everything of descriptor `d`: its IOTLB tag with one epoch store, and its ATS devices' device-TLBs. */
export function flushDescriptor(ctx: IommufdCtx, d: number): void {
  ctx.iotlb?.flushTag(d);
  flushDeviceTlbs(ctx, d);
}

/** Retires descriptor `d` (nothing is attached to it any more): its index is reused after the grace period. */
export function retireDescriptor(ctx: IommufdCtx, d: number): void {
  flushDescriptor(ctx, d);
  ctx.atsDevices.delete(d);
  ctx.memory.retireOther(d);
}

/** Whether descriptor `d` is a software-nested domain, translated through the shadow. */
export function isShadowed(ctx: IommufdCtx, d: number): boolean {
  return ctx.shadow !== undefined && (ctx.tables.domainFlags(d) & DOMAIN_SHADOW) !== 0;
}

/**
 * Stage-1 invalidations of (descriptor `d`, ASID `asid`) of a software-nested domain, batched:
 * `ranges` holds (iova, length) pairs. One op list of ShadowSync ops, run now by the shards that
 * own each range (the shadow re-walked and rewritten or dropped, then the IOTLB range; 512 pages
 * or more flush the tag); then (with `deviceTlbs`, as VT-d's nested invalidation does) the ranges
 * in its ATS devices' device-TLBs, after the shadow; an SMMUv3 guest sends its own ATC_INV.
 */
export function syncShadowRanges(
  ctx: IommufdCtx,
  d: number,
  asid: number,
  ranges: readonly number[],
  deviceTlbs = true,
): void {
  if (ranges.length === 0) return;
  const ops = new OpList(ranges.length >> 1);
  for (let k = 0; k < ranges.length; k += 2) {
    ops.push(Op.ShadowSync, k >> 1, d, asid, ranges[k], Math.min(0xfffffffe, Math.ceil(ranges[k + 1]! / 4096)));
  }
  const ats = deviceTlbs ? ctx.atsDevices.get(d) : undefined;
  const after =
    ats === undefined || ats.size === 0
      ? undefined
      : (): void => {
          for (const tag of ats)
            for (let k = 0; k < ranges.length; k += 2) ctx.atc?.invalidateRange(tag, ranges[k]!, ranges[k + 1]!);
        };
  // An asynchronous invalidate call collects the op list for the pipeline (its pool runs large
  // ones); the synchronous uAPI runs it now.
  if (ctx.shadowSink !== undefined) {
    ctx.shadowSink(ops, after);
    return;
  }
  ctx.pipeline!.runNow(ops);
  after?.();
}

/** {@link syncShadowRanges} of one range. */
export function syncShadowRange(
  ctx: IommufdCtx,
  d: number,
  asid: number,
  iova: number,
  length: number,
  deviceTlbs = true,
): void {
  syncShadowRanges(ctx, d, asid, [iova, length], deviceTlbs);
}

/** Stage-2 ranges of more pages than this flush the software-nested domains over the parent instead of a reverse-index lookup. */
export const MAX_SHADOW_S2_PAGES = 65536;

/**
 * A stage-2 change of guest-physical [gpa, gpa+length) of nest parent `parent` reaching the
 * software-nested descriptors `shadowed` over it: every shard drops the shadow entries that
 * depend on those pages through its reverse index (ShadowS2), with their IOTLB entries; the
 * device-TLBs of their ATS devices are flushed (their entries are not indexed by guest page).
 * A range beyond {@link MAX_SHADOW_S2_PAGES} flushes the descriptors instead.
 */
export function dropShadowGpa(
  ctx: IommufdCtx,
  parent: number,
  shadowed: readonly number[],
  gpa: number,
  length: number,
): void {
  if (shadowed.length === 0) return;
  const pages = Math.ceil((gpa + length) / 4096) - Math.floor(gpa / 4096);
  if (pages > MAX_SHADOW_S2_PAGES) {
    for (const d of shadowed) flushDescriptor(ctx, d);
    return;
  }
  const ops = new OpList(1);
  ops.push(Op.ShadowS2, 0, parent, 0, gpa - (gpa % 4096), pages);
  ctx.pipeline!.runNow(ops);
  for (const d of shadowed) flushDeviceTlbs(ctx, d);
}
