/**
 * The script a report runs in the browser: it draws every chart from the embedded specs
 * (charts.ts) and then marks what it drew, so a test (or a person) can tell a rendered report
 * from a broken one.
 *
 * Markers:
 * - on each canvas: `data-nonblank` (pixels drawn at all), `data-plotted` (saturated pixels inside
 *   the plot area, i.e. series data rather than grey axes or the legend), or `data-error`;
 * - on `<body>`: `data-charts-total` and `data-charts-rendered` (canvases with plotted data);
 * - on `<html>`: `data-csp-violations` if the page's Content-Security-Policy blocked anything
 *   (CSP_WATCH_SCRIPT, which runs first, in the head, so that it sees every violation).
 *
 * Both are plain ES2017 in strings, not compiled TypeScript, because they run in the page as they
 * are.
 */

/** The id of the `<script type="application/json">` that holds the chart specs. */
export const CHART_DATA_ID = 'ioasid-chart-data';

/** The head script's source: it counts what the Content-Security-Policy blocks. */
export const CSP_WATCH_SCRIPT = `(function () {
  var violations = 0;
  document.addEventListener('securitypolicyviolation', function () {
    violations += 1;
    document.documentElement.setAttribute('data-csp-violations', String(violations));
  });
})();`;

/** The page script's source: it draws the charts and marks them. */
export const PAGE_SCRIPT = `(function () {
  'use strict';
  var body = document.body;
  var numberFormat = new Intl.NumberFormat('en-US');

  function powersOfTwo(min, max) {
    var ticks = [];
    for (var v = Math.pow(2, Math.floor(Math.log2(min))); v <= max * 1.0001; v *= 2)
      if (v >= min / 1.0001) ticks.push({ value: v });
    return ticks;
  }

  // Counts drawn pixels on the whole canvas, and saturated ones inside the plot area.
  function ink(chart) {
    var canvas = chart.canvas;
    var ctx = canvas.getContext('2d');
    if (!ctx || canvas.width === 0 || canvas.height === 0) return { nonblank: 0, plotted: 0 };
    var px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    var ratio = chart.currentDevicePixelRatio || 1;
    var area = chart.chartArea;
    var left = Math.floor(area.left * ratio), right = Math.ceil(area.right * ratio);
    var top = Math.floor(area.top * ratio), bottom = Math.ceil(area.bottom * ratio);
    var nonblank = 0, plotted = 0;
    for (var i = 0; i < px.length; i += 4) {
      if (px[i + 3] === 0) continue;
      nonblank += 1;
      var p = i / 4, x = p % canvas.width, y = (p - x) / canvas.width;
      if (x < left || x >= right || y < top || y >= bottom) continue;
      var r = px[i], g = px[i + 1], b = px[i + 2];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 48) plotted += 1;
    }
    return { nonblank: nonblank, plotted: plotted };
  }

  function draw(spec) {
    var canvas = document.getElementById(spec.canvas);
    if (!canvas) return false;
    try {
      if (typeof Chart !== 'function') throw new Error('Chart.js did not load');
      var options = spec.config.options = spec.config.options || {};
      if (spec.legendHidden.length > 0) {
        var plugins = options.plugins = options.plugins || {};
        var legend = plugins.legend = plugins.legend || {};
        var labels = legend.labels = legend.labels || {};
        labels.filter = function (item) { return spec.legendHidden.indexOf(item.datasetIndex) < 0; };
      }
      Object.keys(spec.axisTicks).forEach(function (id) {
        var scale = options.scales[id];
        var ticks = scale.ticks = scale.ticks || {};
        if (spec.axisTicks[id] === 'log2') {
          scale.afterBuildTicks = function (axis) { axis.ticks = powersOfTwo(axis.min, axis.max); };
          ticks.callback = function (value) { return numberFormat.format(value); };
        } else {
          ticks.callback = function (value) {
            var mantissa = value / Math.pow(10, Math.floor(Math.log10(value) + 1e-9));
            var shown = value >= 1 && [1, 2, 5].some(function (m) { return Math.abs(mantissa - m) < 1e-6; });
            return shown ? numberFormat.format(value) : '';
          };
        }
      });
      var result = ink(new Chart(canvas, spec.config));
      canvas.setAttribute('data-nonblank', String(result.nonblank));
      canvas.setAttribute('data-plotted', String(result.plotted));
      return result.plotted > 0;
    } catch (e) {
      canvas.setAttribute('data-error', String(e && e.message ? e.message : e));
      return false;
    }
  }

  var specs = JSON.parse(document.getElementById('${CHART_DATA_ID}').textContent || '[]');
  var rendered = 0;
  specs.forEach(function (spec) { if (draw(spec)) rendered += 1; });
  body.setAttribute('data-charts-total', String(specs.length));
  body.setAttribute('data-charts-rendered', String(rendered));
})();
`;
