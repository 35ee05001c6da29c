import { addrWords, ENCODED, levelSize, type RadixCodec } from '../radix.js';
import { Prot } from '../types.js';
import { SL_HI, SL_LO, X86_HI, X86_LO } from './desc.js';

/** The start level (Arm numbering) of an x86 / VT-d table of `width` input bits: 39 → 1, 48 → 0, 57 → -1. */
export function x86StartLevel(width: number): number {
  return 3 - (width - 12) / 9 + 1;
}

function addr(level: number, lo: number, hi: number, psBit: number): number {
  let low = (lo & X86_LO.AddrMask) >>> 0;
  if (level < 3 && (lo & psBit) !== 0) low -= low % Math.min(levelSize(level), 2 ** 32);
  return (hi & X86_HI.AddrMask) * 2 ** 32 + low;
}

/**
 * x86-64 first stage, 4- or 5-level (`width` 48 or 57). Leaves are encoded as Linux's intel
 * driver does for a first-stage domain: P, U/S and A, plus R/W and D when writeable.
 */
export function x86FirstStageCodec(width: 48 | 57): RadixCodec {
  return {
    startLevel: x86StartLevel(width),
    startEntries: 512,
    blockLevels: [1, 2],
    table(pa) {
      const [lo, hi] = addrWords(pa, X86_LO.AddrMask);
      ENCODED[0] = X86_LO.P | X86_LO.RW | X86_LO.US | X86_LO.A | lo;
      ENCODED[1] = hi;
    },
    leaf(level, pa, prot) {
      const [lo, hi] = addrWords(pa, X86_LO.AddrMask);
      const w = (prot & Prot.Write) !== 0;
      ENCODED[0] = X86_LO.P | X86_LO.US | X86_LO.A | (w ? X86_LO.RW | X86_LO.D : 0) | (level < 3 ? X86_LO.PS : 0) | lo;
      ENCODED[1] = hi;
    },
    splitLeaf(lo, hi, _level, childLevel, pa) {
      const [alo, ahi] = addrWords(pa, X86_LO.AddrMask);
      ENCODED[0] = (lo & ~X86_LO.AddrMask & ~X86_LO.PS) | (childLevel < 3 ? X86_LO.PS : 0) | alo;
      ENCODED[1] = (hi & ~X86_HI.AddrMask) | ahi;
    },
    present: (lo) => (lo & X86_LO.P) !== 0,
    isLeaf: (level, lo) => level === 3 || (lo & X86_LO.PS) !== 0,
    addr: (level, lo, hi) => addr(level, lo, hi, X86_LO.PS),
  };
}

/**
 * VT-d second stage for an AW width of 39, 48 or 57 bits. Tables are R|W (Linux `DMA_PTE_READ |
 * DMA_PTE_WRITE`); leaves carry R and W from the prot and PS for large pages.
 */
export function vtdSecondStageCodec(width: 39 | 48 | 57): RadixCodec {
  return {
    startLevel: x86StartLevel(width),
    startEntries: 512,
    blockLevels: [1, 2],
    table(pa) {
      const [lo, hi] = addrWords(pa, SL_LO.AddrMask);
      ENCODED[0] = SL_LO.R | SL_LO.W | lo;
      ENCODED[1] = hi;
    },
    leaf(level, pa, prot) {
      const [lo, hi] = addrWords(pa, SL_LO.AddrMask);
      ENCODED[0] =
        ((prot & Prot.Read) !== 0 ? SL_LO.R : 0) |
        ((prot & Prot.Write) !== 0 ? SL_LO.W : 0) |
        (level < 3 ? SL_LO.PS : 0) |
        lo;
      ENCODED[1] = hi;
    },
    splitLeaf(lo, hi, _level, childLevel, pa) {
      const [alo, ahi] = addrWords(pa, SL_LO.AddrMask);
      ENCODED[0] = (lo & ~SL_LO.AddrMask & ~SL_LO.PS) | (childLevel < 3 ? SL_LO.PS : 0) | alo;
      ENCODED[1] = (hi & ~SL_HI.AddrMask) | ahi;
    },
    present: (lo) => (lo & (SL_LO.R | SL_LO.W)) !== 0,
    isLeaf: (level, lo) => level === 3 || (lo & SL_LO.PS) !== 0,
    addr: (level, lo, hi) => addr(level, lo, hi, SL_LO.PS),
  };
}
