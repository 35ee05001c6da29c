/**
 * The CLI's exit statuses, its usage error, and the option-value parsers that commander calls:
 * a bad value is a one-line error and exit status 2, never a stack trace.
 */
import { InvalidArgumentError } from 'commander';

/** Exit statuses: 0 success, 1 a failed check (correctness gate, replay errors), 2 bad usage or input. */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;

/** A bad flag combination, value or input file found after parsing: one line on stderr, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A parser of integers in [lo, hi]. */
export function intIn(lo: number, hi: number): (value: string) => number {
  return (value) => {
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < lo || n > hi)
      throw new InvalidArgumentError(`expected an integer in [${lo}, ${hi}]`);
    return n;
  };
}

/** A parser of positive numbers up to `hi` (decimals allowed: seconds, rates). */
export function positiveNumber(hi: number): (value: string) => number {
  return (value) => {
    const n = /^\d+(\.\d+)?$|^\.\d+$/.test(value) ? Number(value) : NaN;
    if (!(n > 0 && n <= hi)) throw new InvalidArgumentError(`expected a number in (0, ${hi}]`);
    return n;
  };
}

/** A parser of `on` / `off`. */
export function onOff(value: string): boolean {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new InvalidArgumentError('expected on or off');
}

/** A parser of a comma-separated list of integers in [lo, hi]. */
export function intList(lo: number, hi: number): (value: string) => number[] {
  const one = intIn(lo, hi);
  return (value) => {
    const parts = value.split(',');
    if (parts.some((p) => p === '')) throw new InvalidArgumentError('expected integers separated by commas');
    return parts.map(one);
  };
}

/** A parser of integers in [0, hi], in hex (`0x…`) or decimal: addresses, SIDs, PASIDs. */
export function hexOrDecimal(hi: number): (value: string) => number {
  return (value) => {
    const n = /^0x[0-9a-f]+$/i.test(value) ? parseInt(value.slice(2), 16) : /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n > hi)
      throw new InvalidArgumentError(`expected a number (0x… hex or decimal) in [0, 0x${hi.toString(16)}]`);
    return n;
  };
}
