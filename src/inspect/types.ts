/*
 * What `ioasid inspect` reports, as plain JSON-safe objects: every number is below 2^53 (an
 * address or a field), every 64-bit raw value is a hex string, so `JSON.stringify` of any of them
 * is the `--json` output. format.ts renders the same objects as tables.
 */

/** A decoded field: a number (addresses are numbers), a flag, or a name. */
export type FieldValue = number | boolean | string;

/** Decoded fields of one descriptor, by the spec's (or the decoder's) name. */
export type Fields = Record<string, FieldValue>;

/** The in-memory structures a walk reads. */
export type StructureKind =
  | 'root-entry'
  | 'context-entry'
  | 'sm-root-entry'
  | 'sm-context-entry'
  | 'pasid-dir-entry'
  | 'pasid-entry'
  | 'l1-std'
  | 'ste'
  | 'l1-cd'
  | 'cd'
  | 'pte';

/** The page-table formats a walk can read. */
export type PteFormat = 'x86-first-stage' | 'vtd-second-stage' | 'arm-stage1' | 'arm-stage2' | 'mock';

/** Which translation a read belongs to: the configuration fetch, stage 1 or stage 2. */
export type WalkStage = 'config' | 'stage1' | 'stage2';

/** Why a stage-2 walk ran inside a nested walk (or a nested configuration fetch). */
export type Stage2Purpose = 'table' | 'output' | 'cd';

/** What a step led to. */
export type StepOutcome = 'read' | 'table' | 'leaf' | 'fault';

/** One descriptor read, in the order the hardware reads memory. */
export interface WalkStep {
  /** What was read. */
  structure: StructureKind;
  /** The translation the read belongs to. */
  stage: WalkStage;
  /** For a page-table entry: its format. */
  format?: PteFormat;
  /** For a page-table entry: its level, in the Arm numbering for every format (3 = 4 KiB, -1 = PML5). */
  level?: number;
  /** For a page-table entry: its index in its table. */
  index?: number;
  /**
   * For a stage-2 read inside a nested walk: why the stage-2 walk ran (a stage-1 table fetch, the
   * output, a CD fetch) and the intermediate address it translated.
   */
  s2?: { purpose: Stage2Purpose; input: number };
  /** For a nested stage-1 table entry: its intermediate (IPA / guest-physical) address before stage 2. */
  ipa?: number;
  /** Its guest-physical address, for a unit's guest-managed structure. */
  gpa?: number;
  /** Its host-physical address (in the fd's physical memory), or -1 when the read aborted. */
  hpa: number;
  /** The raw 64-bit words read, little-endian qwords as `0x` + 16 hex digits; empty when the read aborted. */
  raw: string[];
  /** The decoded fields. */
  fields: Fields;
  /** What the step led to: another table, a leaf, a fault, or (configuration) just a read. */
  outcome: StepOutcome;
  /** The A/D bits the real walker would set in this entry (x86 first stage), e.g. 'A' or 'A+D'. */
  wouldSet?: string;
}

/** A translation fault, as the target's translate reports it. */
export interface InspectFault {
  /** The negative TranslateFault code translate returns. */
  code: number;
  /** Its name: 'no-domain', 'not-mapped', 'permission', 'access-flag', 'address-size', 'walk-abort', 'reserved'. */
  name: string;
  /** The FaultReason name ('not-present', 'write-denied' …), as `Iommufd.lastFault().reason`. */
  reason: string;
  /** The level where the walk stopped (Arm numbering), as `Iommufd.lastFault().level`. */
  level: number;
  /** The vendor code: VT-d fault reason (`lastFaultReason`) or SMMUv3 event (`lastEvent`); 0 for none. */
  vendorCode: number;
  /** The vendor code's name (QEMU's where it has one), '' for 0. */
  vendorName: string;
  /** Where it happened. */
  stage: WalkStage;
  /** A stage-2 fault of a nested walk: the intermediate address whose translation faulted. */
  ipa?: number;
  /** SMMUv3 event CLASS of a nested stage-2 fault: the access that faulted. */
  eventClass?: 'CD' | 'TT' | 'IN';
  /** Whether the unit records it (VT-d: FPD; SMMUv3: CD.R / STE.S2R / RECINVSID). Absent for iommufd. */
  recorded?: boolean;
}

/** A translation that succeeded. */
export interface InspectOutput {
  /** The host-physical address translate returns. */
  hpa: number;
  /** A unit's guest-physical output (before guest RAM's GPA → HPA). */
  gpa?: number;
  /** A nested walk's intermediate address (stage 1's output, stage 2's input). */
  ipa?: number;
  /** log2 of the leaf that translated it (the smaller stage's, nested), as the IOTLB caches it. */
  pageShift: number;
  /** log2 of the translation unit an invalidation must drop whole (a nested walk's stage-1 leaf). */
  unitShift: number;
}

/** What a translation gave: an address, or a fault. */
export type InspectResult = ({ ok: true } & InspectOutput) | { ok: false; fault: InspectFault };

/** Access bits of the inspected request, spelled out. */
export interface InspectAccess {
  read: boolean;
  write: boolean;
  exec: boolean;
  /** A privileged (supervisor) request. */
  priv: boolean;
}

/** The request a walk was inspected for. */
export interface InspectRequest {
  /** VT-d source id / SMMUv3 StreamID (units). */
  sid?: number;
  /** iommufd device id. */
  devId?: number;
  /** PASID (VT-d, iommufd) or SubstreamID (SMMUv3), absent for a request without one. */
  pasid?: number;
  /** The input address. */
  iova: number;
  /** The Access bits (Read 1, Write 2, Exec 4, Priv 8). */
  access: number;
  /** The same, spelled out. */
  accessBits: InspectAccess;
}

/** The level-by-level walk of one request, read-only (no A/D update, no cache fill). */
export interface WalkTrace {
  /** What was inspected: an emulated unit, or an iommufd device. */
  target: 'vtd' | 'smmuv3' | 'iommufd';
  /** The request. */
  request: InspectRequest;
  /** The translation the configuration selected ('second-stage', 'nested', 'stage1', 'bypass' …), or '' when none. */
  translation: string;
  /** The configuration in effect (DID, ASID, VMID, table roots, descriptor …). */
  context: Fields;
  /** Every descriptor read, in order. */
  steps: WalkStep[];
  /** The final result. */
  result: InspectResult;
  /** What a reader should know that the steps do not say (translation disabled, caches …). */
  notes: string[];
}

/** Effective permissions of a mapped range (hierarchical bits combined over the levels). */
export interface RangePerms {
  read: boolean;
  write: boolean;
  /** Execute (an unprivileged fetch for Arm stage 1). */
  exec: boolean;
  /** User (unprivileged) access allowed: x86 U/S, Arm AP[1]; absent for formats without it. */
  user?: boolean;
  /** Arm: the access flag is set (or AFFD): clear, every access takes an Access flag fault. */
  accessFlag?: boolean;
}

/** One run of contiguous mappings: IOVAs [iova, iova + size) onto [output, output + size). */
export interface MappedRange {
  /** First input address. */
  iova: number;
  /** Bytes. */
  size: number;
  /** First output address. */
  output: number;
  /** The leaf size of every mapping in the run (the smaller stage's, nested). */
  pageSize: number;
  /** Effective permissions. */
  perms: RangePerms;
}

/** A domain's mapped ranges. */
export interface RangeDump {
  /** What was dumped ('x86-first-stage', 'nested (x86-first-stage over vtd-second-stage)' …). */
  format: string;
  /** The space outputs are in: 'hpa' (iommufd), 'gpa' (a unit's guest RAM), 'ipa' (a stage-1 of a nested domain alone). */
  outputSpace: 'hpa' | 'gpa' | 'ipa';
  /** The root table (walker's address space). */
  root: number;
  /** The runs, by input address. */
  ranges: MappedRange[];
  /** Bytes mapped in all. */
  mappedBytes: number;
  /** Table pages read. */
  tablesRead: number;
  /** Present entries the walker would fault on (reserved bits, addresses beyond the output size, unreachable tables). */
  invalidEntries: number;
  /** Remarks (a stage-1 table stage 2 does not map …). */
  notes: string[];
}

/** One cache slot. */
export interface CacheEntry {
  /** The tag word: domain | ASID/PASID << 12. */
  tag: number;
  /** The tag's domain (descriptor index, or device slot for the ATC). */
  domain: number;
  /** The tag's ASID / PASID (0: none). */
  asid: number;
  /** First input address the entry covers. */
  iova: number;
  /** Bytes it covers. */
  size: number;
  /** Host-physical address of `iova`. */
  pa: number;
  /** The access it grants, spelled out; `user` / `priv` are the privilege levels the walk checked. */
  granted: { read: boolean; write: boolean; exec: boolean; user: boolean; priv: boolean };
  /** The clock stamp of the fill. */
  stamp: number;
  /** Whether it still hits: its stamp is above the tag's epoch floor. */
  live: boolean;
  /** Where it lives. */
  shard: number;
  /** Slot index in the table. */
  slot: number;
}

/** Cache contents. */
export interface CacheDump {
  /** Which table. */
  table: 'iotlb' | 'atc';
  /** The tag the dump was filtered by, or absent for every tag. */
  tag?: number;
  /** Slots of the table. */
  capacity: number;
  /** Entries (live only, unless stale ones were asked for), by tag then IOVA. */
  entries: CacheEntry[];
  /** The table's clock. */
  clock: number;
}

/** State of one SMMUv3 queue, from its registers. */
export interface SmmuQueueState {
  /** Base address (guest-physical). */
  base: number;
  /** log2 of its entries, as written (LOG2SIZE). */
  log2Size: number;
  /** PROD: index and wrap bit (raw register). */
  prod: number;
  /** CONS: index and wrap bit (raw register). */
  cons: number;
  /** Entries between CONS and PROD. */
  pending: number;
  /** Whether the queue is enabled (CR0ACK). */
  enabled: boolean;
  /** EVTQ/PRIQ: the overflow flag differs from its acknowledgement (PROD.OVFLG ≠ CONS.OVACKFLG). */
  overflow?: boolean;
  /** CMDQ: CONS.ERR, the CERROR code of the command at RD, and its name. */
  error?: number;
  errorName?: string;
}

/** An SMMUv3's queue and error state, read through its registers. */
export interface SmmuRegisterState {
  /** CR0ACK bits. */
  cr0: { smmuen: boolean; cmdqen: boolean; evtqen: boolean; priqen: boolean; atschk: boolean };
  /** GBPA.ABORT (SMMUEN = 0 aborts instead of bypassing). */
  gbpaAbort: boolean;
  /** GERROR and GERRORN, raw. */
  gerror: number;
  gerrorn: number;
  /** Names of the active global errors (GERROR ≠ GERRORN). */
  activeErrors: string[];
  /** STRTAB_BASE (address) and STRTAB_BASE_CFG decoded. */
  streamTable: { base: number; format: 'linear' | '2-level'; log2Size: number; split: number };
  cmdq: SmmuQueueState;
  evtq: SmmuQueueState;
  /** Absent without IDR0.PRI. */
  priq?: SmmuQueueState;
}

/** One VT-d fault recording register. */
export interface VtdFaultRecord {
  /** Register index. */
  index: number;
  /** F: a fault is recorded. */
  valid: boolean;
  /** FR, the fault reason, and its name. */
  reason: number;
  reasonName: string;
  /** SID. */
  sid: number;
  /** FI: the faulting page address. */
  address: number;
  /** T: 'read' or 'write'. */
  type: 'read' | 'write';
  /** PV, when PP is set. */
  pasid?: number;
  /** PRIV and EXE. */
  priv: boolean;
  exec: boolean;
}

/** A VT-d unit's queue and fault state, read through its registers. */
export interface VtdRegisterState {
  /** GSTS bits. */
  gsts: { tes: boolean; rtps: boolean; qies: boolean; ires: boolean };
  /** RTADDR decoded. */
  rootTable: { address: number; ttm: number; mode: 'legacy' | 'scalable' | 'abort-dma' | 'reserved' };
  /** The invalidation queue: IQA, IQH, IQT, IQER. */
  invalidationQueue: {
    base: number;
    /** IQA.QS and IQA.DW. */
    qs: number;
    descriptorBits: 128 | 256;
    entries: number;
    /** IQH and IQT as byte offsets, and as descriptor indexes. */
    headOffset: number;
    tailOffset: number;
    head: number;
    tail: number;
    /** Descriptors between head and tail. */
    pending: number;
    /** IQER.IQEI and its name (meaningful while FSTS.IQE is set). */
    iqei: number;
    iqeiName: string;
    /** ICS.IWC. */
    waitCompleted: boolean;
  };
  /** FSTS decoded. */
  faultStatus: { pfo: boolean; ppf: boolean; iqe: boolean; ice: boolean; ite: boolean; fri: number };
  /** FECTL: IM (masked) and IP (pending). */
  faultEvent: { masked: boolean; pending: boolean };
  /** The fault recording registers (CAP.NFR + 1 of them, at CAP.FRO · 16). */
  faultRecords: VtdFaultRecord[];
}
