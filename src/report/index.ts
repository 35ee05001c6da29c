/** Self-contained offline HTML reports with charts (issue 7 item 5): the public face. */
export { chartJsVersion } from './bundle.js';
export { escapeHtml, jsonForScript } from './escape.js';
export { renderReport } from './html.js';
export { machineInfo, type MachineInfo, type MachineInfoOptions } from './machine.js';
export { CHART_DATA_ID } from './page-script.js';
export { log2Buckets, sweepPoint } from './series.js';
export type {
  ChartSection,
  HistogramBucket,
  HistogramChart,
  HistogramSeries,
  ReportDoc,
  ReportSection,
  SweepChart,
  SweepPoint,
  SweepSeries,
  TableCell,
  TableSection,
  TimePoint,
  TimeSeries,
  TimeSeriesChart,
} from './types.js';
