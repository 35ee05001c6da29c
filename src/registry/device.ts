import { Iotlb } from '../cache/index.js';
import { DEV_ATS, NO_PASID } from '../translate/index.js';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import { atcSpansPasids } from './descriptors.js';
import { faultDetach } from './fault.js';
import { DRIVERS } from './domain.js';
import { hwptPagingAlloc, hwptPut } from './hwpt.js';
import { checkNestedAttach, hwptDescriptor, hwptIoas } from './hwpt-nested.js';
import { MOCK_DEV_CACHE_DEFAULT, MOCK_DEV_CACHE_SLOTS } from './objects.js';
import type { AttachableHwpt, DeviceObject, IommuKind, Range } from './objects.js';
import { checkViommuAttach, vdeviceRevoke } from './viommu.js';

/** Arguments of device bind. */
export interface BindArgs {
  iommu: IommuKind;
  sid?: number | undefined;
  pasidBits?: number | undefined;
  ats?: boolean | undefined;
  pri?: boolean | undefined;
  dirtyTracking?: boolean | undefined;
  pasidExec?: boolean | undefined;
  pasidPriv?: boolean | undefined;
  reservedRegions?: Range[] | undefined;
}

/** The largest PASID width (PCIe: 20 bits). */
export const MAX_PASID_BITS = 20;

/** Binds a device (VFIO_DEVICE_BIND_IOMMUFD). The driver keeps a reference until unbind. */
export function deviceBind(ctx: IommufdCtx, a: BindArgs): number {
  const sid = a.sid ?? ctx.nextSid;
  for (const o of ctx.objects.all()) {
    if (o.type === 'device' && o.kind === a.iommu && o.sid === sid) {
      throw new IommufdError('EBUSY', `sid ${sid} is already bound behind ${a.iommu}`);
    }
  }
  return ctx.atomically((undo) => {
    const id = ctx.objects.reserve();
    undo.push(() => ctx.objects.remove(id));
    ctx.faults.step('device context allocation');
    const slot = ctx.tables.allocDevice(a.pasidBits ?? 0, a.ats === true ? DEV_ATS : 0);
    if (slot < 0) throw new IommufdError('ENOMEM', 'device context table is full');
    const dev: DeviceObject = {
      type: 'device',
      id,
      users: 2,
      kind: a.iommu,
      sid,
      pasidBits: a.pasidBits ?? 0,
      ats: a.ats === true,
      pri: a.pri === true,
      dirtyTracking: a.dirtyTracking ?? a.iommu === 'mock',
      pasidExec: a.pasidExec === true,
      pasidPriv: a.pasidPriv === true,
      reservedRegions: [...DRIVERS[a.iommu].reservedRegions, ...(a.reservedRegions ?? [])].map((r) => ({ ...r })),
      slot,
      rid: undefined,
      pasids: new Map(),
      vdevice: undefined,
      cache: a.iommu === 'mock' ? new Array<number>(MOCK_DEV_CACHE_SLOTS).fill(MOCK_DEV_CACHE_DEFAULT) : [],
    };
    ctx.objects.finalize(dev);
    if (a.sid === undefined) ctx.nextSid = sid + 1;
    else if (sid >= ctx.nextSid) ctx.nextSid = sid + 1;
    return id;
  });
}

/**
 * Unbinds a device: its vDEVICE is destroyed and its id left a tombstone (ENOENT from then on, not
 * reused until the fd closes), as iommufd_device_pre_destroy does; then the RID and every PASID
 * are detached, and the device is destroyed.
 */
export function deviceUnbind(ctx: IommufdCtx, devId: number): void {
  const dev = ctx.objects.get(devId, 'device');
  vdeviceRevoke(ctx, dev);
  for (const pasid of [...dev.pasids.keys()]) deviceDetach(ctx, dev, pasid);
  deviceDetach(ctx, dev, NO_PASID);
  dev.users--;
  ctx.tables.freeDevice(dev.slot);
  ctx.atc?.resetTag(dev.slot); // a reused slot must not find this device's ATC entries
  ctx.objects.remove(dev.id);
}

function attached(dev: DeviceObject, pasid: number): AttachableHwpt | undefined {
  return pasid === NO_PASID ? dev.rid : dev.pasids.get(pasid);
}

function alreadyAttached(dev: DeviceObject, pasid: number): IommufdError {
  const what = pasid === NO_PASID ? 'RID' : `PASID ${pasid}`;
  return new IommufdError('EBUSY', `device ${dev.id} ${what} is already attached; use replace`);
}

function checkPasid(dev: DeviceObject, pasid: number): void {
  if (pasid === NO_PASID) return;
  if (dev.pasidBits === 0) throw new IommufdError('EINVAL', `device ${dev.id} has no PASID support`);
  if (!Number.isInteger(pasid) || pasid < 1 || pasid >= 2 ** dev.pasidBits) {
    throw new IommufdError('EINVAL', `pasid ${pasid} is outside [1, 2^${dev.pasidBits})`);
  }
}

/** `iommufd_hwpt_pasid_compat`, plus the dirty-tracking and driver checks of attach. */
function checkCompat(dev: DeviceObject, pasid: number, hwpt: AttachableHwpt): void {
  if (hwpt.kind !== dev.kind) throw new IommufdError('EINVAL', `HWPT ${hwpt.id} belongs to another IOMMU driver`);
  if (hwpt.type === 'hwpt-nested') {
    checkViommuAttach(hwpt, dev);
    checkNestedAttach(hwpt);
  } else if (hwpt.dirtyTracking && !dev.dirtyTracking)
    throw new IommufdError('EINVAL', `device ${dev.id} cannot track dirty pages`);
  if (pasid === NO_PASID) {
    if (!hwpt.pasidCompat && dev.pasids.size > 0) {
      throw new IommufdError('EINVAL', `PASIDs are attached, so the RID needs a PASID-compatible HWPT`);
    }
  } else {
    if (!hwpt.pasidCompat) throw new IommufdError('EINVAL', `HWPT ${hwpt.id} was not allocated for PASID use`);
    if (dev.rid !== undefined && !dev.rid.pasidCompat) {
      throw new IommufdError('EINVAL', `the RID's HWPT ${dev.rid.id} is not PASID-compatible`);
    }
  }
}

/** Adds the device's reserved regions to the IOAS of `hwpt` (a RID attach). */
function reserveRegions(dev: DeviceObject, hwpt: AttachableHwpt, undo: (() => void)[]): void {
  const iopt = hwptIoas(hwpt).iopt;
  undo.push(() => iopt.unreserve(dev));
  for (const r of dev.reservedRegions) iopt.reserve(r.start, r.last, dev);
}

/** Publishes the domain for the device's RID or PASID in the shared context tables. */
function publish(ctx: IommufdCtx, dev: DeviceObject, pasid: number, hwpt: AttachableHwpt | undefined): void {
  const d = hwpt === undefined ? 0 : hwptDescriptor(hwpt);
  if (pasid !== NO_PASID) ctx.tables.setPasidDomain(dev.slot, pasid, d);
  else ctx.tables.setRidDomain(dev.slot, d);
  if (!dev.ats) return;
  // Replace and detach drop the device's ATC entries for this RID or PASID (DESIGN.md "Nesting,
  // shadow updates and replace"), and the domains' unmaps learn which ATC tags they must
  // invalidate.
  const tag = Iotlb.tagWord(dev.slot, pasid === NO_PASID ? 0 : pasid);
  const old = attached(dev, pasid);
  // A vSTE domain (old or new) serves every SubstreamID through the RID: all of the device's
  // PASID tags go.
  const every = (old !== undefined && atcSpansPasids(ctx, hwptDescriptor(old))) || (d !== 0 && atcSpansPasids(ctx, d));
  if (every) ctx.atc?.flushTag(dev.slot);
  else ctx.atc?.flushAsid(tag);
  if (old !== undefined) ctx.atsDevices.get(hwptDescriptor(old))?.delete(tag);
  if (d !== 0) {
    let set = ctx.atsDevices.get(d);
    if (set === undefined) ctx.atsDevices.set(d, (set = new Set()));
    set.add(tag);
  }
}

/** `iommufd_hw_pagetable_attach` for one device. */
function attachHwpt(
  ctx: IommufdCtx,
  dev: DeviceObject,
  pasid: number,
  hwpt: AttachableHwpt,
  undo: (() => void)[],
): void {
  if (attached(dev, pasid) !== undefined) throw alreadyAttached(dev, pasid);
  // As iommufd_hw_pagetable_attach: reserved regions (EADDRINUSE) before the driver's checks (EINVAL).
  if (pasid === NO_PASID) reserveRegions(dev, hwpt, undo);
  checkCompat(dev, pasid, hwpt);
  if (pasid !== NO_PASID) undo.push(ctx.tables.preparePasid(dev.slot, pasid));
  ctx.faults.step('attach device');
  publish(ctx, dev, pasid, hwpt);
  if (pasid === NO_PASID) dev.rid = hwpt;
  else dev.pasids.set(pasid, hwpt);
  hwpt.users++;
  dev.users++;
}

/** Resolves `ptId` to a HWPT for attach or replace, creating an auto domain for an IOAS. */
function resolveTarget(
  ctx: IommufdCtx,
  dev: DeviceObject,
  pasid: number,
  ptId: number,
  tryHwpt: (hwpt: AttachableHwpt, undo: (() => void)[]) => void,
  undo: (() => void)[],
): AttachableHwpt {
  const pt = ctx.objects.get(ptId);
  if (pt.type === 'hwpt-paging' || pt.type === 'hwpt-nested') {
    tryHwpt(pt, undo);
    return pt;
  }
  if (pt.type !== 'ioas') throw new IommufdError('EINVAL', `ptId ${ptId} is not an IOAS or a HWPT`);
  // iommufd_device_auto_get_domain: any compatible auto domain of the IOAS will do; EINVAL from
  // an attempt means "incompatible, try the next".
  for (const hwpt of [...pt.hwpts]) {
    if (!hwpt.autoDomain) continue;
    const local: (() => void)[] = [];
    try {
      tryHwpt(hwpt, local);
      undo.push(...local);
      return hwpt;
    } catch (e) {
      for (let i = local.length - 1; i >= 0; i--) local[i]!();
      if (e instanceof IommufdError && e.errno === 'EINVAL') continue;
      throw e;
    }
  }
  const hwpt = hwptPagingAlloc(ctx, pt, dev, {}, true, undo);
  tryHwpt(hwpt, undo);
  ctx.objects.finalize(hwpt);
  return hwpt;
}

/** Attach (VFIO_DEVICE_ATTACH_IOMMUFD_PT): returns the HWPT id now attached. */
export function deviceAttach(ctx: IommufdCtx, devId: number, ptId: number, pasid: number): number {
  const dev = ctx.objects.get(devId, 'device');
  checkPasid(dev, pasid);
  // As iommufd_device_change_pt: the pt_id lookup (ENOENT) and its type (EINVAL) come first, then
  // the device's slot in the group's attach array (EBUSY), before any domain is tried or allocated.
  const pt = ctx.objects.get(ptId);
  if (pt.type !== 'ioas' && pt.type !== 'hwpt-paging' && pt.type !== 'hwpt-nested')
    throw new IommufdError('EINVAL', `ptId ${ptId} is not an IOAS or a HWPT`);
  if (attached(dev, pasid) !== undefined) throw alreadyAttached(dev, pasid);
  return ctx.atomically((undo) => {
    const hwpt = resolveTarget(ctx, dev, pasid, ptId, (h, u) => attachHwpt(ctx, dev, pasid, h, u), undo);
    return hwpt.id;
  });
}

/**
 * Replace: switches the RID or PASID to another HWPT in one store, never through a blocking
 * state; on failure the old HWPT stays. Reserved regions move only if the IOAS changes.
 */
export function deviceReplace(ctx: IommufdCtx, devId: number, ptId: number, pasid: number): number {
  const dev = ctx.objects.get(devId, 'device');
  checkPasid(dev, pasid);
  const old = attached(dev, pasid);
  return ctx.atomically((undo) => {
    const doReplace = (hwpt: AttachableHwpt, u: (() => void)[]): void => {
      if (old === undefined) throw new IommufdError('EINVAL', `device ${dev.id} is not attached; use attach`);
      if (hwpt === old) return;
      // As iommufd_device_do_replace: reserved regions first, then the driver's checks.
      const ioasChanges = pasid === NO_PASID && hwptIoas(hwpt) !== hwptIoas(old);
      if (ioasChanges) reserveRegions(dev, hwpt, u);
      checkCompat(dev, pasid, hwpt);
      ctx.faults.step('replace device');
    };
    const hwpt = resolveTarget(ctx, dev, pasid, ptId, doReplace, undo);
    if (hwpt === old || old === undefined) return hwpt.id;
    // Commit: nothing below can fail.
    publish(ctx, dev, pasid, hwpt);
    if (pasid === NO_PASID) {
      if (hwptIoas(hwpt) !== hwptIoas(old)) hwptIoas(old).iopt.unreserve(dev);
      dev.rid = hwpt;
    } else {
      dev.pasids.set(pasid, hwpt);
    }
    hwpt.users++;
    undo.length = 0;
    // Replaced away from a fault-capable HWPT: its pending groups are answered INVALID.
    faultDetach(dev, pasid, old);
    hwptPut(ctx, old);
    return hwpt.id;
  });
}

/** Detach: a RID or PASID that is not attached is a silent no-op. */
export function deviceDetach(ctx: IommufdCtx, dev: DeviceObject, pasid: number): void {
  const old = attached(dev, pasid);
  if (old === undefined) return;
  publish(ctx, dev, pasid, undefined);
  faultDetach(dev, pasid, old);
  if (pasid === NO_PASID) {
    hwptIoas(old).iopt.unreserve(dev);
    dev.rid = undefined;
  } else {
    dev.pasids.delete(pasid);
  }
  dev.users--;
  hwptPut(ctx, old);
}

/** Public detach by id. */
export function deviceDetachById(ctx: IommufdCtx, devId: number, pasid: number): void {
  const dev = ctx.objects.get(devId, 'device');
  checkPasid(dev, pasid);
  deviceDetach(ctx, dev, pasid);
}

/** IOMMU_GET_HW_INFO. */
export function getHwInfo(
  ctx: IommufdCtx,
  devId: number,
): {
  type: string;
  maxPasidLog2: number;
  capabilities: { dirtyTracking: boolean; pasidExec: boolean; pasidPriv: boolean };
} {
  const dev = ctx.objects.get(devId, 'device');
  return {
    type: DRIVERS[dev.kind].hwInfoType,
    maxPasidLog2: dev.pasidBits,
    capabilities: {
      dirtyTracking: dev.dirtyTracking,
      pasidExec: dev.pasidBits > 0 && dev.pasidExec,
      pasidPriv: dev.pasidBits > 0 && dev.pasidPriv,
    },
  };
}
