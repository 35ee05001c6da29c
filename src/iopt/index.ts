/** The io_pagetable of an IOAS: areas, reserved and allowed ranges, the IOVA allocator, map/unmap/copy. */
export { IoPagetable, type IoptDomain, type IoptArea, type PagesSlice } from './io-pagetable.js';
export { IoptPages } from './pages.js';
export { allocIova, roundupPowOfTwo, PAGE_SIZE_N, MAX_AUTO_ALIGNMENT } from './iova-alloc.js';
export { U64_MAX, mergeRanges, holes, intersects, type IovaRange } from './ranges.js';
