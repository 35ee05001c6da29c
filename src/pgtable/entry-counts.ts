import type { PhysMemory } from '../memory/phys.js';

/**
 * Valid entries per table frame, for every table built over one physical memory, so that
 * "is this table empty?" is O(1) instead of a scan. Only the control plane, which builds tables,
 * uses it; a frame belongs to one table at a time, so one slot per frame suffices.
 */
const entryCounts = new WeakMap<PhysMemory, Uint16Array>();

/** The entry-count array of `mem` (one slot per frame). */
export function entryCountsFor(mem: PhysMemory): Uint16Array {
  let c = entryCounts.get(mem);
  if (c === undefined) {
    c = new Uint16Array(mem.frameCount);
    entryCounts.set(mem, c);
  }
  return c;
}
