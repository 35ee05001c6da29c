import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import { allocPagingDomain, DRIVERS } from './domain.js';
import { bindFault, unbindFault } from './fault.js';
import { hwptNestedAlloc } from './hwpt-nested.js';
import { viommuHwptNestedAlloc } from './viommu.js';
import type { AttachableHwpt, DeviceObject, HwptPagingObject, IoasObject } from './objects.js';

/** HWPT_ALLOC flags. */
export interface HwptFlags {
  /** IOMMU_HWPT_ALLOC_NEST_PARENT. */
  nestParent?: boolean;
  /** IOMMU_HWPT_ALLOC_DIRTY_TRACKING. */
  dirtyTracking?: boolean;
  /** IOMMU_HWPT_ALLOC_PASID. */
  pasid?: boolean;
}

/**
 * How nested domains over a nest parent (or on a vIOMMU) translate: `hardware`, the IOMMU walks
 * both stages; `software`, the host keeps a shadow of the nested walk (cache/shadow.ts) that
 * guest invalidations and stage-2 changes keep in sync. A simulator mode: the kernel has no flag.
 */
export type NestingMode = 'hardware' | 'software';

/** Nested data types of HWPT_ALLOC. */
export type HwptDataType = 'none' | 'selftest' | 'vtd-s1' | 'arm-smmuv3';

/**
 * `iommufd_hwpt_paging_alloc`: a paging HWPT on `ioas`, filled with every area before it is
 * returned. Not finalized: the caller publishes it (or aborts it with {@link hwptAbort}).
 */
export function hwptPagingAlloc(
  ctx: IommufdCtx,
  ioas: IoasObject,
  dev: DeviceObject,
  flags: HwptFlags,
  autoDomain: boolean,
  undo: (() => void)[],
): HwptPagingObject {
  const driver = DRIVERS[dev.kind];
  if (flags.dirtyTracking === true && !dev.dirtyTracking) {
    throw new IommufdError('EOPNOTSUPP', `device ${dev.id} cannot track dirty pages`);
  }
  if (flags.pasid === true && !driver.pasid)
    throw new IommufdError('EOPNOTSUPP', `${dev.kind} domains cannot be used on PASIDs`);
  const id = ctx.objects.reserve();
  undo.push(() => ctx.objects.remove(id));
  const domain = allocPagingDomain(ctx, dev.kind, flags.nestParent === true);
  undo.push(() => domain.free());
  const hwpt: HwptPagingObject = {
    type: 'hwpt-paging',
    id,
    users: 1,
    ioas,
    domain,
    kind: dev.kind,
    autoDomain,
    nestParent: flags.nestParent === true,
    softwareNesting: false,
    pasidCompat: flags.pasid === true,
    dirtyTracking: flags.dirtyTracking === true,
  };
  ioas.iopt.addDomain(domain);
  undo.push(() => ioas.iopt.removeDomain(domain));
  ioas.users++;
  ioas.hwpts.push(hwpt);
  undo.push(() => {
    ioas.hwpts.splice(ioas.hwpts.indexOf(hwpt), 1);
    ioas.users--;
  });
  return hwpt;
}

/** Destroys a paging HWPT: its domain leaves the IOAS and is freed; the IOAS reference drops. */
export function hwptPagingDestroy(ctx: IommufdCtx, hwpt: HwptPagingObject): void {
  const ioas = hwpt.ioas;
  ioas.iopt.removeDomain(hwpt.domain);
  ioas.hwpts.splice(ioas.hwpts.indexOf(hwpt), 1);
  ioas.users--;
  hwpt.domain.free();
  unbindFault(hwpt);
  ctx.objects.remove(hwpt.id);
}

/** Drops a reference on a HWPT; an auto domain whose last device left is destroyed. */
export function hwptPut(ctx: IommufdCtx, hwpt: AttachableHwpt): void {
  hwpt.users--;
  if (hwpt.type === 'hwpt-paging' && hwpt.autoDomain && hwpt.users === 1) hwptPagingDestroy(ctx, hwpt);
}

/**
 * IOMMU_HWPT_ALLOC: `ptId` an IOAS (a paging HWPT), a nest-parent paging HWPT (a nested HWPT), or
 * a vIOMMU (a nested HWPT built by the vIOMMU's driver: `arm-smmuv3` vSTE or `selftest` data).
 */
export function hwptAlloc(
  ctx: IommufdCtx,
  a: {
    devId: number;
    ptId: number;
    flags?: HwptFlags | undefined;
    faultId?: number | undefined;
    dataType?: HwptDataType | undefined;
    data?: unknown;
    nesting?: NestingMode | undefined;
  },
): number {
  const dataType = a.dataType ?? 'none';
  const software = a.nesting === 'software';
  const hasData = a.data !== undefined;
  if ((dataType === 'none' && hasData) || (dataType !== 'none' && !hasData)) {
    throw new IommufdError(
      'EINVAL',
      dataType === 'none' ? 'data given with dataType none' : `dataType ${dataType} needs data`,
    );
  }
  const flags = a.flags ?? {};
  const dev = ctx.objects.get(a.devId, 'device');
  const pt = ctx.objects.find(a.ptId);
  if (pt === undefined) throw new IommufdError('EINVAL', `ptId ${a.ptId} is not an IOAS or a HWPT`);
  if (pt.type === 'ioas') {
    if (dataType !== 'none') throw new IommufdError('EINVAL', 'a paging HWPT takes no data');
    if (a.faultId !== undefined && flags.nestParent === true) {
      throw new IommufdError('EOPNOTSUPP', 'a nest parent cannot have a fault queue');
    }
    if (software && flags.nestParent !== true)
      throw new IommufdError('EINVAL', 'software nesting is a mode of a nest parent');
    if (software && ctx.shadow === undefined)
      throw new IommufdError('EOPNOTSUPP', 'software nesting needs the IOTLB (the shadow lives under it)');
    return ctx.atomically((undo) => {
      const hwpt = hwptPagingAlloc(ctx, pt, dev, flags, false, undo);
      hwpt.softwareNesting = software;
      if (a.faultId !== undefined) bindFault(ctx, hwpt, a.faultId, undo);
      ctx.objects.finalize(hwpt);
      return hwpt.id;
    });
  }
  if (a.nesting !== undefined) throw new IommufdError('EINVAL', 'the nesting mode is chosen on the nest parent');
  if (pt.type === 'hwpt-paging') {
    if (flags.nestParent === true || flags.dirtyTracking === true || dataType === 'none') {
      throw new IommufdError('EOPNOTSUPP', 'nested HWPT: unsupported flags or no data');
    }
    return hwptNestedAlloc(ctx, dev, pt, dataType, a.data, flags.pasid === true, a.faultId);
  }
  if (pt.type === 'viommu') {
    return viommuHwptNestedAlloc(ctx, dev, pt, { flags, dataType, data: a.data, faultId: a.faultId });
  }
  // Nested-on-nested, or an object of another type.
  throw new IommufdError('EINVAL', `ptId ${a.ptId} is not an IOAS, a paging HWPT or a vIOMMU`);
}
