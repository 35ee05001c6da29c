/**
 * Every message the SMMUv3 guest driver model can raise (one place per layer, STYLE.md). The
 * errno is the one Linux's arm-smmu-v3 returns for the same condition where the project's Errno
 * set has it: ENXIO (an unusable unit) becomes ENODEV and ETIMEDOUT (a CMD_SYNC that never
 * completes) becomes EIO, as the Errno type has neither.
 */
import { IommufdError, type Errno } from '../../util/errors.js';
import { GUEST_DRIVER_ERRORS } from '../errors.js';

const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

const MESSAGES = {
  noAArch64: () => 'AArch64 table format not supported (IDR0.TTF)',
  noStage1: () => 'the unit has no stage 1 (IDR0.S1P = 0); this driver builds stage-1 DMA domains only',
  no4k: () => 'the unit has no 4 KiB translation granule (IDR5.GRAN4K = 0); the driver builds 4 KiB tables only',
  stallForced: () => 'IDR0.STALL_MODEL = forced stall needs stalling masters, which this driver does not model',
  cmdqTooSmall: (cmdqs: number) =>
    `command queue size <= 64 entries not supported (IDR1.CMDQS ${cmdqs}; a batch of 64 and its sync must fit)`,
  handshake: (reg: string, value: number, polls: number) =>
    `${reg}ACK did not take ${reg} ${hex(value)} after ${polls} reads`,
  syncTimeout: (prod: number, hwProd: number, hwCons: number, polls: number) =>
    `CMD_SYNC timeout at ${hex(prod)} [hwprod ${hex(hwProd)}, hwcons ${hex(hwCons)}] after ${polls} polls`,
  cmdqFull: (need: number, prod: number, cons: number, polls: number) =>
    `CMDQ timeout: no room for ${need} commands (prod ${hex(prod)}, cons ${hex(cons)}) after ${polls} reads of CMDQ_CONS`,
  tooMany: (count: number, entries: number) =>
    `${count} commands and a sync do not fit a command queue of ${entries} entries`,
  rawLength: (words: number) => `raw commands are 4 words each; got ${words} words`,
  serviceFailure: () => 'SMMU has entered service failure mode (GERROR.SFM_ERR); the unit is disabled',
  sid: (sid: number, limit: number) => `StreamID must be an integer in [0, ${hex(limit - 1)}], got ${String(sid)}`,
  asid: (asid: number, max: number) => `ASID must be an integer in [1, ${max}], got ${String(asid)}`,
  asidInUse: (asid: number, domain: number) => `ASID ${asid} already belongs to domain ${domain}`,
  asidMismatch: (domain: number, asid: number, wanted: number) =>
    `domain ${domain} has ASID ${asid}, not the ${wanted} asked for`,
  asidExhausted: (max: number) => `no free ASID in [1, ${max}]`,
  domainId: (id: unknown) => `a domain id must be a positive integer, got ${String(id)}`,
  noDomain: (id: number) => `no domain ${id}`,
  notAttached: (sid: number) => `StreamID ${hex(sid)} is not attached to a domain`,
  noL2: (sid: number) => `StreamID ${hex(sid)} has no level-2 stream table (the device was never added)`,
  stallMismatch: (sid: number, domain: number) =>
    `StreamID ${hex(sid)}: a domain's masters must all stall or none (domain ${domain} differs)`,
} as const;

/** The driver's errors: an IommufdError with Linux's errno and one of the messages above. */
export const DRIVER_ERRORS = {
  ...GUEST_DRIVER_ERRORS,
  noAArch64: () => new IommufdError('ENODEV', MESSAGES.noAArch64()),
  noStage1: () => new IommufdError('EOPNOTSUPP', MESSAGES.noStage1()),
  no4k: () => new IommufdError('EOPNOTSUPP', MESSAGES.no4k()),
  stallForced: () => new IommufdError('EOPNOTSUPP', MESSAGES.stallForced()),
  cmdqTooSmall: (cmdqs: number) => new IommufdError('ENODEV', MESSAGES.cmdqTooSmall(cmdqs)),
  handshake: (reg: string, value: number, polls: number) =>
    new IommufdError('EIO', MESSAGES.handshake(reg, value, polls)),
  syncTimeout: (prod: number, hwProd: number, hwCons: number, polls: number) =>
    new IommufdError('EIO', MESSAGES.syncTimeout(prod, hwProd, hwCons, polls)),
  cmdqFull: (need: number, prod: number, cons: number, polls: number) =>
    new IommufdError('EIO', MESSAGES.cmdqFull(need, prod, cons, polls)),
  tooMany: (count: number, entries: number) => new IommufdError('EINVAL', MESSAGES.tooMany(count, entries)),
  rawLength: (words: number) => new IommufdError('EINVAL', MESSAGES.rawLength(words)),
  serviceFailure: () => new IommufdError('EIO', MESSAGES.serviceFailure()),
  sid: (sid: number, limit: number) => new IommufdError('EINVAL', MESSAGES.sid(sid, limit)),
  asid: (asid: number, max: number) => new IommufdError('EINVAL', MESSAGES.asid(asid, max)),
  asidInUse: (asid: number, domain: number) => new IommufdError('EBUSY', MESSAGES.asidInUse(asid, domain)),
  asidMismatch: (domain: number, asid: number, wanted: number) =>
    new IommufdError('EINVAL', MESSAGES.asidMismatch(domain, asid, wanted)),
  asidExhausted: (max: number) => new IommufdError('ENOSPC', MESSAGES.asidExhausted(max)),
  domainId: (id: unknown) => new IommufdError('EINVAL', MESSAGES.domainId(id)),
  noDomain: (id: number) => new IommufdError('ENOENT', MESSAGES.noDomain(id)),
  notAttached: (sid: number) => new IommufdError('ENODEV', MESSAGES.notAttached(sid)),
  noL2: (sid: number) => new IommufdError('ENODEV', MESSAGES.noL2(sid)),
  stallMismatch: (sid: number, domain: number) => new IommufdError('EINVAL', MESSAGES.stallMismatch(sid, domain)),
} as const satisfies Record<string, (...args: never[]) => IommufdError & { errno: Errno }>;
