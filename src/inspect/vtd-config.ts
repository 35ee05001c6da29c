/*
 * The configuration fetch of an emulated VT-d unit, rebuilt from what the unit exposes (its
 * resolved register options and the latched root table), over a reader of our choosing: the
 * resolver only reads, so an inspection runs the unit's own checks in the unit's own order.
 *
 * The capabilities are VtdIommu's own (vtdResolverCaps), not CAP/ECAP as read through MMIO: the
 * unit hard-wires ADMS to 0 whatever CAP advertises, and an inspection must agree with what the
 * unit's translate does.
 */
import { CFG, packWalkConfig } from '../pgtable/walk-config.js';
import { CONFIG_FLAG, VtdResolver, vtdResolverCaps, type VtdCaps, type VtdConfig } from '../vendor/vtd/resolve.js';
import type { QwordReader } from '../vendor/vtd/resolve-reader.js';
import type { VtdRegisters } from '../vendor/vtd/regs.js';

/** What an inspection needs of a VT-d unit: its registers (a VtdIommu has them). */
export interface VtdUnitView {
  readonly regs: VtdRegisters;
}

/** The resolver capabilities of `unit`, as VtdIommu builds them from its options. */
export function vtdCaps(unit: VtdUnitView): VtdCaps {
  return vtdResolverCaps(unit.regs.options);
}

/** A resolver of `unit`'s configuration reading through `reader`, at the root table the unit latched. */
export function vtdResolver(unit: VtdUnitView, reader: QwordReader): VtdResolver {
  const r = new VtdResolver(reader, vtdCaps(unit));
  const root = unit.regs.rootTable;
  r.rootTable = Number(root.address);
  r.ttm = root.ttm;
  return r;
}

/** The packed walk configurations the unit derives from a resolved configuration (VtdIommu #fetchConfig). */
export function vtdWalkConfigs(unit: VtdUnitView, out: VtdConfig): { ss: number; fs: number } {
  const haw = unit.regs.options.addressWidth;
  const sm = out.scalable ? CFG.SCALABLE : 0;
  const fsFlags = sm | CFG.SET_AD | ((out.flags & CONFIG_FLAG.WPE) === 0 ? CFG.WP_OFF : 0);
  return {
    ss: out.ssLevels > 0 ? packWalkConfig(4 - out.ssLevels, out.ssWidth, haw, sm) : 0,
    fs: out.fsLevels > 0 ? packWalkConfig(4 - out.fsLevels, out.fsWidth, haw, fsFlags) : 0,
  };
}
