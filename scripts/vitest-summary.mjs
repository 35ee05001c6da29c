// Runs vitest and ends with the plain `N passed, N failed` line that CI reads
// (reference/toolchain.md §7). Extra arguments are passed through to vitest.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const report = '.vitest-report.json';
rmSync(report, { force: true });
const args = [
  'vitest',
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
];
const run = spawnSync('npx', args, { stdio: 'inherit' });
let passed = 0;
let failed = 0;
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests;
  failed = json.numFailedTests;
} catch {
  failed = Math.max(failed, 1);
  console.error('vitest wrote no JSON report');
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(run.status ?? 1);
