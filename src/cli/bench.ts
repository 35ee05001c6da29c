import { Access, Iommufd, MOCK_APERTURE_START } from '../index.js';
import { UsageError, type Flags } from './args.js';

/** Options of the built-in translation scenario. */
export interface BenchOptions {
  /** DMA translations to run. */
  translations: number;
  /** Bytes mapped into the IOAS. */
  mapBytes: number;
  /** Physical memory. */
  memoryBytes: number;
  /** Use 1 MiB blocks where possible. */
  hugePages: boolean;
}

/** What the scenario measured. */
export interface BenchResult {
  /** Translations run. */
  translations: number;
  /** Wall time of the translation loop, ms. */
  ms: number;
  /** Translations per second. */
  perSecond: number;
  /** Translations that faulted (should be 0). */
  faults: number;
  /** Sum of the physical addresses, so the loop cannot be optimized away. */
  checksum: number;
}

/** The flags of `ioasid bench`. */
export const BENCH_FLAGS = {
  translations: 'int',
  'map-mib': 'int',
  'memory-mib': 'int',
  'no-huge-pages': 'bool',
  workload: 'string',
  'vtd-cycles': 'int',
  'vtd-policy': 'string',
  'vtd-mode': 'string',
  'smmu-cycles': 'int',
  'smmu-policy': 'string',
  'smmu-pages': 'int',
  'smmu-no-ril': 'bool',
  json: 'bool',
  help: 'bool',
} as const;

/** Turns parsed flags into options, checking their ranges. */
export function benchOptions(f: Flags): BenchOptions {
  const translations = (f['translations'] as number | undefined) ?? 1_000_000;
  const mapMib = (f['map-mib'] as number | undefined) ?? 64;
  const memoryMib = (f['memory-mib'] as number | undefined) ?? 256;
  if (translations < 1) throw new UsageError('--translations must be at least 1');
  if (mapMib < 1 || mapMib > 1024) throw new UsageError('--map-mib must be between 1 and 1024');
  if (memoryMib < 2 || memoryMib > 4096) throw new UsageError('--memory-mib must be between 2 and 4096');
  if (mapMib + 1 > memoryMib)
    throw new UsageError('--map-mib must leave at least 1 MiB of --memory-mib for page tables');
  return {
    translations,
    mapBytes: mapMib * 2 ** 20,
    memoryBytes: memoryMib * 2 ** 20,
    hugePages: f['no-huge-pages'] !== true,
  };
}

/**
 * The built-in scenario: create an IOAS, map memory, attach a mock device, and run DMA
 * translations over the mapping with a scattered access pattern.
 */
export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const fd = Iommufd.open({ memoryBytes: o.memoryBytes });
  try {
    const ioas = fd.ioasAlloc();
    if (!o.hugePages) fd.option({ option: 'huge-pages', op: 'set', objectId: ioas, val: 0n });
    const dev = fd.deviceBind({ iommu: 'mock' });
    fd.deviceAttach(dev, ioas);
    const va = fd.memory.mmap(BigInt(o.mapBytes));
    const iova = Number(
      fd.ioasMap(ioas, {
        userVa: va,
        length: BigInt(o.mapBytes),
        iova: MOCK_APERTURE_START,
        flags: { fixedIova: true, readable: true, writeable: true },
      }),
    );
    const pages = o.mapBytes / 2048;
    // Warm up the translate path before timing it.
    for (let i = 0; i < 10_000; i++) fd.translate(dev, iova, Access.Read);
    let checksum = 0;
    let faults = 0;
    const t0 = performance.now();
    let page = 0;
    for (let i = 0; i < o.translations; i++) {
      // A stride of 61 pages walks every page (pages is a power of two) and defeats locality.
      page = (page + 61) % pages;
      const pa = fd.translate(dev, iova + page * 2048 + (i & 2047), (i & 1) === 0 ? Access.Read : Access.Write);
      if (pa < 0) faults++;
      else checksum += pa;
    }
    const ms = performance.now() - t0;
    return { translations: o.translations, ms, perSecond: (o.translations / ms) * 1000, faults, checksum };
  } finally {
    await fd.close();
  }
}

/** Formats the one-line summary. */
export function formatBench(o: BenchOptions, r: BenchResult): string {
  const mib = o.mapBytes / 2 ** 20;
  return (
    `ioasid bench: ${r.translations} DMA translations in ${r.ms.toFixed(1)} ms = ${(r.perSecond / 1e6).toFixed(2)} M/s ` +
    `(mock domain, ${mib} MiB mapped, ${o.hugePages ? '1 MiB blocks' : '2 KiB pages'}, ${r.faults} faults)`
  );
}
