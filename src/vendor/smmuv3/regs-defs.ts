/**
 * Arm SMMUv3 programming-interface registers (Non-secure, pages 0 and 1): offsets and bit
 * positions (reference/viommu-queues.md §1.1, §1.5; reference/config-formats.md §3.1; Linux
 * `arm-smmu-v3.h`, QEMU `smmuv3-internal.h`, Arm IHI0070 §6.3). Every register is 32 bits wide; a
 * 64-bit register is two words, low word first, and its high-word fields are given here as bit
 * positions within that high word (`_HI` names).
 */

/** Register offsets in page 0, sorted by offset (keep sorted). */
export const SMMU_REG = {
  /** Features: stages, table formats, stall model, ATS/PRI, MSI … RO. */
  IDR0: 0x00,
  /** StreamID/SubstreamID widths and queue size limits, RO. */
  IDR1: 0x04,
  /** VATOS page base (0: no VATOS), RO. */
  IDR2: 0x08,
  /** Range invalidation, HAD, BBML …, RO. */
  IDR3: 0x0c,
  /** IMPLEMENTATION DEFINED, RO. */
  IDR4: 0x10,
  /** Output address size, translation granules, STALL_MAX, RO. */
  IDR5: 0x14,
  /** Implementation identification, RO. */
  IIDR: 0x18,
  /** Architecture revision (3.x), RO. */
  AIDR: 0x1c,
  /** Global control: SMMUEN and the queue enables. */
  CR0: 0x20,
  /** Acknowledges CR0 updates, RO. */
  CR0ACK: 0x24,
  /** Table and queue memory attributes. */
  CR1: 0x28,
  /** E2H, RECINVSID, PTM. */
  CR2: 0x2c,
  /** Dormant status, RO. */
  STATUSR: 0x40,
  /** Global bypass attributes (used while SMMUEN = 0). */
  GBPA: 0x44,
  /** Interrupt enables. */
  IRQ_CTRL: 0x50,
  /** Acknowledges IRQ_CTRL updates, RO. */
  IRQ_CTRLACK: 0x54,
  /** Global errors, toggled by the SMMU, RO. */
  GERROR: 0x60,
  /** Global error acknowledgements, toggled by software. */
  GERRORN: 0x64,
  /** 64-bit GERROR MSI address. */
  GERROR_IRQ_CFG0: 0x68,
  /** GERROR MSI data. */
  GERROR_IRQ_CFG1: 0x70,
  /** GERROR MSI memory attributes. */
  GERROR_IRQ_CFG2: 0x74,
  /** 64-bit stream table base. */
  STRTAB_BASE: 0x80,
  /** Stream table format, size and split. */
  STRTAB_BASE_CFG: 0x88,
  /** 64-bit command queue base and size. */
  CMDQ_BASE: 0x90,
  /** Command queue producer index (software). */
  CMDQ_PROD: 0x98,
  /** Command queue consumer index and error code (SMMU). */
  CMDQ_CONS: 0x9c,
  /** 64-bit event queue base and size. */
  EVTQ_BASE: 0xa0,
  /** Page-0 alias of the event queue producer index (the register lives in page 1). */
  EVTQ_PROD: 0xa8,
  /** Page-0 alias of the event queue consumer index (the register lives in page 1). */
  EVTQ_CONS: 0xac,
  /** 64-bit event queue MSI address. */
  EVTQ_IRQ_CFG0: 0xb0,
  /** Event queue MSI data. */
  EVTQ_IRQ_CFG1: 0xb8,
  /** Event queue MSI memory attributes. */
  EVTQ_IRQ_CFG2: 0xbc,
  /** 64-bit PRI queue base and size. */
  PRIQ_BASE: 0xc0,
  /** Page-0 alias of the PRI queue producer index (the register lives in page 1). */
  PRIQ_PROD: 0xc8,
  /** Page-0 alias of the PRI queue consumer index (the register lives in page 1). */
  PRIQ_CONS: 0xcc,
  /** 64-bit PRI queue MSI address. */
  PRIQ_IRQ_CFG0: 0xd0,
  /** PRI queue MSI data. */
  PRIQ_IRQ_CFG1: 0xd8,
  /** PRI queue interrupt condition (LO) and MSI memory attributes. */
  PRIQ_IRQ_CFG2: 0xdc,
} as const;

/** Offset of page 1 from page 0. */
export const SMMU_PAGE1 = 0x10000;

/** The registers of page 1, as offsets from page 0 (IHI0070 §6.2.2). */
export const SMMU_PAGE1_REG = {
  /** Event queue producer index (SMMU). */
  EVTQ_PROD: SMMU_PAGE1 + SMMU_REG.EVTQ_PROD,
  /** Event queue consumer index (software). */
  EVTQ_CONS: SMMU_PAGE1 + SMMU_REG.EVTQ_CONS,
  /** PRI queue producer index (SMMU). */
  PRIQ_PROD: SMMU_PAGE1 + SMMU_REG.PRIQ_PROD,
  /** PRI queue consumer index (software). */
  PRIQ_CONS: SMMU_PAGE1 + SMMU_REG.PRIQ_CONS,
} as const;

/** Bytes of the MMIO window: pages 0 and 1 (QEMU maps 0x20000). */
export const SMMU_MMIO_SIZE = 0x20000;

/** Bytes of page 0 that hold registers this model implements (through PRIQ_IRQ_CFG2). */
export const SMMU_REG_BYTES = 0x100;

/** The 64-bit registers (the only offsets where an 8-byte access is accepted). */
export const SMMU_QUAD_REGS: readonly number[] = [
  SMMU_REG.GERROR_IRQ_CFG0,
  SMMU_REG.STRTAB_BASE,
  SMMU_REG.CMDQ_BASE,
  SMMU_REG.EVTQ_BASE,
  SMMU_REG.EVTQ_IRQ_CFG0,
  SMMU_REG.PRIQ_BASE,
  SMMU_REG.PRIQ_IRQ_CFG0,
];

/** IDR0 fields. */
export const IDR0 = {
  /** bit 0: stage 2 translation supported. */
  S2P: 1 << 0,
  /** bit 1: stage 1 translation supported. */
  S1P: 1 << 1,
  /** bits 3:2: translation table formats (TTF values). */
  TtfShift: 2,
  /** bit 4: coherent access to tables, queues and MSIs. */
  COHACC: 1 << 4,
  /** bit 5: broadcast TLB maintenance. */
  BTM: 1 << 5,
  /** bits 7:6: hardware Access/Dirty flag updates (HTTU values). */
  HttuShift: 6,
  /** bit 9: hypervisor stage 1 contexts (EL2, EL2-E2H). */
  HYP: 1 << 9,
  /** bit 10: PCIe ATS. */
  ATS: 1 << 10,
  /** bit 12: 16-bit ASIDs. */
  ASID16: 1 << 12,
  /** bit 13: message-signalled interrupts. */
  MSI: 1 << 13,
  /** bit 14: WFE wake-up events (CMD_SYNC CS = SIG_SEV). */
  SEV: 1 << 14,
  /** bit 16: PCIe PRI and the PRI queue. */
  PRI: 1 << 16,
  /** bit 18: 16-bit VMIDs. */
  VMID16: 1 << 18,
  /** bit 19: 2-level context descriptor tables. */
  CD2L: 1 << 19,
  /** bits 22:21: translation table endianness (TTENDIAN values). */
  TtendianShift: 21,
  /** bits 25:24: stall model (STALL_MODEL values). */
  StallModelShift: 24,
  /** bit 26: terminated transactions always abort (CD.A must be 1). */
  TERM_MODEL: 1 << 26,
  /** bits 28:27: stream table levels (ST_LEVEL values). */
  StLevelShift: 27,
  /** Mask of a two-bit IDR0 field after shifting. */
  Field2Mask: 0x3,
} as const;

/** IDR0.TTF values. */
export const TTF = {
  /** 0b10: AArch64 tables only. */
  AArch64: 2,
  /** 0b11: AArch32 (LPAE) and AArch64 tables. */
  AArch32AArch64: 3,
} as const;

/** IDR0.HTTU values. */
export const HTTU = {
  /** No hardware flag updates. */
  None: 0,
  /** Access flag updates. */
  Access: 1,
  /** Access flag and dirty state updates. */
  AccessDirty: 2,
} as const;

/** IDR0.TTENDIAN values. */
export const TTENDIAN = {
  /** CD.ENDI and STE.S2ENDI may select either endianness. */
  Mixed: 0,
  /** Little-endian tables only. */
  Little: 2,
  /** Big-endian tables only. */
  Big: 3,
} as const;

/** IDR0.STALL_MODEL values. */
export const STALL_MODEL = {
  /** Stall and terminate models both supported. */
  StallAndTerminate: 0,
  /** Terminate only: STE.S2S and CD.S must be 0; no CMD_RESUME / CMD_STALL_TERM. */
  TerminateOnly: 1,
  /** Stall forced: STE.S2S and CD.S must be 1. */
  StallForced: 2,
} as const;

/** IDR0.ST_LEVEL values. */
export const ST_LEVEL = {
  /** Linear stream table only. */
  Linear: 0,
  /** 2-level stream table supported as well. */
  TwoLevel: 1,
} as const;

/** IDR1 fields. */
export const IDR1 = {
  /** bits 5:0: StreamID width. */
  SidsizeShift: 0,
  /** SIDSIZE mask after shifting. */
  SidsizeMask: 0x3f,
  /** bits 10:6: SubstreamID width (0 = no substreams, at most 20). */
  SsidsizeShift: 6,
  /** bits 15:11: log2 of the largest PRI queue. */
  PriqsShift: 11,
  /** bits 20:16: log2 of the largest event queue. */
  EvtqsShift: 16,
  /** bits 25:21: log2 of the largest command queue. */
  CmdqsShift: 21,
  /** Mask of SSIDSIZE and the queue size fields after shifting. */
  Field5Mask: 0x1f,
} as const;

/** IDR3 fields. */
export const IDR3 = {
  /** bit 2: hierarchical attribute disable (CD.HAD0/1). */
  HAD: 1 << 2,
  /** bit 10: range invalidation (TLBI with TG/NUM/SCALE). */
  RIL: 1 << 10,
} as const;

/** IDR5 fields. */
export const IDR5 = {
  /** bits 2:0: output address size (OAS_ENCODING). */
  OasMask: 0x7,
  /** bit 4: 4 KiB translation granule. */
  GRAN4K: 1 << 4,
  /** bit 5: 16 KiB translation granule. */
  GRAN16K: 1 << 5,
  /** bit 6: 64 KiB translation granule. */
  GRAN64K: 1 << 6,
  /** bits 31:16: most stalled transactions the SMMU can hold. */
  StallMaxShift: 16,
  /** STALL_MAX mask after shifting. */
  StallMaxMask: 0xffff,
} as const;

/** IDR5.OAS encoding for each output address size in bits. */
export const OAS_ENCODING = { 32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5, 52: 6 } as const;

/** AIDR fields: SMMUv3.<minor> is ArchMajorRev 0, ArchMinorRev <minor>. */
export const AIDR = {
  /** bits 3:0: ArchMinorRev. */
  MinorMask: 0xf,
  /** bits 7:4: ArchMajorRev (0 for SMMUv3). */
  MajorShift: 4,
} as const;

/** CR0 (and CR0ACK) bits. */
export const CR0 = {
  /** bit 0: translation enable (else GBPA bypass or abort). */
  SMMUEN: 1 << 0,
  /** bit 1: PRI queue writes (needs IDR0.PRI; effective only with SMMUEN). */
  PRIQEN: 1 << 1,
  /** bit 2: event queue writes. */
  EVTQEN: 1 << 2,
  /** bit 3: command queue processing. */
  CMDQEN: 1 << 3,
  /** bit 4: check ATS-translated traffic against STE.EATS (needs IDR0.ATS). */
  ATSCHK: 1 << 4,
} as const;

/** CR1 fields: queue attributes (Guarded by the queue enables) and table attributes (Guarded by SMMUEN). */
export const CR1 = {
  /** bits 5:0: QUEUE_IC, QUEUE_OC, QUEUE_SH. */
  QueueMask: 0x3f,
  /** bits 11:6: TABLE_IC, TABLE_OC, TABLE_SH. */
  TableMask: 0xfc0,
} as const;

/** CR2 bits. */
export const CR2 = {
  /** bit 0: EL2-E2H translation regime (needs IDR0.HYP). */
  E2H: 1 << 0,
  /** bit 1: record C_BAD_STREAMID for out-of-range StreamIDs. */
  RECINVSID: 1 << 1,
  /** bit 2: private TLB maintenance (needs IDR0.BTM). */
  PTM: 1 << 2,
} as const;

/** GBPA fields. */
export const GBPA = {
  /** bits 3:0: MemAttr. */
  MemAttrMask: 0xf,
  /** bit 4: MTCFG, override the memory type with MemAttr. */
  MTCFG: 1 << 4,
  /** bits 11:8: ALLOCCFG. */
  AllocCfgShift: 8,
  /** bits 13:12: SHCFG (0b01 = use incoming). */
  ShcfgShift: 12,
  /** bits 17:16: PRIVCFG. */
  PrivCfgShift: 16,
  /** bits 19:18: INSTCFG. */
  InstCfgShift: 18,
  /** bit 20: abort all incoming transactions while SMMUEN = 0. */
  ABORT: 1 << 20,
  /** bit 31: Update, written 1 with the new value; reads 1 until the update completes. */
  UPDATE: 0x80000000,
  /** Every attribute field (bits 20:16, 13:8, 4:0). */
  FieldsMask: 0x001f3f1f,
  /** Reset value as QEMU's SMMU_GBPA_RESET_VAL: SHCFG = use incoming, bypass. */
  Reset: 0x1000,
} as const;

/** IRQ_CTRL (and IRQ_CTRLACK) bits. */
export const IRQ_CTRL = {
  /** bit 0: GERROR interrupt. */
  GERROR_IRQEN: 1 << 0,
  /** bit 1: PRI queue interrupt (needs IDR0.PRI). */
  PRIQ_IRQEN: 1 << 1,
  /** bit 2: event queue interrupt. */
  EVTQ_IRQEN: 1 << 2,
} as const;

/** GERROR / GERRORN bits: an error is active while GERROR[x] != GERRORN[x]. */
export const GERROR = {
  /** bit 0: command queue error; CMDQ_CONS.ERR holds the CERROR code. */
  CMDQ_ERR: 1 << 0,
  /** bit 2: an event queue write aborted. */
  EVTQ_ABT_ERR: 1 << 2,
  /** bit 3: a PRI queue write aborted (needs IDR0.PRI). */
  PRIQ_ABT_ERR: 1 << 3,
  /** bit 4: a CMD_SYNC MSI aborted (needs IDR0.MSI). */
  MSI_CMDQ_ABT_ERR: 1 << 4,
  /** bit 5: an event queue MSI aborted (needs IDR0.MSI). */
  MSI_EVTQ_ABT_ERR: 1 << 5,
  /** bit 6: a PRI queue MSI aborted (needs IDR0.MSI and IDR0.PRI). */
  MSI_PRIQ_ABT_ERR: 1 << 6,
  /** bit 7: a GERROR MSI aborted (needs IDR0.MSI). */
  MSI_GERROR_ABT_ERR: 1 << 7,
  /** bit 8: service failure mode entered. */
  SFM_ERR: 1 << 8,
} as const;

/** *_IRQ_CFG0 (MSI address) and *_IRQ_CFG2 (MSI attributes) fields. */
export const IRQ_CFG = {
  /** CFG0 low word: ADDR bits 31:2. */
  AddrLowMask: 0xfffffffc,
  /** CFG2 bits 5:0: SH and MemAttr. */
  AttrMask: 0x3f,
  /** PRIQ_IRQ_CFG2 bit 31: LO, interrupt only for requests with Last = 1. */
  LO: 0x80000000,
} as const;

/** STRTAB_BASE fields. */
export const STRTAB_BASE = {
  /** Low word: ADDR bits 31:6. */
  AddrLowMask: 0xffffffc0,
  /** High word bit 30 (bit 62): RA, read-allocate hint. */
  RA_HI: 1 << 30,
} as const;

/** STRTAB_BASE_CFG fields. */
export const STRTAB_BASE_CFG = {
  /** bits 5:0: LOG2SIZE (effective value capped at IDR1.SIDSIZE). */
  Log2SizeMask: 0x3f,
  /** bits 10:6: SPLIT (6, 8 or 10; others behave as 6). */
  SplitShift: 6,
  /** SPLIT mask after shifting. */
  SplitMask: 0x1f,
  /** bits 17:16: FMT (STRTAB_FMT; reserved values behave as linear). */
  FmtShift: 16,
  /** FMT mask after shifting. */
  FmtMask: 0x3,
} as const;

/** STRTAB_BASE_CFG.FMT values. */
export const STRTAB_FMT = {
  /** ADDR points to an array of STEs. */
  Linear: 0,
  /** ADDR points to an array of level-1 stream table descriptors. */
  TwoLevel: 1,
} as const;

/** The SPLIT values the architecture defines. */
export const STRTAB_SPLITS: readonly number[] = [6, 8, 10];

/** CMDQ_BASE / EVTQ_BASE / PRIQ_BASE fields. */
export const Q_BASE = {
  /** Low word bits 4:0: LOG2SIZE (effective value capped at the IDR1 maximum). */
  Log2SizeMask: 0x1f,
  /** Low word: ADDR bits 31:5. */
  AddrLowMask: 0xffffffe0,
  /** High word bit 30 (bit 62): RA (CMDQ) or WA (EVTQ, PRIQ) allocation hint. */
  ALLOC_HI: 1 << 30,
} as const;

/** PROD / CONS index fields (bits [log2size-1:0] index, bit [log2size] wrap). */
export const Q_INDEX = {
  /** bits 19:0: index and wrap bit for the largest queue. */
  Mask: 0xfffff,
  /** The largest queue the architecture allows: 2^19 entries. */
  MaxLog2Size: 19,
  /** bit 31 of EVTQ/PRIQ PROD (OVFLG) and CONS (OVACKFLG): overflow flag and its acknowledgement. */
  OVF: 0x80000000,
} as const;

/** CMDQ_CONS fields beyond the index. */
export const CMDQ_CONS = {
  /** bits 30:24: ERR, the CERROR code of the command at RD. */
  ErrShift: 24,
  /** ERR mask after shifting. */
  ErrMask: 0x7f,
} as const;

/** CMDQ_CONS.ERR codes (reference/viommu-queues.md §1.5). */
export const CERROR = {
  /** No error. */
  NONE: 0,
  /** Illegal or unsupported command. */
  ILL: 1,
  /** Abort while fetching the command. */
  ABT: 2,
  /** A CMD_SYNC could not complete because an ATC invalidation failed. */
  ATC_INV_SYNC: 3,
} as const;

/** Queue entry sizes in bytes. */
export const QUEUE_ENTRY_BYTES = {
  /** Commands: 2 × u64. */
  cmdq: 16,
  /** Event records: 4 × u64. */
  evtq: 32,
  /** PRI requests: 2 × u64. */
  priq: 16,
} as const;
