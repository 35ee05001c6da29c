import { IommufdError } from './errors.js';

/*
 * Argument checks for the public API: a wrong-type, missing or out-of-range argument is an
 * IommufdError EINVAL that names the argument, never a TypeError from deep inside.
 */

/** 2^64 − 1, the largest u64 (the kernel's U64_MAX). */
export const U64_MAX = (1n << 64n) - 1n;

function describe(v: unknown): string {
  return typeof v === 'bigint' ? `${v}n` : typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** A u32 object id. */
export function argId(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new IommufdError('EINVAL', `${name} must be an integer id in [0, 2^32), got ${describe(v)}`);
  }
  return v;
}

/** An integer in [lo, hi]. */
export function argInt(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new IommufdError('EINVAL', `${name} must be an integer in [${lo}, ${hi}], got ${describe(v)}`);
  }
  return v;
}

/** A u64 as a bigint. */
export function argU64(name: string, v: unknown): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX)
    throw new IommufdError('EINVAL', `${name} must be a bigint in [0, 2^64), got ${describe(v)}`);
  return v;
}

/**
 * A u64 given as a bigint or as a non-negative safe integer (entry fields of vendor data, which
 * callers write either way), as a bigint; EINVAL otherwise.
 */
export function argU64OrInt(name: string, v: unknown): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  return argU64(name, v);
}

/** An optional u64. */
export function argOptU64(name: string, v: unknown): bigint | undefined {
  return v === undefined ? undefined : argU64(name, v);
}

/** An optional boolean. */
export function argOptBool(name: string, v: unknown): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean')
    throw new IommufdError('EINVAL', `${name} must be a boolean, got ${describe(v)}`);
  return v;
}

/** A plain object (for an options bag). */
export function argObject(name: string, v: unknown, optional = false): Record<string, unknown> | undefined {
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new IommufdError('EINVAL', `${name} must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

/**
 * One of a fixed set of strings. A value of the wrong type is EINVAL; an unknown string is
 * `unknownErrno` (EINVAL unless the kernel answers an unknown value of that field otherwise, as
 * it answers an unknown option id or op with EOPNOTSUPP).
 */
export function argEnum<T extends string>(
  name: string,
  v: unknown,
  values: readonly T[],
  unknownErrno: 'EINVAL' | 'EOPNOTSUPP' = 'EINVAL',
): T {
  if (typeof v !== 'string')
    throw new IommufdError('EINVAL', `${name} must be one of ${values.join(', ')}, got ${describe(v)}`);
  if (!(values as readonly string[]).includes(v)) {
    throw new IommufdError(unknownErrno, `${name} must be one of ${values.join(', ')}, got ${describe(v)}`);
  }
  return v as T;
}

/** An array of inclusive u64 ranges. */
export function argRanges(name: string, v: unknown): { start: bigint; last: bigint }[] {
  if (!Array.isArray(v)) throw new IommufdError('EINVAL', `${name} must be an array of { start, last }`);
  return v.map((r: unknown, i) => {
    const o = argObject(`${name}[${i}]`, r)!;
    return { start: argU64(`${name}[${i}].start`, o['start']), last: argU64(`${name}[${i}].last`, o['last']) };
  });
}

/**
 * A flags object: unknown keys are EOPNOTSUPP, as unknown flag bits are in the kernel
 * (reference/iommufd.md §0); known keys must be booleans.
 */
export function argFlags<K extends string>(
  name: string,
  v: unknown,
  known: readonly K[],
): { [P in K]?: boolean } | undefined {
  const o = argObject(name, v, true);
  if (o === undefined) return undefined;
  const out: { [P in K]?: boolean } = {};
  for (const key of Object.keys(o)) {
    if (!(known as readonly string[]).includes(key))
      throw new IommufdError('EOPNOTSUPP', `${name}.${key} is not a known flag`);
    const b = argOptBool(`${name}.${key}`, o[key]);
    if (b !== undefined) out[key as K] = b;
  }
  return out;
}
