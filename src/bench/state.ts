/**
 * What a run leaves behind, for `ioasid inspect`: the fd, its emulated units, and per device
 * what the guest maps now, from the reference model (the guest driver's own view), never from
 * the unit. `runOnce` hands it to a hook after the final sync and before the correctness probe,
 * while everything is alive; the fd is closed once the hook returns.
 */
import type { Iommufd } from '../iommufd.js';
import type { SmmuIommu } from '../vendor/smmuv3/iommu.js';
import type { VtdIommu } from '../vendor/vtd/iommu.js';
import type { BenchDevice } from './device.js';
import type { BenchOptions } from './types.js';

/** An emulated unit of a run, by vendor. */
export type BenchUnit =
  { readonly vendor: 'vtd'; readonly unit: VtdIommu } | { readonly vendor: 'smmu'; readonly unit: SmmuIommu };

/** One mapping the guest holds: `pages` 4 KiB pages from `iova` onto guest-physical `gpa`. */
export interface GuestMapping {
  iova: number;
  pages: number;
  gpa: number;
}

/** A device of a run and what its domain maps. */
export interface BenchDeviceState {
  /** The index of its unit in `BenchState.units`. */
  unit: number;
  /** Source id (VT-d) or StreamID (SMMUv3). */
  sid: number;
  /** Its translations are cached in its ATC too. */
  ats: boolean;
  /** Its domain in the vendor's words: 'DID 1', 'ASID 3'. */
  domain: string;
  /** The live mappings, by IOVA. */
  mappings: GuestMapping[];
}

/** A run's state at its end. */
export interface BenchState {
  options: BenchOptions;
  fd: Iommufd;
  units: BenchUnit[];
  devices: BenchDeviceState[];
}

/** Called with the state at the end of a run; the run waits for it. */
export type BenchStateHook = (state: BenchState) => void | Promise<void>;

/** The state of a run with knobs `o` on `fd`, whose devices are `devices`. */
export function benchState(o: BenchOptions, fd: Iommufd, devices: readonly BenchDevice[]): BenchState {
  const units: BenchUnit[] = [];
  for (const dev of devices) {
    if (units[dev.unit] !== undefined) continue;
    const t = dev.guest.target;
    if (t === undefined) throw new RangeError('a run on the QEMU-style baseline has no state to inspect');
    units[dev.unit] = t;
  }
  return {
    options: o,
    fd,
    units,
    devices: devices.map((dev) => {
      const mappings: GuestMapping[] = [];
      for (let slot = 0; slot < dev.model.slots; slot++) {
        const pages = dev.model.pagesOf(slot);
        if (pages > 0) mappings.push({ iova: dev.model.iovaOf(slot), pages, gpa: dev.model.gpaOf(slot) });
      }
      return { unit: dev.unit, sid: dev.sid, ats: dev.ats, domain: dev.guest.domainLabel(dev.sid), mappings };
    }),
  };
}
