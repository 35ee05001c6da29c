/*
 * Which table a range dump walks: the configuration of a VT-d request (root, context, PASID
 * entry), of an SMMUv3 transaction (STE, CD), or an iommufd device's domain descriptor, fetched
 * read-only as the walk trace fetches it; then the table (or, nested, both stages composed).
 * Table roots follow the targets' own handling (the units and the VT-d nested descriptor keep 32
 * bits of a root: the trace files explain).
 */
import type { Iommufd } from '../iommufd.js';
import { armS2Walk } from '../pgtable/arm/walk.js';
import { Access, WalkFault } from '../pgtable/types.js';
import { CFG } from '../pgtable/walk-config.js';
import { vtdSecondStageWalk } from '../pgtable/x86/walk.js';
import { DomainFormat, NO_PASID } from '../translate/index.js';
import { CR0 } from '../vendor/smmuv3/regs-defs.js';
import { SMMU_ABORT, SMMU_BYPASS, SMMU_RESOLVED, SmmuConfig } from '../vendor/smmuv3/resolve-config.js';
import { ArmStage2Translator } from '../vendor/smmuv3/resolve-stage2.js';
import { STE_CONFIG } from '../vendor/smmuv3/structures.js';
import { RequestKind, VTD_ABORTED, VTD_RESOLVED, VtdConfig } from '../vendor/vtd/resolve.js';
import { PhysQwordReader } from '../vendor/vtd/resolve-reader.js';
import { PGTT } from '../vendor/vtd/structures-pasid.js';
import { armNestedSte, dataPlaneView, DOMAIN_FORMAT_NAMES, hostSmmuResolver, requestDomain } from './iommufd-view.js';
import { hostSpace, unitSpace, type TraceSpace } from './memory.js';
import { hex, smmuEventName, vtdReasonName } from './names.js';
import { composeLeaves, rangeDump, tableLeaves, type Leaf, type TableLeaves } from './ranges.js';
import { smmuResolver } from './smmu-config.js';
import type { SmmuInspectRequest, SmmuInspectUnit } from './smmu-trace.js';
import type { PteFormat, RangeDump } from './types.js';
import { vtdResolver, vtdWalkConfigs } from './vtd-config.js';
import type { VtdInspectRequest, VtdInspectUnit } from './vtd-trace.js';

const RW = { read: true, write: true, exec: true };

/** A dump with no ranges, saying why. */
function empty(format: string, outputSpace: RangeDump['outputSpace'], why: string): RangeDump {
  return rangeDump(format, outputSpace, 0, [], { tablesRead: 0, invalid: 0, notes: [why] });
}

/** Output = input over [0, bytes): translation disabled, pass-through or bypass. */
function identity(format: string, bytes: number, why: string): RangeDump {
  const leaves: Leaf[] = [{ iova: 0, size: bytes, output: 0, perms: RW }];
  const d = rangeDump(format, 'gpa', 0, leaves, { tablesRead: 0, invalid: 0, notes: [why] });
  d.ranges[0]!.pageSize = 4096;
  return d;
}

/** A table's leaves, or a nested domain's: its stage-1 table located and composed through stage 2. */
function nestedLeaves(
  space: TraceSpace,
  s1: { format: PteFormat; root: number; cfg: number },
  s2: { format: PteFormat; root: number; cfg: number },
  locate: (ipa: number) => number,
): TableLeaves {
  const stage2 = tableLeaves(space, s2.format, s2.root, s2.cfg);
  const rootPa = locate(s1.root);
  if (rootPa < 0) {
    return { ...stage2, leaves: [], notes: [`stage 2 does not let the walk read the stage-1 root ${hex(s1.root)}`] };
  }
  const stage1 = tableLeaves(space, s1.format, rootPa, s1.cfg, locate);
  return {
    leaves: composeLeaves(stage1.leaves, stage2.leaves),
    tablesRead: stage1.tablesRead + stage2.tablesRead,
    invalid: stage1.invalid + stage2.invalid,
    notes: [...stage1.notes, ...stage2.notes],
  };
}

/** Locates VT-d nested stage-1 tables as x86NestedWalk fetches them: a read, and a write when A/D are set. */
function vtdLocator(i32: Int32Array, ssRoot: number, ssCfg: number, fsCfg: number): (ipa: number) => number {
  const f = new WalkFault();
  const fetch = (fsCfg & CFG.SET_AD) !== 0 ? Access.Read | Access.Write : Access.Read;
  return (ipa) => vtdSecondStageWalk(i32, ssRoot, ssCfg, ipa, fetch, f);
}

/** Locates SMMUv3 nested stage-1 tables as armNestedWalk fetches them: a stage-2 read. */
function armLocator(i32: Int32Array, s2Root: number, s2Cfg: number): (ipa: number) => number {
  const f = new WalkFault();
  return (ipa) => armS2Walk(i32, s2Root, s2Cfg, ipa, Access.Read, f);
}

/**
 * The mapped ranges of the domain that translates requests of `req` through a VT-d unit: its
 * second-stage, first-stage or nested (both stages composed) table; outputs are guest-physical.
 */
export function vtdRanges(unit: VtdInspectUnit, req: VtdInspectRequest): RangeDump {
  if (!unit.regs.translationEnabled)
    return identity('disabled', unit.ram.bytes, 'translation is disabled: DMA addresses are guest-physical');
  const out = new VtdConfig();
  const reader = new PhysQwordReader(unit.guest.i32);
  const r = vtdResolver(unit, reader).resolve(req.sid, req.pasid ?? -1, Access.Read, RequestKind.Untranslated, out);
  if (r === VTD_ABORTED) return empty('abort-dma', 'gpa', 'TTM = abort DMA');
  if (r !== VTD_RESOLVED)
    return empty('', 'gpa', `the configuration faults: ${vtdReasonName(out.fault)} (${hex(out.fault)})`);
  const space = unitSpace(unit.guest, unit.ram);
  const cfgs = vtdWalkConfigs(unit, out);
  const ss = { format: 'vtd-second-stage' as const, root: out.ssptr % 2 ** 32, cfg: cfgs.ss };
  const fs = { format: 'x86-first-stage' as const, root: out.fsptr % 2 ** 32, cfg: cfgs.fs };
  switch (out.type) {
    case PGTT.SecondStage:
    case PGTT.FirstStage: {
      const one = out.type === PGTT.SecondStage ? ss : fs;
      const t = tableLeaves(space, one.format, one.root, one.cfg);
      return rangeDump(one.format, 'gpa', one.root, t.leaves, t);
    }
    case PGTT.Nested: {
      const t = nestedLeaves(space, fs, ss, vtdLocator(unit.guest.i32, ss.root, ss.cfg, fs.cfg));
      return rangeDump('nested (x86-first-stage over vtd-second-stage)', 'gpa', fs.root, t.leaves, t);
    }
    default:
      return identity('pass-through', unit.ram.bytes, 'pass-through: output = input');
  }
}

/**
 * The mapped ranges of the configuration that translates transactions of `req` through an
 * SMMUv3: its stage-1 (TTB0), stage-2 or nested (both composed) table; outputs are guest-physical.
 */
export function smmuRanges(unit: SmmuInspectUnit, req: SmmuInspectRequest): RangeDump {
  if ((unit.regs.cr0 & CR0.SMMUEN) === 0) {
    if (unit.regs.bypassAbort) return empty('abort', 'gpa', 'SMMUEN = 0 and GBPA.ABORT: every transaction aborts');
    return identity('bypass', unit.ram.bytes, 'SMMUEN = 0: GBPA bypass');
  }
  const i32 = unit.guest.i32;
  const out = new SmmuConfig();
  const r = smmuResolver(unit, new PhysQwordReader(i32), new ArmStage2Translator(i32)).resolve(
    req.sid,
    req.ssid ?? -1,
    out,
  );
  if (r === SMMU_ABORT) return empty('abort', 'gpa', 'STE.Config = abort');
  if (r === SMMU_BYPASS) return identity('bypass', unit.ram.bytes, 'both stages bypassed');
  if (r !== SMMU_RESOLVED)
    return empty('', 'gpa', `the configuration faults: ${smmuEventName(out.event)} (${hex(out.event)})`);
  return smmuConfigRanges(unitSpace(unit.guest, unit.ram), out, 'gpa', (a) => a % 2 ** 32);
}

/** The ranges of a resolved SMMUv3 configuration; `root` maps a table root to the one the target walks. */
function smmuConfigRanges(
  space: TraceSpace,
  out: SmmuConfig,
  outputSpace: RangeDump['outputSpace'],
  root: (addr: number) => number,
): RangeDump {
  const s2 = { format: 'arm-stage2' as const, root: root(out.s2Root), cfg: out.s2Cfg };
  const s1 = { format: 'arm-stage1' as const, root: root(out.ttb0), cfg: out.ttb0Cfg };
  if (out.kind === STE_CONFIG.S2) {
    const t = tableLeaves(space, s2.format, s2.root, s2.cfg);
    return rangeDump(s2.format, outputSpace, s2.root, t.leaves, t);
  }
  if (out.ttb0Cfg === 0) return empty(s1.format, outputSpace, 'TTB0 is disabled (CD.EPD0)');
  if (out.kind === STE_CONFIG.S1) {
    const t = tableLeaves(space, s1.format, s1.root, s1.cfg);
    return rangeDump(s1.format, outputSpace, s1.root, t.leaves, t);
  }
  const t = nestedLeaves(space, s1, s2, armLocator(space.i32, s2.root, s2.cfg));
  return rangeDump('nested (arm-stage1 over arm-stage2)', outputSpace, s1.root, t.leaves, t);
}

/** What an iommufd range dump is of: a device's domain (RID, or a PASID / SubstreamID), or a descriptor. */
export type IommufdRangeTarget = { devId: number; pasid?: number } | { descriptor: number; pasid?: number };

/**
 * The mapped ranges of an iommufd domain: the descriptor that translates a device's requests (or
 * the one given), its table, or a nested domain's stages composed; outputs are host-physical.
 * ENOENT for an unknown device.
 */
export function iommufdRanges(fd: Iommufd, target: IommufdRangeTarget): RangeDump {
  const v = dataPlaneView(fd);
  const t = v.tables;
  const pasid = target.pasid ?? NO_PASID;
  const domain = 'descriptor' in target ? target.descriptor : requestDomain(t, fd.deviceSlot(target.devId), pasid);
  const format = domain === 0 ? DomainFormat.None : t.domainFormat(domain);
  const name = DOMAIN_FORMAT_NAMES[format] ?? String(format);
  if (domain === 0) return empty('', 'hpa', 'nothing is attached');
  const space = hostSpace(v.phys);
  const root = format === DomainFormat.VtdNested ? t.domainRootFull(domain) : t.domainRoot(domain);
  const cfg = t.domainConfig(domain);
  const table = (f: PteFormat): RangeDump => {
    const l = tableLeaves(space, f, root, cfg);
    return rangeDump(name, 'hpa', root, l.leaves, l);
  };
  switch (format) {
    case DomainFormat.Mock:
      return table('mock');
    case DomainFormat.ArmS1:
      return table('arm-stage1');
    case DomainFormat.ArmS2:
      return table('arm-stage2');
    case DomainFormat.VtdSecondStage:
      return table('vtd-second-stage');
    case DomainFormat.X86FirstStage:
      return table('x86-first-stage');
    case DomainFormat.VtdNested: {
      const parent = t.domainParent(domain);
      const ss = { format: 'vtd-second-stage' as const, root: t.domainRoot(parent), cfg: t.domainConfig(parent) };
      const fs = { format: 'x86-first-stage' as const, root, cfg };
      const l = nestedLeaves(space, fs, ss, vtdLocator(space.i32, ss.root, ss.cfg, cfg));
      return rangeDump(`${name} (x86-first-stage over vtd-second-stage)`, 'hpa', root, l.leaves, l);
    }
    case DomainFormat.ArmNested: {
      const out = new SmmuConfig();
      const r = hostSmmuResolver(new PhysQwordReader(space.i32), new ArmStage2Translator(space.i32)).resolveSte(
        armNestedSte(t, domain),
        pasid,
        out,
      );
      if (r !== SMMU_RESOLVED)
        return empty(name, 'hpa', `the configuration faults: ${smmuEventName(out.event) || 'abort'}`);
      const d = smmuConfigRanges(space, out, 'hpa', (a) => a);
      d.format = `${name}: ${d.format}`;
      return d;
    }
    default:
      return empty(name, 'hpa', `descriptor ${domain} has no table`);
  }
}
