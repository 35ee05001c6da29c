/** Helpers shared by the benchmarks: flags, medians, the machine line. */
import os from 'node:os';

/** A positive integer flag `--name N`, or `dflt`; a bad value exits with status 2 and one line. */
export function intFlag(
  bench: string,
  name: string,
  dflt: number,
  argv: readonly string[] = process.argv.slice(2),
): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isSafeInteger(v) || v <= 0) {
    console.error(`${bench}: --${name} needs a positive integer`);
    process.exit(2);
  }
  return v;
}

/** The median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** The line every benchmark prints first: CPU, cores, Node version, date. */
export function machineLine(): string {
  return `machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, node ${process.version}, ${new Date().toISOString()}`;
}
