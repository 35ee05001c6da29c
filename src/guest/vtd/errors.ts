/**
 * Every message the VT-d guest driver model can raise (one place per layer, STYLE.md). The
 * errno is the one Linux's intel-iommu returns for the same condition where it has one.
 */
import { IommufdError, type Errno } from '../../util/errors.js';
import { GUEST_DRIVER_ERRORS } from '../errors.js';

const MESSAGES = {
  noQi: () => 'the unit has no queued invalidation (ECAP.QI = 0); register-based invalidation is not modelled',
  noScalable: () =>
    'scalable mode needs ECAP.SMTS and a stage it can build: ECAP.SLTS, or ECAP.FLTS for first-level domains',
  noFirstLevel: () => 'first-level domains need scalable mode and ECAP.FLTS',
  noSagaw: (sagaw: number) => `CAP.SAGAW 0x${sagaw.toString(16)} names no second-stage width this driver can build`,
  handshake: (what: string, polls: number) => `GSTS.${what} did not follow GCMD after ${polls} reads`,
  waitTimeout: (polls: number, head: number, tail: number) =>
    `invalidation wait did not complete after ${polls} polls (IQH 0x${head.toString(16)}, IQT 0x${tail.toString(16)})`,
  queueError: (slot: number, iqei: number) =>
    `invalidation queue error (FSTS.IQE) on descriptor ${slot}, IQER.IQEI ${iqei}; descriptor replaced by the wait`,
  tooMany: (count: number, entries: number) =>
    `${count} descriptors and a wait do not fit a queue of ${entries} entries (one slot stays free)`,
  queueFull: (free: number, need: number) => `the invalidation queue has ${free} free slots, ${need} needed`,
  sid: (sid: number) => `source id must be an integer in [0, 0xffff], got ${String(sid)}`,
  did: (did: number, max: number) => `domain id must be an integer in [1, ${max}], got ${String(did)}`,
  attached: (sid: number, did: number) => `SID 0x${sid.toString(16)} is already attached to domain ${did}`,
  notAttached: (sid: number) => `SID 0x${sid.toString(16)} is not attached to a domain`,
  noPrs: () => 'page requests need scalable mode and ECAP.PRS',
  prqOff: () => 'page requests are not enabled (call enablePageRequests() first)',
  prqOn: () => 'page requests are already enabled',
} as const;

/** The driver's errors: an IommufdError with Linux's errno and one of the messages above. */
export const DRIVER_ERRORS = {
  ...GUEST_DRIVER_ERRORS,
  noQi: () => new IommufdError('EOPNOTSUPP', MESSAGES.noQi()),
  noScalable: () => new IommufdError('EOPNOTSUPP', MESSAGES.noScalable()),
  noFirstLevel: () => new IommufdError('EOPNOTSUPP', MESSAGES.noFirstLevel()),
  noSagaw: (sagaw: number) => new IommufdError('ENODEV', MESSAGES.noSagaw(sagaw)),
  handshake: (what: string, polls: number) => new IommufdError('EIO', MESSAGES.handshake(what, polls)),
  waitTimeout: (polls: number, head: number, tail: number) =>
    new IommufdError('EIO', MESSAGES.waitTimeout(polls, head, tail)),
  queueError: (slot: number, iqei: number) => new IommufdError('EINVAL', MESSAGES.queueError(slot, iqei)),
  tooMany: (count: number, entries: number) => new IommufdError('EINVAL', MESSAGES.tooMany(count, entries)),
  queueFull: (free: number, need: number) => new IommufdError('EBUSY', MESSAGES.queueFull(free, need)),
  sid: (sid: number) => new IommufdError('EINVAL', MESSAGES.sid(sid)),
  did: (did: number, max: number) => new IommufdError('EINVAL', MESSAGES.did(did, max)),
  attached: (sid: number, did: number) => new IommufdError('EBUSY', MESSAGES.attached(sid, did)),
  notAttached: (sid: number) => new IommufdError('ENODEV', MESSAGES.notAttached(sid)),
  noPrs: () => new IommufdError('EOPNOTSUPP', MESSAGES.noPrs()),
  prqOff: () => new IommufdError('ENODEV', MESSAGES.prqOff()),
  prqOn: () => new IommufdError('EBUSY', MESSAGES.prqOn()),
} as const satisfies Record<string, (...args: never[]) => IommufdError & { errno: Errno }>;
