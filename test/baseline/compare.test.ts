// compareReplay: interleaved rounds on both targets, each checked, with medians, ranges and the
// ours/qemu ratio. No timing assertion: only that the numbers are consistent with each other.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { compareReplay, type CompareRound } from '../../src/replay/index.js';

const LAZY = new URL('../../traces/vtd-nocm-lazy.clean.log', import.meta.url);

describe('compareReplay', () => {
  it('runs warm-up then measured rounds, ours then qemu, and returns consistent medians and a ratio', async () => {
    const seen: CompareRound[] = [];
    const c = await compareReplay(LAZY, { rounds: 3, warmup: 1, onRound: (r) => seen.push(r) });
    expect(seen.map((r) => `${r.warmup ? 'w' : 'm'}${r.round}:${r.target}`)).toEqual([
      'w0:ioasid',
      'w0:qemu',
      'm0:ioasid',
      'm0:qemu',
      'm1:ioasid',
      'm1:qemu',
      'm2:ioasid',
      'm2:qemu',
    ]);
    expect(c.file).toMatch(/vtd-nocm-lazy\.clean\.log$/);
    expect(c).toMatchObject({ vendor: 'vtd', commands: 976, doorbells: 488, barriers: 488, rounds: 3, warmup: 1 });
    expect(c.correct).toBe(true);
    expect(c.sameWork).toBe(true);
    for (const t of [c.ours, c.qemu]) {
      expect(t.roundsMs).toHaveLength(3);
      expect(t.wallMs.min).toBeGreaterThan(0);
      expect(t.wallMs.min).toBeLessThanOrEqual(t.wallMs.median);
      expect(t.wallMs.median).toBeLessThanOrEqual(t.wallMs.max);
      expect(t.commandsPerSecond.min).toBeLessThanOrEqual(t.commandsPerSecond.max);
      expect(t).toMatchObject({ correct: true, commandErrors: 0, translationFaults: 0, translationMismatches: 0 });
    }
    expect(c.ours.target).toBe('ioasid');
    expect(c.qemu.target).toBe('qemu');
    expect(c.qemu.last.baseline).toBeDefined();
    expect(Number.isFinite(c.ratio.median) && c.ratio.median > 0).toBe(true);
    expect(c.ratio.min).toBeLessThanOrEqual(c.ratio.median);
    expect(c.ratio.median).toBeLessThanOrEqual(c.ratio.max);
    // The ratio of each round is ours ÷ qemu in commands per second.
    const perRound = seen
      .filter((r) => !r.warmup && r.target === 'ioasid')
      .map((r, i) => {
        const q = seen.filter((x) => !x.warmup && x.target === 'qemu')[i]!;
        return r.result.throughput.commandsPerSecond / q.result.throughput.commandsPerSecond;
      });
    expect(Math.min(...perRound)).toBeCloseTo(c.ratio.min, 9);
    expect(Math.max(...perRound)).toBeCloseTo(c.ratio.max, 9);
  });

  it('reads a stream once and replays it every round', async () => {
    const text = [
      '1.0:vtd_reg_dmar_root addr 0x1f1b000 scalable 0',
      '1.0:vtd_inv_qi_tail write tail 2',
      '1.0:vtd_inv_qi_fetch ',
      '1.0:vtd_inv_qi_head read head 0',
      '1.0:vtd_inv_desc invalidate desc type wait high 0x10522f4 low 0x200000025',
    ].join('\n');
    const c = await compareReplay(Readable.from([text]) as AsyncIterable<string>, { rounds: 2, warmup: 0 });
    expect(c).toMatchObject({ file: 'stream', commands: 1, barriers: 1, correct: true, sameWork: true });
    expect(c.ours.roundsMs).toHaveLength(2);
  });

  it('rounds and warm-up out of range are EINVAL', async () => {
    await expect(compareReplay(LAZY, { rounds: 0 })).rejects.toThrow(/EINVAL: rounds/);
    await expect(compareReplay(LAZY, { warmup: -1 })).rejects.toThrow(/EINVAL: warmup/);
  });
});
