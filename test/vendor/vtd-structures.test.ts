import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CONTEXT_ENTRY_RSVD,
  ContextEntry,
  decodeContextEntry,
  decodeRootEntry,
  decodeSmContextEntry,
  decodeSmRootEntry,
  encodeContextEntry,
  encodeRootEntry,
  encodeRtaddr,
  encodeSmContextEntry,
  encodeSmRootEntry,
  ROOT_ENTRY_RSVD,
  RootEntry,
  SM_CONTEXT_ENTRY_RSVD,
  SM_ROOT_ENTRY_RSVD,
  SmContextEntry,
  SmRootEntry,
  TTM,
} from '../../src/vendor/vtd/structures.js';
import {
  decodePasidDirEntry,
  decodePasidEntry,
  encodePasidDirEntry,
  encodePasidEntry,
  PASID_DIR_ENTRY_RSVD,
  PASID_ENTRY_RSVD,
  pasidDirEntries,
  PasidDirEntry,
  PasidEntry,
  PGTT,
} from '../../src/vendor/vtd/structures-pasid.js';

/*
 * The VT-d root, context, PASID directory and PASID-table entries (reference/config-formats.md
 * §4): every field at the bit position the reference gives (its "abs" column), and round trips
 * of every structure in both directions.
 */

const RUNS = 200;

/** The whole structure as one little-endian number: bit n of the result is abs bit n. */
function value(w: Int32Array): bigint {
  let v = 0n;
  for (let i = w.length - 1; i >= 0; i--) v = (v << 32n) | BigInt(w[i]! >>> 0);
  return v;
}

const u = (bits: number): fc.Arbitrary<number> => fc.integer({ min: 0, max: 2 ** bits - 1 });
const ptr = fc.tuple(u(20), u(20)).map(([hi, lo]) => hi * 2 ** 32 + lo * 4096);

const rootArb = fc.record({ present: fc.boolean(), ctp: ptr });
const contextArb = fc.record({
  present: fc.boolean(),
  fpd: fc.boolean(),
  tt: u(2),
  slptptr: ptr,
  aw: u(3),
  avail: u(4),
  did: u(16),
});
const smRootArb = fc.record({ lp: fc.boolean(), lctp: ptr, up: fc.boolean(), uctp: ptr });
const smContextArb = fc.record({
  present: fc.boolean(),
  fpd: fc.boolean(),
  dte: fc.boolean(),
  paside: fc.boolean(),
  pre: fc.boolean(),
  pdts: u(3),
  pasidDirPtr: ptr,
  ridPasid: u(20),
  ridPriv: fc.boolean(),
});
const pasidDirArb = fc.record({ present: fc.boolean(), fpd: fc.boolean(), pasidTablePtr: ptr });
const pasidEntryArb = fc.record({
  present: fc.boolean(),
  fpd: fc.boolean(),
  aw: u(3),
  slee: fc.boolean(),
  pgtt: u(3),
  slade: fc.boolean(),
  slptptr: ptr,
  did: u(16),
  pwsnp: fc.boolean(),
  pgsnp: fc.boolean(),
  cd: fc.boolean(),
  emte: fc.boolean(),
  emt: u(3),
  pwt: fc.boolean(),
  pcd: fc.boolean(),
  pat: u(32),
  sre: fc.boolean(),
  ere: fc.boolean(),
  flpm: u(2),
  wpe: fc.boolean(),
  nxe: fc.boolean(),
  smep: fc.boolean(),
  eafe: fc.boolean(),
  flptptr: ptr,
});

interface Codec<T> {
  name: string;
  words: number;
  rsvd: readonly number[];
  arb: fc.Arbitrary<T>;
  make: () => T;
  encode: (e: T, out?: Int32Array, at?: number) => Int32Array;
  decode: (w: Int32Array, at: number, out: T) => T;
}

/** Erases a codec's record type so that the six can share one table. */
function codec<T extends object>(c: Codec<T>): Codec<object> {
  return c as unknown as Codec<object>;
}

const codecs: Codec<object>[] = [
  codec({
    name: 'legacy root entry',
    words: 4,
    rsvd: ROOT_ENTRY_RSVD,
    arb: rootArb,
    make: () => new RootEntry(),
    encode: encodeRootEntry,
    decode: decodeRootEntry,
  }),
  codec({
    name: 'legacy context entry',
    words: 4,
    rsvd: CONTEXT_ENTRY_RSVD,
    arb: contextArb,
    make: () => new ContextEntry(),
    encode: encodeContextEntry,
    decode: decodeContextEntry,
  }),
  codec({
    name: 'scalable-mode root entry',
    words: 4,
    rsvd: SM_ROOT_ENTRY_RSVD,
    arb: smRootArb,
    make: () => new SmRootEntry(),
    encode: encodeSmRootEntry,
    decode: decodeSmRootEntry,
  }),
  codec({
    name: 'scalable-mode context entry',
    words: 8,
    rsvd: SM_CONTEXT_ENTRY_RSVD,
    arb: smContextArb,
    make: () => new SmContextEntry(),
    encode: encodeSmContextEntry,
    decode: decodeSmContextEntry,
  }),
  codec({
    name: 'PASID directory entry',
    words: 2,
    rsvd: PASID_DIR_ENTRY_RSVD,
    arb: pasidDirArb,
    make: () => new PasidDirEntry(),
    encode: encodePasidDirEntry,
    decode: decodePasidDirEntry,
  }),
  codec({
    name: 'PASID-table entry',
    words: 16,
    rsvd: PASID_ENTRY_RSVD,
    arb: pasidEntryArb,
    make: () => new PasidEntry(),
    encode: encodePasidEntry,
    decode: decodePasidEntry,
  }),
];

describe.each(codecs)('$name', (c) => {
  it('decodes what it encodes, field for field', () => {
    const rec = c.make();
    fc.assert(
      fc.property(c.arb, (e) => {
        const w = c.encode(e);
        expect(w.length).toBe(c.words);
        expect(c.decode(w, 0, rec)).toEqual(e);
      }),
      { numRuns: RUNS },
    );
  });

  it('encodes what it decodes, for any words with the reserved bits clear', () => {
    const rec = c.make();
    fc.assert(
      fc.property(fc.int32Array({ minLength: c.words, maxLength: c.words }), (raw) => {
        for (let i = 0; i < c.words; i++) raw[i] = raw[i]! & ~c.rsvd[i]!;
        expect(c.encode(c.decode(raw, 0, rec))).toEqual(raw);
      }),
      { numRuns: RUNS },
    );
  });

  it('decodes into the record it is given, at a word offset, and encodes at one', () => {
    const rec = c.make();
    const big = new Int32Array(c.words + 6).fill(-1);
    const e = fc.sample(c.arb, { numRuns: 1, seed: 7 })[0]!;
    c.encode(e, big, 3);
    expect(big[2]).toBe(-1);
    expect(big[3 + c.words]).toBe(-1);
    expect(c.decode(big, 3, rec)).toBe(rec);
    expect(rec).toEqual(e);
  });
});

describe('field positions (reference abs bit numbers)', () => {
  const bit = (n: number): bigint => 1n << BigInt(n);

  it('RTADDR: address in 63:12, TTM in 11:10', () => {
    expect(value(encodeRtaddr(0x12_3456_7000, TTM.Scalable))).toBe(0x12_3456_7000n | (1n << 10n));
    expect(value(encodeRtaddr(0x1000, TTM.AbortDma))).toBe(0x1000n | (3n << 10n));
  });

  it('legacy root entry: P 0, CTP 63:12, upper qword reserved', () => {
    expect(value(encodeRootEntry({ present: true, ctp: 0xf_edcb_a000 }))).toBe(0xf_edcb_a000n | 1n);
  });

  it('legacy context entry: P 0, FPD 1, TT 3:2, SLPTPTR 63:12, AW 66:64, AVAIL 70:67, DID 87:72', () => {
    const e = { present: true, fpd: true, tt: 2, slptptr: 0x8_0000_5000, aw: 3, avail: 0xa, did: 0xbeef };
    expect(value(encodeContextEntry(e))).toBe(
      1n | bit(1) | (2n << 2n) | 0x8_0000_5000n | (3n << 64n) | (0xan << 67n) | (0xbeefn << 72n),
    );
  });

  it('scalable-mode root entry: LP 0, LCTP 63:12, UP 64, UCTP 127:76', () => {
    const e = { lp: true, lctp: 0x1000, up: true, uctp: 0x3_0000_2000 };
    expect(value(encodeSmRootEntry(e))).toBe(1n | 0x1000n | bit(64) | (0x3_0000_2000n << 64n));
  });

  it('scalable-mode context entry: P 0, FPD 1, DTE 2, PASIDE 3, PRE 4, PDTS 11:9, PASIDDIRPTR 63:12, RID_PASID 83:64, RID_PRIV 84', () => {
    const fields: [keyof SmContextEntry, number | boolean, bigint][] = [
      ['present', true, bit(0)],
      ['fpd', true, bit(1)],
      ['dte', true, bit(2)],
      ['paside', true, bit(3)],
      ['pre', true, bit(4)],
      ['pdts', 5, 5n << 9n],
      ['pasidDirPtr', 0xa_bcde_f000, 0xa_bcde_f000n],
      ['ridPasid', 0xabcde, 0xabcden << 64n],
      ['ridPriv', true, bit(84)],
    ];
    for (const [field, v, expected] of fields) {
      const e = Object.assign(new SmContextEntry(), { [field]: v });
      expect(value(encodeSmContextEntry(e)), field).toBe(expected);
    }
  });

  it('PASID directory entry: P 0, FPD 1, SMPTBLPTR 63:12', () => {
    expect(value(encodePasidDirEntry({ present: true, fpd: true, pasidTablePtr: 0x7_0000_3000 }))).toBe(
      0x7_0000_3000n | 3n,
    );
  });

  it('PASID-table entry: every field at the abs position of §4.4', () => {
    const fields: [keyof PasidEntry, number | boolean, bigint][] = [
      ['present', true, bit(0)],
      ['fpd', true, bit(1)],
      ['aw', 5, 5n << 2n],
      ['slee', true, bit(5)],
      ['pgtt', PGTT.Nested, 3n << 6n],
      ['slade', true, bit(9)],
      ['slptptr', 0xf_ffff_f000, 0xf_ffff_f000n],
      ['did', 0xffff, 0xffffn << 64n],
      ['pwsnp', true, bit(87)],
      ['pgsnp', true, bit(88)],
      ['cd', true, bit(89)],
      ['emte', true, bit(90)],
      ['emt', 7, 7n << 91n],
      ['pwt', true, bit(94)],
      ['pcd', true, bit(95)],
      ['pat', 0xfedc_ba98, 0xfedc_ba98n << 96n],
      ['sre', true, bit(128)],
      ['ere', true, bit(129)],
      ['flpm', 3, 3n << 130n],
      ['wpe', true, bit(132)],
      ['nxe', true, bit(133)],
      ['smep', true, bit(134)],
      ['eafe', true, bit(135)],
      ['flptptr', 0xf_ffff_f000, 0xf_ffff_f000n << 128n],
    ];
    const rec = new PasidEntry();
    for (const [field, v, expected] of fields) {
      const e = Object.assign(new PasidEntry(), { [field]: v });
      const w = encodePasidEntry(e);
      expect(value(w), field).toBe(expected);
      expect(decodePasidEntry(w, 0, rec)[field], field).toBe(v);
    }
  });

  it('the reserved masks are exactly the bits no field owns, plus pointer bits 63:52', () => {
    const full = (words: number): Int32Array => new Int32Array(words).fill(-1);
    const owned = (c: Codec<object>): Int32Array => c.encode(c.decode(full(c.words), 0, c.make()));
    for (const c of codecs) {
      const w = owned(c);
      for (let i = 0; i < c.words; i++) expect(w[i]! | c.rsvd[i]!, `${c.name} word ${i}`).toBe(-1);
      for (let i = 0; i < c.words; i++) expect(w[i]! & c.rsvd[i]!, `${c.name} word ${i}`).toBe(0);
    }
  });

  it('a PDTS of n gives 2^(n+7) directory entries', () => {
    expect([0, 1, 7].map(pasidDirEntries)).toEqual([128, 256, 16384]);
  });
});

describe('encoders refuse values their fields cannot hold', () => {
  it.each([
    ['an unaligned pointer', () => encodeRootEntry({ present: true, ctp: 0x1234 })],
    ['a pointer of 2^52', () => encodePasidDirEntry({ present: true, fpd: false, pasidTablePtr: 2 ** 52 })],
    ['a 17-bit DID', () => encodeContextEntry(Object.assign(new ContextEntry(), { did: 0x1_0000 }))],
    ['a 4-bit TT', () => encodeContextEntry(Object.assign(new ContextEntry(), { tt: 4 }))],
    ['a 21-bit RID_PASID', () => encodeSmContextEntry(Object.assign(new SmContextEntry(), { ridPasid: 0x10_0000 }))],
    ['a PGTT of 8', () => encodePasidEntry(Object.assign(new PasidEntry(), { pgtt: 8 }))],
    ['an FLPM of 4', () => encodePasidEntry(Object.assign(new PasidEntry(), { flpm: 4 }))],
    ['a negative PAT', () => encodePasidEntry(Object.assign(new PasidEntry(), { pat: -1 }))],
    ['a TTM of 4', () => encodeRtaddr(0x1000, 4)],
  ])('%s is a RangeError', (_what, encode) => {
    expect(encode).toThrow(RangeError);
  });
});
