/**
 * Benchmarks for issue 2: DMA translations per second on the mock domain, and IOAS map+unmap
 * pairs per second, each against a plain Map-based model measured in the same run.
 *
 * Run: npm run bench            (builds, then runs dist/perf/translate.bench.js with plain node)
 * Flags: --runs N (default 7), --translations N (default 2000000), --pairs N (default 20000)
 */
import { intFlag, machineLine, median } from './common.js';
import { Access, Iommufd, MOCK_APERTURE_START, TranslatePool } from '../src/index.js';

const RUNS = intFlag('translate.bench', 'runs', 7);
const N = intFlag('translate.bench', 'translations', 2_000_000);
const PAIRS = intFlag('translate.bench', 'pairs', 20_000);
const MAP_BYTES = 64 * 2 ** 20;
const PAGES = MAP_BYTES / 2048;
const STRIDE = 61;

function rate(count: number, fn: () => void): number {
  const t0 = performance.now();
  fn();
  return count / ((performance.now() - t0) / 1000);
}

/** The baseline: a Map from IOVA page number to [PA, prot], the obvious way to model an IOMMU. */
class MapModel {
  readonly pages = new Map<number, { pa: number; prot: number }>();
  map(iova: number, length: number, pa: number, prot: number): void {
    for (let off = 0; off < length; off += 2048) this.pages.set((iova + off) / 2048, { pa: pa + off, prot });
  }
  unmap(iova: number, length: number): void {
    for (let off = 0; off < length; off += 2048) this.pages.delete((iova + off) / 2048);
  }
  translate(iova: number, access: number): number {
    const e = this.pages.get(Math.floor(iova / 2048));
    if (e === undefined) return -2;
    if ((access & Access.Write) !== 0 && (e.prot & 2) === 0) return -3;
    return e.pa + (iova % 2048);
  }
}

function setup(hugePages: boolean): { fd: Iommufd; dev: number; ioas: number; iova: number } {
  const fd = Iommufd.open({ memoryBytes: 256 * 2 ** 20 });
  const ioas = fd.ioasAlloc();
  if (!hugePages) fd.option({ option: 'huge-pages', op: 'set', objectId: ioas, val: 0n });
  const dev = fd.deviceBind({ iommu: 'mock' });
  fd.deviceAttach(dev, ioas);
  const va = fd.memory.mmap(BigInt(MAP_BYTES));
  const iova = Number(
    fd.ioasMap(ioas, { userVa: va, length: BigInt(MAP_BYTES), iova: MOCK_APERTURE_START, flags: { fixedIova: true } }),
  );
  return { fd, dev, ioas, iova };
}

function translateLoop(translate: (iova: number, access: number) => number, base: number): number {
  let page = 0;
  let sum = 0;
  for (let i = 0; i < N; i++) {
    page = (page + STRIDE) % PAGES;
    sum += translate(base + page * 2048 + (i & 2047), (i & 1) === 0 ? Access.Read : Access.Write);
  }
  return sum;
}

async function main(): Promise<void> {
  console.log(machineLine());
  console.log(`runs: ${RUNS} (medians), translations per run: ${N}, map+unmap pairs per run: ${PAIRS}\n`);

  // ---- translations ----
  for (const huge of [true, false]) {
    const { fd, dev, iova } = setup(huge);
    const model = new MapModel();
    model.map(iova, MAP_BYTES, 0x100000, 3);
    const ours: number[] = [];
    const base: number[] = [];
    let check = 0;
    for (let r = 0; r < RUNS + 1; r++) {
      const a = rate(N, () => (check += translateLoop((v, acc) => fd.translate(dev, v, acc), iova)));
      const b = rate(N, () => (check += translateLoop((v, acc) => model.translate(v, acc), iova)));
      if (r > 0) {
        ours.push(a);
        base.push(b);
      }
    }
    const label = huge ? '1 MiB blocks' : '2 KiB pages ';
    console.log(
      `translate (${label}, ${MAP_BYTES / 2 ** 20} MiB, scattered): ioasid ${(median(ours) / 1e6).toFixed(2)} M/s, Map model ${(median(base) / 1e6).toFixed(2)} M/s, ratio ${(median(ours) / median(base)).toFixed(2)}  [check ${check % 1000}]`,
    );
    await fd.close();
  }

  // ---- translations on 2 worker threads ----
  {
    const { fd, dev, iova } = setup(true);
    const pool = new TranslatePool(fd.dataPlane(), 2);
    const batch = {
      dev: fd.deviceSlot(dev),
      pasid: -1,
      base: iova,
      pages: PAGES,
      pageSize: 2048,
      stride: STRIDE,
      start: 0,
      count: N / 4,
      access: Access.Read,
    };
    await Promise.all([pool.run(batch), pool.run(batch)]); // start and warm the workers
    const par: number[] = [];
    const single: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let t0 = performance.now();
      await Promise.all([0, 1, 2, 3].map((k) => pool.run({ ...batch, start: k })));
      par.push(N / ((performance.now() - t0) / 1000));
      t0 = performance.now();
      for (let k = 0; k < 4; k++) await pool.run({ ...batch, start: k });
      single.push(N / ((performance.now() - t0) / 1000));
    }
    console.log(
      `translate on workers (1 MiB blocks, ${N} per run in 4 tasks): 2 workers in parallel ${(median(par) / 1e6).toFixed(2)} M/s, one task at a time ${(median(single) / 1e6).toFixed(2)} M/s, ratio ${(median(par) / median(single)).toFixed(2)}`,
    );
    await pool.destroy();
    await fd.close();
  }

  // ---- map + unmap pairs ----
  for (const len of [64 * 1024, 2 * 2 ** 20]) {
    const fd = Iommufd.open({ memoryBytes: 256 * 2 ** 20 });
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: 'mock' });
    fd.deviceAttach(dev, ioas);
    const va = fd.memory.mmap(BigInt(len));
    const model = new MapModel();
    const pairs = len > 65536 ? Math.max(1, PAIRS / 8) : PAIRS;
    const ours: number[] = [];
    const base: number[] = [];
    for (let r = 0; r < RUNS + 1; r++) {
      const a = rate(pairs, () => {
        for (let i = 0; i < pairs; i++) {
          const iova = MOCK_APERTURE_START + BigInt((i % 64) * 2 ** 22);
          fd.ioasMap(ioas, { userVa: va, length: BigInt(len), iova, flags: { fixedIova: true } });
          fd.ioasUnmap(ioas, iova, BigInt(len));
        }
      });
      const b = rate(pairs, () => {
        for (let i = 0; i < pairs; i++) {
          const iova = Number(MOCK_APERTURE_START) + (i % 64) * 2 ** 22;
          model.map(iova, len, 0x100000, 3);
          model.unmap(iova, len);
        }
      });
      if (r > 0) {
        ours.push(a);
        base.push(b);
      }
    }
    console.log(
      `map+unmap pairs (${len / 1024} KiB, fixed IOVA, 1 domain): ioasid ${(median(ours) / 1e3).toFixed(1)} k/s, Map model ${(median(base) / 1e3).toFixed(1)} k/s, ratio ${(median(ours) / median(base)).toFixed(2)}`,
    );
    await fd.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
