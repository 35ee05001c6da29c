/**
 * The mappings behind a `-xlate` trace's translations. The guest's map and unmap calls are not
 * in the trace, so the replay makes them up at the last moment the trace allows: a page is
 * mapped (in the domain's page table in guest RAM) at its first translation, and unmapped just
 * before the first invalidation that covers it is queued, as the guest cleared the PTE before
 * it invalidated (issue 7, item 3).
 *
 * The trace's physical addresses are those of the traced guest's RAM (1 GiB), larger than the
 * replay's guest RAM: each traced page is folded onto one of a pool of data pages, so distinct
 * traced pages that are live together usually land on distinct pages, and every translation can
 * be checked against the page its mapping names.
 */
import type { FrameAllocator } from '../memory/index.js';
import type { RadixPageTable } from '../pgtable/index.js';

const PAGE = 4096;

/** A domain the replay owns: its page table, and the pages that translations mapped in it. */
export class ReplayDomain {
  /** The domain's page table, in guest RAM. */
  readonly table: RadixPageTable;
  /** Live mappings: IOVA page number → guest-physical page number | prot << 40. */
  readonly live = new Map<number, number>();

  /** A domain over `table` (empty). */
  constructor(table: RadixPageTable) {
    this.table = table;
  }
}

/** What a translation line asks: the guest-physical address it must reach, or a reason it cannot. */
export const MapOutcome = {
  /** The mapping was there (and agrees with the line). */
  Live: 0,
  /** The line's first translation: the mapping was created. */
  Created: 1,
  /** A live mapping of the page disagrees with the line (another page or permission): it was replaced. */
  Replaced: 2,
} as const;

/** Prot bits (1 read, 2 write) live above the page number in a live-map value. */
const PROT_SHIFT = 2 ** 40;

/** The mappings of every domain of a replay, and the pool of data pages they point at. */
export class TraceMappings {
  /** Mappings created and removed so far. */
  mapped = 0;
  unmapped = 0;
  /** The guest-physical address the last {@link ensure} resolved to. */
  lastGpa = 0;
  readonly #poolPage: number;
  readonly #poolPages: number;

  /** Allocates a pool of `pages` contiguous data pages from `frames`. */
  constructor(frames: FrameAllocator, pages: number) {
    this.#poolPage = frames.allocContiguous(pages);
    this.#poolPages = pages;
  }

  /**
   * Makes sure the page of `iova` is mapped in `domain` to the data page of the traced physical
   * address `tracePa` with `prot` (1 read, 2 write, 3 both), and sets {@link lastGpa} to the
   * guest-physical address the translation of `iova` must reach. Returns a {@link MapOutcome}.
   */
  ensure(domain: ReplayDomain, iova: number, tracePa: number, prot: number): number {
    const page = Math.floor(iova / PAGE);
    const dataPage = this.#poolPage + (Math.floor(tracePa / PAGE) % this.#poolPages);
    const want = dataPage + prot * PROT_SHIFT;
    this.lastGpa = dataPage * PAGE + (iova % PAGE);
    const have = domain.live.get(page);
    if (have === want) return MapOutcome.Live;
    let outcome: number = MapOutcome.Created;
    if (have !== undefined) {
      domain.table.unmap(page * PAGE, PAGE);
      this.unmapped++;
      outcome = MapOutcome.Replaced;
    }
    domain.table.map(page * PAGE, PAGE, (off) => dataPage * PAGE + off, prot, false);
    domain.live.set(page, want);
    this.mapped++;
    return outcome;
  }

  /** Unmaps the live pages of `domain` in [firstPage, firstPage + pages). */
  removeRange(domain: ReplayDomain, firstPage: number, pages: number): void {
    const live = domain.live;
    if (live.size === 0) return;
    if (pages <= live.size * 4) {
      for (let p = firstPage; p < firstPage + pages; p++) {
        if (live.delete(p)) this.#unmap(domain, p);
      }
      return;
    }
    for (const p of live.keys()) {
      if (p >= firstPage && p < firstPage + pages) {
        live.delete(p);
        this.#unmap(domain, p);
      }
    }
  }

  /** Unmaps every live page of `domain`. */
  removeAll(domain: ReplayDomain): void {
    for (const p of domain.live.keys()) this.#unmap(domain, p);
    domain.live.clear();
  }

  /** Whether `domain` has a live page in [firstPage, firstPage + pages). */
  covers(domain: ReplayDomain, firstPage: number, pages: number): boolean {
    for (const p of domain.live.keys()) if (p >= firstPage && p < firstPage + pages) return true;
    return false;
  }

  #unmap(domain: ReplayDomain, page: number): void {
    domain.table.unmap(page * PAGE, PAGE);
    this.unmapped++;
  }
}
