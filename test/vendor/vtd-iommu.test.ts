// The emulated VT-d unit end to end, with structures built by hand in guest memory: legacy root
// and context entries, a second-stage table, the invalidation queue, waits, IQE, fault records,
// and the isolation of units that share the IOTLB.
import { afterEach, describe, expect, it } from 'vitest';
import { Iommufd, VtdIommu } from '../../src/index.js';
import { FrameAllocator } from '../../src/memory/index.js';
import { RadixPageTable, vtdSecondStageCodec, VTD_FR, x86FirstStageCodec } from '../../src/pgtable/index.js';
import { DescType, encodeDescriptor } from '../../src/vendor/vtd/descriptors.js';
import { GCMD, VTD_REG } from '../../src/vendor/vtd/regs-defs.js';
import {
  encodeContextEntry,
  encodeRootEntry,
  encodeSmContextEntry,
  encodeSmRootEntry,
} from '../../src/vendor/vtd/structures.js';
import {
  encodePasidDirEntry,
  encodePasidEntry,
  FLPM,
  PasidEntry,
  PGTT,
} from '../../src/vendor/vtd/structures-pasid.js';

const R = 1;
const W = 2;
const SID = 0x0010; // bus 0, devfn 0x10

/** A guest that sets up one unit in legacy mode with one domain, by hand. */
function setup(fd: Iommufd, opts: Parameters<Iommufd['vtdCreate']>[0] = {}) {
  const unit = fd.vtdCreate({ guestRamBytes: 16 * 2 ** 20, ...opts });
  const frames = new FrameAllocator(unit.guest);
  frames.alloc(); // GPA 0 stays unused
  const gp = unit.guest;
  const root = frames.alloc() * 4096;
  const ctxTable = frames.alloc() * 4096;
  const pt = new RadixPageTable(gp, frames, vtdSecondStageCodec(48));
  encodeRootEntry({ present: true, ctp: ctxTable }, gp.i32, root / 4);
  const ctx = (sid: number, did: number, table: RadixPageTable, present = true, tt = 0): void => {
    encodeContextEntry(
      { present, fpd: false, tt, slptptr: table.rootPa, aw: 2, avail: 0, did },
      gp.i32,
      (ctxTable + (sid & 0xff) * 16) / 4,
    );
  };
  ctx(SID, 1, pt);
  const queue = frames.alloc() * 4096; // 256 slots of 128 bits
  let tail = 0;
  const mmio = (off: number, v: number | bigint, size: 4 | 8 = 4): void => unit.mmioWrite(off, v, size);
  mmio(VTD_REG.RTADDR, BigInt(root), 8);
  mmio(VTD_REG.GCMD, GCMD.SRTP);
  mmio(VTD_REG.IQA, BigInt(queue), 8);
  mmio(VTD_REG.GCMD, GCMD.QIE);
  mmio(VTD_REG.FECTL, 0); // unmask the fault and completion events, as Linux does
  mmio(VTD_REG.IECTL, 0);
  const status = frames.alloc() * 4096;
  const u32 = new Uint32Array(gp.sab, gp.u8.byteOffset, gp.u8.length / 4);
  /** Writes a descriptor at the tail without ringing (a raw first word if `type` is a number alone). */
  const put = (type: number, fields?: Record<string, number>): void => {
    if (fields === undefined) u32.fill(0, (queue + tail * 16) / 4, (queue + tail * 16) / 4 + 4);
    if (fields === undefined) u32[(queue + tail * 16) / 4] = type;
    else encodeDescriptor(type, fields, u32, (queue + tail * 16) / 4, false);
    tail = (tail + 1) % 256;
  };
  const ring = (): void => mmio(VTD_REG.IQT, BigInt(tail * 16), 8);
  /** Queues descriptors and rings once. */
  const submit = (...descs: [number, Record<string, number>][]): void => {
    for (const [type, fields] of descs) put(type, fields);
    ring();
  };
  const wait = (data: number, irq = false): [number, Record<string, number>] => [
    DescType.Wait,
    { sw: 1, if: irq ? 1 : 0, statusData: data, statusAddrLo: status, statusAddrHi: 0 },
  ];
  const statusWord = (): number => gp.i32[status / 4]!;
  return { unit, frames, gp, pt, ctx, put, ring, submit, wait, statusWord, mmio, queue, u32, tail: () => tail };
}

let fd: Iommufd;
afterEach(async () => {
  await fd.close();
});

describe('VT-d unit: translation (legacy mode)', () => {
  it('before TE, DMA addresses are guest-physical; after TE, the second stage translates and the IOTLB caches', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    const data = g.frames.alloc() * 4096;
    g.pt.map(0x10_0000, 4096, (o) => data + o, R | W, false);
    expect(g.unit.translate({ sid: SID }, data, R)).toBe(g.unit.ram.basePa + data);
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    expect(g.unit.regs.translationEnabled).toBe(true);
    const pa = g.unit.translate({ sid: SID }, 0x10_0123, R);
    expect(pa).toBe(g.unit.ram.basePa + data + 0x123);
    expect(g.unit.translate({ sid: SID }, 0x10_0123, R)).toBe(pa);
    const s = g.unit.stats();
    expect([s.iotlbHits, s.iotlbMisses, s.configHits, s.configMisses]).toEqual([1, 1, 1, 1]);
    g.unit.dmaWrite({ sid: SID }, 0x10_0010, new Uint8Array([1, 2, 3]));
    expect([...g.gp.u8.subarray(data + 0x10, data + 0x13)]).toEqual([1, 2, 3]);
  });

  it('a stale IOTLB entry lives until the guest invalidates it; a PSI and a wait make the unmap take effect', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    const data = g.frames.alloc() * 4096;
    g.pt.map(0x20_0000, 2 * 4096, (o) => data + o, R | W, false);
    expect(g.unit.translate({ sid: SID }, 0x20_1000, R)).toBeGreaterThan(0);
    g.pt.unmap(0x20_1000, 4096);
    expect(g.unit.translate({ sid: SID }, 0x20_1000, R)).toBeGreaterThan(0); // cached, as hardware may
    g.submit([DescType.Iotlb, { g: 3, did: 1, addr: 0x20_1000, am: 0 }], g.wait(7));
    expect(g.statusWord()).toBe(7); // written once the invalidation took effect
    expect(g.unit.translate({ sid: SID }, 0x20_1000, R)).toBeLessThan(0);
    expect(g.unit.translate({ sid: SID }, 0x20_0000, R)).toBeGreaterThan(0); // the neighbour survives
    expect(g.unit.regs.queueHead).toBe(2 * 16);
  });

  it('a second-stage root at or above 4 GiB aborts the walk rather than wrapping into low guest RAM', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    const data = g.frames.alloc() * 4096;
    g.pt.map(0x10_0000, 4096, (o) => data + o, R | W, false);
    expect(g.unit.translate({ sid: SID }, 0x10_0000, R)).toBe(g.unit.ram.basePa + data);
    // Device 0x11: the same table's address plus 4 GiB, where there is no RAM.
    g.ctx(0x11, 2, { rootPa: 2 ** 32 + g.pt.rootPa } as RadixPageTable);
    expect(g.unit.translate({ sid: 0x11 }, 0x10_0000, R)).toBeLessThan(0);
    expect(g.unit.lastFaultReason).toBe(0x7); // a second-stage table read that aborted
  });

  it('a wait whose status address is outside guest RAM completes without a write, and is counted', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    const outside = 16 * 2 ** 20; // the first byte past guest RAM
    g.submit([DescType.Wait, { sw: 1, if: 0, statusData: 5, statusAddrLo: outside, statusAddrHi: 0 }], g.wait(6));
    expect(g.statusWord()).toBe(6);
    const st = g.unit.stats();
    expect([st.waits, st.badStatusWrites, st.queueErrors]).toEqual([2, 1, 0]);
  });

  it('a context-cache invalidation is needed to see a changed context entry', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    const data = g.frames.alloc() * 4096;
    g.pt.map(0x1000, 4096, (o) => data + o, R, false);
    expect(g.unit.translate({ sid: SID }, 0x1000, R)).toBeGreaterThan(0);
    g.ctx(SID, 1, g.pt, false); // the guest clears the context entry
    g.submit([DescType.Iotlb, { g: 2, did: 1 }]);
    expect(g.unit.translate({ sid: SID }, 0x1000, R)).toBeGreaterThan(0); // context still cached
    g.submit([DescType.ContextCache, { g: 3, sid: SID, did: 1 }], g.wait(1));
    expect(g.unit.translate({ sid: SID }, 0x1000, R)).toBeLessThan(0);
    expect(g.unit.lastFaultReason).toBe(0x2); // context entry not present
  });

  it('faults are recorded in the fault recording registers with their reason, and raise the fault event', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    const events: string[] = [];
    g.unit.interrupts$.subscribe((e) => events.push(e.kind));
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    expect(g.unit.translate({ sid: SID }, 0x5000, W)).toBeLessThan(0);
    expect(g.unit.lastFaultReason).toBe(VTD_FR.WRITE);
    expect(g.unit.stats().faultsRecorded).toBe(1);
    const fsts = g.unit.mmioRead(VTD_REG.FSTS, 4) as number;
    expect(fsts & 2).toBe(2); // PPF
    expect(events).toContain('fault');
    expect(() => g.unit.dmaRead({ sid: SID }, 0x5000, 4)).toThrow(expect.objectContaining({ errno: 'EFAULT' }));
    expect(g.unit.translate({ sid: 0x0020 }, 0x5000, R)).toBeLessThan(0); // no context entry
    expect(g.unit.lastFaultReason).toBe(0x2);
  });
});

describe('VT-d unit: the invalidation queue', () => {
  it('an invalid descriptor stops the queue on it with IQE; what came before took effect; clearing IQE resumes', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    const data = g.frames.alloc() * 4096;
    g.pt.map(0x3000, 4096, (o) => data + o, R, false);
    expect(g.unit.translate({ sid: SID }, 0x3000, R)).toBeGreaterThan(0);
    g.pt.unmap(0x3000, 4096);
    // IOTLB DSI, then an unknown type (0xf), then a wait that must not run yet, in one doorbell.
    const bad = (g.tail() + 1) * 16;
    g.put(DescType.Iotlb, { g: 2, did: 1 });
    g.put(0xf);
    g.put(...g.wait(5));
    g.ring();
    expect(g.unit.regs.queueErrorPending).toBe(true);
    expect(g.unit.regs.queueHead).toBe(bad);
    expect(g.unit.translate({ sid: SID }, 0x3000, R)).toBeLessThan(0); // the DSI before it ran
    expect(g.statusWord()).toBe(0); // the wait after it did not
    // The guest fixes the slot (a wait, as Linux copies one over it) and clears IQE.
    encodeDescriptor(DescType.Wait, { sw: 0, statusData: 0 }, g.u32, (g.queue + bad) / 4, false);
    g.mmio(VTD_REG.FSTS, 1 << 4);
    expect(g.unit.regs.queueErrorPending).toBe(false);
    expect(g.unit.regs.queueHead).toBe(g.tail() * 16); // resumed: the fixed slot and the wait ran
    expect(g.statusWord()).toBe(5);
    expect(g.unit.stats().queueErrors).toBe(1);
  });

  it('a wait with IF sets ICS.IWC and raises the completion event', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    const events: string[] = [];
    g.unit.interrupts$.subscribe((e) => events.push(e.kind));
    g.submit(g.wait(3, true));
    expect((g.unit.mmioRead(VTD_REG.ICS, 4) as number) & 1).toBe(1);
    expect(events).toEqual(['inv-completion']);
  });

  it("a global IOTLB invalidation from one guest leaves another guest's entries alone", () => {
    fd = Iommufd.open({ memoryBytes: 128 * 2 ** 20 });
    const a = setup(fd);
    const b = setup(fd);
    for (const g of [a, b]) {
      g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
      const data = g.frames.alloc() * 4096;
      g.pt.map(0x1000, 4096, (o) => data + o, R, false);
      expect(g.unit.translate({ sid: SID }, 0x1000, R)).toBeGreaterThan(0);
    }
    a.submit([DescType.Iotlb, { g: 1 }], a.wait(1));
    expect(a.unit.translate({ sid: SID }, 0x1000, R)).toBeGreaterThan(0);
    expect(b.unit.translate({ sid: SID }, 0x1000, R)).toBeGreaterThan(0);
    expect([a.unit.stats().iotlbMisses, b.unit.stats().iotlbMisses]).toEqual([2, 1]);
  });

  it('close() releases the unit and its guest RAM; later MMIO is EBADF', async () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const before = fd.framesInUse();
    const unit: VtdIommu = fd.vtdCreate({ guestRamBytes: 4 * 2 ** 20 });
    expect(fd.framesInUse()).toBe(before + 1024);
    await unit.close();
    expect(fd.framesInUse()).toBe(before);
    expect(() => unit.mmioWrite(VTD_REG.GCMD, 0, 4)).toThrow(expect.objectContaining({ errno: 'EBADF' }));
  });
});

describe('VT-d unit: device-TLBs', () => {
  it('an ATS device is served from its device-TLB until a device-TLB descriptor drops it', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd, { deviceTlb: true });
    g.unit.addAtsDevice(SID);
    g.ctx(SID, 1, g.pt, true, 1); // TT = 1: the context entry allows device-TLB (ATS) use
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    const data = g.frames.alloc() * 4096;
    g.pt.map(0x4000, 4096, (o) => data + o, R, false);
    g.unit.translate({ sid: SID }, 0x4000, R);
    g.unit.translate({ sid: SID }, 0x4000, R);
    expect(g.unit.stats().devTlbHits).toBe(1);
    g.pt.unmap(0x4000, 4096);
    g.submit([DescType.Iotlb, { g: 2, did: 1 }], g.wait(1));
    // The IOTLB is clean, but the device's own TLB still holds the page.
    expect(g.unit.translate({ sid: SID }, 0x4000, R)).toBeGreaterThan(0);
    g.submit([DescType.DeviceTlb, { sid: SID, addr: 0x4000, s: 0 }], g.wait(2));
    expect(g.unit.translate({ sid: SID }, 0x4000, R)).toBeLessThan(0);
    expect(g.statusWord()).toBe(2);
  });

  it('a device-TLB timeout halts the queue after it with ITE; clearing ITE completes the waits behind it', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd, { deviceTlb: true });
    g.unit.addAtsDevice(SID);
    g.unit.injectDevTlbError(SID, 'timeout');
    const before = g.tail();
    g.submit([DescType.DeviceTlb, { sid: SID, addr: 0, s: 0 }], g.wait(4));
    const fsts = g.unit.mmioRead(VTD_REG.FSTS, 4) as number;
    expect(fsts & (1 << 6)).not.toBe(0); // ITE
    expect(g.unit.regs.queueHead).toBe((before + 1) * 16);
    expect(g.statusWord()).toBe(0);
    g.mmio(VTD_REG.FSTS, 1 << 6);
    expect(g.statusWord()).toBe(4);
  });

  it('a device-TLB completion error sets ICE and the queue goes on', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd, { deviceTlb: true });
    g.unit.addAtsDevice(SID);
    g.unit.injectDevTlbError(SID, 'completion-error');
    g.submit([DescType.DeviceTlb, { sid: SID, addr: 0, s: 0 }], g.wait(6));
    expect((g.unit.mmioRead(VTD_REG.FSTS, 4) as number) & (1 << 5)).not.toBe(0); // ICE
    expect(g.statusWord()).toBe(6);
  });
});

describe('VT-d unit: fuzzing the queue', () => {
  it('random descriptors never crash the unit: every doorbell ends with the queue consumed or stopped with IQE', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd, { deviceTlb: true, scalableMode: true, pasidWidth: 20 });
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    g.unit.addAtsDevice(SID);
    const n = Number(process.env['VTD_FUZZ_DESCRIPTORS'] ?? 100_000);
    let seed = 12345;
    const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    let iqe = 0;
    for (let k = 0; k < n; k += 8) {
      for (let d = 0; d < 8; d++) {
        const at = (g.queue + g.tail() * 16) / 4;
        g.put(0); // advance the tail; the slot is written below
        // A valid type half the time (with random fields), else anything.
        const types = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        const w0 = rnd() % 2 === 0 ? (rnd() & ~0xe0f) | types[rnd() % types.length]! : rnd();
        g.u32[at] = w0;
        g.u32[at + 1] = rnd() % 4 === 0 ? rnd() : 0;
        g.u32[at + 2] = rnd() % 2 === 0 ? rnd() & 0xfffff03f : 0;
        g.u32[at + 3] = rnd() % 4 === 0 ? rnd() : 0;
        // (Wait status addresses land inside guest RAM or beyond it, at random: both must be safe.)
      }
      g.ring();
      const regs = g.unit.regs;
      if (regs.queueErrorPending) {
        iqe++;
        expect(regs.queueHead).not.toBe(g.tail() * 16);
        // Skip the bad slot as a guest would (overwrite it with a wait), clear IQE and ITE.
        encodeDescriptor(DescType.Wait, {}, g.u32, (g.queue + regs.queueHead) / 4, false);
        g.mmio(VTD_REG.FSTS, (1 << 4) | (1 << 6) | (1 << 5));
        while (regs.queueErrorPending || regs.queueHead !== g.tail() * 16) {
          encodeDescriptor(DescType.Wait, {}, g.u32, (g.queue + regs.queueHead) / 4, false);
          g.mmio(VTD_REG.FSTS, (1 << 4) | (1 << 6) | (1 << 5));
        }
      }
      expect(regs.queueHead).toBe(g.tail() * 16);
    }
    expect(iqe).toBeGreaterThan(0);
    expect(g.unit.stats().descriptors).toBeGreaterThan(n / 10);
  });
});

describe('VT-d unit: re-entrant doorbells', () => {
  it('a doorbell rung from the completion interrupt handler is served after the current one, not inside it', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    let rung = false;
    g.unit.interrupts$.subscribe(() => {
      if (rung) return;
      rung = true;
      g.submit(g.wait(8)); // the VMM's handler queues more work and rings at once
    });
    g.submit(g.wait(3, true), g.wait(4));
    expect(g.statusWord()).toBe(8); // every wait ran, in order, the handler's last
    expect(g.unit.regs.queueHead).toBe(g.tail() * 16);
    expect(g.unit.stats().waits).toBe(3);
  });
});

describe('VT-d unit: a long doorbell', () => {
  it('a global IOTLB flush among thousands of queued descriptors runs in segments, never overflowing the op list', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const g = setup(fd);
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    // 200 devices on bus 0, each in its own domain: 200 DIDs with IOTLB tags.
    const data = g.frames.alloc() * 4096;
    g.pt.map(0x1000, 4096, (o) => data + o, R, false);
    for (let dev = 1; dev <= 200; dev++) {
      g.ctx(dev, dev, g.pt);
      expect(g.unit.translate({ sid: dev }, 0x1000, R)).toBeGreaterThan(0);
    }
    // A 4096-slot queue (QS = 4): 4000 device-selective context flushes, a global IOTLB flush
    // (one op per DID), and a wait, on one doorbell.
    g.mmio(VTD_REG.GCMD, GCMD.TE); // QIE off (the queue is empty) to change IQA
    const queue = g.frames.allocContiguous(16) * 4096;
    g.mmio(VTD_REG.IQA, BigInt(queue) | 4n, 8);
    g.mmio(VTD_REG.GCMD, GCMD.QIE | GCMD.TE);
    let slot = 0;
    const put = (type: number, fields: Record<string, number>): void => {
      encodeDescriptor(type, fields, g.u32, (queue + slot++ * 16) / 4, false);
    };
    for (let k = 0; k < 4000; k++) put(DescType.ContextCache, { g: 3, sid: 300 + (k % 50), did: 0 });
    put(DescType.Iotlb, { g: 1 });
    put(...g.wait(11));
    g.mmio(VTD_REG.IQT, BigInt(slot * 16), 8);
    expect(g.unit.regs.queueErrorPending).toBe(false);
    expect(g.statusWord()).toBe(11);
    expect(g.unit.regs.queueHead).toBe(slot * 16);
    const misses = g.unit.stats().iotlbMisses;
    g.unit.translate({ sid: 7 }, 0x1000, R);
    expect(g.unit.stats().iotlbMisses).toBe(misses + 1); // the global flush reached every DID
  });
});

describe('VT-d unit: a 5-level first stage', () => {
  it('with a 57-bit address width the unit advertises FS5LP and walks FLPM 5-level first stages', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const unit = fd.vtdCreate({
      guestRamBytes: 16 * 2 ** 20,
      addressWidth: 57,
      scalableMode: true,
      firstStage: true,
      pasidWidth: 8,
    });
    expect((BigInt(unit.mmioRead(VTD_REG.CAP, 8)) >> 60n) & 1n).toBe(1n); // FS5LP
    const gp = unit.guest;
    const frames = new FrameAllocator(gp);
    frames.alloc();
    const page = (): number => frames.alloc() * 4096;
    const data = page();
    gp.u8.fill(0x57, data, data + 4096);
    // An IOVA above 2^48, which only a 5-level table can map.
    const iova = 2 ** 50 + 0x4000_0000;
    const fs = new RadixPageTable(gp, frames, x86FirstStageCodec(57));
    fs.map(iova, 4096, () => data, R | W, false);
    const root = page();
    const ctxTable = page();
    const dir = page();
    const ptbl = page();
    encodeSmRootEntry({ lp: true, lctp: ctxTable, up: false, uctp: 0 }, gp.i32, root / 4);
    encodeSmContextEntry(
      {
        present: true,
        fpd: false,
        dte: false,
        paside: true,
        pre: false,
        pdts: 0,
        pasidDirPtr: dir,
        ridPasid: 0,
        ridPriv: false,
      },
      gp.i32,
      (ctxTable + (SID & 0x7f) * 32) / 4,
    );
    encodePasidDirEntry({ present: true, fpd: false, pasidTablePtr: ptbl }, gp.i32, dir / 4);
    encodePasidEntry(
      Object.assign(new PasidEntry(), {
        present: true,
        did: 3,
        aw: 3,
        pgtt: PGTT.FirstStage,
        flptptr: fs.rootPa,
        flpm: FLPM.Level5,
      }),
      gp.i32,
      ptbl / 4,
    );
    unit.mmioWrite(VTD_REG.RTADDR, BigInt(root) | (1n << 10n), 8); // TTM = scalable
    unit.mmioWrite(VTD_REG.GCMD, GCMD.SRTP, 4);
    unit.mmioWrite(VTD_REG.GCMD, GCMD.TE, 4);
    expect(unit.translate({ sid: SID }, iova + 0x10, R)).toBe(unit.ram.gpaToPa(data) + 0x10);
    expect(unit.dmaRead({ sid: SID }, iova, 2)).toEqual(new Uint8Array([0x57, 0x57]));
  });
});

describe('VT-d unit: scalable mode by PGTT (nested, pass-through) with DMA', () => {
  it('nested: first-stage tables fetched through the guest second stage, the output translated too; pass-through: GPA', () => {
    fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
    const unit = fd.vtdCreate({
      guestRamBytes: 16 * 2 ** 20,
      scalableMode: true,
      firstStage: true,
      secondStage: true,
      nesting: true,
      pasidWidth: 8,
    });
    const gp = unit.guest;
    const frames = new FrameAllocator(gp);
    frames.alloc();
    const page = (): number => frames.alloc() * 4096;
    // The second stage: identity for the first 8 MiB (where the first-stage tables live), and
    // IPA 0x0100_0000 → a data page elsewhere.
    const ss = new RadixPageTable(gp, frames, vtdSecondStageCodec(48));
    ss.map(0, 8 * 2 ** 20, (o) => o, R | W, false);
    const data = 12 * 2 ** 20; // beyond the identity window: reachable only through the mapping below
    gp.u8.fill(0x6e, data, data + 4096);
    ss.map(0x0100_0000, 4096, () => data, R | W, false);
    // The first stage (built in guest memory, its entries hold IPAs = GPAs in the identity window).
    const fs = new RadixPageTable(gp, frames, x86FirstStageCodec(48));
    fs.map(0x4000_0000, 4096, () => 0x0100_0000, R | W, false);
    const root = page();
    const ctxTable = page();
    const dir = page();
    const ptbl = page();
    encodeSmRootEntry({ lp: true, lctp: ctxTable, up: false, uctp: 0 }, gp.i32, root / 4);
    encodeSmContextEntry(
      {
        present: true,
        fpd: false,
        dte: false,
        paside: true,
        pre: false,
        pdts: 0,
        pasidDirPtr: dir,
        ridPasid: 0,
        ridPriv: false,
      },
      gp.i32,
      (ctxTable + (SID & 0x7f) * 32) / 4,
    );
    encodePasidDirEntry({ present: true, fpd: false, pasidTablePtr: ptbl }, gp.i32, dir / 4);
    const pe = (pasid: number, fields: Partial<PasidEntry>): void => {
      encodePasidEntry(
        Object.assign(new PasidEntry(), { present: true, did: 3, aw: 2, ...fields }),
        gp.i32,
        (ptbl + pasid * 64) / 4,
      );
    };
    pe(0, { pgtt: PGTT.Nested, slptptr: ss.rootPa, flptptr: fs.rootPa, flpm: FLPM.Level4 });
    pe(1, { pgtt: PGTT.PassThrough });
    unit.mmioWrite(VTD_REG.RTADDR, BigInt(root) | (1n << 10n), 8); // TTM = scalable
    unit.mmioWrite(VTD_REG.GCMD, GCMD.SRTP, 4);
    unit.mmioWrite(VTD_REG.GCMD, GCMD.TE, 4);
    // Requests without PASID use RID_PASID 0: nested.
    expect(unit.dmaRead({ sid: SID }, 0x4000_0010, 2)).toEqual(new Uint8Array([0x6e, 0x6e]));
    expect(unit.translate({ sid: SID }, 0x4000_0000, R)).toBe(unit.ram.gpaToPa(data));
    // PASID 1: pass-through, the address is guest-physical.
    expect(unit.translate({ sid: SID, pasid: 1 }, data, R)).toBe(unit.ram.gpaToPa(data));
    // The second stage governs the first stage's table fetches: unmap the identity window (and
    // invalidate the DID's PASID 0 entries), and the nested walk faults on its first fetch.
    ss.unmap(0, 8 * 2 ** 20);
    expect(unit.translate({ sid: SID }, 0x4000_0000, R)).toBeGreaterThan(0); // still cached
    const q = page();
    unit.mmioWrite(VTD_REG.IQA, BigInt(q) | (1n << 11n), 8); // 256-bit descriptors
    unit.mmioWrite(VTD_REG.GCMD, GCMD.TE | GCMD.QIE, 4);
    const u32 = new Uint32Array(gp.sab, gp.u8.byteOffset, gp.u8.length / 4);
    encodeDescriptor(DescType.PasidIotlb, { g: 2, did: 3, pasid: 0 }, u32, q / 4, true);
    unit.mmioWrite(VTD_REG.IQT, 32n, 8);
    expect(unit.stats().queueErrors).toBe(0);
    expect(unit.translate({ sid: SID }, 0x4000_0000, R)).toBeLessThan(0);
  });
});
