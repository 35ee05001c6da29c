import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { chartSpec } from '../../src/report/charts.js';
import {
  CHART_DATA_ID,
  chartJsVersion,
  escapeHtml,
  jsonForScript,
  log2Buckets,
  machineInfo,
  renderReport,
  sweepPoint,
  type MachineInfo,
  type ReportDoc,
  type ReportSection,
} from '../../src/report/index.js';
import { attributesOf, CHROMIUM, dumpDom } from './chromium.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Markup that runs script if any text of the report reaches the page unescaped. */
const HOSTILE = '</script><img src=x onerror="document.body.dataset.pwned=1"><!--';

const MACHINE: MachineInfo = {
  node: 'v20.0.0',
  cpuModel: 'Test CPU',
  cores: 2,
  platform: 'linux 6.1.0 x64',
  ioasidVersion: '0.1.0',
  commit: 'abc1234',
};

/** One chart of each kind (with bands, a log2 knob and log counts) and a summary table. */
function sampleSections(label = 'smmuv3'): ReportSection[] {
  const latencies = Array.from({ length: 4000 }, (_, i) => 1 + (i % 50) * 0.4 + (i % 997 === 0 ? 300 : 0));
  return [
    {
      kind: 'table',
      title: 'Summary',
      columns: ['vendor', 'commands/s', 'p99 (µs)'],
      rows: [
        [label, 1234567.8, 12.345],
        ['vtd', 987654, null],
      ],
      caption: 'median of 3 runs',
    },
    {
      kind: 'sweep',
      title: 'Throughput against shards',
      knob: 'shards',
      metric: 'commands/s',
      series: [
        { label, points: [1, 2, 3, 4].map((x) => sweepPoint(x, [x * 9e4, x * 1e5, x * 1.1e5])) },
        { label: 'vtd', points: [1, 2, 3, 4].map((x) => ({ x, y: x * 8e4 })) },
      ],
    },
    {
      kind: 'sweep',
      title: 'Throughput against batch size',
      knob: 'batch size',
      metric: 'commands/s',
      xScale: 'log2',
      series: [{ label, points: [1, 4, 16, 64, 256, 4096].map((x) => ({ x, y: 1e5 * Math.log2(2 * x) })) }],
    },
    {
      kind: 'histogram',
      title: 'Barrier latency',
      unit: 'µs',
      countScale: 'log',
      series: [
        { label, buckets: log2Buckets(latencies, 2) },
        {
          label: 'vtd',
          buckets: log2Buckets(
            latencies.map((v) => v * 1.7),
            2,
          ),
        },
      ],
    },
    {
      kind: 'timeseries',
      title: 'Throughput during replay',
      metric: 'commands/s',
      series: [
        {
          label: 'replay',
          points: Array.from({ length: 3000 }, (_, i) => ({ t: i / 100, y: 1e6 + 2e5 * Math.sin(i / 200) })),
        },
      ],
    },
  ];
}

function sampleDoc(overrides: Partial<ReportDoc> = {}): ReportDoc {
  return {
    title: 'ioasid bench',
    machine: MACHINE,
    generatedAt: '2025-01-01T00:00:00.000Z',
    command: 'ioasid bench --sweep shards --report out.html',
    sections: sampleSections(),
    ...overrides,
  };
}

/** The text of every `<script>` element, with its opening tag. */
function scripts(html: string): { tag: string; text: string }[] {
  return [...html.matchAll(/(<script\b[^>]*>)([\s\S]*?)<\/script>/g)].map((m) => ({
    tag: m[1]!,
    text: m[2]!,
  }));
}

function chartData(html: string): unknown {
  const data = scripts(html).find((s) => s.tag.includes(`id="${CHART_DATA_ID}"`));
  if (data === undefined) throw new Error('no chart data in the report');
  return JSON.parse(data.text);
}

describe('renderReport', () => {
  it('is self-contained: Chart.js is inlined and nothing is loaded from elsewhere', () => {
    const html = renderReport(sampleDoc());
    // The markup and the style, without the scripts' text (checked by the CSP and in Chromium).
    const markup = html.replace(/(<script\b[^>]*>)[\s\S]*?<\/script>/g, '$1</script>');
    expect(markup.match(/\b(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?\/\//gi)).toBeNull();
    expect(markup.match(/<script\b[^>]*\bsrc=/gi)).toBeNull();
    expect(markup.match(/<(?:link|iframe|img|object|embed|base)\b/gi)).toBeNull();
    expect(markup.match(/@import|url\(/gi)).toBeNull();
    const inline = scripts(html);
    expect(inline.map((s) => s.tag)).toEqual([
      '<script>',
      `<script type="application/json" id="${CHART_DATA_ID}">`,
      '<script>',
      '<script>',
    ]);
    expect(inline[2]!.text.startsWith(`/*!\n * Chart.js v${chartJsVersion()}\n`)).toBe(true);
    expect(chartJsVersion()).toMatch(/^4\.\d+\.\d+$/);
  });

  it("allows by CSP hash exactly its own inline scripts and style, and nothing else's", () => {
    const html = renderReport(sampleDoc());
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/
      .exec(html)?.[1]
      ?.replaceAll('&#39;', "'");
    const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const executable = scripts(html).filter((s) => s.tag === '<script>');
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    expect(csp).toBe(
      `default-src 'none'; script-src ${executable.map((s) => hash(s.text)).join(' ')}; ` + `style-src ${hash(style)}`,
    );
  });

  it('escapes hostile text everywhere it is shown and keeps it intact in the chart data', () => {
    const html = renderReport(
      sampleDoc({
        title: HOSTILE,
        command: HOSTILE,
        notes: [HOSTILE],
        machine: { ...MACHINE, cpuModel: HOSTILE },
        sections: [
          ...sampleSections(HOSTILE),
          { kind: 'table', title: HOSTILE, columns: [HOSTILE], rows: [[HOSTILE]], caption: HOSTILE },
        ],
      }),
    );
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<!--');
    // Only the report's own four scripts end: no text closed one early.
    expect(html.match(/<\/script/gi)).toHaveLength(4);
    expect(html).toContain(`<title>${escapeHtml(HOSTILE)}</title>`);
    expect(html).toContain(`<td>${escapeHtml(HOSTILE)}</td>`);
    const labels = JSON.stringify(chartData(html));
    expect(JSON.parse(labels)).toEqual(chartData(html));
    expect(labels).toContain(JSON.stringify(HOSTILE));
  });

  it('names the machine, the time and the command of the run', () => {
    const html = renderReport(sampleDoc());
    for (const text of ['v20.0.0', 'Test CPU', '<td>2</td>', 'linux 6.1.0 x64', '0.1.0 (commit abc1234)'])
      expect(html).toContain(text);
    expect(html).toContain('2025-01-01T00:00:00.000Z');
    expect(html).toContain('<code>ioasid bench --sweep shards --report out.html</code>');
  });

  it('formats table numbers: whole and large ones with separators, small ones to 3 digits', () => {
    const html = renderReport(sampleDoc());
    expect(html).toContain('<tr><td>smmuv3</td><td class="num">1,234,568</td><td class="num">12.3</td></tr>');
    expect(html).toContain('<tr><td>vtd</td><td class="num">987,654</td><td class="num">–</td></tr>');
    expect(html).toContain('<p class="caption">median of 3 runs</p>');
  });

  it('gives every chart a canvas and a spec, and a series the same colour in every chart', () => {
    const html = renderReport(sampleDoc());
    const canvases = [...html.matchAll(/<canvas id="([^"]+)"/g)].map((m) => m[1]);
    const specs = chartData(html) as {
      canvas: string;
      config: { data: { datasets: { label: string; borderColor: string }[] } };
    }[];
    expect(specs.map((s) => s.canvas)).toEqual(canvases);
    expect(canvases).toHaveLength(4);
    const colors = new Set(
      specs.flatMap((s) => s.config.data.datasets.filter((d) => d.label === 'smmuv3').map((d) => d.borderColor)),
    );
    expect(colors.size).toBe(1);
  });
});

describe('chart specs', () => {
  const colorOf = (label: string): string => (label === 'a' ? '#4e79a7' : '#f28e2b');

  it('a sweep with repeated runs draws a min–max band before its line and hides it from the legend', () => {
    const spec = chartSpec(
      {
        kind: 'sweep',
        title: 't',
        knob: 'shards',
        metric: 'commands/s',
        series: [
          { label: 'a', points: [sweepPoint(2, [5, 7, 6]), sweepPoint(1, [1, 3, 2])] },
          { label: 'b', points: [{ x: 1, y: 4 }] },
        ],
      },
      'c0',
      colorOf,
    );
    const datasets = spec.config.data.datasets;
    expect(datasets.map((d) => d.label)).toEqual(['a max', 'a min', 'a', 'b']);
    expect(datasets[0]!.data).toEqual([
      { x: 1, y: 3 },
      { x: 2, y: 7 },
    ]);
    expect(datasets[1]!.data).toEqual([
      { x: 1, y: 1 },
      { x: 2, y: 5 },
    ]);
    expect(datasets[1]).toMatchObject({ fill: '-1', backgroundColor: '#4e79a733' });
    expect(datasets[2]!.data).toEqual([
      { x: 1, y: 2 },
      { x: 2, y: 6 },
    ]);
    expect(spec.legendHidden).toEqual([0, 1]);
    expect(spec.axisTicks).toEqual({});
    // Shard counts are whole, and so are the ticks.
    expect(spec.config.options?.scales?.['x']?.ticks).toEqual({ precision: 0 });
  });

  it('a log2 sweep has a logarithmic x axis with power-of-two ticks', () => {
    const spec = chartSpec(
      { kind: 'sweep', title: 't', knob: 'batch', metric: 'm', xScale: 'log2', series: [] },
      'c0',
      colorOf,
    );
    expect(spec.config.options?.scales?.['x']?.type).toBe('logarithmic');
    expect(spec.axisTicks).toEqual({ x: 'log2' });
  });

  it('a histogram aligns series on the union of their buckets, empty ones off a log scale', () => {
    const spec = chartSpec(
      {
        kind: 'histogram',
        title: 't',
        unit: 'µs',
        countScale: 'log',
        series: [
          {
            label: 'a',
            buckets: [
              { lo: 2, hi: 4, count: 5 },
              { lo: 1, hi: 2, count: 3 },
            ],
          },
          { label: 'b', buckets: [{ lo: 4, hi: 8, count: 1 }] },
        ],
      },
      'c0',
      colorOf,
    );
    expect(spec.config.data.labels).toEqual(['1–2', '2–4', '4–8']);
    expect(spec.config.data.datasets.map((d) => d.data)).toEqual([
      [3, 5, null],
      [null, null, 1],
    ]);
    expect(spec.config.options?.scales?.['y']).toMatchObject({ type: 'logarithmic', min: 0.5 });
    expect(spec.axisTicks).toEqual({ y: 'counts' });
  });

  it('a linear histogram keeps empty buckets as zero bars', () => {
    const spec = chartSpec(
      { kind: 'histogram', title: 't', unit: 'µs', series: [{ label: 'a', buckets: [{ lo: 1, hi: 2, count: 0 }] }] },
      'c0',
      colorOf,
    );
    expect(spec.config.data.datasets[0]!.data).toEqual([0]);
    expect(spec.axisTicks).toEqual({});
  });

  it('a time series is sorted by time, rounded to what can be drawn, and decimated', () => {
    const spec = chartSpec(
      {
        kind: 'timeseries',
        title: 't',
        metric: 'commands/s',
        series: [
          {
            label: 'a',
            points: [
              { t: 2, y: 20 },
              { t: 1, y: 10 },
              { t: 3, y: 1.23456789 },
              { t: 4, y: NaN },
            ],
          },
        ],
      },
      'c0',
      colorOf,
    );
    // Values are drawn to 6 significant digits; NaN is a gap.
    expect(spec.config.data.datasets[0]!.data).toEqual([
      { x: 1, y: 10 },
      { x: 2, y: 20 },
      { x: 3, y: 1.23457 },
      { x: 4, y: null },
    ]);
    expect(spec.config.options?.plugins?.decimation).toMatchObject({ enabled: true, algorithm: 'lttb' });
    expect(spec.config.options?.scales?.['x']?.title).toMatchObject({ text: 'time (s)' });
  });
});

describe('series helpers', () => {
  it('sweepPoint takes the median of the runs with their min and max', () => {
    expect(sweepPoint(4, [30, 10, 20])).toEqual({ x: 4, y: 20, min: 10, max: 30 });
    expect(sweepPoint(4, [40, 10, 20, 30])).toEqual({ x: 4, y: 25, min: 10, max: 40 });
    expect(() => sweepPoint(1, [])).toThrow(RangeError);
  });

  it('log2Buckets counts samples into contiguous power-of-two buckets', () => {
    expect(log2Buckets([1, 1.5, 2, 3.99, 4, 9])).toEqual([
      { lo: 1, hi: 2, count: 2 },
      { lo: 2, hi: 4, count: 2 },
      { lo: 4, hi: 8, count: 1 },
      { lo: 8, hi: 16, count: 1 },
    ]);
  });

  it('log2Buckets puts samples on an edge in the bucket above it, at any resolution', () => {
    const buckets = log2Buckets([Math.SQRT2, 2, 0.5], 2);
    expect(buckets.map((b) => b.count)).toEqual([1, 0, 0, 1, 1]);
    expect(buckets[0]).toEqual({ lo: 0.5, hi: 2 ** -0.5, count: 1 });
    expect(buckets[3]!.lo).toBeCloseTo(Math.SQRT2, 12);
    expect(buckets[4]).toEqual({ lo: 2, hi: 2 ** 1.5, count: 1 });
  });

  it('log2Buckets gives zero samples a bucket below the first and skips non-finite ones', () => {
    expect(log2Buckets([0, 0, 3, NaN, Infinity])).toEqual([
      { lo: 0, hi: 2, count: 2 },
      { lo: 2, hi: 4, count: 1 },
    ]);
    expect(log2Buckets([0])).toEqual([{ lo: 0, hi: 1, count: 1 }]);
    expect(log2Buckets([])).toEqual([]);
    expect(() => log2Buckets([1], 0)).toThrow(RangeError);
  });
});

describe('escaping', () => {
  it('escapeHtml escapes the five characters that matter in text and attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
    );
  });

  it('jsonForScript leaves no < > or & and parses back to the same value', () => {
    const value = { s: `${HOSTILE} & \u2028\u2029 ]]>`, n: [1, 2.5] };
    const json = jsonForScript(value);
    expect(json).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe('machineInfo', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('names this node, CPU and ioasid build', () => {
    const m = machineInfo();
    expect(m.node).toBe(process.version);
    expect(m.cores).toBeGreaterThan(0);
    expect(m.cpuModel).not.toBe('');
    expect(m.ioasidVersion).toBe(pkg.version);
    // A checkout (as in CI) has a commit; an unpacked tarball has none.
    expect(m.commit).toMatch(existsSync(join(root, '.git')) ? /^[0-9a-f]{4,40}$/ : /^unknown$/);
  });

  it("outside a git checkout the commit is 'unknown', and without package.json so is the version", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-machine-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'ioasid', version: '9.8.7' }));
    expect(machineInfo({ root: dir })).toMatchObject({ ioasidVersion: '9.8.7', commit: 'unknown' });
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(machineInfo({ root: empty })).toMatchObject({ ioasidVersion: 'unknown', commit: 'unknown' });
  });
});

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium)
  console.warn(
    `test/report: ${CHROMIUM} is absent, so the headless Chromium rendering tests are skipped ` +
      '(apt-get install chromium to run them)',
  );

describe.skipIf(!hasChromium)('the report in headless Chromium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function render(name: string, doc: ReportDoc): Promise<string> {
    const file = join(dir, name);
    writeFileSync(file, renderReport(doc));
    return dumpDom(file);
  }

  it('draws data on every chart, runs no injected markup, and trips no CSP rule', async () => {
    const dom = await render('report.html', sampleDoc({ title: HOSTILE, notes: [HOSTILE] }));
    const body = attributesOf(dom, 'body')[0]!;
    expect(body.get('data-charts-total')).toBe('4');
    expect(body.get('data-charts-rendered')).toBe('4');
    expect(body.has('data-pwned')).toBe(false);
    expect(dom).not.toMatch(/<img\b/i);
    expect(attributesOf(dom, 'html')[0]!.has('data-csp-violations')).toBe(false);
    const canvases = attributesOf(dom, 'canvas');
    expect(canvases).toHaveLength(4);
    for (const canvas of canvases) {
      expect(canvas.get('data-error')).toBeUndefined();
      expect(Number(canvas.get('data-nonblank'))).toBeGreaterThan(1000);
      expect(Number(canvas.get('data-plotted'))).toBeGreaterThan(100);
    }
  });

  it('does not count a chart with axes but no data as rendered (negative control)', async () => {
    const dom = await render(
      'empty.html',
      sampleDoc({
        sections: [
          { kind: 'sweep', title: 'no series', knob: 'shards', metric: 'commands/s', series: [] },
          sampleSections()[1]!,
        ],
      }),
    );
    const body = attributesOf(dom, 'body')[0]!;
    expect(body.get('data-charts-total')).toBe('2');
    expect(body.get('data-charts-rendered')).toBe('1');
    const [empty, drawn] = attributesOf(dom, 'canvas');
    expect(Number(empty!.get('data-nonblank'))).toBeGreaterThan(0);
    expect(empty!.get('data-plotted')).toBe('0');
    expect(Number(drawn!.get('data-plotted'))).toBeGreaterThan(100);
  });
});
