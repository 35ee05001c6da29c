import type { Piscina } from 'piscina';
import type { DataPlaneHandles, TranslateBatch, TranslateBatchResult } from '../translate/index.js';
import { makePool } from './pool.js';

/**
 * A pool of worker threads that translate DMA over an fd's shared memory, as a VMM's device
 * threads would. Each worker holds a reader slot, so reclamation waits for its walks.
 */
export class TranslatePool {
  readonly #pool: Piscina<TranslateBatch, TranslateBatchResult>;

  /** Starts `threads` workers over `handles` (an fd's `dataPlane()`). */
  constructor(handles: DataPlaneHandles, threads: number) {
    this.#pool = makePool<TranslateBatch, TranslateBatchResult>('translate', {
      workerData: handles,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }

  /** Runs one batch on a worker. */
  run(batch: TranslateBatch): Promise<TranslateBatchResult> {
    return this.#pool.run(batch);
  }

  /** Stops the workers. */
  destroy(): Promise<void> {
    return this.#pool.destroy();
  }
}
