/**
 * Piscina worker: DMA translation on another thread, over the shared buffers only (it never sees
 * the registry). workerData is a {@link TranslateWorkerData}; a task is a batch of translations.
 */
import { workerData } from 'node:worker_threads';
import { runTranslateBatch, type TranslateBatch, type TranslateBatchResult } from '../src/translate/batch.js';
import { attachTranslator, recordSlot, type TranslateWorkerData } from '../src/translate/index.js';

const data = workerData as TranslateWorkerData;
const { translator, slot } = attachTranslator(data.handles);
// The pool gives the slot back when it is destroyed: piscina terminates workers without notice.
recordSlot(data.slots, slot);

/** Runs one batch. */
export default function translateBatch(task: TranslateBatch): TranslateBatchResult {
  return runTranslateBatch(translator, task);
}
