/**
 * A walk configuration packed into one 32-bit word, so that a domain descriptor in shared memory
 * carries everything a walker needs and the hot path decodes it with shifts and masks.
 *
 *   bits 3:0   start level + 1 (the Arm numbering: -1..3)
 *   bits 9:4   input size in bits
 *   bits 15:10 output size in bits
 *   bit 16     access-flag faults disabled (Arm AFFD / S2AFFD)
 *   bit 17     hierarchical attributes disabled (Arm HAD)
 *   bit 18     VT-d scalable-mode fault codes (else legacy)
 *   bit 19     x86 first stage: set A and D bits while walking
 *   bit 20     x86 first stage: supervisor writes ignore R/W (VT-d WPE = 0)
 *   bit 21     x86 first stage: supervisor requests allowed (VT-d SRE; checked by the caller)
 */
export const CFG = {
  AFFD: 1 << 16,
  HAD: 1 << 17,
  SCALABLE: 1 << 18,
  SET_AD: 1 << 19,
  WP_OFF: 1 << 20,
  SRE: 1 << 21,
} as const;

/** Packs a walk configuration. */
export function packWalkConfig(startLevel: number, inputSize: number, outputSize: number, flags = 0): number {
  return (startLevel + 1) | (inputSize << 4) | (outputSize << 10) | flags;
}

/** The start level of a packed configuration. */
export function cfgStartLevel(cfg: number): number {
  return (cfg & 15) - 1;
}

/** The input size of a packed configuration. */
export function cfgInputSize(cfg: number): number {
  return (cfg >>> 4) & 63;
}

/** The output size of a packed configuration. */
export function cfgOutputSize(cfg: number): number {
  return (cfg >>> 10) & 63;
}

/** 2^n for n in 0..63, so walkers avoid Math.pow on the hot path. */
export const POW2: readonly number[] = Array.from({ length: 64 }, (_, n) => 2 ** n);
