// VT-d page requests end to end: a PRI device's DMA faults recoverably, the unit writes page
// request descriptors into the guest's PRQ, the Linux-like driver demand-pages them and answers
// with page group responses on the invalidation queue, and the DMA completes.
import { afterEach, describe, expect, it } from 'vitest';
import { VtdGuestDriver, type VtdGuestDriverOptions, type VtdPageRequestOptions } from '../../src/guest/vtd/index.js';
import { Iommufd } from '../../src/iommufd.js';
import { Access } from '../../src/pgtable/index.js';
import { IommufdError } from '../../src/util/errors.js';
import { DescType } from '../../src/vendor/vtd/descriptors.js';
import type { VtdIommu, VtdIommuOptions } from '../../src/vendor/vtd/iommu.js';
import {
  decodePageRequest,
  encodePageRequest,
  PageRequestDescriptor,
  PRD,
  PRG_RESPONSE,
} from '../../src/vendor/vtd/page-request.js';
import { FSTS, PRS, VTD_REG } from '../../src/vendor/vtd/regs-defs.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const SID = 0x0010;
const DID = 1;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

const PRI_UNIT: VtdIommuOptions = {
  guestRamBytes: 32 * MIB,
  scalableMode: true,
  firstStage: true,
  pasidWidth: 20,
  pageRequests: true,
};

/**
 * A probed driver with page requests enabled and SID attached with PRI. `irq`: the handler runs
 * on the page request event, inline ('sync') or from a microtask ('async'), or only when the
 * test polls ('poll').
 */
function setup(
  o: {
    unit?: VtdIommuOptions;
    drv?: VtdGuestDriverOptions;
    prq?: VtdPageRequestOptions;
    irq?: 'sync' | 'async' | 'poll';
    pri?: boolean;
    ats?: boolean;
  } = {},
) {
  const fd = Iommufd.open({ memoryBytes: 256 * MIB });
  open.push(fd);
  const unit = fd.vtdCreate({ ...PRI_UNIT, ...o.unit });
  const drv = new VtdGuestDriver(unit, o.drv);
  drv.probe();
  const irq = o.irq ?? 'sync';
  drv.enablePageRequests({ ...o.prq });
  if (irq !== 'poll') {
    unit.interrupts$.subscribe((i) => {
      if (i.kind !== 'page-request') return;
      if (irq === 'sync') drv.handlePageRequests();
      else queueMicrotask(() => drv.handlePageRequests());
    });
  }
  if (o.ats === true) unit.addAtsDevice(SID);
  drv.attach(SID, { did: DID, pri: o.pri ?? true, ats: o.ats ?? false });
  return { fd, unit, drv };
}

async function rejection(p: Promise<unknown>): Promise<IommufdError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IommufdError) return e;
    throw e;
  }
  throw new Error('the DMA did not fail');
}

function reg32(unit: VtdIommu, offset: number): number {
  return Number(unit.mmioRead(offset, 4));
}

/** The page request descriptor at queue slot `slot` of the guest's PRQ. */
function prqSlot(unit: VtdIommu, drv: VtdGuestDriver, slot: number): PageRequestDescriptor {
  return decodePageRequest(unit.guest.i32, (drv.pageRequestQueue.base + slot * 32) / 4);
}

describe('page request descriptor format (VT-d 7.5.1)', () => {
  it('encodes type 1, PASID present, RID, PASID, X/Priv, R/W, LPIG, PRGI and the page address at their bits', () => {
    const mem = new Int32Array(8).fill(-1);
    const d = Object.assign(new PageRequestDescriptor(), {
      rid: 0xabcd,
      pasid: 0x12345,
      address: 0x1234_5678_9000,
      prgi: 0x1a5,
      lpig: true,
      read: true,
      write: false,
      exec: true,
      priv: true,
    });
    encodePageRequest(d, mem, 0);
    expect(mem[0]! >>> 0).toBe(0xabcd_0101); // RID [31:16], PP b8, type 1
    expect(mem[1]! >>> 0).toBe(0x0031_2345); // PASID [51:32], X b52, Priv b53
    expect(mem[2]! >>> 0).toBe((0x5678_9000 | (0x1a5 << 3) | PRD.Lpig | PRD.Read) >>> 0); // qw1
    expect(mem[3]).toBe(0x1234);
    expect([...mem.subarray(4)]).toEqual([0, 0, 0, 0]); // private data
    expect({ ...decodePageRequest(mem, 0) }).toEqual({ ...d, type: 1 });
    const noPasid = Object.assign(new PageRequestDescriptor(), { rid: 1, pasid: -1, address: PAGE, write: true });
    encodePageRequest(noPasid, mem, 0);
    expect(mem[0]! & PRD.PasidPresent).toBe(0);
    expect(decodePageRequest(mem, 0).pasid).toBe(-1);
  });
});

describe('demand paging: a PRI device touches unmapped pages, the guest maps them', () => {
  for (const firstLevel of [true, false]) {
    for (const irq of ['sync', 'async'] as const) {
      it(`${firstLevel ? 'first' : 'second'}-level domain, ${irq} interrupt: every DMA completes, one response per group`, async () => {
        const { unit, drv } = setup({ drv: { firstLevel }, irq });
        const iova = 0x40_0000;
        // An unaligned write across 5 pages: one group of 5 requests, the last with LPIG.
        const data = new Uint8Array(4 * PAGE + 100).map((_, i) => (i * 7) & 0xff);
        await unit.dma({ sid: SID }, { iova: iova + 0x800, access: Access.Write, data });
        const back = await unit.dma({ sid: SID }, { iova: iova + 0x800, access: Access.Read, length: data.length });
        expect(back).toEqual(data);
        let s = unit.stats();
        expect(s.prq).toMatchObject({ groups: 1, requests: 5, responses: 1, dropped: 0, unmatchedResponses: 0 });
        expect(s.faultsRecorded).toBe(0);
        expect(s.recoverableFaults).toBe(5);

        // Many concurrent transfers over overlapping pages.
        const dmas: Promise<Uint8Array>[] = [];
        for (let i = 0; i < 40; i++) {
          const at = 0x100_0000 + ((i * 5) % 23) * PAGE + (i % 3) * 0x100;
          dmas.push(
            i % 2 === 0
              ? unit.dma({ sid: SID }, { iova: at, access: Access.Write, data: new Uint8Array(PAGE * 2).fill(i) })
              : unit.dma({ sid: SID }, { iova: at, access: Access.Read, length: PAGE * 3 }),
          );
        }
        const results = await Promise.allSettled(dmas);
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
        s = unit.stats();
        const g = drv.stats();
        // No request lost: every descriptor written was read; no group answered twice.
        expect(g.prq.requests).toBe(s.prq.requests);
        expect(s.prq.responses).toBe(s.prq.groups);
        expect(g.pageResponses).toBe(s.prq.groups);
        expect(g.prq.success).toBe(s.prq.groups);
        expect(s.prq.unmatchedResponses).toBe(0);
        expect(s.prq.autoResponses).toBe(0);
        expect(s.faultsRecorded).toBe(0);
        expect(reg32(unit, VTD_REG.PQH)).toBe(reg32(unit, VTD_REG.PQT));
        expect(reg32(unit, VTD_REG.PRS) & PRS.PRO).toBe(0);
      });
    }
  }

  it('a request carries RID, no PASID, R/W and one PRG index for the whole group, LPIG only on the last page', async () => {
    const { unit, drv } = setup({ irq: 'poll' });
    const p = unit.dma({ sid: SID }, { iova: 0x20_0000, access: Access.Write, data: new Uint8Array(3 * PAGE) });
    const reqs = [0, 1, 2].map((i) => prqSlot(unit, drv, i));
    expect(reqs.map((r) => r.address)).toEqual([0x20_0000, 0x20_1000, 0x20_2000]);
    expect(reqs.map((r) => r.lpig)).toEqual([false, false, true]);
    expect(new Set(reqs.map((r) => r.prgi)).size).toBe(1);
    expect(reqs.every((r) => r.rid === SID && r.pasid === -1 && r.write && !r.read)).toBe(true);
    expect(reg32(unit, VTD_REG.PQT)).toBe(3 * 32);
    expect(reg32(unit, VTD_REG.PRS) & PRS.PPR).toBe(PRS.PPR);
    expect(drv.handlePageRequests()).toBe(3);
    expect(reg32(unit, VTD_REG.PRS) & PRS.PPR).toBe(0); // cleared first, as prq_event_thread
    await p;
    expect(unit.stats().prq.responses).toBe(1);
  });

  it('the page request event fires once per PPR 0 to 1 edge', async () => {
    const { unit, drv } = setup({ irq: 'poll' });
    const events: string[] = [];
    unit.interrupts$.subscribe((i) => events.push(i.kind));
    const p = unit.dma({ sid: SID }, { iova: 0, access: Access.Read, length: 4 * PAGE });
    expect(events).toEqual(['page-request']);
    drv.handlePageRequests();
    await p;
    expect(events).toEqual(['page-request']);
  });

  it('a device without PRI (PRE clear) faults as before: recorded, no page request', async () => {
    const { unit } = setup({ pri: false });
    const e = await rejection(unit.dma({ sid: SID }, { iova: 0x1000, access: Access.Read, length: 16 }));
    expect(e.errno).toBe('EFAULT');
    const s = unit.stats();
    expect(s.faultsRecorded).toBe(1);
    expect(s.prq.requests).toBe(0);
    expect(s.recoverableFaults).toBe(0);
  });

  it('the synchronous translate of a PRI device still records its faults (untranslated DMA is not recoverable)', () => {
    const { unit } = setup();
    expect(unit.translate({ sid: SID }, 0x3000, Access.Read)).toBeLessThan(0);
    expect(unit.stats().faultsRecorded).toBe(1);
    expect(unit.stats().prq.requests).toBe(0);
  });

  it('a group the handler refuses is answered Invalid Request and the DMA fails with EFAULT', async () => {
    const { unit, drv } = setup({ prq: { handler: () => undefined } });
    const e = await rejection(unit.dma({ sid: SID }, { iova: 0x5000, access: Access.Read, length: 8 }));
    expect(e.errno).toBe('EFAULT');
    expect(e.message).toMatch(/Invalid Request/);
    expect(drv.stats().prq.invalid).toBe(1);
    expect(unit.stats().prq.responses).toBe(1);
  });

  it('a custom handler chooses the page: the device reads what the guest put there', async () => {
    const { unit, drv } = setup({
      prq: {
        handler: () => {
          const gpa = drv.frames.alloc() * PAGE;
          unit.guest.u8.fill(0x5a, gpa, gpa + PAGE);
          return gpa;
        },
      },
    });
    const got = await unit.dma({ sid: SID }, { iova: 0x9000, access: Access.Read, length: 4 });
    expect([...got]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
  });

  it('closing the unit fails a DMA that waits for its response (EBADF)', async () => {
    const { unit } = setup({ irq: 'poll' });
    const p = unit.dma({ sid: SID }, { iova: 0, access: Access.Read, length: 4 });
    await unit.close();
    expect((await rejection(p)).errno).toBe('EBADF');
  });
});

describe('overflow (PRS.PRO)', () => {
  it('a full queue sets PRO and drops the rest of the group; the unit answers the lost last request Success, and the device asks again', async () => {
    // PQS 0: 128 descriptors, of which 127 can be pending (PQT never catches up with PQH).
    const { unit, drv } = setup({ prq: { order: 0 }, irq: 'poll' });
    const events: string[] = [];
    unit.interrupts$.subscribe((i) => events.push(i.kind));
    // A's 100 requests fit; B's first 27 fit, its last 3 are dropped and the unit answers B.
    const a = unit.dma({ sid: SID }, { iova: 0, access: Access.Read, length: 100 * PAGE });
    const b = unit.dma({ sid: SID }, { iova: 0x100_0000, access: Access.Read, length: 30 * PAGE });
    expect(reg32(unit, VTD_REG.PRS)).toBe(PRS.PPR | PRS.PRO);
    expect(events).toEqual(['page-request']); // PPR rose first; PRO alone does not signal again
    let s = unit.stats().prq;
    expect(s).toMatchObject({
      groups: 2,
      requests: 127,
      dropped: 3,
      overflows: 1,
      autoResponses: 1,
      autoFailures: 0,
      responses: 0,
    });

    // The guest drains before B retries: A's group is answered, B's partial group is discarded
    // (no response), then PRO is cleared.
    expect(drv.handlePageRequests()).toBe(127);
    expect(reg32(unit, VTD_REG.PRS)).toBe(0);
    const g = drv.stats();
    expect(g.prq).toMatchObject({ overflowsCleared: 1, discarded: 27 });
    expect(g.pageResponses).toBe(1);

    // B asks again for its 30 pages, and they fit now; the handler runs on each event from here.
    unit.interrupts$.subscribe((i) => {
      if (i.kind === 'page-request') drv.handlePageRequests();
    });
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.length).toBe(100 * PAGE);
    expect(rb.length).toBe(30 * PAGE);
    s = unit.stats().prq;
    expect(s).toMatchObject({ groups: 3, requests: 157, responses: 2, autoResponses: 1, unmatchedResponses: 0 });
    expect(s.responses + s.autoResponses).toBe(s.groups); // no group answered twice
  });

  it('while PRO is set, requests are dropped even when the queue has room, and a device that keeps asking gives up', async () => {
    const { unit, drv } = setup({ prq: { order: 0 }, irq: 'poll' });
    // 128 pages never fit in 127 entries: each retry overflows again, until the device gives up.
    const big = await rejection(unit.dma({ sid: SID }, { iova: 0, access: Access.Read, length: 128 * PAGE }));
    expect(big.message).toMatch(/still faults after 16 successful page request groups/);
    // Software reads part of the queue (PQH moves) but PRO stays set until it clears it.
    unit.mmioWrite(VTD_REG.PQH, 64 * 32, 8);
    const before = unit.stats().prq;
    const e = await rejection(unit.dma({ sid: SID }, { iova: 0x100_0000, access: Access.Read, length: 4 }));
    expect(e.errno).toBe('EFAULT');
    expect(e.message).toMatch(/still faults after 16 successful page request groups/);
    const after = unit.stats().prq;
    expect(after.requests).toBe(before.requests);
    expect(after.autoResponses - before.autoResponses).toBe(16); // each of its 16 groups, answered by the unit
    expect(after.autoFailures).toBe(0);
    expect(drv.stats().pageResponses).toBe(0);
  });

  it('a queue that lies outside guest RAM takes nothing, and the unit answers Response Failure', async () => {
    const { unit } = setup({ irq: 'poll' });
    // Point PQA past the end of the unit's 32 MiB of guest RAM (order 0: one 4 KiB page).
    unit.mmioWrite(VTD_REG.PQA, 64 * MIB, 8);
    const e = await rejection(unit.dma({ sid: SID }, { iova: 0, access: Access.Read, length: 4 }));
    expect(e.errno).toBe('EFAULT');
    expect(e.message).toMatch(/Response Failure/);
    expect(unit.stats().prq).toMatchObject({ groups: 1, requests: 0, dropped: 1, autoResponses: 1, autoFailures: 1 });
  });
});

describe('page group responses on the invalidation queue', () => {
  it('a response for no outstanding group, or with the wrong PASID, is ignored and counted: no IQE, the DMA still waits', async () => {
    const { unit, drv } = setup({ irq: 'poll' });
    // Nothing outstanding at all.
    drv.queue.submit([{ type: DescType.PageGroupResponse, fields: { rid: SID, prgi: 77, rc: 0, lpig: 1 } }]);
    expect(unit.stats().prq.unmatchedResponses).toBe(1);
    let settled = false;
    const p = unit.dma({ sid: SID }, { iova: 0x7000, access: Access.Write, data: new Uint8Array(8) });
    void p.then(() => (settled = true));
    const prgi = prqSlot(unit, drv, 0).prgi;
    // The right group, but a PASID the request did not carry.
    drv.queue.submit([
      { type: DescType.PageGroupResponse, fields: { rid: SID, prgi, pp: 1, pasid: 5, rc: 0, lpig: 1 } },
    ]);
    // Another requester's group of the same index.
    drv.queue.submit([{ type: DescType.PageGroupResponse, fields: { rid: SID + 1, prgi, rc: 0, lpig: 1 } }]);
    await Promise.resolve();
    expect(settled).toBe(false);
    expect(unit.stats().prq.unmatchedResponses).toBe(3);
    expect(reg32(unit, VTD_REG.FSTS) & FSTS.IQE).toBe(0);
    drv.handlePageRequests();
    await p;
    expect(unit.stats().prq).toMatchObject({ responses: 1, unmatchedResponses: 3 });
  });

  it('a second response to an answered group is ignored (the group was answered once)', async () => {
    const { unit, drv } = setup({ irq: 'poll' });
    const p = unit.dma({ sid: SID }, { iova: 0x7000, access: Access.Read, length: 8 });
    const prgi = prqSlot(unit, drv, 0).prgi;
    drv.handlePageRequests();
    await p;
    drv.queue.submit([
      { type: DescType.PageGroupResponse, fields: { rid: SID, prgi, rc: PRG_RESPONSE.Success, lpig: 1 } },
    ]);
    expect(unit.stats().prq).toMatchObject({ responses: 1, unmatchedResponses: 1 });
  });
});

describe('implicit invalidation of the faulting page', () => {
  it("drops the page's stale IOTLB and device-TLB entries before the request is queued", async () => {
    const { unit, drv } = setup({
      unit: { deviceTlb: true },
      drv: { policy: 'lazy' },
      irq: 'poll',
      ats: true,
    });
    const iova = 0x30_0000;
    drv.map(SID, iova, drv.frames.alloc() * PAGE, PAGE, 1); // read-only
    expect(unit.translate({ sid: SID }, iova, Access.Read)).toBeGreaterThanOrEqual(0);
    const hits = unit.stats().devTlbHits;
    // Lazy unmap: the flush waits in the flush queue, so the cached entries are stale.
    drv.unmap(SID, iova, PAGE);
    expect(unit.translate({ sid: SID }, iova, Access.Read)).toBeGreaterThanOrEqual(0);
    expect(unit.stats().devTlbHits).toBe(hits + 1);
    // A write misses the read-only entries, walks, finds nothing: a page request.
    const p = unit.dma({ sid: SID }, { iova, access: Access.Write, data: new Uint8Array([1, 2, 3]) });
    expect(unit.stats().prq.requests).toBe(1);
    // The stale entries of that page are gone: a read now walks and faults.
    const recorded = unit.stats().faultsRecorded;
    expect(unit.translate({ sid: SID }, iova, Access.Read)).toBeLessThan(0);
    expect(unit.stats().faultsRecorded).toBe(recorded + 1);
    expect(unit.stats().devTlbHits).toBe(hits + 1);
    drv.flushLazy();
    drv.handlePageRequests();
    await p;
    const back = await unit.dma({ sid: SID }, { iova, access: Access.Read, length: 3 });
    expect([...back]).toEqual([1, 2, 3]);
  });
});

describe('driver and transfer checks', () => {
  it('enablePageRequests programs PQH = PQT = 0 and PQA = base | order, and unmasks the event', () => {
    const { unit, drv } = setup({ prq: { order: 2 }, irq: 'poll' });
    const q = drv.pageRequestQueue;
    expect(BigInt(unit.mmioRead(VTD_REG.PQA, 8))).toBe(BigInt(q.base) | 2n);
    expect(unit.regs.prqSizeEntries).toBe(512);
    expect(q.entries).toBe(512);
    expect([reg32(unit, VTD_REG.PQH), reg32(unit, VTD_REG.PQT)]).toEqual([0, 0]);
    expect(reg32(unit, VTD_REG.PECTL) >>> 31).toBe(0);
    expect(() => drv.enablePageRequests()).toThrow(/EBUSY/);
  });

  it('page requests need ECAP.PRS; attaching with PRI needs the queue', () => {
    const fd = Iommufd.open({ memoryBytes: 128 * MIB });
    open.push(fd);
    const plain = new VtdGuestDriver(fd.vtdCreate({ guestRamBytes: 8 * MIB, scalableMode: true, pasidWidth: 20 }));
    plain.probe();
    expect(() => plain.enablePageRequests()).toThrow(/EOPNOTSUPP/);
    expect(() => plain.attach(SID, { did: 1, pri: true })).toThrow(/ENODEV/);
  });

  it('a write without data or a read without length is EINVAL', async () => {
    const { unit } = setup();
    expect((await rejection(unit.dma({ sid: SID }, { iova: 0, access: Access.Write }))).errno).toBe('EINVAL');
    expect((await rejection(unit.dma({ sid: SID }, { iova: 0, access: Access.Read }))).errno).toBe('EINVAL');
  });
});
