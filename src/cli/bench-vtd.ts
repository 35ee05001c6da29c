import { Access, Iommufd } from '../index.js';
import { VtdGuestDriver } from '../guest/vtd/index.js';

/** Options of the VT-d guest-driver scenario. */
export interface VtdBenchOptions {
  /** Map/DMA/unmap cycles (each unmap is one PSI and one wait, on one doorbell). */
  cycles: number;
  /** The guest's policy: strict (one flush per unmap) or lazy (flush queue). */
  policy: 'strict' | 'lazy';
  /** Legacy or scalable-mode tables; `scalable-fl`: scalable mode with first-level DMA domains. */
  mode: 'legacy' | 'scalable' | 'scalable-fl';
}

/** What the VT-d scenario measured. */
export interface VtdBenchResult {
  cycles: number;
  /** Wall time of the loop, ms. */
  ms: number;
  /** Invalidation descriptors the unit consumed (waits included), per second of the loop. */
  descriptorsPerSecond: number;
  descriptors: number;
  waits: number;
  /** Latency of an unmap's flush submission: from the guest's IQT write to the wait's status, µs. */
  waitP50Us: number;
  waitP99Us: number;
  /** DMAs that faulted (should be 0), and DMAs that reached an unmapped page (must be 0). */
  faults: number;
  staleHits: number;
}

/**
 * The VT-d guest-driver scenario: a Linux-like guest maps a page, the device writes it by DMA,
 * the guest unmaps it and flushes (strict: a PSI and a wait per unmap), and the device must no
 * longer reach the page. Timed per unmap, which is the guest's wait latency in strict mode.
 */
export async function runVtdBench(o: VtdBenchOptions): Promise<VtdBenchResult> {
  const fd = Iommufd.open({ memoryBytes: 128 * 2 ** 20 });
  try {
    const unit = fd.vtdCreate({
      guestRamBytes: 32 * 2 ** 20,
      scalableMode: o.mode !== 'legacy',
      firstStage: o.mode === 'scalable-fl',
    });
    const guest = new VtdGuestDriver(unit, { mode: o.mode === 'legacy' ? 'legacy' : 'scalable', policy: o.policy });
    guest.probe();
    const sid = 0x0010;
    guest.attach(sid, { did: 1 });
    const buffers = Array.from({ length: 64 }, () => guest.frames.alloc() * 4096);
    const payload = new Uint8Array(64).fill(0xa5);
    const lat = new Float64Array(o.cycles);
    let faults = 0;
    let staleHits = 0;
    const before = unit.stats();
    const t0 = performance.now();
    for (let i = 0; i < o.cycles; i++) {
      const iova = 0x100_0000 + (i % 4096) * 4096;
      guest.map(sid, iova, buffers[i % buffers.length]!, 4096, 3);
      try {
        unit.dmaWrite({ sid }, iova, payload);
      } catch {
        faults++;
      }
      const u0 = performance.now();
      guest.unmap(sid, iova, 4096);
      lat[i] = (performance.now() - u0) * 1000;
      if (o.policy === 'strict' && unit.translate({ sid }, iova, Access.Read) >= 0) staleHits++;
    }
    if (o.policy === 'lazy') guest.flushLazy();
    const ms = performance.now() - t0;
    const after = unit.stats();
    lat.sort();
    const descriptors = after.descriptors - before.descriptors;
    return {
      cycles: o.cycles,
      ms,
      descriptorsPerSecond: (descriptors / ms) * 1000,
      descriptors,
      waits: after.waits - before.waits,
      waitP50Us: lat[Math.floor(o.cycles * 0.5)]!,
      waitP99Us: lat[Math.min(o.cycles - 1, Math.floor(o.cycles * 0.99))]!,
      faults,
      staleHits,
    };
  } finally {
    await fd.close();
  }
}

/** Formats the one-line summary. */
export function formatVtdBench(o: VtdBenchOptions, r: VtdBenchResult): string {
  return (
    `ioasid bench (vtd ${o.mode}, ${o.policy}): ${r.cycles} map/DMA/unmap cycles in ${r.ms.toFixed(1)} ms, ` +
    `${r.descriptors} descriptors = ${(r.descriptorsPerSecond / 1e6).toFixed(2)} M descriptors/s, ` +
    `unmap+wait p50 ${r.waitP50Us.toFixed(1)} µs p99 ${r.waitP99Us.toFixed(1)} µs ` +
    `(${r.faults} faults, ${r.staleHits} stale hits)`
  );
}
