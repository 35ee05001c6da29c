// The Linux 6.1 arm-smmu-v3 guest driver model against the emulated SMMUv3 unit, end to end: the
// driver talks to the unit only through MMIO and guest memory; devices DMA through the unit.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  atcInvSpan,
  SmmuGuestDriver,
  tlbiRangeSteps,
  tlbiTtl,
  type SmmuGuestDriverOptions,
  type SmmuUnitPort,
} from '../../src/guest/smmuv3/index.js';
import { Iommufd } from '../../src/iommufd.js';
import { IommufdError } from '../../src/util/errors.js';
import {
  ATC_INV_SIZE_ALL,
  CERROR_ATC_INV_SYNC,
  CERROR_ILL,
  commandSpec,
  decodeCommand,
  encodeCommand,
  Opcode,
  SmmuCommand,
  SyncCs,
  Tg,
  type FieldName,
} from '../../src/vendor/smmuv3/commands.js';
import type { SmmuIommu, SmmuIommuOptions } from '../../src/vendor/smmuv3/iommu.js';
import { EVT_ID } from '../../src/vendor/smmuv3/records.js';
import { CMDQ_CONS, CR0, GERROR, Q_INDEX, SMMU_PAGE1_REG, SMMU_REG } from '../../src/vendor/smmuv3/regs-defs.js';
import { Cd, decodeCd } from '../../src/vendor/smmuv3/structures-cd.js';
import { decodeL1Std, decodeSte, L1Std, Ste, STE_CONFIG } from '../../src/vendor/smmuv3/structures.js';

const MIB = 2 ** 20;
const PAGE = 4096;
const SID = 0x0010; // 00:02.0
const SID2 = 0x0018;
const R = 1;
const W = 2;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

interface Rig {
  unit: SmmuIommu;
  drv: SmmuGuestDriver;
  /** Every MMIO write the driver made: [offset, value]. */
  writes: [number, bigint][];
}

/** A unit and a driver over a recording port (the driver sees nothing else of the unit). */
function rig(unitOpts: SmmuIommuOptions = {}, drvOpts: SmmuGuestDriverOptions = {}): Rig {
  const fd = Iommufd.open({ memoryBytes: 256 * MIB });
  open.push(fd);
  const unit = fd.smmuCreate({ guestRamBytes: 32 * MIB, ...unitOpts });
  const writes: [number, bigint][] = [];
  const port: SmmuUnitPort = {
    mmioRead: (offset, size) => unit.mmioRead(offset, size),
    mmioWrite: (offset, value, size) => {
      writes.push([offset, BigInt(value)]);
      unit.mmioWrite(offset, value, size);
    },
    guest: unit.guest,
  };
  return { unit, drv: new SmmuGuestDriver(port, drvOpts), writes };
}

function setup(unitOpts: SmmuIommuOptions = {}, drvOpts: SmmuGuestDriverOptions = {}): Rig {
  const r = rig(unitOpts, drvOpts);
  r.drv.probe();
  return r;
}

/** A fresh guest page filled with `fill`; returns its GPA. */
function dataPage(unit: SmmuIommu, drv: SmmuGuestDriver, fill = 0): number {
  const gpa = drv.frames.alloc() * PAGE;
  unit.guest.u8.fill(fill, gpa, gpa + PAGE);
  return gpa;
}

function reg32(unit: SmmuIommu, offset: number): number {
  return Number(unit.mmioRead(offset, 4)) >>> 0;
}

/** A queued command decoded from its slot; a sync the unit completed by MSI reads as CMD_SYNC with `msiDone`. */
interface Decoded {
  readonly name: string;
  readonly msiDone: boolean;
  get(field: FieldName): number;
}

function decodeSlot(unit: SmmuIommu, drv: SmmuGuestDriver, index: number): Decoded {
  const slot = drv.queue.slotAddress(index);
  const words = new Uint32Array(4);
  for (let w = 0; w < 4; w++) words[w] = unit.guest.i32[slot / 4 + w]! >>> 0;
  // The MSI of a completed sync is a 32-bit store of MSIData 0 over the sync's first word.
  const msiDone = words[0] === 0 && words[1] === 0 && words[2] === slot && words[3] === 0;
  if (msiDone) words[0] = Opcode.Sync | (SyncCs.Irq << 12) | (3 << 22) | (0xf << 24);
  const cmd = new SmmuCommand();
  const err = decodeCommand(words, 0, cmd);
  const name = err === 0 ? commandSpec(cmd.opcode)!.name : `ILL(0x${cmd.opcode.toString(16)})`;
  return { name, msiDone, get: (f) => cmd.get(f) };
}

/** Runs `fn` and returns the commands it queued (fewer than a queue's worth). */
function queued(unit: SmmuIommu, drv: SmmuGuestDriver, fn: () => void): Decoded[] {
  const q = drv.queue;
  const from = q.prod;
  fn();
  const out: Decoded[] = [];
  for (let i = from; i !== q.prod; i = (i + 1) & (2 * q.entries - 1)) out.push(decodeSlot(unit, drv, i));
  return out;
}

const names = (cmds: Decoded[]): string[] => cmds.map((c) => c.name);

function faults(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    if (e instanceof IommufdError && e.errno === 'EFAULT') return true;
    throw e;
  }
}

/** The STE of `sid` as the driver wrote it. */
function steOf(unit: SmmuIommu, drv: SmmuGuestDriver, sid: number): Ste {
  return decodeSte(unit.guest.i32, drv.streamTable.steAddress(sid) / 4, new Ste());
}

/** The first attach of a device to a new domain, as the trace has it. */
const ATTACH_NEW_DOMAIN = [
  'CMD_SYNC', // arm_smmu_sync_cd before CD dword 0 (no device in the domain yet: a bare sync)
  'CMD_SYNC', // and after it
  'CFGI_STE',
  'CMD_SYNC', // STE dwords 1-7
  'CFGI_STE',
  'CMD_SYNC', // STE dword 0
  'PREFETCH_CONFIG',
  'TLBI_NH_ASID',
  'CMD_SYNC', // the core's iommu_flush_iotlb_all
];

describe('probe', () => {
  it('writes the registers in the order and with the values of the 6.1 trace (QEMU-like unit)', () => {
    // QEMU 7.2's SMMUv3: no Hyp, no ATS/PRI, no MSI, 16-bit StreamIDs (traces/smmu-lazy.clean.log).
    const { unit, drv, writes } = setup({ hyp: false, ats: false, pri: false, msi: false, oas: 44 });
    const q = drv.queue;
    const e = drv.eventQueue;
    const RA = 1n << 62n;
    expect(writes).toEqual([
      [SMMU_REG.CR0, 0n],
      [SMMU_REG.CR1, 0xd75n],
      [SMMU_REG.CR2, 0x6n],
      [SMMU_REG.STRTAB_BASE, RA | BigInt(drv.streamTable.base)],
      [SMMU_REG.STRTAB_BASE_CFG, 0x10210n],
      [SMMU_REG.CMDQ_BASE, RA | BigInt(q.base) | 8n],
      [SMMU_REG.CMDQ_PROD, 0n],
      [SMMU_REG.CMDQ_CONS, 0n],
      [SMMU_REG.CR0, 0x8n],
      [SMMU_REG.CMDQ_PROD, 2n], // CFGI_ALL + SYNC
      [SMMU_REG.CMDQ_PROD, 4n], // TLBI_NSNH_ALL + SYNC
      [SMMU_REG.EVTQ_BASE, RA | BigInt(e.base) | 7n],
      [SMMU_PAGE1_REG.EVTQ_PROD, 0n],
      [SMMU_PAGE1_REG.EVTQ_CONS, 0n],
      [SMMU_REG.CR0, 0xcn],
      [SMMU_REG.IRQ_CTRL, 0n],
      [SMMU_REG.GERROR_IRQ_CFG0, 0n],
      [SMMU_REG.EVTQ_IRQ_CFG0, 0n],
      [SMMU_REG.IRQ_CTRL, 0x5n],
      [SMMU_REG.CR0, 0xdn],
    ]);
    const cmds = [0, 1, 2, 3].map((i) => decodeSlot(unit, drv, i));
    expect(names(cmds)).toEqual(['CFGI_STE_RANGE', 'CMD_SYNC', 'TLBI_NSNH_ALL', 'CMD_SYNC']);
    expect(cmds[0]!.get('range')).toBe(31); // CFGI_ALL
    expect(cmds[1]!.get('cs')).toBe(SyncCs.None); // no MSI: CONS is polled
    expect(reg32(unit, SMMU_REG.CR0ACK)).toBe(0xd);
    expect(reg32(unit, SMMU_REG.IRQ_CTRLACK)).toBe(0x5);
    expect(unit.regs.streamTable).toMatchObject({ format: '2-level', log2Size: 16, split: 8 });
    expect(reg32(unit, SMMU_REG.CMDQ_CONS)).toBe(4);
    expect(drv.caps).toMatchObject({ oas: 44, ias: 44, ril: true, msi: false, hyp: false, sidBits: 16 });
  });

  it('a capable unit: TLBI_EL2_ALL for Hyp, the PRI queue, ATSCHK, and syncs completed by MSI to their own slot', () => {
    const { unit, drv, writes } = setup();
    const cr0Writes = writes.filter(([o]) => o === SMMU_REG.CR0).map(([, v]) => Number(v));
    expect(cr0Writes).toEqual([0, 0x8, 0xc, 0xe, 0x1e, 0x1f]);
    expect(writes.some(([o]) => o === SMMU_REG.PRIQ_BASE)).toBe(true);
    const irq = writes.filter(([o]) => o === SMMU_REG.IRQ_CTRL).map(([, v]) => Number(v));
    expect(irq).toEqual([0, 0x7]);
    const cmds = [0, 1, 2, 3, 4, 5].map((i) => decodeSlot(unit, drv, i));
    expect(names(cmds)).toEqual([
      'CFGI_STE_RANGE',
      'CMD_SYNC',
      'TLBI_EL2_ALL',
      'CMD_SYNC',
      'TLBI_NSNH_ALL',
      'CMD_SYNC',
    ]);
    expect(cmds.filter((c) => c.name === 'CMD_SYNC').every((c) => c.msiDone)).toBe(true);
    expect(drv.queue.msiPoll).toBe(true);
    // MSI polling reads no register: the probe's reads are the IDRs, CR0 and the ACK polls only.
    const before = drv.stats().mmioReads;
    drv.sync();
    expect(drv.stats().mmioReads).toBe(before);
    expect(drv.stats()).toMatchObject({ syncs: 4, submissions: 4, batches: 1, syncPolls: 0 });
    expect(reg32(unit, SMMU_REG.CR0ACK)).toBe(0x1f);
    expect(drv.priqBase).toBeGreaterThan(0);
  });

  it('without MSI polling a sync asks for SIG_NONE (SIG_SEV with IDR0.SEV) and costs one CMDQ_CONS read', () => {
    for (const [unitOpts, drvOpts, cs] of [
      [{ msi: false }, {}, SyncCs.None],
      [{ msi: false, sev: true }, {}, SyncCs.Sev],
      [{}, { msiPoll: false }, SyncCs.None], // disable_msipolling=1
    ] as const) {
      const { unit, drv } = setup(unitOpts, drvOpts);
      expect(drv.queue.msiPoll).toBe(false);
      const reads = drv.stats().mmioReads;
      const cmds = queued(unit, drv, () => drv.sync());
      expect(names(cmds)).toEqual(['CMD_SYNC']);
      expect([cmds[0]!.msiDone, cmds[0]!.get('cs'), cmds[0]!.get('msiAddr')]).toEqual([false, cs, 0]);
      expect(drv.stats().mmioReads).toBe(reads + 1);
      expect(drv.queue.cons).toBe(drv.queue.prod);
    }
  });

  it('a linear stream table on a unit without 2-level tables: every STE aborts until an attach', () => {
    const { unit, drv } = setup({ twoLevelStreamTable: false, sidBits: 6 });
    expect(drv.streamTable.format).toBe('linear');
    expect(unit.regs.streamTable).toMatchObject({ format: 'linear', log2Size: 6 });
    expect(reg32(unit, SMMU_REG.STRTAB_BASE_CFG)).toBe(6);
    for (let sid = 0; sid < 64; sid++) expect(steOf(unit, drv, sid)).toMatchObject({ valid: true, config: 0 });
    expect(faults(() => unit.dmaRead({ sid: 3 }, 0x1000, 4))).toBe(true);
    expect(drv.readEvents()).toEqual([]); // an abort STE terminates without an event
    drv.attachDevice(5);
    const gpa = dataPage(unit, drv, 0x5c);
    drv.map(5, 0x1000, gpa, PAGE, R);
    expect(unit.dmaRead({ sid: 5 }, 0x1000, 2)).toEqual(new Uint8Array([0x5c, 0x5c]));
    expect(() => drv.attachDevice(64)).toThrow(/EINVAL/);
  });

  it('a 2-level stream table: a level-2 table appears when a device is added, and only then', () => {
    const { unit, drv } = setup();
    const l1 = (sid: number) => decodeL1Std(unit.guest.i32, (drv.streamTable.base + (sid >>> 8) * 8) / 4, new L1Std());
    expect(l1(SID).span).toBe(0);
    // Without a level-2 table the StreamID is out of the table: C_BAD_STREAMID (CR2.RECINVSID is set).
    expect(faults(() => unit.dmaRead({ sid: 0x300 }, 0, 4))).toBe(true);
    expect(drv.readEvents().map((e) => [e.type, e.sid])).toEqual([[EVT_ID.C_BAD_STREAMID, 0x300]]);
    drv.addDevice(SID);
    expect(l1(SID)).toMatchObject({ span: 9 });
    expect(l1(SID).l2Ptr % (16 * 1024)).toBe(0);
    expect(steOf(unit, drv, SID)).toMatchObject({ valid: true, config: STE_CONFIG.Abort });
    expect(drv.streamTable.l2Tables).toBe(1);
    drv.addDevice(SID2); // same level-2 table
    expect(drv.streamTable.l2Tables).toBe(1);
  });

  it('a unit left enabled (a second kernel) is set to abort through GBPA before the reset', () => {
    const first = setup();
    const writes: [number, bigint][] = [];
    const again = new SmmuGuestDriver({
      mmioRead: (o, s) => first.unit.mmioRead(o, s),
      mmioWrite: (o, v, s) => {
        writes.push([o, BigInt(v)]);
        first.unit.mmioWrite(o, v, s);
      },
      guest: first.unit.guest,
    });
    again.probe();
    expect(writes[0]![0]).toBe(SMMU_REG.GBPA);
    expect((Number(writes[0]![1]) & 0x80100000) >>> 0).toBe(0x80100000); // Update | ABORT
    expect(first.unit.regs.bypassAbort).toBe(true);
    expect(writes[1]).toEqual([SMMU_REG.CR0, 0n]);
    expect(reg32(first.unit, SMMU_REG.CR0ACK)).toBe(0x1f);
    again.attachDevice(SID);
    again.map(SID, 0x3000, dataPage(first.unit, again, 0x5a), PAGE, R);
    expect(first.unit.dmaRead({ sid: SID }, 0x3000, 1)[0]).toBe(0x5a);
  });

  it('refuses what it cannot drive, and a second probe', () => {
    expect(() => rig({ stage1: false }).drv.probe()).toThrow(/EOPNOTSUPP/);
    expect(() => rig({ cmdqMaxLog2: 6 }).drv.probe()).toThrow(/ENODEV.*64 entries/);
    expect(() => rig({}, { cmdqBits: 6 }).drv.probe()).toThrow(/EINVAL.*cmdqBits/);
    expect(() => rig({ msi: false }, { msiPoll: true }).drv.probe()).toThrow(/EINVAL.*msiPoll/);
    const { drv } = setup();
    expect(() => drv.probe()).toThrow(/EBUSY/);
    const fresh = rig().drv;
    expect(() => fresh.attachDevice(SID)).toThrow(/ENODEV/);
  });

  it('a unit that never acknowledges CR0 is reported after the poll limit (EIO)', () => {
    const fd = Iommufd.open({ memoryBytes: 64 * MIB });
    open.push(fd);
    const unit = fd.smmuCreate({ guestRamBytes: 8 * MIB });
    const port: SmmuUnitPort = {
      mmioRead: (o, s) => unit.mmioRead(o, s),
      mmioWrite: (o, v, s) => {
        if (o !== SMMU_REG.CR0 || v === 0) unit.mmioWrite(o, v, s); // enables are lost
      },
      guest: unit.guest,
    };
    expect(() => new SmmuGuestDriver(port, { pollLimit: 7 }).probe()).toThrow(
      /EIO: CR0ACK did not take CR0 0x8 after 7/,
    );
  });
});

// Every unit option that changes the driver's path: stream table format, sync completion, range
// invalidation, ATS.
const COMBOS = [false, true].flatMap((twoLevel) =>
  [false, true].flatMap((msi) =>
    [false, true].flatMap((ril) => [false, true].map((ats) => ({ twoLevel, msi, ril, ats }))),
  ),
);

describe.each(COMBOS)('strict, 2-level $twoLevel, MSI $msi, RIL $ril, ATS $ats', ({ twoLevel, msi, ril, ats }) => {
  const make = () =>
    setup(
      twoLevel ? { msi, ril, ats, pri: false } : { msi, ril, ats, pri: false, twoLevelStreamTable: false, sidBits: 6 },
    );

  it('attach writes CD and STE; DMA reaches the guest pages; after unmap the page faults with an F_TRANSLATION event', () => {
    const { unit, drv } = make();
    const sid = twoLevel ? SID : 5;
    if (ats) unit.addAtsDevice(sid);
    const attachCmds = queued(unit, drv, () => drv.attachDevice(sid, { ats }));
    const expected = [...ATTACH_NEW_DOMAIN];
    if (ats) expected.splice(7, 0, 'ATC_INV', 'CMD_SYNC'); // arm_smmu_enable_ats
    if (ats) expected.push('ATC_INV', 'CMD_SYNC'); // and the flush's ATC part
    expect(names(attachCmds)).toEqual(expected);
    expect(attachCmds.filter((c) => c.name === 'CMD_SYNC').every((c) => c.msiDone === msi)).toBe(true);
    const info = drv.domain(sid);
    expect(info.asid).toBe(1);
    const ste = steOf(unit, drv, sid);
    expect(ste).toMatchObject({
      valid: true,
      config: STE_CONFIG.S1,
      s1ContextPtr: info.cdTable,
      s1CdMax: 0,
      s1Dss: 2,
      s1Cir: 1,
      s1Cor: 1,
      s1Csh: 3,
      eats: ats ? 1 : 0,
    });
    const cd = decodeCd(unit.guest.i32, info.cdTable / 4, new Cd());
    expect(cd).toMatchObject({
      valid: true,
      t0sz: 16,
      tg0: 0,
      epd0: false,
      epd1: true,
      ips: 5, // 48-bit OAS
      aa64: true,
      r: true,
      a: true,
      aset: true,
      asid: 1,
      ttb0: info.ttb0,
      mair0: 0xf404ff44,
    });

    const iova = 0x40_0000;
    const gpas = [dataPage(unit, drv, 0xa1), dataPage(unit, drv, 0xa2), dataPage(unit, drv, 0xa3)];
    const mapCmds = queued(unit, drv, () => gpas.forEach((g, i) => drv.map(sid, iova + i * PAGE, g, PAGE, R | W)));
    expect(mapCmds).toEqual([]); // SMMUv3 caches no invalid entry: maps are silent
    for (let i = 0; i < 3; i++) {
      expect(unit.dmaRead({ sid }, iova + i * PAGE + 8, 4)).toEqual(new Uint8Array(4).fill(0xa1 + i));
      expect(unit.dmaRead({ sid }, iova + i * PAGE + 8, 4)).toEqual(new Uint8Array(4).fill(0xa1 + i)); // cached
    }
    unit.dmaWrite({ sid }, iova + PAGE + 100, new Uint8Array([1, 2, 3]));
    expect([...unit.guest.u8.subarray(gpas[1]! + 100, gpas[1]! + 103)]).toEqual([1, 2, 3]);
    if (ats) expect(unit.stats().atcHits).toBeGreaterThan(0);

    const cmds = queued(unit, drv, () => expect(drv.unmap(sid, iova + PAGE, PAGE)).toBe(PAGE));
    expect(names(cmds)).toEqual(ats ? ['TLBI_NH_VA', 'CMD_SYNC', 'ATC_INV', 'CMD_SYNC'] : ['TLBI_NH_VA', 'CMD_SYNC']);
    const tlbi = cmds[0]!;
    expect([tlbi.get('asid'), tlbi.get('vmid'), tlbi.get('addr'), tlbi.get('leaf')]).toEqual([1, 0, iova + PAGE, 1]);
    // With RIL: TG 4 KiB, TTL 3, one page (NUM 0, SCALE 0), as the trace's "tg=1 num_pages=0x1 ttl=3".
    expect([tlbi.get('tg'), tlbi.get('ttl'), tlbi.get('num'), tlbi.get('scale')]).toEqual(
      ril ? [Tg.K4, 3, 0, 0] : [0, 0, 0, 0],
    );
    if (ats) expect([cmds[2]!.get('sid'), cmds[2]!.get('addr'), cmds[2]!.get('size')]).toEqual([sid, iova + PAGE, 0]);

    expect(faults(() => unit.dmaRead({ sid }, iova + PAGE + 16, 4))).toBe(true);
    expect(faults(() => unit.dmaWrite({ sid }, iova + PAGE, new Uint8Array(1)))).toBe(true);
    const events = drv.readEvents();
    expect(events.map((e) => [e.type, e.sid, e.inputAddress, e.read])).toEqual([
      [EVT_ID.F_TRANSLATION, sid, iova + PAGE + 16, true],
      [EVT_ID.F_TRANSLATION, sid, iova + PAGE, false],
    ]);
    expect(reg32(unit, SMMU_PAGE1_REG.EVTQ_CONS)).toBe(reg32(unit, SMMU_PAGE1_REG.EVTQ_PROD));
    // The neighbours are untouched.
    expect(unit.dmaRead({ sid }, iova, 1)[0]).toBe(0xa1);
    expect(unit.dmaRead({ sid }, iova + 2 * PAGE, 1)[0]).toBe(0xa3);
    expect(drv.stats()).toMatchObject({ cmdqErrors: 0, gerrors: 0, events: 2 });
    expect(unit.stats().cmdq).toMatchObject({ errIll: 0 });
  });
});

describe('domains', () => {
  it('devices in one domain share its table and ASID; a new domain gets the next ASID', () => {
    const { unit, drv } = setup();
    expect(names(queued(unit, drv, () => drv.attachDevice(SID, { domain: 7 })))).toEqual(ATTACH_NEW_DOMAIN);
    // Joining a live domain: no CD write, the STE and the core's flush only.
    expect(names(queued(unit, drv, () => drv.attachDevice(SID2, { domain: 7 })))).toEqual(ATTACH_NEW_DOMAIN.slice(2));
    expect(drv.domain({ domain: 7 })).toMatchObject({ id: 7, asid: 1, devices: [SID, SID2] });
    expect(steOf(unit, drv, SID2).s1ContextPtr).toBe(steOf(unit, drv, SID).s1ContextPtr);
    const gpa = dataPage(unit, drv, 0x77);
    drv.map({ domain: 7 }, 0x8000, gpa, PAGE, R);
    expect(unit.dmaRead({ sid: SID }, 0x8000, 1)[0]).toBe(0x77);
    expect(unit.dmaRead({ sid: SID2 }, 0x8000, 1)[0]).toBe(0x77);
    drv.unmap(SID, 0x8000, PAGE);
    expect(faults(() => unit.dmaRead({ sid: SID2 }, 0x8000, 1))).toBe(true);

    expect(drv.attachDevice(0x20)).toBe(1); // the lowest free domain id
    expect(drv.domain(0x20)).toMatchObject({ id: 1, asid: 2, devices: [0x20] });
    expect(drv.attachDevice(0x28, { asid: 9 })).toBe(drv.domain(0x28).id);
    expect(drv.domain(0x28).asid).toBe(9);
    expect(() => drv.attachDevice(0x30, { asid: 9 })).toThrow(/EBUSY.*ASID 9/);
    expect(() => drv.attachDevice(0x30, { domain: 7, asid: 3 })).toThrow(/EINVAL.*ASID 1/);
    expect(() => drv.attachDevice(0x30, { asid: 256 * 256 })).toThrow(/EINVAL/);
    expect(() => drv.map({ domain: 99 }, 0, gpa, PAGE, R)).toThrow(/ENOENT/);
    expect(() => drv.map(0x38, 0, gpa, PAGE, R)).toThrow(/ENODEV/);
    expect(drv.attachDevice(SID, { domain: 7 })).toBe(7); // again: a no-op
  });

  it('detach writes an abort STE (CFGI_STE + SYNC) and frees the emptied domain after flushing its ASID', () => {
    const { unit, drv } = setup();
    drv.addDevice(SID);
    const inUse0 = drv.frames.inUse;
    drv.attachDevice(SID);
    const gpa = dataPage(unit, drv, 0x42);
    drv.map(SID, 0x20_0000, gpa, PAGE, R);
    expect(unit.dmaRead({ sid: SID }, 0x20_0000, 1)[0]).toBe(0x42);
    const cmds = queued(unit, drv, () => drv.detachDevice(SID));
    expect(names(cmds)).toEqual(['CFGI_STE', 'CMD_SYNC', 'TLBI_NH_ASID', 'CMD_SYNC']);
    expect([cmds[0]!.get('sid'), cmds[0]!.get('leaf'), cmds[2]!.get('asid')]).toEqual([SID, 1, 1]);
    expect(steOf(unit, drv, SID)).toMatchObject({ valid: true, config: STE_CONFIG.Abort, shCfg: 1 });
    expect(faults(() => unit.dmaRead({ sid: SID }, 0x20_0000, 1))).toBe(true);
    expect(drv.readEvents()).toEqual([]);
    expect(drv.frames.inUse).toBe(inUse0 + 1); // the data page only: tables and CD table are back
    expect(() => drv.detachDevice(SID)).toThrow(/ENODEV/);
    drv.attachDevice(SID);
    expect(drv.domain(SID).asid).toBe(1); // the ASID was freed
  });

  it('re-attaching to another domain detaches first (ATS devices get their ATC invalidated)', () => {
    const { unit, drv } = setup();
    unit.addAtsDevice(SID);
    drv.attachDevice(SID, { domain: 1, ats: true });
    const cmds = queued(unit, drv, () => drv.attachDevice(SID, { domain: 2 }));
    expect(names(cmds).slice(0, 6)).toEqual([
      'ATC_INV',
      'CMD_SYNC',
      'CFGI_STE',
      'CMD_SYNC',
      'TLBI_NH_ASID',
      'CMD_SYNC',
    ]);
    expect(cmds[0]!.get('size')).toBe(ATC_INV_SIZE_ALL);
    expect(names(cmds).slice(6)).toEqual(ATTACH_NEW_DOMAIN);
    expect(steOf(unit, drv, SID).eats).toBe(0);
    expect(() => drv.domain({ domain: 1 })).toThrow(/ENOENT/);
    // The unit dropped its cached configuration: DMA goes through the new domain's table.
    drv.map(SID, 0x5000, dataPage(unit, drv, 0x2d), PAGE, R);
    expect(unit.dmaRead({ sid: SID }, 0x5000, 1)[0]).toBe(0x2d);
  });

  it('an ASID reused by a new domain never serves the freed domain translations', () => {
    const { unit, drv } = setup();
    drv.attachDevice(SID);
    drv.map(SID, 0x9000, dataPage(unit, drv, 0x11), PAGE, R);
    expect(unit.dmaRead({ sid: SID }, 0x9000, 1)[0]).toBe(0x11); // cached under ASID 1
    drv.detachDevice(SID);
    drv.attachDevice(SID2);
    expect(drv.domain(SID2).asid).toBe(1);
    drv.map(SID2, 0x9000, dataPage(unit, drv, 0x22), PAGE, R);
    expect(unit.dmaRead({ sid: SID2 }, 0x9000, 1)[0]).toBe(0x22);
  });
});

describe('range invalidation and batching', () => {
  it('tlbiRangeSteps chunks as __arm_smmu_tlb_inv_range: NUM/SCALE from the low bits of the page count', () => {
    expect(tlbiRangeSteps(0, 100 * PAGE)).toEqual([{ addr: 0, num: 24, scale: 2 }]);
    expect(tlbiRangeSteps(0x10000, 1000 * PAGE)).toEqual([
      { addr: 0x10000, num: 28, scale: 3 },
      { addr: 0x10000 + 232 * PAGE, num: 2, scale: 8 },
    ]);
    expect(tlbiTtl(PAGE)).toBe(3);
    expect(tlbiTtl(2 * MIB)).toBe(2);
    expect(tlbiTtl(2 ** 30)).toBe(1);
    fc.assert(
      fc.property(fc.nat(2 ** 24), fc.integer({ min: 1, max: 2 ** 26 }), (pfn, pages) => {
        const steps = tlbiRangeSteps(pfn * PAGE, pages * PAGE);
        let at = pfn * PAGE;
        for (const s of steps) {
          expect(s.addr).toBe(at);
          expect(s.num).toBeGreaterThanOrEqual(0);
          expect(s.num).toBeLessThanOrEqual(30);
          at += (s.num + 1) * 2 ** s.scale * PAGE;
        }
        expect(at).toBe((pfn + pages) * PAGE);
        expect(steps.length).toBeLessThanOrEqual(Math.ceil(Math.log2(pages + 1) / 5) + 1);
      }),
    );
  });

  it('atcInvSpan rounds to the naturally aligned power-of-two span (arm_smmu_atc_inv_to_cmd)', () => {
    expect(atcInvSpan(0x40_0000, PAGE)).toEqual({ addr: 0x40_0000, size: 0 });
    expect(atcInvSpan(0x40_0000, 4 * PAGE)).toEqual({ addr: 0x40_0000, size: 2 });
    expect(atcInvSpan(0x3f_f000, 2 * PAGE)).toEqual({ addr: 0, size: 11 }); // straddles 4 MiB: one big span
    expect(atcInvSpan(0, 0)).toEqual({ addr: 0, size: ATC_INV_SIZE_ALL });
  });

  /** 1000 pages mapped one by one (no blocks), with a kept neighbour in each of their two leaf tables. */
  function thousandPages(r: Rig): number {
    const { unit, drv } = r;
    drv.attachDevice(SID);
    const base = 0x1000_0000 + 8 * PAGE;
    const gpa = dataPage(unit, drv, 0x3c);
    drv.map(SID, base - PAGE, gpa, PAGE, R);
    drv.map(SID, base + 1000 * PAGE, gpa, PAGE, R);
    for (let i = 0; i < 1000; i++) drv.map(SID, base + i * PAGE, gpa, PAGE, R);
    for (let i = 0; i < 1000; i += 37) expect(unit.translate({ sid: SID }, base + i * PAGE, R)).toBeGreaterThan(0);
    return base;
  }

  for (const msi of [true, false]) {
    it(`without RIL a 1000-page unmap is 1000 leaf TLBI_NH_VA in 16 insertions and exactly one sync (MSI ${msi})`, () => {
      const r = setup({ ril: false, msi });
      const { unit, drv, writes } = r;
      const base = thousandPages(r);
      const s0 = drv.stats();
      const w0 = writes.length;
      expect(drv.unmap(SID, base, 1000 * PAGE)).toBe(1000 * PAGE);
      const s1 = drv.stats();
      const prodWrites = writes.slice(w0).filter(([o]) => o === SMMU_REG.CMDQ_PROD);
      expect(prodWrites.length).toBe(Math.ceil(1000 / 64));
      expect(s1.submissions - s0.submissions).toBe(16);
      expect(s1.syncs - s0.syncs).toBe(1);
      expect(s1.batches - s0.batches).toBe(1);
      expect(s1.fullBatches - s0.fullBatches).toBe(15);
      expect(s1.commands['TLBI_NH_VA']! - (s0.commands['TLBI_NH_VA'] ?? 0)).toBe(1000);
      // The 256-entry queue fills after four batches without a sync: CONS is re-read from the unit.
      expect(s1.consRefreshes - s0.consRefreshes).toBeGreaterThanOrEqual(3);
      // The last insertion: 40 leaf TLBIs for the last 40 pages, then the sync.
      const q = drv.queue;
      const tail = Array.from({ length: 41 }, (_, k) => decodeSlot(unit, drv, (q.prod - 41 + k) & (2 * q.entries - 1)));
      expect(names(tail)).toEqual([...Array<string>(40).fill('TLBI_NH_VA'), 'CMD_SYNC']);
      expect(tail.slice(0, 40).map((c) => [c.get('addr'), c.get('leaf')])).toEqual(
        Array.from({ length: 40 }, (_, k) => [base + (960 + k) * PAGE, 1]),
      );
      for (let i = 0; i < 1000; i += 37) expect(unit.translate({ sid: SID }, base + i * PAGE, R)).toBeLessThan(0);
      expect(unit.translate({ sid: SID }, base + 1000 * PAGE, R)).toBeGreaterThan(0);
    });
  }

  it('with RIL the same unmap is two range commands and one sync, in one insertion', () => {
    const r = setup({ ril: true });
    const { unit, drv } = r;
    const base = thousandPages(r);
    const s0 = drv.stats();
    const cmds = queued(unit, drv, () => drv.unmap(SID, base, 1000 * PAGE));
    expect(names(cmds)).toEqual(['TLBI_NH_VA', 'TLBI_NH_VA', 'CMD_SYNC']);
    expect(
      cmds.slice(0, 2).map((c) => [c.get('addr'), c.get('num'), c.get('scale'), c.get('tg'), c.get('ttl')]),
    ).toEqual([
      [base, 28, 3, Tg.K4, 3],
      [base + 232 * PAGE, 2, 8, Tg.K4, 3],
    ]);
    expect(drv.stats().submissions - s0.submissions).toBe(1);
    for (let i = 0; i < 1000; i += 37) expect(unit.translate({ sid: SID }, base + i * PAGE, R)).toBeLessThan(0);
  });

  it('a 128-entry queue: a 1000-page unmap re-reads CMDQ_CONS whenever the shadow CONS says full', () => {
    const r = setup({ ril: false }, { cmdqBits: 7 });
    const { unit, drv } = r;
    expect(drv.queue.entries).toBe(128);
    const base = thousandPages(r);
    const s0 = drv.stats();
    drv.unmap(SID, base, 1000 * PAGE);
    const s1 = drv.stats();
    expect(s1.submissions - s0.submissions).toBe(16);
    expect(s1.consRefreshes - s0.consRefreshes).toBeGreaterThanOrEqual(7);
    expect(reg32(unit, SMMU_REG.CMDQ_CONS) & 0xff).toBe(drv.queue.prod);
    for (let i = 0; i < 1000; i += 37) expect(unit.translate({ sid: SID }, base + i * PAGE, R)).toBeLessThan(0);
  });

  it('the space check counts the sync: n commands and their sync need n + 1 free slots', () => {
    const { unit, drv } = setup({}, { cmdqBits: 7 });
    drv.addDevice(SID);
    const prefetches = (n: number): Uint32Array => {
      const cmds = new Uint32Array(4 * n);
      for (let i = 0; i < n; i++) encodeCommand(Opcode.PrefetchConfig, { sid: SID }, cmds, 4 * i);
      return cmds;
    };
    // 126 commands without a sync: the shadow CONS stays behind, two slots look free.
    drv.submitRaw(prefetches(64), { sync: false });
    drv.submitRaw(prefetches(62), { sync: false });
    const r0 = drv.stats().consRefreshes;
    drv.submitRaw(prefetches(1)); // 1 + sync = 2: fits without asking the unit
    expect(drv.stats().consRefreshes).toBe(r0);
    drv.submitRaw(prefetches(64), { sync: false });
    drv.submitRaw(prefetches(63), { sync: false }); // 127 behind the shadow CONS: one slot looks free
    drv.submitRaw(prefetches(1)); // 1 + sync = 2 > 1: CMDQ_CONS is read first
    expect(drv.stats().consRefreshes).toBe(r0 + 1);
    expect(reg32(unit, SMMU_REG.CMDQ_CONS) & 0xff).toBe(drv.queue.prod);
    expect(drv.stats().commands['PREFETCH_CONFIG']).toBe(255);
    expect(() => drv.submitRaw(prefetches(128))).toThrow(/EINVAL.*128 commands/);
  });

  it('2 MiB blocks are invalidated with their granule (TTL 2 with RIL, one command per block without)', () => {
    for (const ril of [true, false]) {
      const { unit, drv } = setup({ ril });
      drv.attachDevice(SID);
      const run = drv.frames.allocContiguous(1024);
      const gpa = Math.ceil(run / 512) * 512 * PAGE; // 2 MiB aligned
      drv.map(SID, 0x4000_0000, gpa, 4 * MIB, R);
      expect(unit.translate({ sid: SID }, 0x4000_0000 + 3 * MIB, R)).toBe(unit.ram.gpaToPa(gpa + 3 * MIB));
      drv.map(SID, 0x4060_0000, gpa, PAGE, R); // keeps the level-2 table
      const cmds = queued(unit, drv, () => drv.unmap(SID, 0x4000_0000, 4 * MIB));
      if (ril) {
        expect(names(cmds)).toEqual(['TLBI_NH_VA', 'CMD_SYNC']);
        expect([cmds[0]!.get('ttl'), cmds[0]!.get('num'), cmds[0]!.get('scale')]).toEqual([2, 0, 10]);
      } else {
        expect(names(cmds)).toEqual(['TLBI_NH_VA', 'TLBI_NH_VA', 'CMD_SYNC']);
        expect(cmds.slice(0, 2).map((c) => c.get('addr'))).toEqual([0x4000_0000, 0x4020_0000]);
      }
      expect(unit.translate({ sid: SID }, 0x4000_0000 + 3 * MIB, R)).toBeLessThan(0);
    }
  });

  it('an unmap that frees table pages is invalidated as non-leaf, and the pages are released after it', () => {
    const { unit, drv } = setup();
    drv.attachDevice(SID);
    drv.map(SID, 0x1000, dataPage(unit, drv), PAGE, R); // the first 512 GiB have their tables
    const inUse0 = drv.frames.inUse;
    drv.map(SID, 0x4000_0000, dataPage(unit, drv), PAGE, R); // a new 1 GiB region: two new tables
    expect(drv.frames.inUse - inUse0 - 1).toBe(2);
    const cmds = queued(unit, drv, () => drv.unmap(SID, 0x4000_0000, PAGE));
    expect(names(cmds)).toEqual(['TLBI_NH_VA', 'CMD_SYNC']);
    expect(cmds[0]!.get('leaf')).toBe(0);
    expect(drv.frames.inUse).toBe(inUse0 + 1);
  });
});

describe('lazy policy (flush queue)', () => {
  it('unmap defers the flush: the IOTLB still hits until the drain (TLBI_NH_ASID + SYNC), then the page faults', () => {
    const { unit, drv } = setup({}, { policy: 'lazy' });
    drv.attachDevice(SID);
    const gpa = dataPage(unit, drv, 0x33);
    drv.map(SID, 0x20_0000, gpa, PAGE, R | W);
    expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBe(unit.ram.gpaToPa(gpa)); // fills the IOTLB
    const cmds = queued(unit, drv, () => drv.unmap(SID, 0x20_0000, PAGE));
    expect(cmds).toEqual([]);
    expect(drv.pendingFlushes).toBe(1);
    // Stale but allowed until the drain.
    expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBe(unit.ram.gpaToPa(gpa));
    expect(unit.dmaRead({ sid: SID }, 0x20_0000, 1)[0]).toBe(0x33);
    expect(() => drv.map(SID, 0x20_0000, gpa, PAGE, R)).toThrow(/EBUSY/);
    const drain = queued(unit, drv, () => expect(drv.flushLazy()).toBe(1));
    expect(names(drain)).toEqual(['TLBI_NH_ASID', 'CMD_SYNC']);
    expect(drain[0]!.get('asid')).toBe(1);
    expect(faults(() => unit.dmaRead({ sid: SID }, 0x20_0000, 1))).toBe(true);
    expect(drv.pendingFlushes).toBe(0);
    drv.map(SID, 0x20_0000, gpa, PAGE, R); // the IOVA is free again
    expect(drv.stats()).toMatchObject({ deferredUnmaps: 1, flushQueueDrains: 1 });
  });

  it('a full flush queue is drained before the next entry goes in', () => {
    const { unit, drv } = setup({}, { policy: 'lazy', flushQueueSize: 4 });
    drv.attachDevice(SID);
    const gpa = dataPage(unit, drv, 0x44);
    for (let i = 0; i < 5; i++) {
      drv.map(SID, 0x100_0000 + i * PAGE, gpa, PAGE, R);
      expect(unit.dmaRead({ sid: SID }, 0x100_0000 + i * PAGE, 1)[0]).toBe(0x44);
    }
    for (let i = 0; i < 5; i++) drv.unmap(SID, 0x100_0000 + i * PAGE, PAGE);
    expect(drv.stats().flushQueueDrains).toBe(1);
    expect(drv.pendingFlushes).toBe(1);
    for (let i = 0; i < 4; i++) expect(unit.translate({ sid: SID }, 0x100_0000 + i * PAGE, R)).toBeLessThan(0);
  });

  it('table pages freed by a lazy unmap are released only by the drain', () => {
    const { unit, drv } = setup({}, { policy: 'lazy' });
    drv.attachDevice(SID);
    const gpa = dataPage(unit, drv);
    drv.map(SID, 0x1000, gpa, PAGE, R);
    const inUse0 = drv.frames.inUse;
    drv.map(SID, 0x8000_0000, gpa, PAGE, R);
    drv.unmap(SID, 0x8000_0000, PAGE);
    expect(drv.frames.inUse).toBe(inUse0 + 2);
    drv.flushLazy();
    expect(drv.frames.inUse).toBe(inUse0);
  });

  it('an ATS device gets an ATC_INV of everything after the drain', () => {
    const { unit, drv } = setup({}, { policy: 'lazy' });
    unit.addAtsDevice(SID);
    drv.attachDevice(SID, { ats: true });
    const gpa = dataPage(unit, drv, 0x66);
    drv.map(SID, 0x30_0000, gpa, PAGE, R);
    unit.dmaRead({ sid: SID }, 0x30_0000, 1);
    expect(unit.dmaRead({ sid: SID }, 0x30_0000, 1)[0]).toBe(0x66);
    expect(unit.stats().atcHits).toBeGreaterThan(0);
    drv.unmap(SID, 0x30_0000, PAGE);
    expect(unit.translate({ sid: SID }, 0x30_0000, R)).toBe(unit.ram.gpaToPa(gpa));
    const cmds = queued(unit, drv, () => drv.flushLazy());
    expect(names(cmds)).toEqual(['TLBI_NH_ASID', 'CMD_SYNC', 'ATC_INV', 'CMD_SYNC']);
    expect([cmds[2]!.get('sid'), cmds[2]!.get('size'), cmds[2]!.get('ssv')]).toEqual([SID, ATC_INV_SIZE_ALL, 0]);
    expect(unit.translate({ sid: SID }, 0x30_0000, R)).toBeLessThan(0);
  });
});

describe('command errors (arm_smmu_cmdq_skip_err)', () => {
  for (const msi of [true, false]) {
    it(`an illegal command stops the queue with CERROR_ILL; the next sync recovers it (MSI ${msi})`, () => {
      const { unit, drv } = setup({ msi }, { policy: 'lazy' });
      drv.attachDevice(SID);
      const gpa = dataPage(unit, drv, 0x77);
      drv.map(SID, 0x20_0000, gpa, 2 * PAGE, R);
      unit.translate({ sid: SID }, 0x20_0000, R);
      unit.translate({ sid: SID }, 0x20_1000, R);
      drv.unmap(SID, 0x20_0000, 2 * PAGE); // lazy: both still cached
      // A valid one-page range TLBI, then the one Linux sent before eb6c97647be2 (TG set, NUM =
      // SCALE = TTL = 0: Reserved, CERROR_ILL), queued without a sync.
      const raw = new Uint32Array(8);
      encodeCommand(Opcode.TlbiNhVa, { asid: 1, addr: 0x20_0000, tg: Tg.K4, ttl: 3, leaf: 1 }, raw, 0);
      encodeCommand(Opcode.TlbiNhVa, { asid: 1, addr: 0x20_1000, tg: Tg.K4 }, raw, 4);
      const bad = (drv.queue.prod + 1) & (2 * drv.queue.entries - 1);
      drv.submitRaw(raw, { sync: false });
      expect((reg32(unit, SMMU_REG.GERROR) ^ reg32(unit, SMMU_REG.GERRORN)) & GERROR.CMDQ_ERR).toBe(GERROR.CMDQ_ERR);
      const cons = reg32(unit, SMMU_REG.CMDQ_CONS);
      expect((cons >>> CMDQ_CONS.ErrShift) & CMDQ_CONS.ErrMask).toBe(CERROR_ILL);
      expect(cons & (2 * drv.queue.entries - 1)).toBe(bad);
      expect(unit.translate({ sid: SID }, 0x20_0000, R)).toBeLessThan(0); // the command before it ran
      expect(unit.translate({ sid: SID }, 0x20_1000, R)).toBeGreaterThan(0); // still stale

      // The drain's sync does not complete; the GERROR handler turns the bad command into a
      // CMD_SYNC, acknowledges GERROR, and the queue runs on.
      expect(drv.flushLazy()).toBe(1);
      expect(drv.stats()).toMatchObject({ cmdqErrors: 1, gerrors: 1 });
      expect(drv.stats().syncPolls).toBeGreaterThan(0);
      expect(drv.queue.lastError).toMatchObject({ code: CERROR_ILL, index: bad });
      expect(drv.queue.lastError!.command[0]! & 0xff).toBe(Opcode.TlbiNhVa);
      expect(decodeSlot(unit, drv, bad).name).toBe('CMD_SYNC');
      expect(reg32(unit, SMMU_REG.GERROR) ^ reg32(unit, SMMU_REG.GERRORN)).toBe(0);
      expect(reg32(unit, SMMU_REG.CMDQ_CONS) & (2 * drv.queue.entries - 1)).toBe(drv.queue.prod);
      expect(unit.translate({ sid: SID }, 0x20_1000, R)).toBeLessThan(0);
      // Later syncs complete at once.
      const polls = drv.stats().syncPolls;
      drv.sync();
      drv.map(SID, 0x20_0000, gpa, PAGE, R);
      expect(unit.dmaRead({ sid: SID }, 0x20_0000, 1)[0]).toBe(0x77);
      expect(drv.stats()).toMatchObject({ cmdqErrors: 1, syncPolls: polls });
    });
  }

  it('submitRaw with its sync returns once an unknown opcode was skipped', () => {
    const { unit, drv } = setup();
    const raw = new Uint32Array([0x7f, 0, 0, 0]);
    const cmds = queued(unit, drv, () => drv.submitRaw(raw));
    expect(names(cmds)).toEqual(['CMD_SYNC', 'CMD_SYNC']); // the bad slot became a sync
    expect(cmds[0]!.get('cs')).toBe(SyncCs.None);
    expect(cmds[1]!.msiDone).toBe(true);
    expect(drv.queue.lastError?.code).toBe(CERROR_ILL);
    expect(unit.stats().cmdq.errIll).toBe(1);
    expect(() => drv.submitRaw(new Uint32Array(3))).toThrow(/EINVAL/);
  });

  it('a failed ATC invalidation stops its sync with CERROR_ATC_INV_SYNC; the sync is retried', () => {
    const { unit, drv } = setup();
    unit.addAtsDevice(SID);
    drv.attachDevice(SID, { ats: true });
    drv.map(SID, 0x40_0000, dataPage(unit, drv, 1), PAGE, R);
    unit.dmaRead({ sid: SID }, 0x40_0000, 1);
    unit.injectAtcInvError(SID);
    expect(drv.unmap(SID, 0x40_0000, PAGE)).toBe(PAGE);
    expect(drv.queue.lastError?.code).toBe(CERROR_ATC_INV_SYNC);
    expect(drv.stats()).toMatchObject({ cmdqErrors: 1, gerrors: 1 });
    expect(unit.translate({ sid: SID }, 0x40_0000, R)).toBeLessThan(0);
    drv.sync();
  });

  it('a sync that never completes is reported after the poll limit (EIO, with PROD and CONS)', () => {
    for (const msi of [true, false]) {
      const { unit, drv } = setup({ msi }, { pollLimit: 5 });
      // Command processing off behind the driver's back: the doorbell is ignored.
      unit.mmioWrite(SMMU_REG.CR0, CR0.SMMUEN | CR0.EVTQEN, 4);
      expect(() => drv.sync()).toThrow(/EIO: CMD_SYNC timeout at 0x6 \[hwprod 0x7, hwcons 0x6\] after 5 polls/);
    }
  });
});

describe('event queue (arm_smmu_evtq_thread)', () => {
  it('an overflow is noticed, acknowledged through CONS.OVACKFLG, and later events are read again', () => {
    const { unit, drv, writes } = setup({}, { evtqBits: 1 });
    expect(drv.eventQueue.entries).toBe(2);
    drv.attachDevice(SID);
    for (let i = 0; i < 5; i++) expect(faults(() => unit.dmaRead({ sid: SID }, 0x70_0000 + i * PAGE, 4))).toBe(true);
    expect(unit.stats().events).toMatchObject({ written: 2, overflows: 3 });
    const prod = reg32(unit, SMMU_PAGE1_REG.EVTQ_PROD);
    expect(prod & Q_INDEX.OVF).not.toBe(0); // OVFLG toggled
    const w0 = writes.length;
    const events = drv.readEvents();
    // CONS is written after each record, then once more to acknowledge the overflow.
    expect(writes.slice(w0).filter(([o]) => o === SMMU_PAGE1_REG.EVTQ_CONS).length).toBe(3);
    expect(events.map((e) => [e.type, e.inputAddress])).toEqual([
      [EVT_ID.F_TRANSLATION, 0x70_0000],
      [EVT_ID.F_TRANSLATION, 0x70_1000],
    ]);
    expect(drv.stats()).toMatchObject({ events: 2, eventOverflows: 1 });
    const cons = reg32(unit, SMMU_PAGE1_REG.EVTQ_CONS);
    expect(cons & Q_INDEX.OVF).toBe(prod & Q_INDEX.OVF); // acknowledged
    expect((cons ^ prod) & 3).toBe(0);
    expect(drv.readEvents()).toEqual([]);
    expect(faults(() => unit.dmaRead({ sid: SID }, 0x80_0000, 4))).toBe(true);
    expect(drv.readEvents().map((e) => e.inputAddress)).toEqual([0x80_0000]);
    expect(drv.stats().eventOverflows).toBe(1);
  });

  it('records wrap around the ring in order', () => {
    const { unit, drv } = setup({}, { evtqBits: 2 });
    drv.attachDevice(SID);
    const seen: (number | bigint)[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) faults(() => unit.dmaRead({ sid: SID }, (round * 3 + i + 1) * PAGE, 1));
      seen.push(...drv.readEvents().map((e) => e.inputAddress));
    }
    expect(seen).toEqual(Array.from({ length: 15 }, (_, k) => (k + 1) * PAGE));
    expect(drv.stats().eventOverflows).toBe(0);
  });
});

describe('random map / unmap / DMA sequences (strict) agree with a page model', () => {
  for (const ril of [true, false]) {
    it(`RIL ${ril}`, () => {
      const { unit, drv } = setup({ ril });
      drv.attachDevice(SID);
      const PAGES = 48;
      const base = 0x20_0000 - 16 * PAGE; // the window straddles a 2 MiB table boundary
      const data = Array.from({ length: 16 }, () => dataPage(unit, drv));
      const op = fc.oneof(
        fc.record({
          k: fc.constant('map' as const),
          at: fc.nat(PAGES - 1),
          n: fc.integer({ min: 1, max: 20 }),
          d: fc.nat(15),
        }),
        fc.record({ k: fc.constant('unmap' as const), at: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 20 }) }),
        fc.record({ k: fc.constant('dma' as const), at: fc.nat(PAGES - 1), write: fc.boolean() }),
        // A read of every page: fills the IOTLB, so a later unmap must invalidate all of it.
        fc.record({ k: fc.constant('sweep' as const) }),
      );
      let stamp = 0;
      const model = new Map<number, number>(); // page → GPA
      const dma = (page: number, write: boolean): void => {
        const iova = base + page * PAGE + 64;
        const gpa = model.get(page);
        const v = ++stamp & 0xff;
        if (gpa === undefined) {
          const access = write
            ? () => unit.dmaWrite({ sid: SID }, iova, new Uint8Array([v]))
            : () => unit.dmaRead({ sid: SID }, iova, 1);
          expect(faults(access)).toBe(true);
          expect(drv.readEvents().map((e) => [e.type, e.inputAddress, e.read])).toEqual([
            [EVT_ID.F_TRANSLATION, iova, !write],
          ]);
        } else if (write) {
          unit.dmaWrite({ sid: SID }, iova, new Uint8Array([v]));
          expect(unit.guest.u8[gpa + 64]).toBe(v);
        } else {
          unit.guest.u8[gpa + 64] = v;
          expect(unit.dmaRead({ sid: SID }, iova, 1)[0]).toBe(v);
        }
      };
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
          drv.unmap(SID, base, PAGES * PAGE);
          drv.readEvents();
          model.clear();
          for (const o of ops) {
            if (o.k === 'map') {
              const n = Math.min(o.n, PAGES - o.at);
              let free = true;
              for (let p = o.at; p < o.at + n; p++) free &&= !model.has(p);
              if (!free) {
                expect(() => drv.map(SID, base + o.at * PAGE, data[o.d]!, PAGE * n, R | W)).toThrow(/EEXIST/);
                continue;
              }
              for (let p = 0; p < n; p++) {
                const gpa = data[(o.d + p) % 16]!;
                drv.map(SID, base + (o.at + p) * PAGE, gpa, PAGE, R | W);
                model.set(o.at + p, gpa);
              }
            } else if (o.k === 'unmap') {
              const n = Math.min(o.n, PAGES - o.at);
              let mapped = 0;
              for (let p = o.at; p < o.at + n; p++) if (model.delete(p)) mapped += PAGE;
              expect(drv.unmap(SID, base + o.at * PAGE, n * PAGE)).toBe(mapped);
            } else if (o.k === 'dma') {
              dma(o.at, o.write);
            } else {
              for (let p = 0; p < PAGES; p++) dma(p, false);
            }
          }
        }),
        { numRuns: 40 },
      );
      expect(drv.stats()).toMatchObject({ cmdqErrors: 0, eventOverflows: 0 });
    });
  }
});

describe('argument checks', () => {
  it('ranges, addresses and prot are checked with the documented errno', () => {
    const { unit, drv } = setup();
    drv.attachDevice(SID);
    const gpa = dataPage(unit, drv);
    expect(() => drv.map(SID, 0x1001, gpa, PAGE, R)).toThrow(/EINVAL/);
    expect(() => drv.map(SID, 2 ** 48 - PAGE, gpa, 2 * PAGE, R)).toThrow(/EINVAL/);
    expect(() => drv.map(SID, 0, gpa + 1, PAGE, R)).toThrow(/EINVAL/);
    expect(() => drv.map(SID, 0, gpa, PAGE, 4)).toThrow(/EINVAL/);
    drv.map(SID, 0, gpa, PAGE, R);
    expect(() => drv.map(SID, 0, gpa, PAGE, R)).toThrow(/EEXIST/);
    expect(drv.unmap(SID, PAGE, PAGE)).toBe(0);
    expect(() => drv.attachDevice(2 ** 16)).toThrow(/EINVAL/);
    expect(() => drv.attachDevice(SID, { domain: 0 })).toThrow(/EINVAL/);
    expect(() => new SmmuGuestDriver(unit, { pollLimit: 0 })).toThrow(/EINVAL/);
  });
});
