import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { STRTAB_FMT } from '../../src/vendor/smmuv3/regs-defs.js';
import {
  decodeL1Std,
  decodeSte,
  decodeStrtabBaseCfg,
  encodeL1Std,
  encodeSte,
  encodeStrtabBase,
  encodeStrtabBaseCfg,
  L1Std,
  L1STD_RSVD,
  s2TgGranule,
  Ste,
  STE_CONFIG,
  STE_RSVD,
  STRTAB_BASE_CFG_RSVD,
  STRTAB_BASE_RSVD,
  StrtabBaseCfg,
  strtabBaseAddr,
} from '../../src/vendor/smmuv3/structures.js';
import {
  Cd,
  CD_RSVD,
  cdLeafBits,
  cdTgGranule,
  decodeCd,
  decodeL1Cd,
  encodeCd,
  encodeL1Cd,
  L1Cd,
  L1CD_RSVD,
} from '../../src/vendor/smmuv3/structures-cd.js';

/*
 * The SMMUv3 stream-table and CD-table structures (reference/config-formats.md §3): every field
 * at the bit position the reference gives (its "abs" column), round trips of every structure in
 * both directions, and the reserved masks.
 */

const RUNS = 200;

/** The whole structure as one little-endian number: bit n of the result is abs bit n. */
function value(w: Int32Array): bigint {
  let v = 0n;
  for (let i = w.length - 1; i >= 0; i--) v = (v << 32n) | BigInt(w[i]! >>> 0);
  return v;
}

/**
 * A field: its name, the abs bit of its least significant bit, its width, and its kind. An
 * address holds bits 51:(lo mod 64) of a naturally aligned address.
 */
type Field = [name: string, lo: number, width: number, kind: 'bool' | 'num' | 'addr'];

/** STE fields at the abs positions of §3.2 (S2HWU 75:72 from IHI 0070). */
const STE_FIELDS: Field[] = [
  ['valid', 0, 1, 'bool'],
  ['config', 1, 3, 'num'],
  ['s1Fmt', 4, 2, 'num'],
  ['s1ContextPtr', 6, 46, 'addr'],
  ['s1CdMax', 59, 5, 'num'],
  ['s1Dss', 64, 2, 'num'],
  ['s1Cir', 66, 2, 'num'],
  ['s1Cor', 68, 2, 'num'],
  ['s1Csh', 70, 2, 'num'],
  ['s2Hwu', 72, 4, 'num'],
  ['mev', 83, 1, 'bool'],
  ['s2Fwb', 89, 1, 'bool'],
  ['s1StallD', 91, 1, 'bool'],
  ['eats', 92, 2, 'num'],
  ['strw', 94, 2, 'num'],
  ['memAttr', 96, 4, 'num'],
  ['mtCfg', 100, 1, 'bool'],
  ['allocCfg', 101, 4, 'num'],
  ['shCfg', 108, 2, 'num'],
  ['nsCfg', 110, 2, 'num'],
  ['privCfg', 112, 2, 'num'],
  ['instCfg', 114, 2, 'num'],
  ['s2Vmid', 128, 16, 'num'],
  ['s2T0sz', 160, 6, 'num'],
  ['s2Sl0', 166, 2, 'num'],
  ['s2Ir0', 168, 2, 'num'],
  ['s2Or0', 170, 2, 'num'],
  ['s2Sh0', 172, 2, 'num'],
  ['s2Tg', 174, 2, 'num'],
  ['s2Ps', 176, 3, 'num'],
  ['s2Aa64', 179, 1, 'bool'],
  ['s2Endi', 180, 1, 'bool'],
  ['s2Affd', 181, 1, 'bool'],
  ['s2Ptw', 182, 1, 'bool'],
  ['s2Hd', 183, 1, 'bool'],
  ['s2Ha', 184, 1, 'bool'],
  ['s2S', 185, 1, 'bool'],
  ['s2R', 186, 1, 'bool'],
  ['s2Ttb', 196, 48, 'addr'],
];

/** CD fields at the abs positions of §3.4 (AMAIR in qw4). */
const CD_FIELDS: Field[] = [
  ['t0sz', 0, 6, 'num'],
  ['tg0', 6, 2, 'num'],
  ['ir0', 8, 2, 'num'],
  ['or0', 10, 2, 'num'],
  ['sh0', 12, 2, 'num'],
  ['epd0', 14, 1, 'bool'],
  ['endi', 15, 1, 'bool'],
  ['t1sz', 16, 6, 'num'],
  ['tg1', 22, 2, 'num'],
  ['ir1', 24, 2, 'num'],
  ['or1', 26, 2, 'num'],
  ['sh1', 28, 2, 'num'],
  ['epd1', 30, 1, 'bool'],
  ['valid', 31, 1, 'bool'],
  ['ips', 32, 3, 'num'],
  ['affd', 35, 1, 'bool'],
  ['wxn', 36, 1, 'bool'],
  ['uwxn', 37, 1, 'bool'],
  ['tbi', 38, 2, 'num'],
  ['pan', 40, 1, 'bool'],
  ['aa64', 41, 1, 'bool'],
  ['hd', 42, 1, 'bool'],
  ['ha', 43, 1, 'bool'],
  ['s', 44, 1, 'bool'],
  ['r', 45, 1, 'bool'],
  ['a', 46, 1, 'bool'],
  ['aset', 47, 1, 'bool'],
  ['asid', 48, 16, 'num'],
  ['nscfg0', 64, 1, 'bool'],
  ['had0', 65, 1, 'bool'],
  ['ttb0', 68, 48, 'addr'],
  ['nscfg1', 128, 1, 'bool'],
  ['had1', 129, 1, 'bool'],
  ['ttb1', 132, 48, 'addr'],
  ['mair0', 192, 32, 'num'],
  ['mair1', 224, 32, 'num'],
  ['amair0', 256, 32, 'num'],
  ['amair1', 288, 32, 'num'],
];

const L1STD_FIELDS: Field[] = [
  ['span', 0, 5, 'num'],
  ['l2Ptr', 6, 46, 'addr'],
];

const L1CD_FIELDS: Field[] = [
  ['valid', 0, 1, 'bool'],
  ['l2Ptr', 12, 40, 'addr'],
];

/** The largest value of a field, as the record holds it. */
function maxOf([, lo, width, kind]: Field): number | boolean {
  if (kind === 'bool') return true;
  const n = 2 ** width - 1;
  return kind === 'addr' ? n * 2 ** (lo % 64) : n; // an address keeps its alignment: bits 51:(lo mod 64)
}

/** An arbitrary for one field. */
function arbOf([, lo, width, kind]: Field): fc.Arbitrary<number | boolean> {
  if (kind === 'bool') return fc.boolean();
  const n = fc.integer({ min: 0, max: 2 ** width - 1 });
  return kind === 'addr' ? n.map((x) => x * 2 ** (lo % 64)) : n;
}

interface Codec<T> {
  name: string;
  words: number;
  rsvd: readonly number[];
  fields: Field[];
  make: () => T;
  encode: (e: T, out?: Int32Array, at?: number) => Int32Array;
  decode: (w: Int32Array, at: number, out: T) => T;
}

/** Erases a codec's record type so that the four can share one table. */
function codec<T extends object>(c: Codec<T>): Codec<object> {
  return c as unknown as Codec<object>;
}

const codecs: Codec<object>[] = [
  codec({
    name: 'STE',
    words: 16,
    rsvd: STE_RSVD,
    fields: STE_FIELDS,
    make: () => new Ste(),
    encode: encodeSte,
    decode: decodeSte,
  }),
  codec({
    name: 'CD',
    words: 16,
    rsvd: CD_RSVD,
    fields: CD_FIELDS,
    make: () => new Cd(),
    encode: encodeCd,
    decode: decodeCd,
  }),
  codec({
    name: 'L1STD',
    words: 2,
    rsvd: L1STD_RSVD,
    fields: L1STD_FIELDS,
    make: () => new L1Std(),
    encode: encodeL1Std,
    decode: decodeL1Std,
  }),
  codec({
    name: 'L1CD',
    words: 2,
    rsvd: L1CD_RSVD,
    fields: L1CD_FIELDS,
    make: () => new L1Cd(),
    encode: encodeL1Cd,
    decode: decodeL1Cd,
  }),
];

const recordArb = (fields: Field[]): fc.Arbitrary<Record<string, number | boolean>> =>
  fc.record(Object.fromEntries(fields.map((f) => [f[0], arbOf(f)])));

describe.each(codecs)('$name', (c) => {
  it('has every field of the record in its field table', () => {
    expect(Object.keys(c.make()).sort()).toEqual(c.fields.map((f) => f[0]).sort());
  });

  it('puts every field at its abs bit position, alone, and decodes it back', () => {
    const rec = c.make();
    for (const f of c.fields) {
      const [name, lo, width] = f;
      const e = Object.assign(c.make(), { [name]: maxOf(f) });
      const w = c.encode(e);
      expect(value(w), name).toBe(((1n << BigInt(width)) - 1n) << BigInt(lo));
      expect((c.decode(w, 0, rec) as Record<string, unknown>)[name], name).toBe(maxOf(f));
    }
  });

  it('decodes what it encodes, field for field', () => {
    const rec = c.make();
    fc.assert(
      fc.property(recordArb(c.fields), (e) => {
        const w = c.encode(Object.assign(c.make(), e));
        expect(w.length).toBe(c.words);
        expect(c.decode(w, 0, rec)).toEqual(Object.assign(c.make(), e));
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

  it('ignores reserved bits when decoding and writes them as 0', () => {
    const a = c.make();
    const b = c.make();
    fc.assert(
      fc.property(fc.int32Array({ minLength: c.words, maxLength: c.words }), (raw) => {
        const clean = raw.map((x, i) => x & ~c.rsvd[i]!);
        expect(c.decode(raw, 0, a)).toEqual(c.decode(clean, 0, b));
        const w = c.encode(a);
        for (let i = 0; i < c.words; i++) expect(w[i]! & c.rsvd[i]!).toBe(0);
      }),
      { numRuns: RUNS },
    );
  });

  it('the reserved mask is exactly the bits no field owns', () => {
    const owned = c.encode(c.decode(new Int32Array(c.words).fill(-1), 0, c.make()));
    for (let i = 0; i < c.words; i++) expect(owned[i]! | 0, `word ${i}`).toBe(~c.rsvd[i]! | 0);
  });

  it('decodes into the record it is given, at a word offset, and encodes at one', () => {
    const rec = c.make();
    const big = new Int32Array(c.words + 6).fill(-1);
    const e = Object.assign(c.make(), fc.sample(recordArb(c.fields), { numRuns: 1, seed: 7 })[0]!);
    c.encode(e, big, 3);
    expect(big[2]).toBe(-1);
    expect(big[3 + c.words]).toBe(-1);
    expect(c.decode(big, 3, rec)).toBe(rec);
    expect(rec).toEqual(e);
  });

  it('refuses a field too wide for its bits, and an address misaligned or above 2^52', () => {
    for (const f of c.fields) {
      const [name, lo, width, kind] = f;
      if (kind === 'bool') continue;
      const tooBig = kind === 'addr' ? 2 ** 52 : 2 ** width;
      expect(() => c.encode(Object.assign(c.make(), { [name]: tooBig })), name).toThrow(RangeError);
      expect(() => c.encode(Object.assign(c.make(), { [name]: -1 })), name).toThrow(RangeError);
      if (kind === 'addr') {
        expect(() => c.encode(Object.assign(c.make(), { [name]: 2 ** ((lo % 64) - 1) })), name).toThrow(RangeError);
      }
    }
  });
});

describe('stream table registers (§3.1)', () => {
  it('STRTAB_BASE: ADDR 51:6, RA 62, the rest reserved', () => {
    const w = encodeStrtabBase(0xf_ffff_ffff_ffc0, true);
    expect(value(w)).toBe(0xf_ffff_ffff_ffc0n | (1n << 62n));
    expect(strtabBaseAddr(w[0]!, w[1]!)).toBe(0xf_ffff_ffff_ffc0);
    expect(value(encodeStrtabBase(0x1_2345_6780, false))).toBe(0x1_2345_6780n);
    expect(value(new Int32Array(STRTAB_BASE_RSVD))).toBe(0x3fn | (0x3ffn << 52n) | (1n << 63n));
    // Reserved bits do not leak into the address.
    expect(strtabBaseAddr(-1, -1)).toBe(2 ** 52 - 64);
    expect(() => encodeStrtabBase(0x1020, false)).toThrow(RangeError);
  });

  it('STRTAB_BASE_CFG: LOG2SIZE 5:0, SPLIT 10:6, FMT 17:16', () => {
    const v = encodeStrtabBaseCfg({ log2size: 0x3f, split: 0x1f, fmt: 3 });
    expect(v >>> 0).toBe(0x3ffff & ~0xf800);
    expect(encodeStrtabBaseCfg({ log2size: 16, split: 8, fmt: STRTAB_FMT.TwoLevel })).toBe(16 | (8 << 6) | (1 << 16));
    expect(~STRTAB_BASE_CFG_RSVD >>> 0).toBe(v >>> 0);
    const out = new StrtabBaseCfg();
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 0, max: 31 }),
        fc.integer({ min: 0, max: 3 }),
        (l, s, f) => {
          const cfg = { log2size: l, split: s, fmt: f };
          expect(decodeStrtabBaseCfg(encodeStrtabBaseCfg(cfg) | STRTAB_BASE_CFG_RSVD, out)).toEqual(
            Object.assign(new StrtabBaseCfg(), cfg),
          );
        },
      ),
      { numRuns: RUNS },
    );
    expect(() => encodeStrtabBaseCfg({ log2size: 64, split: 0, fmt: 0 })).toThrow(RangeError);
  });
});

describe('encodings', () => {
  it('STE.Config values are Linux STRTAB_STE_0_CFG_*', () => {
    expect(STE_CONFIG).toEqual({ Abort: 0, Bypass: 4, S1: 5, S2: 6, Nested: 7 });
  });

  it('S2TG, TG0 and TG1 select granules as QEMU tg2granule does', () => {
    expect([0, 1, 2, 3].map(s2TgGranule)).toEqual([12, 16, 14, 0]);
    expect([0, 1, 2, 3].map((tg) => cdTgGranule(tg, false))).toEqual([12, 16, 14, 0]);
    expect([0, 1, 2, 3].map((tg) => cdTgGranule(tg, true))).toEqual([0, 14, 12, 16]);
  });

  it('a 2-level CD table indexes 64 CDs per leaf for S1Fmt 1 and 1024 for S1Fmt 2', () => {
    expect([0, 1, 2, 3].map(cdLeafBits)).toEqual([0, 6, 10, 0]);
  });
});
