/**
 * Guest RAM of an emulated vIOMMU made visible to iommufd: the VMM maps it into its own address
 * space and then at IOVA (= GPA) 0 of an IOAS, so that a nest parent on that IOAS is the VM's
 * guest-physical space for assigned devices (their nested walks read the guest's tables through
 * it). Shared by the VT-d and SMMUv3 units.
 */
import type { GuestRam, HostAddressSpace } from '../memory/index.js';
import { IommufdError } from '../util/errors.js';

/** The iommufd call {@link mapGuestRam} needs. */
export interface GuestRamMapHost {
  ioasMap(
    ioasId: number,
    a: { userVa: bigint; length: bigint; iova: bigint; flags: { fixedIova: true; readable: true; writeable: true } },
  ): bigint;
}

/**
 * Maps `ram` into `mm` and at IOVA 0 of `ioasId`; returns the VA (for the munmap at close).
 * EOPNOTSUPP without a host, EEXIST when `mappedVa` says it is mapped already; on an IOAS error
 * the VMM mapping is undone and the error rethrown.
 */
export function mapGuestRam(
  host: GuestRamMapHost | undefined,
  mm: HostAddressSpace | undefined,
  ram: GuestRam,
  ioasId: number,
  mappedVa: bigint | undefined,
): bigint {
  if (host === undefined || mm === undefined) throw new IommufdError('EOPNOTSUPP', 'this unit has no iommufd host');
  if (mappedVa !== undefined) throw new IommufdError('EEXIST', 'guest RAM is already mapped');
  const va = mm.mapFrames(ram.basePa / 4096, ram.bytes / 4096);
  try {
    host.ioasMap(ioasId, {
      userVa: va,
      length: BigInt(ram.bytes),
      iova: 0n,
      flags: { fixedIova: true, readable: true, writeable: true },
    });
  } catch (e) {
    mm.munmap(va, BigInt(ram.bytes));
    throw e;
  }
  return va;
}
