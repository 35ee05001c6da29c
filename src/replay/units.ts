/**
 * The units a replay can run on, and the part of them it uses. The replay drives a unit only
 * through its MMIO window, its guest RAM and DMA translation, so the same replayers run on this
 * project's emulated units (`Iommufd.vtdCreate` / `smmuCreate`) and on the QEMU-style baseline
 * (src/baseline), with the same input and the same guest.
 */
import type { PhysMemory } from '../memory/index.js';

/** Which units a replay runs on: this project's ('ioasid') or the QEMU-style baseline ('qemu'). */
export type ReplayTarget = 'ioasid' | 'qemu';

/** The targets, in the order a comparison interleaves them. */
export const REPLAY_TARGETS: readonly ReplayTarget[] = ['ioasid', 'qemu'];

/** What the replay needs of an emulated VT-d or SMMUv3 unit. */
export interface ReplayUnit {
  /** An MMIO read (size 4: number, size 8: bigint). */
  mmioRead(offset: number, size: 4 | 8): number | bigint;
  /** An MMIO write; a doorbell consumes the queue before it returns. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
  /** Guest RAM's place in host memory, to check where a translation went. */
  readonly ram: { gpaToPa(gpa: number): number };
  /** The host physical address of `iova` for a request of source id / StreamID `sid`, or a negative fault. */
  translate(req: { sid: number }, iova: number, access: number): number;
}
