/**
 * SMMUv3 commands to vendor-agnostic ops (src/ops/format.ts): what each decoded command asks of
 * the shared caches (reference/viommu-queues.md §1.3, §3.1, §6.1).
 *
 * Mapping decisions (the spec permits over-invalidation, never under-invalidation):
 * - TLBI ranges: TG = 0 is the single-address form: one 4 KiB page at Addr, granule unknown
 *   (granule shift 0); the IOTLB drops every entry overlapping it, so a block or a larger page
 *   holding Addr goes too. TG != 0 is the RIL form: `(NUM+1) << SCALE` granules of
 *   2^(2·TG+10) bytes from Addr (not aligned: the spec's range is Addr <= A < Addr + Range),
 *   with the granule shift in the flags. TTL is a level hint that would only let the SMMU keep
 *   more: it is ignored, so it never shrinks what is invalidated. A range of 2^32 pages or more
 *   becomes the all-pages form (word 6 holds 32 bits).
 * - TLBI_NH_VA drops (VMID, ASID) entries; the spec also drops global (nG = 0) entries of other
 *   ASIDs at that VA, which the IOTLB does not model (it has no global attribute).
 * - TLBI_S2_IPA drops (VMID, `map.s2Asid`) stage-2 entries; combined S1+S2 entries need a following
 *   TLBI_S12_VMALL or NH_ALL, as the spec says.
 * - TLBI_NSNH_ALL (every entry of the Non-secure EL1 regime), the EL2 TLBIs (no EL2 regime is
 *   tagged here), PRI_RESP, RESUME and STALL_TERM return {@link UNIT_HANDLES}: the unit acts on
 *   them itself. NSNH_ALL is not IotlbAll because IotlbAll would also drop the entries of other
 *   guests sharing the IOTLB; the unit flushes the tags of its own VMIDs (as the VT-d unit does
 *   for a global IOTLB flush).
 * - CFGI_STE drops the SID's STE and CDs (CfgSid of one SID; Leaf is moot: no L1 descriptors
 *   are cached). CFGI_STE_RANGE drops the aligned block of 2^(Range+1) SIDs; Range = 31
 *   (CFGI_ALL) is CfgAll. CFGI_CD is CfgSidSsid. CFGI_CD of SSID 0 also drops the entry of transactions
 *   without a SubstreamID (keyed NO_SSID), which use CD 0 too. CFGI_CD_ALL is CfgSid: the format has no
 *   "every SSID of a SID" op, so the STE goes too (an over-invalidation; QEMU drops the
 *   device's whole config for every CFGI_CD* as well).
 * - ATC_INV covers the naturally aligned span of 2^Size 4 KiB pages holding Addr (Size 52, or
 *   any span of 2^32 pages or more: all pages). SSV = 0 reaches every PASID (AllPasids);
 *   SSV = 1 the SSID, except with Global = 1, whose "global entries of every PASID" the ATC
 *   cannot tell apart, so it is AllPasids as well.
 * - CMD_SYNC is a Barrier (CS, MSI fields stay in the decoded command for the unit);
 *   PREFETCH_* produce nothing.
 */
import { NO_SSID } from '../../cache/config.js';
import { Op, OpFlag, type OpList } from '../../ops/index.js';
import { Field, Opcode, CFGI_ALL_RANGE, type SmmuCommand } from './commands.js';

/** How the vendor model names its keys for a guest's VMIDs and StreamIDs. */
export interface SmmuTagMap {
  /** The IOTLB tag of guest `vmid`, or -1 when nothing is cached under it. */
  tagOf(vmid: number): number;
  /** The ATC device slot of StreamID `sid`, or -1 when no ATC is modelled for it. */
  devOf(sid: number): number;
  /**
   * The ASID slot of the tag word under which stage-2-only translations are cached (what
   * TLBI_S2_IPA names); default 0. The SMMUv3 unit and the registry use {@link S2_ONLY_ASID}, so
   * that a stage-1 context with ASID 0 in the same VMID never shares their entries.
   */
  readonly s2Asid?: number;
}

/**
 * The ASID slot of stage-2-only IOTLB entries: above every 16-bit ASID, inside the tag word's
 * 20 bits (Iotlb.tagWord).
 */
export const S2_ONLY_ASID = 0x10000;

/**
 * {@link commandToOps} result for commands the unit executes itself, producing no op:
 * TLBI_NSNH_ALL, TLBI_EL2_*, PRI_RESP, RESUME, STALL_TERM.
 */
export const UNIT_HANDLES = -1;

/** Word 6 of an op: every page. */
const ALL_PAGES = 0xffffffff;
/** Both stages (TLBI_S12_VMALL). */
const BOTH_STAGES = OpFlag.Stage1 | OpFlag.Stage2;

/**
 * Appends the IOTLB range op of a TLBI with the range fields of `f` (see the file comment);
 * `stage` is the stage flag.
 */
function pushTlbiRange(
  ops: OpList,
  opcode: number,
  seq: number,
  tag: number,
  asid: number,
  f: Float64Array,
  stage: number,
): void {
  const tg = f[Field.tg]!;
  const addr = f[Field.addr]!;
  let flags = stage | (f[Field.leaf]! !== 0 ? OpFlag.Leaf : 0);
  if (tg === 0) {
    ops.push(opcode, seq, tag, asid, addr, 1, flags);
    return;
  }
  const shift = 2 * tg + 10;
  flags |= shift << OpFlag.GranuleShift;
  const pages = (f[Field.num]! + 1) * 2 ** f[Field.scale]! * 2 ** (shift - 12);
  if (pages >= ALL_PAGES) ops.push(opcode, seq, tag, asid, 0, ALL_PAGES, flags);
  else ops.push(opcode, seq, tag, asid, addr, pages, flags);
}

/**
 * Appends to `ops` the ops for one command that decoded Ok, each stamped `seq`; returns how
 * many, or {@link UNIT_HANDLES}. IOTLB ops name the tag `map.tagOf(vmid)` and are skipped when it
 * is -1 (nothing can be cached under an unknown VMID); config ops carry the guest's raw SID and
 * SSID (the vendor model's own keys); ATC ops name `map.devOf(sid)` and are skipped when it is
 * -1. Throws RangeError if `ops` is full.
 */
export function commandToOps(cmd: SmmuCommand, map: SmmuTagMap, seq: number, ops: OpList): number {
  const f = cmd.f;
  switch (cmd.opcode) {
    case Opcode.PrefetchConfig:
    case Opcode.PrefetchAddr:
      return 0;
    case Opcode.CfgiSte:
    case Opcode.CfgiCdAll:
      ops.push(Op.CfgSid, seq, 0, f[Field.sid], 0, 1);
      return 1;
    case Opcode.CfgiSteRange: {
      const range = f[Field.range]!;
      if (range === CFGI_ALL_RANGE) {
        ops.push(Op.CfgAll, seq);
        return 1;
      }
      const count = 2 ** (range + 1);
      const sid = f[Field.sid]!;
      ops.push(Op.CfgSid, seq, 0, sid - (sid % count), 0, count);
      return 1;
    }
    case Opcode.CfgiCd: {
      const ssid = f[Field.ssid]!;
      ops.push(Op.CfgSidSsid, seq, ssid, f[Field.sid]);
      if (ssid !== 0) return 1;
      // Transactions without a SubstreamID use CD 0 as well (their key is NO_SSID).
      ops.push(Op.CfgSidSsid, seq, NO_SSID, f[Field.sid]);
      return 2;
    }
    case Opcode.TlbiNhAll:
    case Opcode.TlbiNhAsid:
    case Opcode.TlbiNhVa:
    case Opcode.TlbiNhVaa:
    case Opcode.TlbiS12Vmall:
    case Opcode.TlbiS2Ipa: {
      const tag = map.tagOf(f[Field.vmid]!);
      if (tag < 0) return 0;
      const op = cmd.opcode;
      if (op === Opcode.TlbiNhAll) ops.push(Op.IotlbTag, seq, tag, 0, 0, 0, OpFlag.Stage1);
      else if (op === Opcode.TlbiS12Vmall) ops.push(Op.IotlbTag, seq, tag, 0, 0, 0, BOTH_STAGES);
      else if (op === Opcode.TlbiNhAsid) ops.push(Op.IotlbAsid, seq, tag, f[Field.asid], 0, 0, OpFlag.Stage1);
      else if (op === Opcode.TlbiNhVa) pushTlbiRange(ops, Op.IotlbRange, seq, tag, f[Field.asid]!, f, OpFlag.Stage1);
      else if (op === Opcode.TlbiNhVaa) pushTlbiRange(ops, Op.IotlbRangeAllAsid, seq, tag, 0, f, OpFlag.Stage1);
      else pushTlbiRange(ops, Op.IotlbRange, seq, tag, map.s2Asid ?? 0, f, OpFlag.Stage2);
      return 1;
    }
    case Opcode.AtcInv: {
      const dev = map.devOf(f[Field.sid]!);
      if (dev < 0) return 0;
      const allPasids = f[Field.ssv] === 0 || f[Field.global] !== 0;
      const pasid = allPasids ? 0 : f[Field.ssid]!;
      const flags = allPasids ? OpFlag.AllPasids : 0;
      const size = f[Field.size]!;
      if (size >= 32) {
        ops.push(Op.AtcInv, seq, pasid, dev, 0, ALL_PAGES, flags);
      } else {
        const pages = 2 ** size;
        const addr = f[Field.addr]!;
        ops.push(Op.AtcInv, seq, pasid, dev, addr - (addr % (pages * 4096)), pages, flags);
      }
      return 1;
    }
    case Opcode.Sync:
      ops.push(Op.Barrier, seq);
      return 1;
    case Opcode.TlbiNsnhAll:
    case Opcode.TlbiEl2All:
    case Opcode.TlbiEl2Asid:
    case Opcode.TlbiEl2Va:
    case Opcode.TlbiEl2Vaa:
    case Opcode.PriResp:
    case Opcode.Resume:
    case Opcode.StallTerm:
      return UNIT_HANDLES;
    default:
      // Not reached for a command that decoded Ok: every table opcode is a case above.
      return 0;
  }
}
