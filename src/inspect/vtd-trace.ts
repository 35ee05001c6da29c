/*
 * The walk of one request through an emulated VT-d unit, level by level, read-only: the root and
 * context entries (legacy) or the scalable-mode root, context, PASID-directory and PASID entries,
 * read by the unit's own resolver over a recording reader; then the page walk the PGTT selects,
 * traced (walk-x86.ts), every nested first-stage table fetch with its second-stage walk. The
 * result is what VtdIommu.translate returns (address, or the TranslateFault with
 * `lastFaultReason` as the vendor code), as long as the unit's caches hold nothing stale: they
 * are not consulted, and nothing is filled or recorded.
 */
import type { GuestRam } from '../memory/guest-ram.js';
import { payloadRoot } from '../vendor/payload-root.js';
import type { PhysMemory } from '../memory/phys.js';
import { TranslateFault, WalkFault } from '../pgtable/types.js';
import { isQualifiedFault } from '../vendor/vtd/resolve-faults.js';
import { CONFIG_FLAG, RequestKind, VTD_ABORTED, VTD_RESOLVED, VtdConfig } from '../vendor/vtd/resolve.js';
import {
  decodeContextEntry,
  decodeRootEntry,
  decodeSmContextEntry,
  decodeSmRootEntry,
  ContextEntry,
  RootEntry,
  SmContextEntry,
  SmRootEntry,
  TTM,
} from '../vendor/vtd/structures.js';
import {
  decodePasidDirEntry,
  decodePasidEntry,
  PasidDirEntry,
  PasidEntry,
  PGTT,
} from '../vendor/vtd/structures-pasid.js';
import { locate, rawQwords, RecordingReader, unitSpace, type RecordedRead, type TraceSpace } from './memory.js';
import { hex, vtdReasonName } from './names.js';
import { fieldsOf, markLastFault, plainFault, requestOf, walkFault } from './result.js';
import type { Fields, InspectResult, StructureKind, WalkStage, WalkStep, WalkTrace } from './types.js';
import { vtdResolver, vtdWalkConfigs, type VtdUnitView } from './vtd-config.js';
import type { TraceSink } from './walk-step.js';
import { traceVtdSecondStage, traceX86FirstStage } from './walk-x86.js';

/** What a VT-d inspection needs of the unit: registers, guest RAM (a VtdIommu has them). */
export interface VtdInspectUnit extends VtdUnitView {
  readonly guest: PhysMemory;
  readonly ram: GuestRam;
}

/** A request to inspect: source id (bus << 8 | devfn) and, optionally, a PASID. */
export interface VtdInspectRequest {
  sid: number;
  pasid?: number;
}

const LEGACY: readonly StructureKind[] = ['root-entry', 'context-entry'];
const SCALABLE: readonly StructureKind[] = ['sm-root-entry', 'sm-context-entry', 'pasid-dir-entry', 'pasid-entry'];

const PGTT_NAMES: Record<number, string> = {
  [PGTT.FirstStage]: 'first-stage',
  [PGTT.SecondStage]: 'second-stage',
  [PGTT.Nested]: 'nested',
  [PGTT.PassThrough]: 'pass-through',
};

/** The decoded fields of a configuration structure read as `words`. */
function structureFields(kind: StructureKind, w: Int32Array): Fields {
  switch (kind) {
    case 'root-entry':
      return fieldsOf(decodeRootEntry(w, 0, new RootEntry()));
    case 'context-entry':
      return fieldsOf(decodeContextEntry(w, 0, new ContextEntry()));
    case 'sm-root-entry':
      return fieldsOf(decodeSmRootEntry(w, 0, new SmRootEntry()));
    case 'sm-context-entry':
      return fieldsOf(decodeSmContextEntry(w, 0, new SmContextEntry()));
    case 'pasid-dir-entry':
      return fieldsOf(decodePasidDirEntry(w, 0, new PasidDirEntry()));
    default:
      return fieldsOf(decodePasidEntry(w, 0, new PasidEntry()));
  }
}

/** The index of a configuration structure in its table, for the request (`pid`: the PASID that selects the entry). */
function structureIndex(kind: StructureKind, sid: number, pid: number): number {
  switch (kind) {
    case 'root-entry':
    case 'sm-root-entry':
      return sid >>> 8;
    case 'context-entry':
      return sid & 0xff;
    case 'sm-context-entry':
      return sid & 0x7f;
    case 'pasid-dir-entry':
      return pid >>> 6;
    default:
      return pid & 63;
  }
}

function configStep(space: TraceSpace, kind: StructureKind, read: RecordedRead, index: number): WalkStep {
  const words = read.words;
  return {
    structure: kind,
    stage: 'config',
    index,
    ...locate(space, read.addr),
    raw: words === undefined ? [] : rawQwords(words),
    fields: words === undefined ? {} : structureFields(kind, words),
    outcome: words === undefined ? 'fault' : 'read',
  };
}

/** The names of the set CONFIG_FLAG bits. */
function flagNames(flags: number): string {
  return Object.entries(CONFIG_FLAG)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name)
    .join(' ');
}

/**
 * Inspects the translation of `iova` for `access` (Access bits) by the request `req` through
 * `unit`: every structure and page-table entry read, and the result or fault as the unit's
 * translate reports it. Writes nothing (no A/D bits, no caches, no fault records).
 */
export function inspectVtd(unit: VtdInspectUnit, req: VtdInspectRequest, iova: number, access: number): WalkTrace {
  const space = unitSpace(unit.guest, unit.ram);
  const steps: WalkStep[] = [];
  const notes: string[] = [];
  const root = unit.regs.rootTable;
  const context: Fields = { rootTable: Number(root.address), mode: root.mode, ttm: root.ttm };
  const trace = (translation: string, result: InspectResult): WalkTrace => ({
    target: 'vtd',
    request: requestOf(req, iova, access),
    translation,
    context,
    steps,
    result,
    notes,
  });
  const fault = (code: number, vendor: number, stage: WalkStage, recorded: boolean, reason: string): InspectResult => ({
    ok: false,
    fault: plainFault(code, reason, vendor, stage, vtdReasonName, { recorded: recorded && vendor !== 0 }),
  });

  if (!unit.regs.translationEnabled) {
    notes.push('translation is disabled (GSTS.TES = 0): DMA addresses are guest-physical');
    const pa = unit.ram.gpaToPa(iova);
    if (pa < 0) return trace('disabled', fault(TranslateFault.WalkAbort, 0, 'config', false, 'walk-abort'));
    return trace('disabled', { ok: true, hpa: pa, gpa: iova, pageShift: 12, unitShift: 12 });
  }
  notes.push("the unit's caches (context/PASID cache, IOTLB, device-TLB) are not consulted");

  const pasid = req.pasid ?? -1;
  const kinds = root.ttm === TTM.Scalable ? SCALABLE : LEGACY;
  let pid = pasid;
  const reader = new RecordingReader(space.i32, (read) => {
    const kind = kinds[Math.min(steps.length, kinds.length - 1)]!;
    const step = configStep(space, kind, read, structureIndex(kind, req.sid, pid));
    // Without a PASID, RID_PASID selects the PASID entry.
    if (kind === 'sm-context-entry' && pid < 0 && read.words !== undefined) pid = Number(step.fields['ridPasid']);
    steps.push(step);
  });
  const out = new VtdConfig();
  const r = vtdResolver(unit, reader).resolve(req.sid, pasid, access, RequestKind.Untranslated, out);
  if (r === VTD_ABORTED) {
    notes.push('TTM = abort DMA: the request is blocked and nothing is recorded');
    return trace('abort-dma', fault(TranslateFault.NoDomain, 0, 'config', false, 'no-domain'));
  }
  if (r !== VTD_RESOLVED) {
    markLastFault(steps);
    return trace('', fault(TranslateFault.NoDomain, out.fault, 'config', out.record, 'no-domain'));
  }

  const translation = (out.scalable ? '' : 'legacy ') + (PGTT_NAMES[out.type] ?? String(out.type));
  Object.assign(context, {
    did: out.did,
    ...(out.scalable ? { pgtt: out.pgtt, pasid: out.pasid } : {}),
    fpd: out.fpd,
    flags: flagNames(out.flags),
  });
  if (out.ssLevels > 0) Object.assign(context, { aw: out.aw, ssWidth: out.ssWidth, ssptr: out.ssptr });
  if (out.fsLevels > 0) Object.assign(context, { flpm: out.flpm, fsWidth: out.fsWidth, fsptr: out.fsptr });
  // The unit keeps table roots as 32-bit payload words (vendor/payload-root.ts): a root at or
  // above 4 GiB names no guest RAM, and its walk aborts at the first read.
  for (const [name, ptr] of [
    ['SLPTPTR', out.ssptr],
    ['FLPTPTR', out.fsptr],
  ] as const) {
    if (ptr >= 2 ** 32) notes.push(`${name} ${hex(ptr)} is beyond guest RAM: the walk aborts at its first read`);
  }
  const cfgs = vtdWalkConfigs(unit, out);
  const ssRoot = payloadRoot(out.ssptr) >>> 0;
  const fsRoot = payloadRoot(out.fsptr) >>> 0;
  const sink: TraceSink = { space, steps };
  const f = new WalkFault();
  let gpa: number;
  let walkStage: WalkStage = 'stage1';
  switch (out.type) {
    case PGTT.SecondStage:
      walkStage = 'stage2';
      gpa = traceVtdSecondStage(sink, ssRoot, cfgs.ss, iova, access, f);
      break;
    case PGTT.FirstStage:
      gpa = traceX86FirstStage(sink, fsRoot, cfgs.fs, undefined, iova, access, f);
      break;
    case PGTT.Nested:
      gpa = traceX86FirstStage(sink, fsRoot, cfgs.fs, { root: ssRoot, cfg: cfgs.ss }, iova, access, f);
      break;
    case PGTT.PassThrough:
      gpa = iova;
      f.leafShift = f.unitShift = 12;
      break;
    default:
      return trace(translation, fault(TranslateFault.NoDomain, 0, 'config', false, 'no-domain'));
  }
  if (gpa < 0) {
    const stage = sink.faultStage ?? walkStage;
    const nestedS2 = out.type === PGTT.Nested && stage === 'stage2';
    const recorded = f.words[4] !== 0 && !(out.fpd && isQualifiedFault(f.words[4]!));
    const extra = { recorded, ...(nestedS2 ? { ipa: f.iova } : {}) };
    return trace(translation, { ok: false, fault: walkFault(gpa, f, stage, vtdReasonName, extra) });
  }
  const pa = unit.ram.gpaToPa(gpa);
  if (pa < 0) {
    notes.push(`the output ${hex(gpa)} is outside guest RAM`);
    return trace(translation, fault(TranslateFault.WalkAbort, 0, walkStage, false, 'walk-abort'));
  }
  return trace(translation, {
    ok: true,
    hpa: pa,
    gpa,
    ...(out.type === PGTT.Nested ? { ipa: f.gpa } : {}),
    pageShift: f.leafShift,
    unitShift: f.unitShift,
  });
}
