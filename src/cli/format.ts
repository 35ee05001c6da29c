/** How the CLI writes numbers and the machine line in its human output. */
import type { MachineInfo } from '../report/index.js';

/** A rate or count with an SI prefix and 3–4 significant digits: '128.1 k', '1.23 M', '512'. */
export function si(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e9) return `${(x / 1e9).toFixed(2)} G`;
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (a >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return a >= 100 || Number.isInteger(x) ? x.toFixed(0) : x.toFixed(1);
}

/** Microseconds with three significant digits (at least one decimal below 100). */
export function micros(us: number): string {
  if (us >= 100) return us.toFixed(0);
  if (us >= 10) return us.toFixed(1);
  return us.toFixed(2);
}

/** A fraction as a percentage with one decimal. */
export function percent(f: number): string {
  return `${(f * 100).toFixed(1)} %`;
}

/** A signed relative change: '+3.2 %', '−12.0 %'. */
export function change(f: number): string {
  if (!Number.isFinite(f)) return 'n/a';
  const p = (f * 100).toFixed(1);
  return f >= 0 ? `+${p} %` : `${p} %`;
}

/** The machine, as every report names it: CPU, cores, OS, node, ioasid version and commit. */
export function machineLine(m: MachineInfo): string {
  return `${m.cpuModel} (${m.cores} cores), ${m.platform}, node ${m.node}, ioasid ${m.ioasidVersion} (commit ${m.commit})`;
}
