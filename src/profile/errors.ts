/** Every error the profile library raises (one place, STYLE.md), each a one-line message. */

/** Why a profile could not be made: a bad request, a workload that died, or a missing or failing tool (0x). */
export type ProfileErrorKind = 'usage' | 'workload' | 'tool';

/** A profile that could not be made. */
export class ProfileError extends Error {
  override name = 'ProfileError';
  readonly kind: ProfileErrorKind;

  constructor(kind: ProfileErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** The profile library's errors. */
export const PROFILE_ERRORS = {
  outDirNotEmpty: (dir: string) =>
    new ProfileError('usage', `output folder ${dir} is not empty: choose another with --out`),
  outDir: (dir: string, code: string) => new ProfileError('usage', `cannot create output folder ${dir}: ${code}`),
  noBuild: (path: string) => new ProfileError('usage', `no build at ${path}: run npm run build`),
  childUsage: (message: string) => new ProfileError('usage', message.replace(/^ioasid: /, '')),
  childFailed: (status: string, message: string) =>
    new ProfileError('workload', `the profiled workload exited with ${status}${message === '' ? '' : `: ${message}`}`),
  noProfiles: (dir: string) => new ProfileError('workload', `the workload wrote no CPU profile to ${dir}`),
  no0x: () => new ProfileError('tool', "0x is not installed (ioasid depends on it for flamegraphs: run 'npm install')"),
  run0x: (why: string) => new ProfileError('tool', `cannot run 0x: ${why}`),
  failed0x: (file: string, code: number | null, last: string) =>
    new ProfileError('tool', `0x failed on ${file} (exit ${code ?? 'by signal'})${last === '' ? '' : `: ${last}`}`),
} as const;
