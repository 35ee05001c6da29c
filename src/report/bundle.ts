/**
 * The Chart.js bundle that a report inlines, so that the file draws its charts offline.
 *
 * It is read from node_modules at render time (not copied into the source tree), so the report
 * always carries the exact pinned version that package.json names.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const requireHere = createRequire(import.meta.url);

let cachedSource: string | undefined;

/** The source of Chart.js's minified UMD bundle (it defines the global `Chart`). */
export function chartJsBundle(): string {
  if (cachedSource === undefined) {
    // The package's exports map hides dist/, so the bundle is found beside the CommonJS main.
    const main = requireHere.resolve('chart.js');
    const source = readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
    // Inlined in a <script>, these would end the element early or change how it is parsed.
    if (/<\/script|<!--/i.test(source))
      throw new Error(`chart.js bundle ${main} contains '</script' or '<!--' and cannot be inlined`);
    cachedSource = source;
  }
  return cachedSource;
}

/** The Chart.js version, read from the bundle's banner ('4.6.1'), or 'unknown'. */
export function chartJsVersion(): string {
  return /Chart\.js v(\d+\.\d+\.\d+\S*)/.exec(chartJsBundle().slice(0, 200))?.[1] ?? 'unknown';
}
