/**
 * Every error the replay raises (one place, STYLE.md). Lines it cannot interpret are never
 * errors: they are counted by kind. Errors are for what stops a replay: input that cannot be
 * read, and options that make no sense.
 */
import { IommufdError } from '../util/errors.js';

/** The replay's errors: an IommufdError with the errno a CLI maps to its exit code and one line of text. */
export const REPLAY_ERRORS = {
  noInput: (path: string, why: string) => new IommufdError('ENOENT', `cannot read trace ${path}: ${why}`),
  xzSpawn: (path: string, command: string, cause: Error) =>
    new IommufdError(
      'EOPNOTSUPP',
      `cannot decompress ${path}: the '${command}' program could not be started (${cause.message}); ` +
        `install xz-utils, or decompress the trace first with 'xz -dk ${path}'`,
    ),
  xzFailed: (path: string, code: number | null, signal: string | null, stderr: string) =>
    new IommufdError(
      'EIO',
      `cannot decompress ${path}: xz ${code !== null ? `exited with status ${code}` : `was killed by ${signal}`}` +
        (stderr.trim() !== '' ? `: ${stderr.trim().split('\n')[0]!}` : ''),
    ),
  vendor: (v: string) => new IommufdError('EINVAL', `vendor must be 'vtd' or 'smmuv3', got ${v}`),
  target: (v: string) => new IommufdError('EINVAL', `target must be 'ioasid' or 'qemu', got ${v}`),
  option: (name: string, v: unknown, range: string) =>
    new IommufdError('EINVAL', `${name} must be ${range}, got ${String(v)}`),
  noVendor: () =>
    new IommufdError('EINVAL', 'the trace has no VT-d or SMMUv3 event: nothing to replay (is it a QEMU trace log?)'),
  aborted: () => new IommufdError('EIO', 'the replay was aborted'),
} as const;
