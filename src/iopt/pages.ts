import type { HostAddressSpace } from '../memory/host-mm.js';
import { IommufdError } from '../util/errors.js';
import type { FaultInjector } from '../util/fail-nth.js';

/**
 * `iopt_pages`: the storage behind one IOAS_MAP, shared by every area that maps a slice of it
 * (through IOAS_COPY too). Host pages are pinned per page, while at least one area that covers
 * them is filled into a domain: an area pins exactly its own page range, so a copy of one page
 * pins one page, and each host page is pinned once however many areas cover it.
 */
export class IoptPages {
  /** Page-aligned host VA of the first page. */
  readonly base: bigint;
  /** Host pages covered. */
  readonly npages: number;
  /** Whether the mapping was made writeable (IOMMU_WRITE areas need it). */
  readonly writable: boolean;
  /**
   * Pinned pages: page index → [frame, filled areas covering it]. Sparse, because a lazy mapping
   * may cover far more address space than will ever be pinned.
   */
  readonly #pinned = new Map<number, { frame: number; pins: number }>();
  readonly #mm: HostAddressSpace;

  /** Describes the host pages covering [va, va+length). */
  constructor(mm: HostAddressSpace, va: bigint, length: bigint, writable: boolean) {
    this.#mm = mm;
    this.base = va & ~4095n;
    this.npages = Number((va + length - this.base + 4095n) >> 12n);
    this.writable = writable;
  }

  /**
   * Takes a pin on pages [first, last] for one filled area. Pages not pinned yet are pinned from
   * the host address space now: EFAULT, with nothing pinned, if any of them is unmapped.
   */
  pin(first: number, last: number, faults: FaultInjector): void {
    let fresh = 0;
    for (let p = first; p <= last; p++) {
      if (this.#pinned.has(p)) continue;
      const va = this.base + (BigInt(p) << 12n);
      if (this.#mm.frameOf(va) < 0) throw new IommufdError('EFAULT', `user VA 0x${va.toString(16)} is not mapped`);
      fresh++;
    }
    if (fresh > 0) faults.step('pin pages', 'EFAULT');
    for (let p = first; p <= last; p++) {
      const e = this.#pinned.get(p);
      if (e !== undefined) e.pins++;
      else this.#pinned.set(p, { frame: this.#mm.pin(this.base + (BigInt(p) << 12n), 1)[0]!, pins: 1 });
    }
  }

  /** Drops one area's pin on pages [first, last]; a page whose last pin goes is unpinned. */
  unpin(first: number, last: number): void {
    for (let p = first; p <= last; p++) {
      const e = this.#pinned.get(p);
      if (e === undefined) throw new Error('unbalanced unpin');
      if (--e.pins === 0) {
        this.#pinned.delete(p);
        this.#mm.unpin(Int32Array.of(e.frame));
      }
    }
  }

  /** Physical address of the byte at `offset` from `base`. Its page must be pinned. */
  paAt(offset: number): number {
    const page = Math.floor(offset / 4096);
    return this.#pinned.get(page)!.frame * 4096 + (offset - page * 4096);
  }
}
