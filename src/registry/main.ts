import { IommufdError } from '../util/errors.js';
import type { DestroyOps, IommufdCtx } from './context.js';
import { deviceUnbind } from './device.js';
import { faultDestroy } from './fault.js';
import { veventqDestroy } from './veventq.js';
import { hwptPagingDestroy } from './hwpt.js';
import { hwptDescriptor, hwptNestedDestroy } from './hwpt-nested.js';
import { ioasDestroy, ioasOptionHugePages } from './ioas.js';
import type { IommufdObject } from './objects.js';
import { vdeviceDestroy, viommuDestroy } from './viommu.js';

/** Destroy, per object kind (keep sorted). */
const DESTROY_OPS: DestroyOps = {
  device: (ctx, dev) => deviceUnbind(ctx, dev.id),
  fault: faultDestroy,
  'hwpt-nested': hwptNestedDestroy,
  'hwpt-paging': hwptPagingDestroy,
  ioas: ioasDestroy,
  vdevice: vdeviceDestroy,
  veventq: veventqDestroy,
  viommu: viommuDestroy,
};

function destroyObject(ctx: IommufdCtx, obj: IommufdObject): void {
  (DESTROY_OPS[obj.type] as (c: IommufdCtx, o: IommufdObject) => void)(ctx, obj);
}

/**
 * IOMMU_DESTROY: succeeds only when the table holds the only reference (EBUSY otherwise);
 * unknown ids and id 0 are ENOENT. It never waits.
 */
export function destroy(ctx: IommufdCtx, id: number): void {
  const obj = ctx.objects.get(id);
  if (obj.users !== 1) throw new IommufdError('EBUSY', `object ${id} (${obj.type}) is in use`);
  destroyObject(ctx, obj);
}

/** Tears everything down, as closing the fd does: devices first, then leaves before their parents. */
export function destroyAll(ctx: IommufdCtx): void {
  for (const o of ctx.objects.all()) if (o.type === 'device') deviceUnbind(ctx, o.id);
  // The queues' handles (the kernel's anon fds) go with the iommufd here.
  for (const o of ctx.objects.all()) if (o.type === 'fault' || o.type === 'veventq') o.queue.close();
  for (let progress = true; progress;) {
    progress = false;
    for (const o of ctx.objects.all()) {
      if (o.users === 1) {
        destroyObject(ctx, o);
        progress = true;
      }
    }
  }
  ctx.mm.clear();
  ctx.memory.reclaimer.reclaim();
}

/** IOMMU_OPTION. */
export function option(
  ctx: IommufdCtx,
  a: { option: 'huge-pages' | 'rlimit-mode'; op: 'get' | 'set'; objectId: number; val: bigint },
): bigint {
  if (a.option === 'huge-pages') return ioasOptionHugePages(ctx, a.op, a.objectId, a.val);
  // RLIMIT_MODE is global: object 0 only.
  if (a.objectId !== 0) throw new IommufdError('EOPNOTSUPP', 'rlimit-mode takes objectId 0');
  if (a.op === 'get') return BigInt(ctx.accountMode);
  if (!ctx.privileged) throw new IommufdError('EPERM', 'setting rlimit-mode needs CAP_SYS_RESOURCE');
  if (!ctx.objects.empty) throw new IommufdError('EBUSY', 'rlimit-mode can only change while no objects exist');
  if (a.val !== 0n && a.val !== 1n) throw new IommufdError('EINVAL', `rlimit-mode value must be 0 or 1, got ${a.val}`);
  ctx.accountMode = Number(a.val);
  return a.val;
}

/** A deterministic picture of all visible state, for all-or-nothing checks. */
export function snapshot(ctx: IommufdCtx): unknown {
  const hex = (v: bigint): string => `0x${v.toString(16)}`;
  return {
    objects: ctx.objects.all().map((o) => {
      switch (o.type) {
        case 'ioas':
          return {
            id: o.id,
            type: o.type,
            users: o.users,
            alignment: hex(o.iopt.iovaAlignment),
            hugePages: !o.iopt.disableLargePages,
            areas: o.iopt.areas.map((a) => ({
              start: hex(a.start),
              last: hex(a.last),
              prot: a.prot,
              va: hex(a.pages.base + a.startByte),
              filled: a.filled,
            })),
            reserved: o.iopt.reserved.map((r) => ({ start: hex(r.start), last: hex(r.last) })),
            allowed: o.iopt.allowed.map((r) => ({ start: hex(r.start), last: hex(r.last) })),
            hwpts: o.hwpts.map((h) => h.id),
            domains: o.iopt.domains.length,
          };
        case 'hwpt-paging':
          return {
            id: o.id,
            type: o.type,
            users: o.users,
            ioas: o.ioas.id,
            auto: o.autoDomain,
            fault: o.fault?.id ?? 0,
            tableFrames: o.domain.table.tableFrames(),
          };
        case 'hwpt-nested':
          return {
            id: o.id,
            type: o.type,
            users: o.users,
            parent: o.parent.id,
            iotlb: [...o.iotlb],
            fault: o.fault?.id ?? 0,
            ...(o.viommu === undefined ? {} : { viommu: o.viommu.id }),
            ...(o.vste === undefined ? {} : { vste: o.vste.ste.map(hex) }),
          };
        case 'viommu':
          return {
            id: o.id,
            type: o.type,
            users: o.users,
            viommuType: o.viommuType,
            parent: o.parent.id,
            vmid: o.vmid,
          };
        case 'vdevice':
          return { id: o.id, type: o.type, users: o.users, viommu: o.viommu.id, dev: o.dev.id, virtId: hex(o.virtId) };
        case 'fault':
          return { id: o.id, type: o.type, users: o.users, pending: o.queue.pending, awaiting: o.queue.awaiting };
        case 'veventq':
          return { id: o.id, type: o.type, users: o.users, viommu: o.viommu.id, eventType: o.queue.type };
        case 'device':
          return {
            id: o.id,
            type: o.type,
            users: o.users,
            rid: o.rid?.id ?? 0,
            ridDescriptor: ctx.tables.ridDomain(o.slot) === (o.rid === undefined ? 0 : hwptDescriptor(o.rid)),
            pasids: [...o.pasids]
              .sort((x, y) => x[0] - y[0])
              .map(([p, h]) => [p, h.id, ctx.tables.pasidDomain(o.slot, p) === hwptDescriptor(h)]),
          };
      }
    }),
    framesInUse: ctx.memory.frames.inUse,
    pendingReclaim: ctx.memory.reclaimer.pending,
  };
}
