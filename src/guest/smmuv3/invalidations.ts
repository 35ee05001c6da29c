/**
 * The invalidation commands Linux 6.1's arm-smmu-v3 builds for a stage-1 domain
 * (reference/viommu-queues.md §1.3, §4.1): `__arm_smmu_tlb_inv_range` (TLBI_NH_VA, range-encoded
 * with RIL), `arm_smmu_tlb_inv_asid` (TLBI_NH_ASID), `arm_smmu_atc_inv_to_cmd` (ATC_INV span),
 * and the arithmetic behind them, which works on numbers up to 2^53 (no 32-bit bit operations).
 */
import { ATC_INV_SIZE_ALL, Opcode, Tg } from '../../vendor/smmuv3/commands.js';
import type { CommandBatch } from './cmdq.js';

/** log2 of the smallest page (the 4 KiB granule): Linux's `tg` for TLBI ranges and the ATC grain. */
export const PAGE_SHIFT = 12;
/** Linux `CMDQ_TLBI_RANGE_NUM_MAX`: NUM is 5 bits, so one range command covers at most 31 << SCALE pages. */
export const TLBI_RANGE_NUM_MAX = 31;

/** The index of the lowest set bit of a positive integer below 2^53 (`__ffs`). */
export function lowestSetBit(n: number): number {
  let bit = 0;
  while (n % 2 ** (bit + 1) === 0) bit++;
  return bit;
}

/**
 * The TTL hint of a range TLBI for leaves of `granule` bytes in a 4 KiB-granule table:
 * `4 - ((ilog2(granule) - 3) / (tg - 3))`, so 3 for 4 KiB pages, 2 for 2 MiB and 1 for 1 GiB
 * blocks. Linux 6.1 sets it for leaf and non-leaf invalidations alike.
 */
export function tlbiTtl(granule: number): number {
  return 4 - Math.floor((Math.log2(granule) - 3) / (PAGE_SHIFT - 3));
}

/** One range step of `__arm_smmu_tlb_inv_range`: the command covers (num + 1) << scale pages from `addr`. */
export interface TlbiRangeStep {
  readonly addr: number;
  /** NUM field: chunks − 1. */
  readonly num: number;
  readonly scale: number;
}

/**
 * The range commands `__arm_smmu_tlb_inv_range` emits with RIL for [iova, iova+size): each takes
 * `scale = __ffs(num_pages)` and `num = (num_pages >> scale) & 31` chunks of 2^scale pages, so the
 * low-order part of the page count goes first (1000 pages: 29 × 2^3, then 3 × 2^8).
 */
export function tlbiRangeSteps(iova: number, size: number): TlbiRangeStep[] {
  const steps: TlbiRangeStep[] = [];
  let pages = size / 2 ** PAGE_SHIFT;
  let addr = iova;
  while (pages > 0) {
    const scale = lowestSetBit(pages);
    const num = Math.floor(pages / 2 ** scale) % (TLBI_RANGE_NUM_MAX + 1);
    steps.push({ addr, num: num - 1, scale });
    addr += num * 2 ** (scale + PAGE_SHIFT);
    pages -= num * 2 ** scale;
  }
  return steps;
}

/**
 * `__arm_smmu_tlb_inv_range` for a stage-1 domain: TLBI_NH_VA commands for [iova, iova+size) of
 * `asid` into `batch`, then the batch is submitted (one CMD_SYNC). With RIL, range commands (TG
 * 4 KiB, the TTL of `granule`, NUM/SCALE as {@link tlbiRangeSteps}); without, one command per
 * `granule`. `leaf` only last-level entries changed (an unmap that freed no table).
 */
export function tlbiNhVaRange(
  batch: CommandBatch,
  asid: number,
  iova: number,
  size: number,
  granule: number,
  leaf: boolean,
  ril: boolean,
): void {
  if (size === 0) return;
  const leafBit = leaf ? 1 : 0;
  if (ril) {
    const ttl = tlbiTtl(granule);
    for (const s of tlbiRangeSteps(iova, size)) {
      batch.add(Opcode.TlbiNhVa, { asid, leaf: leafBit, addr: s.addr, num: s.num, scale: s.scale, tg: Tg.K4, ttl });
    }
  } else {
    for (let addr = iova; addr < iova + size; addr += granule)
      batch.add(Opcode.TlbiNhVa, { asid, leaf: leafBit, addr });
  }
  batch.submit();
}

/** The address and Size of an ATC_INV (`arm_smmu_atc_inv_to_cmd`). */
export interface AtcSpan {
  readonly addr: number;
  /** log2 of the 4 KiB pages covered; {@link ATC_INV_SIZE_ALL} for everything. */
  readonly size: number;
}

/**
 * `arm_smmu_atc_inv_to_cmd`: the naturally aligned power-of-two span of 4 KiB pages holding
 * [iova, iova+size): `log2_span = fls(page_start ^ page_end)` and the start rounded down to it
 * (over-invalidating rather than splitting). `size` 0 means the whole ATC.
 */
export function atcInvSpan(iova: number, size: number): AtcSpan {
  if (size === 0) return { addr: 0, size: ATC_INV_SIZE_ALL };
  const pageStart = Math.floor(iova / 2 ** PAGE_SHIFT);
  const pageEnd = Math.floor((iova + size - 1) / 2 ** PAGE_SHIFT);
  // page_start ^ page_end, on numbers: the highest bit where they differ, plus one.
  let log2Span = 0;
  while (Math.floor(pageStart / 2 ** log2Span) !== Math.floor(pageEnd / 2 ** log2Span)) log2Span++;
  const start = pageStart - (pageStart % 2 ** log2Span);
  return { addr: start * 2 ** PAGE_SHIFT, size: log2Span };
}
