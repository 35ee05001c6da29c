/**
 * Benchmarks for issue 3: the real formats (Arm VMSAv8-64 stage 1 behind smmuv3, VT-d second
 * stage behind vtd; both 4-level, 48-bit) through the public API, each against a Map model
 * measured in the same run:
 *   - translations per second, random 4 KiB pages (HUGE_PAGES=0) and 2 MiB blocks;
 *   - IOAS map+unmap pairs per second (64 KiB, with a domain attached);
 *   - descriptor bytes per mapped 4 KiB page (table frames x 4096 / pages), against the heap
 *     bytes per entry of the Map model.
 *
 * Run: npm run bench:pgtable   (builds, then runs dist/perf/pgtable.bench.js with plain node)
 * Flags: --runs N (default 7), --translations N (default 2000000), --pairs N (default 10000)
 */
import { intFlag, machineLine, median } from './common.js';
import { Access, Iommufd } from '../src/index.js';

const RUNS = intFlag('pgtable.bench', 'runs', 7);
const N = intFlag('pgtable.bench', 'translations', 2_000_000);
const PAIRS = intFlag('pgtable.bench', 'pairs', 10_000);
const MAP_BYTES = 64 * 2 ** 20;
const PAGES = MAP_BYTES / 4096;
const BASE = 0x40_0000_0000; // a 1 GiB-aligned IOVA well inside 48 bits

/** The baseline: IOVA page number (4 KiB) -> { pa, prot }. */
class MapModel {
  readonly pages = new Map<number, { pa: number; prot: number }>();
  map(iova: number, length: number, pa: number, prot: number): void {
    for (let off = 0; off < length; off += 4096) this.pages.set((iova + off) / 4096, { pa: pa + off, prot });
  }
  unmap(iova: number, length: number): void {
    for (let off = 0; off < length; off += 4096) this.pages.delete((iova + off) / 4096);
  }
  translate(iova: number, access: number): number {
    const e = this.pages.get(Math.floor(iova / 4096));
    if (e === undefined) return -2;
    if ((access & Access.Write) !== 0 && (e.prot & 2) === 0) return -3;
    return e.pa + (iova % 4096);
  }
}

/** A pseudo-random page sequence, precomputed so both sides walk the same IOVAs. */
const ORDER = new Int32Array(1 << 16);
{
  let x = 0x2545f491;
  for (let i = 0; i < ORDER.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    ORDER[i] = (x >>> 0) % PAGES;
  }
}

function setup(kind: 'smmuv3' | 'vtd', huge: boolean): { fd: Iommufd; dev: number; ioas: number } {
  const fd = Iommufd.open({ memoryBytes: 256 * 2 ** 20 });
  // mmap first, so the host frames form 2 MiB-aligned physical runs that blocks can map.
  const va = fd.memory.mmap(BigInt(MAP_BYTES));
  const ioas = fd.ioasAlloc();
  if (!huge) fd.option({ option: 'huge-pages', op: 'set', objectId: ioas, val: 0n });
  const dev = fd.deviceBind({ iommu: kind });
  fd.deviceAttach(dev, ioas);
  fd.ioasMap(ioas, { userVa: va, length: BigInt(MAP_BYTES), iova: BigInt(BASE), flags: { fixedIova: true } });
  return { fd, dev, ioas };
}

function tableFrames(fd: Iommufd): number {
  const snap = fd.snapshot() as { objects: { type: string; tableFrames?: number }[] };
  return snap.objects.filter((o) => o.type === 'hwpt-paging').reduce((s, o) => s + (o.tableFrames ?? 0), 0);
}

function translateRate(translate: (iova: number, access: number) => number): number {
  const t0 = performance.now();
  let sum = 0;
  for (let i = 0; i < N; i++)
    sum += translate(BASE + ORDER[i & 0xffff]! * 4096 + (i & 4095), (i & 1) === 0 ? Access.Read : Access.Write);
  if (sum === -1) console.log('unreachable');
  return N / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  console.log(machineLine());
  console.log(`runs: ${RUNS} (medians), translations per run: ${N}, map+unmap pairs per run: ${PAIRS}\n`);

  for (const kind of ['smmuv3', 'vtd'] as const) {
    const format = kind === 'smmuv3' ? 'Arm stage 1' : 'VT-d second stage';
    for (const huge of [false, true]) {
      const { fd, dev } = setup(kind, huge);
      const model = new MapModel();
      model.map(BASE, MAP_BYTES, 0, 3);
      const ours: number[] = [];
      const base: number[] = [];
      for (let r = 0; r < RUNS + 1; r++) {
        const a = translateRate((v, acc) => fd.translate(dev, v, acc));
        const b = translateRate((v, acc) => model.translate(v, acc));
        if (r > 0) {
          ours.push(a);
          base.push(b);
        }
      }
      const frames = tableFrames(fd);
      console.log(
        `translate ${kind} (${format}, 4-level, ${huge ? '2 MiB blocks' : '4 KiB pages '}, random): ioasid ${(median(ours) / 1e6).toFixed(2)} M/s, Map model ${(median(base) / 1e6).toFixed(2)} M/s, ratio ${(median(ours) / median(base)).toFixed(2)}; tables ${frames} frames = ${((frames * 4096) / PAGES).toFixed(2)} descriptor bytes per 4 KiB page`,
      );
      await fd.close();
    }

    // map+unmap pairs
    {
      const fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
      const va = fd.memory.mmap(65536n);
      const ioas = fd.ioasAlloc();
      const dev = fd.deviceBind({ iommu: kind });
      fd.deviceAttach(dev, ioas);
      const model = new MapModel();
      const ours: number[] = [];
      const base: number[] = [];
      for (let r = 0; r < RUNS + 1; r++) {
        let t0 = performance.now();
        for (let i = 0; i < PAIRS; i++) {
          const iova = BigInt(BASE + (i % 64) * 2 ** 22);
          fd.ioasMap(ioas, { userVa: va, length: 65536n, iova, flags: { fixedIova: true } });
          fd.ioasUnmap(ioas, iova, 65536n);
        }
        const a = PAIRS / ((performance.now() - t0) / 1000);
        t0 = performance.now();
        for (let i = 0; i < PAIRS; i++) {
          const iova = BASE + (i % 64) * 2 ** 22;
          model.map(iova, 65536, 0x100000, 3);
          model.unmap(iova, 65536);
        }
        const b = PAIRS / ((performance.now() - t0) / 1000);
        if (r > 0) {
          ours.push(a);
          base.push(b);
        }
      }
      console.log(
        `map+unmap pairs ${kind} (64 KiB, fixed IOVA): ioasid ${(median(ours) / 1e3).toFixed(1)} k/s, Map model ${(median(base) / 1e3).toFixed(1)} k/s, ratio ${(median(ours) / median(base)).toFixed(2)}`,
      );
      await fd.close();
    }
  }

  // Map model memory per entry, for the descriptor-bytes comparison.
  {
    const g = globalThis as { gc?: () => void };
    g.gc?.();
    const before = process.memoryUsage().heapUsed;
    const model = new MapModel();
    model.map(BASE, MAP_BYTES, 0, 3);
    g.gc?.();
    const after = process.memoryUsage().heapUsed;
    console.log(
      `Map model: ${((after - before) / PAGES).toFixed(1)} heap bytes per 4 KiB page (${model.pages.size} entries${g.gc === undefined ? '; run node with --expose-gc for a steadier figure' : ''})`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
