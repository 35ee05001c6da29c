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

  it('bench --scenario faults with pages left mapped fails its check: exit 1, one line naming the DMA that did not fault', async () => {
    const r = await cli(
      'bench',
      '--scenario',
      'faults',
      '--vendor',
      'vtd',
      '--ops',
      '1200',
      '--warmup',
      '0',
      '--test-drop-invalidations',
      '100',
      '--json',
    );
    expect(r.status).toBe(1);
    const j = benchJson(r);
    expect(j.ok).toBe(false);
    expect(j.results[0]!.runs[0]!.correctness.stale).toBeGreaterThan(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^ioasid: correctness check FAILED for vtd faults: 77 stale, .*first: DMA 1124 at IOVA 0x[0-9a-f]+: 0 retries/,
    );
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
    [['profile'], "ioasid: missing required argument 'scenario|trace'"],
    [['profile', 'nope'], /^ioasid: 'nope' is neither a scenario \(strict, .*\) nor a trace file$/],
    [
      ['profile', 'traces/smmu-lazy.clean.log', '--vendor', 'vtd'],
      'ioasid: --vendor applies to scenarios, not to a trace file',
    ],
    [
      ['profile', 'strict', '--ops', '5', '--duration', '1'],
      "ioasid: option '--ops <n>' cannot be used with option '--duration <seconds>'",
    ],
    [
      ['profile', 'strict', '--host-dma-threads', '99'],
      /^ioasid: option '--host-dma-threads <n>' argument '99' is invalid/,
    ],
    [['profile', 'strict', '--out', 'src'], 'ioasid: output folder src is not empty: choose another with --out'],
    [
      ['profile', 'strict', '--out', 'package.json'],
      'ioasid: cannot create output folder package.json: a file is in the way',
    ],
    [
      ['inspect', '--iova', 'nope'],
      "ioasid: option '--iova <address>' argument 'nope' is invalid. expected a number (0x… hex or decimal) in [0, 0x1fffffffffffff]",
    ],
    [
      ['inspect', '--scenario', 'mixed', '--iova', '0x1000000000'],
      'ioasid: --sid is needed: scenario mixed has 8 devices per unit',
    ],
    [['inspect', '--sid', '0x99', '--iova', '0'], 'ioasid: unit 0 has no device with SID 0x99 (its devices: 0x10)'],
    [['inspect', '--iova', '0', '--access', 'x'], /^ioasid: option '--access <r\|w\|rw>' argument 'x' is invalid/],
    [['inspect', '--unit', '1'], 'ioasid: --unit 1: scenario strict has 1 unit'],
    [['inspect', '--pasid', '1'], 'ioasid: --pasid applies to --iova or --ranges'],
    [['inspect', '--vendor', 'both'], /^ioasid: option '--vendor <vendor>' argument 'both' is invalid/],
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

  it('bench --scenario faults: recoverable faults per second, each DMA faulting once, every request answered', async () => {
    const r = await cli('bench', '--scenario', 'faults', '--ops', '300', '--json');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {
      ok: boolean;
      results: {
        vendor: string;
        runs: {
          ops: number;
          commands: number;
          barriers: number;
          correctness: { ok: boolean; checkedDuringRun: number };
        }[];
      }[];
    };
    expect(j.ok).toBe(true);
    expect(j.results.map((x) => x.vendor)).toEqual(['vtd', 'smmu']);
    for (const x of j.results) {
      const run = x.runs[0]!;
      expect(run.ops).toBe(300);
      expect(run.barriers).toBe(300); // one answer per fault
      expect(run.commands).toBe(600); // the request and its answer
      expect(run.correctness).toMatchObject({ ok: true, checkedDuringRun: 300 });
    }
    const bad = await cli('bench', '--scenario', 'faults', '--baseline', 'qemu', '--ops', '10');
    expect(bad.status).toBe(2);
    for (const flags of [
      ['--live-entries', '513'],
      ['--dma', 'off'],
    ]) {
      const refused = await cli('bench', '--scenario', 'faults', '--ops', '10', ...flags);
      expect(refused.status, flags.join(' ')).toBe(2);
      expect(refused.stderr.trim().split('\n'), flags.join(' ')).toHaveLength(1);
      expect(refused.stdout).toBe('');
    }
  });

  it('bench --baseline qemu: each point on the QEMU-style baseline too, ours/theirs per round, both checked', async () => {
    const r = await cli('bench', '--scenario', 'mixed', '--ops', '400', '--runs', '2', '--baseline', 'qemu', '--json');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {
      ok: boolean;
      results: {
        vendor: string;
        options: { atsOff: boolean };
        baseline: {
          note: string;
          ok: boolean;
          runs: unknown[];
          opsRatio: { median: number; min: number; max: number };
        };
      }[];
    };
    expect(j.ok).toBe(true);
    expect(j.results.map((x) => x.vendor)).toEqual(['vtd', 'smmu']);
    for (const x of j.results) {
      expect(x.options.atsOff).toBe(true); // the baseline has no ATS: neither side uses it
      expect(x.baseline.ok).toBe(true);
      expect(x.baseline.runs).toHaveLength(2);
      expect(x.baseline.note).toMatch(/not QEMU itself/);
      expect(x.baseline.opsRatio.median).toBeGreaterThan(0);
    }
    const bad = await cli('bench', '--baseline', 'qemu', '--host-dma-threads', '1', '--ops', '10');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('replay --baseline qemu: interleaved rounds on both targets, ours/theirs, both correct and the same work', async () => {
    const r = await cli(
      ...['replay', join(traces, 'vtd-nocm-lazy.clean.log'), '--baseline', 'qemu', '--rounds', '2', '--warmup', '1'],
      '--json',
    );
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {
      commands: number;
      comparison: {
        target: string;
        note: string;
        rounds: number;
        ours: { correct: boolean; commandsPerSecond: { median: number } };
        qemu: { correct: boolean; commandsPerSecond: { median: number } };
        ratio: { median: number; min: number; max: number };
        sameWork: boolean;
      };
    };
    expect(j.commands).toBeGreaterThan(0);
    expect(j.comparison).toMatchObject({ target: 'qemu', rounds: 2, sameWork: true });
    expect(j.comparison.note).toMatch(/not QEMU itself/);
    expect(j.comparison.ours.correct && j.comparison.qemu.correct).toBe(true);
    expect(j.comparison.ratio.median).toBeGreaterThan(0);
    expect(j.comparison.ratio.min).toBeLessThanOrEqual(j.comparison.ratio.max);
    const bad = await cli('replay', join(traces, 'vtd-nocm-lazy.clean.log'), '--rounds', '3');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual(['ioasid: --rounds and --warmup need --baseline qemu']);
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

/** The fields of an inspect --json document that the tests read. */
interface InspectJson {
  tool: string;
  machine: Record<string, unknown>;
  state: { scenario: string; vendor: string; ops: number; bench: string; check: { ok: boolean } };
  devices: {
    unit: number;
    sid: number;
    domain: string;
    ats: boolean;
    mappings: number;
    mappedPages: number;
    firstMappings: { iova: number; pages: number; gpa: number }[];
    unmappedIova: number;
  }[];
  request?: { unit: number; sid: number; iova?: number; access?: string };
  walk?: {
    target: string;
    steps: { structure: string; stage: string; level?: number; hpa: number; raw: string[]; outcome: string }[];
    result: { ok: boolean; gpa?: number; hpa?: number; pageShift?: number; fault?: { name: string; stage: string } };
  };
  ranges?: { ranges: { iova: number; size: number }[]; mappedBytes: number };
  cache?: Record<
    'iotlb' | 'atc',
    { tag?: number; agreeing: number; disagreeing: number; dump: { entries: { tag: number }[] } }
  >;
  queues?: { vendor: string; state: Record<string, unknown> };
}

function inspectJson(r: Run): InspectJson {
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as InspectJson;
}

describe.concurrent('ioasid inspect', () => {
  it('with nothing asked, lists the devices of the state and IOVAs to ask about (human and --json)', async () => {
    const [human, json] = await Promise.all([cli('inspect'), cli('inspect', '--json')]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stdout).toMatch(
      /^ioasid inspect: the state of `ioasid bench --scenario strict --vendor vtd --ops 200 --seed 1 --live-entries 1024` after its final sync .*its check: ok\)$/m,
    );
    expect(human.stdout).toMatch(/^machine: .+ \(\d+ cores\)/m);
    expect(human.stdout).toMatch(/^ +0 +0x0010 +DID 1 +no +1024 +1024 +0x1000[0-9a-f]{6}, /m);
    expect(human.stdout).toMatch(/^ {2}ioasid inspect --sid 0x10 --iova 0x1000[0-9a-f]{6} +walk a mapped IOVA/m);
    const j = inspectJson(json);
    expect(j.tool).toBe('ioasid inspect');
    expectMachine(j.machine);
    expect(j.state).toMatchObject({ scenario: 'strict', vendor: 'vtd', ops: 200, check: { ok: true } });
    expect(j.devices).toHaveLength(1);
    const d = j.devices[0]!;
    expect(d).toMatchObject({ unit: 0, sid: 0x10, domain: 'DID 1', ats: false, mappings: 1024, mappedPages: 1024 });
    expect(d.firstMappings).toHaveLength(3);
    for (const m of d.firstMappings) expect(m.iova).toBeGreaterThanOrEqual(2 ** 36);
    expect(d.firstMappings.some((m) => d.unmappedIova >= m.iova && d.unmappedIova < m.iova + m.pages * 4096)).toBe(
      false,
    );
    expect(j.walk).toBeUndefined();
  });

  it('--iova walks a mapped IOVA level by level to its leaf, and an unmapped one to its fault (VT-d)', async () => {
    const state = ['--live-entries', '16', '--ops', '50'];
    const d = inspectJson(await cli('inspect', ...state, '--json')).devices[0]!;
    const m = d.firstMappings[0]!;
    const at = (iova: number): string[] => ['inspect', ...state, '--sid', '0x10', '--iova', `0x${iova.toString(16)}`];
    const [leaf, leafHuman, fault, faultHuman] = await Promise.all([
      cli(...at(m.iova + 0x123), '--json'),
      cli(...at(m.iova + 0x123)),
      cli(...at(d.unmappedIova), '--access', 'w', '--json'),
      cli(...at(d.unmappedIova), '--access', 'w'),
    ]);
    const w = inspectJson(leaf).walk!;
    expect(w.target).toBe('vtd');
    expect(w.steps.map((s) => s.structure)).toEqual(['root-entry', 'context-entry', 'pte', 'pte', 'pte', 'pte']);
    expect(w.steps.slice(2).map((s) => [s.stage, s.level])).toEqual([
      ['stage2', 0],
      ['stage2', 1],
      ['stage2', 2],
      ['stage2', 3],
    ]);
    expect(w.steps.map((s) => s.outcome)).toEqual(['read', 'read', 'table', 'table', 'table', 'leaf']);
    for (const s of w.steps) {
      expect(s.hpa).toBeGreaterThan(0);
      expect(s.raw[0]).toMatch(/^0x[0-9a-f]{16}$/);
    }
    expect(w.result).toMatchObject({ ok: true, gpa: m.gpa + 0x123, pageShift: 12 });
    expect(leafHuman.status).toBe(0);
    expect(leafHuman.stdout).toContain('[1] config: root-entry, index 0x0');
    expect(leafHuman.stdout).toMatch(
      /\[6\] stage2: vtd-second-stage entry, PT \(level 3\), index 0x[0-9a-f]+\n.*\n.*\n.*\n +outcome +leaf/,
    );
    expect(leafHuman.stdout).toMatch(/^result: GPA 0x[0-9a-f]+ → HPA 0x[0-9a-f]+ +\(4 KiB page\)$/m);

    const f = inspectJson(fault).walk!;
    expect(f.result).toMatchObject({ ok: false, fault: { name: 'not-mapped', stage: 'stage2' } });
    expect(f.steps.at(-1)!.outcome).toBe('fault');
    expect(faultHuman.stdout).toMatch(
      /^result: FAULT not-mapped \(not-present\) at stage2 level \d, 0x[0-9a-f]+ WRITE/m,
    );
  });

  it('--iova on SMMUv3: the STE and CD, then the stage-1 table to the leaf', async () => {
    const state = ['--vendor', 'smmu', '--live-entries', '16', '--ops', '50'];
    const m = inspectJson(await cli('inspect', ...state, '--json')).devices[0]!.firstMappings[0]!;
    const w = inspectJson(await cli('inspect', ...state, '--sid', '16', '--iova', String(m.iova), '--json')).walk!;
    expect(w.target).toBe('smmuv3');
    expect(w.steps.map((s) => s.structure)).toEqual(['l1-std', 'ste', 'cd', 'pte', 'pte', 'pte', 'pte']);
    expect(w.steps.at(-1)!.outcome).toBe('leaf');
    expect(w.result).toMatchObject({ ok: true, gpa: m.gpa });
  });

  it("--ranges --cache --queues: a device's mapped ranges, its IOTLB and ATC entries, the unit's registers", async () => {
    const args = [
      'inspect',
      '--scenario',
      'mixed',
      '--vendor',
      'smmu',
      '--sid',
      '0x11',
      '--ranges',
      '--cache',
      '--queues',
    ];
    const [json, human, vtdQueues] = await Promise.all([
      cli(...args, '--json'),
      cli(...args),
      cli('inspect', '--queues'),
    ]);
    const j = inspectJson(json);
    const dev = j.devices.find((d) => d.sid === 0x11)!;
    expect(dev.ats).toBe(true);
    expect(j.request).toEqual({ unit: 0, sid: 0x11 });
    // The table dump covers exactly what the guest maps.
    expect(j.ranges!.mappedBytes).toBe(dev.mappedPages * 4096);
    expect(j.ranges!.ranges.length).toBeGreaterThan(0);
    const atc = j.cache!.atc;
    expect(atc.tag).toBeDefined();
    expect(atc.disagreeing).toBe(0);
    expect(atc.dump.entries.length).toBe(atc.agreeing);
    expect(atc.dump.entries.every((e) => e.tag === atc.tag)).toBe(true);
    expect(j.queues!.vendor).toBe('smmu');
    expect(j.queues!.state).toMatchObject({ cmdq: { pending: 0 }, activeErrors: [] });
    expect(human.status).toBe(0);
    expect(human.stdout).toMatch(
      /^mapped ranges of SID 0x0011:\narm-stage1: root 0x[0-9a-f]+, outputs guest-physical/m,
    );
    expect(human.stdout).toMatch(/^ATC tag 0x[0-9a-f]+: \d+ live entries translate as this device's mappings/m);
    expect(human.stdout).toContain('SMMUv3 registers');
    expect(vtdQueues.status).toBe(0);
    expect(vtdQueues.stdout).toMatch(/^VT-d registers$/m);
    expect(vtdQueues.stdout).toMatch(/IQH \/ IQT +0x[0-9a-f]+ \/ 0x[0-9a-f]+ +\(slots \d+ \/ \d+, 0 pending\)/);
  });
});

/** The fields of a profile --json document that the tests read. */
interface ProfileJson {
  tool: string;
  machine: Record<string, unknown>;
  workload: { kind: string; exitStatus: number; summary: string; childCommand: string[] };
  outDir: string;
  threads: {
    name: string;
    threadId: number;
    entry?: string;
    samples: number;
    files: { raw: string; profile: string; flamegraph: string };
  }[];
  files: { flamegraphs: string[]; speedscope: string; traceLog: string; workloadJson: string };
  sourceMaps: { frames: number; mapped: number };
  gc: { total: number; byKind: { name: string; count: number }[]; isolates: number };
  deopts: { total: number; byKind: { name: string; count: number }[]; marked: number };
}

interface Speedscope {
  $schema: string;
  shared: { frames: { name: string; file?: string; line?: number }[] };
  profiles: {
    type: string;
    name: string;
    unit: string;
    startValue: number;
    endValue: number;
    samples: number[][];
    weights: number[];
  }[];
}

describe.concurrent('ioasid profile', () => {
  it('profiles a scenario per thread, workers included: a flamegraph each, one speedscope file with .ts frames, GC and deopt counts', async () => {
    const out = join(tmp, 'prof-strict');
    const r = await cli('profile', 'strict', '--duration', '1', '--host-dma-threads', '2', '--out', out, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout) as ProfileJson;
    expect(j.tool).toBe('ioasid profile');
    expectMachine(j.machine);
    expect(j.workload).toMatchObject({ kind: 'scenario', exitStatus: 0 });
    expect(j.workload.summary).toMatch(/^vtd strict: \d+ ops in \d+ ms, .*host DMA .* on 2 workers .*; check ok$/);
    expect(j.workload.childCommand).toEqual(expect.arrayContaining(['--cpu-prof', '--trace-gc', '--trace-deopt']));
    // The main thread and the two host-DMA workers, each with its own profile and flamegraph.
    expect(j.threads.map((t) => t.name)).toEqual([
      'main',
      expect.stringMatching(/^worker \d+$/),
      expect.stringMatching(/^worker \d+$/),
    ]);
    for (const t of j.threads.slice(1)) expect(t.entry).toBe('workers/translate.ts');
    expect(readdirSync(out).filter((f) => f.endsWith('.html'))).toHaveLength(3);
    expect(readdirSync(join(out, 'cpu')).filter((f) => f.endsWith('.cpuprofile'))).toHaveLength(3);
    for (const t of j.threads) {
      expect(t.samples).toBeGreaterThan(0);
      const html = readFileSync(t.files.flamegraph, 'utf8');
      // 0x's page: self-contained (its script inlined), around half a megabyte.
      expect(html).toMatch(/^\s*<html>/);
      expect(html).toContain('<script');
      expect(html.length).toBeGreaterThan(100_000);
      // The source-mapped profile names .ts sources, never the built .js.
      const urls = (
        JSON.parse(readFileSync(t.files.profile, 'utf8')) as { nodes: { callFrame: { url: string } }[] }
      ).nodes.map((n) => n.callFrame.url);
      expect(urls.some((u) => /\/(src|workers)\/.+\.ts$/.test(u))).toBe(true);
      expect(urls.some((u) => u.includes('/dist/src/') || u.includes('/dist/workers/'))).toBe(false);
    }
    expect(j.sourceMaps.mapped).toBeGreaterThan(0);

    const ss = JSON.parse(readFileSync(j.files.speedscope, 'utf8')) as Speedscope;
    expect(ss.$schema).toBe('https://www.speedscope.app/file-format-schema.json');
    expect(ss.profiles.map((p) => p.name)).toEqual([
      'main',
      expect.stringMatching(/^worker \d+ \(workers\/translate\.ts\)$/),
      expect.stringMatching(/^worker \d+ \(workers\/translate\.ts\)$/),
    ]);
    const frames = ss.shared.frames;
    for (const p of ss.profiles) {
      expect(p).toMatchObject({ type: 'sampled', unit: 'microseconds' });
      expect(p.samples.length).toBe(p.weights.length);
      expect(p.samples.length).toBeGreaterThan(0);
      expect(p.endValue).toBeGreaterThan(p.startValue);
      for (const stack of p.samples) for (const f of stack) expect(f < frames.length && f >= 0).toBe(true);
      expect(p.weights.every((w) => w >= 0)).toBe(true);
    }
    const files = frames.map((f) => f.file ?? '');
    expect(files.filter((f) => /^src\/.+\.ts$/.test(f)).length).toBeGreaterThan(10);
    expect(files).toContain('workers/translate.ts');
    expect(files).toContain('src/bench/runner.ts');
    expect(files.some((f) => f.startsWith('dist/'))).toBe(false);
    // A worker's samples land in the translation code.
    const worker = ss.profiles[1]!;
    expect(worker.samples.some((s) => s.some((f) => frames[f]!.file === 'src/translate/translator.ts'))).toBe(true);

    // GC and deopt counts are the trace lines', by kind.
    const log = readFileSync(j.files.traceLog, 'utf8');
    expect(j.gc.total).toBeGreaterThan(0);
    expect(j.gc.byKind.reduce((n, k) => n + k.count, 0)).toBe(j.gc.total);
    expect(j.gc.byKind.find((k) => k.name === 'Scavenge')?.count).toBe(log.match(/ ms: Scavenge /g)?.length);
    expect(j.deopts.byKind.reduce((n, k) => n + k.count, 0)).toBe(j.deopts.total);
    expect(j.deopts.total).toBe(log.match(/\[bailout \(kind: /g)?.length ?? 0);
    expect((JSON.parse(readFileSync(j.files.workloadJson, 'utf8')) as { tool: string }).tool).toBe('ioasid bench');
  });

  it('profiles a trace replay: one thread, and the human output prints the counts and every path it wrote', async () => {
    const out = join(tmp, 'prof-trace');
    const r = await cli('profile', join(traces, 'smmu-lazy.clean.log'), '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^ioasid profile: replay of .*smmu-lazy\.clean\.log \(a replay runs on the main thread only\)$/m,
    );
    expect(r.stdout).toMatch(/^workload: replay of .*\(smmuv3\): \d+ commands in \d+ ms, .*, 0 command errors$/m);
    expect(r.stdout).toMatch(/^ {2}main +\d+ +[\d.]+ s +\S/m);
    expect(r.stdout).toMatch(/^GC \(--trace-gc, all threads\): \d+ collections: Scavenge \d+/m);
    expect(r.stdout).toMatch(/^deoptimizations \(--trace-deopt, all threads\): \d+/m);
    const wrote = r.stdout.slice(r.stdout.indexOf('\nwrote:\n'));
    const paths = [...wrote.matchAll(/^ {2}(\/\S+)/gm)].map((m) => m[1]!);
    expect(paths.filter((p) => p.endsWith('.html'))).toEqual([join(out, 'main.html')]);
    expect(paths).toContain(join(out, 'speedscope.json'));
    expect(paths).toContain(join(out, 'v8-trace.log'));
    for (const p of paths) expect(existsSync(p), p).toBe(true);
  });
});
