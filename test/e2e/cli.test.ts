/**
 * The `ioasid` command end to end, through the built CLI (dist/src/cli/main.js, as `npm start`
 * and the package's bin run it): every subcommand's output shape, exit statuses (0, 1 on a failed
 * correctness check, 2 on a bad flag, value or file) and --help. The build is refreshed first
 * when a source file is newer than it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cliPath = join(root, 'dist/src/cli/main.js');
/** The shipped traces, vendored into the repository (a clean clone has no ../shared). */
const traces = join(root, 'traces');
const tmp = mkdtempSync(join(tmpdir(), 'ioasid-cli-'));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with `args`; stdout and stderr are pipes, so neither is a TTY. */
function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { cwd: root, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
      (err, stdout, stderr) => {
        const status = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

/** Newest modification time of the .ts files under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

beforeAll(() => {
  const stale =
    !existsSync(cliPath) ||
    Math.max(newest(join(root, 'src')), newest(join(root, 'workers'))) > statSync(cliPath).mtimeMs;
  if (stale) {
    // tsc writes the build even when another part of the tree has type errors (typecheck reports those).
    spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: root,
      stdio: 'ignore',
    });
  }
  if (!existsSync(cliPath)) throw new Error(`no build at ${cliPath}: run npm run build`);
}, 180_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The fields of a bench --json document that the tests read. */
interface BenchJson {
  tool: string;
  ok: boolean;
  machine: Record<string, unknown>;
  sweep?: { knob: string; values: number[] };
  comparison?: { rows: { point: string; metric: string; verdict: string }[] };
  results: {
    vendor: string;
    scenario: string;
    ok: boolean;
    options: Record<string, unknown>;
    summary: Record<string, { median: number; min: number; max: number }>;
    runs: {
      ops: number;
      wallMs: number;
      commands: number;
      barriers: number;
      doorbells: number;
      barrierLatency: { samples: number; p50: number; p99: number; p999: number };
      cache: { hitRate: number; overInvalidations: number; fills: number };
      schedule?: { rate: number; lateOps: number; maxLagUs: number };
      timeline: { t: number; commandsPerSecond: number }[];
      correctness: { ok: boolean; probedPages: number; checkedDuringRun: number; stale: number; wrongAddress: number };
    }[];
  }[];
}

function benchJson(r: Run): BenchJson {
  return JSON.parse(r.stdout) as BenchJson;
}

function expectMachine(m: Record<string, unknown>): void {
  expect(m['node']).toBe(process.version);
  expect(typeof m['cpuModel']).toBe('string');
  expect(m['cores']).toBeGreaterThan(0);
  expect(m['ioasidVersion']).toMatch(/^\d+\.\d+\.\d+/);
  expect(typeof m['commit']).toBe('string');
}

describe.concurrent('ioasid CLI', () => {
  it('--help works for the program and every subcommand, exit 0', async () => {
    const top = await cli('--help');
    expect(top.status).toBe(0);
    for (const sub of ['bench', 'replay', 'profile', 'inspect']) expect(top.stdout).toContain(sub);
    for (const [sub, marker] of [
      ['bench', '--scenario <name>'],
      ['replay', '<file>'],
      ['profile', '<scenario|trace>'],
      ['inspect', 'Usage: ioasid inspect'],
    ] as const) {
      const r = await cli(sub, '--help');
      expect(r.status, sub).toBe(0);
      expect(r.stdout).toContain(`Usage: ioasid ${sub}`);
      expect(r.stdout).toContain(marker);
      expect(r.stderr).toBe('');
    }
    // The test hook stays out of the help.
    expect((await cli('bench', '--help')).stdout).not.toContain('drop-invalidations');
  });

  it('bench --json writes one document: the machine, and per vendor the figures and a passed check', async () => {
    const r = await cli('bench', '--scenario', 'strict', '--ops', '400', '--json');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const j = benchJson(r);
    expect(j.tool).toBe('ioasid bench');
    expect(j.ok).toBe(true);
    expectMachine(j.machine);
    expect(j.results.map((x) => x.vendor)).toEqual(['vtd', 'smmu']);
    for (const res of j.results) {
      expect(res).toMatchObject({ scenario: 'strict', ok: true });
      for (const k of [
        'commandsPerSecond',
        'barriersPerSecond',
        'barrierP50Us',
        'barrierP99Us',
        'barrierP999Us',
        'iotlbHitRate',
      ])
        expect(res.summary[k]!.median, k).toBeGreaterThan(0);
      const run = res.runs[0]!;
      expect(run.ops).toBe(400);
      // Strict, one page per op: an invalidation and its barrier on one doorbell.
      expect(run.barriers).toBe(400);
      expect(run.doorbells).toBe(400);
      expect(run.commands).toBe(800);
      expect(run.barrierLatency.samples).toBe(400);
      expect(run.barrierLatency.p50).toBeLessThanOrEqual(run.barrierLatency.p99);
      expect(run.cache.hitRate).toBeCloseTo(0.5, 5);
      expect(run.correctness).toMatchObject({ ok: true, stale: 0, wrongAddress: 0 });
      expect(run.correctness.probedPages).toBeGreaterThan(0);
    }
  });

  it('bench prints a human report naming the machine, with latency, IOTLB and check lines', async () => {
    const r = await cli('bench', '--scenario', 'lazy', '--vendor', 'smmu', '--ops', '600', '--batch', '64');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ioasid bench: scenario lazy, 600 ops per run/);
    expect(r.stdout).toContain(`node ${process.version}`);
    expect(r.stdout).toMatch(/machine: .+ \(\d+ cores\), .+ ioasid \d+\.\d+\.\d+ \(commit \S+\)/);
    expect(r.stdout).toMatch(/smmu lazy: 600 ops in [\d.]+ ms/);
    expect(r.stdout).toMatch(/latency: +p50 [\d.]+ µs +p99 [\d.]+ µs +p99\.9 [\d.]+ µs/);
    expect(r.stdout).toMatch(/IOTLB: +hit rate [\d.]+ %/);
    expect(r.stdout).toMatch(/check: +ok: \d+ pages probed after the final sync/);
  });

  it.each([
    ['strict', []],
    ['lazy', ['--batch', '32']],
    ['range', []],
    ['asid-churn', []],
    ['mixed', []],
    ['multi-guest', ['--guests', '3']],
  ])('bench --scenario %s runs on both vendors and passes its check', async (scenario, extra) => {
    const r = await cli('bench', '--scenario', scenario, '--ops', '150', ...extra, '--json');
    expect(r.status, r.stderr).toBe(0);
    const j = benchJson(r);
    expect(j.results).toHaveLength(2);
    for (const res of j.results) {
      expect(res.ok).toBe(true);
      expect(res.runs[0]!.ops).toBe(150);
      expect(res.runs[0]!.commands).toBeGreaterThan(0);
      expect(res.runs[0]!.correctness.probedPages).toBeGreaterThan(0);
    }
  });

  it('bench --seed: the same seed gives the same command stream, another seed another', async () => {
    const args = ['bench', '--scenario', 'range', '--vendor', 'vtd', '--ops', '200', '--json'];
    const [a, b, c] = await Promise.all([
      cli(...args, '--seed', '7'),
      cli(...args, '--seed', '7'),
      cli(...args, '--seed', '8'),
    ]);
    const shape = (r: Run): unknown => {
      const run = benchJson(r).results[0]!.runs[0]!;
      return [run.commands, run.barriers, run.doorbells, run.cache.fills, run.correctness.probedPages];
    };
    expect(shape(a)).toEqual(shape(b));
    expect(shape(c)).not.toEqual(shape(a));
  });

  it('a run whose caches disagree with the reference model fails: exit 1 and a one-line message per vendor', async () => {
    const r = await cli('bench', '--scenario', 'strict', '--ops', '200', '--test-drop-invalidations', '0', '--json');
    expect(r.status).toBe(1);
    const j = benchJson(r);
    expect(j.ok).toBe(false);
    for (const res of j.results) {
      expect(res.ok).toBe(false);
      expect(res.runs[0]!.correctness.stale + res.runs[0]!.correctness.wrongAddress).toBeGreaterThan(0);
    }
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ioasid: correctness check FAILED for vtd strict: .*IOVA 0x[0-9a-f]+/);
    expect(lines[1]).toMatch(/^ioasid: correctness check FAILED for smmu strict: /);
  });

  it('bench --rate runs open loop: latency from the scheduled time, the schedule reported', async () => {
    const r = await cli('bench', '--vendor', 'vtd', '--ops', '300', '--rate', '20000', '--json');
    expect(r.status).toBe(0);
    const run = benchJson(r).results[0]!.runs[0]!;
    expect(run.schedule).toMatchObject({ rate: 20000 });
    // 300 ops at 20000/s take at least 15 ms.
    expect(run.wallMs).toBeGreaterThanOrEqual(14.9);
  });

  it('bench --duration measures for a time instead of a count', async () => {
    const r = await cli('bench', '--vendor', 'smmu', '--duration', '0.3', '--json');
    expect(r.status).toBe(0);
    const res = benchJson(r).results[0]!;
    expect(res.options['durationMs']).toBe(300);
    expect(res.runs[0]!.wallMs).toBeGreaterThanOrEqual(299);
    expect(res.runs[0]!.ops).toBeGreaterThan(0);
    expect(res.runs[0]!.timeline.length).toBeGreaterThan(0);
  });

  it('bench --sweep with --runs and --report: a result per value with min–max, and an HTML report', async () => {
    const report = join(tmp, 'sweep.html');
    const r = await cli(
      ...['bench', '--scenario', 'lazy', '--vendor', 'vtd', '--ops', '300', '--sweep', 'batch'],
      ...['--sweep-values', '16,64', '--runs', '2', '--json', '--report', report],
    );
    expect(r.status, r.stderr).toBe(0);
    const j = benchJson(r);
    expect(j.sweep).toEqual({ knob: 'batch', values: [16, 64] });
    expect(j.results.map((x) => x.options['batch'])).toEqual([16, 64]);
    for (const res of j.results) {
      expect(res.runs).toHaveLength(2);
      const s = res.summary['commandsPerSecond']!;
      expect(s.min).toBeLessThanOrEqual(s.median);
      expect(s.median).toBeLessThanOrEqual(s.max);
    }
    // Fewer unmaps per barrier: more barriers per op.
    expect(j.results[0]!.runs[0]!.barriers).toBeGreaterThan(j.results[1]!.runs[0]!.barriers);
    expect(r.stderr.trim()).toBe(`report written to ${report}`);
    const html = readFileSync(report, 'utf8');
    expect(html).toMatch(/^<!DOCTYPE html>/i);
    expect(html).toContain('Commands/s against batch size');
    expect(html).toContain('Ops/s against batch size');
    expect(html).toContain('Barrier latency');
    expect(html).toContain(process.version);
  });

  it('bench --compare prints the differences against a previous --json run', async () => {
    const before = join(tmp, 'before.json');
    const first = await cli('bench', '--vendor', 'smmu', '--ops', '300', '--runs', '2', '--json');
    expect(first.status).toBe(0);
    writeFileSync(before, first.stdout);
    const [human, json] = await Promise.all([
      cli('bench', '--vendor', 'smmu', '--ops', '300', '--runs', '2', '--compare', before),
      cli('bench', '--vendor', 'smmu', '--ops', '300', '--compare', before, '--json'),
    ]);
    expect(human.status).toBe(0);
    expect(human.stdout).toContain(`compared with ${before}:`);
    expect(human.stdout).toMatch(/smmu strict shards=8 +commands\/s +[\d.]+ k \[[\d.]+ k … [\d.]+ k\] +[\d.]+ k \[/);
    expect(human.stdout).toMatch(/(within noise|better|worse)/);
    const rows = benchJson(json).comparison!.rows;
    expect(rows.map((x) => x.metric)).toContain('barrierP99Us');
    // One run on this side: no noise band.
    expect(rows.every((x) => x.verdict === 'no band')).toBe(true);
  });

  it('npm start runs ioasid bench on the default scenario', async () => {
    const r = await cli('bench');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ioasid bench: scenario strict, 20000 ops per run/);
    expect(r.stdout).toMatch(/^vtd strict: 20000 ops/m);
    expect(r.stdout).toMatch(/^smmu strict: 20000 ops/m);
  });

  it.each([
    [['bench', '--bogus'], "ioasid: unknown option '--bogus'"],
    [['bench', '--ops'], "ioasid: option '--ops <n>' argument missing"],
    [
      ['bench', '--ops', '-5'],
      "ioasid: option '--ops <n>' argument '-5' is invalid. expected an integer in [1, 1000000000]",
    ],
    [['bench', '--dma', 'maybe'], "ioasid: option '--dma <on|off>' argument 'maybe' is invalid. expected on or off"],
    [
      ['bench', '--scenario', 'nope'],
      /^ioasid: option '--scenario <name>' argument 'nope' is invalid\. Allowed choices are strict, /,
    ],
    [['bench', '--batch', '8'], 'ioasid: --batch applies to lazy-policy scenarios (lazy), not strict'],
    [
      ['bench', '--ops', '5', '--duration', '1'],
      "ioasid: option '--ops <n>' cannot be used with option '--duration <seconds>'",
    ],
    [['bench', '--compare', '/nonexistent/previous.json'], 'ioasid: cannot read /nonexistent/previous.json: ENOENT'],
    [
      ['bench', '--compare', 'package.json'],
      "ioasid: cannot compare with package.json: not an 'ioasid bench --json' document",
    ],
    [
      ['bench', '--report', '/nonexistent/r.html'],
      'ioasid: cannot write report /nonexistent/r.html: no folder /nonexistent',
    ],
    [['bench', '--scenario', 'range', '--live-entries', '1000000'], /^ioasid: 1000000 live entries do not fit/],
    [['replay'], "ioasid: missing required argument 'file'"],
    [['replay', '/nonexistent/trace.log'], /^ioasid: .*cannot read trace \/nonexistent\/trace\.log/],
    [['replay', 'package.json'], /^ioasid: .*the trace has no VT-d or SMMUv3 event/],
    [['profile', 'strict'], /^ioasid: profile is not implemented yet/],
    [['inspect'], /^ioasid: inspect is not implemented yet/],
    [['frobnicate'], "ioasid: unknown command 'frobnicate'"],
  ])('%j is a one-line error with exit status 2', async (args, message) => {
    const r = await cli(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    if (typeof message === 'string') expect(lines[0]).toBe(message);
    else expect(lines[0]).toMatch(message);
  });

  it('replay --json: the trace replayed with every line interpreted, the documented top-level fields, and a report', async () => {
    const report = join(tmp, 'replay.html');
    const r = await cli('replay', join(traces, 'smmu-lazy.clean.log'), '--json', '--report', report);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ tool: 'ioasid replay', vendor: 'smmuv3', uninterpreted: 0, commandErrors: 0 });
    for (const k of ['commands', 'doorbells', 'barriers']) expect(j[k], k).toBeGreaterThan(0);
    expect(Object.keys(j['byKind'] as object).sort()).toEqual(['commands', 'skipped', 'uninterpreted']);
    expect((j['throughput'] as Record<string, number>)['commandsPerSecond']).toBeGreaterThan(0);
    expectMachine(j['machine'] as Record<string, unknown>);
    expect(readFileSync(report, 'utf8')).toContain('Throughput over time');
  });

  it('replay prints the counts by kind for a VT-d trace', async () => {
    const r = await cli('replay', join(traces, 'vtd-nocm-lazy.clean.log'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ioasid replay: .*vtd-nocm-lazy\.clean\.log \(vtd, legacy tables\)/);
    expect(r.stdout).toMatch(/uninterpreted +0/);
    expect(r.stdout).toMatch(/command errors +0/);
    expect(r.stdout).toMatch(/^ {2}iotlb +\d+$/m);
  });
});
