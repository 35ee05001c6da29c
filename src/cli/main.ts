#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IommufdError } from '../util/errors.js';
import { parseFlags, UsageError } from './args.js';
import { BENCH_FLAGS, benchOptions, formatBench, runBench } from './bench.js';
import { formatSmmuBench, runSmmuBench, type SmmuBenchOptions } from './bench-smmu.js';
import { formatVtdBench, runVtdBench, type VtdBenchOptions } from './bench-vtd.js';

const USAGE = `usage: ioasid <command> [flags]

commands:
  bench     three workloads, each printed on one line:
            mock: create an IOAS, map memory, attach a mock device, run DMA translations
            vtd:  a Linux-like guest drives an emulated VT-d unit: map, DMA, unmap with a
                  page-selective invalidation and a wait descriptor; prints descriptors/s and
                  the unmap+wait latency
            smmu: a Linux-like guest drives an emulated SMMUv3: map, DMA, unmap with TLBI_NH_VA
                  commands and a CMD_SYNC; prints commands/s and the unmap+CMD_SYNC latency
            --workload W       mock, vtd, smmu or all (default all)
            --vtd-cycles N     map/DMA/unmap cycles of the vtd workload (default 20000)
            --vtd-policy P     strict or lazy (default strict)
            --vtd-mode M       legacy, scalable, or scalable-fl (first-level domains; default legacy)
            --smmu-cycles N    map/DMA/unmap cycles of the smmu workload (default 20000)
            --smmu-policy P    strict or lazy (default strict)
            --smmu-pages N     pages per map/unmap, 1-512 (default 1)
            --smmu-no-ril      the unit advertises no range invalidation (one TLBI per page)
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
        const workload = flags['workload'] ?? 'all';
        if (workload !== 'mock' && workload !== 'vtd' && workload !== 'smmu' && workload !== 'all')
          throw new UsageError(`--workload must be mock, vtd, smmu or all, got '${String(workload)}'`);
        const vtd = vtdOptions(flags);
        const smmu = smmuOptions(flags);
        let ok = true;
        // --json: one document, with one member per workload run.
        const doc: Record<string, unknown> = {};
        if (workload === 'mock' || workload === 'all') {
          const result = await runBench(opts);
          if (flags['json'] === true) doc['mock'] = { ...opts, ...result };
          else console.log(formatBench(opts, result));
          ok &&= result.faults === 0;
        }
        if (workload === 'vtd' || workload === 'all') {
          const r = await runVtdBench(vtd);
          if (flags['json'] === true) doc['vtd'] = { ...vtd, ...r };
          else console.log(formatVtdBench(vtd, r));
          ok &&= r.faults === 0 && r.staleHits === 0;
        }
        if (workload === 'smmu' || workload === 'all') {
          const r = await runSmmuBench(smmu);
          if (flags['json'] === true) doc['smmu'] = { ...smmu, ...r };
          else console.log(formatSmmuBench(smmu, r));
          ok &&= r.faults === 0 && r.staleHits === 0;
        }
        if (flags['json'] === true) console.log(JSON.stringify(doc));
        return ok ? 0 : 1;
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

function vtdOptions(flags: Record<string, unknown>): VtdBenchOptions {
  const cycles = (flags['vtd-cycles'] as number | undefined) ?? 20_000;
  if (cycles < 1 || cycles > 10_000_000) throw new UsageError('--vtd-cycles must be between 1 and 10000000');
  const policy = flags['vtd-policy'] ?? 'strict';
  if (policy !== 'strict' && policy !== 'lazy') throw new UsageError(`--vtd-policy must be strict or lazy`);
  const mode = flags['vtd-mode'] ?? 'legacy';
  if (mode !== 'legacy' && mode !== 'scalable' && mode !== 'scalable-fl')
    throw new UsageError(`--vtd-mode must be legacy, scalable or scalable-fl`);
  return { cycles, policy, mode };
}

function smmuOptions(flags: Record<string, unknown>): SmmuBenchOptions {
  const cycles = (flags['smmu-cycles'] as number | undefined) ?? 20_000;
  if (cycles < 1 || cycles > 10_000_000) throw new UsageError('--smmu-cycles must be between 1 and 10000000');
  const policy = flags['smmu-policy'] ?? 'strict';
  if (policy !== 'strict' && policy !== 'lazy') throw new UsageError(`--smmu-policy must be strict or lazy`);
  const pages = (flags['smmu-pages'] as number | undefined) ?? 1;
  if (pages < 1 || pages > 512) throw new UsageError('--smmu-pages must be between 1 and 512');
  return { cycles, policy, pages, ril: flags['smmu-no-ril'] !== true };
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
