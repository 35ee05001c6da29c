/*
 * Decoded fields of one page-table entry, per format (reference/config-formats.md §1.2–§1.4,
 * §2.1, §2.2; the mock format of src/pgtable/mock.ts), from the bit definitions the walkers use.
 * `kind` says what the walker makes of the entry at its level; `address` is the next table or the
 * output frame as the entry holds it (a large leaf's walker aligns it down to the leaf size).
 */
import { ARM_HI, ARM_LO } from '../pgtable/arm/desc.js';
import { MOCK_DESC } from '../pgtable/mock.js';
import { SL_HI, SL_LO, X86_HI, X86_LO } from '../pgtable/x86/desc.js';
import type { Fields, PteFormat } from './types.js';

const TWO_32 = 2 ** 32;
const bit = (w: number, mask: number): boolean => (w & mask) !== 0;

/** x86-64 first-stage entry (IA-32e; VT-d first stage). */
export function x86FirstStageFields(level: number, lo: number, hi: number): Fields {
  const present = bit(lo, X86_LO.P);
  const ps = level < 3 && bit(lo, X86_LO.PS);
  const leaf = level === 3 || ps;
  const f: Fields = {
    kind: !present ? 'not-present' : leaf ? 'leaf' : 'table',
    P: present,
    RW: bit(lo, X86_LO.RW),
    US: bit(lo, X86_LO.US),
    PWT: bit(lo, X86_LO.PWT),
    PCD: bit(lo, X86_LO.PCD),
    A: bit(lo, X86_LO.A),
  };
  if (leaf) f['D'] = bit(lo, X86_LO.D);
  if (level < 3) f['PS'] = ps;
  else f['PAT'] = bit(lo, X86_LO.PS);
  if (leaf) f['G'] = bit(lo, X86_LO.G);
  f['XD'] = bit(hi, X86_HI.XD);
  f['address'] = (hi & X86_HI.AddrMask) * TWO_32 + ((lo & X86_LO.AddrMask) >>> 0);
  return f;
}

/** VT-d second-stage entry. Present means R or W. */
export function vtdSecondStageFields(level: number, lo: number, hi: number): Fields {
  const present = (lo & (SL_LO.R | SL_LO.W)) !== 0;
  const ps = level < 3 && bit(lo, SL_LO.PS);
  const f: Fields = {
    kind: !present ? 'not-present' : level === 3 || ps ? 'leaf' : 'table',
    R: bit(lo, SL_LO.R),
    W: bit(lo, SL_LO.W),
    X: bit(lo, SL_LO.X),
  };
  if (level < 3) f['PS'] = ps;
  f['SNP'] = bit(lo, SL_LO.SNP);
  f['TM'] = bit(hi, SL_HI.TM);
  f['address'] = (hi & SL_HI.AddrMask) * TWO_32 + ((lo & SL_LO.AddrMask) >>> 0);
  return f;
}

/** What a VMSAv8-64 descriptor is at `level` (§1.1): a level-0 block and a level-3 01 are reserved. */
function armKind(level: number, lo: number): string {
  if (!bit(lo, ARM_LO.Valid)) return 'invalid';
  const tp = bit(lo, ARM_LO.TableOrPage);
  if (level < 3) return tp ? 'table' : level === 0 ? 'reserved' : 'block';
  return tp ? 'page' : 'reserved';
}

function armAddress(lo: number, hi: number): number {
  return (hi & ARM_HI.AddrMask) * TWO_32 + ((lo & ARM_LO.AddrMask) >>> 0);
}

/** VMSAv8-64 stage-1 descriptor, 4 KiB granule. */
export function armStage1Fields(level: number, lo: number, hi: number): Fields {
  const kind = armKind(level, lo);
  const f: Fields = { kind, valid: bit(lo, ARM_LO.Valid) };
  if (kind === 'table') {
    f['PXNTable'] = bit(hi, ARM_HI.PXNTable);
    f['UXNTable'] = bit(hi, ARM_HI.UXNTable);
    f['APTable'] = (bit(hi, ARM_HI.APTableNoUser) ? 1 : 0) | (bit(hi, ARM_HI.APTableNoWrite) ? 2 : 0);
    f['NSTable'] = bit(hi, ARM_HI.NSTable);
  } else {
    f['AttrIndx'] = (lo >>> ARM_LO.AttrIndxShift) & 7;
    f['NS'] = bit(lo, ARM_LO.NS);
    f['AP'] = (lo >>> 6) & 3; // AP[2:1]: bit 1 read-only, bit 0 unprivileged access
    f['SH'] = (lo >>> ARM_LO.SHShift) & 3;
    f['AF'] = bit(lo, ARM_LO.AF);
    f['nG'] = bit(lo, ARM_LO.nG);
    f['DBM'] = bit(hi, ARM_HI.DBM);
    f['Contiguous'] = bit(hi, ARM_HI.Contiguous);
    f['PXN'] = bit(hi, ARM_HI.PXN);
    f['UXN'] = bit(hi, ARM_HI.UXN);
  }
  f['address'] = armAddress(lo, hi);
  return f;
}

/** VMSAv8-64 stage-2 descriptor, 4 KiB granule. */
export function armStage2Fields(level: number, lo: number, hi: number): Fields {
  const kind = armKind(level, lo);
  const f: Fields = { kind, valid: bit(lo, ARM_LO.Valid) };
  if (kind !== 'table') {
    f['MemAttr'] = (lo >>> ARM_LO.MemAttrShift) & 15;
    f['S2AP'] = (lo >>> 6) & 3; // bit 0 read, bit 1 write
    f['SH'] = (lo >>> ARM_LO.SHShift) & 3;
    f['AF'] = bit(lo, ARM_LO.AF);
    f['DBM'] = bit(hi, ARM_HI.DBM);
    f['Contiguous'] = bit(hi, ARM_HI.Contiguous);
    f['XN'] = bit(hi, ARM_HI.UXN);
  }
  f['address'] = armAddress(lo, hi);
  return f;
}

/** The mock format's descriptor (levels 2, 1, 0; 2 KiB pages, 1 MiB blocks). */
export function mockFields(level: number, lo: number): Fields {
  const valid = bit(lo, MOCK_DESC.Valid);
  const table = level > 0 && bit(lo, MOCK_DESC.Table);
  return {
    kind: !valid ? 'invalid' : level === 2 || table ? 'table' : level === 1 ? 'block' : 'page',
    valid,
    R: bit(lo, MOCK_DESC.Read),
    W: bit(lo, MOCK_DESC.Write),
    address: (lo & (0xfffff800 | 0)) >>> 0,
  };
}

/** The fields of an entry of `format` at `level`. */
export function pteFields(format: PteFormat, level: number, lo: number, hi: number): Fields {
  switch (format) {
    case 'x86-first-stage':
      return x86FirstStageFields(level, lo, hi);
    case 'vtd-second-stage':
      return vtdSecondStageFields(level, lo, hi);
    case 'arm-stage1':
      return armStage1Fields(level, lo, hi);
    case 'arm-stage2':
      return armStage2Fields(level, lo, hi);
    case 'mock':
      return mockFields(level, lo);
  }
}
