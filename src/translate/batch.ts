import type { Translator } from './translator.js';

/** A batch of translations over a strided set of pages, for a worker (integers only). */
export interface TranslateBatch {
  /** Device slot. */
  dev: number;
  /** PASID, or -1. */
  pasid: number;
  /** First IOVA of the mapped window. */
  base: number;
  /** Pages in the window. */
  pages: number;
  /** Page size. */
  pageSize: number;
  /** Page stride between translations. */
  stride: number;
  /** First page. */
  start: number;
  /** Translations to run. */
  count: number;
  /** Access bits. */
  access: number;
}

/** What a batch returns. */
export interface TranslateBatchResult {
  /** Sum of the physical addresses. */
  checksum: number;
  /** Translations that faulted. */
  faults: number;
}

/** Runs a batch on `t`: the loop a worker (or the main thread) runs. Allocation-free but for the result. */
export function runTranslateBatch(t: Translator, b: TranslateBatch): TranslateBatchResult {
  let checksum = 0;
  let faults = 0;
  let page = b.start % b.pages;
  for (let i = 0; i < b.count; i++) {
    const pa = t.translate(b.dev, b.base + page * b.pageSize, b.access, b.pasid);
    if (pa < 0) faults++;
    else checksum += pa;
    page = (page + b.stride) % b.pages;
  }
  return { checksum, faults };
}
