import { Ste, L1Std } from './structures.js';
import { Cd, L1Cd } from './structures-cd.js';

/*
 * What an SMMUv3 configuration fetch needs to know of the unit (the ID registers), and what it
 * produces: the translation configuration of one (StreamID, SubstreamID), in plain number fields
 * that a device model can copy into a config cache or hand to armS1Walk / armS2Walk directly.
 */

/** What an SMMUv3 implements, as the configuration fetch needs it (SMMU_IDR0/1/5). */
export interface SmmuCaps {
  /** IDR0.S1P: stage 1 translation. */
  readonly s1p: boolean;
  /** IDR0.S2P: stage 2 translation. Both stages together allow nesting (Config = 0b111). */
  readonly s2p: boolean;
  /** IDR0.ST_LEVEL = 0b01: 2-level stream tables. */
  readonly stLevel2: boolean;
  /** IDR0.CD2L: 2-level CD tables. */
  readonly cd2l: boolean;
  /** IDR1.SIDSIZE: StreamID bits, 0..32. */
  readonly sidBits: number;
  /** IDR1.SSIDSIZE: SubstreamID bits, 0..20 (0: no substreams). */
  readonly ssidBits: number;
  /** IDR5.OAS: output address size, PS encoding 0..6 (32, 36, 40, 42, 44, 48, 52 bits). */
  readonly oas: number;
  /** IDR5.GRAN4K. */
  readonly gran4k: boolean;
  /** IDR5.GRAN16K. */
  readonly gran16k: boolean;
  /** IDR5.GRAN64K. */
  readonly gran64k: boolean;
  /** IDR0.ATS: PCIe ATS (STE.EATS is honoured only with it). */
  readonly ats: boolean;
  /** IDR0.STALL_MODEL, a STALL_MODEL value (regs-defs.ts). */
  readonly stallModel: number;
  /** IDR0.TERM_MODEL: 1 = terminated transactions always abort, so CD.A must be 1. */
  readonly termModel: boolean;
  /** IDR0.HTTU, an HTTU value (regs-defs.ts). */
  readonly httu: number;
  /** IDR0.ASID16: 16-bit ASIDs (else ASID[15:8] are ignored). */
  readonly asid16: boolean;
  /** IDR0.VMID16: 16-bit VMIDs (else S2VMID[15:8] are ignored). */
  readonly vmid16: boolean;
}

/** {@link SmmuResolver.resolve} found a translating configuration: stage 1, stage 2 or nested. */
export const SMMU_RESOLVED = 0;
/** {@link SmmuResolver.resolve}: both stages are bypassed for this request; output = input. */
export const SMMU_BYPASS = -1;
/** {@link SmmuResolver.resolve}: STE.Config = abort; the transaction is terminated and no event recorded. */
export const SMMU_ABORT = -2;

/** Bits of {@link SmmuConfig.flags}. Stage-1 bits come from the CD, stage-2 bits from the STE. */
export const SMMU_CFG_FLAG = {
  /** CD.EPD0: TTB0 disabled; an address in its region is a Translation fault. */
  EPD0: 1 << 0,
  /** CD.EPD1: TTB1 disabled. */
  EPD1: 1 << 1,
  /** CD.AFFD: stage-1 access-flag faults disabled (also in the packed TTB configurations). */
  AFFD: 1 << 2,
  /** CD.HAD0 (also CFG.HAD in ttb0Cfg). */
  HAD0: 1 << 3,
  /** CD.HAD1 (also CFG.HAD in ttb1Cfg). */
  HAD1: 1 << 4,
  /** CD.WXN. */
  WXN: 1 << 5,
  /** CD.UWXN. */
  UWXN: 1 << 6,
  /** CD.PAN. */
  PAN: 1 << 7,
  /** CD.HD: hardware dirty-state update at stage 1. */
  HD: 1 << 8,
  /** CD.HA: hardware access-flag update at stage 1. */
  HA: 1 << 9,
  /** CD.S as written. */
  CD_S: 1 << 10,
  /** CD.R: record stage-1 translation faults (QEMU `record_faults`). */
  CD_R: 1 << 11,
  /** CD.A: a terminated transaction gets an abort (else RAZ/WI). */
  CD_A: 1 << 12,
  /** CD.ASET: private ASID set. */
  ASET: 1 << 13,
  /** Stage-1 faults stall: CD.S and not STE.S1STALLD, or IDR0.STALL_MODEL = forced. */
  S1_STALL: 1 << 14,
  /** STE.S1STALLD. */
  S1STALLD: 1 << 15,
  /** STE.S2AFFD (also in s2Cfg). */
  S2AFFD: 1 << 16,
  /** STE.S2PTW. */
  S2PTW: 1 << 17,
  /** STE.S2HD. */
  S2HD: 1 << 18,
  /** STE.S2HA. */
  S2HA: 1 << 19,
  /** STE.S2S as written. */
  S2S: 1 << 20,
  /** STE.S2R: record stage-2 translation faults. */
  S2R: 1 << 21,
  /** Stage-2 faults stall: STE.S2S, or IDR0.STALL_MODEL = forced. */
  S2_STALL: 1 << 22,
  /** STE.S2FWB. */
  S2FWB: 1 << 23,
  /** STE.MEV. */
  MEV: 1 << 24,
} as const;

/**
 * The output of one configuration fetch, reused across calls. The summary fields are rewritten by
 * every call; the decoded structures are valid up to the one whose check failed.
 *
 * A walk config (`s2Cfg`, `ttb0Cfg`, `ttb1Cfg`) is packWalkConfig's word: start level, input
 * size, effective output size, CFG.AFFD (AFFD, or HA: the walker then takes AF = 0 as set, though
 * it does not write AF back) and CFG.HAD. It is 0 when that table is not in use. armS1Walk and
 * armS2Walk walk 4 KiB granules only: check `granule0` / `granule1` / `s2Granule` (log2 of the
 * granule) before handing them a root. A TTB1 walk takes the input address's low `inputSize` bits.
 */
export class SmmuConfig {
  /** The event type raised (C_BAD_STE …, or a stage-2 fault of a nested CD fetch), or 0. */
  event = 0;
  /** 1 when the event must be recorded: always for configuration events; S2R for a stage-2 fault. */
  record = 0;
  /** F_STE_FETCH / F_CD_FETCH: the physical address of the read that aborted. */
  fetchAddr = 0;
  /** 1 when the event is a stage-2 fault of a nested CD fetch (the record's S2 bit). */
  stage2 = 0;
  /** The record's CLASS, an EVT_CLASS value (CD for a nested CD fetch's stage-2 fault). */
  eventClass = 0;
  /** The IPA of a nested L1CD/CD fetch that faulted at stage 2 or aborted; 0 otherwise. */
  ipa = 0;
  /** STE.Config as read. */
  config = 0;
  /**
   * The stages in effect for this request, as an STE_CONFIG value: S1DSS = bypass turns S1 into
   * Bypass and Nested into S2 for a request without SubstreamID.
   */
  kind = 0;
  /** STE.S1DSS (with stage 1 and S1CDMax > 0), else 0. */
  s1dss = 0;
  /** The CD used: the SubstreamID, 0 for CD 0, or -1 when no CD was fetched. */
  cdIndex = -1;
  /** STE.EATS with IDR0.ATS, else 0. */
  eats = 0;
  /** STE.STRW. */
  strw = 0;
  /** STE.S2VMID (8 bits without IDR0.VMID16) when stage 2 is implemented, else -1. */
  vmid = -1;
  /** Stage-2 start table (S2TTB aligned down to the start table's size), or 0. */
  s2Root = 0;
  /** Packed armS2Walk configuration, or 0 when stage 2 is not in use. */
  s2Cfg = 0;
  /** log2 of the stage-2 granule, or 0. */
  s2Granule = 0;
  /** CD.ASID (8 bits without IDR0.ASID16) when stage 1 is in use, else -1. */
  asid = -1;
  /** TTB0 aligned down to its start table's size (an IPA when nested), or 0. */
  ttb0 = 0;
  /** Packed armS1Walk configuration of TTB0, or 0 when TTB0 is disabled or stage 1 unused. */
  ttb0Cfg = 0;
  /** log2 of TTB0's granule, or 0. */
  granule0 = 0;
  /** TTB1 aligned down to its start table's size (an IPA when nested), or 0. */
  ttb1 = 0;
  /** Packed armS1Walk configuration of TTB1, or 0. */
  ttb1Cfg = 0;
  /** log2 of TTB1's granule, or 0. */
  granule1 = 0;
  /** CD.TBI: bit 0 TBI0, bit 1 TBI1. */
  tbi = 0;
  /** CD MAIR bits 31:0 (Attr0..Attr3). */
  mair0 = 0;
  /** CD MAIR bits 63:32 (Attr4..Attr7). */
  mair1 = 0;
  /** {@link SMMU_CFG_FLAG} bits. */
  flags = 0;
  /** The STE read. */
  readonly ste = new Ste();
  /** The L1STD read (2-level stream table). */
  readonly l1std = new L1Std();
  /** The L1CD read (2-level CD table). */
  readonly l1cd = new L1Cd();
  /** The CD read. */
  readonly cd = new Cd();

  /** Clears the summary fields (not the decoded structures). */
  reset(): void {
    this.event = 0;
    this.record = 0;
    this.fetchAddr = 0;
    this.stage2 = 0;
    this.eventClass = 0;
    this.ipa = 0;
    this.config = 0;
    this.kind = 0;
    this.s1dss = 0;
    this.cdIndex = -1;
    this.eats = 0;
    this.strw = 0;
    this.vmid = -1;
    this.s2Root = 0;
    this.s2Cfg = 0;
    this.s2Granule = 0;
    this.asid = -1;
    this.ttb0 = 0;
    this.ttb0Cfg = 0;
    this.granule0 = 0;
    this.ttb1 = 0;
    this.ttb1Cfg = 0;
    this.granule1 = 0;
    this.tbi = 0;
    this.mair0 = 0;
    this.mair1 = 0;
    this.flags = 0;
  }
}
