/**
 * A whole `ioasid bench` invocation: a scenario on one vendor or both, optionally swept over one
 * knob, each point run `runs` times. Runs are interleaved (round by round, every vendor and
 * value in each round), so a slow spell of the machine spreads over every point rather than
 * biasing one (reference/perf-anchors.md §5.3.2); each vendor's points in a round follow an
 * unmeasured warm-up run.
 */
import type { MachineInfo } from '../report/index.js';
import { resolveBenchOptions, type BenchOptionsInput } from './options.js';
import { runOnce } from './runner.js';
import { SCENARIO_SPECS } from './scenarios.js';
import { spread, summarize } from './summary.js';
import type { BaselineResult, BenchOptions, BenchResult, BenchRun, BenchVendor, Spread } from './types.js';

/** The knobs `--sweep` varies. */
export type SweepKnob = 'shards' | 'batch';

/** What to run. */
export interface BenchPlan {
  /** The knobs shared by every run (the vendor and the swept knob are set per point). */
  base: Omit<BenchOptionsInput, 'vendor'>;
  vendors: readonly BenchVendor[];
  /** Repetitions of each point. */
  runs: number;
  sweep?: { knob: SweepKnob; values: readonly number[] } | undefined;
  /**
   * Also run every point on the QEMU-style baseline, right after ours in each round. Devices use
   * no ATS on either side then (the baseline has none).
   */
  baseline?: 'qemu' | undefined;
}

/** What the baseline is, in every result that has one. */
export const BASELINE_NOTE =
  "a model of QEMU 7.2's vIOMMU caching and invalidation algorithms (src/baseline), not QEMU itself";

/** The `--json` document of `ioasid bench`. */
export interface BenchDocument {
  tool: 'ioasid bench';
  /** The document's format version. */
  schema: 1;
  machine: MachineInfo;
  /** The command line. */
  command: string;
  /** When the run started (ISO 8601). */
  generatedAt: string;
  sweep?: { knob: SweepKnob; values: number[] };
  /** One per vendor (and swept value), in run order. */
  results: BenchResult[];
  /** Every run passed its correctness check. */
  ok: boolean;
}

/**
 * Operations of the unmeasured run before each vendor's points in each round: as many as a
 * measured run has, within these bounds (the hot paths take some 15000 operations to settle).
 */
const VENDOR_WARMUP_OPS = { min: 2000, max: 20000 } as const;

function vendorWarmupOps(o: BenchOptions): number {
  const ops = o.durationMs !== undefined ? VENDOR_WARMUP_OPS.max : o.ops;
  return Math.min(VENDOR_WARMUP_OPS.max, Math.max(VENDOR_WARMUP_OPS.min, ops));
}

/** Progress of a suite: the fraction done and what runs now. */
export type SuiteProgress = (fraction: number, label: string) => void;

/** The resolved options of every point of `plan`, in result order (BenchOptionError on a bad knob). */
export function planPoints(plan: BenchPlan): BenchOptions[] {
  const values = plan.sweep?.values ?? [undefined];
  const points: BenchOptions[] = [];
  for (const vendor of plan.vendors) {
    for (const v of values) {
      const input: BenchOptionsInput = {
        ...plan.base,
        vendor,
        ...(plan.baseline !== undefined ? { atsOff: true } : {}),
      };
      if (plan.sweep !== undefined && v !== undefined) input[plan.sweep.knob] = v;
      points.push(resolveBenchOptions(input));
    }
  }
  return points;
}

/** Runs `plan`; returns one result per point. */
export async function runSuite(plan: BenchPlan, onProgress?: SuiteProgress): Promise<BenchResult[]> {
  const points = planPoints(plan);
  const runs: BenchRun[][] = points.map(() => []);
  const theirs: BenchRun[][] = points.map(() => []);
  const baseline = plan.baseline !== undefined;
  const total = points.length * plan.runs * (baseline ? 2 : 1);
  let done = 0;
  for (let round = 0; round < plan.runs; round++) {
    for (let p = 0; p < points.length; p++) {
      const o = points[p]!;
      if (p === 0 || points[p - 1]!.vendor !== o.vendor) {
        // Code shared by both vendors (caches, pipeline) is recompiled when the vendor changes: an
        // unmeasured run first, so that cost does not land on one point (perf-anchors §5.3.2).
        onProgress?.(done / total, `${o.vendor} warm-up`);
        // Without host DMA: its workers are fresh isolates in every run, so they gain nothing here.
        const warm: BenchOptions = {
          ...o,
          ops: vendorWarmupOps(o),
          warmupOps: 0,
          durationMs: undefined,
          rate: undefined,
          hostDmaThreads: 0,
        };
        await runOnce(warm);
        if (baseline) await runOnce({ ...warm, target: 'qemu' });
      }
      const label = `${o.vendor} ${o.scenario}${plan.sweep !== undefined ? ` ${plan.sweep.knob}=${o[plan.sweep.knob]}` : ''}`;
      onProgress?.(done / total, label);
      runs[p]!.push(await runOnce(o, (f) => onProgress?.((done + f) / total, label)));
      done++;
      if (baseline) {
        onProgress?.(done / total, `${label} (qemu)`);
        theirs[p]!.push(await runOnce({ ...o, target: 'qemu' }, (f) => onProgress?.((done + f) / total, label)));
        done++;
      }
    }
  }
  onProgress?.(1, 'done');
  return points.map((o, p) => ({
    vendor: o.vendor,
    scenario: o.scenario,
    options: o,
    workload: SCENARIO_SPECS[o.scenario].describe(o),
    summary: summarize(runs[p]!),
    runs: runs[p]!,
    ok: runs[p]!.every((r) => r.correctness.ok),
    ...(baseline ? { baseline: baselineResult(runs[p]!, theirs[p]!) } : {}),
  }));
}

/** The baseline's side of a point, and ours against it round by round. */
function baselineResult(ours: readonly BenchRun[], qemu: readonly BenchRun[]): BaselineResult {
  const ratio = (f: (r: BenchRun) => number): Spread =>
    spread(ours.map((r, i) => (f(qemu[i]!) > 0 ? f(r) / f(qemu[i]!) : 0)));
  return {
    note: BASELINE_NOTE,
    summary: summarize(qemu),
    runs: [...qemu],
    ok: qemu.every((r) => r.correctness.ok),
    opsRatio: ratio((r) => r.opsPerSecond),
    commandsRatio: ratio((r) => r.commandsPerSecond),
  };
}
