/*
 * The SMMUv3 event types a configuration fetch raises (reference/config-formats.md §5.1,
 * viommu-queues.md §1.6; QEMU `SMMUEventType`), and the CLASS values of an event record. The
 * event types a page walk raises are SMMU_EVT in src/pgtable/arm/desc.ts; this file adds the
 * configuration ones and does not repeat those.
 */

/** Event types of the stream-table and context-descriptor fetch. */
export const SMMU_CFG_EVT = {
  /** The StreamID is beyond the stream table, or its L1STD has SPAN = 0 or does not reach it. */
  C_BAD_STREAMID: 0x02,
  /** Reading an L1STD or an STE aborted; the record carries the fetch address. */
  F_STE_FETCH: 0x03,
  /** The STE is invalid (V = 0) or ILLEGAL. */
  C_BAD_STE: 0x04,
  /** A transaction without a SubstreamID on a stream with S1CDMax > 0 and S1DSS = terminate. */
  F_STREAM_DISABLED: 0x06,
  /** A SubstreamID the STE does not allow, or an L1CD with V = 0. */
  C_BAD_SUBSTREAMID: 0x08,
  /** Reading an L1CD or a CD aborted; the record carries the fetch address. */
  F_CD_FETCH: 0x09,
  /** The CD is invalid (V = 0) or ILLEGAL. */
  C_BAD_CD: 0x0a,
} as const;

/** Event record CLASS (dword1[41:40]): what the access that faulted was for. */
export const EVT_CLASS = {
  /** A CD fetch (a stage-2 fault on it, under nesting). */
  CD: 0,
  /** A stage-1 translation-table fetch. */
  TT: 1,
  /** The transaction's input address. */
  IN: 2,
} as const;
