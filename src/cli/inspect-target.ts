/**
 * The inspect library's views of a bench run's unit, whichever its vendor: a walk, a device's
 * mapped ranges, the unit's queue and fault registers, each as its typed object and as text.
 */
import type { BenchUnit } from '../bench/index.js';
import {
  formatSmmuState,
  formatVtdState,
  inspectSmmu,
  inspectVtd,
  smmuRanges,
  smmuRegisterState,
  vtdRanges,
  vtdRegisterState,
  type RangeDump,
  type SmmuRegisterState,
  type VtdRegisterState,
  type WalkTrace,
} from '../inspect/index.js';

/** A request: the device's SID and, optionally, a PASID (VT-d) or SubstreamID (SMMUv3). */
export interface InspectTarget {
  sid: number;
  pasid?: number;
}

/** A unit's queue and fault registers, by vendor. */
export type QueueState = { vendor: 'vtd'; state: VtdRegisterState } | { vendor: 'smmu'; state: SmmuRegisterState };

/** The walk of `iova` for `access` (Access bits) by `t` through `u`, level by level (read-only). */
export function walkOf(u: BenchUnit, t: InspectTarget, iova: number, access: number): WalkTrace {
  if (u.vendor === 'vtd')
    return inspectVtd(u.unit, t.pasid === undefined ? { sid: t.sid } : { sid: t.sid, pasid: t.pasid }, iova, access);
  return inspectSmmu(u.unit, t.pasid === undefined ? { sid: t.sid } : { sid: t.sid, ssid: t.pasid }, iova, access);
}

/** The mapped ranges of the table that translates `t`'s requests through `u`. */
export function rangesOf(u: BenchUnit, t: InspectTarget): RangeDump {
  if (u.vendor === 'vtd')
    return vtdRanges(u.unit, t.pasid === undefined ? { sid: t.sid } : { sid: t.sid, pasid: t.pasid });
  return smmuRanges(u.unit, t.pasid === undefined ? { sid: t.sid } : { sid: t.sid, ssid: t.pasid });
}

/** The queue and fault registers of `u`, read through MMIO. */
export function queuesOf(u: BenchUnit): QueueState {
  return u.vendor === 'vtd'
    ? { vendor: 'vtd', state: vtdRegisterState(u.unit) }
    : { vendor: 'smmu', state: smmuRegisterState(u.unit) };
}

/** The register state as text. */
export function formatQueues(q: QueueState): string {
  return q.vendor === 'vtd' ? formatVtdState(q.state) : formatSmmuState(q.state);
}
