/**
 * The size of a run: how many units and devices, how many IOVA slots each device's window has,
 * and how much guest RAM a unit needs for its page tables and buffers. Computed before anything
 * is built, so a knob that cannot fit is refused as an option.
 */
import { BENCH_ERRORS } from './errors.js';
import type { ScenarioSpec } from './scenarios.js';
import type { BenchOptions } from './types.js';

const MIB = 2 ** 20;
/** First IOVA of every domain's window: 64 GiB, aligned to any teardown span. */
export const WINDOW_BASE = 2 ** 36;
/** The smallest VT-d teardown span: 2^19 pages, above CAP.MAMV's 2^18, so domain-selective. */
const MIN_TEARDOWN_SPAN = 2 ** 31;
/** Slots beyond twice the live entries (and the lazy batch), so a free slot is always there. */
const SPARE_SLOTS = 16;
/** Guest RAM the buffers that mappings point into take at most (workload.ts), and room for queues and tables. */
const BUFFER_BYTES = 32 * MIB;
const FIXED_BYTES = 8 * MIB;
/** Guest RAM is at most this per unit (mappings of a window this large need fewer live entries). */
const MAX_GUEST_RAM = 1024 * MIB;

/** What a run builds. */
export interface RunGeometry {
  units: number;
  devicesPerUnit: number;
  /** Live mappings per device. */
  perDevice: number;
  /** IOVA slots per device window. */
  slotCount: number;
  /** Bytes of a device's window. */
  windowBytes: number;
  /** Guest RAM per unit. */
  guestRamBytes: number;
  /** VT-d rebuild: bytes unmapped at once from WINDOW_BASE (a power of two ≥ 2^31). */
  teardownSpan: number;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The geometry of scenario `spec` with knobs `o` (BenchOptionError when it cannot fit). */
export function runGeometry(o: BenchOptions, spec: ScenarioSpec): RunGeometry {
  const units = spec.multiUnit ? o.guests : 1;
  const devicesPerUnit = spec.devicesPerUnit;
  const perDevice = Math.ceil(o.liveEntries / (units * devicesPerUnit));
  const slotCount = 2 * perDevice + (spec.policy === 'lazy' ? o.batch : 0) + SPARE_SLOTS;
  const windowBytes = slotCount * spec.maxPages * 4096;
  // Leaf tables for every page the window can map, twice over for the levels above and the
  // table pages a lazy flush queue holds back.
  const tableBytes = devicesPerUnit * 2 * (Math.ceil((slotCount * spec.maxPages) / 512) + 16) * 4096;
  const need = BUFFER_BYTES + FIXED_BYTES + tableBytes;
  if (windowBytes > WINDOW_BASE || need > MAX_GUEST_RAM) throw BENCH_ERRORS.window(o.scenario, o.liveEntries);
  return {
    units,
    devicesPerUnit,
    perDevice,
    slotCount,
    windowBytes,
    guestRamBytes: Math.max(spec.guestRamMib * MIB, Math.ceil(need / MIB) * MIB),
    teardownSpan: Math.max(MIN_TEARDOWN_SPAN, nextPow2(windowBytes)),
  };
}
