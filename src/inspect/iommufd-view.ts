/*
 * An iommufd's data plane as an inspection sees it: read-only views of the shared buffers that
 * `Iommufd.dataPlane()` hands to worker threads (physical memory, the context tables, the IOTLB
 * and ATC), and the lookups the Translator makes on them (a device's domain descriptor, an
 * SMMUv3 nested descriptor's host STE). Attaching views writes nothing to the buffers.
 */
import { Iotlb } from '../cache/iotlb.js';
import type { Iommufd } from '../iommufd.js';
import { PhysMemory } from '../memory/phys.js';
import { PS_BITS } from '../pgtable/arm/desc.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel } from '../pgtable/walk-config.js';
import { ARM_NESTED, ContextTables, DomainFormat, HOST_SMMU_CAPS, NO_PASID } from '../translate/index.js';
import type { Stage2Translator } from '../vendor/smmuv3/resolve-stage2.js';
import { SmmuResolver } from '../vendor/smmuv3/resolve.js';
import { S2TG, Ste } from '../vendor/smmuv3/structures.js';
import type { QwordReader } from '../vendor/vtd/resolve-reader.js';

/** Read-only views of an fd's data plane. */
export interface DataPlaneView {
  /** Physical memory. */
  readonly phys: PhysMemory;
  /** Domain descriptors and device contexts. */
  readonly tables: ContextTables;
  /** The IOTLB, if the fd has one. */
  readonly iotlb: Iotlb | undefined;
  /** The devices' ATC table, if the fd has one. */
  readonly atc: Iotlb | undefined;
}

/** Views of `fd`'s data plane (through `Iommufd.dataPlane()`, the handles a worker gets). */
export function dataPlaneView(fd: Iommufd): DataPlaneView {
  const h = fd.dataPlane();
  const phys = new PhysMemory(h.memory.phys);
  return {
    phys,
    tables: new ContextTables(phys, undefined, h.tables),
    iotlb: h.iotlb === undefined ? undefined : new Iotlb(h.iotlb.entries, h.iotlb.shards, h.iotlb.handles),
    atc: h.atc === undefined ? undefined : new Iotlb(h.atc.entries, h.atc.shards, h.atc.handles, true),
  };
}

/** DomainFormat values by name. */
export const DOMAIN_FORMAT_NAMES: Record<number, string> = {
  [DomainFormat.None]: 'none',
  [DomainFormat.Mock]: 'mock',
  [DomainFormat.ArmS1]: 'arm-stage1',
  [DomainFormat.ArmS2]: 'arm-stage2',
  [DomainFormat.VtdSecondStage]: 'vtd-second-stage',
  [DomainFormat.X86FirstStage]: 'x86-first-stage',
  [DomainFormat.VtdNested]: 'vtd-nested',
  [DomainFormat.ArmNested]: 'arm-nested',
};

/**
 * The descriptor that translates a request of device slot `slot` with `pasid` (NO_PASID: the
 * RID's), as the Translator picks it: the PASID's domain, or for an SMMUv3 vSTE on the RID the
 * RID's (the PASID is its SubstreamID). 0 when nothing is attached.
 */
export function requestDomain(tables: ContextTables, slot: number, pasid: number): number {
  const domain = pasid === NO_PASID ? tables.ridDomain(slot) : tables.pasidDomain(slot, pasid);
  if (domain === 0 && pasid !== NO_PASID) {
    const rid = tables.ridDomain(slot);
    if (rid !== 0 && tables.domainFormat(rid) === DomainFormat.ArmNested) return rid;
  }
  return domain;
}

// STE.S2PS encoding by output size in bits (-1: none), as arm-nested.ts.
const PS_CODE: readonly number[] = Array.from({ length: 64 }, (_, bits) =>
  (PS_BITS as readonly number[]).indexOf(bits),
);

/**
 * The host STE of ArmNested descriptor `domain`, as ArmNestedTranslator.configure builds it: the
 * vSTE's stage-1 fields over the parent's stage 2 (AArch64, 4 KiB granule, S2R).
 */
export function armNestedSte(tables: ContextTables, domain: number): Ste {
  const c = tables.domainConfig(domain);
  const parent = tables.domainParent(domain);
  const pcfg = tables.domainConfig(parent);
  const f = ARM_NESTED;
  return Object.assign(new Ste(), {
    s2Aa64: true,
    s2Tg: S2TG.K4,
    s2R: true,
    valid: (c & f.V) !== 0,
    config: (c >>> f.CONFIG_SHIFT) & 7,
    s1Fmt: (c >>> f.S1FMT_SHIFT) & 3,
    s1CdMax: (c >>> f.S1CDMAX_SHIFT) & 31,
    s1Dss: (c >>> f.S1DSS_SHIFT) & 3,
    s1StallD: (c & f.S1STALLD) !== 0,
    eats: (c & f.ATS) !== 0 ? 1 : 0,
    s1ContextPtr: tables.domainRootFull(domain),
    s2Ttb: tables.domainRoot(parent),
    s2T0sz: 64 - cfgInputSize(pcfg),
    s2Sl0: 2 - cfgStartLevel(pcfg),
    s2Ps: PS_CODE[cfgOutputSize(pcfg)]!,
    s2Affd: (pcfg & CFG.AFFD) !== 0,
  });
}

/** The resolver the physical SMMUv3 under an fd's vIOMMUs fetches nested configurations with. */
export function hostSmmuResolver(reader: QwordReader, stage2: Stage2Translator): SmmuResolver {
  return new SmmuResolver(reader, HOST_SMMU_CAPS, stage2);
}
