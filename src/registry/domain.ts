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
import {
  dropShadowGpa,
  flushDescriptor,
  invalidateDescriptorRange,
  isShadowed,
  publishDescriptor,
  retireDescriptor,
} from './descriptors.js';
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

/** What a paging domain needs of its page table: every format's builder has this shape. */
interface BuiltTable {
  readonly rootPa: number;
  map(iova: number, length: number, pa: PaSource, prot: number, huge: boolean): void;
  unmap(iova: number, length: number): number;
  tableFrames(): number;
  free(): void;
}

/**
 * A paging domain: a page table in physical memory plus its descriptor, published in the shared
 * context tables with the format and packed walk configuration that walkers need.
 */
class TableDomain implements PagingDomain {
  readonly descriptor: number;
  readonly nested = new Set<number>();
  readonly #ctx: IommufdCtx;

  constructor(
    ctx: IommufdCtx,
    readonly geometry: DomainGeometry,
    readonly format: number,
    readonly table: BuiltTable,
    walkConfig: number,
  ) {
    this.#ctx = ctx;
    try {
      ctx.faults.step('publish domain descriptor');
      this.descriptor = publishDescriptor(ctx, format, table.rootPa, walkConfig);
    } catch (e) {
      table.free();
      throw e;
    }
  }

  map(iova: bigint, length: bigint, pa: PaSource, prot: number, huge: boolean): void {
    this.table.map(Number(iova), Number(length), pa, prot, huge);
  }

  /**
   * Unmaps, then invalidates the IOTLB for the range inline, under the owner words of the shards
   * concerned, before returning (DESIGN.md "The registry"): so no translation that starts after
   * the unmap can hit a removed entry, and a walk that raced it cannot fill one.
   */
  unmap(iova: bigint, length: bigint): bigint {
    const n = this.table.unmap(Number(iova), Number(length));
    // The IOTLB, then the ATCs of the ATS devices on this domain, as the kernel flushes device
    // TLBs itself.
    invalidateDescriptorRange(this.#ctx, this.descriptor, Number(iova), Number(length));
    // A nest parent's change reaches every nested domain over it. Hardware-nested entries
    // combine both stages and are not indexed by guest-physical page, so each domain is flushed
    // whole, as the Intel driver's parent_domain_flush flushes its nested domains' caches.
    // Software-nested ones are found through the shadow's reverse index.
    let shadowed: number[] | undefined;
    for (const d of this.nested) {
      if (isShadowed(this.#ctx, d)) (shadowed ??= []).push(d);
      else flushDescriptor(this.#ctx, d);
    }
    if (shadowed !== undefined) dropShadowGpa(this.#ctx, this.descriptor, shadowed, Number(iova), Number(length));
    return BigInt(n);
  }

  /** Frees the table and retires the descriptor; the IOTLB forgets the tag with one epoch store. */
  free(): void {
    retireDescriptor(this.#ctx, this.descriptor); // reused only after the grace period
    this.table.free();
  }
}

/** Input and output size of the smmuv3 and vtd paging domains: 48 bits (the foundation's geometry). */
const ADDRESS_BITS = 48;

/** A domain over a new {@link RadixPageTable} of `codec`. */
function radixDomain(
  ctx: IommufdCtx,
  kind: IommuKind,
  format: number,
  codec: RadixCodec,
  walkConfig: number,
): PagingDomain {
  const table = new RadixPageTable(ctx.memory.phys, ctx.memory.frames, codec);
  return new TableDomain(ctx, DRIVERS[kind].geometry, format, table, walkConfig);
}

/** Builds the domain of `kind`: smmuv3 stage 1 (stage 2 for a nest parent), vtd second stage, or mock. */
function newDomain(ctx: IommufdCtx, kind: IommuKind, nestParent: boolean): PagingDomain {
  switch (kind) {
    case 'mock':
      return new TableDomain(
        ctx,
        MOCK_GEOMETRY,
        DomainFormat.Mock,
        new MockPageTable(ctx.memory.phys, ctx.memory.frames),
        0,
      );
    case 'smmuv3': {
      if (nestParent) {
        // Linux's arm_64_lpae_alloc_pgtable_s2 for a 48-bit IPA: start level 0, one table.
        const cfg = armS2Config(64 - ADDRESS_BITS, linuxS2Sl0(ADDRESS_BITS), ADDRESS_BITS);
        return radixDomain(
          ctx,
          kind,
          DomainFormat.ArmS2,
          armS2Codec(cfg),
          packWalkConfig(cfg.startLevel, cfg.inputSize, cfg.outputSize),
        );
      }
      const cfg = armS1Config(64 - ADDRESS_BITS, ADDRESS_BITS);
      return radixDomain(
        ctx,
        kind,
        DomainFormat.ArmS1,
        armS1Codec(cfg),
        packWalkConfig(cfg.startLevel, cfg.inputSize, cfg.outputSize),
      );
    }
    case 'vtd': {
      const codec = vtdSecondStageCodec(ADDRESS_BITS);
      return radixDomain(
        ctx,
        kind,
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
