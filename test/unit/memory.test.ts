import { describe, expect, it } from 'vitest';
import {
  EpochReclaimer,
  FrameAllocator,
  GuestRam,
  HostAddressSpace,
  PhysMemory,
  SystemMemory,
  descClear,
  descInstall,
  descLoadHi,
  descLoadLo,
} from '../../src/memory/index.js';
import { FaultInjector } from '../../src/util/fail-nth.js';

const MiB = 2 ** 20;

describe('PhysMemory', () => {
  it('rejects sizes that are not whole frames or out of range with EINVAL', () => {
    expect(() => new PhysMemory(4097 * 16)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(() => new PhysMemory(4096)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(() => new PhysMemory(8 * 2 ** 30)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });

  it('views one shared buffer as bytes and words', () => {
    const m = new PhysMemory(MiB);
    expect(m.frameCount).toBe(256);
    m.i32[1] = 0x04030201;
    expect([...m.u8.subarray(4, 8)]).toEqual([1, 2, 3, 4]);
    expect(m.sab).toBeInstanceOf(SharedArrayBuffer);
  });
});

describe('FrameAllocator', () => {
  it('hands out every frame once, then ENOMEM', () => {
    const m = new PhysMemory(64 * 1024);
    const a = new FrameAllocator(m);
    const got = new Set<number>();
    for (let i = 0; i < 16; i++) got.add(a.alloc());
    expect(got.size).toBe(16);
    expect(() => a.alloc()).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    expect(a.inUse).toBe(16);
  });

  it('aligns a contiguous run to alignFrames; the frames skipped are allocated later, none is lost', () => {
    const m = new PhysMemory(64 * 1024);
    const a = new FrameAllocator(m);
    expect(a.alloc()).toBe(0);
    const first = a.allocContiguous(4, 4); // a 16 KiB concatenated root: frames 4..7
    expect(first).toBe(4);
    expect(a.inUse).toBe(5);
    const rest = new Set<number>();
    for (let i = 0; i < 11; i++) rest.add(a.alloc());
    expect([...rest].sort((x, y) => x - y)).toEqual([1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(() => a.alloc()).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
  });

  it('zeroes a recycled frame and keeps its state in shared memory', () => {
    const m = new PhysMemory(64 * 1024);
    const a = new FrameAllocator(m);
    const f = a.alloc();
    m.u8.fill(0xab, f * 4096, f * 4096 + 4096);
    a.put(f); // default retire: straight back to the free stack
    const again = a.alloc();
    expect(again).toBe(f);
    expect(m.u8.subarray(f * 4096, f * 4096 + 4096).every((b) => b === 0)).toBe(true);
    // A second view over the same buffers sees the same state (as a worker would).
    const other = new FrameAllocator(m, a.sab);
    expect(other.inUse).toBe(1);
    expect(other.users[f]).toBe(1);
  });

  it('counts users: the last put retires the frame', () => {
    const m = new PhysMemory(64 * 1024);
    const a = new FrameAllocator(m);
    const retired: number[] = [];
    a.retire = (f) => retired.push(f);
    const f = a.alloc();
    a.get(f);
    a.put(f);
    expect(retired).toEqual([]);
    a.put(f);
    expect(retired).toEqual([f]);
  });

  it('fails an allocation at the armed fault-injection step', () => {
    const m = new PhysMemory(64 * 1024);
    const a = new FrameAllocator(m);
    const faults = new FaultInjector();
    a.faults = faults;
    faults.arm(2);
    a.alloc();
    expect(() => a.alloc()).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    expect(faults.fired).toBe(true);
    expect(a.inUse).toBe(1);
  });

  it('allocates contiguous runs for guest RAM', () => {
    const m = new PhysMemory(MiB);
    const a = new FrameAllocator(m);
    const ram = new GuestRam(m, a, 64 * 1024);
    expect(ram.basePa % 4096).toBe(0);
    expect(ram.gpaToPa(100)).toBe(ram.basePa + 100);
    expect(ram.gpaToPa(64 * 1024)).toBe(-1);
    expect(a.inUse).toBe(16);
    ram.release();
    expect(a.inUse).toBe(0);
    expect(() => new GuestRam(m, a, 2 * MiB)).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
  });
});

describe('EpochReclaimer', () => {
  it('reuses a retired item at once when no walk is in flight', () => {
    const r = new EpochReclaimer(8);
    const got: number[] = [];
    r.onReclaim = (v) => got.push(v);
    r.retire(5);
    expect(r.reclaim()).toBe(1);
    expect(got).toEqual([5]);
  });

  it('defers reuse until every walk that started before the retire has ended', () => {
    const r = new EpochReclaimer(8);
    const got: number[] = [];
    r.onReclaim = (v) => got.push(v);
    const reader = r.acquireSlot();
    r.enter(reader);
    r.retire(7);
    expect(r.reclaim()).toBe(0);
    expect(got).toEqual([]);
    // A walk that starts after the epoch moved on cannot reach the item: it does not hold it back.
    r.exit(reader);
    r.enter(reader);
    expect(r.reclaim()).toBe(1);
    expect(got).toEqual([7]);
    r.exit(reader);
    r.releaseSlot(reader);
  });

  it('keeps order and loses nothing across the ring wrapping many times', () => {
    const r = new EpochReclaimer(3);
    const got: number[] = [];
    r.onReclaim = (v) => got.push(v);
    for (let i = 0; i < 1000; i++) {
      r.retire(i);
      if (i % 2 === 1) expect(r.reclaim()).toBe(2);
    }
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(r.pending).toBe(0);
  });

  it('survives the epoch wrapping past 2^31', () => {
    const r = new EpochReclaimer(4);
    const view = new Int32Array(r.sab, 0, 1);
    view[0] = 2 ** 31 - 2; // just below the wrap
    const got: number[] = [];
    r.onReclaim = (v) => got.push(v);
    const reader = r.acquireSlot();
    for (let i = 0; i < 4; i++) {
      r.enter(reader);
      r.retire(i);
      expect(r.reclaim()).toBe(0);
      r.exit(reader);
      expect(r.reclaim()).toBe(1);
    }
    expect(got).toEqual([0, 1, 2, 3]);
    expect(r.epoch).not.toBe(0);
  });
});

describe('SystemMemory', () => {
  it('routes frames and other retired items through the same grace period', () => {
    const s = new SystemMemory(MiB);
    const others: number[] = [];
    s.onReclaimOther = (i) => others.push(i);
    const f = s.frames.alloc();
    const slot = s.reclaimer.acquireSlot();
    s.reclaimer.enter(slot);
    s.frames.put(f);
    s.retireOther(3);
    s.reclaimer.reclaim();
    expect(s.frames.inUse).toBe(1);
    expect(others).toEqual([]);
    s.reclaimer.exit(slot);
    s.reclaimer.reclaim();
    expect(s.frames.inUse).toBe(0);
    expect(others).toEqual([3]);
  });
});

describe('descriptors', () => {
  it('install writes both words; clear drops only the valid word, so a walker never reads a zeroed high word', () => {
    const i32 = new Int32Array(new SharedArrayBuffer(16));
    descInstall(i32, 0, 0x1, 0x1234);
    expect(descLoadLo(i32, 0)).toBe(1);
    expect(descLoadHi(i32, 0)).toBe(0x1234);
    descClear(i32, 0);
    expect(descLoadLo(i32, 0)).toBe(0);
    expect(descLoadHi(i32, 0)).toBe(0x1234);
    descInstall(i32, 0, 0x3, 0x5678);
    expect([descLoadLo(i32, 0), descLoadHi(i32, 0)]).toEqual([3, 0x5678]);
  });
});

describe('HostAddressSpace', () => {
  const make = (): { mm: HostAddressSpace; a: FrameAllocator } => {
    const m = new PhysMemory(MiB);
    const a = new FrameAllocator(m);
    return { mm: new HostAddressSpace(m, a), a };
  };

  it('maps page-aligned zeroed memory that reads back what was written', () => {
    const { mm } = make();
    const va = mm.mmap(10000n);
    expect(va % 4096n).toBe(0n);
    expect([...mm.read(va, 4)]).toEqual([0, 0, 0, 0]);
    mm.write(va + 4094n, new Uint8Array([1, 2, 3, 4])); // crosses a page
    expect([...mm.read(va + 4094n, 4)]).toEqual([1, 2, 3, 4]);
  });

  it('touching an unmapped address is EFAULT, and a failed write writes nothing', () => {
    const { mm } = make();
    const va = mm.mmap(4096n);
    expect(() => mm.read(va + 4096n, 1)).toThrow(expect.objectContaining({ errno: 'EFAULT' }));
    expect(() => mm.write(va + 4090n, new Uint8Array(12).fill(9))).toThrow(
      expect.objectContaining({ errno: 'EFAULT' }),
    );
    expect([...mm.read(va + 4090n, 6)]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('munmap of part of a mapping splits it and frees its frames', () => {
    const { mm, a } = make();
    const va = mm.mmap(3n * 4096n);
    expect(a.inUse).toBe(3);
    mm.munmap(va + 4096n, 4096n);
    expect(a.inUse).toBe(2);
    expect(mm.frameOf(va)).toBeGreaterThanOrEqual(0);
    expect(mm.frameOf(va + 4096n)).toBe(-1);
    expect(mm.frameOf(va + 8192n)).toBeGreaterThanOrEqual(0);
    expect(() => mm.munmap(va + 1n, 1n)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });

  it('a pinned page outlives its munmap until it is unpinned', () => {
    const { mm, a } = make();
    const va = mm.mmap(4096n);
    const frames = mm.pin(va, 1);
    expect(mm.pinCount(va)).toBe(1);
    mm.munmap(va, 4096n);
    expect(a.inUse).toBe(1);
    mm.unpin(frames);
    expect(a.inUse).toBe(0);
  });

  it('pin of a range with a hole is EFAULT and pins nothing', () => {
    const { mm, a } = make();
    const va = mm.mmap(2n * 4096n);
    mm.munmap(va + 4096n, 4096n);
    expect(() => mm.pin(va, 2)).toThrow(expect.objectContaining({ errno: 'EFAULT' }));
    expect(a.users[mm.frameOf(va)]).toBe(1);
  });

  it('mmap beyond physical memory is ENOMEM and takes nothing', () => {
    const { mm, a } = make();
    expect(() => mm.mmap(2n * 2n ** 20n)).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    expect(a.inUse).toBe(0);
  });
});
