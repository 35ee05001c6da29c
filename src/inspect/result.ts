/*
 * Building the parts every trace shares: the request as reported, decoded structures as fields,
 * and the result from a walk's fault record.
 */
import { Access, type WalkFault } from '../pgtable/types.js';
import { faultReasonName, translateFaultName } from './names.js';
import type { Fields, InspectAccess, InspectFault, InspectRequest, WalkStage, WalkStep } from './types.js';

/** The Access bits spelled out. */
export function accessBits(access: number): InspectAccess {
  return {
    read: (access & Access.Read) !== 0,
    write: (access & Access.Write) !== 0,
    exec: (access & Access.Exec) !== 0,
    priv: (access & Access.Priv) !== 0,
  };
}

/** The request part of a trace. */
export function requestOf(
  ids: { sid?: number; devId?: number; pasid?: number | undefined },
  iova: number,
  access: number,
): InspectRequest {
  return {
    ...(ids.sid === undefined ? {} : { sid: ids.sid }),
    ...(ids.devId === undefined ? {} : { devId: ids.devId }),
    ...(ids.pasid === undefined || ids.pasid < 0 ? {} : { pasid: ids.pasid }),
    iova,
    access,
    accessBits: accessBits(access),
  };
}

/** The number, boolean and string fields of a decoded structure (a RootEntry, an Ste …). */
export function fieldsOf(o: object): Fields {
  const f: Fields = {};
  for (const [k, v] of Object.entries(o)) {
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') f[k] = v;
  }
  return f;
}

/** Marks the last step as the one whose check failed. */
export function markLastFault(steps: readonly WalkStep[]): void {
  if (steps.length > 0) steps[steps.length - 1]!.outcome = 'fault';
}

/** A fault from a walk's fault record; `vendorName` names its vendor word. */
export function walkFault(
  code: number,
  f: WalkFault,
  stage: WalkStage,
  vendorName: (code: number) => string,
  extra: Partial<InspectFault> = {},
): InspectFault {
  const vendorCode = f.words[4]!;
  return {
    code,
    name: translateFaultName(code),
    reason: faultReasonName(f.words[2]!),
    level: f.words[1]!,
    vendorCode,
    vendorName: vendorName(vendorCode),
    stage,
    ...extra,
  };
}

/** A fault not found by a walk (configuration, translation disabled, an output outside guest RAM). */
export function plainFault(
  code: number,
  reason: string,
  vendorCode: number,
  stage: WalkStage,
  vendorName: (code: number) => string,
  extra: Partial<InspectFault> = {},
): InspectFault {
  return {
    code,
    name: translateFaultName(code),
    reason,
    level: 0,
    vendorCode,
    vendorName: vendorName(vendorCode),
    stage,
    ...extra,
  };
}
