/** Every error the bench library raises (one place, STYLE.md): options that make no sense. */

/** A bench option out of range or in conflict with another: the CLI's exit status 2. */
export class BenchOptionError extends Error {
  override name = 'BenchOptionError';
}

/** The bench's errors. */
export const BENCH_ERRORS = {
  range: (name: string, v: unknown, range: string) =>
    new BenchOptionError(`${name} must be ${range}, got ${String(v)}`),
  window: (scenario: string, live: number) =>
    new BenchOptionError(`${live} live entries do not fit the IOVA window of scenario ${scenario}: use fewer`),
  compareFile: (path: string, why: string) => new BenchOptionError(`cannot compare with ${path}: ${why}`),
} as const;
