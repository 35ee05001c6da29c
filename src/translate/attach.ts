import { SystemMemory, type SharedMemoryHandles } from '../memory/index.js';
import { ContextTables, type ContextHandles } from './tables.js';
import { Translator } from './translator.js';

/** Everything a thread needs to translate DMA on its own: the shared buffers, handed over once. */
export interface DataPlaneHandles {
  /** Physical memory, the frame allocator and the reclaimer. */
  memory: SharedMemoryHandles;
  /** Domain descriptors and device contexts. */
  tables: ContextHandles;
}

/**
 * Builds a translator over shared buffers in another thread. It claims a reader slot, so the
 * control plane's reclamation waits for its walks; call `release` when the thread is done.
 */
export function attachTranslator(handles: DataPlaneHandles): { translator: Translator; release: () => void } {
  const memory = new SystemMemory(0, handles.memory);
  const tables = new ContextTables(memory.phys, undefined, handles.tables);
  const slot = memory.reclaimer.acquireSlot();
  if (slot < 0) throw new Error('no free reader slot for this thread');
  return {
    translator: new Translator(memory.phys, tables, memory.reclaimer, slot),
    release: () => memory.reclaimer.releaseSlot(slot),
  };
}
