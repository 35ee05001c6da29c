import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs the CLI from source through tsx, as `ioasid ...` would run from the build. */
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ioasid CLI', () => {
  it('bench runs the built-in workloads and prints one summary line for each', () => {
    const r = cli(
      'bench',
      '--translations',
      '20000',
      '--map-mib',
      '4',
      '--memory-mib',
      '16',
      '--vtd-cycles',
      '500',
      '--smmu-cycles',
      '400',
    );
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^ioasid bench: 20000 DMA translations in [\d.]+ ms = [\d.]+ M\/s \(mock domain, 4 MiB mapped, 1 MiB blocks, 0 faults\)$/,
    );
    expect(lines[1]).toMatch(
      /^ioasid bench \(vtd legacy, strict\): 500 map\/DMA\/unmap cycles in [\d.]+ ms, 1000 descriptors = [\d.]+ M descriptors\/s, unmap\+wait p50 [\d.]+ µs p99 [\d.]+ µs \(0 faults, 0 stale hits\)$/,
    );
    // Strict, one page per unmap: a TLBI_NH_VA and a CMD_SYNC per cycle.
    expect(lines[2]).toMatch(
      /^ioasid bench \(smmuv3 strict, 1 page\/unmap, RIL on\): 400 map\/DMA\/unmap cycles in [\d.]+ ms, 800 commands = [\d.]+ M commands\/s, 400 CMD_SYNCs, unmap\+CMD_SYNC p50 [\d.]+ µs p99 [\d.]+ µs \(0 faults, 0 stale hits\)$/,
    );
  });

  it('bench --workload smmu runs the SMMUv3 guest-driver workload alone: lazy, ranges without RIL, bad flags', () => {
    const lazy = cli('bench', '--workload', 'smmu', '--smmu-cycles', '600', '--smmu-policy', 'lazy', '--json');
    expect(lazy.status).toBe(0);
    const j = JSON.parse(lazy.stdout) as { smmu: Record<string, number> };
    expect(j.smmu).toMatchObject({ cycles: 600, policy: 'lazy', faults: 0, staleHits: 0 });
    // Two flush-queue drains (256 entries each) and the final flush: TLBI_NH_ASID + CMD_SYNC each.
    expect(j.smmu['syncs']).toBe(3);
    const noRil = cli(
      'bench',
      '--workload',
      'smmu',
      '--smmu-cycles',
      '50',
      '--smmu-pages',
      '100',
      '--smmu-no-ril',
      '--json',
    );
    expect(noRil.status).toBe(0);
    const k = JSON.parse(noRil.stdout) as { smmu: Record<string, number> };
    // One TLBI_NH_VA per page plus one CMD_SYNC per unmap (batches of 64 go out without a sync).
    expect(k.smmu).toMatchObject({ commands: 50 * 101, syncs: 50, staleHits: 0 });
    for (const bad of [
      ['--smmu-policy', 'sometimes'],
      ['--smmu-pages', '0'],
      ['--smmu-cycles', '0'],
    ]) {
      const r = cli('bench', '--workload', 'smmu', ...bad);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('bench --workload vtd runs the VT-d guest-driver workload alone, in either mode and policy', () => {
    for (const [mode, policy] of [
      ['scalable', 'strict'],
      ['legacy', 'lazy'],
    ] as const) {
      const r = cli(
        'bench',
        '--workload',
        'vtd',
        '--vtd-cycles',
        '300',
        '--vtd-mode',
        mode,
        '--vtd-policy',
        policy,
        '--json',
      );
      expect(r.status).toBe(0);
      const j = JSON.parse(r.stdout) as { vtd: Record<string, unknown> };
      expect(j.vtd).toMatchObject({ cycles: 300, mode, policy, faults: 0, staleHits: 0 });
    }
    const bad = cli('bench', '--workload', 'vtd', '--vtd-policy', 'sometimes');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('bench --json prints one JSON object with the measured figures', () => {
    const r = cli(
      'bench',
      '--translations',
      '5000',
      '--map-mib',
      '2',
      '--memory-mib',
      '8',
      '--no-huge-pages',
      '--workload',
      'mock',
      '--json',
    );
    expect(r.status).toBe(0);
    const j = (JSON.parse(r.stdout) as { mock: Record<string, unknown> }).mock;
    expect(j).toMatchObject({ translations: 5000, faults: 0, hugePages: false, mapBytes: 2 * 2 ** 20 });
    expect(j['perSecond']).toBeGreaterThan(0);
  });

  it.each([
    [['bench', '--bogus'], "ioasid: unknown flag '--bogus'"],
    [['bench', '--translations'], "ioasid: flag '--translations' needs a value"],
    [['bench', '--translations', '-5'], "ioasid: flag '--translations' needs a non-negative integer, got '-5'"],
    [
      ['bench', '--map-mib', '300', '--memory-mib', '256'],
      'ioasid: --map-mib must leave at least 1 MiB of --memory-mib for page tables',
    ],
    [['frobnicate'], "ioasid: unknown command 'frobnicate' (try 'ioasid help')"],
  ])('%j is a one-line error with exit status 2', (args, message) => {
    const r = cli(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(message);
  });

  it('help prints the usage and exits 0', () => {
    const r = cli('help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('usage: ioasid <command>');
  });
});
