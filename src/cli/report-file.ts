/**
 * Writing `--report` and `--export-json` files: the target is checked before a long run, so a
 * typo fails at once.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './usage.js';

/** UsageError unless `path` can be written (its folder exists, and it is not a folder); `what` names it. */
export function checkReportPath(path: string, what = 'report'): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(`cannot write ${what} ${path}: no folder ${dir}`);
  if (existsSync(path) && statSync(path).isDirectory())
    throw new UsageError(`cannot write ${what} ${path}: it is a folder`);
}

/** Writes `text` to `path` (UsageError with the reason when it cannot); `what` names it. */
export function writeReport(path: string, text: string, what = 'report'): void {
  try {
    writeFileSync(path, text);
  } catch (e) {
    throw new UsageError(`cannot write ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
