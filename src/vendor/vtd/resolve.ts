import { Access } from '../../pgtable/types.js';
import { isQualifiedFault, VTD_CFG_FR } from './resolve-faults.js';
import type { QwordReader } from './resolve-reader.js';
import type { ResolvedVtdOptions } from './regs-caps.js';
import {
  CONTEXT_ENTRY_RSVD,
  CONTEXT_TT,
  ContextEntry,
  decodeContextEntry,
  decodeRootEntry,
  decodeSmContextEntry,
  decodeSmRootEntry,
  ptrFromWords,
  ptrRsvdHi,
  ROOT_ENTRY_RSVD,
  RootEntry,
  RTADDR,
  SM_CONTEXT_ENTRY_RSVD,
  SM_ROOT_ENTRY_RSVD,
  SmContextEntry,
  SmRootEntry,
  TTM,
} from './structures.js';
import {
  decodePasidDirEntry,
  decodePasidEntry,
  FLPM,
  PASID,
  PASID_DIR_ENTRY_RSVD,
  PASID_ENTRY_RSVD,
  pasidDirEntries,
  PasidDirEntry,
  PasidEntry,
  PGTT,
} from './structures-pasid.js';

/*
 * The configuration fetch of a VT-d unit (reference/config-formats.md §4, §5.2–§5.4): from a
 * request's source id (and PASID) through the root entry, the context entry and, in scalable
 * mode, the PASID directory and PASID table, to what the page walk needs. Each check runs in the
 * reference's order, so when several faults apply the earliest is reported:
 *
 *   legacy:   TTM (0x30–0x32), root read 0x8, P 0x1, reserved 0xA, context read 0x9, P 0x2,
 *             reserved 0xB, invalid 0x3, TT blocks the request 0xD
 *   scalable: TTM 0x30, root read 0x38, LP/UP 0x39, reserved 0x3A, context read 0x40, P 0x41,
 *             reserved 0x42, invalid 0x43, then the PASID that selects the entry (RID_PASID 0x48
 *             without PASID; PASIDE 0x45 and directory range 0x46 with one), DTE 0x44, PRE 0x47,
 *             directory read 0x50, P 0x51, reserved 0x52, PASID entry read 0x58, P 0x59,
 *             reserved 0x5A, invalid 0x5B, ERE 0x5C, SRE 0x5D
 *
 * The walk itself (input range, the tables, permissions) is the page walker's; first-stage and
 * nested configurations return the table pointers only. Allocation-free: the resolver owns one
 * scratch buffer and the caller owns the output record.
 */

/** What a VT-d unit implements, as the configuration fetch needs it (CAP_REG / ECAP_REG). */
export interface VtdCaps {
  /** CAP.SAGAW: bit n set = second-stage AW code n supported (§2.3). */
  readonly sagaw: number;
  /** Maximum guest address width in bits (CAP.MGAW + 1). */
  readonly mgaw: number;
  /** Host address width in bits, 32..52: pointer bits at or above it are reserved. */
  readonly haw: number;
  /** ECAP.SMTS: scalable mode. */
  readonly smts: boolean;
  /** ECAP.ADMS: abort-DMA mode. */
  readonly adms: boolean;
  /** ECAP.DT: device TLB (ATS). */
  readonly dt: boolean;
  /** ECAP.PT: pass-through. */
  readonly pt: boolean;
  /** ECAP.PASID: requests with PASID. */
  readonly pasid: boolean;
  /** ECAP.PRS: page requests. */
  readonly prs: boolean;
  /** ECAP.FLTS: first-stage translation. */
  readonly flts: boolean;
  /** ECAP.SLTS: second-stage translation. */
  readonly slts: boolean;
  /** ECAP.NEST: nested translation. */
  readonly nest: boolean;
  /** CAP.FL5LP: 5-level first-stage paging. */
  readonly fl5lp: boolean;
}

/**
 * The resolver capabilities of a unit with resolved register options `o`: what its CAP/ECAP
 * advertise (regs-caps.ts), except ADMS, which the unit does not implement.
 */
export function vtdResolverCaps(o: ResolvedVtdOptions): VtdCaps {
  return {
    sagaw: o.addressWidth === 57 ? 0b1110 : o.addressWidth === 48 ? 0b0110 : 0b0010,
    mgaw: o.addressWidth,
    haw: Math.min(52, Math.max(32, o.addressWidth)),
    smts: o.scalableMode,
    adms: false,
    dt: o.deviceTlb,
    pt: o.passThrough,
    pasid: o.pasidWidth > 0,
    prs: o.pageRequests,
    flts: o.firstStage,
    slts: o.secondStage,
    nest: o.nesting,
    // CAP.FS5LP: first-stage 5-level paging with a 57-bit address width.
    fl5lp: o.firstStage && o.addressWidth === 57,
  };
}

/** The kind of request a configuration is fetched for. */
export const RequestKind = {
  /** An untranslated DMA request. */
  Untranslated: 0,
  /** An ATS translation request. */
  Translation: 1,
  /** A PRI page request. */
  PageRequest: 2,
} as const;

/** {@link VtdResolver.resolve} succeeded: the output record holds a configuration. */
export const VTD_RESOLVED = 0;
/** {@link VtdResolver.resolve} under TTM = abort DMA: the request is blocked and nothing is recorded. */
export const VTD_ABORTED = -1;

/** Bits of {@link VtdConfig.flags}. */
export const CONFIG_FLAG = {
  /** ATS translation requests allowed: legacy TT = 1, or scalable DTE. */
  DEV_TLB: 1 << 0,
  /** Page requests allowed (scalable PRE). */
  PRE: 1 << 1,
  /** Supervisor requests enabled (PASID-entry SRE). */
  SRE: 1 << 2,
  /** Execute requests enabled (ERE). */
  ERE: 1 << 3,
  /** Write protection applies to supervisor requests (WPE). */
  WPE: 1 << 4,
  /** Extended accessed flag (EAFE). */
  EAFE: 1 << 5,
  /** Second-stage execute permission used (SLEE). */
  SLEE: 1 << 6,
  /** Second-stage A/D bits (SLADE). */
  SLADE: 1 << 7,
  /** Page walks snooped (PWSNP). */
  PWSNP: 1 << 8,
  /** DMA snooped (PGSNP). */
  PGSNP: 1 << 9,
} as const;

/**
 * The output of one configuration fetch, reused across calls. The summary fields are rewritten by
 * every call; the decoded structures are valid up to the one whose check failed.
 */
export class VtdConfig {
  /** The fault reason, or 0 when resolved. */
  fault = 0;
  /** Whether the fault must be recorded: false when FPD suppresses a qualified fault (§5.4). */
  record = false;
  /**
   * FPD seen on the way (context, directory or PASID entry). After a success it still applies to
   * the walk's faults: record one only if `!fpd || !isQualifiedFault(code)`.
   */
  fpd = false;
  /** Whether TTM selected scalable mode. */
  scalable = false;
  /** The translation, in PGTT numbering: legacy TT 0/1 give SecondStage, TT 2 PassThrough. */
  type = 0;
  /** The PASID entry's PGTT; 0 in legacy mode. */
  pgtt = 0;
  /** Domain id. */
  did = 0;
  /** The PASID that selected the PASID entry (the request's, or RID_PASID); -1 in legacy mode. */
  pasid = -1;
  /** Whether the request is a supervisor request (its own privilege, or RID_PRIV without PASID). */
  priv = false;
  /** AW code of the second stage, or of pass-through's input width; 0 for first stage only. */
  aw = 0;
  /** Second-stage input width in bits: min(30 + 9·AW, MGAW). */
  ssWidth = 0;
  /** Second-stage levels: AW + 2. */
  ssLevels = 0;
  /** Second-stage root table (SecondStage, Nested); 0 otherwise. */
  ssptr = 0;
  /** First-stage paging mode, {@link FLPM} (FirstStage, Nested). */
  flpm = 0;
  /** First-stage input width: 48 or 57 (FirstStage, Nested); 0 otherwise. */
  fsWidth = 0;
  /** First-stage levels: 4 or 5 (FirstStage, Nested); 0 otherwise. */
  fsLevels = 0;
  /** First-stage root table, a guest-physical address under nesting (FirstStage, Nested); 0 otherwise. */
  fsptr = 0;
  /** {@link CONFIG_FLAG} bits. */
  flags = 0;
  /** The legacy root entry read. */
  readonly root = new RootEntry();
  /** The legacy context entry read. */
  readonly context = new ContextEntry();
  /** The scalable-mode root entry read. */
  readonly smRoot = new SmRootEntry();
  /** The scalable-mode context entry read. */
  readonly smContext = new SmContextEntry();
  /** The PASID directory entry read. */
  readonly pasidDir = new PasidDirEntry();
  /** The PASID entry read. */
  readonly pasidEntry = new PasidEntry();
}

/** Fetches configuration for requests, for one VT-d unit. */
export class VtdResolver {
  /** The root table address latched from RTADDR_REG. */
  rootTable = 0;
  /** The TTM latched from RTADDR_REG. */
  ttm: number = TTM.Legacy;
  /** What the unit implements. */
  readonly caps: Readonly<VtdCaps>;
  readonly #mem: QwordReader;
  readonly #w = new Int32Array(16);
  readonly #rsvdPtrHi: number;

  /** A resolver reading structures through `mem`. Throws RangeError if `caps.haw` is not 32..52. */
  constructor(mem: QwordReader, caps: VtdCaps) {
    if (!Number.isInteger(caps.haw) || caps.haw < 32 || caps.haw > 52) {
      throw new RangeError(`haw must be an integer from 32 to 52, got ${String(caps.haw)}`);
    }
    this.#mem = mem;
    this.caps = { ...caps };
    this.#rsvdPtrHi = ptrRsvdHi(caps.haw);
  }

  /** Latches RTADDR_REG (its two words), as the unit does on GCMD.SRTP. */
  setRtaddr(lo: number, hi: number): void {
    this.rootTable = ptrFromWords(lo, hi);
    this.ttm = (lo >>> RTADDR.TTM_SHIFT) & RTADDR.TTM_MASK;
  }

  /**
   * Fetches the configuration for a request from source id `sid` (bus << 8 | devfn) with PASID
   * `pasid` (0..0xfffff, or -1 for none). `access` holds {@link Access} bits (Exec and Priv
   * matter, and only with a PASID); `kind` is a {@link RequestKind}. Returns {@link VTD_RESOLVED},
   * a fault reason (also in `out.fault`, with `out.record`), or {@link VTD_ABORTED}.
   */
  resolve(sid: number, pasid: number, access: number, kind: number, out: VtdConfig): number {
    out.fault = 0;
    out.record = false;
    out.fpd = false;
    out.scalable = this.ttm === TTM.Scalable;
    out.type = 0;
    out.pgtt = 0;
    out.did = 0;
    out.pasid = -1;
    out.priv = false;
    out.aw = 0;
    out.ssWidth = 0;
    out.ssLevels = 0;
    out.ssptr = 0;
    out.flpm = 0;
    out.fsWidth = 0;
    out.fsLevels = 0;
    out.fsptr = 0;
    out.flags = 0;
    const caps = this.caps;
    switch (this.ttm) {
      case TTM.Legacy:
        if (pasid >= 0) return fault(out, VTD_CFG_FR.RTADDR_LEGACY_PASID, false);
        if (kind === RequestKind.PageRequest) return fault(out, VTD_CFG_FR.RTADDR_LEGACY_PRQ, false);
        return this.#legacy((sid >>> 8) & 0xff, sid & 0xff, kind, out);
      case TTM.Scalable:
        if (!caps.smts) return fault(out, VTD_CFG_FR.RTADDR_INV_TTM, false);
        return this.#scalable((sid >>> 8) & 0xff, sid & 0xff, pasid, access, kind, out);
      case TTM.AbortDma:
        if (!caps.adms) return fault(out, VTD_CFG_FR.RTADDR_INV_TTM, false);
        return VTD_ABORTED;
      default:
        return fault(out, VTD_CFG_FR.RTADDR_INV_TTM, false);
    }
  }

  #legacy(bus: number, devfn: number, kind: number, out: VtdConfig): number {
    const w = this.#w;
    const caps = this.caps;
    if (!this.#mem.readQwords(this.rootTable + bus * 16, 2, w)) return fault(out, VTD_CFG_FR.ROOT_TABLE_INV, false);
    const re = decodeRootEntry(w, 0, out.root);
    if (!re.present) return fault(out, VTD_CFG_FR.ROOT_ENTRY_P, false);
    if (hasReserved(w, ROOT_ENTRY_RSVD) || (w[1]! & this.#rsvdPtrHi) !== 0) {
      return fault(out, VTD_CFG_FR.ROOT_ENTRY_RSVD, false);
    }
    if (!this.#mem.readQwords(re.ctp + devfn * 16, 2, w)) return fault(out, VTD_CFG_FR.CONTEXT_TABLE_INV, false);
    const ce = decodeContextEntry(w, 0, out.context);
    const fpd = ce.fpd;
    if (!ce.present) return fault(out, VTD_CFG_FR.CONTEXT_ENTRY_P, fpd);
    if (hasReserved(w, CONTEXT_ENTRY_RSVD) || (w[1]! & this.#rsvdPtrHi) !== 0) {
      return fault(out, VTD_CFG_FR.CONTEXT_ENTRY_RSVD, fpd);
    }
    // QEMU vtd_dev_to_context_entry: AW against SAGAW, then TT against ECAP.
    if (
      ((caps.sagaw >>> ce.aw) & 1) === 0 ||
      ce.tt === 3 ||
      (ce.tt === CONTEXT_TT.DevIotlb && !caps.dt) ||
      (ce.tt === CONTEXT_TT.PassThrough && !caps.pt)
    ) {
      return fault(out, VTD_CFG_FR.CONTEXT_ENTRY_INV, fpd);
    }
    if (kind === RequestKind.Translation && ce.tt !== CONTEXT_TT.DevIotlb) {
      return fault(out, VTD_CFG_FR.CONTEXT_ENTRY_TT, fpd);
    }
    out.fpd = fpd;
    out.type = ce.tt === CONTEXT_TT.PassThrough ? PGTT.PassThrough : PGTT.SecondStage;
    out.did = ce.did;
    out.aw = ce.aw;
    out.ssWidth = Math.min(30 + 9 * ce.aw, caps.mgaw);
    out.ssLevels = ce.aw + 2;
    out.ssptr = ce.tt === CONTEXT_TT.PassThrough ? 0 : ce.slptptr;
    out.flags = ce.tt === CONTEXT_TT.DevIotlb ? CONFIG_FLAG.DEV_TLB : 0;
    return VTD_RESOLVED;
  }

  #scalable(bus: number, devfn: number, pasid: number, access: number, kind: number, out: VtdConfig): number {
    const w = this.#w;
    const caps = this.caps;
    const rsvdPtrHi = this.#rsvdPtrHi;
    const FR = VTD_CFG_FR;

    if (!this.#mem.readQwords(this.rootTable + bus * 16, 2, w)) return fault(out, FR.SM_ROOT_ACCESS_ERR, false);
    const re = decodeSmRootEntry(w, 0, out.smRoot);
    const upper = devfn >= 128;
    if (!(upper ? re.up : re.lp)) return fault(out, FR.SM_ROOT_ENTRY_P, false);
    // Fixed reserved bits of both halves; the address-width check only on the half followed.
    if (hasReserved(w, SM_ROOT_ENTRY_RSVD) || (w[upper ? 3 : 1]! & rsvdPtrHi) !== 0) {
      return fault(out, FR.SM_ROOT_ENTRY_RSVD, false);
    }

    const ctp = upper ? re.uctp : re.lctp;
    if (!this.#mem.readQwords(ctp + (devfn & 127) * 32, 4, w)) return fault(out, FR.SM_CONTEXT_ACCESS_ERR, false);
    const ce = decodeSmContextEntry(w, 0, out.smContext);
    let fpd = ce.fpd;
    if (!ce.present) return fault(out, FR.SM_CONTEXT_ENTRY_P, fpd);
    if (hasReserved(w, SM_CONTEXT_ENTRY_RSVD) || (w[1]! & rsvdPtrHi) !== 0) {
      return fault(out, FR.SM_CONTEXT_ENTRY_RSVD, fpd);
    }
    if ((ce.dte && !caps.dt) || (ce.paside && !caps.pasid) || (ce.pre && !caps.prs)) {
      return fault(out, FR.SM_CONTEXT_ENTRY_INV, fpd);
    }

    // The PASID that selects the PASID entry, and the request's privilege and execute attributes,
    // which only a PASID prefix carries.
    let pid: number;
    let priv: boolean;
    let exec: boolean;
    const dirEntries = pasidDirEntries(ce.pdts);
    if (pasid < 0) {
      pid = ce.ridPasid;
      if (pid >>> PASID.DIR_SHIFT >= dirEntries) return fault(out, FR.SM_RID_PASID_INV, fpd);
      priv = ce.ridPriv;
      exec = false;
    } else {
      if (!ce.paside) return fault(out, FR.SM_PASIDE_CLEAR, fpd);
      pid = pasid;
      if (pid >>> PASID.DIR_SHIFT >= dirEntries) return fault(out, FR.SM_PASID_BEYOND_PDTS, fpd);
      priv = (access & Access.Priv) !== 0;
      exec = (access & Access.Exec) !== 0;
    }
    if (kind === RequestKind.Translation && !ce.dte) return fault(out, FR.SM_DTE_CLEAR, fpd);
    if (kind === RequestKind.PageRequest && !ce.pre) return fault(out, FR.SM_PRE_ABS, fpd);

    const dirAddr = ce.pasidDirPtr + (pid >>> PASID.DIR_SHIFT) * PASID.DIR_ENTRY_BYTES;
    if (!this.#mem.readQwords(dirAddr, 1, w)) return fault(out, FR.PASID_DIR_ACCESS_ERR, fpd);
    const de = decodePasidDirEntry(w, 0, out.pasidDir);
    fpd ||= de.fpd; // QEMU vtd_ce_get_pasid_fpd: a directory entry's FPD counts even when P = 0
    if (!de.present) return fault(out, FR.PASID_DIR_ENTRY_P, fpd);
    if (hasReserved(w, PASID_DIR_ENTRY_RSVD) || (w[1]! & rsvdPtrHi) !== 0) {
      return fault(out, FR.PASID_DIR_ENTRY_RSVD, fpd);
    }

    const peAddr = de.pasidTablePtr + (pid & PASID.TABLE_INDEX_MASK) * PASID.ENTRY_BYTES;
    if (!this.#mem.readQwords(peAddr, 8, w)) return fault(out, FR.PASID_TABLE_ACCESS_ERR, fpd);
    const pe = decodePasidEntry(w, 0, out.pasidEntry);
    fpd ||= pe.fpd;
    if (!pe.present) return fault(out, FR.PASID_ENTRY_P, fpd);
    const pgtt = pe.pgtt;
    const usesSs = pgtt === PGTT.SecondStage || pgtt === PGTT.Nested;
    const usesFs = pgtt === PGTT.FirstStage || pgtt === PGTT.Nested;
    // The width check applies to the host-physical pointers in use: SLPTPTR for the second stage,
    // FLPTPTR for first-stage only (under nesting it is a GPA, checked by the nested walk, 0x74).
    if (
      hasReserved(w, PASID_ENTRY_RSVD) ||
      (usesSs && (w[1]! & rsvdPtrHi) !== 0) ||
      (pgtt === PGTT.FirstStage && (w[5]! & rsvdPtrHi) !== 0)
    ) {
      return fault(out, FR.PASID_ENTRY_RSVD, fpd);
    }
    if (
      !pgttSupported(pgtt, caps) ||
      (usesSs && ((caps.sagaw >>> pe.aw) & 1) === 0) ||
      (usesFs && (pe.flpm > FLPM.Level5 || (pe.flpm === FLPM.Level5 && !caps.fl5lp)))
    ) {
      return fault(out, FR.PASID_TABLE_ENTRY_INV, fpd);
    }
    if (exec && !pe.ere) return fault(out, FR.SM_ERE_CLEAR, fpd);
    if (priv && !pe.sre) return fault(out, FR.SM_SRE_CLEAR, fpd);

    out.fpd = fpd;
    out.type = pgtt;
    out.pgtt = pgtt;
    out.did = pe.did;
    out.pasid = pid;
    out.priv = priv;
    if (pgtt !== PGTT.FirstStage) {
      out.aw = pe.aw;
      out.ssWidth = Math.min(30 + 9 * pe.aw, caps.mgaw);
      out.ssLevels = pe.aw + 2;
    }
    if (usesSs) out.ssptr = pe.slptptr;
    if (usesFs) {
      out.flpm = pe.flpm;
      out.fsWidth = 48 + 9 * pe.flpm;
      out.fsLevels = 4 + pe.flpm;
      out.fsptr = pe.flptptr;
    }
    out.flags =
      (ce.dte ? CONFIG_FLAG.DEV_TLB : 0) |
      (ce.pre ? CONFIG_FLAG.PRE : 0) |
      (pe.sre ? CONFIG_FLAG.SRE : 0) |
      (pe.ere ? CONFIG_FLAG.ERE : 0) |
      (pe.wpe ? CONFIG_FLAG.WPE : 0) |
      (pe.eafe ? CONFIG_FLAG.EAFE : 0) |
      (pe.slee ? CONFIG_FLAG.SLEE : 0) |
      (pe.slade ? CONFIG_FLAG.SLADE : 0) |
      (pe.pwsnp ? CONFIG_FLAG.PWSNP : 0) |
      (pe.pgsnp ? CONFIG_FLAG.PGSNP : 0);
    return VTD_RESOLVED;
  }
}

function fault(out: VtdConfig, code: number, fpd: boolean): number {
  out.fault = code;
  out.fpd = fpd;
  out.record = !(fpd && isQualifiedFault(code));
  return code;
}

/** Whether any word of `w` has a bit of the same word of `rsvd` set. */
function hasReserved(w: Int32Array, rsvd: readonly number[]): boolean {
  let any = 0;
  for (let i = 0; i < rsvd.length; i++) any |= w[i]! & rsvd[i]!;
  return any !== 0;
}

function pgttSupported(pgtt: number, caps: Readonly<VtdCaps>): boolean {
  switch (pgtt) {
    case PGTT.FirstStage:
      return caps.flts;
    case PGTT.SecondStage:
      return caps.slts;
    case PGTT.Nested:
      return caps.nest;
    case PGTT.PassThrough:
      return caps.pt;
    default:
      return false;
  }
}
