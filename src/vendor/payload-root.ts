/**
 * Table roots in a config-cache payload word. The payload holds 32-bit words, and a guest may
 * program a root at any address its unit's width allows; guest RAM here always lies below
 * 4 GiB (it is carved from the host's physical memory, a SharedArrayBuffer), so a root at or
 * above 4 GiB names no RAM. It is stored as an address beyond any guest RAM, where the walk's
 * first read aborts (VT-d: a paging-entry read fault; SMMUv3: F_WALK_EABT), as the hardware's
 * read of non-existent memory would, instead of wrapping into low guest RAM.
 */

/** Where a root at or above 4 GiB points in the payload: page-aligned, beyond every guest RAM. */
export const ROOT_BEYOND_RAM = 0xfffff000;

/** The payload word for table root `addr` (read back with `>>> 0`). */
export function payloadRoot(addr: number): number {
  return (addr < 2 ** 32 ? addr : ROOT_BEYOND_RAM) | 0;
}
