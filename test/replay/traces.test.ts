// Every trace replays on the emulated units with every line interpreted and every command
// accepted; the four shipped traces also give the counts their README documents. The traces are
// the repository's copies (traces/, the four of ../shared/traces, so a clean clone has them), and
// any further trace in ../shared/traces when that folder is there.
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { replayTrace, type ReplayProgress, type ReplayResult } from '../../src/replay/index.js';

const OURS = new URL('../../traces/', import.meta.url);
const SHARED = new URL('../../../shared/traces/', import.meta.url);
const traceFiles = (dir: URL): string[] =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.log') || f.endsWith('.log.xz')) : [];
const where = new Map<string, URL>();
for (const f of traceFiles(SHARED)) where.set(f, SHARED);
for (const f of traceFiles(OURS)) where.set(f, OURS);
const files = [...where.keys()].sort();
const TRACES_OF = (name: string): URL => where.get(name)!;

/**
 * traces/README.md's counts: commands (descriptors, or SMMU opcode lines), doorbells (batches
 * with commands), barriers (waits, CMD_SYNCs) and translations.
 */
const DOCUMENTED: Record<string, Partial<Record<'commands' | 'doorbells' | 'barriers' | 'translations', number>>> = {
  'vtd-nocm-strict.clean.log.xz': { commands: 43398, doorbells: 21699, barriers: 21699 },
  'vtd-nocm-lazy.clean.log': { commands: 976, doorbells: 488, barriers: 488 },
  'smmu-lazy.clean.log': { commands: 950, doorbells: 478, barriers: 476 },
  'smmu-strict-xlate.clean.log.xz': { commands: 47467, doorbells: 23735, barriers: 23733, translations: 97431 },
};

describe('replay of the shared traces', () => {
  it('finds the traces', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  for (const name of files) {
    it(`${name}: every line interpreted, no command error, sensible counts`, async () => {
      const progress: ReplayProgress[] = [];
      const r: ReplayResult = await replayTrace(new URL(name, TRACES_OF(name)), {
        onProgress: (p) => progress.push(p),
        progressEveryLines: 1000,
      });
      expect(r.uninterpreted, JSON.stringify(r.byKind.uninterpreted)).toBe(0);
      expect(r.commandErrors).toBe(0);
      expect(r.file).toBe(fileURLToPath(new URL(name, TRACES_OF(name))));
      expect(r.vendor).toBe(name.startsWith('vtd') ? 'vtd' : 'smmuv3');
      expect(r.commands).toBeGreaterThan(0);
      expect(r.doorbells).toBeGreaterThan(0);
      expect(r.barriers).toBeGreaterThan(0);
      expect(r.barriers).toBeLessThanOrEqual(r.commands);
      expect(r.doorbells).toBeLessThanOrEqual(r.commands);
      // Every command is counted by kind, and QEMU's internal IOTLB flushes are skipped by kind.
      expect(Object.values(r.byKind.commands).reduce((a, b) => a + b, 0)).toBe(r.commands);
      const internal = Object.keys(r.byKind.skipped).filter((k) => k.startsWith('qemu-internal:'));
      expect(internal.length).toBeGreaterThan(0);
      // Progress ends at the whole file.
      expect(progress.length).toBeGreaterThan(1);
      expect(progress.at(-1)).toEqual({ lines: r.lines, bytesRead: r.bytes, totalBytes: r.bytes });
      if (name.includes('xlate')) {
        expect(r.translations.total).toBeGreaterThan(0);
        expect(r.translations.faults).toBe(0);
        expect(r.translations.mismatches).toBe(0);
        expect(r.translations.mapped).toBeGreaterThan(0);
        expect(r.translations.unmapped).toBeGreaterThan(0);
        expect(r.setup.devices.length).toBeGreaterThan(0);
      }
      expect(r.throughput.commandsPerSecond).toBeGreaterThan(0);
      const want = DOCUMENTED[name];
      if (want !== undefined) {
        expect({
          commands: r.commands,
          doorbells: r.doorbells,
          barriers: r.barriers,
          ...(want.translations !== undefined ? { translations: r.translations.total } : {}),
        }).toEqual(want);
      }
    });
  }

  it('the SMMUv3 traces attach blk (StreamID 0x8) to ASID 1 and net (0x10) to ASID 2 from their attach commands', async () => {
    const r = await replayTrace(new URL('smmu-lazy.clean.log', OURS));
    expect(r.setup.devices).toEqual([
      { sid: 0x8, asid: 1, learnt: 'attach' },
      { sid: 0x10, asid: 2, learnt: 'attach' },
    ]);
    expect(r.byKind.skipped['qemu-internal:smmu_iotlb_inv_all']).toBe(101);
    expect(r.byKind.skipped['decoded:smmu_iotlb_inv_all']).toBe(1);
  });

  it('the lazy VT-d trace names domains 4 and 5 and has QEMU 7.2 IOTLB resets, skipped', async () => {
    const r = await replayTrace(new URL('vtd-nocm-lazy.clean.log', OURS));
    expect(r.setup.domainTags).toEqual([4, 5]);
    expect(r.byKind.skipped['qemu-internal:vtd_iotlb_reset']).toBe(12);
    expect(r.byKind.commands).toEqual({ 'context-cache': 1, iec: 48, iotlb: 439, wait: 488 });
  });
});
