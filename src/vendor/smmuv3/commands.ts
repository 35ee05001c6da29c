/**
 * Arm SMMUv3 command-queue commands (reference/viommu-queues.md §1.2–1.5, §6.1): one table row
 * per opcode, and a decoder and encoder driven by that table.
 *
 * A command is 16 bytes: dword0 (bits 63:0) and dword1 (bits 127:64, renumbered 63:0). In guest
 * memory dword d is 32-bit word 2d (bits 31:0) followed by word 2d + 1 (bits 63:32). The opcode
 * is dword0 bits 7:0. Field positions follow Linux's `CMDQ_*` macros and QEMU's `CMD_*`
 * extractors (they agree), and the Arm SMMUv3 spec (IHI0070) §4 for fields Linux does not use
 * (PREFETCH_ADDR Stride, RESUME Ac/Ab, SSec).
 *
 * What is illegal (CERROR_ILL), and why. QEMU checks little (the opcode, and SSec on CFGI_*);
 * the decoder checks what the spec (§4.1.3 and each command's section) calls ILLEGAL:
 * - a Reserved opcode, including ones this model does not implement: 0x07 CFGI_VMS_PIDM (no
 *   MPAM), 0x18/0x1A TLBI_EL3_* (Secure queue only), 0x50..0x60 Secure TLBIs, 0x70/0x73 DPTI
 *   (no DPT), 0x80..0x8F IMPLEMENTATION DEFINED (none defined). QEMU's own 0x07 "CFGI_ALL" is
 *   not architectural: CFGI_ALL is 0x04 with Range = 31.
 * - SSec = 1: this is the Non-secure queue, where SSec = 1 is ILLEGAL "regardless of whether
 *   Secure state is supported" (QEMU checks it for CFGI_*; the table has it wherever the spec does).
 * - CMD_SYNC CS = 0b11 and PRI_RESP Resp = 0b11 (Reserved values the spec calls ILLEGAL).
 * - A TLBI with TG != 0 and NUM = SCALE = TTL = 0 (§4.4.1.1: Reserved, "causes CERROR_ILL"; TG =
 *   16 KiB with TTL = 1 counts as TTL = 0, as SMMU_IDR5.DS = 0 here). QEMU accepts it; Linux
 *   sent it for a non-leaf one-granule range until eb6c97647be2 "Avoid constructing invalid
 *   range commands" (v6.6, backported to stable); hardware, and this model, reject it.
 * - ATC_INV Size > 52: the spec permits CERROR_ILL or an UNKNOWN span; this model raises ILL.
 * - A command of a feature the unit does not advertise ({@link SmmuFeature}): stage-1 TLBIs and
 *   CFGI_CD* without stage 1, S2 TLBIs without stage 2, EL2 TLBIs without Hyp, ATC_INV without
 *   ATS, PRI_RESP without PRI, RESUME/STALL_TERM without the stall model.
 *
 * RES0 fields: the spec lets an implementation either check them (non-zero => CERROR_ILL) or
 * ignore them entirely (§4.1.5). QEMU ignores them, so that is the default (a guest that QEMU
 * accepts is accepted here); {@link SmmuFeature.CheckRes0} turns the check on (every bit the
 * table marks reserved, plus NUM/SCALE/TTL when TG = 0 and the range fields when RIL is absent).
 * Without RIL the range fields are RES0 and, when ignored, decode as 0: the command is the
 * single-address form, exactly what such an SMMU would execute.
 *
 * Not modelled: 8-bit ASID/VMID (the upper halves would be RES0), SMMU_IDR5.DS = 1 (SCALE bit
 * 25), TTL128 (D128 tables; dword1 bit 7 is reserved), out-of-range SIDs/SSIDs (CONSTRAINED
 * UNPREDICTABLE, left to the unit), Secure and Realm queues.
 */
import { CERROR } from './regs-defs.js';

/** CMDQ_CONS.ERR codes (reference §1.5), named for the decoder; the values are regs-defs.ts's CERROR. */
export const CERROR_NONE = CERROR.NONE;
/** Illegal or unsupported opcode or field. */
export const CERROR_ILL = CERROR.ILL;
/** External abort while fetching the command (the queue consumer reports it, not the decoder). */
export const CERROR_ABT = CERROR.ABT;
/** A CMD_SYNC could not complete because an ATC invalidation failed (the consumer reports it). */
export const CERROR_ATC_INV_SYNC = CERROR.ATC_INV_SYNC;

/** A CERROR code. */
export type CError = typeof CERROR_NONE | typeof CERROR_ILL | typeof CERROR_ABT | typeof CERROR_ATC_INV_SYNC;

/** Opcodes (dword0 bits 7:0) of the commands in the table. */
export const Opcode = {
  PrefetchConfig: 0x01,
  PrefetchAddr: 0x02,
  CfgiSte: 0x03,
  /** Also CFGI_ALL: Range = 31 ({@link CFGI_ALL_RANGE}). */
  CfgiSteRange: 0x04,
  CfgiCd: 0x05,
  CfgiCdAll: 0x06,
  TlbiNhAll: 0x10,
  TlbiNhAsid: 0x11,
  TlbiNhVa: 0x12,
  TlbiNhVaa: 0x13,
  TlbiEl2All: 0x20,
  TlbiEl2Asid: 0x21,
  TlbiEl2Va: 0x22,
  TlbiEl2Vaa: 0x23,
  TlbiS12Vmall: 0x28,
  TlbiS2Ipa: 0x2a,
  TlbiNsnhAll: 0x30,
  AtcInv: 0x40,
  PriResp: 0x41,
  Resume: 0x44,
  StallTerm: 0x45,
  Sync: 0x46,
} as const;

/** CFGI_STE_RANGE's Range that makes it CMD_CFGI_ALL (2^32 StreamIDs). */
export const CFGI_ALL_RANGE = 31;

/** ATC_INV Size meaning "invalidate everything" (a 2^64-byte span; Linux `ATC_INV_SIZE_ALL`). */
export const ATC_INV_SIZE_ALL = 52;

/** CMD_SYNC completion signals (CS). */
export const SyncCs = {
  None: 0,
  /** MSI write of MSIData to MSIAddr, or the wired CMD_SYNC interrupt. */
  Irq: 1,
  /** A WFE wake-up event. */
  Sev: 2,
} as const;

/**
 * PRI_RESP Resp (reference §1.3; Linux `enum pri_resp`): Deny is the PCIe "Invalid Request"
 * response, Fail "Response Failure", Success "Success". 0b11 is Reserved (CERROR_ILL).
 */
export const PriResp = { Deny: 0, Fail: 1, Success: 2 } as const;

/**
 * RESUME Resp (dword0 bits 13:12, Linux `CMDQ_RESUME_0_RESP_*`): bit 12 is Action (1 retry, 0
 * terminate) and bit 13 Abort (with Action = 0: terminate with an abort rather than RAZ/WI).
 */
export const ResumeResp = { Terminate: 0, Retry: 1, Abort: 2 } as const;

/** TLBI translation granule (TG): 0 = not a range (any granule), else log2(granule) = 2·TG + 10. */
export const Tg = { None: 0, K4: 1, K16: 2, K64: 3 } as const;

/**
 * Features of the unit that decide whether a command is legal (bits of the `features` argument
 * of {@link decodeCommand}); the unit derives them from the SMMU_IDR0/IDR3 it advertises.
 */
export const SmmuFeature = {
  /** IDR0.S1P: stage-1 TLBIs (NH_*, EL2_*) and CFGI_CD/CFGI_CD_ALL. */
  Stage1: 1 << 0,
  /** IDR0.S2P: TLBI_S2_IPA and TLBI_S12_VMALL. */
  Stage2: 1 << 1,
  /** IDR0.Hyp: TLBI_EL2_*. */
  Hyp: 1 << 2,
  /** IDR0.ATS: ATC_INV. */
  Ats: 1 << 3,
  /** IDR0.PRI: PRI_RESP. */
  Pri: 1 << 4,
  /** IDR0.STALL_MODEL != 1: RESUME and STALL_TERM. */
  Stall: 1 << 5,
  /** IDR3.RIL: range invalidation (TLBI NUM, SCALE, TG, TTL). */
  Ril: 1 << 6,
  /** Not a hardware feature: treat set RES0 bits as CERROR_ILL (default: ignore them). */
  CheckRes0: 1 << 7,
} as const;

/** Every feature, RES0 fields ignored: the default of {@link decodeCommand}. */
export const ALL_FEATURES =
  SmmuFeature.Stage1 |
  SmmuFeature.Stage2 |
  SmmuFeature.Hyp |
  SmmuFeature.Ats |
  SmmuFeature.Pri |
  SmmuFeature.Stall |
  SmmuFeature.Ril;

/** Why a command decoded as CERROR_ILL (`SmmuCommand.reason`; diagnostics only). */
export const IllReason = {
  None: 0,
  /** Reserved or unimplemented opcode. */
  Opcode: 1,
  /** The command needs a feature the unit does not advertise. */
  Unsupported: 2,
  /** SSec = 1 on the Non-secure queue. */
  SSec: 3,
  /** A RES0 bit is set (only with {@link SmmuFeature.CheckRes0}). */
  Res0: 4,
  /** A Reserved field value: CS = 3, Resp = 3, ATC_INV Size > 52, the TLBI TG/NUM/SCALE/TTL combination. */
  Value: 5,
} as const;

/**
 * Field slots of a decoded command (`SmmuCommand.f`); the names are also the keys of
 * `CommandFields`. A field reads as its bits shifted down, except `addr` (a byte address:
 * Addr[63:12] << 12, or IPA[51:12] << 12) and `msiAddr` (MSIAddr[51:2] << 2), both exact.
 */
export const Field = {
  /** Secure StreamID (must be 0 on this, the Non-secure, queue). */
  ssec: 0,
  /** SubstreamID valid. */
  ssv: 1,
  ssid: 2,
  sid: 3,
  /** CFGI: only the leaf structure (not L1 descriptors); TLBI: only last-level entries. */
  leaf: 4,
  /** CFGI_STE_RANGE: 2^(Range+1) StreamIDs, aligned. */
  range: 5,
  /** TLBI range: (NUM+1) << SCALE granules. */
  num: 6,
  scale: 7,
  vmid: 8,
  asid: 9,
  /** TLBI level hint and translation granule. */
  ttl: 10,
  tg: 11,
  /** Byte address (4 KiB aligned). */
  addr: 12,
  /** PREFETCH_ADDR: 2^Size strides; ATC_INV: 2^Size 4 KiB pages (52: all). */
  size: 13,
  /** PREFETCH_ADDR: prefetch every 2^(12+Stride) bytes. */
  stride: 14,
  /** ATC_INV: the PCIe Global Invalidate flag (ignored when SSV = 0). */
  global: 15,
  /** PRI_RESP: page request group index and response ({@link PriResp}: 0 deny, 1 fail, 2 success). */
  prgi: 16,
  resp: 17,
  /** RESUME: Action (1 retry, 0 terminate) and Abort (terminate with abort), and the stall tag. */
  ac: 18,
  ab: 19,
  stag: 20,
  /** CMD_SYNC: completion signal, MSI shareability, MSI attributes, data and byte address. */
  cs: 21,
  msh: 22,
  msiAttr: 23,
  msiData: 24,
  msiAddr: 25,
} as const;

/** A field name. */
export type FieldName = keyof typeof Field;

/** Field values to encode, by name; absent fields are 0. */
export type CommandFields = { readonly [K in FieldName]?: number };

/** The number of field slots. */
export const FIELD_COUNT = Object.keys(Field).length;

/** One field of a command: bits [hi:lo] of dword `dw`, read as `bits << unit`. */
export interface FieldSpec {
  readonly name: FieldName;
  readonly dw: number;
  readonly hi: number;
  readonly lo: number;
  readonly unit: number;
}

/** One command: its fields, RES0 bits, and the features it needs. */
export interface CommandSpec {
  readonly opcode: number;
  /** The spec's name (CMD_ prefix dropped). */
  readonly name: string;
  readonly fields: readonly FieldSpec[];
  /** RES0 bits of dword0 and dword1 (checked only with {@link SmmuFeature.CheckRes0}). */
  readonly reserved: readonly [bigint, bigint];
  /** {@link SmmuFeature} bits that must all be advertised, else CERROR_ILL. */
  readonly requires: number;
}

/** Bits 7:0 of dword0: the opcode, in every row. */
export const OPCODE_BITS = 0xffn;

const ALL = 0xffff_ffff_ffff_ffffn;

function f(name: FieldName, dw: number, hi: number, lo: number = hi, unit = 0): FieldSpec {
  return { name, dw, hi, lo, unit };
}

/** Common dword0 fields. */
const SSEC = f('ssec', 0, 10);
const SSV = f('ssv', 0, 11);
const SSID = f('ssid', 0, 31, 12);
const SID = f('sid', 0, 63, 32);
const VMID = f('vmid', 0, 47, 32);
const ASID = f('asid', 0, 63, 48);
const NUM = f('num', 0, 16, 12);
const SCALE = f('scale', 0, 24, 20);
/** The dword1 of address-based TLBIs: Leaf, TTL, TG, Addr[63:12]. */
const TLBI_VA = [f('leaf', 1, 0), f('ttl', 1, 9, 8), f('tg', 1, 11, 10), f('addr', 1, 63, 12, 12)];

/** Reserved dword0 bits of a TLBI with NUM/SCALE: 11:8, 19:17, 31:25 (bit 25 is SCALE's 6th bit with DS = 1). */
const TLBI_RANGE_RES0 = 0xfe0e_0f00n;

/**
 * The command table (reference §1.3, §6.1; "keep sorted" by opcode). CFGI_ALL is the
 * CFGI_STE_RANGE row with Range = 31.
 */
export const COMMANDS: readonly CommandSpec[] = [
  {
    opcode: Opcode.PrefetchConfig,
    name: 'PREFETCH_CONFIG',
    fields: [SSEC, SSV, SSID, SID],
    reserved: [0x300n, ALL],
    requires: 0,
  },
  {
    opcode: Opcode.PrefetchAddr,
    name: 'PREFETCH_ADDR',
    // dword1 bits 11:10 hold NS, RES0 on the Non-secure queue.
    fields: [SSEC, SSV, SSID, SID, f('size', 1, 4, 0), f('stride', 1, 9, 5), f('addr', 1, 63, 12, 12)],
    reserved: [0x300n, 0xc00n],
    requires: 0,
  },
  {
    opcode: Opcode.CfgiSte,
    name: 'CFGI_STE',
    fields: [SSEC, SID, f('leaf', 1, 0)],
    reserved: [0xffff_fb00n, ALL ^ 1n],
    requires: 0,
  },
  {
    opcode: Opcode.CfgiSteRange,
    name: 'CFGI_STE_RANGE',
    fields: [SSEC, SID, f('range', 1, 4, 0)],
    reserved: [0xffff_fb00n, ALL ^ 0x1fn],
    requires: 0,
  },
  {
    opcode: Opcode.CfgiCd,
    name: 'CFGI_CD',
    fields: [SSEC, SSID, SID, f('leaf', 1, 0)],
    reserved: [0xb00n, ALL ^ 1n],
    requires: SmmuFeature.Stage1,
  },
  {
    opcode: Opcode.CfgiCdAll,
    name: 'CFGI_CD_ALL',
    fields: [SSEC, SID],
    reserved: [0xffff_fb00n, ALL],
    requires: SmmuFeature.Stage1,
  },
  {
    opcode: Opcode.TlbiNhAll,
    name: 'TLBI_NH_ALL',
    fields: [VMID],
    reserved: [0xffff_0000_ffff_ff00n, ALL],
    requires: SmmuFeature.Stage1,
  },
  {
    opcode: Opcode.TlbiNhAsid,
    name: 'TLBI_NH_ASID',
    fields: [VMID, ASID],
    reserved: [0xffff_ff00n, ALL],
    requires: SmmuFeature.Stage1,
  },
  {
    opcode: Opcode.TlbiNhVa,
    name: 'TLBI_NH_VA',
    fields: [NUM, SCALE, VMID, ASID, ...TLBI_VA],
    reserved: [TLBI_RANGE_RES0, 0xfen],
    requires: SmmuFeature.Stage1,
  },
  {
    opcode: Opcode.TlbiNhVaa,
    name: 'TLBI_NH_VAA',
    fields: [NUM, SCALE, VMID, ...TLBI_VA],
    reserved: [0xffff_0000_0000_0000n | TLBI_RANGE_RES0, 0xfen],
    requires: SmmuFeature.Stage1,
  },
  {
    opcode: Opcode.TlbiEl2All,
    name: 'TLBI_EL2_ALL',
    fields: [],
    reserved: [ALL ^ OPCODE_BITS, ALL],
    requires: SmmuFeature.Stage1 | SmmuFeature.Hyp,
  },
  {
    opcode: Opcode.TlbiEl2Asid,
    name: 'TLBI_EL2_ASID',
    fields: [ASID],
    reserved: [0x0000_ffff_ffff_ff00n, ALL],
    requires: SmmuFeature.Stage1 | SmmuFeature.Hyp,
  },
  {
    opcode: Opcode.TlbiEl2Va,
    name: 'TLBI_EL2_VA',
    fields: [NUM, SCALE, ASID, ...TLBI_VA],
    reserved: [0x0000_ffff_0000_0000n | TLBI_RANGE_RES0, 0xfen],
    requires: SmmuFeature.Stage1 | SmmuFeature.Hyp,
  },
  {
    opcode: Opcode.TlbiEl2Vaa,
    name: 'TLBI_EL2_VAA',
    fields: [NUM, SCALE, ...TLBI_VA],
    reserved: [0xffff_ffff_0000_0000n | TLBI_RANGE_RES0, 0xfen],
    requires: SmmuFeature.Stage1 | SmmuFeature.Hyp,
  },
  {
    opcode: Opcode.TlbiS12Vmall,
    name: 'TLBI_S12_VMALL',
    fields: [VMID],
    reserved: [0xffff_0000_ffff_ff00n, ALL],
    requires: SmmuFeature.Stage2,
  },
  {
    opcode: Opcode.TlbiS2Ipa,
    name: 'TLBI_S2_IPA',
    // IPA[51:12]; bits 55:52 are RES0 up to SMMUv3.3, 63:56 always.
    fields: [NUM, SCALE, VMID, f('leaf', 1, 0), f('ttl', 1, 9, 8), f('tg', 1, 11, 10), f('addr', 1, 51, 12, 12)],
    reserved: [0xffff_0000_0000_0000n | TLBI_RANGE_RES0, 0xfff0_0000_0000_00fen],
    requires: SmmuFeature.Stage2,
  },
  {
    opcode: Opcode.TlbiNsnhAll,
    name: 'TLBI_NSNH_ALL',
    fields: [],
    reserved: [ALL ^ OPCODE_BITS, ALL],
    requires: 0,
  },
  {
    opcode: Opcode.AtcInv,
    name: 'ATC_INV',
    fields: [f('global', 0, 9), SSV, SSID, SID, f('size', 1, 5, 0), f('addr', 1, 63, 12, 12)],
    reserved: [0x500n, 0xfc0n],
    requires: SmmuFeature.Ats,
  },
  {
    opcode: Opcode.PriResp,
    name: 'PRI_RESP',
    fields: [SSV, SSID, SID, f('prgi', 1, 8, 0), f('resp', 1, 13, 12)],
    reserved: [0x700n, 0xffff_ffff_ffff_ce00n],
    requires: SmmuFeature.Pri,
  },
  {
    opcode: Opcode.Resume,
    name: 'RESUME',
    fields: [SSEC, f('ac', 0, 12), f('ab', 0, 13), SID, f('stag', 1, 15, 0)],
    reserved: [0xffff_cb00n, 0xffff_ffff_ffff_0000n],
    requires: SmmuFeature.Stall,
  },
  {
    opcode: Opcode.StallTerm,
    name: 'STALL_TERM',
    fields: [SSEC, SID],
    reserved: [0xffff_fb00n, ALL],
    requires: SmmuFeature.Stall,
  },
  {
    opcode: Opcode.Sync,
    name: 'CMD_SYNC',
    fields: [
      f('cs', 0, 13, 12),
      f('msh', 0, 23, 22),
      f('msiAttr', 0, 27, 24),
      f('msiData', 0, 63, 32),
      f('msiAddr', 1, 51, 2, 2),
    ],
    reserved: [0xf03f_cf00n, 0xfff0_0000_0000_0003n],
    requires: 0,
  },
];

/** A decoded command, reused across decodes: the decoder allocates nothing. */
export class SmmuCommand {
  /** Opcode (valid whatever the status). */
  opcode = 0;
  /** Why the last decode was CERROR_ILL ({@link IllReason}); None after an Ok decode. */
  reason = 0;
  /**
   * Field values by `Field` slot; fields the opcode lacks read 0. Float64 rather than Int32:
   * addresses reach 2^64 - 4 KiB and are exact as doubles (at most 52 significant bits).
   */
  readonly f = new Float64Array(FIELD_COUNT);

  /** Field `name` (readable form of `f[Field[name]]`). */
  get(name: FieldName): number {
    return this.f[Field[name]]!;
  }
}

/** Words per field in a compiled plan: slot, word, shift, low mask, high mask, high scale, unit. */
const PLAN_STRIDE = 7;

/** A table row compiled for the decoder. */
interface CompiledRow {
  readonly known: boolean;
  readonly requires: number;
  /** Whether the row has the TLBI range fields (TG, TTL, NUM, SCALE). */
  readonly ranged: boolean;
  /** RES0 masks per 32-bit word (4 words). */
  readonly reserved: Int32Array;
  /** PLAN_STRIDE numbers per field. */
  readonly plan: Float64Array;
}

function maskOf(bits: number): number {
  return bits >= 32 ? 0xffffffff : 2 ** bits - 1;
}

function compile(spec: CommandSpec | undefined): CompiledRow {
  const reserved = new Int32Array(4);
  const fields = spec?.fields ?? [];
  const plan = new Float64Array(fields.length * PLAN_STRIDE);
  if (spec !== undefined) {
    for (let d = 0; d < 2; d++) {
      const m = spec.reserved[d]!;
      reserved[2 * d] = Number(m & 0xffff_ffffn) | 0;
      reserved[2 * d + 1] = Number(m >> 32n) | 0;
    }
  }
  fields.forEach((fs, i) => {
    const word = 2 * fs.dw + (fs.lo >= 32 ? 1 : 0);
    const shift = fs.lo % 32;
    const top = fs.lo >= 32 ? 63 : 31;
    const loBits = Math.min(fs.hi, top) - fs.lo + 1;
    const hiBits = fs.hi > top ? fs.hi - top : 0;
    plan.set(
      [Field[fs.name], word, shift, maskOf(loBits), hiBits > 0 ? maskOf(hiBits) : 0, 2 ** loBits, 2 ** fs.unit],
      i * PLAN_STRIDE,
    );
  });
  return {
    known: spec !== undefined,
    requires: spec?.requires ?? 0,
    ranged: fields.some((fs) => fs.name === 'tg'),
    reserved,
    plan,
  };
}

/** Opcodes are 8 bits; every slot holds a row (unknown opcodes a sentinel), so lookups stay monomorphic. */
const ROWS: readonly CompiledRow[] = Array.from({ length: 256 }, (_, op) =>
  compile(COMMANDS.find((c) => c.opcode === op)),
);

/** The table row of `opcode`, or undefined for an opcode the model does not implement. */
export function commandSpec(opcode: number): CommandSpec | undefined {
  return COMMANDS.find((c) => c.opcode === opcode);
}

/** The opcode of a command whose first word (dword0 bits 31:0) is `w0`. */
export function commandOpcode(w0: number): number {
  return w0 & 0xff;
}

function ill(out: SmmuCommand, reason: number): CError {
  out.reason = reason;
  return CERROR_ILL;
}

/**
 * Decodes the 16-byte command at word `at` of `mem` (4 words) into `out`, checking it as the
 * SMMU does before executing it (see the file comment): a known opcode of an advertised
 * feature, SSec = 0, no Reserved field value, and, with {@link SmmuFeature.CheckRes0} in
 * `features`, no RES0 bit set. Returns CERROR_NONE (Ok) or CERROR_ILL; on ILL `out.opcode` and
 * `out.reason` are set and the fields are unspecified. Allocation-free.
 */
export function decodeCommand(
  mem: Uint32Array | Int32Array,
  at: number,
  out: SmmuCommand,
  features: number = ALL_FEATURES,
): CError {
  const opcode = mem[at]! & 0xff;
  out.opcode = opcode;
  const row = ROWS[opcode]!;
  if (!row.known) return ill(out, IllReason.Opcode);
  if ((row.requires & ~features) !== 0) return ill(out, IllReason.Unsupported);
  const strict = (features & SmmuFeature.CheckRes0) !== 0;
  if (strict) {
    const reserved = row.reserved;
    for (let i = 0; i < 4; i++) {
      if ((mem[at + i]! & reserved[i]!) !== 0) return ill(out, IllReason.Res0);
    }
  }
  const fv = out.f;
  fv.fill(0);
  const plan = row.plan;
  for (let p = 0; p < plan.length; p += PLAN_STRIDE) {
    const w = at + plan[p + 1]!;
    let v = ((mem[w]! >>> plan[p + 2]!) & plan[p + 3]!) >>> 0;
    const hiMask = plan[p + 4]!;
    if (hiMask !== 0) v += ((mem[w + 1]! & hiMask) >>> 0) * plan[p + 5]!;
    fv[plan[p]!] = v * plan[p + 6]!;
  }
  if (fv[Field.ssec] !== 0) return ill(out, IllReason.SSec);
  if (fv[Field.cs] === 3 || fv[Field.resp] === 3) return ill(out, IllReason.Value);
  if (opcode === Opcode.AtcInv && fv[Field.size]! > ATC_INV_SIZE_ALL) return ill(out, IllReason.Value);
  if (row.ranged) {
    const tg = fv[Field.tg]!;
    const ranged = tg !== 0 || fv[Field.ttl] !== 0 || fv[Field.num] !== 0 || fv[Field.scale] !== 0;
    if ((features & SmmuFeature.Ril) === 0) {
      // Without RIL the four fields are RES0: checked, or ignored (the single-address form).
      if (ranged) {
        if (strict) return ill(out, IllReason.Res0);
        fv[Field.tg] = fv[Field.ttl] = fv[Field.num] = fv[Field.scale] = 0;
      }
    } else if (tg === 0) {
      // NUM, SCALE and TTL are RES0 when TG = 0.
      if (strict && ranged) return ill(out, IllReason.Res0);
    } else {
      // TG = 16 KiB with TTL = 1 is Reserved with DS = 0 and treated as TTL = 0.
      const ttl = tg === Tg.K16 && fv[Field.ttl] === 1 ? 0 : fv[Field.ttl];
      if (ttl === 0 && fv[Field.num] === 0 && fv[Field.scale] === 0) return ill(out, IllReason.Value);
    }
  }
  out.reason = IllReason.None;
  return CERROR_NONE;
}

/**
 * Encodes a command of `opcode` with `fields` (absent ones 0) into `out` at word `at` (4 words;
 * a new array when `out` is omitted) and returns `out`; RES0 bits are written 0. It checks that
 * each value fits its field (addresses must be aligned to their unit), not that the command is
 * legal, so tests can build commands the decoder must reject. CFGI_ALL is
 * `encodeCommand(Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE })`. Throws RangeError on a value
 * that does not fit, or a field the opcode lacks. For guest driver models and tests, not the hot
 * path.
 */
export function encodeCommand<T extends Uint32Array | Int32Array = Uint32Array>(
  opcode: number,
  fields: CommandFields,
  out?: T,
  at = 0,
): T {
  const spec = commandSpec(opcode);
  if (spec === undefined) throw new RangeError(`SMMU command opcode 0x${opcode.toString(16)} is not in the table`);
  for (const name of Object.keys(fields)) {
    if (!spec.fields.some((fs) => fs.name === name)) {
      throw new RangeError(`SMMU ${spec.name} has no field '${name}'`);
    }
  }
  const mem = (out ?? new Uint32Array(4)) as T;
  mem.fill(0, at, at + 4);
  mem[at] = opcode;
  for (const fs of spec.fields) {
    const value = fields[fs.name] ?? 0;
    const bits = fs.hi - fs.lo + 1;
    const raw = value / 2 ** fs.unit;
    if (!Number.isInteger(raw) || raw < 0 || raw >= 2 ** bits) {
      throw new RangeError(`SMMU ${spec.name} field '${fs.name}' = ${value} does not fit bits ${fs.hi}:${fs.lo}`);
    }
    const word = at + 2 * fs.dw + (fs.lo >= 32 ? 1 : 0);
    const shift = fs.lo % 32;
    const loBits = Math.min(fs.hi, fs.lo >= 32 ? 63 : 31) - fs.lo + 1;
    const low = raw % 2 ** loBits;
    mem[word] = (mem[word]! | (low * 2 ** shift)) >>> 0;
    if (loBits < bits) mem[word + 1] = (mem[word + 1]! | Math.floor(raw / 2 ** loBits)) >>> 0;
  }
  return mem;
}
