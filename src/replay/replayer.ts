/**
 * What the orchestrator (replay.ts) needs of a vendor's replayer, and the counters both
 * replayers keep. A replayer gets every parsed line in order and turns it into doorbells,
 * translations, or counts by kind.
 */
import type { TraceEvent } from './line-parser.js';
import type { ReplaySetup } from './types.js';

/** The counters of a replay. */
export class ReplayCounters {
  /** Trace commands replayed, barriers included. */
  commands = 0;
  /** Doorbells rung with trace commands. */
  doorbells = 0;
  /** Barriers replayed and seen complete. */
  barriers = 0;
  /** Trace commands the unit rejected, and barriers it did not complete. */
  commandErrors = 0;
  /** Translation lines replayed, and how many faulted or reached the wrong address. */
  translations = 0;
  translationFaults = 0;
  translationMismatches = 0;
  /** Commands the replay issued itself. */
  setupCommands = 0;
}

/** A vendor's replayer. */
export interface TraceReplayer {
  /** The counters. */
  readonly counters: ReplayCounters;
  /** Handles line `e`, parsed as event `ev` (a known, well-formed one). */
  onEvent(ev: number, e: TraceEvent): void;
  /** The input ended: rings what is still pending. */
  finish(): void;
  /** Commands replayed by the vendor's name for them. */
  commandKinds(): Record<string, number>;
  /** Mappings created and removed for translations. */
  mappingCounts(): { mapped: number; unmapped: number };
  /** The setup it recreated. */
  setup(): ReplaySetup;
}
