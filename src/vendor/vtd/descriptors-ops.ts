/**
 * VT-d descriptors to vendor-agnostic ops (src/ops/format.ts): what each decoded invalidation
 * descriptor asks of the shared caches (reference/viommu-queues.md §2.2, §3.3, §6.2).
 */
import { Op, OpFlag, type OpList } from '../../ops/index.js';
import { DescType, Field, GRAN, PC_GRAN, PIOTLB_GRAN, type VtdDescriptor } from './descriptors.js';

/** How the vendor model names its keys for a guest's DIDs and SIDs. */
export interface VtdTagMap {
  /** The IOTLB tag of guest domain `did`, or -1 when nothing is cached under it. */
  tagOf(did: number): number;
  /** The ATC device word of source-id `sid`, or -1 when no device-TLB is modelled for it. */
  devOf(sid: number): number;
}

/** Word 6 of an op: every page. */
const ALL_PAGES = 0xffffffff;
/** Second-stage and first-stage entries: IOTLB (0x2) descriptors drop both (reference §2.2). */
const BOTH_STAGES = OpFlag.Stage1 | OpFlag.Stage2;

/** log2 of 4 KiB pages from which a range is sent as "all pages": word 6 holds 32 bits. */
const ALL_FROM_LOG2 = 32;

/** Count of trailing zero bits of a 32-bit word (32 for 0). */
function ctz32(x: number): number {
  const low = x & -x;
  return low === 0 ? 32 : 31 - Math.clz32(low);
}

/** Count of trailing one bits of a page number below 2^52. */
function trailingOnes(pfn: number): number {
  const lo = pfn % 4294967296;
  if (lo !== 0xffffffff) return ctz32(~lo);
  return 32 + ctz32(~Math.floor(pfn / 4294967296));
}

/**
 * Appends a range op of 2^log2 pages holding byte address `addr`, aligned down to its size;
 * from 2^32 pages on it becomes the all-pages form (address 0), which only over-invalidates.
 */
function pushRange(
  ops: OpList,
  opcode: number,
  seq: number,
  tag: number,
  tag2: number,
  addr: number,
  log2: number,
  flags: number,
): void {
  if (log2 >= ALL_FROM_LOG2) {
    ops.push(opcode, seq, tag, tag2, 0, ALL_PAGES, flags);
    return;
  }
  const pages = 2 ** log2;
  ops.push(opcode, seq, tag, tag2, addr - (addr % (pages * 4096)), pages, flags);
}

/**
 * log2 of the pages of a device-TLB invalidation: S = 0 is one page at Addr; S = 1 is
 * 8 KiB << (trailing ones of Addr[63:12]), QEMU `do_invalidate_device_tlb` (reference §2.2).
 */
function deviceTlbLog2(addr: number, s: number): number {
  return s === 0 ? 0 : 1 + trailingOnes(addr / 4096);
}

/** The device-selective context-cache form (G = 3): FM ignores the function number's top FM bits. */
function pushContextDevice(ops: OpList, seq: number, sid: number, fm: number): number {
  if (fm === 0) {
    ops.push(Op.CfgSid, seq, 0, sid, 0, 1);
    return 1;
  }
  if (fm === 3) {
    ops.push(Op.CfgSid, seq, 0, sid & ~7, 0, 8);
    return 1;
  }
  // FM 1 ignores function bit 2, FM 2 bits 2:1 (QEMU `vtd_context_device_invalidate`): SIDs 4
  // or 2 apart, so one op per SID of the set. The walk visits every submask of `ignored`.
  const ignored = fm === 1 ? 4 : 6;
  const base = sid & ~ignored;
  let n = 0;
  let m = 0;
  do {
    ops.push(Op.CfgSid, seq, 0, base | m, 0, 1);
    n++;
    m = (m - ignored) & ignored;
  } while (m !== 0);
  return n;
}

/**
 * Appends to `ops` the ops for one descriptor that decoded Ok, each stamped `seq`; returns how
 * many. IOTLB ops name the tag `map.tagOf(did)` and are skipped when it is -1 (nothing can be
 * cached under an unknown DID); config ops carry the guest's raw DID and SID (the vendor model's
 * own keys); ATC ops name `map.devOf(sid)` and are skipped when it is -1. A wait becomes a
 * Barrier (its flags and status address stay in `d` for the queue consumer); IEC and page group
 * responses produce no op. Throws RangeError if `ops` is full.
 */
export function descriptorToOps(d: VtdDescriptor, map: VtdTagMap, seq: number, ops: OpList): number {
  const f = d.f;
  const g = f[Field.g]!;
  switch (d.type) {
    case DescType.ContextCache:
      if (g === GRAN.Global) ops.push(Op.CfgAll, seq);
      else if (g === GRAN.Domain) ops.push(Op.CfgDid, seq, f[Field.did]);
      else return pushContextDevice(ops, seq, f[Field.sid]!, f[Field.fm]!);
      return 1;
    case DescType.Iotlb: {
      if (g === GRAN.Global) {
        ops.push(Op.IotlbAll, seq);
        return 1;
      }
      const tag = map.tagOf(f[Field.did]!);
      if (tag < 0) return 0;
      if (g === GRAN.Domain) ops.push(Op.IotlbTag, seq, tag, 0, 0, 0, BOTH_STAGES);
      else {
        const flags = (f[Field.ih]! !== 0 ? OpFlag.Leaf : 0) | BOTH_STAGES;
        pushRange(ops, Op.IotlbRangeAllAsid, seq, tag, 0, f[Field.addr]!, f[Field.am]!, flags);
      }
      return 1;
    }
    case DescType.PasidIotlb: {
      // First-stage (and nested) entries only (reference §2.2).
      const tag = map.tagOf(f[Field.did]!);
      if (tag < 0) return 0;
      const pasid = f[Field.pasid]!;
      if (g === PIOTLB_GRAN.Pasid) ops.push(Op.IotlbAsid, seq, tag, pasid, 0, 0, OpFlag.Stage1);
      else {
        const flags = (f[Field.ih]! !== 0 ? OpFlag.Leaf : 0) | OpFlag.Stage1;
        pushRange(ops, Op.IotlbRange, seq, tag, pasid, f[Field.addr]!, f[Field.am]!, flags);
      }
      return 1;
    }
    case DescType.PasidCache:
      if (g === PC_GRAN.AllPasids) ops.push(Op.CfgDid, seq, f[Field.did]);
      else if (g === PC_GRAN.PasidSelective) ops.push(Op.CfgDidPasid, seq, f[Field.did], f[Field.pasid]);
      else ops.push(Op.CfgAll, seq);
      return 1;
    case DescType.DeviceTlb: {
      const dev = map.devOf(f[Field.sid]!);
      if (dev < 0) return 0;
      const addr = f[Field.addr]!;
      pushRange(ops, Op.AtcInv, seq, 0, dev, addr, deviceTlbLog2(addr, f[Field.s]!), 0);
      return 1;
    }
    case DescType.PasidDeviceTlb: {
      const dev = map.devOf(f[Field.sid]!);
      if (dev < 0) return 0;
      const addr = f[Field.addr]!;
      const log2 = deviceTlbLog2(addr, f[Field.s]!);
      if (g === 1) pushRange(ops, Op.AtcInv, seq, 0, dev, addr, log2, OpFlag.AllPasids);
      else pushRange(ops, Op.AtcInv, seq, f[Field.pasid]!, dev, addr, log2, 0);
      return 1;
    }
    case DescType.Wait:
      ops.push(Op.Barrier, seq);
      return 1;
    default:
      // IEC (no interrupt remapping is modelled) and page group responses (the fault path's).
      return 0;
  }
}
