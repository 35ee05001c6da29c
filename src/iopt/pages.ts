import type { HostAddressSpace } from '../memory/host-mm.js';
import type { FaultInjector } from '../util/fail-nth.js';

/**
 * `iopt_pages`: the pinned storage behind one IOAS_MAP, shared by every area that maps a slice of
 * it (through IOAS_COPY too). The host pages are pinned exactly once, when the first area that
 * needs them is filled into a domain, and unpinned when the last such area lets go.
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
  #pinUsers = 0;
  #frames: Int32Array | null = null;
  readonly #mm: HostAddressSpace;

  /** Describes the host pages covering [va, va+length). */
  constructor(mm: HostAddressSpace, va: bigint, length: bigint, writable: boolean) {
    this.#mm = mm;
    this.base = va & ~4095n;
    this.npages = Number((va + length - this.base + 4095n) >> 12n);
    this.writable = writable;
  }

  /** The pinned frames, or null when nothing is pinned. */
  get frames(): Int32Array | null {
    return this.#frames;
  }

  /** Number of filled areas holding the pin. */
  get pinUsers(): number {
    return this.#pinUsers;
  }

  /** Takes a pin for one filled area; the first pins the host pages (EFAULT if any is unmapped). */
  pin(faults: FaultInjector): void {
    if (this.#pinUsers === 0) {
      faults.step('pin pages', 'EFAULT');
      this.#frames = this.#mm.pin(this.base, this.npages);
    }
    this.#pinUsers++;
  }

  /** Drops a pin; the last unpins the host pages. */
  unpin(): void {
    if (this.#pinUsers <= 0) throw new Error('unbalanced unpin');
    if (--this.#pinUsers === 0) {
      this.#mm.unpin(this.#frames!);
      this.#frames = null;
    }
  }

  /** Physical address of the byte at `offset` from `base`. The pages must be pinned. */
  paAt(offset: number): number {
    return this.#frames![offset >>> 12]! * 4096 + (offset & 4095);
  }
}
