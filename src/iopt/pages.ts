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
  /** Areas that refer to these pages. */
  users = 0;
  /** Pinned frame per page (valid while its pin count is > 0). */
  readonly #frames: Int32Array;
  /** Filled areas covering each page. */
  readonly #pins: Int32Array;
  readonly #mm: HostAddressSpace;

  /** Describes the host pages covering [va, va+length). */
  constructor(mm: HostAddressSpace, va: bigint, length: bigint, writable: boolean) {
    this.#mm = mm;
    this.base = va & ~4095n;
    this.npages = Number((va + length - this.base + 4095n) >> 12n);
    this.writable = writable;
    this.#frames = new Int32Array(this.npages);
    this.#pins = new Int32Array(this.npages);
  }

  /** How many filled areas hold page `index`. */
  pinsOf(index: number): number {
    return this.#pins[index]!;
  }

  /**
   * Takes a pin on pages [first, last] for one filled area. Pages not pinned yet are pinned from
   * the host address space now: EFAULT, with nothing pinned, if any of them is unmapped.
   */
  pin(first: number, last: number, faults: FaultInjector): void {
    let fresh = 0;
    for (let p = first; p <= last; p++) {
      if (this.#pins[p] !== 0) continue;
      const va = this.base + (BigInt(p) << 12n);
      if (this.#mm.frameOf(va) < 0) throw new IommufdError('EFAULT', `user VA 0x${va.toString(16)} is not mapped`);
      fresh++;
    }
    if (fresh > 0) faults.step('pin pages', 'EFAULT');
    for (let p = first; p <= last; p++) {
      if (this.#pins[p] === 0) this.#frames[p] = this.#mm.pin(this.base + (BigInt(p) << 12n), 1)[0]!;
      this.#pins[p]!++;
    }
  }

  /** Drops one area's pin on pages [first, last]; a page whose last pin goes is unpinned. */
  unpin(first: number, last: number): void {
    for (let p = first; p <= last; p++) {
      if (this.#pins[p]! <= 0) throw new Error('unbalanced unpin');
      if (--this.#pins[p]! === 0) this.#mm.unpin(this.#frames.subarray(p, p + 1));
    }
  }

  /** Physical address of the byte at `offset` from `base`. Its page must be pinned. */
  paAt(offset: number): number {
    return this.#frames[offset >>> 12]! * 4096 + (offset & 4095);
  }
}
