/**
 * SMMUv3 output-queue records: 32-byte event records and 16-byte PRI queue records
 * (reference/viommu-queues.md §1.6, §1.8; IHI0070 §7.3, §8; Linux `EVTQ_*`, `PRIQ_*`; QEMU
 * `EVT_SET_*`). A record is an Int32Array of little-endian 32-bit words: word 2k is bits 31:0 of
 * dword k and word 2k+1 its bits 63:32. The encoders write into a caller's preallocated array.
 */

import { SMMU_EVT } from '../../pgtable/arm/desc.js';
import { EVT_CLASS, SMMU_CFG_EVT } from './resolve-events.js';

/** Event record size in 32-bit words. */
export const EVT_WORDS = 8;

/** PRI queue record size in 32-bit words. */
export const PRIQ_WORDS = 4;

/**
 * Event numbers (QEMU `SMMUEventType`): the configuration-fetch events of resolve-events.ts and the
 * page-walk faults of pgtable/arm/desc.ts, plus the remaining architected ones.
 */
export const EVT_ID = {
  /** Unsupported upstream transaction. */
  F_UUT: 0x01,
  ...SMMU_CFG_EVT,
  /** ATS translation request on a stream that does not allow it. */
  F_BAD_ATS_TREQ: 0x05,
  /** Transaction forbidden (ATS-translated traffic without permission). */
  F_TRANSL_FORBIDDEN: 0x07,
  ...SMMU_EVT,
  /** TLB conflict. */
  F_TLB_CONFLICT: 0x20,
  /** Configuration cache conflict. */
  F_CFG_CONFLICT: 0x21,
  /** Page request (stall-model PRI emulation). */
  E_PAGE_REQUEST: 0x24,
} as const;

/** Event record CLASS values (defined with the configuration events in resolve-events.ts). */
export { EVT_CLASS };

/** Event record bit positions, per 32-bit word. */
export const EVT_FIELD = {
  /** Word 0 bits 7:0: event number. */
  TypeMask: 0xff,
  /** Word 0 bit 11: SSV. */
  SSV: 1 << 11,
  /** Word 0 bits 31:12: SubstreamID. */
  SsidShift: 12,
  /** SubstreamID mask after shifting. */
  SsidMask: 0xfffff,
  /** Word 1: StreamID. */
  SidWord: 1,
  /** Word 2 bits 15:0: STAG. */
  StagMask: 0xffff,
  /** Word 2 bit 31: Stall. */
  STALL: 0x80000000,
  /** Word 3 bit 1 (bit 33): PnU, privileged. */
  PNU: 1 << 1,
  /** Word 3 bit 2 (bit 34): InD, instruction. */
  IND: 1 << 2,
  /** Word 3 bit 3 (bit 35): RnW, read. */
  RNW: 1 << 3,
  /** Word 3 bit 7 (bit 39): S2, the fault is at stage 2. */
  S2: 1 << 7,
  /** Word 3 bits 9:8 (bits 41:40): CLASS. */
  ClassShift: 8,
  /** CLASS mask after shifting. */
  ClassMask: 0x3,
  /** Word 3 bit 12 (bit 44): TTRnW, a stage-2 permission fault on a table read (F_PERMISSION, CLASS = TT). */
  TT_READ: 1 << 12,
  /** Words 4–5 (dword 2): InputAddr. */
  InputAddrWord: 4,
  /** Words 6–7 (dword 3): FetchAddr[55:3] or IPA[55:12]. */
  Addr2Word: 6,
  /** Low bits of dword 3 that are RES0 for a fetch address. */
  FetchAddrLowMask: 0x7,
  /** Low bits of dword 3 that are RES0 for an IPA. */
  IpaLowMask: 0xfff,
} as const;

/** PRI queue record bit positions, per 32-bit word. */
export const PRIQ_FIELD = {
  /** Word 0: StreamID. */
  SidWord: 0,
  /** Word 1 bits 19:0 (bits 51:32): SubstreamID. */
  SsidMask: 0xfffff,
  /** Word 1 bit 26 (bit 58): privileged. */
  PRIV: 1 << 26,
  /** Word 1 bit 27 (bit 59): execute. */
  EXEC: 1 << 27,
  /** Word 1 bit 28 (bit 60): read. */
  READ: 1 << 28,
  /** Word 1 bit 29 (bit 61): write. */
  WRITE: 1 << 29,
  /** Word 1 bit 30 (bit 62): last request of its page request group. */
  LAST: 1 << 30,
  /** Word 1 bit 31 (bit 63): SSV, the SubstreamID is valid. */
  SSV: 0x80000000,
  /** Word 2 bits 8:0: page request group index. */
  PrgIndexMask: 0x1ff,
  /** Word 2 bits 31:12 and word 3: the page address (bits 63:12). */
  AddrLowMask: 0xfffff000,
} as const;

/**
 * An event to encode. Which fields are written depends on `type`, as QEMU's
 * `smmuv3_record_event` does; the others stay RES0. A device model that must not allocate keeps
 * one mutable object of this shape and refills it.
 */
export interface SmmuEvent {
  /** Event number (EVT_ID). */
  readonly type: number;
  readonly sid: number;
  /** SubstreamID; present means SSV = 1. */
  readonly ssid?: number | undefined;
  /** Stall model: the transaction is held (Stall = 1) and this STAG names it for CMD_RESUME. */
  readonly stag?: number | undefined;
  /** PnU: privileged access. */
  readonly privileged?: boolean | undefined;
  /** InD: instruction fetch. */
  readonly instruction?: boolean | undefined;
  /** RnW: a read (false: a write). */
  readonly read?: boolean | undefined;
  /** S2: the fault is at stage 2. */
  readonly stage2?: boolean | undefined;
  /** CLASS (EVT_CLASS). */
  readonly class?: number | undefined;
  /** TTRnW (F_PERMISSION with CLASS = TT): the stage-1 table access that faulted was a read. */
  readonly tableRead?: boolean | undefined;
  /** InputAddr: the transaction's address (a bigint for addresses at or above 2^53). */
  readonly inputAddress?: number | bigint | undefined;
  /** FetchAddr (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT) or IPA (F_TRANSLATION … F_PERMISSION). */
  readonly address2?: number | bigint | undefined;
}

/** Which event fields each event type carries: SubstreamID, access attributes, stall, stage/class, input address, second address. */
const HAS_SSID = 1;
const HAS_ACCESS = 2;
const HAS_STALL = 4;
const HAS_STAGE = 8;
const HAS_INPUT = 16;
const FETCH_ADDR = 32;
const IPA_ADDR = 64;
const WALK = HAS_SSID | HAS_ACCESS | HAS_STALL | HAS_STAGE | HAS_INPUT;

/** Fields per event type (IHI0070 §7.3); types not listed carry only type, SID and SubstreamID. */
const EVENT_LAYOUT: ReadonlyMap<number, number> = new Map([
  [EVT_ID.F_UUT, HAS_SSID | HAS_ACCESS | HAS_INPUT],
  [EVT_ID.C_BAD_STREAMID, HAS_SSID],
  [EVT_ID.F_STE_FETCH, HAS_SSID | FETCH_ADDR],
  [EVT_ID.C_BAD_STE, HAS_SSID],
  [EVT_ID.F_STREAM_DISABLED, 0],
  [EVT_ID.F_TRANSL_FORBIDDEN, HAS_ACCESS | HAS_INPUT],
  [EVT_ID.C_BAD_SUBSTREAMID, HAS_SSID],
  [EVT_ID.F_CD_FETCH, HAS_SSID | FETCH_ADDR],
  [EVT_ID.C_BAD_CD, HAS_SSID],
  [EVT_ID.F_WALK_EABT, WALK | FETCH_ADDR],
  [EVT_ID.F_TRANSLATION, WALK | IPA_ADDR],
  [EVT_ID.F_ADDR_SIZE, WALK | IPA_ADDR],
  [EVT_ID.F_ACCESS, WALK | IPA_ADDR],
  [EVT_ID.F_PERMISSION, WALK | IPA_ADDR],
]);

/** Writes a u64 (number below 2^53, or bigint) into two words at `word`, after clearing `lowMask`. */
function putU64(out: Int32Array, word: number, v: number | bigint, lowMask: number): void {
  if (typeof v === 'bigint') {
    out[word] = Number(v & 0xffffffffn) & ~lowMask;
    out[word + 1] = Number((v >> 32n) & 0xffffffffn);
    return;
  }
  out[word] = (v % 2 ** 32) & ~lowMask;
  out[word + 1] = Math.floor(v / 2 ** 32);
}

/** Reads two words at `word` as a u64: a number when below 2^53, else a bigint. */
function getU64(words: Int32Array, word: number): number | bigint {
  const lo = words[word]! >>> 0;
  const hi = words[word + 1]! >>> 0;
  return hi < 0x200000 ? hi * 2 ** 32 + lo : (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * Encodes `e` into `out` (at least EVT_WORDS long) and returns it. Fields the type does not carry
 * are left 0 (RES0): F_STREAM_DISABLED has no SubstreamID, fetch faults put FetchAddr[55:3] in
 * dword 3, translation faults put IPA[55:12] there. Allocation-free for number addresses.
 */
export function encodeEvent(out: Int32Array, e: SmmuEvent): Int32Array {
  const layout = EVENT_LAYOUT.get(e.type) ?? HAS_SSID;
  out.fill(0, 0, EVT_WORDS);
  let w0 = e.type & EVT_FIELD.TypeMask;
  if ((layout & HAS_SSID) !== 0 && e.ssid !== undefined)
    w0 |= EVT_FIELD.SSV | ((e.ssid & EVT_FIELD.SsidMask) << EVT_FIELD.SsidShift);
  out[0] = w0;
  out[EVT_FIELD.SidWord] = e.sid;
  if ((layout & HAS_STALL) !== 0 && e.stag !== undefined) out[2] = EVT_FIELD.STALL | (e.stag & EVT_FIELD.StagMask);
  let w3 = 0;
  if ((layout & HAS_ACCESS) !== 0) {
    if (e.privileged === true) w3 |= EVT_FIELD.PNU;
    if (e.instruction === true) w3 |= EVT_FIELD.IND;
    if (e.read === true) w3 |= EVT_FIELD.RNW;
  }
  if ((layout & HAS_STAGE) !== 0) {
    if (e.stage2 === true) w3 |= EVT_FIELD.S2;
    w3 |= ((e.class ?? EVT_CLASS.IN) & EVT_FIELD.ClassMask) << EVT_FIELD.ClassShift;
    if (e.type === EVT_ID.F_PERMISSION && e.tableRead === true) w3 |= EVT_FIELD.TT_READ;
  }
  out[3] = w3;
  if ((layout & HAS_INPUT) !== 0 && e.inputAddress !== undefined)
    putU64(out, EVT_FIELD.InputAddrWord, e.inputAddress, 0);
  if (e.address2 !== undefined) {
    if ((layout & FETCH_ADDR) !== 0) putU64(out, EVT_FIELD.Addr2Word, e.address2, EVT_FIELD.FetchAddrLowMask);
    else if ((layout & IPA_ADDR) !== 0) putU64(out, EVT_FIELD.Addr2Word, e.address2, EVT_FIELD.IpaLowMask);
  }
  return out;
}

/** A decoded event record (every field, whether or not the type defines it). */
export interface SmmuEventRecord {
  readonly type: number;
  readonly sid: number;
  readonly ssv: boolean;
  readonly ssid: number;
  readonly stall: boolean;
  readonly stag: number;
  readonly privileged: boolean;
  readonly instruction: boolean;
  readonly read: boolean;
  readonly stage2: boolean;
  readonly class: number;
  readonly tableRead: boolean;
  readonly inputAddress: number | bigint;
  readonly address2: number | bigint;
}

/** Decodes an event record, as a guest driver (Linux `arm_smmu_handle_evt`) reads it. */
export function decodeEvent(words: Int32Array): SmmuEventRecord {
  const w0 = words[0]!;
  const w2 = words[2]!;
  const w3 = words[3]!;
  return {
    type: w0 & EVT_FIELD.TypeMask,
    sid: words[EVT_FIELD.SidWord]! >>> 0,
    ssv: (w0 & EVT_FIELD.SSV) !== 0,
    ssid: (w0 >>> EVT_FIELD.SsidShift) & EVT_FIELD.SsidMask,
    stall: (w2 & EVT_FIELD.STALL) !== 0,
    stag: w2 & EVT_FIELD.StagMask,
    privileged: (w3 & EVT_FIELD.PNU) !== 0,
    instruction: (w3 & EVT_FIELD.IND) !== 0,
    read: (w3 & EVT_FIELD.RNW) !== 0,
    stage2: (w3 & EVT_FIELD.S2) !== 0,
    class: (w3 >>> EVT_FIELD.ClassShift) & EVT_FIELD.ClassMask,
    tableRead: (w3 & EVT_FIELD.TT_READ) !== 0,
    inputAddress: getU64(words, EVT_FIELD.InputAddrWord),
    address2: getU64(words, EVT_FIELD.Addr2Word),
  };
}

/** Whether an encoded event record holds a stalled transaction (Stall = 1). */
export function eventIsStall(words: Int32Array): boolean {
  return (words[2]! & EVT_FIELD.STALL) !== 0;
}

/** A PCIe page request to encode (reference/viommu-queues.md §1.8). */
export interface SmmuPriRequest {
  readonly sid: number;
  /** PASID; present means SSV = 1. */
  readonly ssid?: number | undefined;
  readonly privileged?: boolean | undefined;
  readonly exec?: boolean | undefined;
  readonly read?: boolean | undefined;
  readonly write?: boolean | undefined;
  /** Last request of its page request group (only those get a PRI_RESP). */
  readonly last?: boolean | undefined;
  /** Page request group index, 0–511. */
  readonly prgIndex: number;
  /** The page address (bits 11:0 are dropped). */
  readonly address: number | bigint;
}

/** Encodes `r` into `out` (at least PRIQ_WORDS long) and returns it; allocation-free for a number address. */
export function encodePriRequest(out: Int32Array, r: SmmuPriRequest): Int32Array {
  let w1 = 0;
  if (r.ssid !== undefined) w1 |= PRIQ_FIELD.SSV | (r.ssid & PRIQ_FIELD.SsidMask);
  if (r.privileged === true) w1 |= PRIQ_FIELD.PRIV;
  if (r.exec === true) w1 |= PRIQ_FIELD.EXEC;
  if (r.read === true) w1 |= PRIQ_FIELD.READ;
  if (r.write === true) w1 |= PRIQ_FIELD.WRITE;
  if (r.last === true) w1 |= PRIQ_FIELD.LAST;
  out[PRIQ_FIELD.SidWord] = r.sid;
  out[1] = w1;
  putU64(out, 2, r.address, ~PRIQ_FIELD.AddrLowMask);
  out[2] = out[2]! | (r.prgIndex & PRIQ_FIELD.PrgIndexMask);
  return out;
}

/** A decoded PRI queue record. */
export interface SmmuPriRecord {
  readonly sid: number;
  readonly ssv: boolean;
  readonly ssid: number;
  readonly privileged: boolean;
  readonly exec: boolean;
  readonly read: boolean;
  readonly write: boolean;
  readonly last: boolean;
  readonly prgIndex: number;
  readonly address: number | bigint;
}

/** Decodes a PRI queue record, as a guest driver (Linux `arm_smmu_handle_ppr`) reads it. */
export function decodePriRequest(words: Int32Array): SmmuPriRecord {
  const w1 = words[1]!;
  const w2 = words[2]!;
  const lo = (w2 & PRIQ_FIELD.AddrLowMask) >>> 0;
  const hi = words[3]! >>> 0;
  return {
    sid: words[PRIQ_FIELD.SidWord]! >>> 0,
    ssv: (w1 & PRIQ_FIELD.SSV) !== 0,
    ssid: w1 & PRIQ_FIELD.SsidMask,
    privileged: (w1 & PRIQ_FIELD.PRIV) !== 0,
    exec: (w1 & PRIQ_FIELD.EXEC) !== 0,
    read: (w1 & PRIQ_FIELD.READ) !== 0,
    write: (w1 & PRIQ_FIELD.WRITE) !== 0,
    last: (w1 & PRIQ_FIELD.LAST) !== 0,
    prgIndex: w2 & PRIQ_FIELD.PrgIndexMask,
    address: hi < 0x200000 ? hi * 2 ** 32 + lo : (BigInt(hi) << 32n) | BigInt(lo),
  };
}

/** Whether an encoded PRI queue record is the last of its page request group. */
export function priRequestIsLast(words: Int32Array): boolean {
  return (words[1]! & PRIQ_FIELD.LAST) !== 0;
}
