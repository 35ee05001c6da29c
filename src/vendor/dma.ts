/**
 * Device DMA through an emulated unit, page by page: each 4 KiB piece is translated for the
 * access, and a fault stops the transfer with the unit's error (earlier pages were transferred,
 * as with a real device). Shared by the VT-d and SMMUv3 units.
 */
import type { PhysMemory } from '../memory/index.js';
import { Access } from '../pgtable/index.js';

/** Translates `iova` for `access`: a physical address, or negative on a fault. */
export type DmaTranslate = (iova: number, access: number) => number;

/** Walks [iova, iova + length) page by page, handing each translated piece to `each`. */
function dmaPages(
  translate: DmaTranslate,
  iova: number,
  length: number,
  access: number,
  each: (pa: number, off: number, n: number) => void,
  fault: (at: number) => Error,
): void {
  let off = 0;
  while (off < length) {
    const at = iova + off;
    const n = Math.min(length - off, 4096 - (at % 4096));
    const pa = translate(at, access);
    if (pa < 0) throw fault(at);
    each(pa, off, n);
    off += n;
  }
}

/** Reads `length` bytes at `iova` from `phys`; throws `fault(address)` on the first fault. */
export function dmaRead(
  phys: PhysMemory,
  translate: DmaTranslate,
  iova: number,
  length: number,
  fault: (at: number) => Error,
): Uint8Array {
  const out = new Uint8Array(length);
  dmaPages(translate, iova, length, Access.Read, (pa, off, n) => out.set(phys.u8.subarray(pa, pa + n), off), fault);
  return out;
}

/** Writes `bytes` at `iova` into `phys`; throws `fault(address)` on the first fault. */
export function dmaWrite(
  phys: PhysMemory,
  translate: DmaTranslate,
  iova: number,
  bytes: Uint8Array,
  fault: (at: number) => Error,
): void {
  dmaPages(
    translate,
    iova,
    bytes.length,
    Access.Write,
    (pa, off, n) => phys.u8.set(bytes.subarray(off, off + n), pa),
    fault,
  );
}
