/**
 * The errors every guest driver model raises alike (one place, STYLE.md): probe order and the
 * arguments of map and unmap. The vendor drivers' tables (src/guest/vtd/errors.ts,
 * src/guest/smmuv3/errors.ts) spread these and add their own.
 */
import { IommufdError, type Errno } from '../util/errors.js';

const hex = (v: number): string => `0x${v.toString(16)}`;

const MESSAGES = {
  notProbed: () => 'the driver has not probed the unit yet (call probe() first)',
  probed: () => 'the unit was already probed',
  range: (iova: number, length: number, limit: number) =>
    `range [${hex(iova)}, +${hex(length)}) must be 4 KiB aligned, non-empty and below ${hex(limit)}`,
  gpa: (gpa: number) => `guest-physical address ${hex(gpa)} must be 4 KiB aligned and non-negative`,
  prot: (prot: number) => `prot must be 1 (read), 2 (write) or 3, got ${String(prot)}`,
  mapped: (iova: number) => `IOVA ${hex(iova)} is already mapped`,
  pendingFree: (iova: number) => `IOVA ${hex(iova)} still waits in the flush queue (not free until a drain)`,
  option: (name: string, v: unknown, range: string) => `${name} must be ${range}, got ${String(v)}`,
} as const;

/** The shared errors: an IommufdError with Linux's errno and one of the messages above. */
export const GUEST_DRIVER_ERRORS = {
  notProbed: () => new IommufdError('ENODEV', MESSAGES.notProbed()),
  probed: () => new IommufdError('EBUSY', MESSAGES.probed()),
  range: (iova: number, length: number, limit: number) =>
    new IommufdError('EINVAL', MESSAGES.range(iova, length, limit)),
  gpa: (gpa: number) => new IommufdError('EINVAL', MESSAGES.gpa(gpa)),
  prot: (prot: number) => new IommufdError('EINVAL', MESSAGES.prot(prot)),
  mapped: (iova: number) => new IommufdError('EEXIST', MESSAGES.mapped(iova)),
  pendingFree: (iova: number) => new IommufdError('EBUSY', MESSAGES.pendingFree(iova)),
  option: (name: string, v: unknown, range: string) => new IommufdError('EINVAL', MESSAGES.option(name, v, range)),
} as const satisfies Record<string, (...args: never[]) => IommufdError & { errno: Errno }>;
