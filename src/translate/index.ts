/** The DMA translation data plane: shared context tables and the translation hot path. */
export {
  ContextTables,
  DEV_ATS,
  DOMAIN_SHADOW,
  DOMAIN_IOPF,
  DomainFormat,
  MAX_DOMAINS,
  MAX_DEVICES,
  type ContextHandles,
} from './tables.js';
export { NestedShadowWalker, vtdNestedWalk } from './nested-walk.js';
export { Translator, NO_PASID } from './translator.js';
export {
  ArmNestedTranslator,
  ARM_NESTED,
  HOST_SMMU_CAPS,
  packArmNestedConfig,
  S2_ONLY_ASID,
  type ArmNestedFields,
} from './arm-nested.js';
export {
  attachTranslator,
  recordSlot,
  releaseRecordedSlots,
  type DataPlaneHandles,
  type TranslateWorkerData,
} from './attach.js';
export { runTranslateBatch, type TranslateBatch, type TranslateBatchResult } from './batch.js';
