/**
 * Intel VT-d remapping-unit registers: offsets and bit positions (reference/viommu-queues.md §2,
 * reference/config-formats.md §5.4; QEMU `intel_iommu_internal.h`, Linux `intel/iommu.h`).
 * 32-bit registers use plain numbers; CAP/ECAP fields are bigints because the capability
 * registers are built once, as whole quadwords.
 */

/** Register offsets in the MMIO window, sorted by offset (keep sorted). */
export const VTD_REG = {
  /** 32-bit version, RO. */
  VER: 0x00,
  /** 64-bit capabilities, RO. */
  CAP: 0x08,
  /** 64-bit extended capabilities, RO. */
  ECAP: 0x10,
  /** 32-bit global command, WO (reads 0). */
  GCMD: 0x18,
  /** 32-bit global status, RO. */
  GSTS: 0x1c,
  /** 64-bit root-table address and TTM. */
  RTADDR: 0x20,
  /** 64-bit context command (register-based context-cache invalidation). */
  CCMD: 0x28,
  /** 32-bit fault status. */
  FSTS: 0x34,
  /** 32-bit fault event control. */
  FECTL: 0x38,
  /** 32-bit fault event data. */
  FEDATA: 0x3c,
  /** 32-bit fault event address. */
  FEADDR: 0x40,
  /** 32-bit fault event upper address. */
  FEUADDR: 0x44,
  /** 64-bit invalidation queue head, RO. */
  IQH: 0x80,
  /** 64-bit invalidation queue tail. */
  IQT: 0x88,
  /** 64-bit invalidation queue address, size and descriptor width. */
  IQA: 0x90,
  /** 32-bit invalidation completion status. */
  ICS: 0x9c,
  /** 32-bit invalidation completion event control. */
  IECTL: 0xa0,
  /** 32-bit invalidation completion event data. */
  IEDATA: 0xa4,
  /** 32-bit invalidation completion event address. */
  IEADDR: 0xa8,
  /** 32-bit invalidation completion event upper address. */
  IEUADDR: 0xac,
  /** 64-bit invalidation queue error record, RO. */
  IQER: 0xb0,
  /** 64-bit interrupt-remapping table address. */
  IRTA: 0xb8,
  /** 64-bit page request queue head. */
  PQH: 0xc0,
  /** 64-bit page request queue tail. */
  PQT: 0xc8,
  /** 64-bit page request queue address and size. */
  PQA: 0xd0,
  /** 32-bit page request status. */
  PRS: 0xdc,
  /** 32-bit page request event control. */
  PECTL: 0xe0,
  /** 32-bit page request event data. */
  PEDATA: 0xe4,
  /** 32-bit page request event address. */
  PEADDR: 0xe8,
  /** 32-bit page request event upper address. */
  PEUADDR: 0xec,
  /** 64-bit invalidate address (IOTLB registers at ECAP.IRO·16, as QEMU places them), WO. */
  IVA: 0xf0,
  /** 64-bit IOTLB invalidate. */
  IOTLB: 0xf8,
  /** First 128-bit fault recording register (CAP.FRO·16, as QEMU places it). */
  FRCD: 0x220,
} as const;

/** Bytes per fault recording register. */
export const FRCD_BYTES = 16;

/** Most fault recording registers CAP.NFR can describe (NFR is 8 bits, number = NFR + 1). */
export const FRCD_MAX = 256;

/** GCMD command bits; the same positions in GSTS report the status (TE → TES, SRTP → RTPS …). */
export const GCMD = {
  /** bit 23: CFI, compatibility-format interrupts (persistent). */
  CFI: 1 << 23,
  /** bit 24: SIRTP, set interrupt-remap table pointer (one-shot). */
  SIRTP: 1 << 24,
  /** bit 25: IRE, interrupt remapping enable (persistent). */
  IRE: 1 << 25,
  /** bit 26: QIE, queued invalidation enable (persistent). */
  QIE: 1 << 26,
  /** bit 27: WBF, write-buffer flush (one-shot; CAP.RWBF is 0, so a no-op). */
  WBF: 1 << 27,
  /** bit 28: EAFL, advanced fault logging (CAP.AFL is 0, ignored). */
  EAFL: 1 << 28,
  /** bit 29: SFL, set fault log (CAP.AFL is 0, ignored). */
  SFL: 1 << 29,
  /** bit 30: SRTP, set root-table pointer (one-shot). */
  SRTP: 1 << 30,
  /** bit 31: TE, translation enable (persistent). */
  TE: 0x80000000,
  /** The writeable command bits 31:23. */
  Mask: 0xff800000,
} as const;

/** GSTS status bits (mirror GCMD). */
export const GSTS = {
  /** bit 23: CFIS. */
  CFIS: GCMD.CFI,
  /** bit 24: IRTPS, interrupt-remap table pointer latched. */
  IRTPS: GCMD.SIRTP,
  /** bit 25: IRES, interrupt remapping enabled. */
  IRES: GCMD.IRE,
  /** bit 26: QIES, queued invalidation enabled. */
  QIES: GCMD.QIE,
  /** bit 30: RTPS, root-table pointer latched. */
  RTPS: GCMD.SRTP,
  /** bit 31: TES, translation enabled. */
  TES: GCMD.TE,
} as const;

/** RTADDR low-word fields. */
export const RTADDR = {
  /** bits 11:10: TTM, translation table mode. */
  TtmShift: 10,
  /** TTM field mask (after shifting). */
  TtmMask: 0x3,
  /** bits 31:12 of the root-table address. */
  AddrMask: 0xfffff000,
} as const;

/** RTADDR.TTM values. */
export const TTM = {
  /** 00b: legacy root and context entries. */
  Legacy: 0,
  /** 01b: scalable-mode root and context entries (needs ECAP.SMTS). */
  Scalable: 1,
  /** 10b: reserved. */
  Reserved: 2,
  /** 11b: abort-DMA mode (needs ECAP.ADMS, not advertised). */
  AbortDma: 3,
} as const;

/** CCMD high-word fields (bits 63:32 of the register, numbered from bit 32). */
export const CCMD_HI = {
  /** bits 33:32: FM, function mask. */
  FmMask: 0x3,
  /** bits 60:59: CAIG, actual granularity (RO). */
  CaigShift: 27,
  /** bits 62:61: CIRG, requested granularity. */
  CirgShift: 29,
  /** bit 63: ICC, invalidate context cache; hardware clears it on completion. */
  ICC: 0x80000000,
  /** Writeable bits: ICC, CIRG, FM. */
  WriteMask: 0xe0000003,
} as const;

/** IOTLB-register high-word fields (bits 63:32 of the register, numbered from bit 32). */
export const IOTLB_HI = {
  /** bits 47:32: DID. */
  DidMask: 0xffff,
  /** bit 48: DW, drain writes. */
  DW: 1 << 16,
  /** bit 49: DR, drain reads. */
  DR: 1 << 17,
  /** bits 58:57: IAIG, actual granularity (RO). */
  IaigShift: 25,
  /** bits 61:60: IIRG, requested granularity. */
  IirgShift: 28,
  /** bit 63: IVT, invalidate IOTLB; hardware clears it on completion. */
  IVT: 0x80000000,
  /** Writeable bits: IVT, IIRG, DR, DW, DID. */
  WriteMask: 0xb003ffff,
} as const;

/** IVA low-word fields. */
export const IVA = {
  /** bits 5:0: AM, address mask (2^AM pages). */
  AmMask: 0x3f,
  /** bit 6: IH, invalidation hint (leaf entries only). */
  IH: 1 << 6,
  /** bits 31:12 of the address. */
  AddrMask: 0xfffff000,
} as const;

/** Granularity encodings shared by CCMD.CIRG/CAIG and IOTLB.IIRG/IAIG. */
export const INV_GRANULARITY = {
  /** 0: invalid request (or, in the actual field, "not performed"). */
  Invalid: 0,
  /** 1: global. */
  Global: 1,
  /** 2: domain-selective. */
  Domain: 2,
  /** 3: device-selective (context) or page-selective (IOTLB). */
  Selective: 3,
} as const;

/** FSTS bits. */
export const FSTS = {
  /** bit 0: PFO, primary fault overflow (W1C). */
  PFO: 1 << 0,
  /** bit 1: PPF, primary pending fault (RO, derived from the F bits). */
  PPF: 1 << 1,
  /** bit 4: IQE, invalidation queue error (W1C). */
  IQE: 1 << 4,
  /** bit 5: ICE, invalidation completion error (W1C). */
  ICE: 1 << 5,
  /** bit 6: ITE, invalidation time-out error (W1C). */
  ITE: 1 << 6,
  /** bit 7: PRO, page request overflow in VT-d 2.x; deprecated, W1C, never set (PRS.PRO reports it). */
  PRO: 1 << 7,
  /** bits 15:8: FRI, fault record index (RO). */
  FriShift: 8,
  /** FRI field mask (after shifting). */
  FriMask: 0xff,
  /** The W1C bits. */
  W1C: (1 << 0) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7),
  /** Conditions that, while set, mean a fault event is already owed to software (VT-d 7.3.1). */
  Pending: (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6),
} as const;

/** Event control bits, common to FECTL, IECTL and PECTL. */
export const EVENT_CTL = {
  /** bit 30: IP, interrupt pending (RO). */
  IP: 1 << 30,
  /** bit 31: IM, interrupt mask (RW, reset 1). */
  IM: 0x80000000,
} as const;

/** Event data: bits 15:0 (IMD); bits 31:16 (EIMD) only with ECAP.EIM. */
export const EVENT_DATA = { Mask: 0xffff, MaskEim: 0xffffffff } as const;

/** Event address: bits 31:2 (MA). */
export const EVENT_ADDR = { Mask: 0xfffffffc } as const;

/** IQH/IQT: the byte offset of a descriptor, bits 18:4 (bits 18:5 in 256-bit mode). */
export const IQ_OFFSET = {
  /** Queue offset bits 18:4. */
  Mask: 0x7fff0,
  /** Bit 4 must be 0 with 256-bit descriptors. */
  Bit4: 1 << 4,
} as const;

/** IQA low-word fields. */
export const IQA = {
  /** bits 2:0: QS, the queue is 2^QS 4 KiB pages. */
  QsMask: 0x7,
  /** bit 11: DW, 256-bit descriptors (only with ECAP.SMTS). */
  DW: 1 << 11,
  /** bits 31:12 of the base address. */
  AddrMask: 0xfffff000,
} as const;

/** ICS bits. */
export const ICS = {
  /** bit 0: IWC, an invalidation wait descriptor with IF=1 completed (W1C). */
  IWC: 1 << 0,
} as const;

/** IQER fields. IQEI is in the low word; the source ids are in the high word. */
export const IQER = {
  /** bits 3:0: IQEI, why IQE was set. */
  IqeiMask: 0xf,
  /** bits 47:32: ITESID (high word bits 15:0). */
  ItesidShift: 0,
  /** bits 63:48: ICESID (high word bits 31:16). */
  IcesidShift: 16,
} as const;

/** IQER.IQEI codes (VT-d 11.4.9.x; names as in VirtualBox's `VTDIQEI`). */
export const IQEI = {
  /** 0: no detail available. */
  InfoNotAvailable: 0,
  /** 1: IQT beyond the queue. */
  InvalidTail: 1,
  /** 2: fetching a descriptor failed. */
  FetchError: 2,
  /** 3: unknown descriptor type. */
  InvalidType: 3,
  /** 4: reserved field set in a known descriptor. */
  ReservedField: 4,
  /** 5: descriptor width not allowed (a 256-bit descriptor in a 128-bit queue, or DW=1 without SMTS). */
  InvalidWidth: 5,
  /** 6: IQT bit 4 set with 256-bit descriptors. */
  TailMisaligned: 6,
  /** 7: descriptor not valid in the current translation table mode. */
  InvalidTtm: 7,
} as const;

/** IRTA low-word fields. */
export const IRTA = {
  /** bits 3:0: S, the table has 2^(S+1) entries. */
  SizeMask: 0xf,
  /** bit 11: EIME, x2APIC (32-bit destination) mode. */
  EIME: 1 << 11,
  /** bits 31:12 of the table address. */
  AddrMask: 0xfffff000,
} as const;

/** PQH/PQT: byte offset of a 32-byte page request descriptor, bits 18:5. */
export const PQ_OFFSET = { Mask: 0x7ffe0 } as const;

/** Bytes per page request descriptor. */
export const PRQ_DESC_BYTES = 32;

/** PQA low-word fields. */
export const PQA = {
  /** bits 2:0: PQS, the queue holds 2^(PQS+7) descriptors. */
  PqsMask: 0x7,
  /** bits 31:12 of the base address. */
  AddrMask: 0xfffff000,
} as const;

/** PRS bits (both W1C). */
export const PRS = {
  /** bit 0: PPR, pending page request. */
  PPR: 1 << 0,
  /** bit 1: PRO, page request overflow. */
  PRO: 1 << 1,
} as const;

/**
 * Fault recording register, as four 32-bit words (config-formats.md §5.4; VT-d 11.4.14):
 * word 0/1 = FI (fault address 63:12), word 2 = bits 95:64, word 3 = bits 127:96.
 */
export const FRCD_W2 = {
  /** bits 79:64: SID. */
  SidMask: 0xffff,
  /** bit 92: T2, type bit 2 (page request or atomic). */
  T2: 1 << 28,
  /** bit 93: PRIV, supervisor request. */
  PRIV: 1 << 29,
  /** bit 94: EXE, execute requested. */
  EXE: 1 << 30,
  /** bit 95: PP, PASID present. */
  PP: 0x80000000,
} as const;

/** Fault recording register word 3 (bits 127:96). */
export const FRCD_W3 = {
  /** bits 103:96: FR, fault reason. */
  FrMask: 0xff,
  /** bits 123:104: PV, PASID value. */
  PvShift: 8,
  /** PV mask (after shifting). */
  PvMask: 0xfffff,
  /** bit 126: T1, type bit 1 (1 = read or atomic). */
  T1: 1 << 30,
  /** bit 127: F, fault recorded (W1C). */
  F: 0x80000000,
} as const;

/** CAP fields (bigint, whole register). */
export const CAP = {
  /** bits 2:0: ND, number of domain-id bits = 4 + 2·ND. */
  NdShift: 0n,
  /** bit 7: CM, caching mode (not-present entries may be cached; software invalidates on map). */
  CM: 1n << 7n,
  /** bits 12:8: SAGAW, supported second-stage widths (bit 1 = 39, 2 = 48, 3 = 57). */
  SagawShift: 8n,
  /** bits 21:16: MGAW, maximum guest address width − 1. */
  MgawShift: 16n,
  /** bits 33:24: FRO, fault-recording register offset / 16. */
  FroShift: 24n,
  /** bits 37:34: SLLPS, second-stage large pages (bit 0 = 2 MiB, bit 1 = 1 GiB). */
  SllpsShift: 34n,
  /** bit 39: PSI, page-selective invalidation. */
  PSI: 1n << 39n,
  /** bits 47:40: NFR, number of fault recording registers − 1. */
  NfrShift: 40n,
  /** bits 53:48: MAMV, maximum address mask value. */
  MamvShift: 48n,
  /** bit 54: DWD, write draining. */
  DWD: 1n << 54n,
  /** bit 55: DRD, read draining. */
  DRD: 1n << 55n,
  /** bit 56: FS1GP (FL1GP), first-stage 1 GiB pages. */
  FS1GP: 1n << 56n,
  /** bit 60: FS5LP (FL5LP), first-stage 5-level paging. */
  FS5LP: 1n << 60n,
} as const;

/** ECAP fields (bigint, whole register). */
export const ECAP = {
  /** bit 1: QI, queued invalidation. */
  QI: 1n << 1n,
  /** bit 2: DT, device-TLB (ATS). */
  DT: 1n << 2n,
  /** bit 3: IR, interrupt remapping. */
  IR: 1n << 3n,
  /** bit 4: EIM, extended (x2APIC) interrupt mode. */
  EIM: 1n << 4n,
  /** bit 6: PT, pass-through. */
  PT: 1n << 6n,
  /** bits 17:8: IRO, IOTLB register offset / 16. */
  IroShift: 8n,
  /** bits 23:20: MHMV, maximum interrupt handle mask. */
  MhmvShift: 20n,
  /** bit 26: NEST, nested translation. */
  NEST: 1n << 26n,
  /** bit 29: PRS, page requests. */
  PRS: 1n << 29n,
  /** bit 31: SRS, supervisor requests. */
  SRS: 1n << 31n,
  /** bits 39:35: PSS, PASID width − 1. */
  PssShift: 35n,
  /** bit 40: PASID. */
  PASID: 1n << 40n,
  /** bit 42: PDS, page-request drain. */
  PDS: 1n << 42n,
  /** bit 43: SMTS, scalable-mode translation. */
  SMTS: 1n << 43n,
  /** bit 46: SLTS, second-stage translation in scalable mode. */
  SLTS: 1n << 46n,
  /** bit 47: FLTS (FSTS), first-stage translation in scalable mode. */
  FLTS: 1n << 47n,
} as const;
