/**
 * One run of a scenario on one vendor: build the units, guests and devices on a fresh iommufd,
 * map the live entries, warm up, measure (closed loop, or open loop on a schedule; with host DMA
 * on worker threads alongside), then the final sync and the correctness gate. Returns what it
 * measured; a hook may look at the state between the final sync and the gate (state.ts).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Iommufd } from '../iommufd.js';
import type { BenchGuest, BenchGuestOptions, UnitCounters } from './bench-guest.js';
import { CorrectnessLog, probeAgainstModel } from './check.js';
import type { BenchDevice } from './device.js';
import { runGeometry, WINDOW_BASE, type RunGeometry } from './geometry.js';
import { LatencyHistogram } from './histogram.js';
import { runFaults } from './faults.js';
import { HostDma } from './host-dma.js';
import type { DropperCounts } from './invalidation-dropper.js';
import { IovaSlots } from './iova-slots.js';
import { Prng } from './prng.js';
import { DomainModel } from './reference-model.js';
import { SCENARIO_SPECS, type ScenarioSpec } from './scenarios.js';
import { createSmmuGuest } from './smmu-guest.js';
import { benchState, type BenchStateHook } from './state.js';
import type { BenchOptions, BenchRun, CacheFigures, ScheduleFigures, TimelinePoint } from './types.js';
import { createVtdGuest } from './vtd-guest.js';
import { Workload } from './workload.js';

const MIB = 2 ** 20;
/** Host memory beyond the guests' RAM. */
const HOST_EXTRA_BYTES = 64 * MIB;
/** StreamIDs / source ids of a unit's devices: 0x10, 0x11, … */
const FIRST_SID = 0x10;
/** Throughput-over-time sampling interval, and how often the run lets the event loop in (progress bars). */
const TIMELINE_MS = 50;
const YIELD_MS = 100;
/** Open loop: gaps longer than this sleep (Atomics.wait) rather than spin. */
const SLEEP_ABOVE_MS = 2;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Called during the measured window with the fraction done, in [0, 1]. */
export type RunProgress = (fraction: number) => void;

const createGuest = { vtd: createVtdGuest, smmu: createSmmuGuest } as const;

/** Builds the units and devices of scenario `spec` on `fd`, each device attached to a domain of its own. */
function buildDevices(fd: Iommufd, o: BenchOptions, spec: ScenarioSpec, g: RunGeometry): BenchDevice[] {
  const guestOpts: BenchGuestOptions = {
    policy: spec.policy,
    batch: o.batch,
    guestRamBytes: g.guestRamBytes,
    ats: !o.atsOff && Array.from({ length: g.devicesPerUnit }, (_, k) => spec.ats(k)).some(Boolean),
    teardownSpan: g.teardownSpan,
    windowBase: WINDOW_BASE,
  };
  const devices: BenchDevice[] = [];
  for (let u = 0; u < g.units; u++) {
    const guest = createGuest[o.vendor](fd, guestOpts, o.target);
    for (let k = 0; k < g.devicesPerUnit; k++) {
      const sid = FIRST_SID + k;
      const ats = spec.ats(k) && !o.atsOff;
      guest.attach(sid, ats);
      devices.push({
        guest,
        unit: u,
        sid,
        ats,
        live: g.perDevice,
        model: new DomainModel(WINDOW_BASE, g.slotCount, spec.maxPages),
        slots: new IovaSlots(g.slotCount),
      });
    }
  }
  return devices;
}

function sumCounters(guests: readonly BenchGuest[]): UnitCounters & { doorbells: number } {
  const s = { commands: 0, barriers: 0, iotlbHits: 0, iotlbMisses: 0, atcHits: 0, doorbells: 0 };
  for (const g of guests) {
    const c = g.counters();
    s.commands += c.commands;
    s.barriers += c.barriers;
    s.iotlbHits += c.iotlbHits;
    s.iotlbMisses += c.iotlbMisses;
    s.atcHits += c.atcHits;
    s.doorbells += g.port.doorbells;
  }
  return s;
}

/** Waits until `performance.now()` reaches `due`: sleeps through long gaps, spins through short ones. */
function waitUntil(due: number): void {
  for (let now = performance.now(); now < due; now = performance.now()) {
    if (due - now > SLEEP_ABOVE_MS) Atomics.wait(sleepCell, 0, 0, due - now - 1);
  }
}

/**
 * Runs scenario `o.scenario` once on `o.vendor` (options already resolved). `atEnd`, when given,
 * sees the state after the final sync, before the correctness probe translates anything.
 */
export async function runOnce(o: BenchOptions, onProgress?: RunProgress, atEnd?: BenchStateHook): Promise<BenchRun> {
  if (o.scenario === 'faults') {
    if (atEnd !== undefined) throw new RangeError('the faults scenario leaves no guest state to inspect');
    return runFaults(o, onProgress);
  }
  const spec = SCENARIO_SPECS[o.scenario];
  const geometry = runGeometry(o, spec);
  const fd = Iommufd.open({
    memoryBytes: geometry.units * geometry.guestRamBytes + HOST_EXTRA_BYTES,
    iotlb: { entries: o.iotlbEntries, shards: o.shards },
  });
  let host: HostDma | undefined;
  try {
    const devices = buildDevices(fd, o, spec, geometry);
    const rng = new Prng(o.seed);
    const log = new CorrectnessLog();
    const w = new Workload(rng, devices, { dma: o.dma, lazy: spec.policy === 'lazy', maxPages: spec.maxPages, log });
    const guests = w.guests;
    for (const dev of devices) w.populate(dev, () => spec.pages(rng));
    const dropped: DropperCounts = { seen: 0, dropped: 0 };
    if (o.dropInvalidationsFrom !== undefined)
      for (const g of guests) g.dropInvalidations(o.dropInvalidationsFrom, dropped);
    for (let i = 0; i < o.warmupOps; i++) spec.op(w, i);
    if (o.hostDmaThreads > 0) host = await HostDma.start(fd, o.vendor, o.hostDmaThreads);

    const hist = new LatencyHistogram();
    for (const g of guests) g.port.histogram = hist;
    const before = sumCounters(guests);
    const cacheBefore = fd.cacheStats();
    const timeline: TimelinePoint[] = [];
    const open = o.rate !== undefined;
    const period = open ? 1000 / o.rate! : 0;
    const schedule: ScheduleFigures | undefined = open ? { rate: o.rate!, lateOps: 0, maxLagUs: 0 } : undefined;
    host?.begin();
    const t0 = performance.now();
    const tEnd = o.durationMs !== undefined ? t0 + o.durationMs : Infinity;
    let lastSample = t0;
    let lastCommands = before.commands;
    let lastYield = t0;
    let n = 0;
    for (;;) {
      if (o.durationMs === undefined ? n >= o.ops : (n & 15) === 0 && performance.now() >= tEnd) break;
      if (schedule !== undefined) {
        const due = t0 + n * period;
        if (due >= tEnd) break;
        waitUntil(due);
        const lag = performance.now() - due;
        if (lag > period) schedule.lateOps++;
        if (lag * 1000 > schedule.maxLagUs) schedule.maxLagUs = lag * 1000;
        for (const g of guests) g.port.origin = due;
      }
      spec.op(w, o.warmupOps + n);
      n++;
      if ((n & 63) !== 0) continue;
      const now = performance.now();
      if (now - lastSample >= TIMELINE_MS) {
        const commands = sumCounters(guests).commands;
        timeline.push({
          t: (now - t0) / 1000,
          commandsPerSecond: ((commands - lastCommands) * 1000) / (now - lastSample),
        });
        lastSample = now;
        lastCommands = commands;
      }
      if (now - lastYield >= YIELD_MS) {
        onProgress?.(o.durationMs === undefined ? n / o.ops : (now - t0) / o.durationMs);
        await yieldToEventLoop();
        lastYield = performance.now();
      }
    }
    const wallMs = performance.now() - t0;
    // The tail of the run since the last sample (all of it for a short run or a slow machine).
    const tail = t0 + wallMs - lastSample;
    if (tail > 0 && (timeline.length === 0 || tail >= TIMELINE_MS / 4)) {
      timeline.push({
        t: wallMs / 1000,
        commandsPerSecond: ((sumCounters(guests).commands - lastCommands) * 1000) / tail,
      });
    }
    for (const g of guests) {
      g.port.histogram = undefined;
      g.port.origin = Infinity;
    }
    const after = sumCounters(guests);
    const cacheAfter = fd.cacheStats();
    const hostDma = await host?.stop();
    onProgress?.(1);

    // The correctness gate: the final sync, then every page ever mapped against the model.
    w.flushAll();
    if (atEnd !== undefined) await atEnd(benchState(o, fd, devices));
    probeAgainstModel(devices, log);

    const commands = after.commands - before.commands;
    const barriers = after.barriers - before.barriers;
    const perSecond = (x: number): number => (wallMs > 0 ? (x * 1000) / wallMs : 0);
    const hits = after.iotlbHits - before.iotlbHits;
    const misses = after.iotlbMisses - before.iotlbMisses;
    const cache: CacheFigures = {
      iotlbHits: hits,
      iotlbMisses: misses,
      hitRate: hits + misses > 0 ? hits / (hits + misses) : 0,
      atcHits: after.atcHits - before.atcHits,
      fills: cacheAfter.fills - cacheBefore.fills,
      evictions: cacheAfter.evictions - cacheBefore.evictions,
      invalidated: cacheAfter.invalidated - cacheBefore.invalidated,
      overInvalidations: cacheAfter.overInvalidations - cacheBefore.overInvalidations,
      discardedFills: cacheAfter.discardedFills - cacheBefore.discardedFills,
    };
    return {
      ops: n,
      wallMs,
      commands,
      barriers,
      doorbells: after.doorbells - before.doorbells,
      commandsPerSecond: perSecond(commands),
      barriersPerSecond: perSecond(barriers),
      opsPerSecond: perSecond(n),
      barrierLatency: hist.summary(),
      latencyHistogram: hist.buckets(2),
      cache,
      schedule,
      timeline,
      hostDma,
      correctness: log.result(dropped.dropped),
    };
  } finally {
    await host?.abort();
    await fd.close();
  }
}
