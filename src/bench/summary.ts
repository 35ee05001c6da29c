/** Repeated runs summarized: each figure's median and range (hyperfine's convention). */
import type { BenchRun, BenchSummary, Spread } from './types.js';

/** The median and range of `values` (at least one). */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('spread of no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, min: s[0]!, max: s[s.length - 1]! };
}

/** The summary of `runs` (at least one). */
export function summarize(runs: readonly BenchRun[]): BenchSummary {
  const of = (f: (r: BenchRun) => number): Spread => spread(runs.map(f));
  return {
    commandsPerSecond: of((r) => r.commandsPerSecond),
    barriersPerSecond: of((r) => r.barriersPerSecond),
    opsPerSecond: of((r) => r.opsPerSecond),
    barrierP50Us: of((r) => r.barrierLatency.p50),
    barrierP99Us: of((r) => r.barrierLatency.p99),
    barrierP999Us: of((r) => r.barrierLatency.p999),
    iotlbHitRate: of((r) => r.cache.hitRate),
    overInvalidations: of((r) => r.cache.overInvalidations),
  };
}
