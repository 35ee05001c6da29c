/**
 * `dmam_alloc_coherent` for the driver model: naturally aligned runs of zeroed guest pages. The
 * unit aligns a queue base or a stream table address down to the structure's size, so a
 * structure larger than a page must start on a multiple of its own size.
 */
import type { FrameAllocator } from '../../memory/index.js';

const PAGE = 4096;

/**
 * Allocates `bytes` (rounded up to a power-of-two number of pages) of zeroed guest memory aligned
 * to its size, and returns its guest-physical address. A multi-page run is carved out of a run
 * twice as long, and the frames around it go back to the allocator.
 */
export function allocCoherent(frames: FrameAllocator, bytes: number): number {
  let pages = 1;
  while (pages * PAGE < bytes) pages *= 2;
  if (pages === 1) return frames.alloc() * PAGE;
  const first = frames.allocContiguous(2 * pages - 1);
  const aligned = Math.ceil(first / pages) * pages;
  for (let f = first; f < first + 2 * pages - 1; f++) {
    if (f < aligned || f >= aligned + pages) frames.put(f);
  }
  return aligned * PAGE;
}
