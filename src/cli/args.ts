/** A command-line usage error: printed as one line, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The type of each flag a command accepts. */
export type FlagSpec = Record<string, 'int' | 'bool' | 'string'>;

/** Parsed flags: values by flag name (without the leading dashes). */
export type Flags = Record<string, number | boolean | string>;

/**
 * Parses `--name value`, `--name=value` and `--flag` arguments against `spec`. Unknown flags,
 * missing values and malformed integers are {@link UsageError}s.
 */
export function parseFlags(argv: readonly string[], spec: FlagSpec): Flags {
  const out: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const type = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (type === undefined) throw new UsageError(`unknown flag '--${name}'`);
    if (type === 'bool') {
      if (eq >= 0) throw new UsageError(`flag '--${name}' takes no value`);
      out[name] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError(`flag '--${name}' needs a value`);
    if (type === 'int') {
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
        throw new UsageError(`flag '--${name}' needs a non-negative integer, got '${value}'`);
      out[name] = Number(value);
    } else {
      out[name] = value;
    }
  }
  return out;
}
