import { CFG, cfgInputSize, packWalkConfig } from '../pgtable/index.js';
import { DOMAIN_SHADOW, DomainFormat } from '../translate/index.js';
import { argU64OrInt, U64_MAX } from '../util/args.js';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import {
  flushDescriptor,
  invalidateDescriptorRange,
  isShadowed,
  publishDescriptor,
  retireDescriptor,
  syncShadowRanges,
} from './descriptors.js';
import type {
  AttachableHwpt,
  DeviceObject,
  HwptNestedObject,
  HwptPagingObject,
  IoasObject,
  VtdS1Config,
} from './objects.js';
import { bindFault, unbindFault } from './fault.js';
import { MOCK_NESTED_IOTLB_SLOTS } from './objects.js';
import { viommuInvalidate } from './viommu-invalidate.js';

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

/** One entry of a VT-d stage-1 invalidation (`struct iommu_hwpt_vtd_s1_invalidate`). */
export interface VtdS1Invalidation {
  /** The first 4 KiB-aligned IOVA (0 with `npages` = U64_MAX: everything). */
  addr: bigint | number;
  /** 4 KiB pages; U64_MAX (2^64 − 1) means all. */
  npages: bigint | number;
  /** IOMMU_VTD_INV_FLAGS_LEAF: only leaf entries changed (a hint: nothing here caches walks). */
  flags?: { leaf?: boolean };
}

/** U64_MAX: "every page" in a VT-d stage-1 invalidation. */
export const VTD_S1_ALL_PAGES = U64_MAX;

/**
 * What the host VT-d unit under the registry supports for nesting, as its ECAP/CAP would say:
 * supervisor requests (ECAP.SRS), no extended accessed flag (ECAP.EAFS = 0), 5-level first stage
 * (CAP.FL5LP). intel_pasid_setup_nested checks a nested HWPT's configuration against them at attach.
 */
export const HOST_VTD_NESTING = { srs: true, eafs: false, fl5lp: true } as const;

/** The descriptor (and IOTLB tag) a device attached to `hwpt` translates with (0: none). */
export function hwptDescriptor(hwpt: AttachableHwpt): number {
  return hwpt.type === 'hwpt-paging' ? hwpt.domain.descriptor : hwpt.descriptor;
}

/** The IOAS whose mappings `hwpt` translates through (a nested HWPT's parent's). */
export function hwptIoas(hwpt: AttachableHwpt): IoasObject {
  return hwpt.type === 'hwpt-paging' ? hwpt.ioas : hwpt.parent.ioas;
}

/**
 * HWPT_ALLOC of a nested HWPT over `parent` (`iommufd_hwpt_nested_alloc`): the parent must be a
 * manual nest parent of the same driver (EINVAL); the data type must be the driver's (EOPNOTSUPP):
 * `selftest` on the mock (data `{ iotlb }`, the initial value of the 4 IOTLB slots) or `vtd-s1` on
 * VT-d (data {@link VtdS1Data}). A VT-d nested HWPT is published as a descriptor at once, so a
 * device attached to it translates with the two-stage walk.
 */
export function hwptNestedAlloc(
  ctx: IommufdCtx,
  dev: DeviceObject,
  parent: HwptPagingObject,
  dataType: string,
  data: unknown,
  pasidCompat = false,
  faultId: number | undefined = undefined,
): number {
  if (parent.autoDomain || !parent.nestParent || parent.kind !== dev.kind) {
    throw new IommufdError('EINVAL', `HWPT ${parent.id} is not a nest parent of this driver`);
  }
  const ours = dev.kind === 'mock' ? 'selftest' : dev.kind === 'vtd' ? 'vtd-s1' : undefined;
  if (dataType !== ours) {
    throw new IommufdError('EOPNOTSUPP', `nested data type ${dataType} is not supported on ${dev.kind}`);
  }
  const vtd = dataType === 'vtd-s1' ? vtdS1Config(data) : undefined;
  const iotlb = dataType === 'selftest' ? selftestIotlb(data) : 0;
  return ctx.atomically((undo) => {
    const id = ctx.objects.reserve();
    undo.push(() => ctx.objects.remove(id));
    ctx.faults.step('nested domain allocation');
    let descriptor = 0;
    if (vtd !== undefined) {
      descriptor = publishVtdNested(ctx, parent, vtd);
      undo.push(() => {
        parent.domain.nested.delete(descriptor);
        ctx.tables.recycleDomain(descriptor);
      });
    }
    const hwpt: HwptNestedObject = {
      type: 'hwpt-nested',
      id,
      users: 1,
      parent,
      viommu: undefined,
      kind: dev.kind,
      dataType: dataType,
      iotlb: vtd === undefined ? new Array<number>(MOCK_NESTED_IOTLB_SLOTS).fill(iotlb) : [],
      vtd,
      vste: undefined,
      descriptor,
      pasidCompat,
    };
    if (faultId !== undefined) bindFault(ctx, hwpt, faultId, undo);
    parent.users++;
    ctx.objects.finalize(hwpt);
    return id;
  });
}

/** The data of a `vtd-s1` nested HWPT (`struct iommu_hwpt_vtd_s1`). */
export interface VtdS1Data {
  /** IOMMU_VTD_S1_SRE, _EAFE, _WPE. */
  flags?: { sre?: boolean; eafe?: boolean; wpe?: boolean };
  /** The guest's first-stage root table (guest-physical; bits 11:0 are ignored, as the PASID entry's FSPTPTR). */
  pgtblAddr: bigint | number;
  /** 48 or 57 (checked at attach: EINVAL otherwise). */
  addrWidth: number;
}

function vtdS1Config(data: unknown): VtdS1Config {
  if (typeof data !== 'object' || data === null) throw new IommufdError('EINVAL', 'vtd-s1 data must be an object');
  const d = data as { flags?: unknown; pgtblAddr?: unknown; addrWidth?: unknown };
  const flags = d.flags ?? {};
  if (typeof flags !== 'object' || flags === null) throw new IommufdError('EINVAL', 'vtd-s1 flags must be an object');
  const f = flags as Record<string, unknown>;
  for (const k of Object.keys(f)) {
    if (k !== 'sre' && k !== 'eafe' && k !== 'wpe') throw new IommufdError('EOPNOTSUPP', `unknown vtd-s1 flag ${k}`);
    if (typeof f[k] !== 'boolean') throw new IommufdError('EINVAL', `vtd-s1 flag ${k} must be a boolean`);
  }
  const addr = argU64OrInt('vtd-s1 pgtblAddr', d.pgtblAddr);
  if (addr >= 2n ** 52n) throw new IommufdError('EINVAL', 'vtd-s1 pgtblAddr must be below 2^52');
  const width = d.addrWidth;
  if (typeof width !== 'number' || !Number.isInteger(width) || width < 0 || width > 0xffff_ffff) {
    throw new IommufdError('EINVAL', 'vtd-s1 addrWidth must be a u32');
  }
  return {
    sre: f['sre'] === true,
    eafe: f['eafe'] === true,
    wpe: f['wpe'] === true,
    pgtblAddr: Number(addr & ~0xfffn),
    addrWidth: width,
  };
}

/** The data of a `selftest` nested HWPT: `{ iotlb: u32 }`, the initial value of its IOTLB slots (EINVAL otherwise). */
export function selftestIotlb(data: unknown): number {
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
  return iotlb;
}

/** Publishes the descriptor of a VT-d nested domain: the guest's first stage over `parent`. */
function publishVtdNested(ctx: IommufdCtx, parent: HwptPagingObject, vtd: VtdS1Config): number {
  const levels = vtd.addrWidth === 57 ? 5 : 4;
  const gpaBits = cfgInputSize(ctx.tables.domainConfig(parent.domain.descriptor));
  const cfg = packWalkConfig(
    4 - levels,
    levels === 5 ? 57 : 48,
    gpaBits,
    // First-stage walks set A and D as the hardware does; scalable-mode fault codes.
    CFG.SCALABLE | CFG.SET_AD | (vtd.sre ? CFG.SRE : 0) | (vtd.wpe ? 0 : CFG.WP_OFF),
  );
  const d = publishDescriptor(
    ctx,
    DomainFormat.VtdNested,
    vtd.pgtblAddr,
    cfg,
    parent.domain.descriptor,
    parent.softwareNesting ? DOMAIN_SHADOW : 0,
  );
  parent.domain.nested.add(d);
  return d;
}

/**
 * The driver's checks when a device attaches to a nested HWPT (intel_pasid_setup_nested): the
 * address width must be 4- or 5-level, and each flag must be one the host unit supports (EINVAL).
 * An SMMUv3 vSTE was checked at allocation. The mock's nested domains are not attachable yet
 * (EOPNOTSUPP).
 */
export function checkNestedAttach(hwpt: HwptNestedObject): void {
  if (hwpt.vste !== undefined) return;
  const vtd = hwpt.vtd;
  if (vtd === undefined) throw new IommufdError('EOPNOTSUPP', `the ${hwpt.kind} nested HWPT cannot be attached yet`);
  if (vtd.addrWidth !== 48 && vtd.addrWidth !== 57)
    throw new IommufdError('EINVAL', `vtd-s1 address width ${vtd.addrWidth} is neither 48 nor 57`);
  if (vtd.addrWidth === 57 && !HOST_VTD_NESTING.fl5lp)
    throw new IommufdError('EINVAL', 'the host unit has no 5-level first stage');
  if (vtd.sre && !HOST_VTD_NESTING.srs) throw new IommufdError('EINVAL', 'the host unit has no supervisor requests');
  if (vtd.eafe && !HOST_VTD_NESTING.eafs)
    throw new IommufdError('EINVAL', 'the host unit has no extended accessed flag (ECAP.EAFS = 0)');
}

/**
 * Destroys a nested HWPT: its descriptor is retired and its parent's reference drops (its
 * vIOMMU's, for one allocated on a vIOMMU).
 */
export function hwptNestedDestroy(ctx: IommufdCtx, hwpt: HwptNestedObject): void {
  if (hwpt.descriptor !== 0) {
    hwpt.parent.domain.nested.delete(hwpt.descriptor);
    retireDescriptor(ctx, hwpt.descriptor);
  }
  if (hwpt.viommu !== undefined) hwpt.viommu.users--;
  else hwpt.parent.users--;
  unbindFault(hwpt);
  ctx.objects.remove(hwpt.id);
}

/**
 * IOMMU_HWPT_INVALIDATE (reference/iommufd.md §2, §3): the target must be a nested HWPT (ENOENT
 * if missing, EINVAL for another type); the data type must be the HWPT's (EINVAL); entries run in
 * order, and the first bad one stops the call with its errno and the count of entries that took
 * effect. Returns the number of entries handled; no entries only probes the data type. An
 * `arm-smmuv3` nested HWPT has no invalidation of its own (EOPNOTSUPP: the kernel's SMMUv3 nested
 * domain has no cache_invalidate_user); a vIOMMU target goes to {@link viommuInvalidate} (the
 * SMMUv3 CMDQ format, or the selftest vIOMMU's).
 *
 * - `selftest`: unknown flags EOPNOTSUPP, a slot above 3 EINVAL; `all` clears every slot.
 * - `vtd-s1` ({@link VtdS1Invalidation}): unknown flags EOPNOTSUPP; an address that is not 4 KiB
 *   aligned, or npages = U64_MAX with a non-zero address, EINVAL. (0, U64_MAX) flushes the whole
 *   domain; otherwise the range. The IOTLB entries of the nested domain go, and the device-TLBs of
 *   its ATS devices are flushed automatically, as intel_nested_cache_invalidate_user does.
 *   npages = 0 takes effect as nothing.
 */
export function hwptInvalidate(ctx: IommufdCtx, hwptId: number, dataType: string, entries: readonly unknown[]): number {
  const obj = ctx.objects.get(hwptId);
  if (obj.type === 'viommu') return viommuInvalidate(ctx, hwptId, dataType, entries);
  if (obj.type !== 'hwpt-nested')
    throw new InvalidateError(new IommufdError('EINVAL', `HWPT ${hwptId} is not a nested HWPT`), 0);
  // The SMMUv3 nested domain has no cache_invalidate_user: its invalidations go to the vIOMMU.
  if (obj.dataType === 'arm-smmuv3')
    throw new InvalidateError(
      new IommufdError('EOPNOTSUPP', `an arm-smmuv3 nested HWPT is invalidated on its vIOMMU`),
      0,
    );
  if (dataType !== obj.dataType)
    throw new InvalidateError(new IommufdError('EINVAL', `data type ${dataType} is not this HWPT's`), 0);
  // A software-nested domain's ranges are batched into one op list for the shards, run before
  // the call returns, or before a failing entry's error (the entries before it take effect).
  const batch: number[] | undefined = obj.vtd !== undefined && isShadowed(ctx, obj.descriptor) ? [] : undefined;
  const flush = (): void => {
    if (batch !== undefined && batch.length > 0) syncShadowRanges(ctx, obj.descriptor, 0, batch.splice(0));
  };
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as { flags?: unknown } | null;
    try {
      if (typeof e !== 'object' || e === null) throw new IommufdError('EINVAL', 'not an object');
      const flags = e.flags ?? {};
      if (typeof flags !== 'object' || flags === null) throw new IommufdError('EINVAL', 'flags must be an object');
      if (obj.dataType === 'selftest') selftestEntry(obj, e as { iotlbId?: unknown }, flags as Record<string, unknown>);
      else vtdS1Entry(ctx, obj, e, flags as Record<string, unknown>, batch, flush);
    } catch (err) {
      flush();
      if (err instanceof IommufdError)
        throw new InvalidateError(
          new IommufdError(
            err.errno,
            `entry ${i}: ${err.message.replace(/^[A-Z]+: /, '').replace(/^entry \d+: /, '')}`,
          ),
          i,
        );
      throw err;
    }
  }
  flush();
  return entries.length;
}

function selftestEntry(obj: HwptNestedObject, e: { iotlbId?: unknown }, flags: Record<string, unknown>): void {
  if (Object.keys(flags).some((k) => k !== 'all')) throw new IommufdError('EOPNOTSUPP', 'unknown invalidation flag');
  if (flags['all'] === true) {
    obj.iotlb.fill(0);
    return;
  }
  const id = e.iotlbId;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MOCK_NESTED_IOTLB_SLOTS) {
    throw new IommufdError('EINVAL', `iotlbId ${String(id)} is not 0..3`);
  }
  obj.iotlb[id] = 0;
}

function vtdS1Entry(
  ctx: IommufdCtx,
  obj: HwptNestedObject,
  e: Record<string, unknown>,
  flags: Record<string, unknown>,
  batch: number[] | undefined,
  flush: () => void,
): void {
  if (Object.keys(flags).some((k) => k !== 'leaf'))
    throw new IommufdError('EOPNOTSUPP', 'unknown vtd-s1 invalidation flag');
  const addr = argU64OrInt('addr', e['addr']);
  const npages = argU64OrInt('npages', e['npages']);
  if (addr % 4096n !== 0n) throw new IommufdError('EINVAL', `addr 0x${addr.toString(16)} is not 4 KiB aligned`);
  if (npages === VTD_S1_ALL_PAGES && addr !== 0n)
    throw new IommufdError('EINVAL', 'npages U64_MAX needs addr 0 (everything)');
  if (npages === VTD_S1_ALL_PAGES || addr + npages * 4096n > 2n ** 53n) {
    flush();
    flushDescriptor(ctx, obj.descriptor);
  } else if (npages === 0n) return;
  else if (batch !== undefined) batch.push(Number(addr), Number(npages) * 4096);
  else invalidateDescriptorRange(ctx, obj.descriptor, Number(addr), Number(npages) * 4096);
}
