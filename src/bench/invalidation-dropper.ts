/**
 * The test hook that must make the correctness check fail: a broken fast path that drops IOTLB
 * invalidations. Between the guest's queue writes and its doorbell, it rewrites each IOTLB
 * invalidation from the n-th on (VT-d IOTLB and PASID-IOTLB descriptors with a domain, SMMUv3
 * TLBI_NH_VA and TLBI_NH_ASID) to name a domain that does not exist, so the unit runs it and
 * removes nothing. Global invalidations are left alone.
 */
import type { CommandQueue } from '../guest/smmuv3/index.js';
import type { InvalidationQueue } from '../guest/vtd/index.js';
import {
  commandSpec,
  decodeCommand,
  encodeCommand,
  Field as CmdField,
  Opcode,
  SmmuCommand,
  type CommandFields,
} from '../vendor/smmuv3/commands.js';
import { SMMU_REG } from '../vendor/smmuv3/regs-defs.js';
import {
  decodeDescriptor,
  descriptorSpec,
  descriptorType,
  DescType,
  encodeDescriptor,
  Field as DescField,
  GRAN,
  VtdDescriptor,
} from '../vendor/vtd/descriptors.js';
import { VTD_REG } from '../vendor/vtd/regs-defs.js';
import type { UnitMmio } from './instrumented-port.js';

/** Counts of the hook. */
export interface DropperCounts {
  /** IOTLB invalidations seen since the hook was installed. */
  seen: number;
  /** Of those, the ones retargeted. */
  dropped: number;
}

/** The largest mask a VT-d descriptor can carry: the decoder must not refuse what it reads back. */
const ANY_MASK = 63;

/**
 * Returns a `beforeDoorbell` hook for a VT-d unit whose guest uses `queue`: it retargets every
 * IOTLB invalidation from index `from` on to DID `unusedDid`.
 */
export function vtdDropper(
  unit: UnitMmio,
  queue: InvalidationQueue,
  from: number,
  unusedDid: number,
  counts: DropperCounts,
): (value: number) => void {
  const mem = unit.guest.i32;
  const u32 = new Uint32Array(unit.guest.sab, mem.byteOffset, mem.length);
  const bytes = queue.wide ? 32 : 16;
  const desc = new VtdDescriptor();
  return (tail) => {
    let slot = Number(unit.mmioRead(VTD_REG.IQT, 4)) / bytes;
    const end = tail / bytes;
    for (; slot !== end; slot = (slot + 1) % queue.entries) {
      const at = queue.slotAddress(slot) / 4;
      const type = descriptorType(mem[at]!);
      if (type !== DescType.Iotlb && type !== DescType.PasidIotlb) continue;
      decodeDescriptor(mem, at, queue.wide, ANY_MASK, desc);
      if (type === DescType.Iotlb && desc.f[DescField.g] === GRAN.Global) continue;
      if (counts.seen++ < from) continue;
      const fields: Record<string, number> = {};
      for (const fs of descriptorSpec(type)!.fields) fields[fs.name] = desc.f[DescField[fs.name]]!;
      fields['did'] = unusedDid;
      encodeDescriptor(type, fields, u32, at, queue.wide);
      counts.dropped++;
    }
  };
}

/**
 * Returns a `beforeDoorbell` hook for an SMMUv3 unit whose guest uses `queue`: it retargets every
 * TLBI_NH_VA and TLBI_NH_ASID from index `from` on to ASID `unusedAsid`.
 */
export function smmuDropper(
  unit: UnitMmio,
  queue: CommandQueue,
  from: number,
  unusedAsid: number,
  counts: DropperCounts,
): (value: number) => void {
  const mem = unit.guest.i32;
  const u32 = new Uint32Array(unit.guest.sab, mem.byteOffset, mem.length);
  const mask = 2 * queue.entries - 1;
  const cmd = new SmmuCommand();
  return (prod) => {
    const end = prod & mask;
    for (let i = Number(unit.mmioRead(SMMU_REG.CMDQ_PROD, 4)) & mask; i !== end; i = (i + 1) & mask) {
      const at = queue.slotAddress(i) / 4;
      const opcode = mem[at]! & 0xff;
      if (opcode !== Opcode.TlbiNhVa && opcode !== Opcode.TlbiNhAsid) continue;
      if (counts.seen++ < from) continue;
      decodeCommand(mem, at, cmd);
      const fields: Record<string, number> = {};
      for (const fs of commandSpec(opcode)!.fields) fields[fs.name] = cmd.f[CmdField[fs.name]]!;
      fields['asid'] = unusedAsid;
      encodeCommand(opcode, fields as CommandFields, u32, at);
      counts.dropped++;
    }
  };
}
