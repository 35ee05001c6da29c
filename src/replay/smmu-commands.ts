/**
 * Re-encoding of SMMUv3 commands from QEMU 7.2's trace lines (traces/README.md, "SMMUv3").
 * QEMU prints no command words, only each command's opcode (`smmuv3_cmdq_opcode`, after a
 * `smmuv3_cmdq_consume`) and the decoded fields of some commands; this builder collects them and
 * encodes a real 16-byte command with the vendor codec (vendor/smmuv3/commands.ts):
 *
 * - TLBI_NH_VA: QEMU splits a range command into naturally aligned power-of-two chunks and prints
 *   one `smmuv3_s1_range_inval` per chunk; the chunks are merged back and the page count P is
 *   encoded as Linux chose it, SCALE = ctz(P), NUM = (P >> SCALE) − 1.
 * - CMD_SYNC: no field is traced; Linux's form without MSI (CS = SEV, MSH inner shareable,
 *   MSIAttr 0xf). PREFETCH_CONFIG: the StreamID of the CFGI_STE before it (the caller's).
 * - A command whose fields the trace does not carry (ATC_INV, PRI_RESP, … which QEMU 7.2 does
 *   not handle), or whose fields no single command can hold, cannot be rebuilt.
 */
import { COMMANDS, encodeCommand, Opcode, SyncCs, type FieldName } from '../vendor/smmuv3/commands.js';
import { ByteNameTable } from './byte-names.js';

/** QEMU's opcode names: the spec's, prefixed `SMMU_CMD_` (CMD_SYNC is `SMMU_CMD_SYNC`), and QEMU's extra ones. */
const QEMU_ONLY = ['SMMU_CMD_CFGI_ALL', 'SMMU_CMD_TLBI_EL3_ALL', 'SMMU_CMD_TLBI_EL3_VA'];
const OPCODE_NAMES = new ByteNameTable([
  ...COMMANDS.map((c) => `SMMU_CMD_${c.name.replace(/^CMD_/, '')}`),
  ...QEMU_ONLY,
]);
/** Opcode by name id; -1 for QEMU's extra ones (no command can be rebuilt). */
const OPCODE_OF: readonly number[] = [...COMMANDS.map((c) => c.opcode), ...QEMU_ONLY.map(() => -1)];
/** The command's name for counts, by name id. */
const NAME_OF: readonly string[] = [
  ...COMMANDS.map((c) => c.name),
  ...QEMU_ONLY.map((n) => n.slice('SMMU_CMD_'.length)),
];

/** What {@link SmmuCommandBuilder.build} did. */
export const Built = {
  /** Encoded. */
  Ok: 0,
  /** No opcode line came for the command. */
  NoOpcode: 1,
  /** The command cannot be rebuilt from its lines (see `unencodableName`). */
  Unencodable: 2,
} as const;

/** What a line of fields did to the open command. */
export const FieldLine = {
  Ok: 0,
  /** It does not belong to the open command (another opcode, or no command open, or fields twice). */
  Orphan: 1,
  /** A range chunk that does not continue the chunks before it. */
  Inconsistent: 2,
} as const;

/** The empty opcode (no `smmuv3_cmdq_opcode` line yet). */
const NO_OPCODE = -2;
/** An opcode name the model has no command for. */
const QEMU_ONLY_OPCODE = -1;

/** Linux's CMD_SYNC without MSI (`arm_smmu_cmdq_build_sync_cmd`, traces/README.md). */
const SYNC_WORDS = encodeCommand(Opcode.Sync, { cs: SyncCs.Sev, msh: 3, msiAttr: 0xf });

type Fields = { -readonly [K in FieldName]?: number };

// One field set per command shape, refilled for each command (encodeCommand writes the words).
const NO_FIELDS: Fields = {};
const ASID_FIELDS: Fields = { asid: 0, vmid: 0 };
const VMID_FIELDS: Fields = { vmid: 0 };
const VA_FIELDS: Fields = { vmid: 0, asid: 0, num: 0, scale: 0, tg: 0, ttl: 0, leaf: 0, addr: 0 };
const VAA_FIELDS: Fields = { vmid: 0, num: 0, scale: 0, tg: 0, ttl: 0, leaf: 0, addr: 0 };
const SID_FIELDS: Fields = { sid: 0 };
const SID_LEAF_FIELDS: Fields = { sid: 0, leaf: 1 };
const RANGE_FIELDS: Fields = { sid: 0, range: 0 };

function isU16(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffff;
}

/** Whether `v` is a 32-bit StreamID. */
export function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** Collects the lines of one command at a time and encodes it. */
export class SmmuCommandBuilder {
  /** A command is open (its consume line came, it has not been built). */
  open = false;
  /** Its opcode (valid after an opcode line; -1 for QEMU's extra opcodes). */
  opcode = NO_OPCODE;
  /** Its fields as the trace gave them (which ones are meaningful depends on the opcode). */
  sid = 0;
  asid = 0;
  vmid = 0;
  /** TLBI_NH_VA/VAA: the merged range, in bytes from `addr`. */
  addr = 0;
  bytes = 0;
  #nameId = -1;
  #haveFields = false;
  #pages = 0;
  #tg = 0;
  #ttl = 0;
  #leaf = 0;
  #rangeEnd = 0;

  /** `smmuv3_cmdq_consume`: a new command opens. */
  begin(): void {
    this.open = true;
    this.opcode = NO_OPCODE;
    this.#nameId = -1;
    this.#haveFields = false;
  }

  /** Whether the open command has its opcode. */
  get hasOpcode(): boolean {
    return this.opcode !== NO_OPCODE;
  }

  /** The command's name, for the counts of commands that could not be rebuilt. */
  get name(): string {
    return this.#nameId >= 0 ? NAME_OF[this.#nameId]! : 'unknown';
  }

  /**
   * `smmuv3_cmdq_opcode <--- NAME` (the name's bytes are [start, end) of `buf`): a
   * {@link FieldLine} status, or -1 for a name QEMU would not print.
   */
  opcodeLine(buf: Uint8Array, start: number, end: number): number {
    if (!this.open || this.opcode !== NO_OPCODE) return FieldLine.Orphan;
    const id = OPCODE_NAMES.lookup(buf, start, end);
    if (id < 0) return -1;
    this.opcode = OPCODE_OF[id]! >= 0 ? OPCODE_OF[id]! : QEMU_ONLY_OPCODE;
    this.#nameId = id;
    return FieldLine.Ok;
  }

  /** A line with the fields of a command of opcode `op` (or `alt`): the StreamID, or the ASID, in `value`. */
  fieldLine(op: number, alt: number, value: number, value2 = 0): number {
    const o = this.opcode;
    if (!this.open || (o !== op && o !== alt) || this.#haveFields) return FieldLine.Orphan;
    this.#haveFields = true;
    if (op === Opcode.TlbiNhAsid) {
      this.asid = value;
      this.vmid = 0;
    } else {
      this.sid = value;
      this.#rangeEnd = value2;
    }
    return FieldLine.Ok;
  }

  /** A field line that carries no field (`smmuv3_cmdq_tlbi_nh`). */
  markLine(op: number, alt: number): number {
    const o = this.opcode;
    return this.open && (o === op || o === alt) ? FieldLine.Ok : FieldLine.Orphan;
  }

  /** One `smmuv3_s1_range_inval` chunk (vmid, asid, addr, tg, num_pages, ttl, leaf in `n`). */
  rangeLine(n: Float64Array): number {
    const o = this.opcode;
    if (!this.open || (o !== Opcode.TlbiNhVa && o !== Opcode.TlbiNhVaa)) return FieldLine.Orphan;
    const vmid = n[0]!;
    const asid = n[1]!;
    const addr = n[2]!;
    const tg = n[3]!;
    const pages = n[4]!;
    const ttl = n[5]!;
    const leaf = n[6]!;
    if (!this.#haveFields) {
      this.#haveFields = true;
      this.vmid = vmid;
      this.asid = asid;
      this.addr = addr;
      this.#tg = tg;
      this.#pages = pages;
      this.#ttl = ttl;
      this.#leaf = leaf;
      return FieldLine.Ok;
    }
    const continues =
      vmid === this.vmid &&
      asid === this.asid &&
      tg === this.#tg &&
      ttl === this.#ttl &&
      leaf === this.#leaf &&
      addr === this.addr + this.#pages * granule(this.#tg);
    if (!continues) return FieldLine.Inconsistent;
    this.#pages += pages;
    return FieldLine.Ok;
  }

  /**
   * Closes the open command and encodes it into `out` at word `at` (a {@link Built} status).
   * `lastSteSid` is the StreamID of the last CFGI_STE (PREFETCH_CONFIG's), or -1.
   */
  build(out: Uint32Array, at: number, lastSteSid: number): number {
    this.open = false;
    const op = this.opcode;
    if (op === NO_OPCODE) return Built.NoOpcode;
    let f: Fields = NO_FIELDS;
    switch (op) {
      case Opcode.Sync:
        out.set(SYNC_WORDS, at);
        return Built.Ok;
      case Opcode.TlbiNhAsid:
        if (!this.#haveFields || !isU16(this.asid)) return Built.Unencodable;
        f = ASID_FIELDS;
        f.asid = this.asid;
        break;
      case Opcode.TlbiNhVa:
      case Opcode.TlbiNhVaa:
        f = op === Opcode.TlbiNhVa ? VA_FIELDS : VAA_FIELDS;
        if (!this.#haveFields || !this.#vaFields(op, f)) return Built.Unencodable;
        break;
      case Opcode.TlbiNhAll:
        f = VMID_FIELDS;
        break;
      case Opcode.TlbiNsnhAll:
        break;
      case Opcode.CfgiSte:
      case Opcode.CfgiCd:
      case Opcode.CfgiCdAll:
        if (!this.#haveFields || !isU32(this.sid)) return Built.Unencodable;
        f = op === Opcode.CfgiCdAll ? SID_FIELDS : SID_LEAF_FIELDS;
        f.sid = this.sid;
        break;
      case Opcode.CfgiSteRange: {
        const span = this.#rangeEnd - this.sid + 1;
        const range = Math.log2(span) - 1;
        if (!this.#haveFields || !Number.isInteger(range) || range < 0 || range > 31 || this.sid % span !== 0)
          return Built.Unencodable;
        f = RANGE_FIELDS;
        f.sid = this.sid;
        f.range = range;
        break;
      }
      case Opcode.PrefetchConfig:
        if (lastSteSid < 0) return Built.Unencodable;
        this.sid = lastSteSid;
        f = SID_FIELDS;
        f.sid = lastSteSid;
        break;
      default:
        return Built.Unencodable;
    }
    encodeCommand(op, f, out, at);
    return Built.Ok;
  }

  /** TLBI_NH_VA/VAA fields from the merged range; false when no single command can carry it. */
  #vaFields(op: number, f: Fields): boolean {
    const tg = this.#tg;
    const pages = this.#pages;
    const ttl = this.#ttl;
    if (
      !isU16(this.vmid) ||
      !(tg >= 0 && tg <= 3) ||
      !(ttl >= 0 && ttl <= 3) ||
      !(this.#leaf === 0 || this.#leaf === 1)
    )
      return false;
    if (op === Opcode.TlbiNhVa && !isU16(this.asid)) return false;
    if (!(this.addr % 4096 === 0 && this.addr >= 0 && pages >= 1 && Number.isInteger(pages))) return false;
    let scale = 0;
    let num = 0;
    if (tg === 0) {
      if (pages !== 1) return false;
    } else {
      while ((pages / 2 ** scale) % 2 === 0) scale++;
      num = pages / 2 ** scale - 1;
      if (num > 31 || scale > 31) return false;
    }
    f.vmid = this.vmid;
    if (op === Opcode.TlbiNhVa) f.asid = this.asid;
    f.num = num;
    f.scale = scale;
    f.tg = tg;
    f.ttl = ttl;
    f.leaf = this.#leaf;
    f.addr = this.addr;
    this.bytes = tg === 0 ? 4096 : pages * granule(tg);
    return true;
  }
}

/** Bytes of a TLBI range granule: 4 KiB, 16 KiB or 64 KiB for TG 1, 2, 3. */
function granule(tg: number): number {
  return 2 ** (2 * tg + 10);
}
