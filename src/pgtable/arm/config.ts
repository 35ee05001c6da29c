import { IommufdError } from '../../util/errors.js';
import { levelSize } from '../radix.js';

/** A VMSAv8-64 walk configuration (4 KiB granule). */
export interface ArmWalkConfig {
  /** Level of the start table. */
  startLevel: number;
  /** Input size in bits (stage 1: 64 − T0SZ; stage 2: 64 − S2T0SZ). */
  inputSize: number;
  /** Entries of the start table (more than 512 when stage-2 tables are concatenated). */
  startEntries: number;
  /** Effective output size in bits (PS). */
  outputSize: number;
  /** Access flag faults disabled (CD.AFFD / STE.S2AFFD). */
  affd: boolean;
  /** Hierarchical attributes disabled (CD.HAD0), stage 1 only. */
  had: boolean;
}

/**
 * Stage 1: the start level follows from T0SZ (§1.6): inputsize = 64 − T0SZ, levels =
 * ceil((inputsize − 12) / 9), start = 4 − levels. T0SZ outside 16..39 is rejected (QEMU: C_BAD_CD).
 */
export function armS1Config(
  t0sz: number,
  outputSize = 48,
  opts: { affd?: boolean; had?: boolean } = {},
): ArmWalkConfig {
  if (!Number.isInteger(t0sz) || t0sz < 16 || t0sz > 39)
    throw new IommufdError('EINVAL', `T0SZ ${t0sz} is outside 16..39`);
  const inputSize = 64 - t0sz;
  const startLevel = 4 - Math.ceil((inputSize - 12) / 9);
  return {
    startLevel,
    inputSize,
    startEntries: 2 ** inputSize / levelSize(startLevel),
    outputSize,
    affd: opts.affd === true,
    had: opts.had === true,
  };
}

/**
 * Stage 2 with a 4 KiB granule (§1.7): SL0 0 → level 2, 1 → level 1, 2 → level 0. The start
 * level resolves the IPA bits above it, with up to 16 concatenated tables; more is invalid
 * (QEMU: C_BAD_STE), as is a start level that cannot cover S2T0SZ.
 */
export function armS2Config(
  s2t0sz: number,
  sl0: number,
  outputSize = 48,
  opts: { affd?: boolean } = {},
): ArmWalkConfig {
  if (!Number.isInteger(sl0) || sl0 < 0 || sl0 > 2)
    throw new IommufdError('EINVAL', `SL0 ${sl0} is reserved for a 4 KiB granule`);
  if (!Number.isInteger(s2t0sz) || s2t0sz < 16 || s2t0sz > 39)
    throw new IommufdError('EINVAL', `S2T0SZ ${s2t0sz} is outside 16..39`);
  const inputSize = 64 - s2t0sz;
  const startLevel = 2 - sl0;
  const entries = 2 ** inputSize / levelSize(startLevel);
  if (entries > 16 * 512)
    throw new IommufdError('EINVAL', `S2T0SZ ${s2t0sz} at SL0 ${sl0} needs more than 16 concatenated tables`);
  if (entries < 1) throw new IommufdError('EINVAL', `S2T0SZ ${s2t0sz} is too small for SL0 ${sl0}`);
  return { startLevel, inputSize, startEntries: entries, outputSize, affd: opts.affd === true, had: false };
}

/** The SL0 that Linux picks for an IPA size (`arm_64_lpae_alloc_pgtable_s2`): concatenate when the L0 table would have 16 entries or fewer. */
export function linuxS2Sl0(ipaBits: number): number {
  const levels = Math.ceil((ipaBits - 12) / 9);
  let start = 4 - levels;
  if (start === 0 && 2 ** ipaBits / levelSize(0) <= 16) start = 1;
  return 2 - start;
}
