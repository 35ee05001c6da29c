/**
 * V8's CPU profiles as `node --cpu-prof` writes them (the DevTools protocol's `Profiler.Profile`):
 * their shape, reading one, and which thread wrote it. Node names each file
 * `CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile`; thread 0 is the main thread.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/** Where a function is: its name and script, and its 0-based line and column (-1 for native frames). */
export interface CallFrame {
  functionName: string;
  scriptId: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

/** Samples by 1-based source line within a node's function. */
export interface PositionTick {
  line: number;
  ticks: number;
}

/** A node of the call tree. */
export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
  positionTicks?: PositionTick[];
  deoptReason?: string;
}

/** A CPU profile: the call tree, and the sampled node of every sample with the µs since the previous one. */
export interface CpuProfile {
  nodes: ProfileNode[];
  /** µs, on the process's monotonic clock. */
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Reads and checks a `.cpuprofile` file (throws on a file that is not one). */
export function readCpuProfile(path: string): CpuProfile {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Partial<CpuProfile>;
  if (!Array.isArray(p.nodes) || typeof p.startTime !== 'number' || typeof p.endTime !== 'number')
    throw new Error(`${path} is not a V8 CPU profile`);
  return p as CpuProfile;
}

/** The thread id in a `--cpu-prof` file name, or undefined when the name is not Node's. */
export function cpuProfileThreadId(path: string): number | undefined {
  const m = /^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(basename(path));
  return m === null ? undefined : Number(m[1]);
}

/** The time each sample stands for, µs: until the next sample, the last one until the profile's end. */
export function sampleWeights(p: CpuProfile): Float64Array {
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  const w = new Float64Array(samples.length);
  let t = p.startTime;
  const times = new Float64Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    times[i] = t;
  }
  for (let i = 0; i < samples.length; i++) {
    const next = i + 1 < samples.length ? times[i + 1]! : p.endTime;
    // V8 occasionally records a sample slightly out of order: never a negative weight.
    w[i] = Math.max(0, next - times[i]!);
  }
  return w;
}
