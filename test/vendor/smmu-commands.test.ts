// SMMUv3 command-queue commands: the table, encode/decode round trips, CERROR_ILL rules, the
// translation into ops, a 10^6-command fuzz, and every command of the two SMMU guest traces.
import { fileURLToPath } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Op, OpFlag, OpList, OP_WORDS } from '../../src/ops/index.js';
import {
  ALL_FEATURES,
  ATC_INV_SIZE_ALL,
  CERROR_ABT,
  CERROR_ATC_INV_SYNC,
  CERROR_ILL,
  CERROR_NONE,
  CFGI_ALL_RANGE,
  COMMANDS,
  FIELD_COUNT,
  Field,
  IllReason,
  OPCODE_BITS,
  Opcode,
  SmmuCommand,
  SmmuFeature,
  SyncCs,
  Tg,
  commandOpcode,
  commandSpec,
  decodeCommand,
  encodeCommand,
  type CommandFields,
  type CommandSpec,
  type FieldName,
} from '../../src/vendor/smmuv3/commands.js';
import { UNIT_HANDLES, commandToOps, type SmmuTagMap } from '../../src/vendor/smmuv3/commands-ops.js';

const ALL64 = (1n << 64n) - 1n;
const STRICT = ALL_FEATURES | SmmuFeature.CheckRes0;

/** Guest VMIDs 0 and 5 have IOTLB tags 7 and 9; SIDs 0x8 and 0x10 have ATC device slots 2 and 3. */
const MAP: SmmuTagMap = {
  tagOf: (vmid) => (vmid === 0 ? 7 : vmid === 5 ? 9 : -1),
  devOf: (sid) => (sid === 0x8 ? 2 : sid === 0x10 ? 3 : -1),
};

/** The bits [hi:lo] as a 64-bit mask. */
function bitsMask(hi: number, lo: number): bigint {
  return ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
}

/** Dword `d` of the command at word 0 of `mem`. */
function dword(mem: Uint32Array, d: number): bigint {
  return (BigInt(mem[2 * d + 1]!) << 32n) | BigInt(mem[2 * d]!);
}

/** The RES0 masks of `spec` as four 32-bit words. */
function reservedWords(spec: CommandSpec): number[] {
  return spec.reserved.flatMap((m) => [Number(m & 0xffff_ffffn), Number(m >> 32n)]);
}

/** The fields of `spec` read back from a decoded command. */
function fieldsOf(spec: CommandSpec, cmd: SmmuCommand): CommandFields {
  const out: Partial<Record<FieldName, number>> = {};
  for (const fs of spec.fields) out[fs.name] = cmd.get(fs.name);
  return out;
}

function decoded(opcode: number, fields: CommandFields, features = ALL_FEATURES): SmmuCommand {
  const cmd = new SmmuCommand();
  expect(decodeCommand(encodeCommand(opcode, fields), 0, cmd, features), cmd.reason.toString()).toBe(CERROR_NONE);
  return cmd;
}

/** The decode status and ILL reason of a command. */
function statusOf(opcode: number, fields: CommandFields, features = ALL_FEATURES): [number, number] {
  const cmd = new SmmuCommand();
  const status = decodeCommand(encodeCommand(opcode, fields), 0, cmd, features);
  return [status, cmd.reason];
}

/** The result and ops (8 words each) of one command, stamped with sequence 42. */
function opsOf(opcode: number, fields: CommandFields, features = ALL_FEATURES): { n: number; ops: number[][] } {
  const cmd = decoded(opcode, fields, features);
  const list = new OpList(8);
  const n = commandToOps(cmd, MAP, 42, list);
  expect(list.count).toBe(Math.max(n, 0));
  const ops = Array.from({ length: list.count }, (_, i) =>
    Array.from(list.words.subarray(i * OP_WORDS, (i + 1) * OP_WORDS)),
  );
  return { n, ops };
}

/** The ops of a command that maps to ops (asserts the count matches). */
function ops(opcode: number, fields: CommandFields): number[][] {
  const r = opsOf(opcode, fields);
  expect(r.n).toBe(r.ops.length);
  return r.ops;
}

/** An op record: opcode, seq 42, tag, tag2, address lo/hi, pages, flags. */
function op(opcode: number, tag = 0, tag2 = 0, addr = 0, pages = 0, flags = 0): number[] {
  return [opcode, 42, tag, tag2, addr % 2 ** 32, Math.floor(addr / 2 ** 32), pages, flags];
}

const S1 = OpFlag.Stage1;
const LEAF = OpFlag.Leaf;
/** Granule shift flag bits. */
const G = (shift: number): number => shift << OpFlag.GranuleShift;

/**
 * A legal value set for `spec`: the arbitrary draws every field over its full width, except the
 * values the decoder must reject (SSec 1, CS 3, Resp 3, ATC Size > 52, the reserved TLBI
 * TG/NUM/SCALE/TTL combination).
 */
function legalFields(spec: CommandSpec): fc.Arbitrary<CommandFields> {
  const arbs: Record<string, fc.Arbitrary<number>> = {};
  for (const fs of spec.fields) {
    const max = (1n << BigInt(fs.hi - fs.lo + 1)) - 1n;
    if (fs.name === 'ssec') arbs[fs.name] = fc.constant(0);
    else if (fs.name === 'cs' || fs.name === 'resp') arbs[fs.name] = fc.integer({ min: 0, max: 2 });
    else if (fs.name === 'size' && spec.opcode === Opcode.AtcInv) arbs[fs.name] = fc.integer({ min: 0, max: 52 });
    else arbs[fs.name] = fc.bigInt({ min: 0n, max }).map((v) => Number(v) * 2 ** fs.unit);
  }
  return fc.record(arbs).map((r: Partial<Record<FieldName, number>>) => {
    // TG = 0 makes NUM, SCALE and TTL RES0 (legal, but CERROR_ILL when RES0 bits are checked).
    if (r.tg === 0) r.num = r.scale = r.ttl = 0;
    if (
      r.tg !== undefined &&
      r.tg !== 0 &&
      r.num === 0 &&
      r.scale === 0 &&
      (r.ttl === 0 || (r.tg === 2 && r.ttl === 1))
    )
      r.ttl = 3;
    return r;
  });
}

describe('SMMUv3 command table', () => {
  it('every dword bit of every command is exactly one of: opcode, field, RES0', () => {
    for (const spec of COMMANDS) {
      for (let d = 0; d < 2; d++) {
        let seen = d === 0 ? OPCODE_BITS : 0n;
        for (const fs of spec.fields.filter((x) => x.dw === d)) {
          const m = bitsMask(fs.hi, fs.lo);
          expect(seen & m, `${spec.name} ${fs.name} overlaps`).toBe(0n);
          seen |= m;
        }
        expect(seen & spec.reserved[d]!, `${spec.name} dw${d} RES0 overlaps a field`).toBe(0n);
        expect(seen | spec.reserved[d]!, `${spec.name} dw${d} leaves bits undefined`).toBe(ALL64);
      }
    }
  });

  it('opcodes are sorted and unique, fields fit a number exactly, slots cover every field name', () => {
    const opcodes = COMMANDS.map((c) => c.opcode);
    expect(opcodes).toEqual([...opcodes].sort((a, b) => a - b));
    expect(new Set(opcodes).size).toBe(opcodes.length);
    for (const spec of COMMANDS) for (const fs of spec.fields) expect(fs.hi - fs.lo + 1).toBeLessThanOrEqual(53);
    expect(new Set(Object.values(Field)).size).toBe(FIELD_COUNT);
    expect(Math.max(...Object.values(Field))).toBe(FIELD_COUNT - 1);
    expect(Object.values(Opcode)).toEqual(opcodes);
    expect(commandSpec(Opcode.Sync)?.name).toBe('CMD_SYNC');
    expect(commandOpcode(0xdead_be46)).toBe(Opcode.Sync);
  });

  it('covers every command of the reference §6.1 and §1.3 the Non-secure queue accepts', () => {
    const names = COMMANDS.map((c) => c.name);
    for (const name of [
      'PREFETCH_CONFIG',
      'PREFETCH_ADDR',
      'CFGI_STE',
      'CFGI_STE_RANGE',
      'CFGI_CD',
      'CFGI_CD_ALL',
      'TLBI_NH_ALL',
      'TLBI_NH_ASID',
      'TLBI_NH_VA',
      'TLBI_NH_VAA',
      'TLBI_EL2_ALL',
      'TLBI_EL2_ASID',
      'TLBI_EL2_VA',
      'TLBI_EL2_VAA',
      'TLBI_S12_VMALL',
      'TLBI_S2_IPA',
      'TLBI_NSNH_ALL',
      'ATC_INV',
      'PRI_RESP',
      'RESUME',
      'STALL_TERM',
      'CMD_SYNC',
    ])
      expect(names).toContain(name);
    expect(names).toHaveLength(22);
    expect([CERROR_NONE, CERROR_ILL, CERROR_ABT, CERROR_ATC_INV_SYNC]).toEqual([0, 1, 2, 3]);
  });

  it('encodes the bit positions of Linux CMDQ_* (the words the 6.1 guest in the traces writes)', () => {
    // CMD_SYNC with CS=SEV, MSH=ISH, MSIATTR=OIWB (arm_smmu_cmdq_build_sync_cmd without MSI).
    const sync = encodeCommand(Opcode.Sync, { cs: SyncCs.Sev, msh: 3, msiAttr: 0xf });
    expect([dword(sync, 0), dword(sync, 1)]).toEqual([0x0fc0_2046n, 0n]);
    const msi = encodeCommand(Opcode.Sync, { cs: SyncCs.Irq, msiData: 0xabcd, msiAddr: 0x8_1234_5678 });
    expect([dword(msi, 0), dword(msi, 1)]).toEqual([0xabcd_0000_1046n, 0x8_1234_5678n]);
    const va = encodeCommand(Opcode.TlbiNhVa, {
      num: 24,
      scale: 2,
      vmid: 3,
      asid: 1,
      leaf: 1,
      ttl: 3,
      tg: Tg.K4,
      addr: 0xffff_6000,
    });
    expect([dword(va, 0), dword(va, 1)]).toEqual([0x0001_0003_0021_8012n, 0xffff_6701n]);
    const ipa = encodeCommand(Opcode.TlbiS2Ipa, { vmid: 0xffff, addr: 0xf_ffff_ffff_f000, tg: Tg.K64, ttl: 1 });
    expect([dword(ipa, 0), dword(ipa, 1)]).toEqual([0xffff_0000_002an, 0xf_ffff_ffff_fd00n]);
    const ste = encodeCommand(Opcode.CfgiSte, { sid: 0x8, leaf: 1 });
    expect([dword(ste, 0), dword(ste, 1)]).toEqual([0x8_0000_0003n, 1n]);
    const all = encodeCommand(Opcode.CfgiSteRange, { range: CFGI_ALL_RANGE });
    expect([dword(all, 0), dword(all, 1)]).toEqual([0x4n, 31n]);
    const cd = encodeCommand(Opcode.CfgiCd, { sid: 0x10, ssid: 0xfffff, leaf: 1 });
    expect(dword(cd, 0)).toBe(0x10_ffff_f005n);
    const atc = encodeCommand(Opcode.AtcInv, { sid: 0x10, ssv: 1, ssid: 5, global: 1, size: 52, addr: 0 });
    expect([dword(atc, 0), dword(atc, 1)]).toEqual([0x10_0000_5a40n, 52n]);
    const pri = encodeCommand(Opcode.PriResp, { sid: 0x10, ssv: 1, ssid: 1, prgi: 0x1ff, resp: 2 });
    expect([dword(pri, 0), dword(pri, 1)]).toEqual([0x10_0000_1841n, 0x21ffn]);
    const resume = encodeCommand(Opcode.Resume, { sid: 0x8, ac: 0, ab: 1, stag: 0xbeef });
    expect([dword(resume, 0), dword(resume, 1)]).toEqual([0x8_0000_2044n, 0xbeefn]);
    const pf = encodeCommand(Opcode.PrefetchAddr, { sid: 1, size: 31, stride: 31, addr: 0xffff_ffff_ffff_f000 });
    expect([dword(pf, 0), dword(pf, 1)]).toEqual([0x1_0000_0002n, 0xffff_ffff_ffff_f3ffn]);
  });

  it('encode writes at an offset, into an Int32Array too, and refuses what does not fit', () => {
    const mem = new Int32Array(12).fill(-1);
    expect(encodeCommand(Opcode.TlbiNhAsid, { vmid: 0xffff, asid: 0xffff }, mem, 4)).toBe(mem);
    expect(Array.from(mem)).toEqual([-1, -1, -1, -1, 0x11, -1, 0, 0, -1, -1, -1, -1]);
    expect(() => encodeCommand(Opcode.CfgiSte, { sid: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeCommand(Opcode.TlbiNhVa, { addr: 0x1800 })).toThrow(RangeError);
    expect(() => encodeCommand(Opcode.TlbiS2Ipa, { addr: 2 ** 52 })).toThrow(RangeError);
    expect(() => encodeCommand(Opcode.TlbiNhVaa, { asid: 1 })).toThrow(RangeError);
    expect(() => encodeCommand(Opcode.Sync, { msiAddr: 2 })).toThrow(RangeError);
    expect(() => encodeCommand(0x07, {})).toThrow(RangeError);
  });
});

describe('SMMUv3 command round trip', () => {
  for (const spec of COMMANDS) {
    it(`${spec.name} (0x${spec.opcode.toString(16)}): encode → decode → same fields → same words`, () => {
      const mem = new Uint32Array(4);
      const signed = new Int32Array(mem.buffer);
      const cmd = new SmmuCommand();
      fc.assert(
        fc.property(legalFields(spec), (fields: Partial<Record<FieldName, number>>) => {
          encodeCommand(spec.opcode, fields, mem);
          for (const view of [mem, signed]) {
            for (const features of [ALL_FEATURES, STRICT]) {
              expect(decodeCommand(view, 0, cmd, features)).toBe(CERROR_NONE);
              expect(cmd.opcode).toBe(spec.opcode);
              for (const name of Object.keys(Field) as FieldName[]) expect(cmd.get(name)).toBe(fields[name] ?? 0);
            }
          }
          expect(Array.from(encodeCommand(spec.opcode, fieldsOf(spec, cmd)))).toEqual(Array.from(mem));
        }),
      );
    });

    it(`${spec.name}: random words → decode → encode gives back the words minus RES0 bits`, () => {
      const res = reservedWords(spec);
      const cmd = new SmmuCommand();
      let ok = 0;
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), (words) => {
          const mem = Uint32Array.from(words);
          mem[0] = ((mem[0]! & ~0xff) | spec.opcode) & ~(1 << 10); // keep SSec clear, else always ILL
          if (decodeCommand(mem, 0, cmd) !== CERROR_NONE) return;
          ok++;
          const again = encodeCommand(spec.opcode, fieldsOf(spec, cmd));
          expect(Array.from(again)).toEqual(Array.from(mem, (w, i) => (w & ~res[i]!) >>> 0));
        }),
        { numRuns: 200 },
      );
      expect(ok).toBeGreaterThan(100);
    });
  }

  it('addresses up to the top page of the 64-bit space decode exactly', () => {
    for (const addr of [0x1_2345_6000, 0xffff_ffff_ffff_f000]) {
      expect(decoded(Opcode.TlbiNhVa, { addr }).get('addr')).toBe(addr);
      expect(decoded(Opcode.AtcInv, { addr }).get('addr')).toBe(addr);
    }
    expect(decoded(Opcode.TlbiS2Ipa, { addr: 0xf_ffff_ffff_f000 }).get('addr')).toBe(0xf_ffff_ffff_f000);
    expect(decoded(Opcode.Sync, { msiAddr: 0xf_ffff_ffff_fffc }).get('msiAddr')).toBe(0xf_ffff_ffff_fffc);
    expect(decoded(Opcode.Sync, { msiData: 0xffff_ffff }).get('msiData')).toBe(0xffff_ffff);
    expect(decoded(Opcode.CfgiSte, { sid: 0xffff_ffff }).get('sid')).toBe(0xffff_ffff);
  });
});

describe('SMMUv3 command errors (CERROR_ILL)', () => {
  const cmd = new SmmuCommand();

  it('every opcode outside the table is illegal: reserved, Secure-only, EL3, VMS_PIDM, DPTI, IMPDEF', () => {
    const mem = new Uint32Array(4);
    const known = new Set(COMMANDS.map((c) => c.opcode));
    let illegal = 0;
    for (let opcode = 0; opcode < 256; opcode++) {
      mem[0] = opcode;
      const status = decodeCommand(mem, 0, cmd, STRICT);
      expect(cmd.opcode).toBe(opcode);
      if (known.has(opcode)) expect(status, `0x${opcode.toString(16)}`).toBe(CERROR_NONE);
      else {
        expect(status, `0x${opcode.toString(16)}`).toBe(CERROR_ILL);
        expect(cmd.reason).toBe(IllReason.Opcode);
        illegal++;
      }
    }
    expect(illegal).toBe(256 - 22);
    // QEMU's own "CFGI_ALL" 0x07 is CFGI_VMS_PIDM architecturally; EL3 and Secure TLBIs, DPTI.
    for (const opcode of [0x00, 0x07, 0x18, 0x1a, 0x50, 0x58, 0x5a, 0x60, 0x70, 0x73, 0x80, 0x8f, 0xff]) {
      mem[0] = opcode;
      expect(decodeCommand(mem, 0, cmd)).toBe(CERROR_ILL);
    }
  });

  it('SSec = 1 is illegal on this (Non-secure) queue for every command that has it, in any mode', () => {
    const withSsec = COMMANDS.filter((c) => c.fields.some((fs) => fs.name === 'ssec'));
    expect(withSsec.map((c) => c.name)).toEqual([
      'PREFETCH_CONFIG',
      'PREFETCH_ADDR',
      'CFGI_STE',
      'CFGI_STE_RANGE',
      'CFGI_CD',
      'CFGI_CD_ALL',
      'RESUME',
      'STALL_TERM',
    ]);
    for (const spec of withSsec) {
      expect(statusOf(spec.opcode, { ssec: 1 })).toEqual([CERROR_ILL, IllReason.SSec]);
      expect(statusOf(spec.opcode, { ssec: 1 }, STRICT)).toEqual([CERROR_ILL, IllReason.SSec]);
    }
  });

  it('reserved values: CMD_SYNC CS=3, PRI_RESP Resp=3, ATC_INV Size 53..63', () => {
    expect(statusOf(Opcode.Sync, { cs: 3 })).toEqual([CERROR_ILL, IllReason.Value]);
    for (const cs of [0, 1, 2]) expect(statusOf(Opcode.Sync, { cs })[0]).toBe(CERROR_NONE);
    expect(statusOf(Opcode.PriResp, { resp: 3 })).toEqual([CERROR_ILL, IllReason.Value]);
    for (const resp of [0, 1, 2]) expect(statusOf(Opcode.PriResp, { resp })[0]).toBe(CERROR_NONE);
    for (let size = 0; size < 64; size++) {
      expect(statusOf(Opcode.AtcInv, { size })[0], `size ${size}`).toBe(size <= ATC_INV_SIZE_ALL ? 0 : 1);
    }
    // PREFETCH_ADDR's Size is 5 bits, all legal; RESUME's Ac/Ab take every combination.
    expect(statusOf(Opcode.PrefetchAddr, { size: 31, stride: 31 })[0]).toBe(CERROR_NONE);
    expect(statusOf(Opcode.Resume, { ac: 1, ab: 1 })[0]).toBe(CERROR_NONE);
  });

  it('TLBI: TG != 0 with NUM = SCALE = TTL = 0 is reserved (16 KiB with TTL = 1 counts as TTL 0)', () => {
    for (const opcode of [Opcode.TlbiNhVa, Opcode.TlbiNhVaa, Opcode.TlbiEl2Va, Opcode.TlbiEl2Vaa, Opcode.TlbiS2Ipa]) {
      for (const tg of [1, 2, 3]) {
        expect(statusOf(opcode, { tg, leaf: 1 })).toEqual([CERROR_ILL, IllReason.Value]);
        expect(statusOf(opcode, { tg, ttl: 1 })[0]).toBe(tg === Tg.K16 ? CERROR_ILL : CERROR_NONE);
        expect(statusOf(opcode, { tg, ttl: 3 })[0]).toBe(CERROR_NONE);
        expect(statusOf(opcode, { tg, num: 1 })[0]).toBe(CERROR_NONE);
        expect(statusOf(opcode, { tg, scale: 1 })[0]).toBe(CERROR_NONE);
      }
      expect(statusOf(opcode, {})[0]).toBe(CERROR_NONE); // TG = 0: the single-address form
    }
  });

  it('every RES0 bit alone: ignored by default (fields unchanged), CERROR_ILL with CheckRes0', () => {
    const mem = new Uint32Array(4);
    const strict = new SmmuCommand();
    for (const spec of COMMANDS) {
      // A legal base command, with every field non-zero where it can be.
      const base = fc.sample(legalFields(spec), { numRuns: 1, seed: spec.opcode })[0]!;
      const want = decoded(spec.opcode, base);
      let res0 = 0;
      for (let bit = 8; bit < 128; bit++) {
        const d = bit >> 6;
        if (((spec.reserved[d]! >> BigInt(bit & 63)) & 1n) === 0n) continue;
        res0++;
        encodeCommand(spec.opcode, base, mem);
        mem[bit >> 5] = mem[bit >> 5]! | (1 << (bit & 31));
        expect(decodeCommand(mem, 0, cmd), `${spec.name} bit ${bit}`).toBe(CERROR_NONE);
        expect(Array.from(cmd.f), `${spec.name} bit ${bit}`).toEqual(Array.from(want.f));
        expect(decodeCommand(mem, 0, strict, STRICT), `${spec.name} bit ${bit}`).toBe(CERROR_ILL);
        expect(strict.reason).toBe(IllReason.Res0);
      }
      expect(res0, spec.name).toBeGreaterThan(0);
    }
  });

  it('TG = 0 makes NUM, SCALE and TTL RES0: ignored by default, CERROR_ILL with CheckRes0', () => {
    for (const extra of [{ num: 1 }, { scale: 1 }, { ttl: 2 }]) {
      expect(statusOf(Opcode.TlbiNhVa, extra)[0]).toBe(CERROR_NONE);
      expect(statusOf(Opcode.TlbiNhVa, extra, STRICT)).toEqual([CERROR_ILL, IllReason.Res0]);
    }
  });

  it('a command of a feature the unit does not advertise is illegal', () => {
    const needs: [number, number][] = [
      [Opcode.CfgiCd, SmmuFeature.Stage1],
      [Opcode.CfgiCdAll, SmmuFeature.Stage1],
      [Opcode.TlbiNhAll, SmmuFeature.Stage1],
      [Opcode.TlbiNhAsid, SmmuFeature.Stage1],
      [Opcode.TlbiNhVa, SmmuFeature.Stage1],
      [Opcode.TlbiNhVaa, SmmuFeature.Stage1],
      [Opcode.TlbiEl2All, SmmuFeature.Hyp],
      [Opcode.TlbiEl2All, SmmuFeature.Stage1],
      [Opcode.TlbiEl2Va, SmmuFeature.Hyp],
      [Opcode.TlbiS12Vmall, SmmuFeature.Stage2],
      [Opcode.TlbiS2Ipa, SmmuFeature.Stage2],
      [Opcode.AtcInv, SmmuFeature.Ats],
      [Opcode.PriResp, SmmuFeature.Pri],
      [Opcode.Resume, SmmuFeature.Stall],
      [Opcode.StallTerm, SmmuFeature.Stall],
    ];
    for (const [opcode, feature] of needs) {
      expect(statusOf(opcode, {}, ALL_FEATURES & ~feature)).toEqual([CERROR_ILL, IllReason.Unsupported]);
      expect(statusOf(opcode, {}, feature | SmmuFeature.Stage1 | SmmuFeature.Hyp)[0]).toBe(CERROR_NONE);
    }
    // Always legal: prefetch, CFGI_STE*, NSNH_ALL, SYNC; QEMU 7.2 (S1P only, no ATS/PRI/Hyp/stall).
    const qemu = SmmuFeature.Stage1 | SmmuFeature.Ril;
    for (const opcode of [Opcode.PrefetchConfig, Opcode.CfgiSte, Opcode.CfgiSteRange, Opcode.TlbiNsnhAll, Opcode.Sync])
      expect(statusOf(opcode, {}, 0)[0]).toBe(CERROR_NONE);
    expect(statusOf(Opcode.TlbiNhVa, { tg: 1, ttl: 3 }, qemu)[0]).toBe(CERROR_NONE);
    expect(statusOf(Opcode.AtcInv, {}, qemu)[0]).toBe(CERROR_ILL);
  });

  it('without RIL the range fields are RES0: decoded as 0 (single address), or CERROR_ILL when checked', () => {
    const noRil = ALL_FEATURES & ~SmmuFeature.Ril;
    const fields = { num: 3, scale: 4, tg: Tg.K4, ttl: 3, asid: 1, leaf: 1, addr: 0x5000 };
    const d = decoded(Opcode.TlbiNhVa, fields, noRil);
    expect([d.get('num'), d.get('scale'), d.get('tg'), d.get('ttl')]).toEqual([0, 0, 0, 0]);
    expect([d.get('asid'), d.get('leaf'), d.get('addr')]).toEqual([1, 1, 0x5000]);
    expect(statusOf(Opcode.TlbiNhVa, fields, noRil | SmmuFeature.CheckRes0)).toEqual([CERROR_ILL, IllReason.Res0]);
    // Even the otherwise-reserved TG/NUM/SCALE/TTL combination is just the single-address form.
    expect(statusOf(Opcode.TlbiNhVa, { tg: 1 }, noRil)[0]).toBe(CERROR_NONE);
    expect(opsOf(Opcode.TlbiNhVa, fields, noRil).ops).toEqual([op(Op.IotlbRange, 7, 1, 0x5000, 1, LEAF | S1)]);
  });
});

describe('SMMUv3 commands to ops', () => {
  it('PREFETCH_* produce nothing', () => {
    expect(opsOf(Opcode.PrefetchConfig, { sid: 0x8 })).toEqual({ n: 0, ops: [] });
    expect(opsOf(Opcode.PrefetchAddr, { sid: 0x8, addr: 0x1000, size: 3 })).toEqual({ n: 0, ops: [] });
  });

  it('CFGI_STE and CFGI_CD_ALL drop one SID (STE and CDs); CFGI_CD one (SID, SSID)', () => {
    expect(ops(Opcode.CfgiSte, { sid: 0x8, leaf: 1 })).toEqual([op(Op.CfgSid, 0, 0x8, 0, 1)]);
    expect(ops(Opcode.CfgiSte, { sid: 0xffff_ffff })).toEqual([op(Op.CfgSid, 0, 0xffff_ffff, 0, 1)]);
    expect(ops(Opcode.CfgiCdAll, { sid: 0x10 })).toEqual([op(Op.CfgSid, 0, 0x10, 0, 1)]);
    expect(ops(Opcode.CfgiCd, { sid: 0x10, ssid: 0x123, leaf: 1 })).toEqual([op(Op.CfgSidSsid, 0x123, 0x10)]);
    // SSID 0 also reaches transactions without a SubstreamID (CD 0, keyed NO_SSID = -1).
    expect(ops(Opcode.CfgiCd, { sid: 0x10, ssid: 0 })).toEqual([
      op(Op.CfgSidSsid, 0, 0x10),
      op(Op.CfgSidSsid, -1 >>> 0, 0x10),
    ]);
  });

  it('CFGI_STE_RANGE drops the aligned block of 2^(Range+1) SIDs; Range 31 (CFGI_ALL) everything', () => {
    expect(ops(Opcode.CfgiSteRange, { sid: 0x1235, range: 0 })).toEqual([op(Op.CfgSid, 0, 0x1234, 0, 2)]);
    expect(ops(Opcode.CfgiSteRange, { sid: 0x1235, range: 3 })).toEqual([op(Op.CfgSid, 0, 0x1230, 0, 16)]);
    expect(ops(Opcode.CfgiSteRange, { sid: 0x10, range: 3 })).toEqual([op(Op.CfgSid, 0, 0x10, 0, 16)]);
    expect(ops(Opcode.CfgiSteRange, { sid: 0xdead_beef, range: 30 })).toEqual([
      op(Op.CfgSid, 0, 0x8000_0000, 0, 0x8000_0000),
    ]);
    expect(ops(Opcode.CfgiSteRange, { sid: 0xdead_beef, range: CFGI_ALL_RANGE })).toEqual([op(Op.CfgAll)]);
  });

  it('TLBI_NH_ALL and S12_VMALL flush the tag (stage 1 / both); NH_ASID one ASID; unknown VMIDs nothing', () => {
    expect(ops(Opcode.TlbiNhAll, { vmid: 5 })).toEqual([op(Op.IotlbTag, 9, 0, 0, 0, S1)]);
    expect(ops(Opcode.TlbiS12Vmall, { vmid: 0 })).toEqual([op(Op.IotlbTag, 7, 0, 0, 0, S1 | OpFlag.Stage2)]);
    expect(ops(Opcode.TlbiNhAsid, { vmid: 0, asid: 0xffff })).toEqual([op(Op.IotlbAsid, 7, 0xffff, 0, 0, S1)]);
    for (const opcode of [Opcode.TlbiNhAll, Opcode.TlbiNhAsid, Opcode.TlbiS12Vmall])
      expect(opsOf(opcode, { vmid: 6 })).toEqual({ n: 0, ops: [] });
    for (const opcode of [Opcode.TlbiNhVa, Opcode.TlbiNhVaa, Opcode.TlbiS2Ipa])
      expect(opsOf(opcode, { vmid: 6, tg: 1, ttl: 3 })).toEqual({ n: 0, ops: [] });
  });

  it('TLBI_NH_VA, TG = 0: one 4 KiB page at Addr of any granule (NUM/SCALE/TTL ignored)', () => {
    expect(ops(Opcode.TlbiNhVa, { asid: 1, addr: 0xffff_6000, leaf: 1 })).toEqual([
      op(Op.IotlbRange, 7, 1, 0xffff_6000, 1, LEAF | S1),
    ]);
    expect(ops(Opcode.TlbiNhVa, { vmid: 5, asid: 2, addr: 0xffff_ffff_ffff_f000, num: 31, scale: 31 })).toEqual([
      op(Op.IotlbRange, 9, 2, 0xffff_ffff_ffff_f000, 1, S1),
    ]);
  });

  it('TLBI_NH_VA, RIL: (NUM+1) << SCALE granules from Addr, as Linux chunks 100 and 1000 pages', () => {
    // Linux: 100 pages -> NUM 24, SCALE 2; 1000 pages -> (NUM 28, SCALE 3) then (NUM 2, SCALE 8).
    const va = (addr: number, num: number, scale: number): number[][] =>
      ops(Opcode.TlbiNhVa, { asid: 1, addr, num, scale, tg: Tg.K4, ttl: 3, leaf: 1 });
    expect(va(0x1000_0000, 24, 2)).toEqual([op(Op.IotlbRange, 7, 1, 0x1000_0000, 100, LEAF | S1 | G(12))]);
    expect([...va(0x1000_0000, 28, 3), ...va(0x1000_0000 + 232 * 4096, 2, 8)]).toEqual([
      op(Op.IotlbRange, 7, 1, 0x1000_0000, 232, LEAF | S1 | G(12)),
      op(Op.IotlbRange, 7, 1, 0x1000_0000 + 232 * 4096, 768, LEAF | S1 | G(12)),
    ]);
    // The start need not be aligned to the range: Addr <= A < Addr + Range.
    expect(va(0x3000, 2, 1)).toEqual([op(Op.IotlbRange, 7, 1, 0x3000, 6, LEAF | S1 | G(12))]);
  });

  it('TLBI ranges with 16 KiB and 64 KiB granules; 2^32 pages or more become all pages', () => {
    const va = (tg: number, num: number, scale: number, ttl = 0): number[][] =>
      ops(Opcode.TlbiNhVa, { vmid: 5, asid: 3, addr: 0x4_0000_0000, num, scale, tg, ttl });
    expect(va(Tg.K16, 0, 0, 3)).toEqual([op(Op.IotlbRange, 9, 3, 0x4_0000_0000, 4, S1 | G(14))]);
    expect(va(Tg.K64, 0, 0, 3)).toEqual([op(Op.IotlbRange, 9, 3, 0x4_0000_0000, 16, S1 | G(16))]);
    expect(va(Tg.K64, 2, 4)).toEqual([op(Op.IotlbRange, 9, 3, 0x4_0000_0000, 3 * 16 * 16, S1 | G(16))]);
    expect(va(Tg.K4, 31, 26)).toEqual([op(Op.IotlbRange, 9, 3, 0x4_0000_0000, 2 ** 31, S1 | G(12))]);
    expect(va(Tg.K4, 31, 27)).toEqual([op(Op.IotlbRange, 9, 3, 0, 0xffffffff, S1 | G(12))]);
    expect(va(Tg.K64, 31, 31)).toEqual([op(Op.IotlbRange, 9, 3, 0, 0xffffffff, S1 | G(16))]);
  });

  it('TTL is only a hint: a level-2 (2 MiB block) hint does not shrink or change the range', () => {
    const at = (ttl: number): number[][] =>
      ops(Opcode.TlbiNhVa, { asid: 1, addr: 0x20_0000, tg: Tg.K4, ttl, num: 0, scale: 1 });
    expect(at(2)).toEqual(at(3));
    expect(at(1)).toEqual([op(Op.IotlbRange, 7, 1, 0x20_0000, 2, S1 | G(12))]);
  });

  it('TLBI_NH_VAA is every ASID of the VMID; TLBI_S2_IPA is stage 2, ASID 0', () => {
    expect(ops(Opcode.TlbiNhVaa, { vmid: 5, addr: 0x7000, leaf: 1 })).toEqual([
      op(Op.IotlbRangeAllAsid, 9, 0, 0x7000, 1, LEAF | S1),
    ]);
    expect(ops(Opcode.TlbiNhVaa, { vmid: 5, addr: 0x8000, tg: Tg.K4, num: 7, ttl: 3 })).toEqual([
      op(Op.IotlbRangeAllAsid, 9, 0, 0x8000, 8, S1 | G(12)),
    ]);
    expect(ops(Opcode.TlbiS2Ipa, { vmid: 0, addr: 0xf_ffff_fff0_0000, tg: Tg.K4, num: 15, scale: 4, leaf: 1 })).toEqual(
      [op(Op.IotlbRange, 7, 0, 0xf_ffff_fff0_0000, 256, LEAF | OpFlag.Stage2 | G(12))],
    );
  });

  it('ATC_INV: the aligned 2^Size-page span, all PASIDs unless SSV (and not Global); Size 52 all', () => {
    const atc = (fields: CommandFields): number[][] => opsOf(Opcode.AtcInv, fields).ops;
    const ALLP = OpFlag.AllPasids;
    expect(atc({ sid: 0x8, addr: 0xffff_6000 })).toEqual([op(Op.AtcInv, 0, 2, 0xffff_6000, 1, ALLP)]);
    // Linux: pages 0x17..0x18 -> log2_span = fls(0x17 ^ 0x18) = 4, start rounded down.
    expect(atc({ sid: 0x10, ssv: 1, ssid: 5, size: 4, addr: 0x17000 })).toEqual([op(Op.AtcInv, 5, 3, 0x10000, 16)]);
    expect(atc({ sid: 0x10, ssv: 1, ssid: 5, global: 1, size: 1, addr: 0x3000 })).toEqual([
      op(Op.AtcInv, 0, 3, 0x2000, 2, ALLP),
    ]);
    expect(atc({ sid: 0x8, global: 1, ssid: 9, addr: 0x3000 })).toEqual([op(Op.AtcInv, 0, 2, 0x3000, 1, ALLP)]);
    expect(atc({ sid: 0x8, size: 31, addr: 0xffff_ffff_ffff_f000 })).toEqual([
      op(Op.AtcInv, 0, 2, 0xffff_f800_0000_0000, 2 ** 31, ALLP),
    ]);
    for (const size of [32, 40, ATC_INV_SIZE_ALL])
      expect(atc({ sid: 0x8, size, addr: 0x5000 })).toEqual([op(Op.AtcInv, 0, 2, 0, 0xffffffff, ALLP)]);
    expect(atc({ sid: 0x18, size: 52 })).toEqual([]);
  });

  it('CMD_SYNC is a Barrier; its CS and MSI fields stay in the decoded command', () => {
    const fields = { cs: SyncCs.Irq, msh: 3, msiAttr: 0xf, msiData: 0xdead_beef, msiAddr: 0x4000_0010 };
    expect(ops(Opcode.Sync, fields)).toEqual([op(Op.Barrier)]);
    const d = decoded(Opcode.Sync, fields);
    for (const [name, value] of Object.entries(fields)) expect(d.get(name as FieldName)).toBe(value);
  });

  it('NSNH_ALL, EL2 TLBIs, PRI_RESP, RESUME, STALL_TERM are the unit’s: UNIT_HANDLES, no op', () => {
    const cases: [number, CommandFields][] = [
      [Opcode.TlbiNsnhAll, {}],
      [Opcode.TlbiEl2All, {}],
      [Opcode.TlbiEl2Asid, { asid: 1 }],
      [Opcode.TlbiEl2Va, { asid: 1, addr: 0x1000 }],
      [Opcode.TlbiEl2Vaa, { addr: 0x1000, tg: 1, ttl: 3 }],
      [Opcode.PriResp, { sid: 0x8, ssv: 1, ssid: 1, prgi: 3, resp: 2 }],
      [Opcode.Resume, { sid: 0x8, ac: 1, stag: 7 }],
      [Opcode.StallTerm, { sid: 0x8 }],
    ];
    for (const [opcode, fields] of cases) {
      expect(opsOf(opcode, fields), `0x${opcode.toString(16)}`).toEqual({ n: UNIT_HANDLES, ops: [] });
      const d = decoded(opcode, fields);
      for (const [name, value] of Object.entries(fields)) expect(d.get(name as FieldName)).toBe(value);
    }
  });

  it('every opcode of the table has a defined translation', () => {
    const unit = new Set<number>([
      Opcode.TlbiNsnhAll,
      Opcode.TlbiEl2All,
      Opcode.TlbiEl2Asid,
      Opcode.TlbiEl2Va,
      Opcode.TlbiEl2Vaa,
      Opcode.PriResp,
      Opcode.Resume,
      Opcode.StallTerm,
    ]);
    const none = new Set<number>([Opcode.PrefetchConfig, Opcode.PrefetchAddr]);
    for (const spec of COMMANDS) {
      const has = (name: FieldName): boolean => spec.fields.some((fs) => fs.name === name);
      const fields: Partial<Record<FieldName, number>> = {};
      if (has('sid')) fields.sid = 0x8;
      if (has('tg')) Object.assign(fields, { tg: Tg.K4, ttl: 3 });
      if (has('ssid')) fields.ssid = 1;
      const { n } = opsOf(spec.opcode, fields);
      expect(n, spec.name).toBe(unit.has(spec.opcode) ? UNIT_HANDLES : none.has(spec.opcode) ? 0 : 1);
    }
  });
});

describe('SMMUv3 command fuzz', () => {
  it('10^6 random 16-byte commands: only architected statuses; every Ok one re-encodes to itself', () => {
    let x = 0x2545f491;
    const next = (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    const mem = new Uint32Array(4);
    const cmd = new SmmuCommand();
    const again = new SmmuCommand();
    const list = new OpList(64);
    const map: SmmuTagMap = { tagOf: (vmid) => (vmid & 1 ? vmid & 0xfff : -1), devOf: (sid) => (sid & 1 ? 0 : -1) };
    const resWords = new Map(COMMANDS.map((c) => [c.opcode, reservedWords(c)]));
    const statuses = new Map<number, number>();
    let oks = 0;
    let bad = 0;
    // 10^6 by default; SMMU_DECODE_FUZZ sets another count.
    const n = Number(process.env['SMMU_DECODE_FUZZ'] ?? 1_000_000);
    for (let i = 0; i < n; i++) {
      for (let w = 0; w < 4; w++) mem[w] = next();
      const r = next();
      if ((r & 1) !== 0) {
        // Half name a known opcode; a quarter also clear its RES0 bits and SSec, so many pass.
        const spec = COMMANDS[(r >>> 2) % COMMANDS.length]!;
        mem[0] = (mem[0]! & ~0xff) | spec.opcode;
        if ((r & 2) !== 0) {
          const res = resWords.get(spec.opcode)!;
          for (let w = 0; w < 4; w++) mem[w] = mem[w]! & ~res[w]!;
          mem[0] = mem[0] & ~(1 << 10);
        }
      }
      // Mostly every feature, lenient; some runs strict, some with random features.
      const mode = (r >>> 8) & 7;
      const features = mode === 7 ? (r >>> 11) & 0xff : mode === 6 ? STRICT : ALL_FEATURES;
      const status = decodeCommand(mem, 0, cmd, features);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status !== CERROR_NONE) {
        if (cmd.reason === IllReason.None) bad++;
        continue;
      }
      oks++;
      const spec = commandSpec(cmd.opcode)!;
      const words = encodeCommand(spec.opcode, fieldsOf(spec, cmd));
      if (decodeCommand(words, 0, again, features) !== CERROR_NONE || again.opcode !== cmd.opcode) bad++;
      for (let k = 0; k < FIELD_COUNT; k++) if (again.f[k] !== cmd.f[k]) bad++;
      if (features === ALL_FEATURES) {
        // Lenient, nothing zeroed: exactly the fetched words minus RES0 bits.
        const res = resWords.get(spec.opcode)!;
        for (let w = 0; w < 4; w++) if (words[w] !== (mem[w]! & ~res[w]!) >>> 0) bad++;
      }
      if (list.count > 56) list.count = 0;
      const before = list.count;
      const made = commandToOps(cmd, map, i, list);
      if (made !== UNIT_HANDLES && (made < 0 || made > 1 || made !== list.count - before)) bad++;
      if (made === UNIT_HANDLES && list.count !== before) bad++;
      for (let k = before; k < list.count; k++) if (list.words[k * OP_WORDS + 1] !== i >>> 0) bad++;
    }
    expect([...statuses.keys()].sort()).toEqual([CERROR_NONE, CERROR_ILL]);
    expect(bad).toBe(0);
    expect(oks).toBeGreaterThan(n / 5);
  });
});

// ---- whole traces ---------------------------------------------------------------------------

const TRACES = process.env['IOASID_TRACES'] ?? fileURLToPath(new URL('../../traces', import.meta.url));
const LAZY = join(TRACES, 'smmu-lazy.clean.log');
const STRICT_XLATE = join(TRACES, 'smmu-strict-xlate.clean.log.xz');
const hasXz = spawnSync('xz', ['--version']).status === 0;

/** QEMU 7.2's `SMMU_CMD_*` names of the opcodes the Linux 6.1 guest sent. */
const TRACE_OPCODES: Record<string, number> = {
  SMMU_CMD_PREFETCH_CONFIG: Opcode.PrefetchConfig,
  SMMU_CMD_CFGI_STE: Opcode.CfgiSte,
  SMMU_CMD_CFGI_STE_RANGE: Opcode.CfgiSteRange,
  SMMU_CMD_TLBI_NH_ASID: Opcode.TlbiNhAsid,
  SMMU_CMD_TLBI_NH_VA: Opcode.TlbiNhVa,
  SMMU_CMD_TLBI_NSNH_ALL: Opcode.TlbiNsnhAll,
  SMMU_CMD_SYNC: Opcode.Sync,
};

interface TraceReplay {
  /** Commands by QEMU name. */
  byName: Record<string, number>;
  commands: number;
  /** smmuv3_s1_range_inval lines (QEMU's power-of-two chunks). */
  chunks: number;
  /** Ops emitted, by op code. */
  ops: Record<number, number>;
}

/**
 * Rebuilds every command of a QEMU 7.2 SMMUv3 trace from its decoded fields, encodes them into
 * one command queue, decodes them back and checks the fields, then maps them to ops.
 *
 * Trace caveats (traces/README.md): QEMU prints no raw command words, only the opcode name and,
 * for some commands, decoded fields, so the commands are re-encoded:
 * - TLBI_NH_VA: QEMU splits a range command into naturally aligned power-of-two chunks, one
 *   `smmuv3_s1_range_inval` line each; the lines after one opcode line are merged (they must be
 *   contiguous) into P pages, re-encoded as Linux does: SCALE = ctz(P), NUM = (P >> SCALE) - 1.
 * - TLBI_NH_ASID: the VMID is not printed (it is 0).
 * - CMD_SYNC: no field is printed; Linux 6.1 without MSI polling sends CS=SEV, MSH=ISH, MSIATTR=OIWB.
 * - PREFETCH_CONFIG: the SID is not printed; Linux sends it after the CFGI_STE+SYNC of that SID.
 * - CFGI_STE: Leaf is not printed (Linux sends 1). CFGI_STE_RANGE prints start/end (here always
 *   CFGI_ALL: Range 31).
 * - `smmu_iotlb_inv_all` outside a guest TLBI is QEMU's IOTLB filling up, not a command: ignored.
 */
function replayTrace(text: string): TraceReplay {
  const line = /^[\d.]+:(\S+) ?(.*)$/;
  interface Rec {
    name: string;
    details: string[];
  }
  const recs: Rec[] = [];
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (m === null) continue;
    const [, event, rest] = m as unknown as [string, string, string];
    if (event === 'smmuv3_cmdq_opcode') {
      recs.push({ name: rest.replace('<--- ', '').trim(), details: [] });
    } else if (
      event === 'smmuv3_s1_range_inval' ||
      event === 'smmuv3_cmdq_tlbi_nh_asid' ||
      event === 'smmuv3_cmdq_cfgi_ste' ||
      event === 'smmuv3_cmdq_cfgi_ste_range'
    ) {
      recs.at(-1)!.details.push(`${event} ${rest}`);
    }
  }
  const num = (s: string, key: string): number => {
    const m = new RegExp(`${key}=\\s*(0x[0-9a-f]+|\\d+)`).exec(s);
    if (m === null) throw new Error(`no ${key} in ${s}`);
    return Number(m[1]);
  };
  const queue = new Uint32Array(recs.length * 4);
  const expected: CommandFields[] = [];
  const byName: Record<string, number> = {};
  let lastSteSid = -1;
  let chunks = 0;
  recs.forEach((rec, i) => {
    byName[rec.name] = (byName[rec.name] ?? 0) + 1;
    const opcode = TRACE_OPCODES[rec.name];
    expect(opcode, rec.name).toBeDefined();
    let fields: CommandFields;
    switch (opcode) {
      case Opcode.Sync:
        fields = { cs: SyncCs.Sev, msh: 3, msiAttr: 0xf };
        break;
      case Opcode.TlbiNhAsid:
        expect(rec.details).toHaveLength(1);
        fields = { vmid: 0, asid: num(rec.details[0]!, 'asid') };
        break;
      case Opcode.CfgiSte:
        expect(rec.details).toHaveLength(1);
        lastSteSid = num(rec.details[0]!, 'streamid');
        fields = { sid: lastSteSid, leaf: 1 };
        break;
      case Opcode.CfgiSteRange: {
        expect(rec.details).toHaveLength(1);
        const start = num(rec.details[0]!, 'start');
        const count = num(rec.details[0]!, 'end') - start + 1;
        expect(Number.isInteger(Math.log2(count)) && start % count === 0).toBe(true);
        fields = { sid: start, range: Math.log2(count) - 1 };
        break;
      }
      case Opcode.PrefetchConfig:
        expect(lastSteSid).toBeGreaterThanOrEqual(0);
        fields = { sid: lastSteSid };
        break;
      case Opcode.TlbiNhVa: {
        expect(rec.details.length).toBeGreaterThan(0);
        chunks += rec.details.length;
        const first = rec.details[0]!;
        const tg = num(first, 'tg');
        let end = num(first, 'addr');
        for (const c of rec.details) {
          expect(num(c, 'addr'), 'chunks are contiguous').toBe(end);
          expect([num(c, 'tg'), num(c, 'ttl'), num(c, 'leaf'), num(c, 'asid')]).toEqual([
            tg,
            num(first, 'ttl'),
            num(first, 'leaf'),
            num(first, 'asid'),
          ]);
          end += num(c, 'num_pages') * 2 ** (2 * tg + 10);
        }
        const pages = (end - num(first, 'addr')) / 2 ** (2 * tg + 10);
        const scale = 31 - Math.clz32(pages & -pages);
        expect(pages / 2 ** scale, 'one Linux range command').toBeLessThanOrEqual(32);
        fields = {
          vmid: num(first, 'vmid'),
          asid: num(first, 'asid'),
          addr: num(first, 'addr'),
          tg,
          ttl: num(first, 'ttl'),
          leaf: num(first, 'leaf'),
          scale,
          num: pages / 2 ** scale - 1,
        };
        break;
      }
      default:
        expect(rec.details).toHaveLength(0);
        fields = {};
    }
    encodeCommand(opcode!, fields, queue, i * 4);
    expected.push(fields);
  });
  // Decode the queue in place, strictly: a Linux guest sets no RES0 bit and no reserved value.
  const cmd = new SmmuCommand();
  const list = new OpList(4);
  const opCounts: Record<number, number> = {};
  const map: SmmuTagMap = { tagOf: (vmid) => vmid + 1, devOf: () => -1 };
  for (let i = 0; i < recs.length; i++) {
    expect(decodeCommand(queue, i * 4, cmd, STRICT), recs[i]!.name).toBe(CERROR_NONE);
    expect(cmd.opcode).toBe(TRACE_OPCODES[recs[i]!.name]);
    const spec = commandSpec(cmd.opcode)!;
    expect(fieldsOf(spec, cmd)).toEqual({
      ...Object.fromEntries(spec.fields.map((fs) => [fs.name, 0])),
      ...expected[i],
    });
    list.count = 0;
    const n = commandToOps(cmd, map, i, list);
    for (let k = 0; k < Math.max(n, 0); k++) {
      const code = list.words[k * OP_WORDS]!;
      opCounts[code] = (opCounts[code] ?? 0) + 1;
    }
    if (cmd.opcode === Opcode.TlbiNhVa) {
      // The op covers exactly QEMU's merged chunks.
      const f = expected[i]!;
      expect(Array.from(list.words.subarray(0, OP_WORDS))).toEqual([
        Op.IotlbRange,
        i,
        1,
        f.asid,
        f.addr! % 2 ** 32,
        Math.floor(f.addr! / 2 ** 32),
        (f.num! + 1) * 2 ** f.scale!,
        LEAF | S1 | G(12),
      ]);
    }
    if (cmd.opcode === Opcode.TlbiNsnhAll) expect(n).toBe(UNIT_HANDLES);
  }
  return { byName, commands: recs.length, chunks, ops: opCounts };
}

describe('SMMUv3 commands from real guest traces', () => {
  it.skipIf(!existsSync(LAZY))(
    `every command of smmu-lazy re-encodes, decodes and maps to ops${existsSync(LAZY) ? '' : ` (skipped: ${LAZY} not found)`}`,
    () => {
      const r = replayTrace(readFileSync(LAZY, 'utf8'));
      expect(r.commands).toBe(950); // README: 950 smmuv3_cmdq_opcode lines
      expect(r.byName).toEqual({
        SMMU_CMD_SYNC: 476,
        SMMU_CMD_TLBI_NH_ASID: 466,
        SMMU_CMD_CFGI_STE: 4,
        SMMU_CMD_PREFETCH_CONFIG: 2,
        SMMU_CMD_CFGI_STE_RANGE: 1,
        SMMU_CMD_TLBI_NSNH_ALL: 1,
      });
      expect(r.ops).toEqual({ [Op.Barrier]: 476, [Op.IotlbAsid]: 466, [Op.CfgSid]: 4, [Op.CfgAll]: 1 });
    },
  );

  const strictReady = hasXz && existsSync(STRICT_XLATE);
  it.skipIf(!strictReady)(
    `every command of smmu-strict-xlate re-encodes, decodes and maps to ops${strictReady ? '' : ` (skipped: ${hasXz ? `${STRICT_XLATE} not found` : 'the xz tool is not installed'})`}`,
    () => {
      const text = execFileSync('xz', ['-dc', STRICT_XLATE], { maxBuffer: 64 << 20, encoding: 'utf8' });
      const r = replayTrace(text);
      expect(r.commands).toBe(47467); // README: 47467 smmuv3_cmdq_opcode lines
      expect(r.byName).toEqual({
        SMMU_CMD_SYNC: 23733,
        SMMU_CMD_TLBI_NH_VA: 23724,
        SMMU_CMD_CFGI_STE: 4,
        SMMU_CMD_PREFETCH_CONFIG: 2,
        SMMU_CMD_TLBI_NH_ASID: 2,
        SMMU_CMD_CFGI_STE_RANGE: 1,
        SMMU_CMD_TLBI_NSNH_ALL: 1,
      });
      // 23756 QEMU chunks merge back into the 23724 range commands the guest sent.
      expect(r.chunks).toBe(23756);
      expect(r.ops[Op.IotlbRange]).toBe(23724);
    },
  );
});
