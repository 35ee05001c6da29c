/** Page-table formats: builders and walkers over physical memory. */
export {
  Access,
  Prot,
  TranslateFault,
  FaultReason,
  FAULT_REASON_NAMES,
  WalkFault,
  type TranslateFaultCode,
  type DomainGeometry,
} from './types.js';
export {
  MockPageTable,
  mockWalk,
  MOCK_PAGE_SIZE,
  MOCK_PAGE_SHIFT,
  MOCK_BLOCK_SIZE,
  MOCK_BLOCK_SHIFT,
  MOCK_APERTURE_START,
  MOCK_APERTURE_LAST,
  MOCK_DESC,
  MOCK_GEOMETRY,
  type PaSource,
} from './mock.js';
export { RadixPageTable, levelSize, ENCODED, addrWords, type RadixCodec, type ClearedRange } from './radix.js';
export { CFG, packWalkConfig, cfgStartLevel, cfgInputSize, cfgOutputSize } from './walk-config.js';
export { ARM_LO, ARM_HI, SMMU_EVT, PS_BITS, ATTRIDX_WB, S2_MEMATTR_WB, SH_INNER } from './arm/desc.js';
export { armS1Config, armS2Config, linuxS2Sl0, type ArmWalkConfig } from './arm/config.js';
export { armS1Codec, armS2Codec, armAddr } from './arm/codec.js';
export { armS1Walk, armS2Walk } from './arm/walk.js';
export { armNestedWalk } from './arm/walk-nested.js';
export { X86_LO, X86_HI, SL_LO, SL_HI, VTD_FR, INTERRUPT_RANGE, vtdAwWidth } from './x86/desc.js';
export { x86FirstStageCodec, vtdSecondStageCodec, x86StartLevel } from './x86/codec.js';
export { x86FirstStageWalk, x86NestedWalk, x86NestedWalkLeaf, vtdSecondStageWalk } from './x86/walk.js';
export { entryCountsFor } from './entry-counts.js';
