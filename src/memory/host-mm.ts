import { IommufdError } from '../util/errors.js';
import type { FrameAllocator } from './frame-alloc.js';
import { PAGE_SHIFT, PAGE_SIZE, type PhysMemory } from './phys.js';

const PAGE = BigInt(PAGE_SIZE);
const SHIFT = BigInt(PAGE_SHIFT);
/** Where the VMM's mappings start, as on a 64-bit Linux process (below the 47-bit user limit). */
const MMAP_BASE = 0x7f00_0000_0000n;
const MMAP_LIMIT = 0x7fff_ffff_f000n;

/** One mapping: `pages` host pages from `start`, each backed by one frame. */
interface Vma {
  start: bigint;
  pages: number;
  frames: Int32Array;
}

/**
 * The VMM's host address space: `mmap` returns page-aligned virtual addresses backed by frames of
 * physical memory; `ioasMap` pins them. Touching an address that is not mapped is EFAULT, never a
 * silent zero. Mappings are kept sorted by address and found by binary search (no Map keyed by
 * address). Each mapped page holds one user on its frame; a pin holds another, so a frame that is
 * pinned outlives its munmap, as pinned pages do in Linux.
 */
export class HostAddressSpace {
  readonly #mem: PhysMemory;
  readonly #frames: FrameAllocator;
  readonly #vmas: Vma[] = [];

  /** Creates an empty address space over `mem`, taking frames from `frames`. */
  constructor(mem: PhysMemory, frames: FrameAllocator) {
    this.#mem = mem;
    this.#frames = frames;
  }

  /** Maps `length` bytes (rounded up to whole pages) of zeroed memory. ENOMEM when memory runs out. */
  mmap(length: bigint): bigint {
    if (typeof length !== 'bigint' || length <= 0n) {
      throw new IommufdError('EINVAL', `mmap length must be a positive bigint, got ${String(length)}`);
    }
    const pagesBig = (length + PAGE - 1n) >> SHIFT;
    if (pagesBig > BigInt(this.#mem.frameCount))
      throw new IommufdError('ENOMEM', `mmap of ${length} bytes exceeds physical memory`);
    const pages = Number(pagesBig);
    const start = this.#findHole(pages);
    if (start < 0n) throw new IommufdError('ENOMEM', 'host address space exhausted');
    if (this.#frames.available < pages)
      throw new IommufdError('ENOMEM', `mmap of ${length} bytes: physical memory exhausted`);
    const frames = new Int32Array(pages);
    let i = 0;
    try {
      for (; i < pages; i++) frames[i] = this.#frames.alloc();
    } catch (e) {
      for (let k = 0; k < i; k++) this.#frames.put(frames[k]!);
      throw e;
    }
    this.#vmas.splice(this.#indexAfter(start), 0, { start, pages, frames });
    return start;
  }

  /**
   * Maps `pages` existing frames from `firstFrame` (memory that something else allocated, such as
   * guest RAM shared with the VMM, as a memfd mapping is): each frame gains a user for the mapping,
   * so it outlives its owner's release until this range is unmapped too. Returns the VA.
   */
  mapFrames(firstFrame: number, pages: number): bigint {
    if (!Number.isInteger(pages) || pages <= 0)
      throw new IommufdError('EINVAL', 'mapFrames needs a positive page count');
    const start = this.#findHole(pages);
    if (start < 0n) throw new IommufdError('ENOMEM', 'host address space exhausted');
    const frames = new Int32Array(pages);
    for (let i = 0; i < pages; i++) {
      frames[i] = firstFrame + i;
      this.#frames.get(firstFrame + i);
    }
    this.#vmas.splice(this.#indexAfter(start), 0, { start, pages, frames });
    return start;
  }

  /** Unmaps every page of [va, va+length); pages that are not mapped are ignored, as in munmap(2). */
  munmap(va: bigint, length: bigint): void {
    if (typeof va !== 'bigint' || typeof length !== 'bigint' || length <= 0n || va < 0n) {
      throw new IommufdError('EINVAL', 'munmap needs a bigint va and a positive bigint length');
    }
    if (va % PAGE !== 0n) throw new IommufdError('EINVAL', `munmap va ${va} is not page aligned`);
    const end = va + ((length + PAGE - 1n) & ~(PAGE - 1n));
    for (let i = this.#indexAfter(va) - 1; i < this.#vmas.length; i++) {
      if (i < 0) continue;
      const vma = this.#vmas[i]!;
      const vEnd = vma.start + (BigInt(vma.pages) << SHIFT);
      if (vma.start >= end) break;
      if (vEnd <= va) continue;
      const cutFrom = Number(((va > vma.start ? va : vma.start) - vma.start) >> SHIFT);
      const cutTo = Number(((end < vEnd ? end : vEnd) - vma.start) >> SHIFT);
      for (let p = cutFrom; p < cutTo; p++) this.#frames.put(vma.frames[p]!);
      const pieces: Vma[] = [];
      if (cutFrom > 0) pieces.push({ start: vma.start, pages: cutFrom, frames: vma.frames.subarray(0, cutFrom) });
      if (cutTo < vma.pages) {
        pieces.push({
          start: vma.start + (BigInt(cutTo) << SHIFT),
          pages: vma.pages - cutTo,
          frames: vma.frames.subarray(cutTo),
        });
      }
      this.#vmas.splice(i, 1, ...pieces);
      i += pieces.length - 1;
    }
  }

  /** The frame backing the page that holds `va`, or -1 when it is not mapped. */
  frameOf(va: bigint): number {
    const i = this.#indexAfter(va) - 1;
    if (i < 0) return -1;
    const vma = this.#vmas[i]!;
    const page = (va - vma.start) >> SHIFT;
    return page < BigInt(vma.pages) ? vma.frames[Number(page)]! : -1;
  }

  /**
   * Pins the `pages` host pages from the page-aligned `va`: each frame gains a user. Returns the
   * frames. EFAULT, with nothing pinned, when any page is not mapped.
   */
  pin(va: bigint, pages: number): Int32Array {
    const frames = new Int32Array(pages);
    for (let p = 0; p < pages; p++) {
      const f = this.frameOf(va + (BigInt(p) << SHIFT));
      if (f < 0)
        throw new IommufdError('EFAULT', `user VA 0x${(va + (BigInt(p) << SHIFT)).toString(16)} is not mapped`);
      frames[p] = f;
    }
    for (let p = 0; p < pages; p++) this.#frames.get(frames[p]!);
    return frames;
  }

  /** Drops the pins taken by {@link pin}. */
  unpin(frames: Int32Array): void {
    for (let p = 0; p < frames.length; p++) this.#frames.put(frames[p]!);
  }

  /** How many pins hold the page backing `va` (its users beyond the mapping). EFAULT if unmapped. */
  pinCount(va: bigint): number {
    const f = this.frameOf(va);
    if (f < 0) throw new IommufdError('EFAULT', `user VA 0x${va.toString(16)} is not mapped`);
    return Atomics.load(this.#frames.users, f) - 1;
  }

  /** Copies `bytes` to [va, va+bytes.length). EFAULT, with nothing written, if any page is unmapped. */
  write(va: bigint, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new IommufdError('EINVAL', 'write needs a Uint8Array');
    this.#check(va, bytes.length);
    let done = 0;
    while (done < bytes.length) {
      const at = va + BigInt(done);
      const off = Number(at & (PAGE - 1n));
      const n = Math.min(PAGE_SIZE - off, bytes.length - done);
      const base = this.frameOf(at) * PAGE_SIZE + off;
      this.#mem.u8.set(bytes.subarray(done, done + n), base);
      done += n;
    }
  }

  /** Reads `length` bytes from `va`. EFAULT if any page is unmapped. */
  read(va: bigint, length: number): Uint8Array {
    if (!Number.isInteger(length) || length < 0)
      throw new IommufdError('EINVAL', `read length must be a non-negative integer`);
    this.#check(va, length);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = va + BigInt(done);
      const off = Number(at & (PAGE - 1n));
      const n = Math.min(PAGE_SIZE - off, length - done);
      const base = this.frameOf(at) * PAGE_SIZE + off;
      out.set(this.#mem.u8.subarray(base, base + n), done);
      done += n;
    }
    return out;
  }

  /** Unmaps everything. */
  clear(): void {
    for (const vma of this.#vmas) for (let p = 0; p < vma.pages; p++) this.#frames.put(vma.frames[p]!);
    this.#vmas.length = 0;
  }

  #check(va: bigint, length: number): void {
    if (typeof va !== 'bigint' || va < 0n) throw new IommufdError('EINVAL', 'va must be a non-negative bigint');
    if (length === 0) return;
    const last = va + BigInt(length - 1);
    for (let p = va & ~(PAGE - 1n); p <= last; p += PAGE) {
      if (this.frameOf(p) < 0) throw new IommufdError('EFAULT', `host VA 0x${p.toString(16)} is not mapped`);
    }
  }

  /** Index of the first mapping that starts above `va`. */
  #indexAfter(va: bigint): number {
    let lo = 0;
    let hi = this.#vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#vmas[mid]!.start <= va) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First fit, leaving one unmapped guard page after every mapping, as mmap usually does. */
  #findHole(pages: number): bigint {
    const size = BigInt(pages + 1) << SHIFT;
    let cursor = MMAP_BASE;
    for (const vma of this.#vmas) {
      if (vma.start - cursor >= size) return cursor;
      const end = vma.start + (BigInt(vma.pages + 1) << SHIFT);
      if (end > cursor) cursor = end;
    }
    return MMAP_LIMIT - cursor >= size ? cursor : -1n;
  }
}
