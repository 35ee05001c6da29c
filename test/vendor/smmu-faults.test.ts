// Recoverable faults on the emulated SMMUv3 (issue 9 item 3, SMMUv3): the stall model (events with
// Stall and STAG, CMD_RESUME, CMD_STALL_TERM) and PRI (PRIQ records, CMD_PRI_RESP, overflow), end to
// end with the guest driver's fault path and its demand-paging handler.
import { afterEach, describe, expect, it } from 'vitest';
import {
  IopfResponse,
  SmmuGuestDriver,
  type SmmuGuestDriverOptions,
  type SmmuPageRequest,
} from '../../src/guest/smmuv3/index.js';
import { Iommufd } from '../../src/iommufd.js';
import { Access } from '../../src/pgtable/index.js';
import { IommufdError } from '../../src/util/errors.js';
import { encodeCommand, Opcode, PriResp, ResumeResp } from '../../src/vendor/smmuv3/commands.js';
import type { SmmuIommu, SmmuIommuOptions } from '../../src/vendor/smmuv3/iommu.js';
import { EVT_ID, type SmmuEventRecord } from '../../src/vendor/smmuv3/records.js';
import { GERROR, Q_INDEX, SMMU_PAGE1_REG, SMMU_REG } from '../../src/vendor/smmuv3/regs-defs.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const SID = 0x10;
const SID2 = 0x18;
const IOVA = 0x40_0000;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

interface Rig {
  unit: SmmuIommu;
  drv: SmmuGuestDriver;
  /** Every group the fault handler saw. */
  groups: SmmuPageRequest[][];
  /** Every event record the driver read. */
  events: SmmuEventRecord[];
}

/**
 * A unit with stall and PRI, a probed driver whose fault handler records each group and demand-pages
 * (or answers `verdict`), not yet wired to the unit's interrupts.
 */
function setup(unitOpts: SmmuIommuOptions = {}, drvOpts: SmmuGuestDriverOptions = {}, verdict?: number): Rig {
  const fd = Iommufd.open({ memoryBytes: 256 * MIB });
  open.push(fd);
  const unit = fd.smmuCreate({ guestRamBytes: 32 * MIB, stall: true, ats: true, pri: true, ...unitOpts });
  const groups: SmmuPageRequest[][] = [];
  const drv: SmmuGuestDriver = new SmmuGuestDriver(unit, {
    faultHandler: (group, domain) => {
      groups.push([...group]);
      return verdict ?? drv.demandPage(group, domain);
    },
    ...drvOpts,
  });
  drv.probe();
  return { unit, drv, groups, events: [] };
}

/** The VMM's interrupt wiring: an event or PRI queue interrupt runs the driver's threads (as a microtask). */
function wire(r: Rig): void {
  let scheduled = false;
  r.unit.interrupts$.subscribe((irq) => {
    if ((irq.kind !== 'evtq' && irq.kind !== 'priq') || scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      r.events.push(...r.drv.readEvents());
      r.drv.handlePageRequests();
    });
  });
}

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

function resumes(drv: SmmuGuestDriver): number {
  return drv.stats().commands['RESUME'] ?? 0;
}

function priResps(drv: SmmuGuestDriver): number {
  return drv.stats().commands['PRI_RESP'] ?? 0;
}

async function rejection(p: Promise<unknown>): Promise<IommufdError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IommufdError) return e;
    throw e;
  }
  throw new Error('the DMA completed');
}

describe('stall model', () => {
  it('end to end: a device writes unmapped pages, each stalls, the guest demand-pages them, RESUME retries, every DMA completes', async () => {
    const r = setup();
    const { unit, drv } = r;
    drv.attachDevice(SID, { stall: true });
    wire(r);
    const data = bytes(3 * PAGE + 100, 1);
    // Two concurrent DMAs over overlapping pages: the shared page stalls twice (two STAGs).
    const [w, w2] = await Promise.all([
      unit.dma({ sid: SID }, { iova: IOVA + 50, access: Access.Write, data }),
      unit.dma({ sid: SID }, { iova: IOVA + 4 * PAGE, access: Access.Write, data: bytes(PAGE, 9) }),
    ]);
    expect(w.requests).toBe(4); // pages 0..3 of the first DMA
    expect(w.retries).toBe(1);
    expect(w2.requests).toBe(1);
    const read = await unit.dma({ sid: SID }, { iova: IOVA + 50, length: data.length, access: Access.Read });
    expect(read.data).toEqual(data);
    expect(read.requests).toBe(0);

    // Every fault reached the guest once as a stall event and was answered once.
    const stall = unit.stats().stall;
    expect(stall).toMatchObject({ stalls: 5, retried: 5, terminated: 0, ignoredResumes: 0, refused: 0 });
    expect(unit.stalledTransactions).toBe(0);
    expect(resumes(drv)).toBe(5);
    expect(r.events).toHaveLength(5);
    for (const e of r.events)
      expect(e).toMatchObject({ type: EVT_ID.F_TRANSLATION, sid: SID, stall: true, read: false });
    expect(new Set(r.events.map((e) => e.stag)).size).toBe(5);
    expect(r.groups.map((g) => g.map((q) => [q.kind, q.addr, q.last]))).toEqual(
      [0, 1, 2, 3, 4].map((i) => [['stall', IOVA + i * PAGE, true]]),
    );
    expect(drv.stats().iopf).toMatchObject({ requests: 5, groups: 5, fixed: 5, refused: 0, unhandled: 0 });
    expect(unit.stats().events.written).toBe(5);
  });

  it('a stall event carries Stall, the STAG, the access and the input address; a read of an unmapped page stalls as a read', async () => {
    const r = setup();
    r.drv.attachDevice(SID, { stall: true });
    const dma = r.unit.dma({ sid: SID }, { iova: IOVA + 0x123, length: 8, access: Access.Read });
    const [e] = r.drv.eventQueue.drain();
    expect(e).toMatchObject({
      type: EVT_ID.F_TRANSLATION,
      sid: SID,
      ssv: false,
      stall: true,
      read: true,
      stage2: false,
      inputAddress: IOVA + 0x123,
    });
    expect(r.unit.stalledTransactions).toBe(1);
    r.drv.map(SID, IOVA, r.drv.frames.alloc() * PAGE, PAGE, 1);
    r.drv.submitRaw(encodeCommand(Opcode.Resume, { sid: SID, stag: e!.stag, ac: 1 }));
    await expect(dma).resolves.toMatchObject({ retries: 1, requests: 1 });
  });

  it('RESUME Abort (the handler refuses) fails the DMA with EFAULT and moves no data', async () => {
    const r = setup({}, {}, IopfResponse.Invalid);
    r.drv.attachDevice(SID, { stall: true });
    wire(r);
    const err = await rejection(r.unit.dma({ sid: SID }, { iova: IOVA, access: Access.Write, data: bytes(64, 3) }));
    expect(err.errno).toBe('EFAULT');
    expect(err.message).toMatch(/abort/);
    expect(r.unit.stats().stall).toMatchObject({ stalls: 1, retried: 0, terminated: 1 });
    expect(r.drv.stats().iopf).toMatchObject({ refused: 1, fixed: 0 });
  });

  it('RESUME Terminate fails the DMA too', async () => {
    const r = setup();
    r.drv.attachDevice(SID, { stall: true });
    const dma = r.unit.dma({ sid: SID }, { iova: IOVA, length: 4, access: Access.Read });
    const [e] = r.drv.eventQueue.drain();
    r.drv.submitRaw(encodeCommand(Opcode.Resume, { sid: SID, stag: e!.stag, ac: 0, ab: 0 }));
    expect((await rejection(dma)).message).toMatch(/terminate/);
  });

  it('STALL_TERM terminates every stalled transaction of the stream, not of another; a late RESUME is ignored and counted', async () => {
    const r = setup();
    const { unit, drv } = r;
    drv.attachDevice(SID, { stall: true });
    drv.attachDevice(SID2, { stall: true, domain: drv.domain(SID).id });
    const a = unit.dma({ sid: SID }, { iova: IOVA, length: 2 * PAGE, access: Access.Read });
    const b = unit.dma({ sid: SID2 }, { iova: IOVA + 8 * PAGE, length: 8, access: Access.Read });
    expect(unit.stalledTransactions).toBe(3);
    drv.submitRaw(encodeCommand(Opcode.StallTerm, { sid: SID }));
    expect((await rejection(a)).errno).toBe('EFAULT');
    expect(unit.stalledTransactions).toBe(1);
    expect(unit.stats().stall).toMatchObject({ stallTerms: 2, ignoredStallTerms: 0 });
    // The guest reads the three events now: SID's two are answered, but nothing is held for them.
    const before = resumes(drv);
    r.events.push(...drv.readEvents());
    expect(resumes(drv) - before).toBe(3);
    expect(unit.stats().stall).toMatchObject({ ignoredResumes: 2, retried: 1 });
    await expect(b).resolves.toMatchObject({ requests: 1, retries: 1 });
    expect(unit.mmioRead(SMMU_REG.GERROR, 4)).toBe(0);
  });

  it('a RESUME or STALL_TERM naming nothing is harmless and counted; PRI_RESP for no group likewise', () => {
    const r = setup();
    r.drv.attachDevice(SID, { stall: true });
    r.drv.submitRaw(encodeCommand(Opcode.Resume, { sid: SID, stag: 0x1234, ac: 1 }));
    r.drv.submitRaw(encodeCommand(Opcode.StallTerm, { sid: 0x7 }));
    r.drv.submitRaw(encodeCommand(Opcode.PriResp, { sid: SID, prgi: 5, resp: PriResp.Success }));
    const s = r.unit.stats();
    expect(s.stall).toMatchObject({ ignoredResumes: 1, ignoredStallTerms: 1, stalls: 0 });
    expect(s.pri).toMatchObject({ ignoredResponses: 1, responses: 0 });
    expect(s.cmdq.errIll).toBe(0);
    expect(r.unit.mmioRead(SMMU_REG.GERROR, 4)).toBe(0);
  });

  it('a stall event is never lost: with the event queue full it waits, and is written as the guest consumes', async () => {
    const r = setup({}, { evtqBits: 0 });
    r.drv.attachDevice(SID, { stall: true });
    wire(r);
    const w = await r.unit.dma({ sid: SID }, { iova: IOVA, access: Access.Write, data: bytes(3 * PAGE, 5) });
    expect(w.requests).toBe(3);
    const s = r.unit.stats();
    expect(s.stall).toMatchObject({ stalls: 3, retried: 3, deferredEvents: 2 });
    expect(s.events).toMatchObject({ written: 3, overflows: 0, dropped: 0 });
    expect(r.drv.stats().eventOverflows).toBe(0);
  });

  it('a master that does not stall terminates: the DMA fails at once with a recorded, non-stall event', async () => {
    const r = setup();
    r.drv.attachDevice(SID);
    const err = await rejection(r.unit.dma({ sid: SID }, { iova: IOVA, length: 4, access: Access.Read }));
    expect(err.errno).toBe('EFAULT');
    expect(r.drv.readEvents()).toEqual([expect.objectContaining({ type: EVT_ID.F_TRANSLATION, stall: false })]);
    expect(r.unit.stats().stall.stalls).toBe(0);
  });

  it('a domain’s masters all stall or none (EINVAL), as arm_smmu_attach_dev', () => {
    const r = setup();
    const d = r.drv.attachDevice(SID, { stall: true });
    expect(() => r.drv.attachDevice(SID2, { domain: d })).toThrow(/EINVAL/);
  });

  it('on a unit without stall support the stall option is ignored and RESUME is an illegal command', async () => {
    const r = setup({ stall: false });
    r.drv.attachDevice(SID, { stall: true });
    await expect(r.unit.dma({ sid: SID }, { iova: IOVA, length: 4, access: Access.Read })).rejects.toThrow(/EFAULT/);
    r.drv.submitRaw(encodeCommand(Opcode.Resume, { sid: SID, stag: 1, ac: 1 }));
    expect(r.unit.stats().cmdq.errIll).toBe(1);
  });

  it('RESUME Retry without a fix stalls again, and the DMA gives up after maxRetries', async () => {
    const r = setup({}, {}, IopfResponse.Success); // claims success, maps nothing
    r.drv.attachDevice(SID, { stall: true });
    wire(r);
    const err = await rejection(
      r.unit.dma({ sid: SID }, { iova: IOVA, length: 4, access: Access.Read, maxRetries: 3 }),
    );
    expect(err.message).toMatch(/after 3 retries/);
    expect(r.unit.stats().stall).toMatchObject({ stalls: 3, retried: 3 });
  });

  it('RESUME goes without a CMD_SYNC, as Linux; faultResponseSync adds one', async () => {
    for (const faultResponseSync of [false, true]) {
      const r = setup({}, { faultResponseSync });
      r.drv.attachDevice(SID, { stall: true });
      wire(r);
      const syncs = r.drv.stats().commands['CMD_SYNC'] ?? 0;
      await r.unit.dma({ sid: SID }, { iova: IOVA, length: 2 * PAGE, access: Access.Read });
      expect(resumes(r.drv)).toBe(2);
      expect((r.drv.stats().commands['CMD_SYNC'] ?? 0) - syncs).toBe(faultResponseSync ? 2 : 0);
    }
  });

  it('closing the unit terminates what it holds', async () => {
    const r = setup();
    r.drv.attachDevice(SID, { stall: true });
    const dma = r.unit.dma({ sid: SID }, { iova: IOVA, length: 4, access: Access.Read });
    await r.unit.close();
    expect((await rejection(dma)).errno).toBe('EFAULT');
  });
});

describe('PRI', () => {
  /** A PRI device: ATS and PRI at the unit, attached with ATS and PRI at the driver. */
  function priDevice(r: Rig, sid: number, domain?: number): number {
    r.unit.addAtsDevice(sid, { pri: true });
    return r.drv.attachDevice(sid, { ats: true, pri: true, ...(domain === undefined ? {} : { domain }) });
  }

  it('end to end: a transfer over unmapped pages is one page request group, Last on its final page; PRI_RESP Success retries it', async () => {
    const r = setup();
    const { unit, drv } = r;
    priDevice(r, SID);
    wire(r);
    const data = bytes(4 * PAGE, 2);
    const w = await unit.dma({ sid: SID }, { iova: IOVA, access: Access.Write, data });
    expect(w).toMatchObject({ retries: 1, requests: 4 });
    expect(r.groups).toHaveLength(1);
    const g = r.groups[0]!;
    expect(g.map((q) => [q.kind, q.addr, q.write, q.last])).toEqual(
      [0, 1, 2, 3].map((i) => ['pri', IOVA + i * PAGE, true, i === 3]),
    );
    expect(new Set(g.map((q) => q.grpid)).size).toBe(1);
    expect((await unit.dma({ sid: SID }, { iova: IOVA, length: data.length, access: Access.Read })).data).toEqual(data);
    expect(unit.stats().pri).toMatchObject({ requests: 4, groups: 1, responses: 1, ignoredResponses: 0, overflows: 0 });
    expect(priResps(drv)).toBe(1);
    expect(unit.outstandingPageRequests).toBe(0);
    // ATS translation faults are not events.
    expect(unit.stats().events.written).toBe(0);
  });

  it('many devices at once: every DMA completes, each group answered exactly once', async () => {
    const r = setup();
    const d = priDevice(r, SID);
    priDevice(r, SID2, d);
    wire(r);
    const jobs = [0, 1, 2, 3, 4, 5].map((i) =>
      r.unit.dma(
        { sid: i % 2 === 0 ? SID : SID2 },
        { iova: IOVA + i * 3 * PAGE, access: Access.Write, data: bytes(2 * PAGE + 1, i) },
      ),
    );
    const done = await Promise.all(jobs);
    expect(done.every((x) => x.retries === 1)).toBe(true);
    const s = r.unit.stats().pri;
    expect(s.groups).toBe(6);
    expect(s.responses).toBe(6);
    expect(s.ignoredResponses).toBe(0);
    expect(priResps(r.drv)).toBe(6);
    expect(r.drv.stats().iopf).toMatchObject({ groups: 6, fixed: 6, partialDiscarded: 0 });
  });

  it('a refused group (Invalid) is answered Deny and fails the DMA', async () => {
    const r = setup({}, {}, IopfResponse.Invalid);
    priDevice(r, SID);
    wire(r);
    const err = await rejection(r.unit.dma({ sid: SID }, { iova: IOVA, length: PAGE, access: Access.Read }));
    expect(err.message).toMatch(new RegExp(`answered ${PriResp.Deny}`));
  });

  it('a page request of a device the driver has no PRI for is denied (Linux 6.1)', async () => {
    const r = setup();
    r.unit.addAtsDevice(SID, { pri: true });
    r.drv.attachDevice(SID, { ats: true }); // the guest did not enable PRI
    wire(r);
    await expect(r.unit.dma({ sid: SID }, { iova: IOVA, length: PAGE, access: Access.Read })).rejects.toThrow(/EFAULT/);
    expect(r.drv.stats().iopf.unhandled).toBe(1);
  });

  it('overflow: requests that find the queue full are lost, OVFLG toggles, the unit answers the lost Last itself (Success), and the guest drops the partial group', async () => {
    const r = setup({}, { priqBits: 2 }); // 4 entries
    const { unit, drv } = r;
    const d = priDevice(r, SID);
    priDevice(r, SID2, d);
    const a = unit.dma({ sid: SID }, { iova: IOVA, access: Access.Write, data: bytes(3 * PAGE, 1) });
    const b = unit.dma({ sid: SID2 }, { iova: IOVA + 8 * PAGE, access: Access.Write, data: bytes(2 * PAGE, 2) });
    // A's three requests and B's first fill the queue; B's last is lost and answered by the unit.
    const prod = Number(unit.mmioRead(SMMU_PAGE1_REG.PRIQ_PROD, 4)) >>> 0;
    expect(prod & Q_INDEX.OVF).not.toBe(0);
    expect(unit.stats().pri).toMatchObject({ requests: 4, overflows: 1, autoSuccess: 1, groups: 2 });
    expect(unit.outstandingPageRequests).toBe(1); // A's
    // The guest's PRIQ thread runs before B retries: A's group is complete, B's partial is dropped.
    drv.handlePageRequests();
    expect(drv.stats()).toMatchObject({ priRequests: 4, priOverflows: 1 });
    expect(drv.stats().iopf).toMatchObject({ groups: 1, partialDiscarded: 1 });
    // The overflow is acknowledged: CONS.OVACKFLG = PROD.OVFLG.
    const cons = Number(unit.mmioRead(SMMU_PAGE1_REG.PRIQ_CONS, 4)) >>> 0;
    expect(((cons ^ prod) & Q_INDEX.OVF) >>> 0).toBe(0);
    wire(r);
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.retries).toBe(1);
    expect(rb.retries).toBe(2); // the unit's Success, then the guest's
    const s = unit.stats().pri;
    expect(s).toMatchObject({ groups: 3, responses: 2, ignoredResponses: 0, autoSuccess: 1 });
    expect(priResps(drv)).toBe(2); // the guest never answers the group the unit answered
    expect(unit.mmioRead(SMMU_REG.GERROR, 4)).toBe(0);
  });

  it('while the overflow is unacknowledged the PRI queue takes nothing, even with room', () => {
    const r = setup({}, { priqBits: 1 });
    priDevice(r, SID);
    void r.unit.dma({ sid: SID }, { iova: IOVA, length: 3 * PAGE, access: Access.Read }).catch(() => undefined);
    expect(r.unit.stats().pri).toMatchObject({ requests: 2, overflows: 1, autoSuccess: 1 });
    // The guest consumes one record without acknowledging: still nothing is written.
    r.unit.mmioWrite(SMMU_PAGE1_REG.PRIQ_CONS, 1, 4);
    void r.unit.dma({ sid: SID }, { iova: IOVA + 16 * PAGE, length: 8, access: Access.Read }).catch(() => undefined);
    expect(r.unit.stats().pri).toMatchObject({ requests: 2, overflows: 2, autoSuccess: 2 });
  });

  it('with the PRI queue disabled a request gets Response Failure from the unit', async () => {
    const r = setup();
    priDevice(r, SID);
    const cr0 = Number(r.unit.mmioRead(SMMU_REG.CR0, 4));
    r.unit.mmioWrite(SMMU_REG.CR0, cr0 & ~2, 4); // PRIQEN = 0
    const err = await rejection(r.unit.dma({ sid: SID }, { iova: IOVA, length: 8, access: Access.Read }));
    expect(err.message).toMatch(new RegExp(`answered ${PriResp.Fail}`));
    expect(r.unit.stats().pri).toMatchObject({ dropped: 1, autoFailure: 1 });
  });

  it('addAtsDevice with pri on a unit without PRI is EINVAL', () => {
    const r = setup({ pri: false });
    expect(() => r.unit.addAtsDevice(SID, { pri: true })).toThrow(/EINVAL/);
  });

  it('RESUME and PRI_RESP encode the responses Linux uses', () => {
    expect(ResumeResp).toEqual({ Terminate: 0, Retry: 1, Abort: 2 });
    expect(PriResp).toEqual({ Deny: 0, Fail: 1, Success: 2 });
    expect(GERROR.CMDQ_ERR).toBe(1);
  });
});
