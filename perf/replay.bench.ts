/**
 * Replay of the shipped QEMU 7.2 traces (traces/, copies of ../shared/traces) on this project's units against the
 * QEMU-style baseline (src/baseline: a model of QEMU's algorithms, not QEMU itself), with
 * `compareReplay`: each trace is read and decompressed once, then replayed in interleaved
 * rounds (ioasid, qemu, ioasid, qemu, …) after warm-up rounds, reference/perf-anchors.md §5.3.
 * A round's time covers the whole harness for both targets: parsing the text, bringing the
 * guest up, and the replay (doorbells, translations, the mapping upkeep of -xlate traces).
 *
 * Reported per trace: each target's median commands/s and wall time (min–max over the rounds),
 * the part of that time spent building the unit and bringing the guest up, the median of the
 * per-round ratios ours ÷ qemu (above 1: ours is faster) with its range, and the baseline's own
 * counters (IOTLB capacity flushes, full-table scans). Every round is checked
 * as the replay checks itself (no command error, no faulted or stale translation) and both
 * targets must have done the same work; otherwise the bench exits with status 1.
 *
 * With --breakdown, a second pass (after the measured one, so that it cannot disturb it) times
 * what happens inside the units alone: every doorbell (the trace guest's `ring` / `issue`: the
 * IQT or CMDQ_PROD write and the whole consumption behind it) and every translation, with
 * `performance.now()` around each call and the timer's own cost (calibrated here) subtracted.
 * Parsing, the guest's bring-up and the mapping upkeep are left out, so this is the ratio of the
 * units' own work; the timers wrap library methods, which is why it is a separate pass.
 *
 * Run: npm run bench:replay   (npm run build && node --expose-gc dist/perf/replay.bench.js)
 * Flags: --rounds N (default 5), --warmup N (default 2), --traces DIR (default the repository's traces/, copies of ../shared/traces),
 *        --breakdown (the units-only pass, 3 rounds after 1 warm-up),
 *        --json (one JSON document on stdout instead of the tables)
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { intFlag, machineLine, median } from './common.js';
import { QemuSmmuUnit, QemuVtdUnit, type QemuIotlbStats } from '../src/baseline/index.js';
import { compareReplay, type ReplayComparison, type ReplayTarget, type TargetSummary } from '../src/replay/index.js';
import { SmmuTraceGuest } from '../src/replay/smmu-guest.js';
import { VtdTraceGuest } from '../src/replay/vtd-guest.js';
import { SmmuIommu } from '../src/vendor/smmuv3/iommu.js';
import { VtdIommu } from '../src/vendor/vtd/iommu.js';

const NAME = 'replay.bench';
const ARGV = process.argv.slice(2);
const ROUNDS = intFlag(NAME, 'rounds', 5);
const WARMUP = warmupFlag();
const JSON_OUT = ARGV.includes('--json');
const BREAKDOWN = ARGV.includes('--breakdown');
const BREAKDOWN_ROUNDS = 3;
const tracesAt = ARGV.indexOf('--traces');
const TRACES =
  tracesAt >= 0 ? resolve(ARGV[tracesAt + 1] ?? '.') : fileURLToPath(new URL('../../traces/', import.meta.url)); // dist/perf → the repository's traces/

/** `--warmup N`: a non-negative integer (0 is allowed, unlike intFlag's positive ones), default 2. */
function warmupFlag(): number {
  const i = ARGV.indexOf('--warmup');
  if (i < 0) return 2;
  const v = Number(ARGV[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) {
    console.error(`${NAME}: --warmup needs a non-negative integer`);
    process.exit(2);
  }
  return v;
}

/** Time spent inside the timed unit methods since the last reset, and the calls timed. */
const unitTime = { ms: 0, calls: 0 };

/** Wraps method `name` of `proto` with a timer that adds to {@link unitTime}. */
function timeMethod(proto: object, name: string): void {
  const p = proto as Record<string, (...args: unknown[]) => unknown>;
  const inner = p[name]!;
  p[name] = function (this: unknown, ...args: unknown[]): unknown {
    const t0 = performance.now();
    const r = inner.apply(this, args);
    unitTime.ms += performance.now() - t0;
    unitTime.calls++;
    return r;
  };
}

/**
 * What a timed call with an empty body measures: the interval between two consecutive
 * `performance.now()` reads, ms (the median of 5 runs of 200 000).
 */
function timerCostMs(): number {
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const n = 200_000;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      sum += performance.now() - t0;
    }
    runs.push(sum / n);
  }
  return median(runs);
}

/** The units-only pass: per trace, each target's median ms inside doorbells and translations. */
interface UnitBreakdown {
  readonly trace: string;
  readonly oursMs: number;
  readonly qemuMs: number;
  /** qemu ms ÷ ours ms: above 1, ours spends less time in its unit. */
  readonly ratio: number;
  /** Timed calls per replay (doorbells and translations). */
  readonly calls: number;
}

async function breakdown(files: readonly string[]): Promise<{ timerNs: number; rows: UnitBreakdown[] }> {
  timeMethod(VtdTraceGuest.prototype, 'ring');
  timeMethod(SmmuTraceGuest.prototype, 'issue');
  for (const unit of [VtdIommu, SmmuIommu, QemuVtdUnit, QemuSmmuUnit]) timeMethod(unit.prototype, 'translate');
  const cost = timerCostMs();
  const rows: UnitBreakdown[] = [];
  for (const f of files) {
    const ms: Record<ReplayTarget, number[]> = { ioasid: [], qemu: [] };
    let calls = 0;
    unitTime.ms = unitTime.calls = 0;
    await compareReplay(join(TRACES, f), {
      rounds: BREAKDOWN_ROUNDS,
      warmup: 1,
      onRound: (r) => {
        if (!r.warmup) ms[r.target].push(unitTime.ms - unitTime.calls * cost);
        calls = unitTime.calls;
        unitTime.ms = unitTime.calls = 0;
      },
    });
    const oursMs = median(ms.ioasid);
    const qemuMs = median(ms.qemu);
    rows.push({ trace: f, oursMs, qemuMs, ratio: qemuMs / oursMs, calls });
  }
  return { timerNs: cost * 1e6, rows };
}

/** The baseline's IOTLB counters of the last round, whichever the vendor. */
function baselineIotlb(c: ReplayComparison): QemuIotlbStats | undefined {
  return c.qemu.last.baseline?.iotlb;
}

/** A target's numbers for the JSON document. */
function summary(t: TargetSummary) {
  return { commandsPerSecond: t.commandsPerSecond, wallMs: t.wallMs, setupMs: t.setupMs, roundsMs: t.roundsMs };
}

function mega(n: number): string {
  return `${(n / 1e6).toFixed(3)} M`;
}

function range(lo: number, hi: number, digits: number): string {
  return `${lo.toFixed(digits)}–${hi.toFixed(digits)}`;
}

function printBreakdown(timerNs: number, rows: readonly UnitBreakdown[]): void {
  console.log(
    `\ninside the units only (doorbells + translations; ${BREAKDOWN_ROUNDS} rounds after 1 warm-up, medians; ` +
      `timer cost ${timerNs.toFixed(0)} ns per call subtracted)\n`,
  );
  const head = ['trace', 'timed calls', 'ours ms', 'qemu ms', 'ratio qemu ms / ours ms'];
  const body = rows.map((r) => [
    r.trace,
    String(r.calls),
    r.oursMs.toFixed(1),
    r.qemuMs.toFixed(1),
    r.ratio.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
}

async function main(): Promise<void> {
  let files: string[];
  try {
    files = readdirSync(TRACES)
      .filter((f) => f.endsWith('.log') || f.endsWith('.log.xz'))
      .sort();
  } catch (e) {
    console.error(`${NAME}: cannot read the traces directory ${TRACES}: ${(e as Error).message}`);
    process.exit(2);
  }
  if (files.length === 0) {
    console.error(`${NAME}: no *.log or *.log.xz trace in ${TRACES}`);
    process.exit(2);
  }
  const machine = machineLine();
  if (!JSON_OUT) {
    console.log(machine);
    console.log(
      `${ROUNDS} measured rounds after ${WARMUP} warm-up rounds per trace, interleaved ioasid, qemu; medians (min–max)` +
        `${typeof (globalThis as { gc?: unknown }).gc === 'function' ? '; GC before every replay' : ''}\n`,
    );
  }
  const results: ReplayComparison[] = [];
  for (const f of files) {
    results.push(await compareReplay(join(TRACES, f), { rounds: ROUNDS, warmup: WARMUP }));
  }
  const ok = results.every((c) => c.correct && c.sameWork && c.uninterpreted === 0);
  const units = BREAKDOWN ? await breakdown(files) : undefined;

  if (JSON_OUT) {
    console.log(
      JSON.stringify(
        {
          bench: NAME,
          machine,
          rounds: ROUNDS,
          warmup: WARMUP,
          traces: results.map((c) => ({
            trace: c.file.split('/').at(-1),
            vendor: c.vendor,
            lines: c.lines,
            commands: c.commands,
            doorbells: c.doorbells,
            translations: c.translations,
            ours: summary(c.ours),
            qemu: summary(c.qemu),
            ratio: c.ratio,
            baselineIotlb: baselineIotlb(c),
            correct: c.correct,
            sameWork: c.sameWork,
          })),
          ...(units !== undefined ? { unitsOnly: units } : {}),
          ok,
        },
        null,
        2,
      ),
    );
  } else {
    const head = [
      'trace',
      'commands',
      'xlates',
      'ours cmds/s',
      'qemu cmds/s',
      'ours ms',
      'qemu ms',
      'setup ms ours/qemu',
      'ratio ours/qemu',
      'qemu IOTLB full/scans',
      'ok',
    ];
    const body = results.map((c) => {
      const t = baselineIotlb(c);
      return [
        c.file.split('/').at(-1)!,
        String(c.commands),
        String(c.translations),
        mega(c.ours.commandsPerSecond.median),
        mega(c.qemu.commandsPerSecond.median),
        `${c.ours.wallMs.median.toFixed(1)} (${range(c.ours.wallMs.min, c.ours.wallMs.max, 1)})`,
        `${c.qemu.wallMs.median.toFixed(1)} (${range(c.qemu.wallMs.min, c.qemu.wallMs.max, 1)})`,
        `${c.ours.setupMs.median.toFixed(1)}/${c.qemu.setupMs.median.toFixed(1)}`,
        `${c.ratio.median.toFixed(2)} (${range(c.ratio.min, c.ratio.max, 2)})`,
        t === undefined ? '-' : `${t.capacityFlushes}/${t.scans}`,
        c.correct && c.sameWork ? 'yes' : 'NO',
      ];
    });
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]): string =>
      cells.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ');
    console.log(line(head));
    for (const b of body) console.log(line(b));
    if (units !== undefined) printBreakdown(units.timerNs, units.rows);
  }
  if (!ok) {
    console.error(`${NAME}: a replay was not correct on both targets, or they did different work`);
    process.exit(1);
  }
}

await main();
