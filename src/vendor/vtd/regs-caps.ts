import { CAP, ECAP, FRCD_MAX, VTD_REG } from './regs-defs.js';

/** Capabilities a VMM chooses for its emulated VT-d unit (QEMU `intel-iommu` properties in brackets). */
export interface VtdRegisterOptions {
  /** CAP.CM [caching-mode]; default false. */
  cachingMode?: boolean;
  /** Host address width: CAP.MGAW and the widest SAGAW [aw-bits]; default 48. */
  addressWidth?: 39 | 48 | 57;
  /** Number of fault recording registers, 1–256 (CAP.NFR + 1); default 1, as QEMU. */
  faultRecords?: number;
  /** ECAP.SMTS and scalable-mode root tables [x-scalable-mode]; default false. */
  scalableMode?: boolean;
  /** ECAP.FLTS, first-stage tables in scalable mode [x-flts]; default false. */
  firstStage?: boolean;
  /** ECAP.SLTS, second-stage tables in scalable mode; default true. */
  secondStage?: boolean;
  /** ECAP.NEST (needs both stages); default false. */
  nesting?: boolean;
  /** PASID width in bits (ECAP.PASID, PSS = width − 1), 0 = no PASIDs [x-pasid gives 20]; default 0. */
  pasidWidth?: number;
  /** ECAP.DT, device-TLBs [device-iotlb]; default false. */
  deviceTlb?: boolean;
  /** ECAP.PRS and the page request registers (needs PASIDs) [x-pri]; default false. */
  pageRequests?: boolean;
  /** ECAP.PT [pt]; default true. */
  passThrough?: boolean;
  /** ECAP.IR, EIM and MHMV, and the IRE command [intremap, eim]; default false. */
  interruptRemapping?: boolean;
  /** CAP.MAMV, the largest page-selective address mask; default 18 (1 GiB), as QEMU. */
  mamv?: number;
  /** Whether IQA.DW = 1 (256-bit descriptors) is accepted; needs scalable mode; default = scalableMode. */
  wideDescriptors?: boolean;
  /** VER register value; default 0x10 (1.0), as QEMU. */
  version?: number;
  /**
   * Drop a fault whose source id already has a pending record, as QEMU's `vtd_try_collapse_fault`
   * does; default true.
   */
  collapseFaults?: boolean;
}

/** Options with every default applied. */
export type ResolvedVtdOptions = Required<VtdRegisterOptions>;

/** Every message an option check can raise (one place, STYLE.md). */
const OPTION_ERRORS = {
  addressWidth: (v: number) => `addressWidth must be 39, 48 or 57, got ${v}`,
  faultRecords: (v: number) => `faultRecords must be an integer in [1, ${FRCD_MAX}], got ${v}`,
  pasidWidth: (v: number) => `pasidWidth must be an integer in [0, 20], got ${v}`,
  pasidNeedsScalable: 'PASIDs need scalable mode (QEMU: "Need to set scalable mode for PASID")',
  stagesNeedScalable: 'firstStage/nesting need scalable mode (QEMU: "x-flts is only available in scalable mode")',
  noStage: 'scalable mode needs firstStage or secondStage',
  nestingNeedsBoth: 'nesting needs both firstStage and secondStage',
  prsNeedsPasid: 'pageRequests need scalable mode and a PASID width',
  mamv: (v: number) => `mamv must be an integer in [0, 63], got ${v}`,
  wideNeedsScalable: '256-bit descriptors need scalable mode (IQA.DW is reserved without ECAP.SMTS)',
  version: (v: number) => `version must be an integer in [0x10, 0xff], got ${v}`,
} as const;

function isIntIn(v: number, lo: number, hi: number): boolean {
  return Number.isInteger(v) && v >= lo && v <= hi;
}

/** Applies defaults and rejects combinations a VMM could not build (QEMU `vtd_decide_config`). */
export function resolveVtdOptions(o: VtdRegisterOptions = {}): ResolvedVtdOptions {
  const scalableMode = o.scalableMode ?? false;
  const r: ResolvedVtdOptions = {
    cachingMode: o.cachingMode ?? false,
    addressWidth: o.addressWidth ?? 48,
    faultRecords: o.faultRecords ?? 1,
    scalableMode,
    firstStage: o.firstStage ?? false,
    secondStage: o.secondStage ?? true,
    nesting: o.nesting ?? false,
    pasidWidth: o.pasidWidth ?? 0,
    deviceTlb: o.deviceTlb ?? false,
    pageRequests: o.pageRequests ?? false,
    passThrough: o.passThrough ?? true,
    interruptRemapping: o.interruptRemapping ?? false,
    mamv: o.mamv ?? 18,
    wideDescriptors: o.wideDescriptors ?? scalableMode,
    version: o.version ?? 0x10,
    collapseFaults: o.collapseFaults ?? true,
  };
  const width: number = r.addressWidth;
  if (width !== 39 && width !== 48 && width !== 57) throw new RangeError(OPTION_ERRORS.addressWidth(width));
  if (!isIntIn(r.faultRecords, 1, FRCD_MAX)) throw new RangeError(OPTION_ERRORS.faultRecords(r.faultRecords));
  if (!isIntIn(r.pasidWidth, 0, 20)) throw new RangeError(OPTION_ERRORS.pasidWidth(r.pasidWidth));
  if (!isIntIn(r.mamv, 0, 63)) throw new RangeError(OPTION_ERRORS.mamv(r.mamv));
  if (!isIntIn(r.version, 0x10, 0xff)) throw new RangeError(OPTION_ERRORS.version(r.version));
  if (!scalableMode) {
    if (r.pasidWidth > 0) throw new RangeError(OPTION_ERRORS.pasidNeedsScalable);
    if (r.firstStage || r.nesting) throw new RangeError(OPTION_ERRORS.stagesNeedScalable);
    if (r.wideDescriptors) throw new RangeError(OPTION_ERRORS.wideNeedsScalable);
  } else if (!r.firstStage && !r.secondStage) {
    throw new RangeError(OPTION_ERRORS.noStage);
  }
  if (r.nesting && !(r.firstStage && r.secondStage)) throw new RangeError(OPTION_ERRORS.nestingNeedsBoth);
  if (r.pageRequests && r.pasidWidth === 0) throw new RangeError(OPTION_ERRORS.prsNeedsPasid);
  return r;
}

/** SAGAW bit for each second-stage width: bit 1 = 39 (3-level), 2 = 48 (4-level), 3 = 57 (5-level). */
const SAGAW_BIT = { 39: 1n << 1n, 48: 1n << 2n, 57: 1n << 3n } as const;

/** Domain ids are 16 bits, as QEMU: ND = (16 − 4) / 2. */
const ND_16_BITS = 6n;

/** SLLPS: 2 MiB and 1 GiB second-stage pages, as QEMU. */
const SLLPS_2M_1G = 0x3n;

/** ECAP.MHMV with interrupt remapping, as QEMU (handle mask up to 15). */
const MHMV_IR = 0xfn;

/**
 * CAP as QEMU's `vtd_cap_init` builds it: ND 16-bit, FRO/NFR, MAMV, PSI, 2 MiB and 1 GiB second-stage
 * pages, MGAW, read/write draining, SAGAW for every width up to `addressWidth`, and CM on request.
 * First-stage support adds FS1GP, and FS5LP at 57 bits.
 */
export function vtdCap(o: ResolvedVtdOptions): bigint {
  let cap =
    (ND_16_BITS << CAP.NdShift) |
    (BigInt(o.addressWidth - 1) << CAP.MgawShift) |
    (BigInt(VTD_REG.FRCD / 16) << CAP.FroShift) |
    (SLLPS_2M_1G << CAP.SllpsShift) |
    CAP.PSI |
    (BigInt(o.faultRecords - 1) << CAP.NfrShift) |
    (BigInt(o.mamv) << CAP.MamvShift) |
    CAP.DWD |
    CAP.DRD;
  for (const w of [39, 48, 57] as const) if (w <= o.addressWidth) cap |= SAGAW_BIT[w] << CAP.SagawShift;
  if (o.cachingMode) cap |= CAP.CM;
  if (o.scalableMode && o.firstStage) {
    cap |= CAP.FS1GP;
    if (o.addressWidth === 57) cap |= CAP.FS5LP;
  }
  return cap;
}

/** ECAP as QEMU's `vtd_cap_init` builds it, plus NEST, PRS/PDS and a chosen PASID width. */
export function vtdEcap(o: ResolvedVtdOptions): bigint {
  let ecap = ECAP.QI | (BigInt(VTD_REG.IVA / 16) << ECAP.IroShift);
  if (o.interruptRemapping) ecap |= ECAP.IR | ECAP.EIM | (MHMV_IR << ECAP.MhmvShift);
  if (o.deviceTlb) ecap |= ECAP.DT;
  if (o.passThrough) ecap |= ECAP.PT;
  if (o.scalableMode) {
    ecap |= ECAP.SMTS | ECAP.SRS;
    if (o.firstStage) ecap |= ECAP.FLTS;
    if (o.secondStage) ecap |= ECAP.SLTS;
    if (o.nesting) ecap |= ECAP.NEST;
  }
  if (o.pasidWidth > 0) ecap |= ECAP.PASID | (BigInt(o.pasidWidth - 1) << ECAP.PssShift);
  if (o.pageRequests) ecap |= ECAP.PRS | ECAP.PDS;
  return ecap;
}
