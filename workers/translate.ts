/**
 * Piscina worker: DMA translation on another thread, over the shared buffers only (it never sees
 * the registry). workerData is the fd's `dataPlane()`; a task is a batch of translations.
 */
import { workerData } from 'node:worker_threads';
import { runTranslateBatch, type TranslateBatch, type TranslateBatchResult } from '../src/translate/batch.js';
import { attachTranslator, type DataPlaneHandles } from '../src/translate/index.js';

const { translator } = attachTranslator(workerData as DataPlaneHandles);

/** Runs one batch. */
export default function translateBatch(task: TranslateBatch): TranslateBatchResult {
  return runTranslateBatch(translator, task);
}
