/**
 * The report document: what `renderReport` turns into one self-contained HTML file.
 *
 * Everything here is plain data (numbers and strings), so a bench or replay run can build it,
 * write it out as JSON, and render it later.
 */
import type { MachineInfo } from './machine.js';

/** One report: a title, the machine that ran it, and its sections in the order they are shown. */
export interface ReportDoc {
  /** The page title and heading. */
  title: string;
  /** The machine the measurements were taken on (`machineInfo()`). */
  machine: MachineInfo;
  /** When the measurements were taken, as an ISO 8601 string. Default: the time of rendering. */
  generatedAt?: string;
  /** The command line that produced the report, shown verbatim. */
  command?: string;
  /** Paragraphs of plain text shown under the heading. */
  notes?: readonly string[];
  /** Tables and charts, in order. */
  sections: readonly ReportSection[];
}

/** A section of the report: a summary table or one of the three chart kinds. */
export type ReportSection = TableSection | ChartSection;

/** The chart kinds a report can draw. */
export type ChartSection = SweepChart | HistogramChart | TimeSeriesChart;

/** A cell of a summary table; numbers are right-aligned and formatted, null shows as a dash. */
export type TableCell = string | number | null;

/** A summary table, such as one row per vendor and scenario with commands/s and p99 latency. */
export interface TableSection {
  kind: 'table';
  title: string;
  /** Column headers. */
  columns: readonly string[];
  /** Rows of cells; each row has one cell per column. */
  rows: readonly (readonly TableCell[])[];
  /** A line of plain text under the table. */
  caption?: string;
}

/** One measurement of a sweep: `y` at knob value `x`, with the range of repeated runs if any. */
export interface SweepPoint {
  x: number;
  y: number;
  /** The lowest of the repeated runs at `x`; drawn as a band with `max`. */
  min?: number;
  /** The highest of the repeated runs at `x`. */
  max?: number;
}

/** One line of a sweep chart, such as one vendor in one scenario. */
export interface SweepSeries {
  label: string;
  points: readonly SweepPoint[];
}

/** Throughput against a swept knob (`--sweep shards|batch`): one line per series. */
export interface SweepChart {
  kind: 'sweep';
  title: string;
  /** The swept knob, the x-axis title: 'shards', 'batch size'. */
  knob: string;
  /** The measured quantity, the y-axis title: 'commands/s'. */
  metric: string;
  /** 'log2' for knobs swept by doubling (batch 1, 2, 4 … 4096); default 'linear'. */
  xScale?: 'linear' | 'log2';
  series: readonly SweepSeries[];
}

/** A histogram bucket: `count` samples in [lo, hi). */
export interface HistogramBucket {
  lo: number;
  hi: number;
  count: number;
}

/** The buckets of one distribution, such as one vendor's barrier latencies. */
export interface HistogramSeries {
  label: string;
  buckets: readonly HistogramBucket[];
}

/**
 * Barrier-latency histograms: bucketed counts, one bar per bucket and series. Buckets are shown
 * in order, evenly spaced, so log-spaced buckets (`log2Buckets`) give a log-scale latency axis.
 */
export interface HistogramChart {
  kind: 'histogram';
  title: string;
  /** The unit of the bucket edges, in the x-axis title: 'µs'. */
  unit: string;
  /** 'log' shows the tail's small counts beside the mode's large ones; default 'linear'. */
  countScale?: 'linear' | 'log';
  series: readonly HistogramSeries[];
}

/** One sample of a time series: `y` at time `t`. */
export interface TimePoint {
  t: number;
  y: number;
}

/** One line of a time series chart. */
export interface TimeSeries {
  label: string;
  points: readonly TimePoint[];
}

/** Throughput over time, such as commands/s during a replay, one line per series. */
export interface TimeSeriesChart {
  kind: 'timeseries';
  title: string;
  /** The measured quantity, the y-axis title: 'commands/s'. */
  metric: string;
  /** The unit of `t`, in the x-axis title; default 's'. */
  timeUnit?: string;
  series: readonly TimeSeries[];
}
