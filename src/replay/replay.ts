/**
 * `replayTrace`: replays a QEMU 7.2 vIOMMU trace log (traces/README.md) on this project's
 * emulated unit at full speed; trace timestamps only order the lines.
 *
 * The unit is made to match the trace before the first line is replayed: the vendor is that of
 * the first VT-d or SMMUv3 event, and a VT-d trace's root-table mode comes from its
 * `vtd_reg_dmar_root` line (the lines before it are held back until it is seen). The unit is
 * configured as QEMU was in the captures (VT-d: 39-bit address width, interrupt remapping;
 * scalable mode with device-TLBs; SMMUv3: stage 1 with range invalidation), and brought up by
 * the guest driver model; the vendor replayers (vtd-replayer.ts, smmu-replayer.ts) do the rest.
 *
 * The target: this project's units (`Iommufd.vtdCreate` / `smmuCreate`), or the QEMU-style
 * baseline (src/baseline) built with the same options (the baseline SMMUv3 keeps QEMU 7.2's ID
 * registers for what the options leave open); the same guest and replayers run on either.
 */
import { QemuSmmuUnit, QemuVtdUnit, type QemuSmmuStats, type QemuVtdStats } from '../baseline/index.js';
import { Iommufd } from '../iommufd.js';
import { Bad, LineCounts } from './counts.js';
import { EVENT_SPECS, Ev } from './events.js';
import { REPLAY_ERRORS } from './errors.js';
import { LineStatus, parseTraceLine, TraceEvent } from './line-parser.js';
import type { TraceReplayer } from './replayer.js';
import { SmmuTraceGuest } from './smmu-guest.js';
import { SmmuReplayer } from './smmu-replayer.js';
import { LineCutter, openTrace, type TraceSource } from './trace-input.js';
import type { ReplayOptions, ReplayResult, TraceVendor } from './types.js';
import { REPLAY_TARGETS, type ReplayTarget } from './units.js';
import { VtdTraceGuest } from './vtd-guest.js';
import { VtdReplayer } from './vtd-replayer.js';

const DEFAULT_GUEST_RAM = 64 * 2 ** 20;
const MIN_GUEST_RAM = 16 * 2 ** 20;
const DEFAULT_PROGRESS_LINES = 65536;
/** Host memory beyond guest RAM: the IOTLB and the other shared tables. */
const HOST_MEMORY_EXTRA = 64 * 2 ** 20;
/** Lines held back while waiting for a VT-d trace's root-table mode; past this, legacy is assumed. */
const DETECT_LINES = 65536;

/** What the first lines of a trace say about the unit it needs. */
class UnitDetector {
  vendor: TraceVendor | undefined;
  scalable: boolean | undefined;
  lines = 0;
  readonly #ev = new TraceEvent();

  constructor(opts: ReplayOptions) {
    this.vendor = opts.vendor;
    this.scalable = opts.vtdScalable;
  }

  /** Whether enough is known to build the unit. */
  get done(): boolean {
    if (this.vendor === undefined) return false;
    return this.vendor === 'smmuv3' || this.scalable !== undefined || this.lines >= DETECT_LINES;
  }

  /** Looks at one line. */
  line(buf: Uint8Array, start: number, end: number): void {
    this.lines++;
    const ev = parseTraceLine(buf, start, end, this.#ev);
    if (ev < 0) return;
    const vendor = EVENT_SPECS[ev]!.vendor;
    if (this.vendor === undefined && vendor !== 'any') this.vendor = vendor;
    if (ev === Ev.VtdRegDmarRoot && this.scalable === undefined) this.scalable = this.#ev.nums[1] !== 0;
  }
}

/** The unit, its guest and its replayer. */
interface Rig {
  readonly replayer: TraceReplayer;
  readonly vendor: TraceVendor;
  /** The baseline unit's counters (target 'qemu'), else undefined. */
  baselineStats(): QemuVtdStats | QemuSmmuStats | undefined;
  close(): Promise<void>;
}

/** The VT-d unit options of the captures (QEMU `intel-iommu,intremap=on,aw-bits=39`, and the SM runs). */
function vtdOptions(scalable: boolean, guestRamBytes: number) {
  return {
    guestRamBytes,
    addressWidth: 39,
    interruptRemapping: true,
    scalableMode: scalable,
    deviceTlb: scalable,
  } as const;
}

function buildRig(
  target: ReplayTarget,
  vendor: TraceVendor,
  scalable: boolean,
  guestRamBytes: number,
  counts: LineCounts,
): Rig {
  if (target === 'qemu') {
    if (vendor === 'vtd') {
      const unit = new QemuVtdUnit(vtdOptions(scalable, guestRamBytes));
      return baselineRig(unit, vendor, () => new VtdReplayer(new VtdTraceGuest(unit, scalable), counts, scalable));
    }
    const unit = new QemuSmmuUnit({ guestRamBytes, ril: true });
    return baselineRig(unit, vendor, () => new SmmuReplayer(new SmmuTraceGuest(unit), counts));
  }
  const fd = Iommufd.open({ memoryBytes: guestRamBytes + HOST_MEMORY_EXTRA });
  try {
    const replayer =
      vendor === 'vtd'
        ? new VtdReplayer(
            new VtdTraceGuest(fd.vtdCreate(vtdOptions(scalable, guestRamBytes)), scalable),
            counts,
            scalable,
          )
        : new SmmuReplayer(new SmmuTraceGuest(fd.smmuCreate({ guestRamBytes, ril: true })), counts);
    return { replayer, vendor, baselineStats: () => undefined, close: () => fd.close() };
  } catch (e) {
    void fd.close();
    throw e;
  }
}

/** A rig over a baseline unit; the unit is closed if the guest cannot be brought up. */
function baselineRig(unit: QemuVtdUnit | QemuSmmuUnit, vendor: TraceVendor, makeReplayer: () => TraceReplayer): Rig {
  try {
    const replayer = makeReplayer();
    return {
      replayer,
      vendor,
      baselineStats: () => unit.stats(),
      close: () => {
        unit.close();
        return Promise.resolve();
      },
    };
  } catch (e) {
    unit.close();
    throw e;
  }
}

function checkOptions(opts: ReplayOptions): void {
  if (opts.vendor !== undefined && opts.vendor !== 'vtd' && opts.vendor !== 'smmuv3')
    throw REPLAY_ERRORS.vendor(String(opts.vendor));
  if (opts.target !== undefined && !REPLAY_TARGETS.includes(opts.target))
    throw REPLAY_ERRORS.target(String(opts.target));
  const ram = opts.guestRamBytes;
  if (ram !== undefined && !(Number.isInteger(ram) && ram >= MIN_GUEST_RAM && ram % 4096 === 0 && ram <= 2 ** 31))
    throw REPLAY_ERRORS.option('guestRamBytes', ram, 'a multiple of 4096 in [16 MiB, 2 GiB]');
  const every = opts.progressEveryLines;
  if (every !== undefined && !(Number.isInteger(every) && every > 0))
    throw REPLAY_ERRORS.option('progressEveryLines', every, 'a positive integer');
}

/**
 * Replays the trace `source` (a file path or URL, plain or `.xz`, or a stream of its text) on a
 * new emulated unit and returns what it did. Lines it cannot interpret are counted by kind,
 * never thrown; it rejects only when the input cannot be read (ENOENT, or a failing or missing
 * `xz`), when the trace names no unit, or when `opts.signal` aborts it.
 */
export async function replayTrace(source: TraceSource, opts: ReplayOptions = {}): Promise<ReplayResult> {
  checkOptions(opts);
  const t0 = performance.now();
  const input = await openTrace(source, opts.totalBytes ?? 0);
  const guestRam = opts.guestRamBytes ?? DEFAULT_GUEST_RAM;
  const every = opts.progressEveryLines ?? DEFAULT_PROGRESS_LINES;
  const onProgress = opts.onProgress;
  const target = opts.target ?? 'ioasid';
  const counts = new LineCounts();
  const ev = new TraceEvent();
  let lines = 0;
  let replayer: TraceReplayer | undefined;

  const replayLine = (buf: Uint8Array, start: number, end: number): void => {
    lines++;
    const status = parseTraceLine(buf, start, end, ev);
    if (status >= 0) replayer!.onEvent(status, ev);
    else if (status === LineStatus.Blank) counts.blank();
    else if (status === LineStatus.Malformed) counts.bad(Bad.Malformed, ev.ev);
    else if (status === LineStatus.UnknownEvent) counts.unknownEvent(ev.name());
    else counts.noEvent();
    if (onProgress !== undefined && lines % every === 0) {
      onProgress({ lines, bytesRead: input.counter.bytes, totalBytes: input.totalBytes });
    }
  };
  const cutter = new LineCutter(replayLine);
  const detector = new UnitDetector(opts);
  const detect = new LineCutter((buf, start, end) => detector.line(buf, start, end));
  const held: Uint8Array[] = [];
  let rig: Rig | undefined;
  let setupMs = 0;
  const start = (): void => {
    if (detector.vendor === undefined) throw REPLAY_ERRORS.noVendor();
    const s0 = performance.now();
    rig = buildRig(target, detector.vendor, detector.scalable ?? false, guestRam, counts);
    setupMs = performance.now() - s0;
    replayer = rig.replayer;
    for (const chunk of held) cutter.push(chunk);
    held.length = 0;
  };

  try {
    for await (const chunk of input.chunks) {
      if (opts.signal?.aborted === true) throw REPLAY_ERRORS.aborted();
      if (rig !== undefined) {
        cutter.push(chunk);
        continue;
      }
      held.push(chunk);
      detect.push(chunk);
      if (detector.done) start();
    }
    if (rig === undefined) {
      detect.end();
      start();
    }
    cutter.end();
    replayer!.finish();
    onProgress?.({ lines, bytesRead: input.counter.bytes, totalBytes: input.totalBytes });
    const r = replayer!;
    const c = r.counters;
    const wallMs = performance.now() - t0;
    const perSecond = (n: number): number => (wallMs > 0 ? (n * 1000) / wallMs : 0);
    const maps = r.mappingCounts();
    const records = counts.records();
    const baseline = rig!.baselineStats();
    return {
      file: input.name,
      vendor: rig!.vendor,
      lines,
      bytes: input.counter.bytes,
      commands: c.commands,
      doorbells: c.doorbells,
      barriers: c.barriers,
      uninterpreted: counts.uninterpreted,
      commandErrors: c.commandErrors,
      byKind: { commands: r.commandKinds(), ...records },
      translations: {
        total: c.translations,
        mapped: maps.mapped,
        unmapped: maps.unmapped,
        faults: c.translationFaults,
        mismatches: c.translationMismatches,
      },
      setup: r.setup(),
      throughput: {
        wallMs,
        setupMs,
        commandsPerSecond: perSecond(c.commands),
        doorbellsPerSecond: perSecond(c.doorbells),
        linesPerSecond: perSecond(lines),
      },
      target,
      ...(baseline !== undefined ? { baseline } : {}),
    };
  } finally {
    // Stops a decompressor that is still running (an error, or an abort, mid-file).
    await (input.chunks as AsyncGenerator<Uint8Array>).return?.(undefined);
    await rig?.close();
  }
}
