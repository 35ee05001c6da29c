import { U64_MAX } from '../util/args.js';
import { bindFault } from './fault.js';
import { IommufdError } from '../util/errors.js';
import { DOMAIN_SHADOW, DomainFormat, packArmNestedConfig } from '../translate/index.js';
import type { IommufdCtx } from './context.js';
import { publishDescriptor } from './descriptors.js';
import { selftestIotlb } from './hwpt-nested.js';
import type { HwptFlags, NestingMode } from './hwpt.js';
import {
  MOCK_NESTED_IOTLB_SLOTS,
  type ArmVste,
  type DeviceObject,
  type HwptNestedObject,
  type IommuKind,
  type VdeviceObject,
  type ViommuObject,
  type ViommuType,
} from './objects.js';

/*
 * vIOMMU and vDEVICE objects (reference/iommufd.md §2 IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC,
 * HWPT_ALLOC with pt_id = VIOMMU; §3 "ARM SMMUv3" for the vSTE), after the kernel's viommu.c,
 * hw_pagetable.c and arm-smmu-v3-iommufd.c.
 */

/** Which driver offers each vIOMMU type (`ops->get_viommu_size` returning non-zero). */
const VIOMMU_DRIVER: Record<ViommuType, IommuKind> = { 'arm-smmuv3': 'smmuv3', selftest: 'mock' };

/** VMIDs are 16 bits (SMMU_IDR0.VMID16); 0 is never handed out. */
const MAX_VMID = 0xffff;

/**
 * IOMMU_VIOMMU_ALLOC, after the argument checks of the public API (flags EOPNOTSUPP, an unknown
 * type EOPNOTSUPP). In the kernel's order: the device (ENOENT); a driver without this vIOMMU type
 * (EOPNOTSUPP); the HWPT must be a paging HWPT (ENOENT) that is a nest parent (EINVAL) of the
 * device's driver (EINVAL, as arm_vsmmu_init's `s2_parent->smmu != smmu`). The vIOMMU holds a
 * reference on the parent and gets the lowest VMID no other vIOMMU uses.
 */
export function viommuAlloc(
  ctx: IommufdCtx,
  a: { devId: number; hwptId: number; type: ViommuType; nesting?: NestingMode | undefined },
): number {
  const dev = ctx.objects.get(a.devId, 'device');
  if (VIOMMU_DRIVER[a.type] !== dev.kind) {
    throw new IommufdError('EOPNOTSUPP', `the ${dev.kind} driver has no ${a.type} vIOMMU`);
  }
  const parent = ctx.objects.get(a.hwptId, 'hwpt-paging');
  if (!parent.nestParent) throw new IommufdError('EINVAL', `HWPT ${parent.id} is not a nest parent`);
  if (parent.kind !== dev.kind) {
    throw new IommufdError('EINVAL', `HWPT ${parent.id} belongs to the ${parent.kind} driver, not ${dev.kind}`);
  }
  if (a.nesting === 'software' && ctx.shadow === undefined)
    throw new IommufdError('EOPNOTSUPP', 'software nesting needs the IOTLB (the shadow lives under it)');
  const used = new Set<number>();
  for (const o of ctx.objects.all()) if (o.type === 'viommu') used.add(o.vmid);
  let vmid = 1;
  while (used.has(vmid)) vmid++;
  if (vmid > MAX_VMID) throw new IommufdError('ENOSPC', 'no free VMID');
  return ctx.atomically((undo) => {
    const id = ctx.objects.reserve();
    undo.push(() => ctx.objects.remove(id));
    ctx.faults.step('viommu allocation');
    const viommu: ViommuObject = {
      type: 'viommu',
      id,
      users: 1,
      viommuType: a.type,
      kind: dev.kind,
      parent,
      vmid,
      vdevs: new Map(),
      softwareNesting: a.nesting === 'software',
    };
    parent.users++;
    ctx.objects.finalize(viommu);
    return id;
  });
}

/** Destroys a vIOMMU (nothing references it any more): the parent's reference drops. */
export function viommuDestroy(ctx: IommufdCtx, viommu: ViommuObject): void {
  viommu.parent.users--;
  ctx.objects.remove(viommu.id);
}

/**
 * IOMMU_VDEVICE_ALLOC, after the public API checked that `virtId` is a u64 (EINVAL). In the
 * kernel's order: the vIOMMU, then the device (ENOENT); the device must sit behind the vIOMMU's
 * IOMMU (EINVAL); the device must not have a vDEVICE yet (EEXIST); the virtual ID must be free in
 * this vIOMMU (EEXIST, found after the id was reserved, which is then given back). The vDEVICE
 * holds a reference on the vIOMMU; the device's unbind destroys it (see {@link vdeviceRevoke}).
 */
export function vdeviceAlloc(ctx: IommufdCtx, a: { viommuId: number; devId: number; virtId: bigint }): number {
  const viommu = ctx.objects.get(a.viommuId, 'viommu');
  const dev = ctx.objects.get(a.devId, 'device');
  if (dev.kind !== viommu.kind) {
    throw new IommufdError('EINVAL', `device ${dev.id} is behind ${dev.kind}, the vIOMMU behind ${viommu.kind}`);
  }
  if (dev.vdevice !== undefined) {
    throw new IommufdError('EEXIST', `device ${dev.id} already has vDEVICE ${dev.vdevice.id}`);
  }
  return ctx.atomically((undo) => {
    const id = ctx.objects.reserve();
    undo.push(() => ctx.objects.remove(id));
    ctx.faults.step('vdevice allocation');
    if (viommu.vdevs.has(a.virtId)) {
      throw new IommufdError('EEXIST', `virtual ID 0x${a.virtId.toString(16)} is in use on vIOMMU ${viommu.id}`);
    }
    const vdev: VdeviceObject = { type: 'vdevice', id, users: 1, viommu, dev, virtId: a.virtId };
    viommu.vdevs.set(a.virtId, vdev);
    viommu.users++;
    dev.vdevice = vdev;
    ctx.objects.finalize(vdev);
    return id;
  });
}

function vdeviceUnlink(vdev: VdeviceObject): void {
  vdev.viommu.vdevs.delete(vdev.virtId);
  vdev.viommu.users--;
  vdev.dev.vdevice = undefined;
}

/** Destroys a vDEVICE (IOMMU_DESTROY): the vIOMMU's reference drops and the virtual ID is free again. */
export function vdeviceDestroy(ctx: IommufdCtx, vdev: VdeviceObject): void {
  vdeviceUnlink(vdev);
  ctx.objects.remove(vdev.id);
}

/**
 * The device is going away (unbind): as iommufd_device_pre_destroy, its vDEVICE is destroyed and
 * its id left as a tombstone, so that IOMMU_DESTROY of it is ENOENT and the id is not reused until
 * the fd closes.
 */
export function vdeviceRevoke(ctx: IommufdCtx, dev: DeviceObject): void {
  const vdev = dev.vdevice;
  if (vdev === undefined) return;
  vdeviceUnlink(vdev);
  ctx.objects.tombstone(vdev.id);
}

/** The device with virtual ID `virtId` on a vIOMMU (`iommufd_viommu_find_dev`); ENOENT if none. */
export function viommuFindDev(ctx: IommufdCtx, viommuId: number, virtId: bigint): number {
  const viommu = ctx.objects.get(viommuId, 'viommu');
  const vdev = viommu.vdevs.get(virtId);
  if (vdev === undefined) {
    throw new IommufdError('ENOENT', `no vDEVICE with virtual ID 0x${virtId.toString(16)} on vIOMMU ${viommuId}`);
  }
  return vdev.dev.id;
}

/** Whether vIOMMU `viommuId` exists and has a vDEVICE with virtual ID `virtId`; never throws. */
export function viommuHasVdev(ctx: IommufdCtx, viommuId: number, virtId: bigint): boolean {
  const o = ctx.objects.find(viommuId);
  return o?.type === 'viommu' && o.vdevs.has(virtId);
}

/** What {@link viommuInfo} reports. */
export interface ViommuInfo {
  /** IOMMU_VIOMMU_TYPE_*. */
  type: ViommuType;
  /** The nest-parent HWPT. */
  hwptId: number;
  /** The vIOMMU's VMID. */
  vmid: number;
  /** Its vDEVICEs, by virtual ID. */
  vdevices: { vdeviceId: number; devId: number; virtId: bigint }[];
}

/** A vIOMMU's type, parent, VMID and vDEVICEs; ENOENT for another object. */
export function viommuInfo(ctx: IommufdCtx, viommuId: number): ViommuInfo {
  const v = ctx.objects.get(viommuId, 'viommu');
  return {
    type: v.viommuType,
    hwptId: v.parent.id,
    vmid: v.vmid,
    vdevices: [...v.vdevs.values()]
      .sort((x, y) => (x.virtId < y.virtId ? -1 : x.virtId > y.virtId ? 1 : 0))
      .map((d) => ({ vdeviceId: d.id, devId: d.dev.id, virtId: d.virtId })),
  };
}

// ---- SMMUv3 vSTE (struct iommu_hwpt_arm_smmuv3) ------------------------------------------------

/** The data of an `arm-smmuv3` nested HWPT: the guest's STE, little-endian words 0 and 1. */
export interface ArmSmmuv3Data {
  /** STE words 0 and 1 (u64 each). */
  ste: readonly [bigint, bigint];
}

const STE0_V = 1n;
const STE0_CFG_SHIFT = 1n;
const STE0_S1FMT_SHIFT = 4n;
const STE0_S1CTXPTR_MASK = ((1n << 52n) - 1n) & ~((1n << 6n) - 1n); // bits 51:6
const STE0_S1CDMAX_SHIFT = 59n;
/** STRTAB_STE_0_NESTING_ALLOWED: V, Config, S1Fmt, S1ContextPtr, S1CDMax. */
const STE0_NESTING_ALLOWED =
  STE0_V | (7n << STE0_CFG_SHIFT) | (3n << STE0_S1FMT_SHIFT) | STE0_S1CTXPTR_MASK | (31n << 59n);
const STE1_S1STALLD = 1n << 27n;
const STE1_EATS_SHIFT = 28n;
const STE1_EATS = 3n << STE1_EATS_SHIFT;
/** STRTAB_STE_1_NESTING_ALLOWED: S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS. */
const STE1_NESTING_ALLOWED = 0xffn | STE1_S1STALLD | STE1_EATS;
const CFG_ABORT = 0n;
const CFG_BYPASS = 4n;
const CFG_S1_TRANS = 5n;
const EATS_ABT = 0n;
const EATS_TRANS = 1n;

/**
 * arm_smmu_validate_vste, then what arm_vsmmu_alloc_domain_nested keeps. The data must be
 * `{ ste: [u64, u64] }` (EINVAL, as a malformed copy). V = 0: a non-valid vSTE, kept as all zero
 * (installed as abort). Otherwise any bit outside the nesting-allowed fields, a Config other than
 * abort / bypass / s1-trans, or EATS other than abort / trans is EIO. ATS is enabled only for
 * s1-trans with EATS = trans.
 */
export function parseArmVste(data: unknown): ArmVste {
  const ste = (data as { ste?: unknown } | null)?.ste;
  if (
    typeof data !== 'object' ||
    data === null ||
    !Array.isArray(ste) ||
    ste.length !== 2 ||
    !ste.every((w) => typeof w === 'bigint' && w >= 0n && w <= U64_MAX)
  ) {
    throw new IommufdError('EINVAL', 'arm-smmuv3 data must be { ste: [u64 bigint, u64 bigint] }');
  }
  let [w0, w1] = ste as [bigint, bigint];
  const valid = (w0 & STE0_V) !== 0n;
  if (!valid) {
    w0 = 0n;
    w1 = 0n;
  }
  if ((w0 & ~STE0_NESTING_ALLOWED) !== 0n || (w1 & ~STE1_NESTING_ALLOWED) !== 0n) {
    throw new IommufdError('EIO', 'the vSTE sets fields a nested STE may not set');
  }
  const cfg = (w0 >> STE0_CFG_SHIFT) & 7n;
  if (cfg !== CFG_ABORT && cfg !== CFG_BYPASS && cfg !== CFG_S1_TRANS) {
    throw new IommufdError('EIO', `vSTE Config ${cfg} is not abort (0), bypass (4) or S1 translate (5)`);
  }
  const eats = (w1 & STE1_EATS) >> STE1_EATS_SHIFT;
  if (eats !== EATS_ABT && eats !== EATS_TRANS)
    throw new IommufdError('EIO', `vSTE EATS ${eats} is not abort or trans`);
  return {
    ste: [w0, w1 & ~STE1_EATS],
    valid,
    config: cfg === CFG_S1_TRANS ? 's1-trans' : cfg === CFG_BYPASS ? 'bypass' : 'abort',
    s1Fmt: Number((w0 >> STE0_S1FMT_SHIFT) & 3n),
    s1ContextPtr: w0 & STE0_S1CTXPTR_MASK,
    s1CdMax: Number((w0 >> STE0_S1CDMAX_SHIFT) & 31n),
    s1Dss: Number(w1 & 3n),
    s1Cir: Number((w1 >> 2n) & 3n),
    s1Cor: Number((w1 >> 4n) & 3n),
    s1Csh: Number((w1 >> 6n) & 3n),
    s1Stalld: (w1 & STE1_S1STALLD) !== 0n,
    eats: eats === EATS_TRANS ? 'trans' : 'abort',
    enableAts: cfg === CFG_S1_TRANS && eats === EATS_TRANS,
  };
}

/**
 * HWPT_ALLOC with pt_id = a vIOMMU (`iommufd_viommu_alloc_hwpt_nested` and the driver's
 * alloc_domain_nested). The device must sit behind the vIOMMU's IOMMU (EINVAL); NEST_PARENT or
 * DIRTY_TRACKING, or no data, is EOPNOTSUPP. Then the driver: `arm-smmuv3` takes no flags at all
 * (PASID: EOPNOTSUPP), data type `arm-smmuv3` (EINVAL otherwise) and a vSTE
 * ({@link parseArmVste}: EIO for bad contents); `selftest` takes PASID and `selftest` data. A
 * fault queue id is ENOENT (no FAULT objects yet), checked last as in the core. The nested HWPT
 * holds a reference on the vIOMMU (not on the parent directly). An `arm-smmuv3` one is published
 * as an ArmNested descriptor over the parent's (translate/arm-nested.ts), so a device attached to
 * it translates through the vSTE; a `selftest` one has none (descriptor 0).
 */
export function viommuHwptNestedAlloc(
  ctx: IommufdCtx,
  dev: DeviceObject,
  viommu: ViommuObject,
  a: { flags: HwptFlags; dataType: string; data: unknown; faultId: number | undefined },
): number {
  if (dev.kind !== viommu.kind) {
    throw new IommufdError('EINVAL', `device ${dev.id} is not behind the IOMMU of vIOMMU ${viommu.id}`);
  }
  if (a.flags.nestParent === true || a.flags.dirtyTracking === true || a.dataType === 'none') {
    throw new IommufdError('EOPNOTSUPP', 'nested HWPT on a vIOMMU: unsupported flags or no data');
  }
  const arm = viommu.viommuType === 'arm-smmuv3';
  if (arm && a.flags.pasid === true) throw new IommufdError('EOPNOTSUPP', 'an arm-smmuv3 nested HWPT takes no flags');
  const expected = arm ? 'arm-smmuv3' : 'selftest';
  if (a.dataType !== expected) {
    throw new IommufdError('EINVAL', `a ${viommu.viommuType} vIOMMU takes ${expected} data, not ${a.dataType}`);
  }
  const vste = arm ? parseArmVste(a.data) : undefined;
  const iotlb = arm ? 0 : selftestIotlb(a.data);
  return ctx.atomically((undo) => {
    const id = ctx.objects.reserve();
    undo.push(() => ctx.objects.remove(id));
    ctx.faults.step('nested domain allocation');
    let descriptor = 0;
    if (vste !== undefined) {
      const parent = viommu.parent.domain;
      descriptor = publishDescriptor(
        ctx,
        DomainFormat.ArmNested,
        Number(vste.s1ContextPtr),
        packArmNestedConfig(vste),
        parent.descriptor,
        viommu.softwareNesting || viommu.parent.softwareNesting ? DOMAIN_SHADOW : 0,
      );
      parent.nested.add(descriptor);
      undo.push(() => {
        parent.nested.delete(descriptor);
        ctx.tables.recycleDomain(descriptor);
      });
    }
    const hwpt: HwptNestedObject = {
      type: 'hwpt-nested',
      id,
      users: 1,
      parent: viommu.parent,
      viommu,
      kind: dev.kind,
      dataType: expected,
      iotlb: arm ? [] : new Array<number>(MOCK_NESTED_IOTLB_SLOTS).fill(iotlb),
      vtd: undefined,
      vste,
      descriptor,
      pasidCompat: a.flags.pasid === true,
    };
    if (a.faultId !== undefined) bindFault(ctx, hwpt, a.faultId, undo);
    viommu.users++;
    ctx.objects.finalize(hwpt);
    return id;
  });
}

/**
 * The vIOMMU part of attaching `dev` to a vIOMMU-based nested HWPT, after the core's checks: the
 * device needs a vDEVICE on that vIOMMU (ENOENT; the SMMUv3 driver lets an abort or bypass vSTE
 * attach without one, as arm_smmu_attach_prepare_vmaster does for the GBPA case). Then the device
 * translates through the HWPT's descriptor (an `arm-smmuv3` vSTE's, translate/arm-nested.ts).
 */
export function checkViommuAttach(hwpt: HwptNestedObject, dev: DeviceObject): void {
  const viommu = hwpt.viommu;
  if (viommu === undefined) return;
  const hasVdev = dev.vdevice !== undefined && dev.vdevice.viommu === viommu;
  const needsVdev = hwpt.vste === undefined || hwpt.vste.config === 's1-trans';
  if (!hasVdev && needsVdev) {
    throw new IommufdError('ENOENT', `device ${dev.id} has no vDEVICE on vIOMMU ${viommu.id}`);
  }
}
