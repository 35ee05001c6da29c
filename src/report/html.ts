/**
 * Renders a report as one self-contained HTML file: the Chart.js bundle, the chart data and the
 * page script are inlined, and a Content-Security-Policy that allows only those exact scripts
 * (by hash) and loads nothing else keeps the file offline and inert to injected markup.
 */
import { createHash } from 'node:crypto';
import { chartJsBundle, chartJsVersion } from './bundle.js';
import { chartSpec, SERIES_COLORS, type ChartSpec, type ColorOf } from './charts.js';
import { escapeHtml, jsonForScript } from './escape.js';
import type { MachineInfo } from './machine.js';
import { CHART_DATA_ID, CSP_WATCH_SCRIPT, PAGE_SCRIPT } from './page-script.js';
import type { ReportDoc, ReportSection, TableCell, TableSection } from './types.js';

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 960px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.machine th { font-weight: normal; color: #666; }
.meta, .caption, footer { color: #666; font-size: 0.9em; }
code { font-size: 0.9em; }
.chart { position: relative; width: 100%; }
footer { margin-top: 3em; border-top: 1px solid #ddd; padding-top: 0.5em; }
`;

/** Renders `doc` as a complete HTML document that needs no network and no other file. */
export function renderReport(doc: ReportDoc): string {
  const colorOf = seriesColors(doc.sections);
  const specs: ChartSpec[] = [];
  const body = doc.sections.map((section, i) => renderSection(section, i, colorOf, specs));
  const bundle = chartJsBundle();
  const csp = [
    "default-src 'none'",
    `script-src ${[CSP_WATCH_SCRIPT, bundle, PAGE_SCRIPT].map(sha256Source).join(' ')}`,
    `style-src ${sha256Source(STYLE)}`,
  ].join('; ');
  const generatedAt = doc.generatedAt ?? new Date().toISOString();
  const notes = (doc.notes ?? []).map((n) => `<p>${escapeHtml(n)}</p>`).join('\n');
  const command = doc.command === undefined ? '' : `<p class="meta"><code>${escapeHtml(doc.command)}</code></p>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<title>${escapeHtml(doc.title)}</title>
<script>${CSP_WATCH_SCRIPT}</script>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(doc.title)}</h1>
<p class="meta">${escapeHtml(generatedAt)} · ioasid ${escapeHtml(doc.machine.ioasidVersion)} (${escapeHtml(doc.machine.commit)})</p>
${command}
${notes}
<section>
<h2>Machine</h2>
${renderMachine(doc.machine)}
</section>
${body.join('\n')}
<footer>Charts drawn with Chart.js ${escapeHtml(chartJsVersion())} (MIT), inlined in this file: it loads nothing from the network.</footer>
<script type="application/json" id="${CHART_DATA_ID}">${jsonForScript(specs)}</script>
<script>${bundle}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

/** A CSP source that allows exactly the inline element whose text is `text`. */
function sha256Source(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** Colours by series label in order of first appearance, so a vendor keeps its colour throughout. */
function seriesColors(sections: readonly ReportSection[]): ColorOf {
  const colors = new Map<string, string>();
  for (const section of sections) {
    if (section.kind === 'table') continue;
    for (const series of section.series)
      if (!colors.has(series.label)) colors.set(series.label, SERIES_COLORS[colors.size % SERIES_COLORS.length]!);
  }
  return (label) => colors.get(label) ?? SERIES_COLORS[0]!;
}

function renderSection(section: ReportSection, index: number, colorOf: ColorOf, specs: ChartSpec[]): string {
  const heading = `<h2>${escapeHtml(section.title)}</h2>`;
  if (section.kind === 'table') return `<section>\n${heading}\n${renderTable(section)}\n</section>`;
  const canvas = `chart-${index}`;
  specs.push(chartSpec(section, canvas, colorOf));
  return `<section>
${heading}
<div class="chart"><canvas id="${canvas}" role="img" aria-label="${escapeHtml(section.title)}"></canvas></div>
</section>`;
}

function renderMachine(m: MachineInfo): string {
  const rows: [string, string][] = [
    ['node', m.node],
    ['CPU', m.cpuModel],
    ['cores', String(m.cores)],
    ['platform', m.platform],
    ['ioasid', `${m.ioasidVersion} (commit ${m.commit})`],
  ];
  const trs = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`);
  return `<table class="machine">\n${trs.join('\n')}\n</table>`;
}

function renderTable(t: TableSection): string {
  const head = t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const rows = t.rows.map((row) => `<tr>${row.map(renderCell).join('')}</tr>`);
  const caption = t.caption === undefined ? '' : `\n<p class="caption">${escapeHtml(t.caption)}</p>`;
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody>\n</table>${caption}`;
}

const LARGE = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const SMALL = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 });

function renderCell(cell: TableCell): string {
  if (cell === null) return '<td class="num">–</td>';
  if (typeof cell === 'string') return `<td>${escapeHtml(cell)}</td>`;
  // Whole numbers and large rates in full with separators; small fractions to 3 significant digits.
  const text = Number.isInteger(cell) || Math.abs(cell) >= 100 ? LARGE.format(cell) : SMALL.format(cell);
  return `<td class="num">${escapeHtml(text)}</td>`;
}
