/**
 * `compareReplay`: the same trace replayed on this project's units and on the QEMU-style baseline
 * (src/baseline), interleaved, with the ratio method of reference/perf-anchors.md §5.3: warm-up
 * rounds first, then rounds of (ioasid, qemu), medians of each and of the per-round ratios.
 *
 * The trace is read (and decompressed) once, into memory, and every round replays that text, so
 * the disk and `xz` are out of the timing; what is timed is the same harness for both targets:
 * parsing, the guest's bring-up, and the replay. Each round is checked as the replay checks
 * itself: no command error, and no translation that faulted or reached another page than its
 * mapping's (a stale IOTLB entry would).
 */
import { Readable } from 'node:stream';
import { REPLAY_ERRORS } from './errors.js';
import { replayTrace } from './replay.js';
import { openTrace, type TraceSource } from './trace-input.js';
import type { ReplayOptions, ReplayResult, TraceVendor } from './types.js';
import type { ReplayTarget } from './units.js';

/** Options of a comparison: the replay's (but the target and progress), and the rounds. */
export interface CompareReplayOptions extends Pick<
  ReplayOptions,
  'vendor' | 'vtdScalable' | 'guestRamBytes' | 'signal'
> {
  /** Measured rounds, each one replay per target; default 5. */
  rounds?: number;
  /** Rounds run first and discarded; default 2. */
  warmup?: number;
  /** Called after every replay (warm-up ones included), for progress. */
  onRound?: (round: CompareRound) => void;
}

/** One replay of a comparison. */
export interface CompareRound {
  /** 0-based index among the rounds of its kind (warm-up or measured). */
  readonly round: number;
  readonly warmup: boolean;
  readonly target: ReplayTarget;
  readonly result: ReplayResult;
}

/** The median and the range of a measured quantity over the rounds. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** What one target did over the measured rounds. */
export interface TargetSummary {
  readonly target: ReplayTarget;
  /** Trace commands per second of wall time. */
  readonly commandsPerSecond: Spread;
  /** Wall time of one replay, ms. */
  readonly wallMs: Spread;
  /** The part of it that built the unit and brought the guest up, ms. */
  readonly setupMs: Spread;
  /** Each measured round's wall time, ms, in order. */
  readonly roundsMs: readonly number[];
  /** Every round had no command error, no translation fault and no mismatch. */
  readonly correct: boolean;
  /** The worst round's counts (a correct target has 0 of each). */
  readonly commandErrors: number;
  readonly translationFaults: number;
  readonly translationMismatches: number;
  /** The last measured round's result (its counts, and the baseline's counters for 'qemu'). */
  readonly last: ReplayResult;
}

/** The outcome of {@link compareReplay}. */
export interface ReplayComparison {
  /** The input's file name ('stream' for a stream). */
  readonly file: string;
  readonly vendor: TraceVendor;
  /** What one replay did (the same on both targets when `sameWork`). */
  readonly lines: number;
  readonly commands: number;
  readonly doorbells: number;
  readonly barriers: number;
  readonly translations: number;
  /** Lines no replay could interpret (see a result's `byKind.uninterpreted`). */
  readonly uninterpreted: number;
  readonly rounds: number;
  readonly warmup: number;
  /** This project's units. */
  readonly ours: TargetSummary;
  /** The QEMU-style baseline. */
  readonly qemu: TargetSummary;
  /** ours ÷ qemu in commands per second, per measured round (above 1: ours is faster). */
  readonly ratio: Spread;
  /** Both targets replayed the same commands, doorbells, barriers and translations. */
  readonly sameWork: boolean;
  /** Both targets are correct (see {@link TargetSummary.correct}). */
  readonly correct: boolean;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min || v > 1000) throw REPLAY_ERRORS.option(name, v, `an integer in [${min}, 1000]`);
}

/** The trace's text, read once: the chunks as they came. */
async function load(source: TraceSource): Promise<{ name: string; chunks: Uint8Array[] }> {
  const input = await openTrace(source);
  const chunks: Uint8Array[] = [];
  for await (const c of input.chunks) chunks.push(c);
  return { name: input.name, chunks };
}

/** The text again, as a stream of the same chunks. */
function replayText(chunks: readonly Uint8Array[]): AsyncIterable<Uint8Array> {
  return Readable.from(chunks) as AsyncIterable<Uint8Array>;
}

function summarize(target: ReplayTarget, results: readonly ReplayResult[]): TargetSummary {
  const worst = (f: (r: ReplayResult) => number): number => Math.max(...results.map(f));
  const commandErrors = worst((r) => r.commandErrors);
  const translationFaults = worst((r) => r.translations.faults);
  const translationMismatches = worst((r) => r.translations.mismatches);
  return {
    target,
    commandsPerSecond: spread(results.map((r) => r.throughput.commandsPerSecond)),
    wallMs: spread(results.map((r) => r.throughput.wallMs)),
    setupMs: spread(results.map((r) => r.throughput.setupMs)),
    roundsMs: results.map((r) => r.throughput.wallMs),
    correct: commandErrors === 0 && translationFaults === 0 && translationMismatches === 0,
    commandErrors,
    translationFaults,
    translationMismatches,
    last: results.at(-1)!,
  };
}

/** The counts that must agree for the two targets to have done the same work. */
function work(r: ReplayResult): string {
  const t = r.translations;
  return [r.lines, r.commands, r.doorbells, r.barriers, r.uninterpreted, t.total, t.mapped, t.unmapped].join(',');
}

/**
 * Replays `source` (as {@link replayTrace} takes it) on this project's units and on the
 * QEMU-style baseline, `warmup` rounds and then `rounds` measured rounds, each round one replay
 * per target in the order ioasid, qemu; returns each target's medians and ranges and the ratio
 * of ours to theirs. It rejects as replayTrace does (unreadable input, bad options: EINVAL).
 */
export async function compareReplay(source: TraceSource, opts: CompareReplayOptions = {}): Promise<ReplayComparison> {
  const rounds = opts.rounds ?? 5;
  const warmup = opts.warmup ?? 2;
  checkCount('rounds', rounds, 1);
  checkCount('warmup', warmup, 0);
  const onRound = opts.onRound;
  const replayOpts: ReplayOptions = {};
  if (opts.vendor !== undefined) replayOpts.vendor = opts.vendor;
  if (opts.vtdScalable !== undefined) replayOpts.vtdScalable = opts.vtdScalable;
  if (opts.guestRamBytes !== undefined) replayOpts.guestRamBytes = opts.guestRamBytes;
  if (opts.signal !== undefined) replayOpts.signal = opts.signal;
  const text = await load(source);
  const results: Record<ReplayTarget, ReplayResult[]> = { ioasid: [], qemu: [] };
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < warmup + rounds; i++) {
    const measured = i >= warmup;
    for (const target of ['ioasid', 'qemu'] as const) {
      gc?.();
      const result = await replayTrace(replayText(text.chunks), { ...replayOpts, target });
      if (measured) results[target].push(result);
      onRound?.({ round: measured ? i - warmup : i, warmup: !measured, target, result });
    }
  }
  const ours = summarize('ioasid', results.ioasid);
  const qemu = summarize('qemu', results.qemu);
  const ratios = results.ioasid.map((r, i) => {
    const theirs = results.qemu[i]!.throughput.commandsPerSecond;
    return theirs > 0 ? r.throughput.commandsPerSecond / theirs : 0;
  });
  const r = ours.last;
  return {
    file: text.name,
    vendor: r.vendor,
    lines: r.lines,
    commands: r.commands,
    doorbells: r.doorbells,
    barriers: r.barriers,
    translations: r.translations.total,
    uninterpreted: r.uninterpreted,
    rounds,
    warmup,
    ours,
    qemu,
    ratio: spread(ratios),
    sameWork: [...results.ioasid, ...results.qemu].every((x) => work(x) === work(r)),
    correct: ours.correct && qemu.correct,
  };
}
