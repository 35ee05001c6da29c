import { IoPagetable, U64_MAX, type IovaRange } from '../iopt/index.js';
import { Prot } from '../pgtable/index.js';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import type { IoasObject } from './objects.js';

/** Flags of IOAS_MAP and IOAS_COPY. */
export interface MapFlags {
  /** IOMMU_IOAS_MAP_FIXED_IOVA. */
  fixedIova?: boolean;
  /** IOMMU_IOAS_MAP_READABLE. */
  readable?: boolean;
  /** IOMMU_IOAS_MAP_WRITEABLE. */
  writeable?: boolean;
}

/** The EMSGSIZE error of IOAS_IOVA_RANGES: carries the total and the ranges that fitted. */
export class IovaRangesTooSmall extends IommufdError {
  /** Total number of ranges. */
  readonly numIovas: number;
  /** The first `capacity` ranges. */
  readonly ranges: IovaRange[];
  constructor(numIovas: number, ranges: IovaRange[], capacity: number) {
    super('EMSGSIZE', `capacity ${capacity} is below the ${numIovas} IOVA ranges`);
    this.numIovas = numIovas;
    this.ranges = ranges;
  }
}

/**
 * Prot bits of map flags. When neither readable nor writeable is given (or flags are omitted) the
 * mapping is readable and writeable; once either is given, the other defaults to false.
 * EINVAL when neither ends up set, as the kernel answers a map with neither flag.
 */
function protOf(flags: MapFlags | undefined): number {
  const unspecified = flags?.readable === undefined && flags?.writeable === undefined;
  const readable = unspecified || flags?.readable === true;
  const writeable = unspecified || flags?.writeable === true;
  if (!readable && !writeable) throw new IommufdError('EINVAL', 'flags: neither readable nor writeable');
  return (readable ? Prot.Read : 0) | (writeable ? Prot.Write : 0);
}

/** IOMMU_IOAS_ALLOC. */
export function ioasAlloc(ctx: IommufdCtx): number {
  return ctx.atomically(() => {
    const id = ctx.objects.reserve();
    try {
      ctx.faults.step('ioas allocation');
      const ioas: IoasObject = { type: 'ioas', id, users: 1, iopt: new IoPagetable(ctx.mm, ctx.faults), hwpts: [] };
      ctx.objects.finalize(ioas);
      return id;
    } catch (e) {
      ctx.objects.remove(id);
      throw e;
    }
  });
}

/** Destroys an IOAS: unmaps everything (no HWPT can remain: each holds a reference). */
export function ioasDestroy(ctx: IommufdCtx, ioas: IoasObject): void {
  ioas.iopt.unmapAll();
  ctx.objects.remove(ioas.id);
}

/** IOMMU_IOAS_IOVA_RANGES, with the EMSGSIZE protocol. */
export function ioasIovaRanges(
  ctx: IommufdCtx,
  ioasId: number,
  capacity: number,
): { ranges: IovaRange[]; alignment: bigint } {
  const ioas = ctx.objects.get(ioasId, 'ioas');
  const all = ioas.iopt.iovaRanges();
  if (all.length > capacity) throw new IovaRangesTooSmall(all.length, all.slice(0, capacity), capacity);
  return { ranges: all, alignment: ioas.iopt.iovaAlignment };
}

/** IOMMU_IOAS_ALLOW_IOVAS. */
export function ioasAllowIovas(ctx: IommufdCtx, ioasId: number, ranges: readonly IovaRange[]): void {
  const ioas = ctx.objects.get(ioasId, 'ioas');
  ctx.atomically(() => ioas.iopt.setAllowed(ranges));
}

/** IOMMU_IOAS_MAP. */
export function ioasMap(
  ctx: IommufdCtx,
  ioasId: number,
  a: { userVa: bigint; length: bigint; iova?: bigint | undefined; flags?: MapFlags | undefined },
): bigint {
  const fixed = a.flags?.fixedIova === true;
  if (a.iova !== undefined && !fixed) throw new IommufdError('EINVAL', 'iova given without flags.fixedIova');
  if (fixed && a.iova === undefined) throw new IommufdError('EINVAL', 'flags.fixedIova without an iova');
  if ((a.iova ?? 0n) >= U64_MAX || a.length >= U64_MAX)
    throw new IommufdError('EOVERFLOW', 'iova or length is >= ULONG_MAX');
  const prot = protOf(a.flags);
  const ioas = ctx.objects.get(ioasId, 'ioas');
  return ctx.atomically(() => {
    const pages = ioas.iopt.userPages(a.userVa, a.length, (prot & Prot.Write) !== 0);
    return ioas.iopt.mapPages(
      [{ pages, startByte: a.userVa - pages.base, length: a.length }],
      a.length,
      fixed ? a.iova : undefined,
      prot,
    );
  });
}

/** IOMMU_IOAS_COPY. */
export function ioasCopy(
  ctx: IommufdCtx,
  a: {
    dstIoasId: number;
    srcIoasId: number;
    srcIova: bigint;
    length: bigint;
    dstIova?: bigint | undefined;
    flags?: MapFlags | undefined;
  },
): bigint {
  const fixed = a.flags?.fixedIova === true;
  if (a.dstIova !== undefined && !fixed) throw new IommufdError('EINVAL', 'dstIova given without flags.fixedIova');
  if (fixed && a.dstIova === undefined) throw new IommufdError('EINVAL', 'flags.fixedIova without a dstIova');
  if (a.length >= U64_MAX || a.srcIova >= U64_MAX || (a.dstIova ?? 0n) >= U64_MAX) {
    throw new IommufdError('EOVERFLOW', 'an iova or the length is >= ULONG_MAX');
  }
  const prot = protOf(a.flags);
  const src = ctx.objects.get(a.srcIoasId, 'ioas');
  const slices = src.iopt.getPages(a.srcIova, a.length);
  const dst = ctx.objects.get(a.dstIoasId, 'ioas');
  return ctx.atomically(() => dst.iopt.mapPages(slices, a.length, fixed ? a.dstIova : undefined, prot));
}

/**
 * IOMMU_IOAS_UNMAP: (0, U64_MAX) unmaps everything; otherwise the whole-area rule, with partial
 * progress kept when a later area sticks out (reference/iommufd.md §2).
 */
export function ioasUnmap(ctx: IommufdCtx, ioasId: number, iova: bigint, length: bigint): bigint {
  const ioas = ctx.objects.get(ioasId, 'ioas');
  if (iova === 0n && length === U64_MAX) return ioas.iopt.unmapAll();
  if (iova >= U64_MAX || length >= U64_MAX) throw new IommufdError('EOVERFLOW', 'iova or length is >= ULONG_MAX');
  if (length === 0n) throw new IommufdError('EINVAL', 'length is 0');
  const last = iova + length - 1n;
  if (last > U64_MAX) throw new IommufdError('EOVERFLOW', 'iova + length overflows');
  const unmapped = ioas.iopt.unmapRange(iova, last);
  if (unmapped === 0n)
    throw new IommufdError('ENOENT', `nothing is mapped in [0x${iova.toString(16)}, 0x${last.toString(16)}]`);
  return unmapped;
}

/** IOMMU_OPTION HUGE_PAGES on an IOAS. */
export function ioasOptionHugePages(ctx: IommufdCtx, op: 'get' | 'set', objectId: number, val: bigint): bigint {
  const ioas = ctx.objects.get(objectId, 'ioas');
  if (op === 'get') return ioas.iopt.disableLargePages ? 0n : 1n;
  if (val !== 0n && val !== 1n) throw new IommufdError('EINVAL', `huge-pages value must be 0 or 1, got ${val}`);
  ioas.iopt.setLargePages(val === 1n);
  return val;
}
