// The replay on the QEMU-style baseline (replayTrace with target 'qemu'): every shared trace
// replays with every line interpreted, no command error and no stale translation, doing the same
// work as on this project's units; the SMMUv3 model empties its IOTLB exactly as often as QEMU
// did in the captured run; and the replay's stale-translation check bites on the baseline too.
import { readdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { QemuSmmuStats } from '../../src/baseline/index.js';
import { replayTrace, type ReplayResult } from '../../src/replay/index.js';

const TRACES = new URL('../../traces/', import.meta.url); // the repository's copies of ../shared/traces
const files = readdirSync(TRACES)
  .filter((f) => f.endsWith('.log') || f.endsWith('.log.xz'))
  .sort();

/** What both targets must agree on. */
function work(r: ReplayResult) {
  return {
    lines: r.lines,
    commands: r.commands,
    doorbells: r.doorbells,
    barriers: r.barriers,
    byKind: r.byKind,
    translations: r.translations,
    setup: r.setup,
  };
}

function replayLines(lines: string[]) {
  return replayTrace(Readable.from([lines.join('\n') + '\n']) as AsyncIterable<string>, { target: 'qemu' });
}

describe('replay on the QEMU-style baseline', () => {
  it('finds the traces', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  for (const name of files) {
    it(`${name}: every line interpreted, no command error, no stale translation, the same work as on ours`, async () => {
      const theirs = await replayTrace(new URL(name, TRACES), { target: 'qemu' });
      expect(theirs.target).toBe('qemu');
      expect(theirs.uninterpreted, JSON.stringify(theirs.byKind.uninterpreted)).toBe(0);
      expect(theirs.commandErrors).toBe(0);
      expect(theirs.translations.faults).toBe(0);
      expect(theirs.translations.mismatches).toBe(0);
      expect(theirs.barriers).toBeGreaterThan(0);
      expect(theirs.baseline).toBeDefined();
      const ours = await replayTrace(new URL(name, TRACES));
      expect(ours.target).toBe('ioasid');
      expect(ours.baseline).toBeUndefined();
      expect(work(theirs)).toEqual(work(ours));
    });
  }

  it('smmu-strict-xlate: the model empties its 256-entry IOTLB as often as QEMU 7.2 did (its internal smmu_iotlb_inv_all lines)', async () => {
    const r = await replayTrace(new URL('smmu-strict-xlate.clean.log.xz', TRACES), { target: 'qemu' });
    const s = r.baseline as QemuSmmuStats;
    const qemuFlushes = r.byKind.skipped['qemu-internal:smmu_iotlb_inv_all'];
    expect(qemuFlushes).toBe(80);
    expect(s.iotlb.capacityFlushes).toBe(qemuFlushes);
    // And it decodes a device's configuration as often as QEMU did (smmuv3_decode_cd).
    expect(s.config.misses).toBe(r.byKind.skipped['qemu-internal:smmuv3_decode_cd']);
    expect(s.iotlb.hits + s.iotlb.misses).toBe(r.translations.total);
  });

  describe('hand-written traces', () => {
    const consume = '1.0:smmuv3_cmdq_consume prod=2 cons=0 prod.wrap=0 cons.wrap=0';
    const out = '1.0:smmuv3_cmdq_consume_out prod:2, cons:2, prod_wrap:0, cons_wrap:0 ';
    const cmd = (name: string, ...details: string[]) => [
      consume,
      `1.0:smmuv3_cmdq_opcode <--- SMMU_CMD_${name}`,
      ...details,
    ];
    const sync = cmd('SYNC');
    const attach = [
      ...cmd('CFGI_STE', '1.0:smmuv3_cmdq_cfgi_ste streamid= 0x8'),
      ...sync,
      out,
      ...cmd('TLBI_NH_ASID', '1.0:smmuv3_cmdq_tlbi_nh_asid asid=1'),
      ...sync,
      out,
    ];
    const xlate = (iova: number, pa: number) =>
      `1.0:smmuv3_translate_success smmuv3-iommu-memory-region-8-1 sid=0x8 iova=0x${iova.toString(16)} translated=0x${pa.toString(16)} perm=0x3`;
    const range = (addr: number, pages: number) =>
      `1.0:smmuv3_s1_range_inval vmid=0 asid=1 addr=0x${addr.toString(16)} tg=1 num_pages=0x${pages.toString(16)} ttl=3 leaf=1`;

    it('a range TLBI_NH_VA takes both ends of the range out of the QEMU-style IOTLB', async () => {
      const base = 0xffa4_0000;
      const last = base + 33 * 4096;
      const r = await replayLines([
        ...attach,
        xlate(base, 0x4000_1000),
        xlate(last + 0x10, 0x4000_2010),
        ...cmd('TLBI_NH_VA', range(base, 0x20), range(base + 0x20 * 4096, 0x2)),
        ...sync,
        out,
        xlate(base, 0x4100_5000),
        xlate(last + 0x10, 0x4100_6010),
      ]);
      expect(r.translations).toEqual({ total: 4, mapped: 4, unmapped: 2, faults: 0, mismatches: 0 });
      // The merged command is split again into 32 + 2 pages, each chunk a full-table scan (the
      // third scan is the attach's TLBI_NH_ASID).
      expect((r.baseline as QemuSmmuStats).iotlb).toMatchObject({ scans: 3, removed: 2 });
    });

    it('negative control: without the invalidation, the QEMU-style IOTLB serves the stale page and the replay catches it', async () => {
      const r = await replayLines([...attach, xlate(0xffff_8000, 0x4000_1000), xlate(0xffff_8000, 0x4100_5000)]);
      expect(r.translations.mismatches).toBe(1);
      expect((r.baseline as QemuSmmuStats).iotlb.hits).toBe(1);
    });

    it('VT-d -xlate: the device learns its DID from the invalidation, on the baseline as on ours', async () => {
      const lines = [
        '1.0:vtd_reg_dmar_root addr 0x1f1b000 scalable 0',
        '1.0:vtd_dmar_translate dev 00:02.00 iova 0xffff8000 -> gpa 0x1234000 mask 0xfff',
        '1.0:vtd_inv_qi_tail write tail 2',
        '1.0:vtd_inv_qi_fetch ',
        '1.0:vtd_inv_qi_head read head 0',
        '1.0:vtd_inv_desc invalidate desc type iotlb high 0xffff8000 low 0x400f2',
        '1.0:vtd_inv_qi_head read head 1',
        '1.0:vtd_inv_desc invalidate desc type wait high 0x10522f4 low 0x200000025',
        '1.0:vtd_dmar_translate dev 00:02.00 iova 0xffff8000 -> gpa 0x5678000 mask 0xfff',
      ];
      const r = await replayLines(lines);
      expect(r.setup.devices).toEqual([{ sid: 0x10, did: 4, learnt: 'invalidation' }]);
      expect(r.translations).toEqual({ total: 2, mapped: 2, unmapped: 1, faults: 0, mismatches: 0 });
      expect(r.commandErrors + r.uninterpreted).toBe(0);
    });
  });

  it('an unknown target is EINVAL', async () => {
    await expect(
      replayTrace(Readable.from(['1.0:guest_console hi\n']) as AsyncIterable<string>, {
        target: 'bochs' as unknown as 'qemu',
      }),
    ).rejects.toThrow(/EINVAL: target must be 'ioasid' or 'qemu', got bochs/);
  });
});
