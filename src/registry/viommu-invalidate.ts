import { ALL_ASIDS, Iotlb } from '../cache/index.js';
import { Op, OpFlag, OpList, OP_WORDS, opAddr } from '../ops/index.js';
import { U64_MAX } from '../util/args.js';
import { IommufdError } from '../util/errors.js';
import { commandToOps, type SmmuTagMap } from '../vendor/smmuv3/commands-ops.js';
import { CERROR_NONE, decodeCommand, Opcode, SmmuCommand } from '../vendor/smmuv3/commands.js';
import type { IommufdCtx } from './context.js';
import { isShadowed, syncShadowRange } from './descriptors.js';
import { InvalidateError } from './hwpt-nested.js';
import { MOCK_DEV_CACHE_SLOTS, type ViommuObject } from './objects.js';

/*
 * IOMMU_HWPT_INVALIDATE on a vIOMMU (reference/iommufd.md §2 HWPT_INVALIDATE, §3 "ARM SMMUv3"
 * and "Selftest mock formats"), after the kernel's arm_vsmmu_cache_invalidate and
 * mock_viommu_cache_invalidate. Both copy the whole array first
 * (iommu_copy_struct_from_full_user_array: a wrong data type or a malformed entry anywhere is
 * EINVAL before any entry takes effect), then handle the entries in order; the first bad one stops
 * the call, and `entryNum` counts the entries that took effect.
 */

/**
 * One SMMUv3 command (`struct iommu_viommu_arm_smmuv3_invalidate`): cmd[0] and cmd[1], each a
 * u64 (bits 63:0 and 127:64 of the raw 128-bit CMDQ entry; the opcode is cmd[0] bits 7:0).
 */
export type ArmSmmuv3Command = readonly [bigint, bigint];

/** One entry of a selftest vIOMMU invalidation (`struct iommu_viommu_invalidate_selftest`). */
export interface SelftestViommuInvalidation {
  /** IOMMU_TEST_INVALIDATE_FLAG_ALL: every cache slot (cacheId is still checked). */
  flags?: { all?: boolean };
  /** The virtual ID of the device's vDEVICE on the vIOMMU (u32). */
  vdevId: number;
  /** The cache slot, 0..3 (u32). */
  cacheId: number;
}

/** What a host CMDQ batch holds at most (CMDQ_BATCH_ENTRIES); bounds the op list of one command. */
const OPS_PER_COMMAND = 64;

/**
 * IOMMU_HWPT_INVALIDATE on vIOMMU `viommuId` (`iommufd_hwpt_invalidate` → the driver's
 * `cache_invalidate`). Returns the entries handled; every failure is an {@link InvalidateError}
 * whose `entryNum` counts the entries that took effect. In the kernel's order: the id must be a
 * vIOMMU (ENOENT); the data type must be the vIOMMU's, `arm-smmuv3` or `selftest` (EINVAL); the
 * entries must be well-formed (EINVAL, nothing done). `arm-smmuv3` takes `entries` as an array of
 * {@link ArmSmmuv3Command} or a Uint32Array of 4 words per command (cmd[0] bits 31:0, 63:32,
 * cmd[1] bits 31:0, 63:32: what encodeCommand writes); `selftest` an array of
 * {@link SelftestViommuInvalidation}.
 *
 * `arm-smmuv3` (arm_vsmmu_convert_user_cmd), each command in turn:
 * - TLBI_NH_ALL, TLBI_NH_ASID, TLBI_NH_VA, TLBI_NH_VAA: the VMID field is overwritten with the
 *   vIOMMU's VMID; TLBI_NSNH_ALL becomes TLBI_NH_ALL with that VMID (cmd[1] = 0). They drop IOTLB
 *   entries of this vIOMMU's nested HWPTs only (all, by ASID, by ASID and VA range, by VA range
 *   for every ASID): whatever VMID the guest wrote, it reaches no other vIOMMU.
 * - ATC_INV, CFGI_CD, CFGI_CD_ALL: the SID field is a vSID, replaced by the SID of the device of
 *   the vIOMMU's vDEVICE with that virtual ID (none: EIO). ATC_INV drops the range from that
 *   device's ATC (devices with ATS). CFGI_CD and CFGI_CD_ALL drop nothing: the translator caches
 *   no CD configuration (translate/arm-nested.ts fetches it on every translation).
 * - Any other opcode: EIO.
 * - A converted command the host SMMU finds illegal (CERROR_ILL: a TLBI range with TG ≠ 0 and
 *   NUM = SCALE = TTL = 0, ATC_INV Size > 52, SSec = 1 …) takes no effect but is counted: the
 *   host driver's CMDQ error handling replaces it with a CMD_SYNC and the batch goes on.
 *
 * `selftest` (mock_viommu_cache_invalidate), each entry in turn: an unknown flag EOPNOTSUPP, a
 * cache slot above 3 EINVAL, a virtual ID without a vDEVICE EINVAL; then `all` clears the mock
 * device's 4 cache slots, otherwise slot `cacheId`.
 */
export function viommuInvalidate(ctx: IommufdCtx, viommuId: number, dataType: unknown, entries: unknown): number {
  const viommu = fail0(() => ctx.objects.get(viommuId, 'viommu'));
  const expected = viommu.viommuType === 'arm-smmuv3' ? 'arm-smmuv3' : 'selftest';
  if (dataType !== expected) {
    throw new InvalidateError(
      new IommufdError('EINVAL', `a ${viommu.viommuType} vIOMMU takes ${expected} entries, not ${String(dataType)}`),
      0,
    );
  }
  if (expected === 'arm-smmuv3') {
    const words = fail0(() => copyArmCommands(entries));
    return armInvalidate(ctx, viommu, words);
  }
  const list = fail0(() => copySelftestEntries(entries));
  return selftestInvalidate(viommu, list);
}

/** Runs a step before any entry is handled: its error becomes an InvalidateError with entryNum 0. */
function fail0<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof IommufdError && !(e instanceof InvalidateError)) throw new InvalidateError(e, 0);
    throw e;
  }
}

/** Runs entry `i`: its error becomes an InvalidateError with entryNum `i`. */
function atEntry(i: number, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof IommufdError) {
      throw new InvalidateError(new IommufdError(e.errno, `entry ${i}: ${e.message.replace(/^[A-Z0-9]+: /, '')}`), i);
    }
    throw e;
  }
}

// ---- arm-smmuv3 ---------------------------------------------------------------------------------

/** The commands as 32-bit words, 4 per command (the full-array copy); EINVAL for a malformed one. */
function copyArmCommands(entries: unknown): Uint32Array {
  if (entries instanceof Uint32Array) {
    if (entries.length % 4 !== 0) throw new IommufdError('EINVAL', 'a Uint32Array of commands needs 4 words each');
    return entries.slice();
  }
  if (!Array.isArray(entries)) {
    throw new IommufdError('EINVAL', 'arm-smmuv3 entries must be an array of [u64, u64] or a Uint32Array');
  }
  const words = new Uint32Array(entries.length * 4);
  entries.forEach((c: unknown, i) => {
    if (
      !Array.isArray(c) ||
      c.length !== 2 ||
      !c.every((w: unknown) => typeof w === 'bigint' && w >= 0n && w <= U64_MAX)
    ) {
      throw new IommufdError('EINVAL', `command ${i} is not [u64 bigint, u64 bigint]`);
    }
    for (let d = 0; d < 2; d++) {
      const w = c[d] as bigint;
      words[4 * i + 2 * d] = Number(w & 0xffff_ffffn);
      words[4 * i + 2 * d + 1] = Number(w >> 32n);
    }
  });
  return words;
}

/** The descriptors of the vIOMMU's nested HWPTs that translate (its VMID's IOTLB tags). */
function vmidTags(ctx: IommufdCtx, viommu: ViommuObject): number[] {
  const tags: number[] = [];
  for (const o of ctx.objects.all()) {
    if (o.type === 'hwpt-nested' && o.viommu === viommu && o.descriptor !== 0) tags.push(o.descriptor);
  }
  return tags;
}

function armInvalidate(ctx: IommufdCtx, viommu: ViommuObject, words: Uint32Array): number {
  const n = words.length / 4;
  const cmd = new SmmuCommand();
  const ops = new OpList(OPS_PER_COMMAND);
  let tags: number[] | undefined;
  // What commandToOps names: one IOTLB tag at a time (each of the vIOMMU's nested HWPTs), and the
  // ATC of the device the current command's SID names.
  let tag = -1;
  let atcDev = -1;
  const map: SmmuTagMap = { tagOf: () => tag, devOf: () => atcDev };
  for (let i = 0; i < n; i++) {
    atEntry(i, () => {
      const at = 4 * i;
      atcDev = convert(viommu, words, at);
      // The host CMDQ: an illegal command is skipped (see viommuInvalidate).
      if (decodeCommand(words, at, cmd) !== CERROR_NONE) return;
      if (cmd.opcode === Opcode.AtcInv) {
        tag = -1;
        ops.count = 0;
        commandToOps(cmd, map, 0, ops);
        applyOps(ctx, ops);
        return;
      }
      if (cmd.opcode === Opcode.CfgiCd || cmd.opcode === Opcode.CfgiCdAll) return; // no CD is cached
      atcDev = -1;
      tags ??= vmidTags(ctx, viommu);
      for (const t of tags) {
        tag = t;
        ops.count = 0;
        commandToOps(cmd, map, 0, ops);
        applyOps(ctx, ops);
      }
    });
  }
  return n;
}

/**
 * arm_vsmmu_convert_user_cmd, in place on the command at word `at`: EIO for an opcode a guest
 * may not send or a vSID without a vDEVICE. Returns the ATC device slot of a converted ATC_INV
 * (-1 when the device has no ATS, and for every other command).
 */
function convert(viommu: ViommuObject, words: Uint32Array, at: number): number {
  const op = words[at]! & 0xff;
  const vmid = viommu.vmid;
  switch (op) {
    case Opcode.TlbiNsnhAll:
      words[at] = Opcode.TlbiNhAll;
      words[at + 1] = vmid;
      words[at + 2] = 0;
      words[at + 3] = 0;
      return -1;
    case Opcode.TlbiNhAll:
    case Opcode.TlbiNhAsid:
    case Opcode.TlbiNhVa:
    case Opcode.TlbiNhVaa:
      // VMID: cmd[0] bits 47:32, the low half of word 1.
      words[at + 1] = ((words[at + 1]! & 0xffff_0000) | vmid) >>> 0;
      return -1;
    case Opcode.AtcInv:
    case Opcode.CfgiCd:
    case Opcode.CfgiCdAll: {
      // SID: cmd[0] bits 63:32, word 1.
      const vsid = words[at + 1]!;
      const vdev = viommu.vdevs.get(BigInt(vsid));
      if (vdev === undefined) {
        throw new IommufdError('EIO', `vSID 0x${vsid.toString(16)} has no vDEVICE on vIOMMU ${viommu.id}`);
      }
      words[at + 1] = vdev.dev.sid >>> 0;
      return op === Opcode.AtcInv && vdev.dev.ats ? vdev.dev.slot : -1;
    }
    default:
      throw new IommufdError('EIO', `opcode 0x${op.toString(16)} is not one a guest may issue on a vIOMMU`);
  }
}

/** Word 6 of an op: every page. */
const ALL_PAGES = 0xffffffff;

/**
 * Applies IOTLB and ATC ops on the control plane, each with one call of the cache's own
 * invalidation (ranges under the shards' owner words, wide flushes as epochs). Config ops are
 * dropped: nothing caches a vSTE's configuration.
 */
function applyOps(ctx: IommufdCtx, ops: OpList): void {
  const w = ops.words;
  const tlb = ctx.iotlb;
  const atc = ctx.atc;
  for (let i = 0; i < ops.count; i++) {
    const at = i * OP_WORDS;
    const tag = w[at + 2]!;
    const tag2 = w[at + 3]!;
    const pages = w[at + 6]!;
    const addr = opAddr(w, i);
    switch (w[at]) {
      case Op.IotlbTag:
        tlb?.flushTag(tag);
        break;
      case Op.IotlbAsid:
        tlb?.flushAsid(Iotlb.tagWord(tag, tag2));
        break;
      case Op.IotlbRange:
        // A software-nested domain's stage 1 changed: its shadow is re-walked over the range.
        if (pages === ALL_PAGES) tlb?.flushAsid(Iotlb.tagWord(tag, tag2));
        else if (isShadowed(ctx, tag)) syncShadowRange(ctx, tag, tag2, addr, pages * 4096, false);
        else tlb?.invalidateRange(Iotlb.tagWord(tag, tag2), addr, pages * 4096);
        break;
      case Op.IotlbRangeAllAsid:
        // Every ASID of a shadowed domain: its shadow entries are not indexed by address alone,
        // so the domain is flushed (the shadow lives under the IOTLB's epochs).
        if (pages === ALL_PAGES || isShadowed(ctx, tag)) tlb?.flushTag(tag);
        else tlb?.invalidateRange(tag, addr, pages * 4096, undefined, ALL_ASIDS);
        break;
      case Op.AtcInv: {
        // Word 2 the PASID, word 3 the device slot.
        const all = (w[at + 7]! & OpFlag.AllPasids) !== 0;
        if (pages === ALL_PAGES) {
          if (all) atc?.flushTag(tag2);
          else atc?.flushAsid(Iotlb.tagWord(tag2, tag));
        } else {
          atc?.invalidateRange(
            all ? tag2 : Iotlb.tagWord(tag2, tag),
            addr,
            pages * 4096,
            undefined,
            all ? ALL_ASIDS : 0,
          );
        }
        break;
      }
      default:
        break;
    }
  }
}

// ---- selftest -----------------------------------------------------------------------------------

interface SelftestEntry {
  flags: Record<string, unknown>;
  vdevId: number;
  cacheId: number;
}

function u32(name: string, i: number, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new IommufdError('EINVAL', `entry ${i}: ${name} must be a u32`);
  }
  return v;
}

/** The full-array copy of selftest entries: EINVAL for a malformed one. */
function copySelftestEntries(entries: unknown): SelftestEntry[] {
  if (!Array.isArray(entries)) throw new IommufdError('EINVAL', 'selftest entries must be an array');
  return entries.map((e: unknown, i) => {
    if (typeof e !== 'object' || e === null) throw new IommufdError('EINVAL', `entry ${i} is not an object`);
    const r = e as Record<string, unknown>;
    const flags = r['flags'] ?? {};
    if (typeof flags !== 'object' || flags === null || Object.values(flags).some((v) => typeof v !== 'boolean')) {
      throw new IommufdError('EINVAL', `entry ${i}: flags must be an object of booleans`);
    }
    return {
      flags: flags as Record<string, unknown>,
      vdevId: u32('vdevId', i, r['vdevId']),
      cacheId: u32('cacheId', i, r['cacheId']),
    };
  });
}

function selftestInvalidate(viommu: ViommuObject, entries: readonly SelftestEntry[]): number {
  entries.forEach((e, i) =>
    atEntry(i, () => {
      if (Object.keys(e.flags).some((k) => k !== 'all'))
        throw new IommufdError('EOPNOTSUPP', 'unknown invalidation flag');
      if (e.cacheId >= MOCK_DEV_CACHE_SLOTS) throw new IommufdError('EINVAL', `cacheId ${e.cacheId} is not 0..3`);
      const vdev = viommu.vdevs.get(BigInt(e.vdevId));
      if (vdev === undefined) {
        throw new IommufdError('EINVAL', `no vDEVICE with virtual ID ${e.vdevId} on vIOMMU ${viommu.id}`);
      }
      const cache = vdev.dev.cache;
      if (e.flags['all'] === true) cache.fill(0);
      else cache[e.cacheId] = 0;
    }),
  );
  return entries.length;
}
