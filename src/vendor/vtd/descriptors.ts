/**
 * Intel VT-d invalidation-queue descriptors (reference/viommu-queues.md §2.1–2.3, §6.2): one
 * table row per type, and a decoder and encoder driven by that table.
 *
 * A descriptor is 128 bits (qw0, qw1) or, when IQA.DW = 1, 256 bits (qw0..qw3). In guest memory
 * qword q is 32-bit word 2q (bits 31:0) followed by word 2q + 1 (bits 63:32). The type is qw0
 * bits 3:0, with bits 11:9 as type bits 6:4 (QEMU's `VTD_INV_DESC_TYPE`).
 *
 * Bit positions follow Linux's `QI_*` macros and the VT-d spec; where QEMU's reserved masks
 * disagree (it rejects PFSID in 0x3/0x8 and PDP in 0x9), the table follows the reference, which
 * lists them as fields. 0xA (page stream response) is legacy and decodes as an unknown type.
 */

/** Descriptor types (qw0 bits 3:0 | bits 11:9 << 4). */
export const DescType = {
  ContextCache: 0x1,
  Iotlb: 0x2,
  DeviceTlb: 0x3,
  Iec: 0x4,
  Wait: 0x5,
  PasidIotlb: 0x6,
  PasidCache: 0x7,
  PasidDeviceTlb: 0x8,
  PageGroupResponse: 0x9,
} as const;

/**
 * Field slots of a decoded descriptor (`VtdDescriptor.f`); the names are also the keys of
 * `DescriptorFields`. Names are the spec's, lower-cased. A field reads as its bits shifted down,
 * except that `addr` reads as a byte address (Addr[63:12] << 12, exact: it has at most 52
 * significant bits) and `statusAddrLo` as the low word of the wait's status address.
 */
export const Field = {
  /** Granularity (0x1, 0x2, 0x6, 0x7: 2 bits; 0x4: 1 bit; 0x8: qw1 bit 0, all PASIDs). */
  g: 0,
  did: 1,
  sid: 2,
  /** Function mask (0x1): how many of the function number's high bits are ignored. */
  fm: 3,
  /** Drain writes / drain reads (0x2). */
  dw: 4,
  dr: 5,
  /** Address mask: the invalidation covers 2^AM pages aligned on 2^AM. */
  am: 6,
  /** Invalidation hint: only leaf entries changed. */
  ih: 7,
  /** Byte address, 4 KiB aligned (Addr[63:12]). */
  addr: 8,
  /** Device-TLB size bit. */
  s: 9,
  /** Max invalidations pending (queue depth) of the ATS device. */
  mip: 10,
  /** Physical-function SID bits 3:0 and 15:4 (0x3, 0x8). */
  pfsidLo: 11,
  pfsidHi: 12,
  pasid: 13,
  /** Interrupt index mask and index (0x4). */
  im: 14,
  iidx: 15,
  /** Wait flags: interrupt, status write, fence, page-request drain. */
  if: 16,
  sw: 17,
  fn: 18,
  pd: 19,
  /** Wait status data, and its status address: low word (bits 1:0 zero) and high word. */
  statusData: 20,
  statusAddrLo: 21,
  statusAddrHi: 22,
  /** Page group response: PASID present, private data present, response code, requester ID. */
  pp: 23,
  pdp: 24,
  rc: 25,
  rid: 26,
  /** Page group response: last page in group, page request group index. */
  lpig: 27,
  prgi: 28,
  /** Page group response private data: qw2 bits 31:0, 63:32, qw3 bits 31:0, 63:32. */
  priv0: 29,
  priv1: 30,
  priv2: 31,
  priv3: 32,
} as const;

/** A field name. */
export type FieldName = keyof typeof Field;

/** Field values to encode, by name; absent fields are 0. */
export type DescriptorFields = { readonly [K in FieldName]?: number };

/** The number of field slots. */
export const FIELD_COUNT = Object.keys(Field).length;

/** One field of a descriptor: bits [hi:lo] of qword `qw`, read as `bits << unit`. */
export interface FieldSpec {
  readonly name: FieldName;
  readonly qw: number;
  readonly hi: number;
  readonly lo: number;
  readonly unit: number;
}

/** One descriptor type: its fields, reserved bits, and where it is legal. */
export interface DescriptorSpec {
  readonly type: number;
  readonly name: string;
  readonly fields: readonly FieldSpec[];
  /** Reserved bits of qw0..qw3 (set => IQE). qw2/qw3 are read only in 256-bit mode. */
  readonly reserved: readonly [bigint, bigint, bigint, bigint];
  /** Legal in a 128-bit (IQA.DW = 0) and in a 256-bit queue. */
  readonly in128: boolean;
  readonly in256: boolean;
  /** Defined granularities: bit g set when G = g is defined (1 for types without G). */
  readonly validG: number;
  /** The G of the page-selective form, whose AM must not exceed CAP.MAMV; -1 if none. */
  readonly psiG: number;
}

/** Bits 3:0 and 11:9 of qw0: the type, in every row. */
export const TYPE_BITS = 0xe0fn;

const ALL = 0xffff_ffff_ffff_ffffn;

function f(name: FieldName, qw: number, hi: number, lo: number = hi, unit = 0): FieldSpec {
  return { name, qw, hi, lo, unit };
}

/**
 * The descriptor table (reference/viommu-queues.md §2.2; "keep sorted" by type). The PASID
 * descriptors (0x6..0x9) exist only in scalable mode, which uses 256-bit descriptors (QEMU
 * rejects them in a 128-bit queue); the legacy ones are legal in both widths, their qw2/qw3
 * reserved. No type is 256-bit-illegal, but the decoder checks both directions.
 */
export const DESCRIPTORS: readonly DescriptorSpec[] = [
  {
    type: DescType.ContextCache,
    name: 'context-cache',
    fields: [f('g', 0, 5, 4), f('did', 0, 31, 16), f('sid', 0, 47, 32), f('fm', 0, 49, 48)],
    reserved: [0xfffc_0000_0000_f1c0n, ALL, ALL, ALL],
    in128: true,
    in256: true,
    validG: 0b1110,
    psiG: -1,
  },
  {
    type: DescType.Iotlb,
    name: 'iotlb',
    fields: [
      f('g', 0, 5, 4),
      f('dw', 0, 6),
      f('dr', 0, 7),
      f('did', 0, 31, 16),
      f('am', 1, 5, 0),
      f('ih', 1, 6),
      f('addr', 1, 63, 12, 12),
    ],
    reserved: [0xffff_ffff_0000_f100n, 0xf80n, ALL, ALL],
    in128: true,
    in256: true,
    validG: 0b1110,
    psiG: 3,
  },
  {
    type: DescType.DeviceTlb,
    name: 'device-tlb',
    fields: [
      f('pfsidLo', 0, 15, 12),
      f('mip', 0, 20, 16),
      f('sid', 0, 47, 32),
      f('pfsidHi', 0, 63, 52),
      f('s', 1, 0),
      f('addr', 1, 63, 12, 12),
    ],
    reserved: [0x000f_0000_ffe0_01f0n, 0xffen, ALL, ALL],
    in128: true,
    in256: true,
    validG: 1,
    psiG: -1,
  },
  {
    type: DescType.Iec,
    name: 'iec',
    fields: [f('g', 0, 4), f('im', 0, 31, 27), f('iidx', 0, 47, 32)],
    reserved: [0xffff_0000_07ff_f1e0n, ALL, ALL, ALL],
    in128: true,
    in256: true,
    validG: 0b11,
    psiG: -1,
  },
  {
    type: DescType.Wait,
    name: 'wait',
    fields: [
      f('if', 0, 4),
      f('sw', 0, 5),
      f('fn', 0, 6),
      f('pd', 0, 7),
      f('statusData', 0, 63, 32),
      f('statusAddrLo', 1, 31, 2, 2),
      f('statusAddrHi', 1, 63, 32),
    ],
    reserved: [0x0000_0000_ffff_f100n, 0x3n, ALL, ALL],
    in128: true,
    in256: true,
    validG: 1,
    psiG: -1,
  },
  {
    type: DescType.PasidIotlb,
    name: 'pasid-iotlb',
    fields: [
      f('g', 0, 5, 4),
      f('did', 0, 31, 16),
      f('pasid', 0, 51, 32),
      f('am', 1, 5, 0),
      f('ih', 1, 6),
      f('addr', 1, 63, 12, 12),
    ],
    reserved: [0xfff0_0000_0000_f1c0n, 0xf80n, ALL, ALL],
    in128: false,
    in256: true,
    validG: 0b1100,
    psiG: 3,
  },
  {
    type: DescType.PasidCache,
    name: 'pasid-cache',
    fields: [f('g', 0, 5, 4), f('did', 0, 31, 16), f('pasid', 0, 51, 32)],
    reserved: [0xfff0_0000_0000_f1c0n, ALL, ALL, ALL],
    in128: false,
    in256: true,
    validG: 0b1011,
    psiG: -1,
  },
  {
    type: DescType.PasidDeviceTlb,
    name: 'pasid-device-tlb',
    fields: [
      f('mip', 0, 8, 4),
      f('pfsidLo', 0, 15, 12),
      f('sid', 0, 31, 16),
      f('pasid', 0, 51, 32),
      f('pfsidHi', 0, 63, 52),
      f('g', 1, 0),
      f('s', 1, 11),
      f('addr', 1, 63, 12, 12),
    ],
    reserved: [0n, 0x7fen, ALL, ALL],
    in128: false,
    in256: true,
    validG: 0b11,
    psiG: -1,
  },
  {
    type: DescType.PageGroupResponse,
    name: 'page-group-response',
    fields: [
      f('pp', 0, 4),
      f('pdp', 0, 5),
      f('rc', 0, 15, 12),
      f('rid', 0, 31, 16),
      f('pasid', 0, 51, 32),
      f('lpig', 1, 2),
      f('prgi', 1, 11, 3),
      f('priv0', 2, 31, 0),
      f('priv1', 2, 63, 32),
      f('priv2', 3, 31, 0),
      f('priv3', 3, 63, 32),
    ],
    reserved: [0xfff0_0000_0000_01c0n, 0xffff_ffff_ffff_f003n, 0n, 0n],
    in128: false,
    in256: true,
    validG: 1,
    psiG: -1,
  },
];

/** G of the context-cache (0x1) and IOTLB (0x2) descriptors (Linux `QI_*_GRAN`). */
export const GRAN = { Global: 1, Domain: 2, Selective: 3 } as const;

/** G of the PASID-cache descriptor (0x7) (Linux `QI_PC_*`). */
export const PC_GRAN = { AllPasids: 0, PasidSelective: 1, Global: 3 } as const;

/** G of the PASID-based IOTLB descriptor (0x6): every page of one PASID, or a page range of it. */
export const PIOTLB_GRAN = { Pasid: 2, Pages: 3 } as const;

/** Decode status: Ok, or why the descriptor is invalid (the queue then reports IQE). */
export const DescStatus = {
  Ok: 0,
  /** Type 0, 0xA (legacy page stream response) or any type not in the table. */
  UnknownType: 1,
  /** A 256-bit-only type in a 128-bit queue, or the reverse. */
  WidthMismatch: 2,
  /** A reserved bit is set (in qw2/qw3 too, in a 256-bit queue). */
  ReservedBits: 3,
  /** G names no granularity the type defines. */
  InvalidGranularity: 4,
  /** A page-selective AM above CAP.MAMV. */
  AmAboveMamv: 5,
} as const;

/** A decode status. */
export type DescStatus = (typeof DescStatus)[keyof typeof DescStatus];

/**
 * IQER.IQEI (bits 3:0) to report per status: 3 invalid descriptor type, 5 invalid descriptor
 * width, 4 reserved field violation (the VT-d spec's IQER encodings, as VirtualBox's `VTDIQEI`
 * lists them; the reference names no codes). A bad G or AM is reported as a reserved-field
 * violation: both are field values the hardware does not define.
 */
export const IQEI_OF_STATUS: readonly number[] = [0, 3, 5, 4, 4, 4];

/** The IQER.IQEI code for a decode status (0 for Ok). */
export function iqeiOf(status: DescStatus): number {
  return IQEI_OF_STATUS[status]!;
}

/** A decoded descriptor, reused across decodes: the decoder allocates nothing. */
export class VtdDescriptor {
  /** Type (valid even when the status is UnknownType). */
  type = 0;
  /** Read from a 256-bit queue. */
  wide = false;
  /** Field values by `Field` slot; fields the type lacks read 0. */
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
  readonly in128: boolean;
  readonly in256: boolean;
  readonly validG: number;
  readonly psiG: number;
  /** Reserved masks per 32-bit word (8 words). */
  readonly reserved: Int32Array;
  /** PLAN_STRIDE numbers per field. */
  readonly plan: Float64Array;
}

function maskOf(bits: number): number {
  return bits >= 32 ? 0xffffffff : 2 ** bits - 1;
}

function compile(spec: DescriptorSpec | undefined): CompiledRow {
  const reserved = new Int32Array(8);
  const fields = spec?.fields ?? [];
  const plan = new Float64Array(fields.length * PLAN_STRIDE);
  if (spec !== undefined) {
    for (let q = 0; q < 4; q++) {
      const m = spec.reserved[q]!;
      reserved[2 * q] = Number(m & 0xffff_ffffn) | 0;
      reserved[2 * q + 1] = Number(m >> 32n) | 0;
    }
  }
  fields.forEach((fs, i) => {
    const word = 2 * fs.qw + (fs.lo >= 32 ? 1 : 0);
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
    in128: spec?.in128 ?? false,
    in256: spec?.in256 ?? false,
    validG: spec?.validG ?? 0,
    psiG: spec?.psiG ?? -1,
    reserved,
    plan,
  };
}

/** Types are 7 bits; every slot holds a row (unknown types a sentinel), so lookups stay monomorphic. */
const ROWS: readonly CompiledRow[] = Array.from({ length: 128 }, (_, type) =>
  compile(DESCRIPTORS.find((d) => d.type === type)),
);

/** The table row of `type`, or undefined for an unknown type. */
export function descriptorSpec(type: number): DescriptorSpec | undefined {
  return DESCRIPTORS.find((d) => d.type === type);
}

/** The type of a descriptor whose first word (qw0 bits 31:0) is `w0`. */
export function descriptorType(w0: number): number {
  return (w0 & 0xf) | ((w0 >>> 5) & 0x70);
}

/**
 * Decodes the descriptor at word `at` of `mem` (4 words, or 8 when `wide`) into `out`, checking
 * it as the hardware does before executing it (reference §2.3): known type, legal in this queue
 * width, no reserved bit set, a defined G, and for page-selective forms AM <= `mamv` (CAP.MAMV).
 * Allocation-free. On a non-Ok status `out.type` is set and the fields are unspecified.
 */
export function decodeDescriptor(
  mem: Uint32Array | Int32Array,
  at: number,
  wide: boolean,
  mamv: number,
  out: VtdDescriptor,
): DescStatus {
  const type = descriptorType(mem[at]!);
  out.type = type;
  out.wide = wide;
  const row = ROWS[type]!;
  if (!row.known) return DescStatus.UnknownType;
  if (wide ? !row.in256 : !row.in128) return DescStatus.WidthMismatch;
  const words = wide ? 8 : 4;
  const reserved = row.reserved;
  for (let i = 0; i < words; i++) {
    if ((mem[at + i]! & reserved[i]!) !== 0) return DescStatus.ReservedBits;
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
  const g = fv[Field.g]!;
  if (((row.validG >>> g) & 1) === 0) return DescStatus.InvalidGranularity;
  if (g === row.psiG && fv[Field.am]! > mamv) return DescStatus.AmAboveMamv;
  return DescStatus.Ok;
}

/**
 * Encodes a descriptor of `type` with `fields` (absent ones 0) into `mem` at word `at`: 4 words,
 * or 8 when `wide`; reserved bits are written 0. It checks that each value fits its field (and
 * that qw2/qw3 fields are 0 in a 128-bit queue), not whether the type is legal in that width, so
 * tests can build descriptors the decoder must reject. Throws RangeError on a value that does not
 * fit, or a field the type lacks. For guest driver models and tests, not the hot path.
 */
export function encodeDescriptor(
  type: number,
  fields: DescriptorFields,
  mem: Uint32Array,
  at: number,
  wide: boolean,
): void {
  const spec = descriptorSpec(type);
  if (spec === undefined) throw new RangeError(`VT-d descriptor type ${type} is not in the table`);
  for (const name of Object.keys(fields)) {
    if (!spec.fields.some((fs) => fs.name === name)) {
      throw new RangeError(`VT-d ${spec.name} descriptor has no field '${name}'`);
    }
  }
  const words = wide ? 8 : 4;
  mem.fill(0, at, at + words);
  mem[at] = (type & 0xf) | ((type >>> 4) << 9);
  for (const fs of spec.fields) {
    const value = fields[fs.name] ?? 0;
    const unit = 2 ** fs.unit;
    const bits = fs.hi - fs.lo + 1;
    const raw = value / unit;
    if (!Number.isInteger(raw) || raw < 0 || raw >= 2 ** bits) {
      throw new RangeError(`VT-d ${spec.name} field '${fs.name}' = ${value} does not fit bits ${fs.hi}:${fs.lo}`);
    }
    if (fs.qw * 2 >= words) {
      if (raw !== 0) throw new RangeError(`VT-d ${spec.name} field '${fs.name}' needs a 256-bit descriptor`);
      continue;
    }
    const word = at + 2 * fs.qw + (fs.lo >= 32 ? 1 : 0);
    const shift = fs.lo % 32;
    const loBits = Math.min(fs.hi, fs.lo >= 32 ? 63 : 31) - fs.lo + 1;
    const low = raw % 2 ** loBits;
    mem[word] = (mem[word]! | (low * 2 ** shift)) >>> 0;
    if (loBits < bits) mem[word + 1] = (mem[word + 1]! | Math.floor(raw / 2 ** loBits)) >>> 0;
  }
}
