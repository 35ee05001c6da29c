/**
 * The stage-1 configuration Linux 6.1 arm-smmu-v3 writes for a DMA domain: its Context
 * Descriptor (`arm_smmu_write_ctx_desc`, from io-pgtable-arm's TCR and MAIR) and the STE of a
 * device translated through a linear one-CD table (`arm_smmu_write_strtab_ent`). The guest driver
 * and the trace replayer's guest both write these.
 */
import { OAS_ENCODING } from '../../vendor/smmuv3/regs-defs.js';
import { Cd, TG0 } from '../../vendor/smmuv3/structures-cd.js';
import { S1DSS, S1FMT, Ste, STE_CONFIG } from '../../vendor/smmuv3/structures.js';
import { SH_ISH } from './cmdq.js';
import type { SmmuGuestCaps } from './probe.js';

/** The stage-1 input size Linux uses (VA_BITS 48): T0SZ 16. */
export const S1_T0SZ = 16;
/** Linux `ARM_LPAE_MAIR_*`: attribute 0 NC, 1 WBRWA, 2 Device-nGnRE, 3 inner NC outer WBRWA. */
const LPAE_MAIR = 0xf404ff44;
/** Walk cacheability of a CD (`ARM_LPAE_TCR_RGN_WBWA`, `_NC`) and shareability (`ARM_LPAE_TCR_SH_OS`). */
const TCR_RGN_WBWA = 1;
const TCR_RGN_NC = 0;
const SH_OSH = 2;
/** STE.S1CIR/S1COR: write-back read-allocate (`STRTAB_STE_1_S1C_CACHE_WBRA`). */
const S1C_CACHE_WBRA = 1;
/** STE.EATS: full ATS (`STRTAB_STE_1_EATS_TRANS`). */
const EATS_TRANS = 1;

/** The CD of a stage-1 domain with `asid` and its table at `ttb0`; `stall` sets CD.S (a stalling master). */
export function linuxS1Cd(caps: SmmuGuestCaps, asid: number, ttb0: number, stall = false): Cd {
  return Object.assign(new Cd(), {
    t0sz: S1_T0SZ,
    tg0: TG0.K4,
    ir0: caps.coherent ? TCR_RGN_WBWA : TCR_RGN_NC,
    or0: caps.coherent ? TCR_RGN_WBWA : TCR_RGN_NC,
    sh0: caps.coherent ? SH_ISH : SH_OSH,
    epd1: true,
    valid: true,
    ips: OAS_ENCODING[caps.ias as keyof typeof OAS_ENCODING],
    aa64: true,
    r: true,
    a: true,
    aset: true,
    s: stall,
    asid,
    ttb0,
    mair0: LPAE_MAIR,
  });
}

/**
 * The STE of a stage-1 stream over the linear one-CD table at `cdTable`: stall disabled unless
 * the unit stalls and `stall` (the master may be stalled); EATS with `ats`.
 */
export function linuxS1Ste(caps: SmmuGuestCaps, cdTable: number, o: { stall?: boolean; ats?: boolean } = {}): Ste {
  return Object.assign(new Ste(), {
    valid: true,
    config: STE_CONFIG.S1,
    s1Fmt: S1FMT.Linear,
    s1ContextPtr: cdTable,
    s1CdMax: 0,
    s1Dss: S1DSS.Substream0,
    s1Cir: S1C_CACHE_WBRA,
    s1Cor: S1C_CACHE_WBRA,
    s1Csh: SH_ISH,
    s1StallD: caps.stalls && o.stall !== true,
    eats: o.ats === true ? EATS_TRANS : 0,
  });
}
