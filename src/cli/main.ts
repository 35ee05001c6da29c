#!/usr/bin/env node
/**
 * The `ioasid` entry point: runs the command line and turns every outcome into an exit status
 * (usage.ts EXIT): a usage or input error is one line on stderr, an unexpected one a stack trace
 * with status 70.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { BenchOptionError } from '../bench/index.js';
import type { CommandContext } from './context.js';
import { buildProgram, isHelpOrVersion } from './program.js';
import { EXIT, UsageError } from './usage.js';

/** ioasid's version from its package.json (two folders up from src/cli or dist/src/cli). */
function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ioasid' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next
    }
  }
  return 'unknown';
}

/** Runs the CLI with `argv` (without node and the script); returns the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  let status: number = EXIT.ok;
  const ctx: CommandContext = {
    commandLine: ['ioasid', ...argv].join(' '),
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    done: (s) => {
      status = s;
    },
  };
  const program = buildProgram(ctx, { version: packageVersion() });
  if (argv.length === 0) {
    process.stderr.write(program.helpInformation());
    return EXIT.usage;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return status;
  } catch (e) {
    if (isHelpOrVersion(e)) return EXIT.ok;
    // commander printed its own one-line message (program.ts outputError).
    if (e instanceof CommanderError) return EXIT.usage;
    if (e instanceof UsageError || e instanceof BenchOptionError) {
      ctx.err(`ioasid: ${e.message}`);
      return EXIT.usage;
    }
    throw e;
  }
}

/** Whether this module is the process entry point (also through npm's bin symlink). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `ioasid … | head`: a closed pipe ends the output, not with a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.ok);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`ioasid: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exitCode = EXIT.internal;
    },
  );
}
