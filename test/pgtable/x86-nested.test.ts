// The VT-d nested walk: an x86-64 first stage whose tables live at second-stage input addresses,
// in a guest's own physical address space (a PhysMemory window over guest RAM).
import { describe, expect, it } from 'vitest';
import { FrameAllocator, GuestRam, SystemMemory } from '../../src/memory/index.js';
import {
  Access,
  packWalkConfig,
  RadixPageTable,
  TranslateFault,
  VTD_FR,
  vtdSecondStageCodec,
  vtdSecondStageWalk,
  WalkFault,
  x86FirstStageCodec,
  x86FirstStageWalk,
  x86NestedWalk,
} from '../../src/pgtable/index.js';

const MIB = 2 ** 20;
const R = Access.Read;
const W = Access.Write;

function guest() {
  const sys = new SystemMemory(64 * MIB);
  const ram = new GuestRam(sys.phys, sys.frames, 16 * MIB);
  const gp = ram.guestPhys();
  const frames = new FrameAllocator(gp); // the guest's page allocator
  frames.alloc(); // keep GPA 0 out of use
  const s2c = vtdSecondStageCodec(48);
  const s1c = x86FirstStageCodec(48);
  const s2 = new RadixPageTable(gp, frames, s2c);
  const s1 = new RadixPageTable(gp, frames, s1c);
  return {
    sys,
    ram,
    gp,
    frames,
    s1,
    s2,
    s1Cfg: packWalkConfig(s1c.startLevel, 48, 48),
    s2Cfg: packWalkConfig(s2c.startLevel, 48, 48),
  };
}

describe('x86 nested walk (VT-d PGTT nested)', () => {
  it('a guest-physical window: the walkers read guest tables whose pointers are guest-physical', () => {
    const g = guest();
    const data = g.frames.alloc() * 4096;
    g.s1.map(0x40_0000, 4096, (o) => data + o, 3, false);
    const f = new WalkFault();
    expect(x86FirstStageWalk(g.gp.i32, g.s1.rootPa, g.s1Cfg, 0x40_0123, R, f)).toBe(data + 0x123);
    expect(g.ram.gpaToPa(data)).toBe(g.ram.basePa + data);
  });

  it('every first-stage table fetch and the output go through the second stage', () => {
    const g = guest();
    // The second stage maps guest RAM one to one, except that S2 input 0x80_0000 holds the
    // data at another guest page.
    g.s2.map(0, 8 * MIB, (o) => 0 + o, 3, false);
    const data = g.frames.alloc() * 4096;
    g.s2.map(8 * MIB, 4096, (o) => data + o, 3, false);
    g.s1.map(0x1000_0000, 4096, (o) => 8 * MIB + o, 3, false); // IOVA → S2 input 8 MiB
    const f = new WalkFault();
    const pa = x86NestedWalk(g.gp.i32, g.s1.rootPa, g.s1Cfg, g.s2.rootPa, g.s2Cfg, 0x1000_0010, R | W, f);
    expect(pa).toBe(data + 0x10);
    expect(f.leafShift).toBe(12);
    // The composition agrees with the two walks done by hand.
    const mid = x86FirstStageWalk(g.gp.i32, g.s1.rootPa, g.s1Cfg, 0x1000_0010, R, f);
    expect(vtdSecondStageWalk(g.gp.i32, g.s2.rootPa, g.s2Cfg, mid, R, f)).toBe(pa);
  });

  it('a first-stage table that the second stage does not map faults with the second-stage reason', () => {
    const g = guest();
    g.s1.map(0x1000_0000, 4096, (o) => 0x1000 + o, 3, false);
    // Map only the data page at stage 2: the first-stage root itself is not reachable.
    g.s2.map(0x1000, 4096, (o) => 0x1000 + o, 3, false);
    const f = new WalkFault();
    const r = x86NestedWalk(g.gp.i32, g.s1.rootPa, g.s1Cfg, g.s2.rootPa, g.s2Cfg, 0x1000_0000, R, f);
    expect(r).toBe(TranslateFault.NotMapped);
    expect(f.words[4]).toBe(VTD_FR.READ);
  });

  it('a write through a read-only second-stage leaf faults at the output, not at the fetches', () => {
    const g = guest();
    g.s2.map(0, 8 * MIB, (o) => 0 + o, 3, false);
    const data = g.frames.alloc() * 4096;
    g.s2.map(8 * MIB, 4096, (o) => data + o, 1, false); // read-only
    g.s1.map(0x2000_0000, 4096, (o) => 8 * MIB + o, 3, false);
    const f = new WalkFault();
    expect(x86NestedWalk(g.gp.i32, g.s1.rootPa, g.s1Cfg, g.s2.rootPa, g.s2Cfg, 0x2000_0000, R, f)).toBe(data);
    expect(x86NestedWalk(g.gp.i32, g.s1.rootPa, g.s1Cfg, g.s2.rootPa, g.s2Cfg, 0x2000_0000, W, f)).toBe(
      TranslateFault.Permission,
    );
  });
});
