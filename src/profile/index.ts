/**
 * The profile library behind `ioasid profile` (issue 7 item 6): a workload of the built CLI run
 * under `--cpu-prof` in a child process, one source-mapped CPU profile and 0x flamegraph per
 * thread (workers included), one merged speedscope file, and GC and deoptimization counts from
 * V8's trace lines. The CLI only parses and prints.
 */
export { readCpuProfile, cpuProfileThreadId, sampleWeights, type CallFrame, type CpuProfile } from './cpuprofile.js';
export { ProfileError, type ProfileErrorKind } from './errors.js';
export { find0x, renderFlamegraphs } from './flamegraph.js';
export {
  CHILD_NODE_FLAGS,
  profileWorkload,
  type ProfileOptions,
  type ProfileResult,
  type ThreadProfile,
} from './run.js';
export { displayPath, ProfileSourceMapper, type MappedCounts } from './source-map.js';
export {
  SPEEDSCOPE_SCHEMA,
  speedscopeOf,
  type SpeedscopeFile,
  type SpeedscopeFrame,
  type SpeedscopeSampledProfile,
} from './speedscope.js';
export { summarizeThread, type HotFunction, type ThreadSummary } from './thread-summary.js';
export { V8TraceCounter, type Count, type V8TraceCounts } from './v8-trace.js';
