import { describe, expect, it } from 'vitest';
import { allocIova, holes, mergeRanges, roundupPowOfTwo, U64_MAX, type IovaRange } from '../../src/iopt/index.js';

const space = (used: IovaRange[] = [], allowed: IovaRange[] = [], iovaAlignment = 1n) => ({
  iovaAlignment,
  allowed,
  used: () => used,
});

describe('allocIova (iopt_alloc_iova)', () => {
  it('aligns to roundup_pow_of_two(length) and never returns the first page', () => {
    expect(allocIova(space(), 0n, 4096n)).toBe(4096n);
    expect(allocIova(space(), 0n, 3n * 4096n)).toBe(16384n);
  });

  it('keeps the low bits of the user address: page offset ORed in, alignment capped by the address', () => {
    // addr 0x1800: lowest bit 0x800, so alignment 0x800 and page offset 0x800.
    expect(allocIova(space(), 0x1800n, 0x800n)).toBe(0x1800n);
    expect(allocIova(space([{ start: 0x1000n, last: 0x1fffn }]), 0x1800n, 0x800n)).toBe(0x2800n);
  });

  it('caps alignment at 2 MiB (HPAGE_SIZE)', () => {
    expect(allocIova(space([{ start: 0n, last: 0x200000n }]), 0n, 1n << 30n)).toBe(0x400000n);
  });

  it('is first fit over the holes of reserved ranges and areas', () => {
    const used = [
      { start: 0x1000n, last: 0x4fffn },
      { start: 0x6000n, last: 0x7fffn },
    ];
    expect(allocIova(space(used), 0n, 0x1000n)).toBe(0x5000n);
    expect(allocIova(space(used), 0n, 0x2000n)).toBe(0x8000n);
  });

  it('stays inside the allowed ranges', () => {
    const allowed = [{ start: 0x10_0000n, last: 0x10_ffffn }];
    expect(allocIova(space([], allowed), 0n, 0x1000n)).toBe(0x10_0000n);
    expect(() => allocIova(space([], allowed), 0n, 0x2_0000n)).toThrow(expect.objectContaining({ errno: 'ENOSPC' }));
  });

  it('ENOSPC when a reserved range covers almost everything (reserved_overflow)', () => {
    expect(() => allocIova(space([{ start: 0n, last: U64_MAX - 4096n }]), 0n, 4096n)).toThrow(
      expect.objectContaining({ errno: 'ENOSPC' }),
    );
  });

  it('EINVAL when the computed alignment is below the IOAS alignment; EOVERFLOW for huge lengths', () => {
    expect(() => allocIova(space([], [], 2048n), 0x7f00_0000_0400n, 0x800n)).toThrow(
      expect.objectContaining({ errno: 'EINVAL' }),
    );
    expect(() => allocIova(space(), 0n, U64_MAX / 2n)).toThrow(expect.objectContaining({ errno: 'EOVERFLOW' }));
    expect(() => allocIova(space(), 0n, 0n)).toThrow(expect.objectContaining({ errno: 'EOVERFLOW' }));
  });

  it('refuses a candidate equal to the hole end (the kernel quirk: a 1-byte hole never fits)', () => {
    const used = [
      { start: 0n, last: 0x1ffen },
      { start: 0x2000n, last: U64_MAX },
    ];
    expect(() => allocIova(space(used), 0n, 1n)).toThrow(expect.objectContaining({ errno: 'ENOSPC' }));
  });
});

describe('range helpers', () => {
  it('merges overlapping and adjacent ranges and finds holes', () => {
    const m = mergeRanges([
      { start: 10n, last: 20n },
      { start: 21n, last: 30n },
      { start: 5n, last: 12n },
      { start: 40n, last: 50n },
    ]);
    expect(m).toEqual([
      { start: 5n, last: 30n },
      { start: 40n, last: 50n },
    ]);
    expect(holes(m, 0n, 60n)).toEqual([
      { start: 0n, last: 4n },
      { start: 31n, last: 39n },
      { start: 51n, last: 60n },
    ]);
    expect(holes([{ start: 0n, last: U64_MAX }], 0n, U64_MAX)).toEqual([]);
    expect(roundupPowOfTwo(5n)).toBe(8n);
  });
});
