/**
 * GC and deoptimization counts from V8's own trace lines: a process run with `--trace-gc` prints
 * one line per collection and `--trace-deopt` one `[bailout …]` line per deoptimization, from
 * every isolate (worker threads included) to stdout. The lines name an isolate (GC) or nothing
 * (deopts), not a thread, so the counts are the whole process's. Observed on Node 20 (V8 11.3):
 *
 *   [1223:0x149b1c40]       25 ms: Scavenge 4.1 (4.2) -> 3.3 (5.2) MB, 0.56 / 0.00 ms  (average mu = …) allocation failure;
 *   [bailout (kind: deopt-eager, reason: wrong map): begin. deoptimizing 0x… <JSFunction f (sfi = 0x…)>, …]
 *   [marking dependent code 0x… <Code TURBOFAN> (…) (opt id 3) for deoptimization, reason: code dependencies]
 */

/** A name and how often it occurred. */
export interface Count {
  name: string;
  count: number;
}

/** What the trace lines say. */
export interface V8TraceCounts {
  gc: {
    /** Collections, by kind ('Scavenge', 'Mark-Compact', 'Mark-Compact (reduce)' …), most frequent first. */
    total: number;
    byKind: Count[];
    /** Pause time of them all, ms (the first figure after the heap sizes). */
    pauseMs: number;
    /** Isolates (main thread and workers) that collected at least once. */
    isolates: number;
  };
  deopts: {
    /** Deoptimizations (bailouts), by kind ('deopt-eager', 'deopt-lazy', 'deopt-soft'). */
    total: number;
    byKind: Count[];
    /** The most frequent reasons and functions ('(anonymous)' for a function without a name). */
    topReasons: Count[];
    topFunctions: Count[];
    /** Optimized code marked for (lazy) deoptimization because an assumption it made broke. */
    marked: number;
  };
}

// Not anchored to the line's start: threads print concurrently, so a line can land in the middle
// of another thread's line that V8 prints in several pieces.
const GC_LINE = /\[\d+:(0x[0-9a-f]+)\]\s+[\d.]+ ms: (.+?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, ([\d.]+)/g;
const BAILOUT = /\[bailout \(kind: ([^,]+), reason: ([^)]*)\)(?:[^<[]*<JSFunction ?([^ >]*) \(sfi)?/g;
const MARKED = /\[marking dependent code /g;
/** Reasons and functions listed. */
const TOP = 5;

function bump(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

function sorted(m: Map<string, number>, limit = Infinity): Count[] {
  return [...m]
    .map(([name, count]) => ({ name, count }))
    .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name))
    .slice(0, limit);
}

/** Counts trace lines fed to it one at a time. */
export class V8TraceCounter {
  readonly #gcKinds = new Map<string, number>();
  readonly #isolates = new Set<string>();
  #pauseMs = 0;
  readonly #deoptKinds = new Map<string, number>();
  readonly #reasons = new Map<string, number>();
  readonly #functions = new Map<string, number>();
  #marked = 0;

  /** Counts the trace records in one line of output (anything else is ignored). */
  line(text: string): void {
    if (!text.includes('[')) return;
    for (const gc of text.matchAll(GC_LINE)) {
      this.#isolates.add(gc[1]!);
      bump(this.#gcKinds, gc[2]!);
      this.#pauseMs += Number(gc[3]);
    }
    for (const b of text.matchAll(BAILOUT)) {
      bump(this.#deoptKinds, b[1]!);
      bump(this.#reasons, b[2]!);
      bump(this.#functions, b[3] === undefined || b[3] === '' ? '(anonymous)' : b[3]);
    }
    this.#marked += text.match(MARKED)?.length ?? 0;
  }

  /** The counts so far. */
  counts(): V8TraceCounts {
    const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
    return {
      gc: {
        total: total(this.#gcKinds),
        byKind: sorted(this.#gcKinds),
        pauseMs: this.#pauseMs,
        isolates: this.#isolates.size,
      },
      deopts: {
        total: total(this.#deoptKinds),
        byKind: sorted(this.#deoptKinds),
        topReasons: sorted(this.#reasons, TOP),
        topFunctions: sorted(this.#functions, TOP),
        marked: this.#marked,
      },
    };
  }
}
