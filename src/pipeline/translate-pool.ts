import type { Piscina } from 'piscina';
import {
  releaseRecordedSlots,
  type DataPlaneHandles,
  type TranslateBatch,
  type TranslateBatchResult,
  type TranslateWorkerData,
} from '../translate/index.js';
import { makePool } from './pool.js';

/**
 * A pool of worker threads that translate DMA over an fd's shared memory, as a VMM's device
 * threads would. Each worker holds a reader slot, so reclamation waits for its walks.
 */
export class TranslatePool {
  readonly #pool: Piscina<TranslateBatch, TranslateBatchResult>;
  readonly #handles: DataPlaneHandles;
  readonly #slots: SharedArrayBuffer;

  /** Starts `threads` workers over `handles` (an fd's `dataPlane()`). */
  constructor(handles: DataPlaneHandles, threads: number) {
    this.#handles = handles;
    this.#slots = new SharedArrayBuffer(threads * 4);
    new Int32Array(this.#slots).fill(-1);
    const workerData: TranslateWorkerData = { handles, slots: this.#slots };
    this.#pool = makePool<TranslateBatch, TranslateBatchResult>('translate', {
      workerData,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }

  /** Runs one batch on a worker. */
  run(batch: TranslateBatch): Promise<TranslateBatchResult> {
    return this.#pool.run(batch);
  }

  /** Stops the workers and gives their reader slots back. */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
    releaseRecordedSlots(this.#handles, this.#slots);
  }
}
