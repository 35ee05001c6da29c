import { IommufdError } from '../util/errors.js';

/** log2 of the host page (and physical frame) size. */
export const PAGE_SHIFT = 12;
/** Host page and physical frame size in bytes. */
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Default physical memory size: 256 MiB. */
export const DEFAULT_MEMORY_BYTES = 256 * 2 ** 20;
/** Largest physical memory accepted: 4 GiB, so every physical address fits in 32 unsigned bits. */
export const MAX_MEMORY_BYTES = 4 * 2 ** 30;

const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

/**
 * Physical memory: one SharedArrayBuffer of 4 KiB frames. Nothing is written at creation, so the
 * operating system commits pages only as they are touched. Byte, 32-bit and descriptor views all
 * share the buffer, and a worker rebuilds the same views from `sab`.
 */
export class PhysMemory {
  /** The shared buffer that holds every frame. */
  readonly sab: SharedArrayBuffer;
  /** Byte view of all of physical memory. */
  readonly u8: Uint8Array;
  /** 32-bit view, used for descriptors (index = physical address >> 2). */
  readonly i32: Int32Array;
  /** Number of 4 KiB frames. */
  readonly frameCount: number;

  /**
   * Creates `bytes` of physical memory, or views an existing buffer (in a worker). With `window`,
   * the views cover only `window.bytes` bytes from `window.offset` (4 KiB aligned): a guest's
   * own physical address space inside host memory, where address 0 is `window.offset`.
   */
  constructor(bytesOrSab: number | SharedArrayBuffer, window?: { offset: number; bytes: number }) {
    if (typeof bytesOrSab === 'number') {
      const bytes = bytesOrSab;
      if (!Number.isInteger(bytes) || bytes < PAGE_SIZE * 16 || bytes > MAX_MEMORY_BYTES || bytes % PAGE_SIZE !== 0) {
        throw new IommufdError(
          'EINVAL',
          `memoryBytes must be a multiple of ${PAGE_SIZE} between ${PAGE_SIZE * 16} and ${MAX_MEMORY_BYTES}, got ${String(bytes)}`,
        );
      }
      try {
        this.sab = new SharedArrayBuffer(bytes);
      } catch {
        throw new IommufdError('ENOMEM', `cannot allocate ${bytes} bytes of physical memory`);
      }
    } else {
      this.sab = bytesOrSab;
    }
    const offset = window?.offset ?? 0;
    const bytes = window?.bytes ?? this.sab.byteLength;
    if (offset % PAGE_SIZE !== 0 || bytes % PAGE_SIZE !== 0 || offset + bytes > this.sab.byteLength)
      throw new IommufdError('EINVAL', `a physical memory window must be 4 KiB aligned and inside the buffer`);
    this.u8 = new Uint8Array(this.sab, offset, bytes);
    this.i32 = new Int32Array(this.sab, offset, bytes / 4);
    this.frameCount = bytes / PAGE_SIZE;
  }

  /** Zeroes one frame. */
  zeroFrame(frame: number): void {
    // Copying a zero page is about 12x faster than fill() on a SharedArrayBuffer view in Node 20
    // (335 ns against 4 µs per frame, measured).
    this.u8.set(ZERO_PAGE, frame * PAGE_SIZE);
  }
}
