/**
 * The vendor-agnostic op format: both vendors' queue decoders produce it, the pipeline routes
 * it, and shards execute it. An op list is a Uint32Array (over a SharedArrayBuffer when workers
 * run it) of fixed 32-byte records, numbered per queue; addresses are hi/lo words.
 *
 *   word 0  opcode
 *   word 1  sequence number on its queue
 *   word 2  tag (see the table)
 *   word 3  second tag (see the table)
 *   word 4  address bits 31:0
 *   word 5  address bits 63:32
 *   word 6  pages (4 KiB units; 0xffffffff: all), or a count (see the table)
 *   word 7  flags: bit 0 leaf only; bits 15:8 granule shift; bits 17:16 stage (1, 2, or 3 =
 *           both); bit 18 all PASIDs (ATC)
 *
 * | opcode            | word 2        | word 3          | address, word 6                |
 * |-------------------|---------------|-----------------|--------------------------------|
 * | IotlbAll          |               |                 |                                |
 * | IotlbTag          | IOTLB tag     |                 |                                |
 * | IotlbAsid         | IOTLB tag     | ASID / PASID    |                                |
 * | IotlbRangeAllAsid | IOTLB tag     |                 | range                          |
 * | IotlbRange        | IOTLB tag     | ASID / PASID    | range                          |
 * | CfgSid            |               | SID             | word 6: SIDs from SID (0 = 1)  |
 * | CfgSidSsid        | SSID / PASID  | SID             |                                |
 * | CfgDid            | DID / VMID    |                 |                                |
 * | CfgDidPasid       | DID / VMID    | PASID           |                                |
 * | CfgAll            |               |                 |                                |
 * | AtcInv            | PASID         | device (SID)    | range (flag bit 18: all PASIDs) |
 * | Barrier           |               |                 |                                |
 * | ShadowSync        | IOTLB tag     | ASID / PASID    | range                          |
 * | ShadowS2          | parent tag    |                 | guest-physical range           |
 * | Crash             | shard         | linger ms       | word 6: crashes left           |
 *
 * The IOTLB tag is a domain descriptor index (below 4096): vendor models map a guest's VMID or
 * DID to one, so no guest can name another's. ASID 0 / PASID 0 also stands for requests without
 * a PASID (Linux's IOMMU_NO_PASID). Config tags (SID, DID) are the vendor model's own keys.
 */
export const OP_WORDS = 8;

/** Opcodes. */
export const Op = {
  Nop: 0,
  /** Invalidate every IOTLB entry. */
  IotlbAll: 1,
  /** Invalidate a VMID or DID (word 7 stage bits: stage 1, stage 2, or both). */
  IotlbTag: 2,
  /** Invalidate an ASID or PASID within a tag. */
  IotlbAsid: 3,
  /** Invalidate a page range for every ASID of a VMID. */
  IotlbRangeAllAsid: 4,
  /** Invalidate a page range (tag, ASID/PASID, address, pages, leaf hint, granule). */
  IotlbRange: 5,
  /** Config cache: by SID, by SID and SSID/PASID, by DID, by DID and PASID, or all. */
  CfgSid: 16,
  CfgSidSsid: 17,
  CfgDid: 18,
  CfgDidPasid: 19,
  CfgAll: 20,
  /** Device TLB (ATC): by device, PASID (or all PASIDs) and range. */
  AtcInv: 32,
  /** A barrier: completes when everything before it on its queue has taken effect. */
  Barrier: 48,
  /**
   * Software nesting, a stage-1 invalidation of a shadowed domain: re-walk the guest's table over
   * the range in the shards that own it, rewrite or drop the shadow entries (prefetching where
   * the domain allows), then drop the tag's IOTLB entries of the range.
   */
  ShadowSync: 64,
  /**
   * Software nesting, a stage-2 change of a nest parent (word 2, its descriptor) over a
   * guest-physical range: every shard drops its shadow entries that depend on those pages, and
   * their IOTLB entries, through its reverse index.
   */
  ShadowS2: 65,
  /** Test only: the worker that runs it dies mid-batch (word 6: how many more times). */
  Crash: 255,
} as const;

/** Flag bits of word 7. */
export const OpFlag = {
  Leaf: 1,
  /** Granule shift field (bits 15:8). */
  GranuleShift: 8,
  /** Stage field (bits 17:16). */
  StageShift: 16,
  Stage1: 1 << 16,
  Stage2: 2 << 16,
  /** ATC: every PASID of the device. */
  AllPasids: 1 << 18,
} as const;

/** A writer of op lists. */
export class OpList {
  /** The records. */
  readonly words: Uint32Array;
  /** Ops written. */
  count = 0;

  /** An op list of room for `capacity` ops, over a SharedArrayBuffer (workers read it in place). */
  constructor(capacity: number) {
    this.words = new Uint32Array(new SharedArrayBuffer(capacity * OP_WORDS * 4));
  }

  /** Appends an op; returns its index. */
  push(opcode: number, seq: number, tag = 0, tag2 = 0, addr = 0, pages = 0, flags = 0): number {
    if (this.count * OP_WORDS >= this.words.length) throw new RangeError('op list is full');
    const at = this.count * OP_WORDS;
    const w = this.words;
    w[at] = opcode;
    w[at + 1] = seq;
    w[at + 2] = tag;
    w[at + 3] = tag2;
    w[at + 4] = addr % 4294967296;
    w[at + 5] = Math.floor(addr / 4294967296);
    w[at + 6] = pages;
    w[at + 7] = flags;
    return this.count++;
  }
}

/** The address of op `i`. */
export function opAddr(words: Uint32Array, i: number): number {
  return words[i * OP_WORDS + 5]! * 4294967296 + words[i * OP_WORDS + 4]!;
}
