import { describe, expect, it } from 'vitest';
import { PhysMemory } from '../../src/memory/index.js';
import {
  Access,
  armS1Codec,
  armS1Config,
  armS1Walk,
  armS2Codec,
  armS2Config,
  armS2Walk,
  CFG,
  ENCODED,
  FaultReason,
  linuxS2Sl0,
  packWalkConfig,
  Prot,
  SMMU_EVT,
  TranslateFault,
  WalkFault,
} from '../../src/pgtable/index.js';

/* Descriptors written by hand, bit by bit from reference/config-formats.md §1, then walked. */

const mem = (): PhysMemory => new PhysMemory(16 * 2 ** 20);

/** Writes a 64-bit little-endian descriptor at `pa`. */
function put(m: PhysMemory, pa: number, v: bigint): void {
  m.i32[pa / 4] = Number(v & 0xffffffffn) | 0;
  m.i32[pa / 4 + 1] = Number(v >> 32n) | 0;
}

const bit = (n: number): bigint => 1n << BigInt(n);
const TABLE = 0b11n;
const BLOCK = 0b01n;
const PAGE = 0b11n;
const AF = bit(10);
const AP1 = bit(6);
const AP2 = bit(7);
const UXN = bit(54);
const PXN = bit(53);
const S2AP_R = bit(6);
const S2AP_W = bit(7);

// Table frames of a 48-bit stage-1 walk for IOVA 0: L0 at 0x10000, L1 at 0x11000, L2 at 0x12000, L3 at 0x13000.
const L0 = 0x10000;
const L1 = 0x11000;
const L2 = 0x12000;
const L3 = 0x13000;
const S1_48 = packWalkConfig(0, 48, 48);

function chainTo(m: PhysMemory, level: 1 | 2 | 3, iova: number, extraTableBits = 0n): void {
  const idx = (l: number): number => Math.floor(iova / 2 ** (12 + 9 * (3 - l))) % 512;
  put(m, L0 + idx(0) * 8, BigInt(L1) | TABLE | extraTableBits);
  if (level >= 2) put(m, L1 + idx(1) * 8, BigInt(L2) | TABLE);
  if (level >= 3) put(m, L2 + idx(2) * 8, BigInt(L3) | TABLE);
}

describe('Arm VMSAv8-64 stage 1 encodings (builder)', () => {
  const codec = armS1Codec(armS1Config(16));
  const words = (): bigint => (BigInt(ENCODED[1]! >>> 0) << 32n) | BigInt(ENCODED[0]! >>> 0);

  it('a table descriptor is bits[1:0]=11 with the next table at 47:12', () => {
    codec.table(0x1_2345_6000);
    expect(words()).toBe(0x1_2345_6000n | TABLE);
  });

  it('a page at level 3: 11, AttrIndx=1, AP[1]=1, SH=3, AF, nG; AP[2]=1 when read-only', () => {
    codec.leaf(3, 0x1_2345_6000, Prot.Read);
    expect(words()).toBe(0x1_2345_6000n | PAGE | (1n << 2n) | AP1 | AP2 | (3n << 8n) | AF | bit(11));
    codec.leaf(3, 0x5000, Prot.Read | Prot.Write);
    expect(words() & AP2).toBe(0n);
  });

  it('blocks at levels 1 and 2 are bits[1:0]=01 with OA[47:30] and OA[47:21]', () => {
    codec.leaf(1, 0x80_4000_0000, Prot.Read);
    expect(words() & 0b11n).toBe(BLOCK);
    expect(words() & 0xffff_ffff_f000n).toBe(0x80_4000_0000n);
    codec.leaf(2, 0x60_0000, Prot.Write);
    expect(words() & 0b11n).toBe(BLOCK);
    expect(words() & 0xffff_ffff_f000n).toBe(0x60_0000n);
  });

  it('a split keeps the attributes and turns a block into pages', () => {
    codec.leaf(2, 0x60_0000, Prot.Read);
    const lo = ENCODED[0]!;
    const hi = ENCODED[1]!;
    codec.splitLeaf(lo, hi, 2, 3, 0x60_1000);
    expect(words()).toBe(0x60_1000n | PAGE | (1n << 2n) | AP1 | AP2 | (3n << 8n) | AF | bit(11));
  });

  it('the start level follows from T0SZ (§1.6)', () => {
    expect([16, 24, 25, 33, 34, 39].map((t) => [armS1Config(t).startLevel, armS1Config(t).startEntries])).toEqual([
      [0, 512],
      [0, 2],
      [1, 512],
      [1, 2],
      [2, 512],
      [2, 16],
    ]);
    expect(() => armS1Config(15)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(() => armS1Config(40)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });
});

describe('Arm stage-1 walks of hand-written tables', () => {
  it('walks a page, a 2 MiB block and a 1 GiB block to the right byte', () => {
    const m = mem();
    const f = new WalkFault();
    chainTo(m, 3, 0);
    put(m, L3 + 5 * 8, 0x0040_0000n | PAGE | AF | AP1);
    expect(armS1Walk(m.i32, L0, S1_48, 0x5123, Access.Read, f)).toBe(0x40_0123);
    put(m, L2 + 3 * 8, 0x0080_0000n | BLOCK | AF | AP1);
    expect(armS1Walk(m.i32, L0, S1_48, 3 * 2 ** 21 + 0x1234, Access.Read, f)).toBe(0x80_0000 + 0x1234);
    put(m, L1 + 2 * 8, 0x4000_0000n | BLOCK | AF | AP1);
    expect(armS1Walk(m.i32, L0, S1_48, 2 * 2 ** 30 + 0x12_3456, Access.Read, f)).toBe(2 ** 30 + 0x12_3456);
  });

  it('Translation fault (0x10): invalid entry at each level, with the level', () => {
    const m = mem();
    const f = new WalkFault();
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[1], f.words[4]]).toEqual([0, SMMU_EVT.F_TRANSLATION]);
    chainTo(m, 3, 0);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[1]).toBe(3);
    expect(armS1Walk(m.i32, L0, S1_48, 2 ** 21, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[1]).toBe(2);
  });

  it('Translation fault: input beyond the input size, a block at level 0, bits[1:0]=01 at level 3', () => {
    const m = mem();
    const f = new WalkFault();
    expect(armS1Walk(m.i32, L0, packWalkConfig(1, 39, 48), 2 ** 39, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[2]).toBe(FaultReason.Aperture);
    put(m, L0, 0n | BLOCK | AF);
    expect(armS1Walk(m.i32, L0, S1_48, 0x1000, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[1], f.words[2], f.words[4]]).toEqual([0, FaultReason.ReservedBits, SMMU_EVT.F_TRANSLATION]);
    const m2 = mem();
    chainTo(m2, 3, 0);
    put(m2, L3, 0x40_0000n | BLOCK | AF | AP1);
    expect(armS1Walk(m2.i32, L0, S1_48, 0, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[1]).toBe(3);
  });

  it('Access flag fault (0x12) when AF=0, unless AFFD', () => {
    const m = mem();
    const f = new WalkFault();
    chainTo(m, 3, 0);
    put(m, L3, 0x40_0000n | PAGE | AP1);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read, f)).toBe(TranslateFault.AccessFlag);
    expect([f.words[1], f.words[4]]).toEqual([3, SMMU_EVT.F_ACCESS]);
    expect(armS1Walk(m.i32, L0, S1_48 | CFG.AFFD, 0, Access.Read, f)).toBe(0x40_0000);
  });

  it('Permission fault (0x13): AP[2] write, AP[1] unprivileged, UXN and PXN fetches', () => {
    const m = mem();
    const f = new WalkFault();
    chainTo(m, 3, 0);
    put(m, L3, 0x40_0000n | PAGE | AF | AP2);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Write | Access.Priv, f)).toBe(TranslateFault.Permission);
    expect([f.words[2], f.words[4]]).toEqual([FaultReason.WriteDenied, SMMU_EVT.F_PERMISSION]);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read, f)).toBe(TranslateFault.Permission);
    expect(f.words[2]).toBe(FaultReason.UserDenied);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read | Access.Priv, f)).toBe(0x40_0000);
    put(m, L3 + 8, 0x40_1000n | PAGE | AF | AP1 | UXN);
    expect(armS1Walk(m.i32, L0, S1_48, 0x1000, Access.Exec, f)).toBe(TranslateFault.Permission);
    expect(f.words[2]).toBe(FaultReason.ExecDenied);
    expect(armS1Walk(m.i32, L0, S1_48, 0x1000, Access.Exec | Access.Priv, f)).toBe(0x40_1000);
    put(m, L3 + 16, 0x40_2000n | PAGE | AF | AP1 | PXN);
    expect(armS1Walk(m.i32, L0, S1_48, 0x2000, Access.Exec | Access.Priv, f)).toBe(TranslateFault.Permission);
    expect(armS1Walk(m.i32, L0, S1_48, 0x2000, Access.Exec, f)).toBe(0x40_2000);
  });

  it('hierarchical APTable / XNTable limits combine with the leaf, unless HAD', () => {
    const m = mem();
    const f = new WalkFault();
    chainTo(m, 3, 0, bit(62) | bit(61) | bit(60));
    put(m, L3, 0x40_0000n | PAGE | AF | AP1);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Write | Access.Priv, f)).toBe(TranslateFault.Permission);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read, f)).toBe(TranslateFault.Permission);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Exec, f)).toBe(TranslateFault.Permission);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read | Access.Priv, f)).toBe(0x40_0000);
    expect(armS1Walk(m.i32, L0, S1_48 | CFG.HAD, 0, Access.Write | Access.Exec, f)).toBe(0x40_0000);
  });

  it('Address size fault (0x11): a table or an output address beyond the output size', () => {
    const m = mem();
    const f = new WalkFault();
    put(m, L0, (1n << 40n) | TABLE);
    expect(armS1Walk(m.i32, L0, packWalkConfig(0, 48, 40), 0, Access.Read, f)).toBe(TranslateFault.AddressSize);
    expect([f.words[1], f.words[4]]).toEqual([0, SMMU_EVT.F_ADDR_SIZE]);
    const m2 = mem();
    chainTo(m2, 3, 0);
    put(m2, L3, (1n << 40n) | PAGE | AF | AP1);
    expect(armS1Walk(m2.i32, L0, packWalkConfig(0, 48, 40), 0, Access.Read, f)).toBe(TranslateFault.AddressSize);
    expect(f.words[1]).toBe(3);
  });

  it('External abort on the walk (0x0b): a table outside physical memory', () => {
    const m = mem();
    const f = new WalkFault();
    put(m, L0, 0x4000_0000n | TABLE);
    expect(armS1Walk(m.i32, L0, S1_48, 0, Access.Read, f)).toBe(TranslateFault.WalkAbort);
    expect([f.words[1], f.words[4]]).toEqual([1, SMMU_EVT.F_WALK_EABT]);
  });
});

describe('Arm stage 2', () => {
  it('encodes S2AP from the prot: bit 6 read, bit 7 write; MemAttr WB; AF', () => {
    const codec = armS2Codec(armS2Config(16, 2));
    codec.leaf(3, 0x7000, Prot.Write);
    const v = (BigInt(ENCODED[1]! >>> 0) << 32n) | BigInt(ENCODED[0]! >>> 0);
    expect(v).toBe(0x7000n | PAGE | (0xfn << 2n) | S2AP_W | (3n << 8n) | AF);
  });

  it('SL0 picks the start level, and concatenated start tables are indexed as one (§1.7)', () => {
    expect([armS2Config(16, 2).startLevel, armS2Config(16, 2).startEntries]).toEqual([0, 512]);
    expect([armS2Config(24, 1).startLevel, armS2Config(24, 1).startEntries]).toEqual([1, 1024]);
    expect([armS2Config(30, 0).startLevel, armS2Config(30, 0).startEntries]).toEqual([2, 8192]);
    expect(() => armS2Config(20, 1)).toThrow(expect.objectContaining({ errno: 'EINVAL' })); // 64 tables
    expect(() => armS2Config(16, 3)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(linuxS2Sl0(40)).toBe(1); // Linux concatenates 2 level-1 tables for a 40-bit IPA
    expect(linuxS2Sl0(48)).toBe(2);
    // 2 concatenated level-1 tables at 0x20000 and 0x21000: IPA 2^39 + 5 GiB uses table 1, entry 5.
    const m = mem();
    const f = new WalkFault();
    const cfg = packWalkConfig(1, 40, 48);
    put(m, 0x21000 + 5 * 8, 0x4000_0000n | BLOCK | AF | S2AP_R);
    expect(armS2Walk(m.i32, 0x20000, cfg, 2 ** 39 + 5 * 2 ** 30 + 77, Access.Read, f)).toBe(2 ** 30 + 77);
    expect(armS2Walk(m.i32, 0x20000, cfg, 5 * 2 ** 30, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(armS2Walk(m.i32, 0x20000, cfg, 2 ** 40, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[2]).toBe(FaultReason.Aperture);
  });

  it('permission, access flag, execute-never and address size faults', () => {
    const m = mem();
    const f = new WalkFault();
    const cfg = packWalkConfig(1, 39, 40);
    put(m, L1, BigInt(L2) | TABLE);
    put(m, L2, BigInt(L3) | TABLE);
    put(m, L3, 0x40_0000n | PAGE | AF | S2AP_R);
    put(m, L3 + 8, 0x40_1000n | PAGE | S2AP_R | S2AP_W);
    put(m, L3 + 16, 0x40_2000n | PAGE | AF | S2AP_R | UXN);
    put(m, L3 + 24, (1n << 41n) | PAGE | AF | S2AP_R);
    expect(armS2Walk(m.i32, L1, cfg, 0x10, Access.Read, f)).toBe(0x40_0010);
    expect(armS2Walk(m.i32, L1, cfg, 0x10, Access.Write, f)).toBe(TranslateFault.Permission);
    expect([f.words[2], f.words[4]]).toEqual([FaultReason.WriteDenied, SMMU_EVT.F_PERMISSION]);
    expect(armS2Walk(m.i32, L1, cfg, 0x1000, Access.Read, f)).toBe(TranslateFault.AccessFlag);
    expect(armS2Walk(m.i32, L1, cfg | CFG.AFFD, 0x1000, Access.Write, f)).toBe(0x40_1000);
    expect(armS2Walk(m.i32, L1, cfg, 0x2000, Access.Exec, f)).toBe(TranslateFault.Permission);
    expect(f.words[2]).toBe(FaultReason.ExecDenied);
    expect(armS2Walk(m.i32, L1, cfg, 0x3000, Access.Read, f)).toBe(TranslateFault.AddressSize);
    put(m, L3 + 32, 0x40_4000n | PAGE | AF | S2AP_W);
    expect(armS2Walk(m.i32, L1, cfg, 0x4000, Access.Read, f)).toBe(TranslateFault.Permission);
    expect(f.words[2]).toBe(FaultReason.ReadDenied);
  });
});
