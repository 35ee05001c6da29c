import { Piscina } from 'piscina';
import { describe, expect, it } from 'vitest';
import { Access, Iommufd } from '../../src/index.js';
import type { SafetyConfig, SafetyReport } from './safety.worker.js';

/*
 * DESIGN.md invariant 1, "no stale translation after a barrier", for the IOTLB. The main thread
 * maps each test IOVA to a fresh host page, unmaps it (the unmap invalidates inline, so its return
 * is the barrier), and publishes barrier k+1; device threads translate all the while. Every host
 * page is used once, so a result is stale exactly when it is a page whose barrier had completed
 * before the translation started. IOTLB_SAFETY_CYCLES makes it a long soak.
 */

const CYCLES = Number(process.env['IOTLB_SAFETY_CYCLES'] ?? 1500);
const IOVAS = [0x40_0000, 0x60_0000, 0x4000_0000, 0x4020_0000]; // four 2 MiB regions: several shards

async function run(
  kind: 'vtd' | 'mock',
  fillGuard: boolean,
  cycles: number,
  ats = false,
): Promise<{ reports: SafetyReport[]; stats: ReturnType<Iommufd['cacheStats']> }> {
  const fd = Iommufd.open({ memoryBytes: 128 * 2 ** 20, iotlb: { entries: 4096, shards: 4 } });
  const base = kind === 'mock' ? 2 ** 24 : 0;
  const iovas = IOVAS.map((v) => base + (v % 2 ** 30));
  const ioas = fd.ioasAlloc();
  const dev = fd.deviceBind({ iommu: kind, ats });
  fd.deviceAttach(dev, ioas);
  const pages = cycles * iovas.length;
  const va = fd.memory.mmap(BigInt(pages * 4096));
  // Learn each host page's frame through a probe device, before any cycle uses it.
  const probeIoas = fd.ioasAlloc();
  const probe = fd.deviceBind({ iommu: 'vtd' });
  fd.deviceAttach(probe, probeIoas);
  fd.ioasMap(probeIoas, { userVa: va, length: BigInt(pages * 4096), iova: 0x1_0000_0000n, flags: { fixedIova: true } });
  const frames = new Int32Array(pages);
  for (let p = 0; p < pages; p++) frames[p] = fd.translate(probe, 0x1_0000_0000 + p * 4096, Access.Read) / 4096;
  const frameCycle = new Int32Array(new SharedArrayBuffer((4 * (128 * 2 ** 20)) / 4096)).fill(-1);
  const control = new Int32Array(new SharedArrayBuffer(12));
  const pool = new Piscina<SafetyConfig, SafetyReport>({
    filename: new URL('./safety.worker.ts', import.meta.url).href,
    execArgv: [...process.execArgv, '--import', 'tsx'],
    minThreads: 2,
    maxThreads: 2,
  });
  pool.on('error', () => {});
  const cfg: SafetyConfig = {
    dataPlane: fd.dataPlane(),
    control: control.buffer,
    frameCycle: frameCycle.buffer,
    dev: fd.deviceSlot(dev),
    iovas,
    fillGuard,
  };
  const walkers = [pool.run(cfg), pool.run(cfg)];
  // Wait until both walkers are translating (workers start slowly under tsx).
  while (Atomics.load(control, 2) < 2) await new Promise((r) => setTimeout(r, 10));
  for (let k = 0; k < cycles; k++) {
    iovas.forEach((iova, j) => {
      const page = k * iovas.length + j;
      frameCycle[frames[page]!] = k;
      fd.ioasMap(ioas, {
        userVa: va + BigInt(page * 4096),
        length: 4096n,
        iova: BigInt(iova),
        flags: { fixedIova: true },
      });
    });
    for (const iova of iovas) fd.ioasUnmap(ioas, BigInt(iova), 4096n);
    Atomics.store(control, 1, k + 1); // the barrier: every mapping of cycles <= k is gone
  }
  Atomics.store(control, 0, 1);
  const reports = await Promise.all(walkers);
  const stats = fd.cacheStats();
  await pool.destroy();
  await fd.close();
  return { reports, stats };
}

describe('IOTLB safety: no stale translation after a barrier (DESIGN.md invariant 1)', () => {
  it.each(['vtd', 'mock'] as const)(
    '%s: device threads never see a mapping removed before a completed barrier',
    async (kind) => {
      const { reports, stats } = await run(kind, true, CYCLES);
      const total = reports.reduce(
        (a, r) => ({ t: a.t + r.translations, m: a.m + r.mapped, s: a.s + r.stale, u: a.u + r.unknown }),
        { t: 0, m: 0, s: 0, u: 0 },
      );
      console.log(
        `iotlb safety ${kind}:`,
        JSON.stringify({
          ...total,
          cycles: CYCLES,
          discardedFills: stats.discardedFills,
          invalidated: stats.invalidated,
        }),
      );
      expect(reports.flatMap((r) => r.samples)).toEqual([]);
      expect(total.s).toBe(0);
      expect(total.u).toBe(0);
      expect(total.t).toBeGreaterThan(10_000); // the walkers really ran alongside
      expect(total.m).toBeGreaterThan(0);
    },
  );

  it('vtd with ATS: the device ATC in front of the IOTLB keeps the invariant too', async () => {
    const { reports, stats } = await run('vtd', true, CYCLES, true);
    const stale = reports.reduce((a, r) => a + r.stale, 0);
    const translations = reports.reduce((a, r) => a + r.translations, 0);
    console.log('iotlb safety vtd+ats:', JSON.stringify({ translations, stale, invalidated: stats.invalidated }));
    expect(reports.flatMap((r) => r.samples)).toEqual([]);
    expect(stale).toBe(0);
    expect(translations).toBeGreaterThan(10_000);
  });

  it('negative control: with the fill guard off in the device threads, stale translations appear', async () => {
    let stale = 0;
    for (let attempt = 0; attempt < 5 && stale === 0; attempt++) {
      const { reports } = await run('vtd', false, CYCLES);
      stale = reports.reduce((a, r) => a + r.stale, 0);
      console.log(`iotlb safety, fill guard off, attempt ${attempt}: ${stale} stale`);
    }
    expect(stale).toBeGreaterThan(0);
  });
});
