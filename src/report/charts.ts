/**
 * Chart.js configurations for the report's three chart kinds.
 *
 * A configuration is plain JSON, embedded in the page as data. What Chart.js can only take as a
 * function (the legend filter that hides min/max bands, power-of-two ticks) is named in the spec
 * and attached by the page script (page-script.ts).
 */
import type { ChartConfiguration, Point } from 'chart.js';
import type { ChartSection, HistogramChart, SweepChart, TimeSeriesChart } from './types.js';

/** What the page needs to draw one chart. */
export interface ChartSpec {
  /** The id of the chart's canvas. */
  canvas: string;
  config: ChartConfiguration<'line'> | ChartConfiguration<'bar'>;
  /** Indices of datasets left out of the legend (the min/max bands of a sweep). */
  legendHidden: number[];
  /**
   * Tick rules for logarithmic axes, by axis id: 'log2' ticks at the powers of two in range;
   * 'counts' labels only the counts 1, 2, 5, 10, 20, 50 … (no fractions of a sample).
   */
  axisTicks: Record<string, 'log2' | 'counts'>;
}

/** A series colour by series label; the same label has the same colour in every chart. */
export type ColorOf = (label: string) => string;

/**
 * Colours for series, in order of first appearance: Tableau 10 without its grey, so that every
 * series is saturated (the page tells plotted data from grey axes by saturation).
 */
export const SERIES_COLORS: readonly string[] = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
];

/** The spec that draws `section` on the canvas with id `canvas`. */
export function chartSpec(section: ChartSection, canvas: string, colorOf: ColorOf): ChartSpec {
  switch (section.kind) {
    case 'sweep':
      return sweepSpec(section, canvas, colorOf);
    case 'histogram':
      return histogramSpec(section, canvas, colorOf);
    case 'timeseries':
      return timeSeriesSpec(section, canvas, colorOf);
  }
}

/** Options every chart shares: drawn at once (the page checks the pixels right after). */
const COMMON = {
  animation: false,
  responsive: true,
  aspectRatio: 2,
  interaction: { mode: 'nearest', intersect: false },
} as const;

function axisTitle(text: string): { display: true; text: string } {
  return { display: true, text };
}

function sweepSpec(section: SweepChart, canvas: string, colorOf: ColorOf): ChartSpec {
  const datasets: ChartConfiguration<'line'>['data']['datasets'] = [];
  const legendHidden: number[] = [];
  for (const series of section.series) {
    const color = colorOf(series.label);
    const points = [...series.points].sort((a, b) => a.x - b.x);
    const banded = points.filter((p) => p.min !== undefined && p.max !== undefined);
    if (banded.length > 0) {
      // A band from min to max of the repeated runs: the max edge, then the min edge filled up
      // to it ('-1' is the previous dataset).
      const band = { borderWidth: 0, pointRadius: 0, backgroundColor: `${color}33` };
      legendHidden.push(datasets.length, datasets.length + 1);
      datasets.push({
        ...band,
        label: `${series.label} max`,
        data: banded.map((p): Point => ({ x: p.x, y: plotted(p.max ?? p.y) })),
        fill: false,
      });
      datasets.push({
        ...band,
        label: `${series.label} min`,
        data: banded.map((p): Point => ({ x: p.x, y: plotted(p.min ?? p.y) })),
        fill: '-1',
      });
    }
    datasets.push({
      label: series.label,
      data: points.map((p): Point => ({ x: p.x, y: plotted(p.y) })),
      borderColor: color,
      backgroundColor: color,
      borderWidth: 2,
      pointRadius: 3,
    });
  }
  const log2 = section.xScale === 'log2';
  // Whole-numbered knobs (shards) get whole-numbered ticks.
  const whole = section.series.every((s) => s.points.every((p) => Number.isInteger(p.x)));
  return {
    canvas,
    legendHidden,
    axisTicks: log2 ? { x: 'log2' } : {},
    config: {
      type: 'line',
      data: { datasets },
      options: {
        ...COMMON,
        scales: {
          x: log2
            ? { type: 'logarithmic', title: axisTitle(section.knob) }
            : {
                type: 'linear',
                title: axisTitle(section.knob),
                ...(whole ? { ticks: { precision: 0 } } : {}),
              },
          y: { type: 'linear', beginAtZero: true, title: axisTitle(section.metric) },
        },
      },
    },
  };
}

function histogramSpec(section: HistogramChart, canvas: string, colorOf: ColorOf): ChartSpec {
  // Series may bucket differently: the x axis is the union of their buckets, in order.
  const edges = new Map<string, { lo: number; hi: number }>();
  for (const series of section.series)
    for (const b of series.buckets) edges.set(`${b.lo}:${b.hi}`, { lo: b.lo, hi: b.hi });
  const buckets = [...edges.entries()].sort(([, a], [, b]) => a.lo - b.lo || a.hi - b.hi);
  const log = section.countScale === 'log';
  const datasets = section.series.map((series) => {
    const counts = new Map(series.buckets.map((b) => [`${b.lo}:${b.hi}`, b.count]));
    const color = colorOf(series.label);
    return {
      label: series.label,
      // An empty bucket has no bar on a log scale rather than a bar down to 10^0.
      data: buckets.map(([key]) => {
        const count = counts.get(key) ?? 0;
        return log && count <= 0 ? null : count;
      }),
      backgroundColor: color,
      borderColor: color,
      categoryPercentage: 0.9,
      barPercentage: 1,
    };
  });
  return {
    canvas,
    legendHidden: [],
    axisTicks: log ? { y: 'counts' } : {},
    config: {
      type: 'bar',
      data: { labels: buckets.map(([, b]) => bucketLabel(b.lo, b.hi)), datasets },
      options: {
        ...COMMON,
        scales: {
          x: { type: 'category', title: axisTitle(`latency (${section.unit})`) },
          // On a log scale, bars rise from 0.5 so that a bucket of one sample shows.
          y: log
            ? { type: 'logarithmic', min: 0.5, title: axisTitle('count') }
            : { type: 'linear', beginAtZero: true, title: axisTitle('count') },
        },
      },
    },
  };
}

function timeSeriesSpec(section: TimeSeriesChart, canvas: string, colorOf: ColorOf): ChartSpec {
  const datasets = section.series.map((series) => {
    const color = colorOf(series.label);
    return {
      label: series.label,
      data: [...series.points].sort((a, b) => a.t - b.t).map((p): Point => ({ x: p.t, y: plotted(p.y) })),
      borderColor: color,
      backgroundColor: color,
      borderWidth: 1.5,
      pointRadius: 0,
      // Decimation needs unparsed {x, y} data, sorted by x.
      parsing: false as const,
      normalized: true,
    };
  });
  return {
    canvas,
    legendHidden: [],
    axisTicks: {},
    config: {
      type: 'line',
      data: { datasets },
      options: {
        ...COMMON,
        scales: {
          x: { type: 'linear', title: axisTitle(`time (${section.timeUnit ?? 's'})`) },
          y: { type: 'linear', beginAtZero: true, title: axisTitle(section.metric) },
        },
        // A replay of a long trace has more samples than pixels: keep the shape (LTTB), not every point.
        plugins: { decimation: { enabled: true, algorithm: 'lttb', samples: 1000 } },
      },
    },
  };
}

/**
 * A value as drawn: 6 significant digits, finer than any chart's pixels, which keeps the embedded
 * data short; NaN and infinities become gaps.
 */
function plotted(v: number): number | null {
  return Number.isFinite(v) ? Number(v.toPrecision(6)) : null;
}

const EDGE_FORMAT = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 });

/** A bucket's axis label: '1–2', '0.5–0.707'. */
export function bucketLabel(lo: number, hi: number): string {
  return `${EDGE_FORMAT.format(lo)}–${EDGE_FORMAT.format(hi)}`;
}
