import { PS_BITS, SMMU_EVT } from '../../pgtable/arm/desc.js';
import { WalkFault } from '../../pgtable/types.js';
import { CFG, cfgInputSize, cfgStartLevel, packWalkConfig, POW2 } from '../../pgtable/walk-config.js';
import type { QwordReader } from '../vtd/resolve-reader.js';
import { HTTU, STALL_MODEL, STRTAB_BASE_CFG, STRTAB_FMT } from './regs-defs.js';
import {
  SMMU_ABORT,
  SMMU_BYPASS,
  SMMU_CFG_FLAG,
  SMMU_RESOLVED,
  type SmmuCaps,
  type SmmuConfig,
} from './resolve-config.js';
import { EVT_CLASS, SMMU_CFG_EVT } from './resolve-events.js';
import type { Stage2Translator } from './resolve-stage2.js';
import {
  decodeL1Std,
  decodeSte,
  L1STD,
  S1DSS,
  S1FMT,
  s2TgGranule,
  STE,
  STE_CONFIG,
  STE_CONFIG_S1,
  STE_CONFIG_S2,
  STE_CONFIG_TRANSLATE,
  strtabBaseAddr,
  type Ste,
} from './structures.js';
import { type Cd, CD_TABLE, cdLeafBits, cdTgGranule, decodeCd, decodeL1Cd } from './structures-cd.js';

/*
 * The configuration fetch of an SMMUv3 (reference/config-formats.md §3, §5.1): from a
 * transaction's StreamID (and SubstreamID) through the stream table, the STE and the CD table to
 * what the page walks need. The checks run in §5.1's order (QEMU's `smmu_find_ste`,
 * `decode_ste`, `decode_ste_s2_cfg`, `smmu_get_cd`, `decode_cd`), so when several apply the
 * earliest is reported:
 *
 *   1  SID ≥ 2^min(LOG2SIZE, SIDSIZE)                                   C_BAD_STREAMID
 *   2  2-level: the L1STD read aborts                                   F_STE_FETCH (address)
 *   3  L1STD.SPAN = 0                                                   C_BAD_STREAMID
 *   4  L2 index ≥ 2^(SPAN−1)                                            C_BAD_STREAMID
 *   5  the STE read aborts                                              F_STE_FETCH (address)
 *   6  V = 0; Config reserved; a stage not implemented; then for stage 2
 *      S2AA64 = 0, S2TG invalid or not implemented, S2SL0 = 3, S2TTB beyond the effective S2PS,
 *      S2T0SZ out of range, the start level inconsistent with S2T0SZ (more than 16 concatenated
 *      tables, or none of the IPA bits), S2ENDI = 1, S2HA/S2HD without HTTU, S2S without stall
 *      support; then for stage 1 S1CDMax > SSIDSIZE, and with S1CDMax > 0 S1Fmt reserved or
 *      2-level without CD2L, S1DSS reserved                                C_BAD_STE
 *   7  Config = abort                                                   SMMU_ABORT, no event
 *   8  a SubstreamID with stage 1 off, S1CDMax = 0, SSID ≥ 2^S1CDMax, or S1DSS = CD 0 and
 *      SSID 0                                                          C_BAD_SUBSTREAMID
 *      (then Config = bypass gives SMMU_BYPASS, stage 2 only SMMU_RESOLVED)
 *   9  no SubstreamID, S1CDMax > 0, S1DSS = terminate                    F_STREAM_DISABLED
 *      (S1DSS = bypass: stage 1 is skipped, no CD is fetched)
 *   10 the L1CD or CD read aborts                                       F_CD_FETCH (address)
 *      nested: the stage-2 translation of the L1CD/CD IPA faults       its walk event, S2 = 1,
 *                                                                       CLASS = CD, IPA
 *   11 L1CD.V = 0                                                       C_BAD_SUBSTREAMID
 *   12 V = 0 or AA64 = 0; A = 0 with TERM_MODEL; S = 1 without stall support or with S1STALLD;
 *      HA/HD without HTTU; then per enabled TTB (0, then 1): T0SZ/T1SZ outside 16..39, TG
 *      reserved or not implemented or ENDI = 1, TTB beyond the effective IPS   C_BAD_CD
 *
 * Where the architecture leaves latitude or the reference infers:
 * - FMT = 2-level without IDR0.ST_LEVEL, and the reserved FMT values, read the table as linear
 *   (QEMU only switches on FMT = 1). LOG2SIZE takes effect capped at IDR1.SIDSIZE, and a SPLIT
 *   other than 6, 8 or 10 behaves as 6 (regs-defs.ts; QEMU uses the raw values). STRTAB_BASE is
 *   aligned down to the table's size (as QEMU does: 64 bytes per STE, 8 per L1STD, at least 64).
 * - Step 4 follows the reference (C_BAD_STREAMID, 2^(SPAN−1) STEs), not QEMU (C_BAD_STE, 2^SPAN).
 * - Config 0b001–0b011 is C_BAD_STE (the reference; QEMU treats them as abort). Fields of a stage
 *   the Config does not enable are not checked, so abort and bypass STEs check only V.
 * - A SubstreamID on a bypass STE is C_BAD_SUBSTREAMID (step 8 before the bypass outcome).
 * - S2T0SZ's lower bound is max(16, 64 − OAS) (64 − OAS for 64 KiB), IAS = OAS as in QEMU.
 *   Effective PS/IPS = min(field, IDR5.OAS), capped at 48 bits for 4 and 16 KiB granules; a
 *   reserved encoding (7) takes the OAS.
 * - The stage-2 start level must resolve at least one and at most 4 + stride IPA bits (ARM ARM
 *   table in reference §1.7); QEMU checks only the upper bound.
 * - TTB0/TTB1/S2TTB are aligned down to their start table's size (QEMU clears the low bits).
 * - ASID[15:8] without ASID16 and S2VMID[15:8] without VMID16 are ignored (read as 0).
 * - Nested: the CD-table addresses are translated by the STE's stage 2 (QEMU `smmu_get_cd` with
 *   SMMU_CLASS_CD): a stage-2 fault is reported as that fault (F_TRANSLATION, F_ADDR_SIZE,
 *   F_ACCESS, F_PERMISSION or F_WALK_EABT) with S2 = 1, CLASS = CD and the IPA, recorded only with
 *   STE.S2R except F_WALK_EABT, which is always recorded (QEMU `PTW_RECORD_FAULT`); the
 *   descriptor address of an F_WALK_EABT is not known here (the walker does not report it). A
 *   read that aborts after stage 2 is F_CD_FETCH with the physical fetch address. TTB0/TTB1 stay
 *   IPAs: their translation belongs to the stage-1 walk (CLASS = TT), not to this fetch.
 * - Stage-1/stage-2 stall under STALL_MODEL = forced is reported in the flags; a stage-2 fault of
 *   the CD fetch is never stalled here (QEMU implements no stall).
 *
 * Allocation-free: the resolver owns one scratch buffer and one walk-fault record, and the caller
 * owns the output record.
 */

/** Fetches the configuration of transactions, for one SMMUv3. */
export class SmmuResolver {
  /** STRTAB_BASE.ADDR, latched. */
  strtabBase = 0;
  /** STRTAB_BASE_CFG.FMT, a STRTAB_FMT value. */
  fmt: number = STRTAB_FMT.Linear;
  /** STRTAB_BASE_CFG.LOG2SIZE. */
  log2size = 0;
  /** STRTAB_BASE_CFG.SPLIT. */
  split = 0;
  /** What the unit implements. */
  readonly caps: Readonly<SmmuCaps>;
  readonly #mem: QwordReader;
  readonly #stage2: Stage2Translator | null;
  readonly #w = new Int32Array(STE.WORDS);
  readonly #fault = new WalkFault();
  /** IDR5.OAS in bits, which is also the IAS (AArch64 only). */
  readonly #oasBits: number;

  /**
   * A resolver reading physical memory through `mem`. A unit with both stages can nest, and then
   * needs `stage2` to translate the CD-table IPAs (ArmStage2Translator over the same physical
   * memory fits). Throws RangeError for out-of-range capabilities, or both stages without `stage2`.
   */
  constructor(mem: QwordReader, caps: SmmuCaps, stage2: Stage2Translator | null = null) {
    checkCap('sidBits', caps.sidBits, 32);
    checkCap('ssidBits', caps.ssidBits, 20);
    checkCap('oas', caps.oas, PS_BITS.length - 1);
    checkCap('stallModel', caps.stallModel, STALL_MODEL.StallForced);
    checkCap('httu', caps.httu, HTTU.AccessDirty);
    if (caps.s1p && caps.s2p && stage2 === null) {
      throw new RangeError('a unit with both stages needs a stage-2 translator for nested configurations');
    }
    this.#mem = mem;
    this.caps = { ...caps };
    this.#stage2 = stage2;
    this.#oasBits = PS_BITS[caps.oas]!;
  }

  /** Latches SMMU_STRTAB_BASE (its two words). */
  setStrtabBase(lo: number, hi: number): void {
    this.strtabBase = strtabBaseAddr(lo, hi);
  }

  /** Latches SMMU_STRTAB_BASE_CFG. */
  setStrtabBaseCfg(value: number): void {
    const f = STRTAB_BASE_CFG;
    this.log2size = value & f.Log2SizeMask;
    this.split = (value >>> f.SplitShift) & f.SplitMask;
    this.fmt = (value >>> f.FmtShift) & f.FmtMask;
  }

  /**
   * Fetches the configuration of a transaction from StreamID `sid` with SubstreamID `ssid`
   * (0..2^20−1, or -1 for none). Returns {@link SMMU_RESOLVED} (stage 1, stage 2 or nested:
   * `out.kind`), {@link SMMU_BYPASS}, {@link SMMU_ABORT}, or an event type (also in `out.event`,
   * with `out.record` and the event's address fields).
   */
  resolve(sid: number, ssid: number, out: SmmuConfig): number {
    out.reset();
    const event = this.#fetchSte(sid, out);
    if (event !== 0) return event;
    return this.resolveSte(decodeSte(this.#w, 0, out.ste), ssid, out);
  }

  /**
   * {@link resolve} from step 6 on, for an STE the caller already holds (decoded): what a
   * nested vSTE installs, say, which no stream table holds. `ste` may be `out.ste`. Same results.
   */
  resolveSte(ste: Readonly<Ste>, ssid: number, out: SmmuConfig): number {
    out.reset();
    let event = this.#checkSte(ste, out);
    if (event !== 0) return event;
    const config = ste.config;
    out.config = config;
    if (config === STE_CONFIG.Abort) {
      out.kind = STE_CONFIG.Abort;
      return SMMU_ABORT;
    }
    const caps = this.caps;
    const s1 = (config & STE_CONFIG_S1) !== 0;
    const s2 = (config & STE_CONFIG_S2) !== 0;
    out.eats = caps.ats ? ste.eats : 0;
    out.strw = ste.strw;
    if (caps.s2p) out.vmid = caps.vmid16 ? ste.s2Vmid : ste.s2Vmid & 0xff;
    if (ste.mev) out.flags |= SMMU_CFG_FLAG.MEV;

    // Step 8: the SubstreamID against the STE.
    const cdMax = ste.s1CdMax;
    if (ssid >= 0 && (!s1 || cdMax === 0 || ssid >= POW2[cdMax]! || (ste.s1Dss === S1DSS.Substream0 && ssid === 0))) {
      return configEvent(out, SMMU_CFG_EVT.C_BAD_SUBSTREAMID, 0);
    }
    if (!s1) {
      out.kind = config;
      return s2 ? SMMU_RESOLVED : SMMU_BYPASS;
    }
    if (ste.s1StallD) out.flags |= SMMU_CFG_FLAG.S1STALLD;

    // Step 9: a transaction without a SubstreamID on a stream with substreams.
    let cdIndex = ssid;
    if (ssid < 0) {
      cdIndex = 0;
      if (cdMax > 0) {
        out.s1dss = ste.s1Dss;
        if (ste.s1Dss === S1DSS.Terminate) return configEvent(out, SMMU_CFG_EVT.F_STREAM_DISABLED, 0);
        if (ste.s1Dss === S1DSS.Bypass) {
          out.kind = s2 ? STE_CONFIG.S2 : STE_CONFIG.Bypass;
          return s2 ? SMMU_RESOLVED : SMMU_BYPASS;
        }
      }
    }

    event = this.#fetchCd(ste, cdIndex, s2, out);
    if (event !== 0) return event;
    const cd = decodeCd(this.#w, 0, out.cd);
    event = this.#stageOne(ste, cd, out);
    if (event !== 0) return event;
    out.cdIndex = cdIndex;
    out.kind = config;
    return SMMU_RESOLVED;
  }

  /** Steps 1–5: finds and reads the STE of `sid` into the scratch buffer. */
  #fetchSte(sid: number, out: SmmuConfig): number {
    const caps = this.caps;
    const log2size = Math.min(this.log2size, caps.sidBits);
    if (sid >= POW2[log2size]!) return configEvent(out, SMMU_CFG_EVT.C_BAD_STREAMID, 0);
    let steAddr: number;
    if (this.fmt === STRTAB_FMT.TwoLevel && caps.stLevel2) {
      const split = this.split === 8 || this.split === 10 ? this.split : 6;
      const l1Addr =
        alignDown(this.strtabBase, Math.max(log2size - split + 3, 6)) + Math.floor(sid / POW2[split]!) * L1STD.BYTES;
      if (!this.#mem.readQwords(l1Addr, 1, this.#w)) return configEvent(out, SMMU_CFG_EVT.F_STE_FETCH, l1Addr);
      const l1 = decodeL1Std(this.#w, 0, out.l1std);
      if (l1.span === 0) return configEvent(out, SMMU_CFG_EVT.C_BAD_STREAMID, 0);
      const index = sid % POW2[split]!;
      if (index >= POW2[l1.span - 1]!) return configEvent(out, SMMU_CFG_EVT.C_BAD_STREAMID, 0);
      steAddr = l1.l2Ptr + index * STE.BYTES;
    } else {
      steAddr = alignDown(this.strtabBase, log2size + 6) + sid * STE.BYTES;
    }
    if (!this.#mem.readQwords(steAddr, STE.WORDS / 2, this.#w)) {
      return configEvent(out, SMMU_CFG_EVT.F_STE_FETCH, steAddr);
    }
    return 0;
  }

  /** Step 6: the STE's validity, for the stages its Config enables. Fills the stage-2 output. */
  #checkSte(ste: Ste, out: SmmuConfig): number {
    const caps = this.caps;
    const bad = SMMU_CFG_EVT.C_BAD_STE;
    if (!ste.valid) return configEvent(out, bad, 0);
    const config = ste.config;
    if (config === STE_CONFIG.Abort || config === STE_CONFIG.Bypass) return 0;
    if ((config & STE_CONFIG_TRANSLATE) === 0) return configEvent(out, bad, 0);
    const s1 = (config & STE_CONFIG_S1) !== 0;
    const s2 = (config & STE_CONFIG_S2) !== 0;
    if ((s1 && !caps.s1p) || (s2 && !caps.s2p)) return configEvent(out, bad, 0);
    if (s2 && !this.#stageTwo(ste, out)) return configEvent(out, bad, 0);
    if (s1) {
      const cdMax = ste.s1CdMax;
      if (cdMax > caps.ssidBits) return configEvent(out, bad, 0);
      if (cdMax > 0) {
        const fmt = ste.s1Fmt;
        if (fmt > S1FMT.TwoLevel64K || (fmt !== S1FMT.Linear && !caps.cd2l) || ste.s1Dss > S1DSS.Substream0) {
          return configEvent(out, bad, 0);
        }
      }
    }
    return 0;
  }

  /** The stage-2 part of step 6 (QEMU `decode_ste_s2_cfg`); on success fills the stage-2 output. */
  #stageTwo(ste: Ste, out: SmmuConfig): boolean {
    const caps = this.caps;
    if (!ste.s2Aa64) return false;
    const granule = s2TgGranule(ste.s2Tg);
    if (!this.#granuleImplemented(granule) || ste.s2Sl0 === 3) return false;
    const psBits = this.#effectivePs(ste.s2Ps, granule);
    if (ste.s2Ttb >= POW2[psBits]!) return false;
    const t0sz = ste.s2T0sz;
    const oasBits = this.#oasBits;
    if (t0sz > 39 || t0sz < (granule === 16 ? 64 - oasBits : Math.max(16, 64 - oasBits))) return false;
    const inputSize = 64 - t0sz;
    const start = (granule === 12 ? 2 : 3) - ste.s2Sl0;
    // IPA bits the start level resolves: more than a table's (granule − 3) means concatenation,
    // of at most 16 tables (4 bits).
    const startBits = inputSize - levelShift(start, granule);
    if (startBits < 1 || startBits > granule - 3 + 4) return false;
    if (ste.s2Endi) return false;
    if ((ste.s2Ha && caps.httu < HTTU.Access) || (ste.s2Hd && caps.httu < HTTU.AccessDirty)) return false;
    if (ste.s2S && caps.stallModel === STALL_MODEL.TerminateOnly) return false;

    const F = SMMU_CFG_FLAG;
    out.s2Granule = granule;
    out.s2Root = alignDown(ste.s2Ttb, startBits + 3);
    out.s2Cfg = packWalkConfig(start, inputSize, psBits, ste.s2Affd || ste.s2Ha ? CFG.AFFD : 0);
    out.flags |=
      (ste.s2Affd ? F.S2AFFD : 0) |
      (ste.s2Ptw ? F.S2PTW : 0) |
      (ste.s2Hd ? F.S2HD : 0) |
      (ste.s2Ha ? F.S2HA : 0) |
      (ste.s2S ? F.S2S : 0) |
      (ste.s2R ? F.S2R : 0) |
      (ste.s2S || caps.stallModel === STALL_MODEL.StallForced ? F.S2_STALL : 0) |
      (ste.s2Fwb ? F.S2FWB : 0);
    return true;
  }

  /** Steps 10–11: reads the CD `cdIndex` (through the L1CD of a 2-level table) into the scratch buffer. */
  #fetchCd(ste: Ste, cdIndex: number, nested: boolean, out: SmmuConfig): number {
    const leafBits = ste.s1CdMax === 0 ? 0 : cdLeafBits(ste.s1Fmt);
    let cdAddr: number;
    if (leafBits === 0) {
      cdAddr = ste.s1ContextPtr + cdIndex * CD_TABLE.CD_BYTES;
    } else {
      const l1Addr = ste.s1ContextPtr + Math.floor(cdIndex / POW2[leafBits]!) * CD_TABLE.L1CD_BYTES;
      const event = this.#readCdTable(l1Addr, 1, nested, ste.s2R, out);
      if (event !== 0) return event;
      const l1 = decodeL1Cd(this.#w, 0, out.l1cd);
      if (!l1.valid) return configEvent(out, SMMU_CFG_EVT.C_BAD_SUBSTREAMID, 0);
      cdAddr = l1.l2Ptr + (cdIndex % POW2[leafBits]!) * CD_TABLE.CD_BYTES;
    }
    return this.#readCdTable(cdAddr, STE.WORDS / 2, nested, ste.s2R, out);
  }

  /** Reads `count` qwords of the CD table at `addr`, an IPA translated by stage 2 when `nested` (`s2r`: STE.S2R). */
  #readCdTable(addr: number, count: number, nested: boolean, s2r: boolean, out: SmmuConfig): number {
    let pa = addr;
    if (nested) {
      pa = this.#stage2!.translate(out.s2Root, out.s2Cfg, addr, this.#fault);
      if (pa < 0) {
        const event = this.#fault.words[4]!;
        const record = event === SMMU_EVT.F_WALK_EABT || s2r;
        configEvent(out, event, 0);
        out.record = record ? 1 : 0;
        out.stage2 = 1;
        out.eventClass = EVT_CLASS.CD;
        out.ipa = addr;
        return event;
      }
    }
    if (!this.#mem.readQwords(pa, count, this.#w)) {
      configEvent(out, SMMU_CFG_EVT.F_CD_FETCH, pa);
      if (nested) out.ipa = addr;
      return SMMU_CFG_EVT.F_CD_FETCH;
    }
    return 0;
  }

  /** Step 12 (QEMU `decode_cd`); on success fills the stage-1 output. */
  #stageOne(ste: Ste, cd: Cd, out: SmmuConfig): number {
    const caps = this.caps;
    const bad = SMMU_CFG_EVT.C_BAD_CD;
    if (!cd.valid || !cd.aa64) return configEvent(out, bad, 0);
    if (!cd.a && caps.termModel) return configEvent(out, bad, 0);
    if (cd.s && (caps.stallModel === STALL_MODEL.TerminateOnly || ste.s1StallD)) return configEvent(out, bad, 0);
    if ((cd.ha && caps.httu < HTTU.Access) || (cd.hd && caps.httu < HTTU.AccessDirty)) {
      return configEvent(out, bad, 0);
    }
    const affd = cd.affd || cd.ha ? CFG.AFFD : 0;
    let cfg0 = 0;
    let granule0 = 0;
    if (!cd.epd0) {
      granule0 = cdTgGranule(cd.tg0, false);
      cfg0 = this.#stageOneTable(cd.t0sz, granule0, cd.ttb0, cd, affd | (cd.had0 ? CFG.HAD : 0));
      if (cfg0 === 0) return configEvent(out, bad, 0);
    }
    let cfg1 = 0;
    let granule1 = 0;
    if (!cd.epd1) {
      granule1 = cdTgGranule(cd.tg1, true);
      cfg1 = this.#stageOneTable(cd.t1sz, granule1, cd.ttb1, cd, affd | (cd.had1 ? CFG.HAD : 0));
      if (cfg1 === 0) return configEvent(out, bad, 0);
    }

    const F = SMMU_CFG_FLAG;
    out.asid = caps.asid16 ? cd.asid : cd.asid & 0xff;
    if (cfg0 !== 0) {
      out.ttb0 = alignDown(cd.ttb0, startTableBits(cfg0, granule0));
      out.ttb0Cfg = cfg0;
      out.granule0 = granule0;
    }
    if (cfg1 !== 0) {
      out.ttb1 = alignDown(cd.ttb1, startTableBits(cfg1, granule1));
      out.ttb1Cfg = cfg1;
      out.granule1 = granule1;
    }
    out.tbi = cd.tbi;
    out.mair0 = cd.mair0;
    out.mair1 = cd.mair1;
    out.flags |=
      (cd.epd0 ? F.EPD0 : 0) |
      (cd.epd1 ? F.EPD1 : 0) |
      (cd.affd ? F.AFFD : 0) |
      (cd.had0 ? F.HAD0 : 0) |
      (cd.had1 ? F.HAD1 : 0) |
      (cd.wxn ? F.WXN : 0) |
      (cd.uwxn ? F.UWXN : 0) |
      (cd.pan ? F.PAN : 0) |
      (cd.hd ? F.HD : 0) |
      (cd.ha ? F.HA : 0) |
      (cd.s ? F.CD_S : 0) |
      (cd.r ? F.CD_R : 0) |
      (cd.a ? F.CD_A : 0) |
      (cd.aset ? F.ASET : 0) |
      (cd.s || caps.stallModel === STALL_MODEL.StallForced ? F.S1_STALL : 0);
    return SMMU_RESOLVED;
  }

  /** One enabled TTB's checks (TxSZ, TG and ENDI, TTB against IPS): its packed config, or 0 when ILLEGAL. */
  #stageOneTable(tsz: number, granule: number, ttb: number, cd: Cd, flags: number): number {
    if (tsz < 16 || tsz > 39) return 0;
    if (!this.#granuleImplemented(granule) || cd.endi) return 0;
    const psBits = this.#effectivePs(cd.ips, granule);
    if (ttb >= POW2[psBits]!) return 0;
    const inputSize = 64 - tsz;
    const stride = granule - 3;
    const start = 4 - Math.ceil((inputSize - granule) / stride);
    return packWalkConfig(start, inputSize, psBits, flags);
  }

  /** Whether IDR5 advertises the granule of log2 size `granule` (0: a reserved encoding). */
  #granuleImplemented(granule: number): boolean {
    const caps = this.caps;
    return granule === 12 ? caps.gran4k : granule === 14 ? caps.gran16k : granule === 16 && caps.gran64k;
  }

  /** The effective output size in bits of the PS encoding `ps` (§1.8 step 5). */
  #effectivePs(ps: number, granule: number): number {
    const bits = PS_BITS[Math.min(ps, this.caps.oas)]!;
    return granule === 16 ? bits : Math.min(bits, 48);
  }
}

/** Records a configuration event in `out` (always recorded) and returns it. */
function configEvent(out: SmmuConfig, event: number, fetchAddr: number): number {
  out.reset();
  out.event = event;
  out.record = 1;
  out.fetchAddr = fetchAddr;
  return event;
}

/** log2 of the bytes one entry at `level` maps, for a granule of 2^`granule` bytes. */
function levelShift(level: number, granule: number): number {
  return granule + (granule - 3) * (3 - level);
}

/** log2 of the size in bytes of the start table of the packed config `cfg`. */
function startTableBits(cfg: number, granule: number): number {
  return cfgInputSize(cfg) - levelShift(cfgStartLevel(cfg), granule) + 3;
}

/** `addr` with its bits below `bits` cleared (0 when `bits` ≥ 52: beyond every address). */
function alignDown(addr: number, bits: number): number {
  return bits >= 52 ? 0 : addr - (addr % POW2[bits]!);
}

function checkCap(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${String(value)}`);
  }
}
