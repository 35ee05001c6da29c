import {
  armS1Codec,
  armS1Config,
  armS2Codec,
  armS2Config,
  linuxS2Sl0,
  MOCK_GEOMETRY,
  MockPageTable,
  packWalkConfig,
  RadixPageTable,
  vtdSecondStageCodec,
  type DomainGeometry,
  type PaSource,
  type RadixCodec,
} from '../pgtable/index.js';
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
  /** Whether it can allocate paging domains. */
  paging: boolean;
  /** Whether its domains can be attached to PASIDs. */
  pasid: boolean;
}

const GEOMETRY_48BIT: DomainGeometry = {
  pageSizes: [4096n, 2n ** 21n, 2n ** 30n],
  apertureStart: 0n,
  apertureLast: 2n ** 48n - 1n,
};

/** The drivers, by kind. */
export const DRIVERS: Record<IommuKind, IommuDriver> = {
  mock: { hwInfoType: 'selftest', geometry: MOCK_GEOMETRY, reservedRegions: [], paging: true, pasid: true },
  // arm-smmu-v3 reports MSI_IOVA_BASE 0x8000000, length 1 MiB, as IOMMU_RESV_SW_MSI.
  smmuv3: {
    hwInfoType: 'arm-smmuv3',
    geometry: GEOMETRY_48BIT,
    reservedRegions: [{ start: 0x800_0000n, last: 0x80f_ffffn }],
    paging: true,
    pasid: true,
  },
  // intel-iommu reports the IOAPIC / MSI range 0xfee00000-0xfeefffff as IOMMU_RESV_MSI.
  vtd: {
    hwInfoType: 'intel-vtd',
    geometry: GEOMETRY_48BIT,
    reservedRegions: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn }],
    paging: true,
    pasid: true,
  },
};

/** A mock paging domain: a {@link MockPageTable} plus its published descriptor. */
class MockDomain implements PagingDomain {
  readonly geometry = MOCK_GEOMETRY;
  readonly format = DomainFormat.Mock;
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

/** Input and output size of the smmuv3 and vtd paging domains: 48 bits (the foundation's geometry). */
const ADDRESS_BITS = 48;

/**
 * A paging domain in a real 4 KiB-granule format: Arm VMSAv8-64 stage 1 or 2, or the VT-d
 * second stage, built by {@link RadixPageTable} and published with its packed walk configuration.
 */
class RadixDomain implements PagingDomain {
  readonly geometry: DomainGeometry;
  readonly format: number;
  readonly descriptor: number;
  readonly table: RadixPageTable;
  readonly #ctx: IommufdCtx;

  constructor(ctx: IommufdCtx, geometry: DomainGeometry, format: number, codec: RadixCodec, walkConfig: number) {
    this.#ctx = ctx;
    this.geometry = geometry;
    this.format = format;
    this.table = new RadixPageTable(ctx.memory.phys, ctx.memory.frames, codec);
    try {
      ctx.faults.step('publish domain descriptor');
      const d = ctx.tables.publishDomain(format, this.table.rootPa, walkConfig);
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

/** Builds the domain of `kind`: smmuv3 stage 1 (stage 2 for a nest parent), vtd second stage, or mock. */
function newDomain(ctx: IommufdCtx, kind: IommuKind, nestParent: boolean): PagingDomain {
  const geometry = DRIVERS[kind].geometry;
  switch (kind) {
    case 'mock':
      return new MockDomain(ctx);
    case 'smmuv3': {
      if (nestParent) {
        // Linux's arm_64_lpae_alloc_pgtable_s2 for a 48-bit IPA: start level 0, one table.
        const cfg = armS2Config(64 - ADDRESS_BITS, linuxS2Sl0(ADDRESS_BITS), ADDRESS_BITS);
        return new RadixDomain(
          ctx,
          geometry,
          DomainFormat.ArmS2,
          armS2Codec(cfg),
          packWalkConfig(cfg.startLevel, cfg.inputSize, cfg.outputSize),
        );
      }
      const cfg = armS1Config(64 - ADDRESS_BITS, ADDRESS_BITS);
      return new RadixDomain(
        ctx,
        geometry,
        DomainFormat.ArmS1,
        armS1Codec(cfg),
        packWalkConfig(cfg.startLevel, cfg.inputSize, cfg.outputSize),
      );
    }
    case 'vtd': {
      const codec = vtdSecondStageCodec(ADDRESS_BITS);
      return new RadixDomain(
        ctx,
        geometry,
        DomainFormat.VtdSecondStage,
        codec,
        packWalkConfig(codec.startLevel, ADDRESS_BITS, ADDRESS_BITS),
      );
    }
  }
}

/** Allocates a paging domain for a device of `kind` (a stage-2 one for a smmuv3 nest parent). */
export function allocPagingDomain(ctx: IommufdCtx, kind: IommuKind, nestParent = false): PagingDomain {
  if (!DRIVERS[kind].paging) throw new IommufdError('EOPNOTSUPP', `${kind} paging domains are not implemented`);
  ctx.faults.step('domain allocation');
  return newDomain(ctx, kind, nestParent);
}
