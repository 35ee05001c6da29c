import { MOCK_GEOMETRY, MockPageTable, type DomainGeometry, type PaSource } from '../pgtable/index.js';
import { DomainFormat } from '../translate/index.js';
import { IommufdError } from '../util/errors.js';
import type { IommufdCtx } from './context.js';
import type { IommuKind, PagingDomain } from './objects.js';

/** What each IOMMU kind offers: geometry, reserved regions, hw info. */
export interface IommuDriver {
  /** GET_HW_INFO type name. */
  hwInfoType: string;
  /** Page sizes and aperture of its paging domains. */
  geometry: DomainGeometry;
  /** Reserved regions every device behind it has (MSI windows). */
  reservedRegions: readonly { start: bigint; last: bigint }[];
  /** Whether it can allocate paging domains yet. */
  paging: boolean;
  /** Whether its domains can be attached to PASIDs. */
  pasid: boolean;
}

const GEOMETRY_48BIT: DomainGeometry = {
  pageSizes: [4096n, 2n ** 21n, 2n ** 30n],
  apertureStart: 0n,
  apertureLast: 2n ** 48n - 1n,
};

/** The drivers, by kind. The smmuv3 and vtd page-table formats arrive with the next issue. */
export const DRIVERS: Record<IommuKind, IommuDriver> = {
  mock: { hwInfoType: 'selftest', geometry: MOCK_GEOMETRY, reservedRegions: [], paging: true, pasid: true },
  // arm-smmu-v3 reports MSI_IOVA_BASE 0x8000000, length 1 MiB, as IOMMU_RESV_SW_MSI.
  smmuv3: {
    hwInfoType: 'arm-smmuv3',
    geometry: GEOMETRY_48BIT,
    reservedRegions: [{ start: 0x800_0000n, last: 0x80f_ffffn }],
    paging: false,
    pasid: true,
  },
  // intel-iommu reports the IOAPIC / MSI range 0xfee00000-0xfeefffff as IOMMU_RESV_MSI.
  vtd: {
    hwInfoType: 'intel-vtd',
    geometry: GEOMETRY_48BIT,
    reservedRegions: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn }],
    paging: false,
    pasid: true,
  },
};

/** A mock paging domain: a {@link MockPageTable} plus its published descriptor. */
class MockDomain implements PagingDomain {
  readonly geometry = MOCK_GEOMETRY;
  readonly descriptor: number;
  readonly table: MockPageTable;
  readonly #ctx: IommufdCtx;

  constructor(ctx: IommufdCtx) {
    this.#ctx = ctx;
    this.table = new MockPageTable(ctx.memory.phys, ctx.memory.frames);
    try {
      ctx.faults.step('publish domain descriptor');
      const d = ctx.tables.publishDomain(DomainFormat.Mock, this.table.rootPa);
      if (d < 0) throw new IommufdError('ENOMEM', 'domain descriptor table is full');
      this.descriptor = d;
    } catch (e) {
      this.table.free();
      throw e;
    }
  }

  map(iova: bigint, length: bigint, pa: PaSource, prot: number, huge: boolean): void {
    this.table.map(Number(iova), Number(length), pa, prot, huge);
  }

  unmap(iova: bigint, length: bigint): bigint {
    return BigInt(this.table.unmap(Number(iova), Number(length)));
  }

  free(): void {
    this.table.free();
    this.#ctx.memory.retireOther(this.descriptor);
  }
}

/** Allocates a paging domain for a device of `kind` (EOPNOTSUPP where the format is not there yet). */
export function allocPagingDomain(ctx: IommufdCtx, kind: IommuKind): PagingDomain {
  if (!DRIVERS[kind].paging) throw new IommufdError('EOPNOTSUPP', `${kind} paging domains are not implemented yet`);
  ctx.faults.step('domain allocation');
  try {
    return new MockDomain(ctx);
  } catch (e) {
    if (e instanceof IommufdError) throw e;
    throw new IommufdError('ENOMEM', 'domain allocation failed');
  }
}
