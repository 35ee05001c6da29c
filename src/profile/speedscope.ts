/**
 * One speedscope file for every thread of a run (https://www.speedscope.app/file-format-schema.json):
 * the frames of all threads' CPU profiles shared in one table, and one sampled profile per thread,
 * named by the thread, on a common time origin so the threads line up.
 */
import { sampleWeights, type CallFrame, type CpuProfile } from './cpuprofile.js';

/** The schema's URL, which speedscope reads to recognise its format. */
export const SPEEDSCOPE_SCHEMA = 'https://www.speedscope.app/file-format-schema.json';

/** A frame: function name and, where it has one, file and 1-based line and column. */
export interface SpeedscopeFrame {
  name: string;
  file?: string;
  line?: number;
  col?: number;
}

/** One thread: every sample as a stack of frame indexes (outermost first), with the µs it stands for. */
export interface SpeedscopeSampledProfile {
  type: 'sampled';
  name: string;
  unit: 'microseconds';
  startValue: number;
  endValue: number;
  samples: number[][];
  weights: number[];
}

/** A speedscope file. */
export interface SpeedscopeFile {
  $schema: typeof SPEEDSCOPE_SCHEMA;
  shared: { frames: SpeedscopeFrame[] };
  profiles: SpeedscopeSampledProfile[];
  name: string;
  activeProfileIndex: number;
  exporter: string;
}

/** A thread's profile and its name. */
export interface NamedProfile {
  name: string;
  profile: CpuProfile;
}

/** How the merge names things. */
export interface SpeedscopeOptions {
  /** The file's name (speedscope's title). */
  name: string;
  /** Who wrote it. */
  exporter: string;
  /** How a script URL reads as a frame's file. */
  file: (url: string) => string;
}

/** The frames of all threads, each once. */
class FrameTable {
  readonly frames: SpeedscopeFrame[] = [];
  readonly #index = new Map<string, number>();
  readonly #file: (url: string) => string;

  constructor(file: (url: string) => string) {
    this.#file = file;
  }

  indexOf(f: CallFrame): number {
    const name = f.functionName === '' ? '(anonymous)' : f.functionName;
    const key = `${name}\0${f.url}\0${f.lineNumber}\0${f.columnNumber}`;
    let i = this.#index.get(key);
    if (i === undefined) {
      i = this.frames.length;
      const frame: SpeedscopeFrame = { name };
      if (f.url !== '') frame.file = this.#file(f.url);
      if (f.lineNumber >= 0) frame.line = f.lineNumber + 1;
      if (f.columnNumber >= 0) frame.col = f.columnNumber + 1;
      this.frames.push(frame);
      this.#index.set(key, i);
    }
    return i;
  }
}

/** The stack of every node (outermost first, without V8's `(root)`), by node id. */
function stacks(p: CpuProfile, table: FrameTable): Map<number, number[]> {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const out = new Map<number, number[]>();
  const stackOf = (id: number): number[] => {
    const known = out.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id)!;
    const up = parent.get(id);
    const s =
      up === undefined
        ? []
        : node.callFrame.functionName === '(root)'
          ? []
          : [...stackOf(up), table.indexOf(node.callFrame)];
    out.set(id, s);
    return s;
  };
  for (const n of p.nodes) stackOf(n.id);
  return out;
}

/** Merges the threads' profiles into one speedscope file. Runs of the same stack become one weighted sample. */
export function speedscopeOf(threads: readonly NamedProfile[], o: SpeedscopeOptions): SpeedscopeFile {
  const table = new FrameTable(o.file);
  const origin = Math.min(...threads.map((t) => t.profile.startTime));
  const profiles = threads.map(({ name, profile: p }): SpeedscopeSampledProfile => {
    const byNode = stacks(p, table);
    const weights = sampleWeights(p);
    const samples: number[][] = [];
    const w: number[] = [];
    let last = -1;
    (p.samples ?? []).forEach((id, i) => {
      if (id === last) w[w.length - 1]! += weights[i]!;
      else {
        samples.push(byNode.get(id) ?? []);
        w.push(weights[i]!);
        last = id;
      }
    });
    return {
      type: 'sampled',
      name,
      unit: 'microseconds',
      startValue: p.startTime - origin,
      endValue: p.endTime - origin,
      samples,
      weights: w,
    };
  });
  return {
    $schema: SPEEDSCOPE_SCHEMA,
    shared: { frames: table.frames },
    profiles,
    name: o.name,
    activeProfileIndex: 0,
    exporter: o.exporter,
  };
}
