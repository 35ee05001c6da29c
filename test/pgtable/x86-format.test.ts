import { describe, expect, it } from 'vitest';
import { PhysMemory } from '../../src/memory/index.js';
import {
  Access,
  CFG,
  ENCODED,
  FaultReason,
  packWalkConfig,
  Prot,
  TranslateFault,
  VTD_FR,
  vtdSecondStageCodec,
  vtdSecondStageWalk,
  WalkFault,
  x86FirstStageCodec,
  x86FirstStageWalk,
  x86StartLevel,
} from '../../src/pgtable/index.js';

/* Entries written by hand from reference/config-formats.md §2, walked, and every VT-d reason code of §5.2 / §5.3 that a walk raises. */

const mem = (): PhysMemory => new PhysMemory(16 * 2 ** 20);
function put(m: PhysMemory, pa: number, v: bigint): void {
  m.i32[pa / 4] = Number(v & 0xffffffffn) | 0;
  m.i32[pa / 4 + 1] = Number(v >> 32n) | 0;
}
function get(m: PhysMemory, pa: number): bigint {
  return (BigInt(m.i32[pa / 4 + 1]! >>> 0) << 32n) | BigInt(m.i32[pa / 4]! >>> 0);
}
const words = (): bigint => (BigInt(ENCODED[1]! >>> 0) << 32n) | BigInt(ENCODED[0]! >>> 0);
const bit = (n: number): bigint => 1n << BigInt(n);
const [P, RW, US, A, D, PS] = [bit(0), bit(1), bit(2), bit(5), bit(6), bit(7)];
const XD = bit(63);
const [R, W, SNP] = [bit(0), bit(1), bit(11)];
const PML5 = 0x1f000;
const PML4 = 0x10000;
const PDPT = 0x11000;
const PD = 0x12000;
const PT = 0x13000;
const FL48 = packWalkConfig(0, 48, 48);

function flChain(m: PhysMemory, iova: number, bits = P | RW | US): void {
  const idx = (l: number): number => Math.floor(iova / 2 ** (12 + 9 * (3 - l))) % 512;
  put(m, PML4 + idx(0) * 8, BigInt(PDPT) | bits);
  put(m, PDPT + idx(1) * 8, BigInt(PD) | P | RW | US);
  put(m, PD + idx(2) * 8, BigInt(PT) | P | RW | US);
}

describe('x86-64 first stage', () => {
  it('encodes tables P|R/W|U/S|A and leaves P|U/S|A (+R/W|D when writeable, PS for large pages)', () => {
    const c = x86FirstStageCodec(48);
    c.table(0x1_2345_6000);
    expect(words()).toBe(0x1_2345_6000n | P | RW | US | A);
    c.leaf(3, 0x7000, Prot.Read);
    expect(words()).toBe(0x7000n | P | US | A);
    c.leaf(2, 0x20_0000, Prot.Read | Prot.Write);
    expect(words()).toBe(0x20_0000n | P | RW | US | A | D | PS);
    expect([x86StartLevel(48), x86StartLevel(57)]).toEqual([0, -1]);
  });

  it('walks 4 KiB, 2 MiB and 1 GiB leaves, 4- and 5-level', () => {
    const m = mem();
    const f = new WalkFault();
    flChain(m, 0);
    put(m, PT + 3 * 8, 0x40_0000n | P | US);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0x3abc, Access.Read, f)).toBe(0x40_0abc);
    put(m, PD + 1 * 8, 0x60_0000n | P | US | PS);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 2 ** 21 + 0x1234, Access.Read, f)).toBe(0x60_1234);
    put(m, PDPT + 1 * 8, 0x4000_0000n | P | US | PS | bit(12)); // bit 12 is PAT in a 1 GiB leaf
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 2 ** 30 + 0x12345, Access.Read, f)).toBe(2 ** 30 + 0x12345);
    put(m, PML5, BigInt(PML4) | P | RW | US);
    expect(x86FirstStageWalk(m.i32, PML5, packWalkConfig(-1, 57, 48), 0x3abc, Access.Read, f)).toBe(0x40_0abc);
  });

  it('0x80 non-canonical, 0x71 not present, 0x70 table read error', () => {
    const m = mem();
    const f = new WalkFault();
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 2 ** 47, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[2], f.words[4]]).toEqual([FaultReason.NonCanonical, VTD_FR.FS_NON_CANONICAL]);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[1], f.words[4]]).toEqual([0, VTD_FR.FS_PAGING_ENTRY_P]);
    put(m, PML4, 0x4000_0000n | P | RW | US);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Read, f)).toBe(TranslateFault.WalkAbort);
    expect(f.words[4]).toBe(VTD_FR.FS_PAGING_ENTRY_INV);
  });

  it('rights combine across levels: R/W and U/S are ANDed (0x85, 0x81), XD is ORed (0x82)', () => {
    const m = mem();
    const f = new WalkFault();
    flChain(m, 0, P | US); // the PML4E forbids writes for everything below
    put(m, PT, 0x40_0000n | P | RW | US);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Write, f)).toBe(TranslateFault.Permission);
    expect([f.words[1], f.words[4]]).toEqual([0, VTD_FR.SM_WRITE]);
    flChain(m, 0, P | RW); // supervisor-only PML4E
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Read, f)).toBe(TranslateFault.Permission);
    expect(f.words[4]).toBe(VTD_FR.FS_PAGING_ENTRY_US);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Read | Access.Priv, f)).toBe(0x40_0000);
    flChain(m, 0, P | RW | US | XD);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Exec, f)).toBe(TranslateFault.Permission);
    expect(f.words[4]).toBe(VTD_FR.SM_EXEC);
  });

  it('0x72 reserved bits: PS in a PML4E, an address beyond the host width, low bits of a large page', () => {
    const m = mem();
    const f = new WalkFault();
    put(m, PML4, 0n | P | RW | US | PS);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Read, f)).toBe(TranslateFault.Reserved);
    expect([f.words[1], f.words[4]]).toEqual([0, VTD_FR.FS_PAGING_ENTRY_RSVD]);
    put(m, PML4, (1n << 40n) | P | RW | US);
    expect(x86FirstStageWalk(m.i32, PML4, packWalkConfig(0, 48, 39), 0, Access.Read, f)).toBe(TranslateFault.Reserved);
    flChain(m, 0);
    put(m, PD, 0x60_2000n | P | US | PS);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Read, f)).toBe(TranslateFault.Reserved);
    expect(f.words[1]).toBe(2);
  });

  it('sets A on every entry walked and D on the leaf of a write, with SET_AD', () => {
    const m = mem();
    const f = new WalkFault();
    flChain(m, 0);
    put(m, PT, 0x40_0000n | P | RW | US);
    expect(x86FirstStageWalk(m.i32, PML4, FL48, 0, Access.Read, f)).toBe(0x40_0000);
    expect(get(m, PT) & (A | D)).toBe(0n);
    expect(x86FirstStageWalk(m.i32, PML4, FL48 | CFG.SET_AD, 0, Access.Write, f)).toBe(0x40_0000);
    expect(get(m, PT) & (A | D)).toBe(A | D);
    expect(get(m, PML4) & (A | D)).toBe(A);
  });
});

describe('VT-d second stage', () => {
  const SL48 = packWalkConfig(0, 48, 48);
  const SM = CFG.SCALABLE;
  function slChain(m: PhysMemory, bits = R | W): void {
    put(m, PML4, BigInt(PDPT) | bits);
    put(m, PDPT, BigInt(PD) | R | W);
    put(m, PD, BigInt(PT) | R | W);
  }

  it('encodes R, W, PS and the address; present means R or W', () => {
    const c = vtdSecondStageCodec(48);
    c.table(0x1_0000_3000);
    expect(words()).toBe(0x1_0000_3000n | R | W);
    c.leaf(3, 0x7000, Prot.Write);
    expect(words()).toBe(0x7000n | W);
    c.leaf(1, 0x4000_0000, Prot.Read);
    expect(words()).toBe(0x4000_0000n | R | PS);
    expect(c.present(Number(W))).toBe(true);
    expect(c.present(Number(SNP))).toBe(false);
    expect([vtdSecondStageCodec(39).startLevel, vtdSecondStageCodec(57).startLevel]).toEqual([1, -1]);
  });

  it('walks 3-, 4- and 5-level tables (AW 39 / 48 / 57)', () => {
    const m = mem();
    const f = new WalkFault();
    slChain(m);
    put(m, PT + 8, 0x40_0000n | R | W);
    expect(vtdSecondStageWalk(m.i32, PML4, SL48, 0x1010, Access.Write, f)).toBe(0x40_0010);
    expect(vtdSecondStageWalk(m.i32, PDPT, packWalkConfig(1, 39, 48), 0x1010, Access.Read, f)).toBe(0x40_0010);
    put(m, PML5, BigInt(PML4) | R | W);
    expect(vtdSecondStageWalk(m.i32, PML5, packWalkConfig(-1, 57, 48), 0x1010, Access.Read, f)).toBe(0x40_0010);
    put(m, PD + 8, 0x80_0000n | R | PS);
    expect(vtdSecondStageWalk(m.i32, PML4, SL48, 2 ** 21 + 5, Access.Read, f)).toBe(0x80_0005);
  });

  it.each([
    [
      'legacy',
      0,
      VTD_FR.ADDR_BEYOND_MGAW,
      VTD_FR.READ,
      VTD_FR.WRITE,
      VTD_FR.PAGING_ENTRY_INV,
      VTD_FR.PAGING_ENTRY_RSVD,
      VTD_FR.INTERRUPT_ADDR,
    ],
    [
      'scalable',
      SM,
      VTD_FR.SM_INPUT_BEYOND_MAX,
      VTD_FR.SM_READ,
      VTD_FR.SM_WRITE,
      VTD_FR.SS_PAGING_ENTRY_INV,
      VTD_FR.SS_PAGING_ENTRY_RSVD,
      VTD_FR.SM_INTERRUPT_ADDR,
    ],
  ] as const)('%s mode fault reasons', (_mode, flags, beyond, read, write, inv, rsvd, intr) => {
    const m = mem();
    const f = new WalkFault();
    const cfg = SL48 | flags;
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 2 ** 48, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[4]).toBe(beyond);
    // Not present: a read gives the read code, a write the write code.
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 0, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[4]).toBe(read);
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 0, Access.Write, f)).toBe(TranslateFault.NotMapped);
    expect(f.words[4]).toBe(write);
    // Rights are checked at every level: a read-only PML4E denies writes below it.
    slChain(m, R);
    put(m, PT, 0x40_0000n | R | W);
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 0, Access.Write, f)).toBe(TranslateFault.Permission);
    expect([f.words[1], f.words[4]]).toEqual([0, write]);
    slChain(m);
    put(m, PT, 0x40_0000n | W);
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 0, Access.Read, f)).toBe(TranslateFault.Permission);
    expect([f.words[1], f.words[4]]).toEqual([3, read]);
    // A next-table pointer outside memory.
    put(m, PD + 8, 0x4000_0000n | R | W);
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 2 ** 21, Access.Read, f)).toBe(TranslateFault.WalkAbort);
    expect(f.words[4]).toBe(inv);
    // Reserved: PS in a PML4E, low bits of a 2 MiB leaf.
    put(m, PD + 16, 0x60_1000n | R | PS);
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 2 * 2 ** 21, Access.Read, f)).toBe(TranslateFault.Reserved);
    expect(f.words[4]).toBe(rsvd);
    const m2 = mem();
    put(m2, PML4, 0n | R | W | PS);
    expect(vtdSecondStageWalk(m2.i32, PML4, cfg, 0, Access.Read, f)).toBe(TranslateFault.Reserved);
    expect(f.words[4]).toBe(rsvd);
    // Output in the interrupt range.
    put(m, PT + 16, 0xfee0_0000n | R | W);
    expect(vtdSecondStageWalk(m.i32, PML4, cfg, 0x2000, Access.Read, f)).toBe(TranslateFault.NotMapped);
    expect([f.words[2], f.words[4]]).toEqual([FaultReason.InterruptRange, intr]);
  });
});
