import { Access, Iommufd } from '../index.js';
import { SmmuGuestDriver } from '../guest/smmuv3/index.js';

/** Options of the SMMUv3 guest-driver scenario. */
export interface SmmuBenchOptions {
  /** Map/DMA/unmap cycles (a strict unmap is its TLBIs and one CMD_SYNC, on one doorbell). */
  cycles: number;
  /** The guest's policy: strict (invalidate every unmap) or lazy (flush queue). */
  policy: 'strict' | 'lazy';
  /** Pages per map/unmap (1–512): more than one exercises range invalidation or 64-command batches. */
  pages: number;
  /** Whether the unit advertises range invalidation (IDR3.RIL). */
  ril: boolean;
}

/** What the SMMUv3 scenario measured. */
export interface SmmuBenchResult {
  cycles: number;
  /** Wall time of the loop, ms. */
  ms: number;
  /** Commands the unit consumed (CMD_SYNCs included), and per second of the loop. */
  commands: number;
  commandsPerSecond: number;
  syncs: number;
  /** Latency of an unmap: page-table edits, the guest's CMDQ_PROD write, and its CMD_SYNC's completion, µs. */
  syncP50Us: number;
  syncP99Us: number;
  /** DMAs that faulted (should be 0), and DMAs that reached an unmapped page (must be 0). */
  faults: number;
  staleHits: number;
}

/**
 * The SMMUv3 guest-driver scenario: a Linux-like guest maps pages, the device writes them by DMA
 * through the unit, the guest unmaps and invalidates (strict: TLBI_NH_VA commands and a CMD_SYNC
 * per unmap, completed by MSI write-back), and the device must no longer reach the pages. Timed
 * per unmap, which in strict mode is the guest's CMD_SYNC latency.
 */
export async function runSmmuBench(o: SmmuBenchOptions): Promise<SmmuBenchResult> {
  const fd = Iommufd.open({ memoryBytes: 128 * 2 ** 20 });
  try {
    const unit = fd.smmuCreate({ guestRamBytes: 32 * 2 ** 20, ril: o.ril });
    const guest = new SmmuGuestDriver(unit, { policy: o.policy });
    guest.probe();
    const sid = 0x10;
    guest.addDevice(sid);
    guest.attachDevice(sid);
    const bytes = o.pages * 4096;
    const buffers = Array.from({ length: 16 }, () => guest.frames.allocContiguous(o.pages) * 4096);
    const payload = new Uint8Array(64).fill(0xa5);
    const lat = new Float64Array(o.cycles);
    let faults = 0;
    let staleHits = 0;
    const before = unit.stats().cmdq;
    const t0 = performance.now();
    for (let i = 0; i < o.cycles; i++) {
      const iova = 0x100_0000 + (i % 1024) * bytes;
      guest.map(sid, iova, buffers[i % buffers.length]!, bytes, 3);
      try {
        unit.dmaWrite({ sid }, iova + bytes - 4096, payload);
      } catch {
        faults++;
      }
      const u0 = performance.now();
      guest.unmap(sid, iova, bytes);
      lat[i] = (performance.now() - u0) * 1000;
      if (o.policy === 'strict' && unit.translate({ sid }, iova + bytes - 4096, Access.Read) >= 0) staleHits++;
    }
    if (o.policy === 'lazy') guest.flushLazy();
    const ms = performance.now() - t0;
    const after = unit.stats().cmdq;
    lat.sort();
    const commands = after.commands - before.commands;
    return {
      cycles: o.cycles,
      ms,
      commands,
      commandsPerSecond: (commands / ms) * 1000,
      syncs: after.syncs - before.syncs,
      syncP50Us: lat[Math.floor(o.cycles * 0.5)]!,
      syncP99Us: lat[Math.min(o.cycles - 1, Math.floor(o.cycles * 0.99))]!,
      faults,
      staleHits,
    };
  } finally {
    await fd.close();
  }
}

/** Formats the one-line summary. */
export function formatSmmuBench(o: SmmuBenchOptions, r: SmmuBenchResult): string {
  return (
    `ioasid bench (smmuv3 ${o.policy}, ${o.pages} page${o.pages === 1 ? '' : 's'}/unmap, RIL ${o.ril ? 'on' : 'off'}): ` +
    `${r.cycles} map/DMA/unmap cycles in ${r.ms.toFixed(1)} ms, ${r.commands} commands = ` +
    `${(r.commandsPerSecond / 1e6).toFixed(2)} M commands/s, ${r.syncs} CMD_SYNCs, ` +
    `unmap+CMD_SYNC p50 ${r.syncP50Us.toFixed(1)} µs p99 ${r.syncP99Us.toFixed(1)} µs ` +
    `(${r.faults} faults, ${r.staleHits} stale hits)`
  );
}
