/**
 * Guest RAM of a QEMU-style baseline unit. The baseline shares nothing with an iommufd (QEMU's
 * IOTLB is per unit, not a host-wide table), so a unit carves its guest RAM from a memory of its
 * own, or uses the VMM's guest RAM when it is given one.
 */
import { GuestRam, SystemMemory, type PhysMemory } from '../memory/index.js';

/** Guest RAM of a unit when its options name none: 64 MiB, as the project's units. */
export const DEFAULT_GUEST_RAM_BYTES = 64 * 2 ** 20;
/** Memory beyond guest RAM, so that the allocator finds one contiguous run for it. */
const SLACK_BYTES = 2 ** 20;

/** Where a baseline unit's guest RAM comes from. */
export interface BaselineRamOptions {
  /** Guest RAM bytes (a multiple of 4 KiB); default 64 MiB. Ignored when `ram` is given. */
  guestRamBytes?: number;
  /** Guest RAM that already exists (the VMM's); the unit then does not release it. */
  ram?: GuestRam;
}

/** A unit's guest RAM, its guest-physical view, and whether the unit owns it. */
export interface BaselineRam {
  readonly ram: GuestRam;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
  readonly owned: boolean;
}

/** Allocates (or adopts) a unit's guest RAM. EINVAL for a size that is not a positive multiple of 4 KiB. */
export function baselineRam(opts: BaselineRamOptions): BaselineRam {
  if (opts.ram !== undefined) return { ram: opts.ram, guest: opts.ram.guestPhys(), owned: false };
  const bytes = opts.guestRamBytes ?? DEFAULT_GUEST_RAM_BYTES;
  // Whole pages of memory whatever `bytes` is, so that GuestRam reports a bad size itself.
  const pages = Number.isFinite(bytes) && bytes > 0 ? Math.ceil(bytes / 4096) : 0;
  const memory = new SystemMemory(pages * 4096 + SLACK_BYTES);
  const ram = new GuestRam(memory.phys, memory.frames, bytes);
  return { ram, guest: ram.guestPhys(), owned: true };
}
