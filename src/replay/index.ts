/**
 * Replay of QEMU 7.2 vIOMMU trace logs (issue 7, item 3): `replayTrace` and its types, on this
 * project's units or on the QEMU-style baseline (item 4), and `compareReplay`, which runs both
 * interleaved. The CLI's `ioasid replay` is a thin face over this.
 */
export { replayTrace } from './replay.js';
export {
  compareReplay,
  type CompareReplayOptions,
  type CompareRound,
  type ReplayComparison,
  type Spread,
  type TargetSummary,
} from './compare.js';
export { REPLAY_TARGETS, type ReplayTarget, type ReplayUnit } from './units.js';
export type { TraceSource } from './trace-input.js';
export type {
  ReplayByKind,
  ReplayDevice,
  ReplayOptions,
  ReplayProgress,
  ReplayResult,
  ReplaySetup,
  ReplayThroughput,
  ReplayTranslations,
  TraceVendor,
} from './types.js';
export { LineStatus, parseLine, parseTraceLine, TraceEvent } from './line-parser.js';
export { Ev, EVENT_SPECS, type EventId, type EventSpec } from './events.js';
