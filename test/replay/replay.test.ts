// replayTrace on small hand-written traces: doorbells and barriers, range merging, the mapping
// upkeep of -xlate traces (with negative controls that show the checks bite), the VT-d domain
// learnt from an invalidation, untraced slots, counting of lines it cannot interpret, and input
// errors.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { replayTrace, type ReplayOptions } from '../../src/replay/index.js';
import { XZ } from '../../src/replay/xz.js';
import { IommufdError } from '../../src/util/errors.js';

/** A stream of the lines, in chunks cut at odd places (lines straddle chunks). */
function text(lines: string[], chunk = 37): AsyncIterable<string> {
  const all = lines.join('\n') + '\n';
  const parts: string[] = [];
  for (let i = 0; i < all.length; i += chunk) parts.push(all.slice(i, i + chunk));
  return Readable.from(parts) as AsyncIterable<string>;
}

function replay(lines: string[], opts: ReplayOptions = {}) {
  return replayTrace(text(lines), opts);
}

/** One SMMU command: its consume line, opcode line and detail lines. */
function smmuCmd(name: string, ...details: string[]): string[] {
  return [
    '1.0:smmuv3_cmdq_consume prod=2 cons=0 prod.wrap=0 cons.wrap=0',
    `1.0:smmuv3_cmdq_opcode <--- SMMU_CMD_${name}`,
    ...details,
  ];
}
const CONSUME_OUT = '1.0:smmuv3_cmdq_consume_out prod:2, cons:2, prod_wrap:0, cons_wrap:0 ';
const SYNC = smmuCmd('SYNC');
/** Linux's attach of StreamID `sid` to a new domain with `asid`, as the traces show it. */
function smmuAttach(sid: number, asid: number): string[] {
  const ste = smmuCmd('CFGI_STE', `1.0:smmuv3_cmdq_cfgi_ste streamid= 0x${sid.toString(16)}`);
  return [
    ...ste,
    ...SYNC,
    CONSUME_OUT,
    ...smmuCmd('PREFETCH_CONFIG'),
    CONSUME_OUT,
    ...smmuCmd('TLBI_NH_ASID', `1.0:smmuv3_cmdq_tlbi_nh_asid asid=${asid}`),
    ...SYNC,
    CONSUME_OUT,
  ];
}
function xlate(sid: number, iova: number, pa: number, perm = 3): string {
  return `1.0:smmuv3_translate_success smmuv3-iommu-memory-region-${sid}-1 sid=0x${sid.toString(16)} iova=0x${iova.toString(16)} translated=0x${pa.toString(16)} perm=0x${perm}`;
}
function rangeInval(asid: number, addr: number, pages: number): string {
  return `1.0:smmuv3_s1_range_inval vmid=0 asid=${asid} addr=0x${addr.toString(16)} tg=1 num_pages=0x${pages.toString(16)} ttl=3 leaf=1`;
}

describe('SMMUv3 replay', () => {
  it('a doorbell carries the commands between consume_out lines, and a CMD_SYNC is a completed barrier', async () => {
    const r = await replay([
      ...smmuAttach(0x8, 1),
      ...smmuCmd('TLBI_NH_ASID', '1.0:smmuv3_cmdq_tlbi_nh_asid asid=1'),
      ...SYNC,
      CONSUME_OUT,
    ]);
    expect(r.vendor).toBe('smmuv3');
    expect(r.commands).toBe(7);
    expect(r.doorbells).toBe(4);
    expect(r.barriers).toBe(3);
    expect(r.byKind.commands).toEqual({ CFGI_STE: 1, CMD_SYNC: 3, PREFETCH_CONFIG: 1, TLBI_NH_ASID: 2 });
    expect(r.setup.devices).toEqual([{ sid: 0x8, asid: 1, learnt: 'attach' }]);
    expect(r.uninterpreted + r.commandErrors).toBe(0);
  });

  it('a range QEMU split into chunks is one TLBI_NH_VA again, and it unmaps both ends of the range', async () => {
    const base = 0xffa40000;
    const last = base + 33 * 4096;
    const r = await replay([
      ...smmuAttach(0x8, 1),
      xlate(0x8, base, 0x4000_1000),
      xlate(0x8, last + 0x10, 0x4000_2010),
      ...smmuCmd('TLBI_NH_VA', rangeInval(1, base, 0x20), rangeInval(1, base + 0x20 * 4096, 0x2)),
      ...SYNC,
      CONSUME_OUT,
      // The same IOVAs, now mapped to other pages: stale entries would show as mismatches.
      xlate(0x8, base, 0x4100_5000),
      xlate(0x8, last + 0x10, 0x4100_6010),
    ]);
    expect(r.byKind.commands['TLBI_NH_VA']).toBe(1);
    expect(r.translations).toEqual({ total: 4, mapped: 4, unmapped: 2, faults: 0, mismatches: 0 });
    expect(r.uninterpreted + r.commandErrors).toBe(0);
  });

  it('negative control: without the invalidation, a page mapped again elsewhere is inconsistent and its stale translation is caught', async () => {
    const r = await replay([
      ...smmuAttach(0x8, 1),
      xlate(0x8, 0xffff8000, 0x4000_1000),
      xlate(0x8, 0xffff8000, 0x4100_5000),
    ]);
    expect(r.byKind.uninterpreted).toEqual({ 'inconsistent:smmuv3_translate_success': 1 });
    expect(r.translations.mismatches).toBe(1);
  });

  it('a TLBI_NH_ASID unmaps every page of its domain, not the other domain', async () => {
    const r = await replay([
      ...smmuAttach(0x8, 1),
      ...smmuAttach(0x10, 2),
      xlate(0x8, 0xffff8000, 0x4000_1000),
      xlate(0x10, 0xffff8000, 0x4000_3000, 1),
      ...smmuCmd('TLBI_NH_ASID', '1.0:smmuv3_cmdq_tlbi_nh_asid asid=1'),
      ...SYNC,
      CONSUME_OUT,
      xlate(0x8, 0xffff8000, 0x4100_5000),
      xlate(0x10, 0xffff8000, 0x4000_3000, 1),
    ]);
    expect(r.translations).toEqual({ total: 4, mapped: 3, unmapped: 1, faults: 0, mismatches: 0 });
    expect(r.uninterpreted).toBe(0);
  });

  it('a command the unit rejects is a command error, recovered as Linux does, and the SYNC after it still completes', async () => {
    // TG = 4 KiB with NUM = SCALE = TTL = 0 is CERROR_ILL (vendor/smmuv3/commands.ts).
    const r = await replay([
      ...smmuCmd('TLBI_NH_VA', '1.0:smmuv3_s1_range_inval vmid=0 asid=1 addr=0x1000 tg=1 num_pages=0x1 ttl=0 leaf=0'),
      ...SYNC,
      CONSUME_OUT,
    ]);
    expect([r.commands, r.doorbells, r.barriers, r.commandErrors]).toEqual([2, 1, 1, 1]);
  });

  it('a translation from a StreamID never attached gets the lowest free ASID', async () => {
    const r = await replay([...smmuAttach(0x8, 1), xlate(0x20, 0x1000, 0x4000_0000)]);
    expect(r.setup.devices.at(-1)).toEqual({ sid: 0x20, asid: 2, learnt: 'first-translation' });
    expect(r.translations.faults).toBe(0);
  });

  it("QEMU's own IOTLB flush is skipped; the one of TLBI_NSNH_ALL is the command's", async () => {
    const r = await replay([
      '1.0:smmu_iotlb_inv_all IOTLB invalidate all',
      ...smmuCmd('TLBI_NSNH_ALL', '1.0:smmuv3_cmdq_tlbi_nh ', '1.0:smmu_iotlb_inv_all IOTLB invalidate all'),
      ...SYNC,
      CONSUME_OUT,
    ]);
    expect(r.byKind.skipped['qemu-internal:smmu_iotlb_inv_all']).toBe(1);
    expect(r.byKind.skipped['decoded:smmu_iotlb_inv_all']).toBe(1);
    expect(r.byKind.commands).toEqual({ CMD_SYNC: 1, TLBI_NSNH_ALL: 1 });
  });

  it('commands whose fields the trace lacks, orphan lines and a range no command can carry are counted, not replayed', async () => {
    const r = await replay([
      ...smmuCmd('ATC_INV', '1.0:smmuv3_unhandled_cmd Unhandled command type=64'),
      rangeInval(1, 0x1000, 1),
      ...smmuCmd('TLBI_NH_VA', rangeInval(1, 0x100000, 0x20), rangeInval(1, 0x200000, 1)),
      ...smmuCmd('TLBI_NH_VA', rangeInval(1, 0x100000, 0x40), rangeInval(1, 0x140000, 0x1)),
      ...SYNC,
      CONSUME_OUT,
    ]);
    expect(r.byKind.uninterpreted).toEqual({
      'inconsistent:smmuv3_s1_range_inval': 1,
      'orphan:smmuv3_s1_range_inval': 1,
      'unencodable:ATC_INV': 1,
      'unencodable:TLBI_NH_VA': 1,
    });
    expect(r.uninterpreted).toBe(4);
    expect(r.byKind.commands).toEqual({ CMD_SYNC: 1, TLBI_NH_VA: 1 });
  });
});

/** VT-d lines: a doorbell of raw descriptors, each with its head line. */
function vtdDoorbell(...descs: [string, string, string][]): string[] {
  const out = ['1.0:vtd_inv_qi_tail write tail 2', '1.0:vtd_inv_qi_fetch '];
  descs.forEach(([type, high, low], i) => {
    out.push(`1.0:vtd_inv_qi_head read head ${i}`);
    out.push(`1.0:vtd_inv_desc invalidate desc type ${type} high ${high} low ${low}`);
  });
  return out;
}
const WAIT: [string, string, string] = ['wait', '0x10522f4', '0x200000025'];
const LEGACY_ROOT = '1.0:vtd_reg_dmar_root addr 0x1f1b000 scalable 0';
function vtdXlate(bdf: string, iova: number, gpa: number): string {
  return `1.0:vtd_dmar_translate dev ${bdf} iova 0x${iova.toString(16)} -> gpa 0x${gpa.toString(16)} mask 0xfff`;
}

describe('VT-d replay', () => {
  it("raw descriptors are rung once per doorbell; the wait completes although its status address was the traced guest's", async () => {
    const r = await replay([
      LEGACY_ROOT,
      '1.0:vtd_inv_qi_tail write tail 0',
      ...vtdDoorbell(['iotlb', '0xffff8000', '0x400f2'], WAIT),
      '1.0:vtd_inv_desc_wait_sw wait invalidate status write addr 0x10522f4 data 0x2',
      ...vtdDoorbell(['iec', '0x0', '0x100000014'], WAIT),
    ]);
    expect(r.vendor).toBe('vtd');
    expect([r.commands, r.doorbells, r.barriers, r.commandErrors, r.uninterpreted]).toEqual([4, 2, 2, 0, 0]);
    expect(r.byKind.commands).toEqual({ iec: 1, iotlb: 1, wait: 2 });
    expect(r.byKind.skipped['empty-doorbell:vtd_inv_qi_tail']).toBe(1);
    expect(r.setup.domainTags).toEqual([4]);
  });

  it('a descriptor the unit rejects is a command error, and the queue goes on', async () => {
    // An IOTLB descriptor with a reserved bit (qw0 bit 8) set.
    const r = await replay([LEGACY_ROOT, ...vtdDoorbell(['iotlb', '0x0', '0x1d2'], WAIT), ...vtdDoorbell(WAIT)]);
    expect(r.commandErrors).toBe(1);
    expect(r.barriers).toBe(2);
  });

  it('a slot QEMU read but did not trace is counted and left out (scalable mode)', async () => {
    const r = await replay([
      '1.0:vtd_reg_dmar_root addr 0x1f1b000 scalable 1',
      '1.0:vtd_inv_qi_tail write tail 2',
      '1.0:vtd_inv_qi_fetch ',
      '1.0:vtd_inv_qi_head read head 0',
      '1.0:vtd_inv_qi_head read head 1',
      '1.0:vtd_inv_desc invalidate desc type wait high 0x10522f4 low 0x200000025',
      // A device-TLB flush after an unmap, as the ATS runs have it.
      ...vtdDoorbell(['device', '0xffff6000', '0x10000000003'], WAIT),
    ]);
    expect(r.setup.scalable).toBe(true);
    expect(r.byKind.skipped['untraced-slot:vtd_inv_qi_head']).toBe(1);
    expect(r.byKind.commands).toEqual({ 'device-tlb': 1, wait: 2 });
    expect([r.commands, r.doorbells, r.barriers, r.commandErrors, r.uninterpreted]).toEqual([3, 2, 2, 0, 0]);
  });

  it('-xlate: a device learns its DID from the first invalidation that covers its mapping, which it then removes', async () => {
    const r = await replay([
      LEGACY_ROOT,
      vtdXlate('00:02.00', 0xffff8000, 0x1234000),
      vtdXlate('00:02.00', 0xffff8010, 0x1234010),
      ...vtdDoorbell(['iotlb', '0xffff8000', '0x400f2'], WAIT),
      vtdXlate('00:02.00', 0xffff8000, 0x5678000),
    ]);
    expect(r.setup.devices).toEqual([{ sid: 0x10, did: 4, learnt: 'invalidation' }]);
    expect(r.setup.setupCommands).toBe(3);
    expect(r.translations).toEqual({ total: 3, mapped: 2, unmapped: 1, faults: 0, mismatches: 0 });
    expect(r.uninterpreted + r.commandErrors).toBe(0);
  });

  it('-xlate negative control: an invalidation of another page leaves the mapping, and the stale translation is caught', async () => {
    const r = await replay([
      LEGACY_ROOT,
      vtdXlate('00:02.00', 0xffff8000, 0x1234000),
      ...vtdDoorbell(['iotlb', '0xffff9000', '0x400f2'], WAIT),
      vtdXlate('00:02.00', 0xffff8000, 0x5678000),
    ]);
    expect(r.setup.devices).toEqual([{ sid: 0x10, did: 0xffff, learnt: 'first-translation' }]);
    expect(r.byKind.uninterpreted).toEqual({ 'inconsistent:vtd_dmar_translate': 1 });
    expect(r.translations.mismatches).toBe(1);
  });
});

describe('lines it cannot interpret', () => {
  it('are counted by kind and never dropped', async () => {
    const r = await replay([
      LEGACY_ROOT,
      'not a trace line',
      '1.0:vtd_something_new x=1',
      '1.0:vtd_inv_qi_tail write tail',
      '1.0:vtd_inv_desc invalidate desc type wait high 0x10522f4 low 0x200000025',
      '1.0:smmuv3_cmdq_tlbi_nh_asid asid=1',
      '',
    ]);
    expect(r.byKind.uninterpreted).toEqual({
      'inconsistent:smmuv3_cmdq_tlbi_nh_asid': 1,
      'malformed:vtd_inv_qi_tail': 1,
      'no-event': 1,
      'orphan:vtd_inv_desc': 1,
      'unknown-event:vtd_something_new': 1,
    });
    expect(r.uninterpreted).toBe(5);
    expect(r.byKind.skipped['blank']).toBe(1);
    expect(r.lines).toBe(7);
  });

  it('a descriptor line whose type name contradicts its type bits is inconsistent', async () => {
    const r = await replay([LEGACY_ROOT, ...vtdDoorbell(['iotlb', '0x10522f4', '0x200000025'])]);
    expect(r.byKind.uninterpreted).toEqual({ 'inconsistent:vtd_inv_desc': 1 });
    expect(r.commands).toBe(0);
  });
});

describe('input', () => {
  const saved = XZ.command;
  afterEach(() => {
    XZ.command = saved;
  });

  it('a missing file is ENOENT with its name', async () => {
    await expect(replayTrace('/nonexistent/trace.log')).rejects.toThrow(
      /ENOENT: cannot read trace \/nonexistent\/trace\.log/,
    );
  });

  it('a trace without any VT-d or SMMUv3 event is refused', async () => {
    await expect(replay(['1.0:guest_console hello'])).rejects.toThrow(/no VT-d or SMMUv3 event/);
  });

  it('without the xz program, a .xz trace fails with one line that says what to install', async () => {
    XZ.command = 'xz-not-installed-here';
    const err = await replayTrace(new URL('../../traces/vtd-nocm-strict.clean.log.xz', import.meta.url)).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(IommufdError);
    expect((err as IommufdError).errno).toBe('EOPNOTSUPP');
    expect((err as Error).message).toMatch(/install xz-utils/);
    expect((err as Error).message).not.toContain('\n');
  });

  it("a corrupt .xz fails with xz's own complaint", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-replay-'));
    const file = join(dir, 'bad.log.xz');
    writeFileSync(file, 'this is not xz data\n');
    await expect(replayTrace(file)).rejects.toThrow(/EIO: cannot decompress .*bad\.log\.xz: xz exited with status 1/);
  });

  it('options out of range are EINVAL', async () => {
    await expect(replay([LEGACY_ROOT], { guestRamBytes: 4096 })).rejects.toThrow(/EINVAL: guestRamBytes/);
    await expect(replay([LEGACY_ROOT], { progressEveryLines: 0 })).rejects.toThrow(/EINVAL: progressEveryLines/);
  });

  it('an abort stops the replay', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(replay([LEGACY_ROOT], { signal: ac.signal })).rejects.toThrow(/aborted/);
  });
});
