/**
 * Host DMA on worker threads (the `hostDmaThreads` knob): a device bound to the run's iommufd
 * behind the host IOMMU of the run's vendor, with a window of its own IOAS mapped, that
 * `TranslatePool` workers translate for while the scenario runs, as a VMM's other assigned
 * devices do DMA through iommufd on their own threads. It shares the IOTLB (its shards and owner
 * words) with the emulated units, so the run sees the cross-thread traffic a real VMM has, and
 * `ioasid profile` gets worker threads doing real work. It never touches a unit's domain: the
 * correctness gate is unaffected.
 */
import type { Iommufd } from '../iommufd.js';
import { Access } from '../pgtable/index.js';
import { TranslatePool } from '../pipeline/index.js';
import type { TranslateBatch } from '../translate/index.js';
import type { BenchVendor } from './types.js';

/** The device's mapped window. */
const WINDOW_BYTES = 8 * 2 ** 20;
const PAGE = 4096;
/** Translations per task: some 50–100 ms of a worker's time, longer than the run's yields are apart. */
const BATCH_TRANSLATIONS = 2 ** 19;
/** Tasks queued per worker, so one is ready whenever the main thread lets piscina dispatch. */
const QUEUED_PER_THREAD = 2;
/** A page stride coprime with the window's pages: scattered addresses, every page visited. */
const STRIDE = 61;

/** What the host DMA threads did. */
export interface HostDmaFigures {
  /** Worker threads. */
  threads: number;
  /** Translations done, and those that faulted (none expected: the window stays mapped). */
  translations: number;
  faults: number;
  /** translations per second of wall time, from the start of measuring to the last task's end. */
  translationsPerSecond: number;
}

/** A device's DMA on a pool of worker threads, running until stopped. */
export class HostDma {
  readonly #pool: TranslatePool;
  readonly #batch: TranslateBatch;
  readonly #threads: number;
  readonly #pending = new Set<Promise<void>>();
  #running = false;
  #stopped = false;
  #next = 0;
  #t0 = 0;
  #translations = 0;
  #faults = 0;
  #error: Error | undefined;

  private constructor(pool: TranslatePool, batch: TranslateBatch, threads: number) {
    this.#pool = pool;
    this.#batch = batch;
    this.#threads = threads;
  }

  /**
   * Binds the device (behind `vendor`'s host IOMMU), maps its window and starts `threads`
   * workers; resolves once every worker has run a first small task.
   */
  static async start(fd: Iommufd, vendor: BenchVendor, threads: number): Promise<HostDma> {
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: vendor === 'vtd' ? 'vtd' : 'smmuv3' });
    fd.deviceAttach(dev, ioas);
    const va = fd.memory.mmap(BigInt(WINDOW_BYTES));
    const base = Number(fd.ioasMap(ioas, { userVa: va, length: BigInt(WINDOW_BYTES) }));
    const batch: TranslateBatch = {
      dev: fd.deviceSlot(dev),
      pasid: -1,
      base,
      pages: WINDOW_BYTES / PAGE,
      pageSize: PAGE,
      stride: STRIDE,
      start: 0,
      count: BATCH_TRANSLATIONS,
      access: Access.Read,
    };
    const pool = new TranslatePool(fd.dataPlane(), threads);
    await Promise.all(Array.from({ length: threads }, (_, k) => pool.run({ ...batch, start: k, count: 1 })));
    return new HostDma(pool, batch, threads);
  }

  /** Starts the DMA: every worker busy until {@link stop}. */
  begin(): void {
    this.#running = true;
    this.#t0 = performance.now();
    for (let i = 0; i < this.#threads * QUEUED_PER_THREAD; i++) this.#submit();
  }

  /** A task; when it ends, the next one (while running). */
  #submit(): void {
    const start = this.#next++ % this.#batch.pages;
    const task: Promise<void> = this.#pool.run({ ...this.#batch, start }).then(
      (r) => {
        this.#translations += this.#batch.count;
        this.#faults += r.faults;
        this.#pending.delete(task);
        if (this.#running) this.#submit();
      },
      (e: unknown) => {
        this.#error ??= e instanceof Error ? e : new Error(String(e));
        this.#pending.delete(task);
      },
    );
    this.#pending.add(task);
  }

  /** Stops submitting, waits for the tasks in flight, stops the workers; rethrows a task's failure. */
  async stop(): Promise<HostDmaFigures> {
    this.#running = false;
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    const seconds = (performance.now() - this.#t0) / 1000;
    this.#stopped = true;
    await this.#pool.destroy();
    if (this.#error !== undefined) throw this.#error;
    return {
      threads: this.#threads,
      translations: this.#translations,
      faults: this.#faults,
      translationsPerSecond: seconds > 0 ? this.#translations / seconds : 0,
    };
  }

  /** Stops the workers, unless {@link stop} did (a run that failed half-way). */
  async abort(): Promise<void> {
    this.#running = false;
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.allSettled(this.#pending);
    await this.#pool.destroy();
  }
}
