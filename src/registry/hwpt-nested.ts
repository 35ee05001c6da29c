import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import type { DeviceObject, HwptNestedObject, HwptPagingObject } from './objects.js';
import { MOCK_NESTED_IOTLB_SLOTS } from './objects.js';

/** One entry of a selftest invalidation (`struct iommu_hwpt_invalidate_selftest`). */
export interface SelftestInvalidation {
  /** IOMMU_TEST_INVALIDATE_FLAG_ALL. */
  flags?: { all?: boolean };
  /** The slot, 0..3. */
  iotlbId: number;
}

/** The error of a failed invalidation: the entries before `entryNum` took effect, the others did not. */
export class InvalidateError extends IommufdError {
  /** Entries handled before the failing one. */
  readonly entryNum: number;
  constructor(inner: IommufdError, entryNum: number) {
    super(inner.errno, `${inner.message.replace(/^[A-Z]+: /, '')} (entry ${entryNum})`);
    this.entryNum = entryNum;
  }
}

/**
 * HWPT_ALLOC of a nested HWPT over `parent` (`iommufd_hwpt_nested_alloc`): the parent must be a
 * manual nest parent of the same driver (EINVAL); only the mock's `selftest` data type exists so
 * far (others: EOPNOTSUPP); its data is `{ iotlb }`, the initial value of the 4 IOTLB slots.
 */
export function hwptNestedAlloc(
  ctx: IommufdCtx,
  dev: DeviceObject,
  parent: HwptPagingObject,
  dataType: string,
  data: unknown,
): number {
  if (parent.autoDomain || !parent.nestParent || parent.kind !== dev.kind) {
    throw new IommufdError('EINVAL', `HWPT ${parent.id} is not a nest parent of this driver`);
  }
  if (dataType !== 'selftest' || dev.kind !== 'mock') {
    throw new IommufdError('EOPNOTSUPP', `nested data type ${dataType} is not supported on ${dev.kind} yet`);
  }
  const iotlb = (data as { iotlb?: unknown } | null)?.iotlb;
  if (
    typeof data !== 'object' ||
    data === null ||
    typeof iotlb !== 'number' ||
    !Number.isInteger(iotlb) ||
    iotlb < 0 ||
    iotlb > 0xffff_ffff
  ) {
    throw new IommufdError('EINVAL', 'selftest data must be { iotlb: u32 }');
  }
  return ctx.atomically((undo) => {
    const id = ctx.objects.reserve();
    undo.push(() => ctx.objects.remove(id));
    ctx.faults.step('nested domain allocation');
    const hwpt: HwptNestedObject = {
      type: 'hwpt-nested',
      id,
      users: 1,
      parent,
      kind: dev.kind,
      dataType: 'selftest',
      iotlb: new Array<number>(MOCK_NESTED_IOTLB_SLOTS).fill(iotlb),
    };
    parent.users++;
    ctx.objects.finalize(hwpt);
    return id;
  });
}

/** Destroys a nested HWPT: its parent's reference drops. */
export function hwptNestedDestroy(ctx: IommufdCtx, hwpt: HwptNestedObject): void {
  hwpt.parent.users--;
  ctx.objects.remove(hwpt.id);
}

/**
 * IOMMU_HWPT_INVALIDATE with selftest entries (reference/iommufd.md §2, §3): the target must be a
 * nested HWPT (ENOENT if missing, EINVAL for another type); the data type must be `selftest`
 * (EINVAL); entries run in order, and the first bad one stops the call with its errno and the
 * count of entries that took effect (unknown flags EOPNOTSUPP, a slot above 3 EINVAL).
 * Returns the number of entries handled; no entries only probes the data type.
 */
export function hwptInvalidate(ctx: IommufdCtx, hwptId: number, dataType: string, entries: readonly unknown[]): number {
  const obj = ctx.objects.get(hwptId);
  if (obj.type !== 'hwpt-nested')
    throw new InvalidateError(new IommufdError('EINVAL', `HWPT ${hwptId} is not a nested HWPT`), 0);
  if (dataType !== 'selftest')
    throw new InvalidateError(new IommufdError('EINVAL', `data type ${dataType} is not this HWPT's`), 0);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as { flags?: unknown; iotlbId?: unknown } | null;
    if (typeof e !== 'object' || e === null)
      throw new InvalidateError(new IommufdError('EINVAL', `entry ${i} is not an object`), i);
    const flags = e.flags ?? {};
    if (typeof flags !== 'object' || flags === null)
      throw new InvalidateError(new IommufdError('EINVAL', `entry ${i}: flags must be an object`), i);
    const keys = Object.keys(flags);
    if (keys.some((k) => k !== 'all'))
      throw new InvalidateError(new IommufdError('EOPNOTSUPP', `entry ${i}: unknown invalidation flag`), i);
    if ((flags as { all?: unknown }).all === true) {
      obj.iotlb.fill(0);
      continue;
    }
    const id = e.iotlbId;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MOCK_NESTED_IOTLB_SLOTS) {
      throw new InvalidateError(new IommufdError('EINVAL', `entry ${i}: iotlbId ${String(id)} is not 0..3`), i);
    }
    obj.iotlb[id] = 0;
  }
  return entries.length;
}
