/**
 * Memory: physical memory in a SharedArrayBuffer, the shared frame allocator, epoch-based
 * reclamation, descriptor access rules, the VMM's host address space, and guest RAM.
 */
export { PhysMemory, PAGE_SIZE, PAGE_SHIFT, DEFAULT_MEMORY_BYTES, MAX_MEMORY_BYTES } from './phys.js';
export { FrameAllocator } from './frame-alloc.js';
export { EpochReclaimer, MAX_READER_SLOTS } from './reclaim.js';
export { descInstall, descClear, descLoadLo, descLoadHi } from './descriptor.js';
export { HostAddressSpace } from './host-mm.js';
export { GuestRam } from './guest-ram.js';
export { SystemMemory, type SharedMemoryHandles } from './system.js';
export { MemoryWindow } from './window.js';
