/**
 * The replay's line counts by kind (`ReplayResult.byKind`): typed arrays indexed by reason and
 * event id in the hot loop, turned into `reason:event` records at the end. Every line lands
 * either in a command, a doorbell or a translation, or in one of these counts.
 */
import { EVENT_SPECS } from './events.js';
import type { ReplayByKind } from './types.js';

/** Why an interpreted line is not replayed (`ReplayByKind.skipped`). */
export const Skip = {
  QemuInternal: 0,
  Decoded: 1,
  Device: 2,
  Console: 3,
  Setup: 4,
  EmptyDoorbell: 5,
  UntracedSlot: 6,
  TraceError: 7,
} as const;

const SKIP_NAMES = [
  'qemu-internal',
  'decoded',
  'device',
  'console',
  'setup',
  'empty-doorbell',
  'untraced-slot',
  'trace-error',
] as const;

/** Why a line could not be interpreted (`ReplayByKind.uninterpreted`), for a known event. */
export const Bad = {
  Malformed: 0,
  Orphan: 1,
  Unencodable: 2,
  Inconsistent: 3,
} as const;

const BAD_NAMES = ['malformed', 'orphan', 'unencodable', 'inconsistent'] as const;

const EVENTS = EVENT_SPECS.length;

/** Counts of skipped and uninterpreted lines. */
export class LineCounts {
  readonly #skipped = new Float64Array(SKIP_NAMES.length * EVENTS);
  readonly #bad = new Float64Array(BAD_NAMES.length * EVENTS);
  /** Uninterpreted lines under keys of their own. */
  readonly #named = new Map<string, number>();
  #noEvent = 0;
  #blank = 0;
  /** Lines counted as uninterpreted so far. */
  uninterpreted = 0;

  /** A line of event `ev` interpreted and not replayed, for `reason` ({@link Skip}). */
  skip(reason: number, ev: number): void {
    this.#skipped[reason * EVENTS + ev]!++;
  }

  /** A blank line. */
  blank(): void {
    this.#blank++;
  }

  /** A line of known event `ev` that could not be interpreted, for `reason` ({@link Bad}). */
  bad(reason: number, ev: number): void {
    this.#bad[reason * EVENTS + ev]!++;
    this.uninterpreted++;
  }

  /** A well-formed line of an event the replay does not know. */
  unknownEvent(name: string): void {
    this.badNamed(`unknown-event:${name}`);
  }

  /** A line that could not be interpreted, under a key of its own (`unencodable:ATC_INV`). */
  badNamed(key: string): void {
    this.#named.set(key, (this.#named.get(key) ?? 0) + 1);
    this.uninterpreted++;
  }

  /** A line without a `SEC.USEC:event` prefix. */
  noEvent(): void {
    this.#noEvent++;
    this.uninterpreted++;
  }

  /** The skipped and uninterpreted records of `ReplayByKind`. */
  records(): Pick<ReplayByKind, 'skipped' | 'uninterpreted'> {
    const skipped: Record<string, number> = {};
    const uninterpreted: Record<string, number> = {};
    collect(this.#skipped, SKIP_NAMES, skipped);
    collect(this.#bad, BAD_NAMES, uninterpreted);
    if (this.#blank > 0) skipped['blank'] = this.#blank;
    for (const [key, n] of this.#named) uninterpreted[key] = n;
    if (this.#noEvent > 0) uninterpreted['no-event'] = this.#noEvent;
    return { skipped: sorted(skipped), uninterpreted: sorted(uninterpreted) };
  }
}

function collect(counts: Float64Array, reasons: readonly string[], into: Record<string, number>): void {
  for (let r = 0; r < reasons.length; r++) {
    for (let ev = 0; ev < EVENTS; ev++) {
      const n = counts[r * EVENTS + ev]!;
      if (n > 0) into[`${reasons[r]!}:${EVENT_SPECS[ev]!.name}`] = n;
    }
  }
}

/** The record with its keys sorted, so that JSON output is stable. */
export function sorted(r: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k]!;
  return out;
}
