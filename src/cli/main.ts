#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IommufdError } from '../util/errors.js';
import { parseFlags, UsageError } from './args.js';
import { BENCH_FLAGS, benchOptions, formatBench, runBench } from './bench.js';

const USAGE = `usage: ioasid <command> [flags]

commands:
  bench     create an IOAS, map memory, attach a mock device, run DMA translations, print throughput
            --translations N   translations to run (default 1000000)
            --map-mib N        MiB to map (default 64)
            --memory-mib N     physical memory in MiB (default 256)
            --no-huge-pages    map with 2 KiB pages only (HUGE_PAGES option 0)
            --json             print the result as one JSON line
  help      print this message`;

/** Runs the CLI with `argv` (without node and the script); returns the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return 0;
      case 'bench': {
        const flags = parseFlags(rest, BENCH_FLAGS);
        if (flags['help'] === true) {
          console.log(USAGE);
          return 0;
        }
        const opts = benchOptions(flags);
        const result = await runBench(opts);
        console.log(flags['json'] === true ? JSON.stringify({ ...opts, ...result }) : formatBench(opts, result));
        return result.faults === 0 ? 0 : 1;
      }
      default:
        throw new UsageError(`unknown command '${command}' (try 'ioasid help')`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`ioasid: ${e.message}`);
      return 2;
    }
    if (e instanceof IommufdError) {
      console.error(`ioasid: ${e.message}`);
      return 1;
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

const invoked = isEntryPoint();
if (invoked) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`ioasid: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exitCode = 70;
    },
  );
}
