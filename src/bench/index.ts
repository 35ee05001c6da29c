/**
 * The bench library behind `ioasid bench` (issue 7 item 2): named scenarios driving the emulated
 * VT-d and SMMUv3 units through the Linux-like guest drivers, with barrier latencies, cache
 * figures and a correctness gate against a reference model. The CLI only parses and prints.
 */
export {
  asBenchDocument,
  compareDocuments,
  type Comparison,
  type ComparisonRow,
  type SummaryMetric,
} from './compare.js';
export { BenchOptionError } from './errors.js';
export { MAX_FAULT_DEPTH } from './faults.js';
export { LatencyHistogram, type LatencySummary } from './histogram.js';
export type { HostDmaFigures } from './host-dma.js';
export { BENCH_DEFAULTS, resolveBenchOptions, type BenchOptionsInput } from './options.js';
export { Prng } from './prng.js';
export { runOnce, type RunProgress } from './runner.js';
export { SCENARIO_SPECS, type ScenarioSpec } from './scenarios.js';
export type { BenchDeviceState, BenchState, BenchStateHook, BenchUnit, GuestMapping } from './state.js';
export { spread, summarize } from './summary.js';
export {
  planPoints,
  runSuite,
  type BenchDocument,
  type BenchPlan,
  type SuiteProgress,
  type SweepKnob,
} from './suite.js';
export {
  SCENARIOS,
  SUMMARY_METRICS,
  type BenchOptions,
  type BenchResult,
  type BenchRun,
  type BenchSummary,
  type BenchVendor,
  type CacheFigures,
  type CorrectnessFailure,
  type CorrectnessResult,
  type ScenarioName,
  type ScheduleFigures,
  type Spread,
  type TimelinePoint,
} from './types.js';
