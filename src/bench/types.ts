/**
 * The bench's options and results: plain data, so a run's result is its `--json` output and a
 * previous run's file can be read back for `--compare`.
 */
import type { HistogramBucket } from '../report/index.js';
import type { LatencySummary } from './histogram.js';
import type { HostDmaFigures } from './host-dma.js';

/** The emulated vIOMMUs a scenario can drive. */
export type BenchVendor = 'vtd' | 'smmu';

/** Every scenario, in the order `--help` lists them. */
export const SCENARIOS = ['strict', 'lazy', 'range', 'asid-churn', 'mixed', 'multi-guest', 'faults'] as const;

/** A named workload (scenarios.ts describes each). */
export type ScenarioName = (typeof SCENARIOS)[number];

/** The knobs of one run. Every field has a default (see `resolveOptions`). */
export interface BenchOptions {
  scenario: ScenarioName;
  vendor: BenchVendor;
  /** IOTLB shards (the shared table's partitions, each with its own owner word). */
  shards: number;
  /** Lazy policy: unmaps per flush-queue drain, i.e. per barrier (Linux IOVA_FQ_SIZE is 256). */
  batch: number;
  /** IOTLB capacity in entries. */
  iotlbEntries: number;
  /** Mappings live at any time, over every device of the run (the faults scenario: DMAs in flight). */
  liveEntries: number;
  /** Devices translate (and so fill the IOTLB) between map and unmap. */
  dma: boolean;
  /** Measured operations; ignored when `durationMs` is set. */
  ops: number;
  /** Measure for this long instead of a count of operations. */
  durationMs: number | undefined;
  /** Operations run before measuring, from the same command stream. */
  warmupOps: number;
  /** Seed of the command stream: the same seed gives the same commands. */
  seed: number;
  /** Open loop: operations are issued on a schedule at this rate (per second); undefined: closed loop. */
  rate: number | undefined;
  /** multi-guest: emulated units, each with its own guest and queue. */
  guests: number;
  /**
   * Worker threads that translate a host device's DMA through iommufd while the run measures
   * (host-dma.ts); 0: none, everything runs on the calling thread.
   */
  hostDmaThreads: number;
  /**
   * The units the scenario runs on: this project's ('ioasid'), or the QEMU-style baseline
   * ('qemu', src/baseline: a model of QEMU 7.2's algorithms, not QEMU), which has no ATS and no
   * host DMA threads.
   */
  target: 'ioasid' | 'qemu';
  /** Devices never use ATS, whatever the scenario says (a comparison with the baseline sets it for both). */
  atsOff: boolean;
  /**
   * Test hook: from this IOTLB invalidation on (0 = the first one measured or warmed up), each is
   * retargeted to a domain that does not exist, as a broken fast path that drops invalidations
   * would. The correctness check must then fail. Undefined: off. In the faults scenario, from
   * this operation on each page is left mapped (its unmap, and the invalidation with it, skipped).
   */
  dropInvalidationsFrom: number | undefined;
}

/** A point of the throughput-over-time series. */
export interface TimelinePoint {
  /** Seconds since measuring began. */
  t: number;
  /** Unit commands per second over the interval that ends at `t`. */
  commandsPerSecond: number;
}

/** IOTLB and ATC figures of a run (deltas over the measured window). */
export interface CacheFigures {
  /** Translations served by the IOTLB, and translations that walked. */
  iotlbHits: number;
  iotlbMisses: number;
  /** iotlbHits / (iotlbHits + iotlbMisses); 0 without translations. */
  hitRate: number;
  /** Translations served by a device's ATC (devices with ATS). */
  atcHits: number;
  /** The shared IOTLB's own counters. */
  fills: number;
  evictions: number;
  /** Entries removed by exact invalidations. */
  invalidated: number;
  /** Invalidations the table widened into a whole-tag flush (cache counter `overInvalidations`). */
  overInvalidations: number;
  discardedFills: number;
}

/** One way the caches disagreed with the reference model. */
export interface CorrectnessFailure {
  /** 'stale': an entry for a page the guest unmapped; 'wrong-address': another page than the model's; 'fault': a mapped page faulted. */
  kind: 'stale' | 'wrong-address' | 'fault';
  /** 'during-run' (a DMA after a barrier) or 'final-probe'. */
  when: 'during-run' | 'final-probe';
  /** One line: unit, device, domain, IOVA, what came back and what the model says. */
  message: string;
}

/** The correctness gate of a run (reference/perf-anchors.md §5.3.5). */
export interface CorrectnessResult {
  ok: boolean;
  /** Pages translated after the final sync and compared with the model. */
  probedPages: number;
  /** DMA translations compared with the model during the run. */
  checkedDuringRun: number;
  /** Disagreements by kind (final probe and during the run together). */
  stale: number;
  wrongAddress: number;
  faults: number;
  /** The first few disagreements, for the message. */
  failures: CorrectnessFailure[];
  /** Invalidations the test hook retargeted (0 unless `dropInvalidationsFrom` is set). */
  droppedInvalidations: number;
}

/** What the open-loop schedule saw. */
export interface ScheduleFigures {
  /** Operations per second asked for. */
  rate: number;
  /** Operations that started later than one period after their scheduled time. */
  lateOps: number;
  /** The largest start delay behind the schedule, µs. */
  maxLagUs: number;
}

/** What one run measured. */
export interface BenchRun {
  /** Operations measured. */
  ops: number;
  wallMs: number;
  /** Commands the units consumed (VT-d descriptors, SMMUv3 commands), barriers included. */
  commands: number;
  /** Barriers completed (wait descriptors, CMD_SYNCs). */
  barriers: number;
  /** Doorbells rung (IQT, CMDQ_PROD writes). */
  doorbells: number;
  commandsPerSecond: number;
  barriersPerSecond: number;
  opsPerSecond: number;
  /**
   * Barrier latency, µs: from the doorbell that carried the barrier (closed loop) or from the
   * operation's scheduled time (open loop) to the barrier's completion.
   */
  barrierLatency: LatencySummary;
  /** The latency histogram, µs buckets. */
  latencyHistogram: HistogramBucket[];
  cache: CacheFigures;
  /** Open loop only. */
  schedule: ScheduleFigures | undefined;
  timeline: TimelinePoint[];
  /** With `hostDmaThreads`: what the host DMA threads did. */
  hostDma: HostDmaFigures | undefined;
  correctness: CorrectnessResult;
}

/** The median of repeated runs with their range: the noise band. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The figures summarized over repeated runs (each one `Spread`). */
export interface BenchSummary {
  commandsPerSecond: Spread;
  barriersPerSecond: Spread;
  opsPerSecond: Spread;
  barrierP50Us: Spread;
  barrierP99Us: Spread;
  barrierP999Us: Spread;
  iotlbHitRate: Spread;
  overInvalidations: Spread;
}

/** The names of the summarized figures, in display order. */
export const SUMMARY_METRICS = [
  'commandsPerSecond',
  'barriersPerSecond',
  'opsPerSecond',
  'barrierP50Us',
  'barrierP99Us',
  'barrierP999Us',
  'iotlbHitRate',
  'overInvalidations',
] as const satisfies readonly (keyof BenchSummary)[];

/** One scenario on one vendor with one set of knobs, run `runs.length` times. */
export interface BenchResult {
  vendor: BenchVendor;
  scenario: ScenarioName;
  options: BenchOptions;
  /** What the workload is (command mix, batch, sync frequency, live entries). */
  workload: string;
  summary: BenchSummary;
  runs: BenchRun[];
  /** Every run passed its correctness check. */
  ok: boolean;
  /** With `--baseline qemu`: the same point on the QEMU-style baseline, run right after each of ours. */
  baseline?: BaselineResult | undefined;
}

/** The QEMU-style baseline's runs of a point, and ours against them. */
export interface BaselineResult {
  /** What the baseline is. */
  note: string;
  summary: BenchSummary;
  runs: BenchRun[];
  /** Every baseline run passed its correctness check. */
  ok: boolean;
  /** ours ÷ baseline in operations per second, per round (above 1: ours is faster). */
  opsRatio: Spread;
  /** ours ÷ baseline in commands per second, per round. */
  commandsRatio: Spread;
}
