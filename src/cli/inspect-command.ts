/**
 * `ioasid inspect`: looks into a guest's translation state, as someone debugging a guest would.
 * The CLI process has no state of its own, so it builds one: it runs a bench scenario (src/bench)
 * to its end and, after the final sync, reads the unit through the inspect library (src/inspect):
 * a walk of one IOVA level by level, a device's mapped ranges, its cache entries, the unit's
 * queue and fault registers, or, with nothing asked, the devices and some IOVAs to ask about.
 */
import { Option, type Command } from 'commander';
import {
  BENCH_DEFAULTS,
  resolveBenchOptions,
  runOnce,
  SCENARIO_SPECS,
  SCENARIOS,
  type BenchOptions,
  type BenchState,
  type BenchVendor,
  type ScenarioName,
} from '../bench/index.js';
import { Access } from '../pgtable/index.js';
import { machineInfo } from '../report/index.js';
import type { CommandContext } from './context.js';
import { deviceCaches } from './inspect-cache.js';
import { inspectDevice, inspectHuman, type InspectDocument } from './inspect-output.js';
import { queuesOf, rangesOf, walkOf } from './inspect-target.js';
import { EXIT, hexOrDecimal, intIn, onOff, UsageError } from './usage.js';

/** The flags as commander parses them. */
interface InspectFlags {
  scenario?: ScenarioName;
  vendor?: BenchVendor;
  ops?: number;
  seed?: number;
  liveEntries?: number;
  guests?: number;
  dma?: boolean;
  unit?: number;
  sid?: number;
  iova?: number;
  pasid?: number;
  access?: 'r' | 'w' | 'rw';
  ranges?: boolean;
  cache?: boolean;
  queues?: boolean;
  json?: boolean;
}

/** A short run: the scenario's live mappings stay mapped, and a few hundred replaced. */
const INSPECT_DEFAULTS = { vendor: 'vtd', ops: 200 } as const;
const ACCESS = { r: Access.Read, w: Access.Write, rw: Access.Read | Access.Write } as const;
const ACCESS_NAMES = { r: 'read', w: 'write', rw: 'read+write' } as const;

/** Adds `inspect` to `program`. */
export function registerInspect(program: Command, ctx: CommandContext): void {
  program
    .command('inspect')
    .description('walk a device and IOVA level by level; dump its mapped ranges, cache entries, queue state')
    .addOption(
      new Option(
        '--scenario <name>',
        `the bench run whose end state to inspect (default ${BENCH_DEFAULTS.scenario})`,
      ).choices(SCENARIOS),
    )
    .addOption(
      new Option('--vendor <vendor>', `its unit (default ${INSPECT_DEFAULTS.vendor})`).choices(['vtd', 'smmu']),
    )
    .addOption(
      new Option('--ops <n>', `its measured operations (default ${INSPECT_DEFAULTS.ops})`).argParser(intIn(1, 1e7)),
    )
    .addOption(
      new Option('--seed <n>', `its command-stream seed (default ${BENCH_DEFAULTS.seed})`).argParser(
        intIn(0, 2 ** 32 - 1),
      ),
    )
    .addOption(
      new Option('--live-entries <n>', 'its live mappings (default: the scenario’s)').argParser(intIn(1, 2 ** 20)),
    )
    .addOption(new Option('--guests <n>', 'multi-guest: its units').argParser(intIn(1, 64)))
    .addOption(new Option('--dma <on|off>', 'its devices translate as they go (default on)').argParser(onOff))
    .addOption(new Option('--unit <n>', 'the unit (multi-guest; default 0)').argParser(intIn(0, 63)))
    .addOption(
      new Option('--sid <sid>', 'the device: source id / StreamID (default: the only one)').argParser(
        hexOrDecimal(0xffff),
      ),
    )
    .addOption(new Option('--iova <address>', 'walk this IOVA level by level').argParser(hexOrDecimal(2 ** 53 - 1)))
    .addOption(
      new Option('--pasid <n>', 'with a PASID (VT-d) or SubstreamID (SMMUv3)').argParser(hexOrDecimal(0xfffff)),
    )
    .addOption(new Option('--access <r|w|rw>', 'the walk’s access (default r)').choices(['r', 'w', 'rw']))
    .option('--ranges', "dump the device's mapped ranges")
    .option('--cache', "dump the device's IOTLB (and ATC) entries")
    .option('--queues', "dump the unit's queue and fault registers")
    .option('--json', 'write one JSON document to stdout')
    .addHelpText(
      'after',
      '\nThe state is the one `ioasid bench --scenario S --vendor V --ops N --seed N` leaves after its final\n' +
        'sync (and before its correctness probe); the same flags give the same state. With no --iova,\n' +
        '--ranges, --cache or --queues it lists the devices and a few IOVAs to ask about.\n' +
        '(Replaying a trace prefix as the state is not supported yet.)\n\n' +
        'Examples:\n' +
        '  ioasid inspect\n' +
        '  ioasid inspect --sid 0x10 --iova 0x1000001000\n' +
        '  ioasid inspect --scenario mixed --vendor smmu --sid 0x11 --ranges --cache\n' +
        '  ioasid inspect --queues --json',
    )
    .action(async (flags: InspectFlags) => ctx.done(await runInspectCommand(flags, ctx)));
}

/** The flags that choose the state, as typed: the listing's hints repeat them. */
function stateFlags(f: InspectFlags): string[] {
  const out: string[] = [];
  if (f.scenario !== undefined) out.push('--scenario', f.scenario);
  if (f.vendor !== undefined) out.push('--vendor', f.vendor);
  if (f.ops !== undefined) out.push('--ops', String(f.ops));
  if (f.seed !== undefined) out.push('--seed', String(f.seed));
  if (f.liveEntries !== undefined) out.push('--live-entries', String(f.liveEntries));
  if (f.guests !== undefined) out.push('--guests', String(f.guests));
  if (f.dma !== undefined) out.push('--dma', f.dma ? 'on' : 'off');
  return out;
}

/** The `ioasid bench` command line whose measured run ends in the state of knobs `o`. */
function benchCommand(o: BenchOptions): string {
  return [
    `ioasid bench --scenario ${o.scenario} --vendor ${o.vendor} --ops ${o.ops} --seed ${o.seed}`,
    `--live-entries ${o.liveEntries}`,
    ...(SCENARIO_SPECS[o.scenario].multiUnit ? [`--guests ${o.guests}`] : []),
    ...(o.dma ? [] : ['--dma off']),
  ].join(' ');
}

/** Checks the flags that need no state (UsageError). */
function checkFlags(f: InspectFlags): void {
  const scenario = f.scenario ?? BENCH_DEFAULTS.scenario;
  const spec = SCENARIO_SPECS[scenario];
  if (f.guests !== undefined && !spec.multiUnit)
    throw new UsageError(`--guests applies to multi-guest, not ${scenario}`);
  const units = spec.multiUnit ? (f.guests ?? BENCH_DEFAULTS.guests) : 1;
  if (f.unit !== undefined && f.unit >= units)
    throw new UsageError(`--unit ${f.unit}: scenario ${scenario} has ${units} unit${units > 1 ? 's' : ''}`);
  const needsDevice = f.iova !== undefined || f.ranges === true || f.cache === true;
  if (f.sid === undefined && needsDevice && spec.devicesPerUnit > 1)
    throw new UsageError(`--sid is needed: scenario ${scenario} has ${spec.devicesPerUnit} devices per unit`);
  if (f.pasid !== undefined && f.iova === undefined && f.ranges !== true)
    throw new UsageError('--pasid applies to --iova or --ranges');
  if (f.access !== undefined && f.iova === undefined) throw new UsageError('--access applies to --iova');
  if (f.sid !== undefined && !needsDevice) throw new UsageError('--sid needs --iova, --ranges or --cache');
}

async function runInspectCommand(f: InspectFlags, ctx: CommandContext): Promise<number> {
  checkFlags(f);
  const o = resolveBenchOptions({
    scenario: f.scenario ?? BENCH_DEFAULTS.scenario,
    vendor: f.vendor ?? INSPECT_DEFAULTS.vendor,
    ops: f.ops ?? INSPECT_DEFAULTS.ops,
    ...(f.seed !== undefined ? { seed: f.seed } : {}),
    ...(f.liveEntries !== undefined ? { liveEntries: f.liveEntries } : {}),
    ...(f.guests !== undefined ? { guests: f.guests } : {}),
    ...(f.dma !== undefined ? { dma: f.dma } : {}),
  });
  const generatedAt = new Date().toISOString();
  let doc: Omit<InspectDocument, 'state'> | undefined;
  const run = await runOnce(o, undefined, (s) => {
    doc = inspectState(s, f, { machine: machineInfo(), command: ctx.commandLine, generatedAt });
  });
  const flags = stateFlags(f);
  const full: InspectDocument = {
    ...doc!,
    state: {
      scenario: o.scenario,
      vendor: o.vendor,
      ops: o.ops,
      seed: o.seed,
      liveEntries: o.liveEntries,
      guests: SCENARIO_SPECS[o.scenario].multiUnit ? o.guests : 1,
      dma: o.dma,
      bench: benchCommand(o),
      check: {
        ok: run.correctness.ok,
        probedPages: run.correctness.probedPages,
        stale: run.correctness.stale,
        wrongAddress: run.correctness.wrongAddress,
        faults: run.correctness.faults,
      },
    },
  };
  ctx.out(f.json === true ? JSON.stringify(full) : inspectHuman(full, ['ioasid inspect', ...flags].join(' ')));
  return EXIT.ok;
}

/** Everything asked about `s`, read while the run's state is alive (UsageError for a SID it lacks). */
function inspectState(
  s: BenchState,
  f: InspectFlags,
  meta: Pick<InspectDocument, 'machine' | 'command' | 'generatedAt'>,
): Omit<InspectDocument, 'state'> {
  const unitIndex = f.unit ?? 0;
  const unit = s.units[unitIndex]!;
  const devices = s.devices.map((d) => inspectDevice(d, s.units[d.unit]!.vendor));
  const doc: Omit<InspectDocument, 'state'> = { tool: 'ioasid inspect', schema: 1, ...meta, devices };
  const onUnit = s.devices.filter((d) => d.unit === unitIndex);
  const needsDevice = f.iova !== undefined || f.ranges === true || f.cache === true;
  if (needsDevice) {
    const sid = f.sid ?? onUnit[0]!.sid;
    const dev = onUnit.find((d) => d.sid === sid);
    if (dev === undefined) {
      const sids = onUnit.map((d) => `0x${d.sid.toString(16)}`).join(', ');
      throw new UsageError(`unit ${unitIndex} has no device with SID 0x${sid.toString(16)} (its devices: ${sids})`);
    }
    const target = f.pasid === undefined ? { sid } : { sid, pasid: f.pasid };
    const access = f.access ?? 'r';
    doc.request = {
      unit: unitIndex,
      ...target,
      ...(f.iova !== undefined ? { iova: f.iova, access: ACCESS_NAMES[access] } : {}),
    };
    if (f.iova !== undefined) doc.walk = walkOf(unit, target, f.iova, ACCESS[access]);
    if (f.ranges === true) doc.ranges = rangesOf(unit, target);
    if (f.cache === true) doc.cache = deviceCaches(s.fd, unit, dev);
  }
  if (f.queues === true) doc.queues = queuesOf(unit);
  return doc;
}
