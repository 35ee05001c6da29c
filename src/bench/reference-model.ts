/**
 * The reference model of the correctness gate (reference/perf-anchors.md §5.3.5): what one
 * device's domain maps, from the guest driver's own view, kept apart from anything the
 * simulator caches. Each IOVA slot holds at most one linear mapping; a page of a slot maps
 * `gpa + page · 4 KiB` while the slot has more pages than `page`, and nothing otherwise.
 */

/** Slots with more pages than this are probed at their DMA'd pages and every 2 MiB, not page by page. */
const PROBE_EVERY_PAGE_UP_TO = 64;
/** Pages per 2 MiB: a block entry covers this many. */
const BLOCK_PAGES = 512;

/** What one device's domain maps now, and what it ever mapped (the pages the final probe visits). */
export class DomainModel {
  /** First IOVA of the window. */
  readonly base: number;
  /** Pages per slot: the largest mapping. */
  readonly slotPages: number;
  readonly slots: number;
  readonly #pages: Int32Array;
  readonly #gpa: Float64Array;
  readonly #ever: Int32Array;
  /** Large slots: a bit per page that a DMA translated. */
  readonly #touched: Uint8Array | undefined;
  readonly #touchedBytes: number;

  /** A window of `slots` slots of `slotPages` pages from `base`, nothing mapped. */
  constructor(base: number, slots: number, slotPages: number) {
    this.base = base;
    this.slots = slots;
    this.slotPages = slotPages;
    this.#pages = new Int32Array(slots);
    this.#gpa = new Float64Array(slots);
    this.#ever = new Int32Array(slots);
    this.#touchedBytes = slotPages > PROBE_EVERY_PAGE_UP_TO ? Math.ceil(slotPages / 8) : 0;
    this.#touched = this.#touchedBytes > 0 ? new Uint8Array(slots * this.#touchedBytes) : undefined;
  }

  /** The first IOVA of `slot`. */
  iovaOf(slot: number): number {
    return this.base + slot * this.slotPages * 4096;
  }

  /** Bytes from the base that hold every slot. */
  get windowBytes(): number {
    return this.slots * this.slotPages * 4096;
  }

  /** The guest mapped `pages` pages at `slot` to `gpa`. */
  map(slot: number, pages: number, gpa: number): void {
    this.#pages[slot] = pages;
    this.#gpa[slot] = gpa;
    if (pages > this.#ever[slot]!) this.#ever[slot] = pages;
  }

  /** The guest unmapped `slot`. */
  unmap(slot: number): void {
    this.#pages[slot] = 0;
  }

  /** The guest unmapped every slot (its domain was torn down). */
  unmapAll(): void {
    this.#pages.fill(0);
  }

  /** Pages mapped at `slot` now (0: unmapped). */
  pagesOf(slot: number): number {
    return this.#pages[slot]!;
  }

  /** The guest-physical address of the slot's mapping (meaningful while it is mapped). */
  gpaOf(slot: number): number {
    return this.#gpa[slot]!;
  }

  /** The guest-physical address page `page` of `slot` maps to, or -1 when it maps nothing. */
  expected(slot: number, page: number): number {
    return page < this.#pages[slot]! ? this.#gpa[slot]! + page * 4096 : -1;
  }

  /** A DMA translated page `page` of `slot`: a large slot's probe visits it. */
  markTouched(slot: number, page: number): void {
    const t = this.#touched;
    if (t !== undefined) t[slot * this.#touchedBytes + (page >>> 3)]! |= 1 << (page & 7);
  }

  /**
   * Calls `visit` with every page of `slot` the final probe translates: every page it ever
   * mapped, or for a large slot every page a DMA translated and the first page of every 2 MiB
   * it ever mapped. An IOTLB entry exists only for a translated page or a block holding one,
   * so a stale entry is always at a visited page.
   */
  forEachProbePage(slot: number, visit: (page: number) => void): void {
    const ever = this.#ever[slot]!;
    const t = this.#touched;
    if (t === undefined) {
      for (let p = 0; p < ever; p++) visit(p);
      return;
    }
    const at = slot * this.#touchedBytes;
    for (let p = 0; p < ever; p++) {
      if (p % BLOCK_PAGES === 0 || (t[at + (p >>> 3)]! & (1 << (p & 7))) !== 0) visit(p);
    }
  }
}
