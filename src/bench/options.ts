/** The bench's defaults and the checks of its knobs. */
import { BENCH_ERRORS } from './errors.js';
import { runGeometry } from './geometry.js';
import { SCENARIO_SPECS } from './scenarios.js';
import { SCENARIOS, type BenchOptions, type BenchVendor, type ScenarioName } from './types.js';

/** Defaults of the knobs that do not depend on the scenario. */
export const BENCH_DEFAULTS = {
  scenario: 'strict',
  shards: 8,
  batch: 256,
  iotlbEntries: 65536,
  dma: true,
  ops: 20000,
  warmupOps: 1000,
  seed: 1,
  guests: 4,
  hostDmaThreads: 0,
} as const;

/** Knobs as given: anything left out takes its default. */
export type BenchOptionsInput = Partial<BenchOptions> & { vendor: BenchVendor };

function int(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isSafeInteger(v) || v < lo || v > hi) throw BENCH_ERRORS.range(name, v, `an integer in [${lo}, ${hi}]`);
  return v;
}

/** Fills in the defaults and checks every knob (BenchOptionError). */
export function resolveBenchOptions(input: BenchOptionsInput): BenchOptions {
  const scenario: ScenarioName = input.scenario ?? BENCH_DEFAULTS.scenario;
  if (!SCENARIOS.includes(scenario)) throw BENCH_ERRORS.range('scenario', scenario, `one of ${SCENARIOS.join(', ')}`);
  if (input.vendor !== 'vtd' && input.vendor !== 'smmu')
    throw BENCH_ERRORS.range('vendor', input.vendor, 'vtd or smmu');
  const spec = SCENARIO_SPECS[scenario];
  const ops = int('ops', input.ops ?? BENCH_DEFAULTS.ops, 1, 1e9);
  const durationMs = input.durationMs;
  if (durationMs !== undefined && !(Number.isFinite(durationMs) && durationMs > 0 && durationMs <= 86_400_000))
    throw BENCH_ERRORS.range('duration', durationMs / 1000, 'a number of seconds in (0, 86400]');
  const rate = input.rate;
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0 && rate <= 1e9))
    throw BENCH_ERRORS.range('rate', rate, 'a number of operations per second in (0, 1e9]');
  const seed = input.seed ?? BENCH_DEFAULTS.seed;
  int('seed', seed, 0, 2 ** 32 - 1);
  const drop = input.dropInvalidationsFrom;
  if (drop !== undefined) int('dropInvalidationsFrom', drop, 0, 2 ** 52);
  const o: BenchOptions = {
    scenario,
    vendor: input.vendor,
    shards: int('shards', input.shards ?? BENCH_DEFAULTS.shards, 1, 256),
    batch: int('batch', input.batch ?? BENCH_DEFAULTS.batch, 1, 65536),
    iotlbEntries: int('iotlbEntries', input.iotlbEntries ?? BENCH_DEFAULTS.iotlbEntries, 8, 2 ** 24),
    liveEntries: int('liveEntries', input.liveEntries ?? spec.defaultLiveEntries, 1, 2 ** 20),
    dma: input.dma ?? BENCH_DEFAULTS.dma,
    ops,
    durationMs,
    warmupOps: int('warmupOps', input.warmupOps ?? Math.min(BENCH_DEFAULTS.warmupOps, Math.ceil(ops / 10)), 0, 1e9),
    seed,
    rate,
    guests: int('guests', input.guests ?? BENCH_DEFAULTS.guests, 1, 64),
    hostDmaThreads: int('hostDmaThreads', input.hostDmaThreads ?? BENCH_DEFAULTS.hostDmaThreads, 0, 16),
    target: input.target ?? 'ioasid',
    atsOff: input.atsOff ?? false,
    dropInvalidationsFrom: drop,
  };
  if (o.target !== 'ioasid' && o.target !== 'qemu') throw BENCH_ERRORS.range('target', o.target, "'ioasid' or 'qemu'");
  if (o.target === 'qemu' && o.hostDmaThreads > 0)
    throw BENCH_ERRORS.range('hostDmaThreads', o.hostDmaThreads, '0 on the QEMU-style baseline (it has no host DMA)');
  runGeometry(o, spec);
  return o;
}
