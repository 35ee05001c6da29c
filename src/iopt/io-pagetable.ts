import type { HostAddressSpace } from '../memory/host-mm.js';
import type { DomainGeometry, PaSource } from '../pgtable/index.js';
import { IommufdError } from '../util/errors.js';
import type { FaultInjector } from '../util/fail-nth.js';
import { allocIova, PAGE_SIZE_N } from './iova-alloc.js';
import { IoptPages } from './pages.js';
import { holes, intersects, mergeRanges, U64_MAX, upperBound, type IovaRange } from './ranges.js';

/** What an io_pagetable needs of a domain: its geometry and a map/unmap of IOVA ranges. */
export interface IoptDomain {
  /** Page sizes and aperture. */
  readonly geometry: DomainGeometry;
  /** Maps [iova, iova+length) to the addresses of `pa`, all or nothing (ENOMEM). */
  map(iova: bigint, length: bigint, pa: PaSource, prot: number, huge: boolean): void;
  /** Unmaps [iova, iova+length); never fails. Returns bytes unmapped. */
  unmap(iova: bigint, length: bigint): bigint;
}

/** One IOVA area: a slice of an {@link IoptPages} mapped at `iova` with `prot`. */
export interface IoptArea {
  /** First IOVA. */
  start: bigint;
  /** Last IOVA. */
  last: bigint;
  /** The backing pages. */
  pages: IoptPages;
  /** Offset of the area's first byte from `pages.base`. */
  startByte: bigint;
  /** Prot bits. */
  prot: number;
  /** Whether the area is pinned and mapped into every domain. */
  filled: boolean;
}

/** First and last host page (of `area.pages`) that an area covers. */
function pageRange(area: IoptArea): [number, number] {
  const first = Number(area.startByte >> 12n);
  const last = Number((area.startByte + (area.last - area.start)) >> 12n);
  return [first, last];
}

/** A reserved range and its owner (a device, a domain, or null). */
interface Reserved extends IovaRange {
  owner: unknown;
}

/** A slice of pages to map, as `iopt_pages_list`. */
export interface PagesSlice {
  /** The pages. */
  pages: IoptPages;
  /** Offset of the slice's first byte from `pages.base`. */
  startByte: bigint;
  /** Bytes. */
  length: bigint;
}

/**
 * `io_pagetable`: an IOAS's areas, reserved and allowed ranges, domains and alignment, with the
 * kernel's rules (reference/iommufd.md §2 and §4). It knows nothing of objects or ids. Every
 * operation is all or nothing, except unmap, which commits area by area as the kernel does.
 */
export class IoPagetable {
  /** Areas, sorted by start, disjoint. */
  readonly areas: IoptArea[] = [];
  /** Reserved ranges, sorted by start; they may overlap. */
  readonly reserved: Reserved[] = [];
  /** User-allowed ranges, sorted, disjoint. */
  allowed: IovaRange[] = [];
  /** Domains filled from this IOAS. */
  readonly domains: IoptDomain[] = [];
  /** Current IOVA alignment. */
  iovaAlignment = 1n;
  /** HUGE_PAGES == 0. */
  disableLargePages = false;
  readonly #mm: HostAddressSpace;
  readonly #faults: FaultInjector;

  /** Creates an empty io_pagetable. */
  constructor(mm: HostAddressSpace, faults: FaultInjector) {
    this.#mm = mm;
    this.#faults = faults;
  }

  // ---- queries ------------------------------------------------------------------------------

  /** The usable IOVA ranges: the holes of the reserved ranges over [0, U64_MAX]. */
  iovaRanges(): IovaRange[] {
    return holes(mergeRanges(this.reserved), 0n, U64_MAX);
  }

  /** The first area that intersects [start, last], or undefined. */
  firstArea(start: bigint, last: bigint): IoptArea | undefined {
    const i = upperBound(this.areas, start) - 1;
    const prev = this.areas[i];
    if (prev !== undefined && prev.last >= start) return prev;
    const next = this.areas[i + 1];
    return next !== undefined && next.start <= last ? next : undefined;
  }

  #reservedHits(start: bigint, last: bigint): boolean {
    return this.reserved.some((r) => intersects(r.start, r.last, start, last));
  }

  #allowedHits(start: bigint, last: bigint): boolean {
    return this.allowed.some((r) => intersects(r.start, r.last, start, last));
  }

  // ---- reserved and allowed ranges ----------------------------------------------------------

  /** `iopt_reserve_iova`: EADDRINUSE if the range hits an area or an allowed range. */
  reserve(start: bigint, last: bigint, owner: unknown): void {
    if (this.firstArea(start, last) !== undefined) {
      throw new IommufdError(
        'EADDRINUSE',
        `reserved range [0x${start.toString(16)}, 0x${last.toString(16)}] overlaps a mapped area`,
      );
    }
    if (this.#allowedHits(start, last)) {
      throw new IommufdError(
        'EADDRINUSE',
        `reserved range [0x${start.toString(16)}, 0x${last.toString(16)}] overlaps an allowed range`,
      );
    }
    this.#faults.step('reserve iova');
    this.reserved.splice(upperBound(this.reserved, start), 0, { start, last, owner });
  }

  /** Removes every reserved range of `owner`. */
  unreserve(owner: unknown): void {
    for (let i = this.reserved.length - 1; i >= 0; i--)
      if (this.reserved[i]!.owner === owner) this.reserved.splice(i, 1);
  }

  /**
   * IOAS_ALLOW_IOVAS: replaces the allowed list, all or nothing. As the kernel: every range is
   * validated first (start >= last, overlaps: EINVAL), then checked against the reserved ranges
   * (EADDRINUSE).
   */
  setAllowed(ranges: readonly IovaRange[]): void {
    const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    ranges.forEach((r, i) => {
      if (r.start >= r.last) throw new IommufdError('EINVAL', `allowed range ${i} has start >= last`);
    });
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.start <= sorted[i - 1]!.last) throw new IommufdError('EINVAL', 'allowed ranges overlap');
    }
    for (const r of sorted) {
      if (this.#reservedHits(r.start, r.last)) {
        throw new IommufdError(
          'EADDRINUSE',
          `allowed range [0x${r.start.toString(16)}, 0x${r.last.toString(16)}] overlaps a reserved range`,
        );
      }
    }
    this.#faults.step('allow iovas');
    this.allowed = sorted.map((r) => ({ start: r.start, last: r.last }));
  }

  // ---- map ----------------------------------------------------------------------------------

  /** Creates the pages for a user VA range (IOAS_MAP). */
  userPages(va: bigint, length: bigint, writable: boolean): IoptPages {
    if (va + length > U64_MAX) throw new IommufdError('EOVERFLOW', 'user_va + length overflows');
    this.#faults.step('alloc pages');
    return new IoptPages(this.#mm, va, length, writable);
  }

  /** `iopt_get_pages`: the slices behind [iova, iova+length), which contiguous areas must cover (ENOENT). */
  getPages(iova: bigint, length: bigint): PagesSlice[] {
    if (length === 0n) throw new IommufdError('EINVAL', 'length is 0');
    const last = iova + length - 1n;
    if (last > U64_MAX) throw new IommufdError('EOVERFLOW', 'iova + length overflows');
    const out: PagesSlice[] = [];
    let cur = iova;
    let i = upperBound(this.areas, iova) - 1;
    for (; cur <= last; i++) {
      const area = this.areas[i];
      if (area === undefined || area.start > cur || area.last < cur) {
        throw new IommufdError('ENOENT', `IOVA 0x${cur.toString(16)} is not covered by contiguous areas`);
      }
      const end = area.last < last ? area.last : last;
      out.push({ pages: area.pages, startByte: area.startByte + (cur - area.start), length: end - cur + 1n });
      cur = end + 1n;
    }
    return out;
  }

  /**
   * `iopt_map_pages`: maps the slices back to back at `iova` (or at an automatic IOVA when it is
   * undefined), fills every domain, and returns the IOVA. All or nothing.
   */
  mapPages(slices: readonly PagesSlice[], length: bigint, iova: bigint | undefined, prot: number): bigint {
    if (length === 0n || length % this.iovaAlignment !== 0n) {
      throw new IommufdError(
        'EINVAL',
        `length ${length} is not a non-zero multiple of the IOAS alignment ${this.iovaAlignment}`,
      );
    }
    let dst: bigint;
    if (iova === undefined) {
      const first = slices[0]!;
      dst = allocIova(
        { iovaAlignment: this.iovaAlignment, allowed: this.allowed, used: () => [...this.reserved, ...this.areas] },
        first.pages.base + first.startByte,
        length,
      );
    } else {
      this.#checkIova(iova, length);
      dst = iova;
    }
    const created: IoptArea[] = [];
    try {
      let at = dst;
      for (const s of slices) {
        // iopt_insert_area: writability, then the page offset, after the IOVA checks.
        if ((prot & 2) !== 0 && !s.pages.writable)
          throw new IommufdError('EPERM', 'writeable mapping of read-only pages');
        if ((s.startByte % PAGE_SIZE_N) % this.iovaAlignment !== 0n) {
          throw new IommufdError(
            'EINVAL',
            `user address page offset is not aligned to the IOAS alignment ${this.iovaAlignment}`,
          );
        }
        this.#faults.step('alloc area');
        const area: IoptArea = {
          start: at,
          last: at + s.length - 1n,
          pages: s.pages,
          startByte: s.startByte,
          prot,
          filled: false,
        };
        this.areas.splice(upperBound(this.areas, at), 0, area);
        created.push(area);
        at += s.length;
      }
      if (this.domains.length > 0) for (const area of created) this.#fillArea(area);
    } catch (e) {
      for (const area of created.reverse()) this.#removeArea(area);
      throw e;
    }
    return dst;
  }

  /** `iopt_check_iova`: alignment EINVAL, overflow EOVERFLOW, reserved EINVAL, existing area EEXIST. */
  #checkIova(iova: bigint, length: bigint): void {
    if (iova % this.iovaAlignment !== 0n)
      throw new IommufdError('EINVAL', `iova 0x${iova.toString(16)} is not aligned to ${this.iovaAlignment}`);
    const last = iova + length - 1n;
    if (last > U64_MAX) throw new IommufdError('EOVERFLOW', 'iova + length overflows');
    if (this.#reservedHits(iova, last))
      throw new IommufdError('EINVAL', `iova range [0x${iova.toString(16)}, 0x${last.toString(16)}] is reserved`);
    if (this.firstArea(iova, last) !== undefined) {
      throw new IommufdError(
        'EEXIST',
        `iova range [0x${iova.toString(16)}, 0x${last.toString(16)}] overlaps a mapping`,
      );
    }
  }

  /** Pins an area and maps it into every domain; all or nothing. */
  #fillArea(area: IoptArea): void {
    const [first, last] = pageRange(area);
    area.pages.pin(first, last, this.#faults);
    const done: IoptDomain[] = [];
    try {
      for (const d of this.domains) {
        this.#mapInto(d, area);
        done.push(d);
      }
    } catch (e) {
      for (const d of done) d.unmap(area.start, area.last - area.start + 1n);
      area.pages.unpin(first, last);
      throw e;
    }
    area.filled = true;
  }

  #mapInto(d: IoptDomain, area: IoptArea): void {
    this.#faults.step('domain map');
    const base = Number(area.startByte);
    const pages = area.pages;
    d.map(area.start, area.last - area.start + 1n, (off) => pages.paAt(base + off), area.prot, !this.disableLargePages);
  }

  /** Unmaps an area from every domain, unpins it, and drops it. Never fails. */
  #removeArea(area: IoptArea): void {
    if (area.filled) {
      for (const d of this.domains) d.unmap(area.start, area.last - area.start + 1n);
      area.pages.unpin(...pageRange(area));
      area.filled = false;
    }
    const i = this.areas.indexOf(area);
    if (i >= 0) this.areas.splice(i, 1);
  }

  // ---- unmap --------------------------------------------------------------------------------

  /**
   * `iopt_unmap_iova_range`: removes the areas inside [start, last] in ascending order; the first
   * area that sticks out is ENOENT, after the ones before it were removed (reference/iommufd.md §2,
   * whole-area rule). Returns the bytes removed. What was removed before a failure stays removed.
   */
  unmapRange(start: bigint, last: bigint): bigint {
    let unmapped = 0n;
    for (;;) {
      const area = this.firstArea(start, last);
      if (area === undefined) break;
      if (area.start < start || area.last > last) {
        throw new IommufdError(
          'ENOENT',
          `area [0x${area.start.toString(16)}, 0x${area.last.toString(16)}] is not wholly inside the range`,
        );
      }
      this.#removeArea(area);
      unmapped += area.last - area.start + 1n;
    }
    return unmapped;
  }

  /** Unmaps every area. */
  unmapAll(): bigint {
    return this.unmapRange(0n, U64_MAX);
  }

  // ---- domains ------------------------------------------------------------------------------

  /**
   * `iopt_table_add_domain`: reserves what lies outside the aperture, raises the alignment (every
   * area must satisfy it: EADDRINUSE), pins and maps every area. All or nothing.
   */
  addDomain(d: IoptDomain): void {
    const g = d.geometry;
    const smallest = g.pageSizes[0]!;
    if (smallest > PAGE_SIZE_N) throw new IommufdError('EINVAL', `domain page size ${smallest} exceeds PAGE_SIZE`);
    const newAlignment = this.iovaAlignment > smallest ? this.iovaAlignment : smallest;
    const undo: (() => void)[] = [];
    try {
      if (g.apertureStart !== 0n) {
        this.reserve(0n, g.apertureStart - 1n, d);
        undo.push(() => this.unreserve(d));
      }
      if (g.apertureLast !== U64_MAX) {
        this.reserve(g.apertureLast + 1n, U64_MAX, d);
        undo.push(() => this.unreserve(d));
      }
      this.#checkAlignment(newAlignment);
      this.#faults.step('add domain');
      if (this.domains.length === 0) {
        // The first domain pins: until now the mappings were lazy.
        for (const area of this.areas) {
          this.#fillOne(d, area, undo);
        }
      } else {
        for (const area of this.areas) {
          this.#mapInto(d, area);
          undo.push(() => d.unmap(area.start, area.last - area.start + 1n));
        }
      }
    } catch (e) {
      for (const u of undo.reverse()) u();
      throw e;
    }
    this.domains.push(d);
    this.iovaAlignment = newAlignment;
  }

  #fillOne(d: IoptDomain, area: IoptArea, undo: (() => void)[]): void {
    const [first, last] = pageRange(area);
    area.pages.pin(first, last, this.#faults);
    try {
      this.#mapInto(d, area);
    } catch (e) {
      area.pages.unpin(first, last);
      throw e;
    }
    area.filled = true;
    undo.push(() => {
      d.unmap(area.start, area.last - area.start + 1n);
      area.pages.unpin(first, last);
      area.filled = false;
    });
  }

  /**
   * `iopt_table_remove_domain`: the domain leaves the IOAS (the last domain unpins the areas),
   * and its reservations go. Its entries are not cleared one by one: the caller frees the whole
   * domain next, and a walk still in it must see it unchanged until the grace period ends (the
   * unpinned frames are retired through the same grace period). Never fails.
   */
  removeDomain(d: IoptDomain): void {
    const i = this.domains.indexOf(d);
    if (i < 0) return;
    this.domains.splice(i, 1);
    if (this.domains.length === 0) {
      for (const area of this.areas) {
        if (!area.filled) continue;
        area.pages.unpin(...pageRange(area));
        area.filled = false;
      }
    }
    this.unreserve(d);
    this.#recalculateAlignment();
  }

  /** `iopt_check_iova_alignment`: every area's IOVA, length and page offset. */
  #checkAlignment(alignment: bigint): void {
    if (alignment <= this.iovaAlignment) return;
    for (const a of this.areas) {
      if (
        a.start % alignment !== 0n ||
        (a.last - a.start + 1n) % alignment !== 0n ||
        (a.startByte % PAGE_SIZE_N) % alignment !== 0n
      ) {
        throw new IommufdError('EADDRINUSE', `area at 0x${a.start.toString(16)} is not aligned to ${alignment}`);
      }
    }
  }

  /** `iopt_calculate_iova_alignment`. */
  #wantedAlignment(): bigint {
    let a = this.disableLargePages ? PAGE_SIZE_N : 1n;
    for (const d of this.domains) if (d.geometry.pageSizes[0]! > a) a = d.geometry.pageSizes[0]!;
    return a;
  }

  #recalculateAlignment(): void {
    const a = this.#wantedAlignment();
    this.#checkAlignment(a);
    this.iovaAlignment = a;
  }

  /** HUGE_PAGES = 0 (`iopt_disable_large_pages`). */
  setLargePages(enabled: boolean): void {
    if (enabled) {
      this.disableLargePages = false;
      this.iovaAlignment = this.#wantedAlignment();
      return;
    }
    if (this.disableLargePages) return;
    if (this.domains.length > 0 && this.areas.length > 0) {
      throw new IommufdError('EINVAL', 'cannot disable huge pages while domains hold mappings');
    }
    this.disableLargePages = true;
    try {
      this.#recalculateAlignment();
    } catch (e) {
      this.disableLargePages = false;
      throw e;
    }
  }
}
