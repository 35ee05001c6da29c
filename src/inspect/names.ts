/*
 * Names for the codes an inspection reports: TranslateFault codes, FaultReason values, VT-d fault
 * reasons (walk and configuration) and SMMUv3 event types, from the tables that define them, so a
 * code and its name can never drift apart.
 */
import { SMMU_EVT } from '../pgtable/arm/desc.js';
import { FAULT_REASON_NAMES, TranslateFault } from '../pgtable/types.js';
import { VTD_FR } from '../pgtable/x86/desc.js';
import { SMMU_CFG_EVT } from '../vendor/smmuv3/resolve-events.js';
import { VTD_CFG_FR } from '../vendor/vtd/resolve-faults.js';

function reverse(table: Record<string, number>): Map<number, string> {
  const m = new Map<number, string>();
  for (const [name, code] of Object.entries(table)) if (!m.has(code)) m.set(code, name);
  return m;
}

// 'NotMapped' → 'not-mapped', for every code TranslateFault defines.
const TRANSLATE_FAULT_NAMES = new Map<number, string>(
  Object.entries(TranslateFault).map(([name, code]) => [code, name.replace(/(?<=.)([A-Z])/g, '-$1').toLowerCase()]),
);

// VT-d: the configuration codes first (their names are the precise ones for 0x5D).
const VTD_NAMES = reverse({ ...VTD_CFG_FR, ...VTD_FR });
const SMMU_NAMES = reverse({ ...SMMU_CFG_EVT, ...SMMU_EVT });

/** The name of a negative TranslateFault code ('not-mapped' …), or 'unknown'. */
export function translateFaultName(code: number): string {
  return TRANSLATE_FAULT_NAMES.get(code) ?? 'unknown';
}

/** The name of a FaultReason value, as `Iommufd.lastFault().reason` spells it. */
export function faultReasonName(reason: number): string {
  return FAULT_REASON_NAMES[reason] ?? 'unknown';
}

/** The name of a VT-d fault reason code ('SM_READ', 'CONTEXT_ENTRY_P' …), '' for 0. */
export function vtdReasonName(code: number): string {
  if (code === 0) return '';
  return VTD_NAMES.get(code) ?? `0x${code.toString(16)}`;
}

/** The name of an SMMUv3 event type ('F_TRANSLATION', 'C_BAD_STE' …), '' for 0. */
export function smmuEventName(code: number): string {
  if (code === 0) return '';
  return SMMU_NAMES.get(code) ?? `0x${code.toString(16)}`;
}

/** `0x` and the hex digits of `n` (a non-negative integer below 2^53). */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** A 64-bit little-endian value from its two 32-bit words, as `0x` + 16 hex digits. */
export function hex64(lo: number, hi: number): string {
  return `0x${(hi >>> 0).toString(16).padStart(8, '0')}${(lo >>> 0).toString(16).padStart(8, '0')}`;
}
