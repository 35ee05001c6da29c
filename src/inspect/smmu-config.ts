/*
 * The configuration fetch of an emulated SMMUv3, rebuilt from what the unit exposes (its resolved
 * register options and the stream table it latched) over a reader and a stage-2 translator of our
 * choosing. The resolver only reads, so an inspection runs the unit's own checks (config-formats.md
 * §5.1) in the unit's own order. The capabilities mirror SmmuIommu's constructor. And how a
 * resolved configuration is summed up in a report.
 */
import { cfgInputSize, cfgOutputSize, cfgStartLevel } from '../pgtable/walk-config.js';
import { STRTAB_FMT } from '../vendor/smmuv3/regs-defs.js';
import { smmuResolverCaps } from '../vendor/smmuv3/regs-caps.js';
import type { SmmuRegisters } from '../vendor/smmuv3/regs.js';
import { SMMU_CFG_FLAG, type SmmuCaps, type SmmuConfig } from '../vendor/smmuv3/resolve-config.js';
import type { Stage2Translator } from '../vendor/smmuv3/resolve-stage2.js';
import { SmmuResolver } from '../vendor/smmuv3/resolve.js';
import { STE_CONFIG } from '../vendor/smmuv3/structures.js';
import type { QwordReader } from '../vendor/vtd/resolve-reader.js';
import type { Fields } from './types.js';

/** What an inspection needs of an SMMUv3: its registers (an SmmuIommu has them). */
export interface SmmuUnitView {
  readonly regs: SmmuRegisters;
}

/** The resolver capabilities of `unit`, as SmmuIommu builds them from its options (4 KiB granule only). */
export function smmuCaps(unit: SmmuUnitView): SmmuCaps {
  const o = unit.regs.options;
  return smmuResolverCaps(o);
}

/**
 * A resolver of `unit`'s configuration reading through `reader`, at the stream table the unit
 * latched; `stage2` translates a nested CD table's IPAs (the unit has one when it has both stages).
 */
export function smmuResolver(unit: SmmuUnitView, reader: QwordReader, stage2: Stage2Translator): SmmuResolver {
  const caps = smmuCaps(unit);
  const r = new SmmuResolver(reader, caps, caps.s1p && caps.s2p ? stage2 : null);
  const t = unit.regs.streamTable;
  r.strtabBase = t.address;
  r.fmt = t.format === '2-level' ? STRTAB_FMT.TwoLevel : STRTAB_FMT.Linear;
  r.log2size = t.log2Size;
  r.split = t.split;
  return r;
}

/** STE.Config values by name (the stages in effect). */
export const STE_CONFIG_NAMES: Record<number, string> = {
  [STE_CONFIG.Abort]: 'abort',
  [STE_CONFIG.Bypass]: 'bypass',
  [STE_CONFIG.S1]: 'stage1',
  [STE_CONFIG.S2]: 'stage2',
  [STE_CONFIG.Nested]: 'nested',
};

/** A packed walk configuration, decoded for a report. */
export function walkConfigFields(prefix: string, cfg: number): Fields {
  return {
    [`${prefix}StartLevel`]: cfgStartLevel(cfg),
    [`${prefix}InputBits`]: cfgInputSize(cfg),
    [`${prefix}OutputBits`]: cfgOutputSize(cfg),
  };
}

/** The names of the set SMMU_CFG_FLAG bits. */
export function smmuFlagNames(flags: number): string {
  return Object.entries(SMMU_CFG_FLAG)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name)
    .join(' ');
}

/** The configuration summary of a resolved SMMUv3 configuration. */
export function smmuContext(out: SmmuConfig): Fields {
  const c: Fields = { config: STE_CONFIG_NAMES[out.config] ?? String(out.config) };
  if (out.vmid >= 0) c['vmid'] = out.vmid;
  if (out.cdIndex >= 0) c['cdIndex'] = out.cdIndex;
  if (out.asid >= 0) c['asid'] = out.asid;
  if (out.s2Cfg !== 0) Object.assign(c, { s2Root: out.s2Root }, walkConfigFields('s2', out.s2Cfg));
  if (out.ttb0Cfg !== 0) Object.assign(c, { ttb0: out.ttb0 }, walkConfigFields('ttb0', out.ttb0Cfg));
  c['flags'] = smmuFlagNames(out.flags);
  return c;
}
