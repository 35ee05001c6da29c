import { Prot } from '../types.js';
import { addrWords, ENCODED, levelSize, type RadixCodec } from '../radix.js';
import { ARM_HI, ARM_LO, ATTRIDX_WB, S2_MEMATTR_WB, SH_INNER } from './desc.js';
import type { ArmWalkConfig } from './config.js';

/** The output or next-table address of a VMSAv8-64 entry at `level`. */
export function armAddr(level: number, lo: number, hi: number): number {
  let low = (lo & ARM_LO.AddrMask) >>> 0;
  if (level < 3 && (lo & ARM_LO.TableOrPage) === 0) low -= low % Math.min(levelSize(level), 2 ** 32);
  return (hi & ARM_HI.AddrMask) * 2 ** 32 + low;
}

function armTable(pa: number): void {
  const [lo, hi] = addrWords(pa, ARM_LO.AddrMask);
  ENCODED[0] = ARM_LO.Valid | ARM_LO.TableOrPage | lo;
  ENCODED[1] = hi;
}

function armSplit(lo: number, hi: number, _level: number, childLevel: number, pa: number): void {
  const [alo, ahi] = addrWords(pa, ARM_LO.AddrMask);
  ENCODED[0] = (lo & ~ARM_LO.AddrMask & ~ARM_LO.TableOrPage) | (childLevel === 3 ? ARM_LO.TableOrPage : 0) | alo;
  ENCODED[1] = (hi & ~ARM_HI.AddrMask) | ahi;
}

const present = (lo: number): boolean => (lo & ARM_LO.Valid) !== 0;
const isLeaf = (level: number, lo: number): boolean => level === 3 || (lo & ARM_LO.TableOrPage) === 0;
const BLOCK_LEVELS = [1, 2] as const;

/**
 * Stage-1 codec, encoding leaves as Linux's `arm_lpae_prot_to_pte` does for an iommufd mapping:
 * AF=1, nG=1, AP[1]=1 (unprivileged access allowed), AP[2]=1 when read-only, inner shareable,
 * AttrIndx 1 (write-back: iommufd always maps with IOMMU_CACHE), executable.
 */
export function armS1Codec(cfg: ArmWalkConfig): RadixCodec {
  return {
    startLevel: cfg.startLevel,
    startEntries: cfg.startEntries,
    blockLevels: BLOCK_LEVELS,
    table: armTable,
    leaf(level, pa, prot) {
      const [lo, hi] = addrWords(pa, ARM_LO.AddrMask);
      ENCODED[0] =
        ARM_LO.Valid |
        (level === 3 ? ARM_LO.TableOrPage : 0) |
        (ATTRIDX_WB << ARM_LO.AttrIndxShift) |
        ARM_LO.AP1 |
        ((prot & Prot.Write) === 0 ? ARM_LO.AP2 : 0) |
        (SH_INNER << ARM_LO.SHShift) |
        ARM_LO.AF |
        ARM_LO.nG |
        lo;
      ENCODED[1] = hi;
    },
    splitLeaf: armSplit,
    present,
    isLeaf,
    addr: armAddr,
  };
}

/** Stage-2 codec: S2AP from the prot, MemAttr write-back, inner shareable, AF=1, executable. */
export function armS2Codec(cfg: ArmWalkConfig): RadixCodec {
  return {
    startLevel: cfg.startLevel,
    startEntries: cfg.startEntries,
    blockLevels: BLOCK_LEVELS,
    table: armTable,
    leaf(level, pa, prot) {
      const [lo, hi] = addrWords(pa, ARM_LO.AddrMask);
      ENCODED[0] =
        ARM_LO.Valid |
        (level === 3 ? ARM_LO.TableOrPage : 0) |
        (S2_MEMATTR_WB << ARM_LO.MemAttrShift) |
        ((prot & Prot.Read) !== 0 ? ARM_LO.S2AP_R : 0) |
        ((prot & Prot.Write) !== 0 ? ARM_LO.S2AP_W : 0) |
        (SH_INNER << ARM_LO.SHShift) |
        ARM_LO.AF |
        lo;
      ENCODED[1] = hi;
    },
    splitLeaf: armSplit,
    present,
    isLeaf,
    addr: armAddr,
  };
}
