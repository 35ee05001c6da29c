/** Writing `--report` files: the target is checked before a long run, so a typo fails at once. */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './usage.js';

/** UsageError unless `path` can be written (its folder exists, and it is not a folder). */
export function checkReportPath(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(`cannot write report ${path}: no folder ${dir}`);
  if (existsSync(path) && statSync(path).isDirectory())
    throw new UsageError(`cannot write report ${path}: it is a folder`);
}

/** Writes the report's HTML to `path` (UsageError with the reason when it cannot). */
export function writeReport(path: string, html: string): void {
  try {
    writeFileSync(path, html);
  } catch (e) {
    throw new UsageError(`cannot write report ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
