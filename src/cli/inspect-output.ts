/** `ioasid inspect`'s JSON document and human output. */
import type { BenchDeviceState, CorrectnessResult, GuestMapping } from '../bench/index.js';
import { formatCache, formatRanges, formatTrace, type RangeDump, type WalkTrace } from '../inspect/index.js';
import type { MachineInfo } from '../report/index.js';
import { machineLine } from './format.js';
import type { DeviceCacheDump, DeviceCaches } from './inspect-cache.js';
import { formatQueues, type QueueState } from './inspect-target.js';
import { textTable } from './text-table.js';

/** Mappings listed per device. */
const FIRST_MAPPINGS = 3;
const PAGE = 4096;

/** The run whose end state is inspected. */
export interface InspectedState {
  scenario: string;
  vendor: string;
  ops: number;
  seed: number;
  liveEntries: number;
  guests: number;
  dma: boolean;
  /** The `ioasid bench` command line whose run ends in this state. */
  bench: string;
  /** The run's correctness check, made after the state was inspected. */
  check: Pick<CorrectnessResult, 'ok' | 'probedPages' | 'stale' | 'wrongAddress' | 'faults'>;
}

/** A device, as the listing shows it. */
export interface InspectDevice {
  unit: number;
  vendor: string;
  sid: number;
  domain: string;
  ats: boolean;
  mappings: number;
  mappedPages: number;
  /** The first mappings by IOVA. */
  firstMappings: GuestMapping[];
  /** An IOVA in the device's window that the guest does not map (a walk of it faults). */
  unmappedIova: number;
}

/** The `--json` document of `ioasid inspect`. */
export interface InspectDocument {
  tool: 'ioasid inspect';
  schema: 1;
  machine: MachineInfo;
  command: string;
  generatedAt: string;
  state: InspectedState;
  devices: InspectDevice[];
  /** What was asked about: the unit, the device, and the request. */
  request?: { unit: number; sid: number; pasid?: number; iova?: number; access?: string };
  walk?: WalkTrace;
  ranges?: RangeDump;
  cache?: DeviceCaches;
  queues?: QueueState;
}

/** The first IOVA after a mapping that no mapping covers. */
function unmappedIova(mappings: readonly GuestMapping[]): number {
  for (let i = 0; i < mappings.length; i++) {
    const end = mappings[i]!.iova + mappings[i]!.pages * PAGE;
    if (mappings[i + 1]?.iova !== end) return end;
  }
  return 0;
}

/** The listing's view of a run's device. */
export function inspectDevice(d: BenchDeviceState, vendor: string): InspectDevice {
  return {
    unit: d.unit,
    vendor,
    sid: d.sid,
    domain: d.domain,
    ats: d.ats,
    mappings: d.mappings.length,
    mappedPages: d.mappings.reduce((n, m) => n + m.pages, 0),
    firstMappings: d.mappings.slice(0, FIRST_MAPPINGS),
    unmappedIova: unmappedIova(d.mappings),
  };
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const sidText = (sid: number): string => `0x${sid.toString(16).padStart(4, '0')}`;

function mappingText(m: GuestMapping): string {
  return m.pages === 1 ? hex(m.iova) : `${hex(m.iova)} (${m.pages} pages)`;
}

function cacheBlock(c: DeviceCacheDump): string[] {
  return [c.note, formatCache(c.dump)];
}

/** The lines that say what state this is. */
function header(doc: InspectDocument): string[] {
  const s = doc.state;
  const check = s.check.ok
    ? 'ok'
    : `FAILED: ${s.check.stale} stale, ${s.check.wrongAddress} wrong address, ${s.check.faults} faulted`;
  return [
    `ioasid inspect: the state of \`${s.bench}\` after its final sync (${s.vendor} ${s.scenario}, ` +
      `${s.ops} ops, seed ${s.seed}, ${s.liveEntries} live mappings; its check: ${check})`,
    `machine: ${machineLine(doc.machine)}`,
  ];
}

/** The devices and what to ask next; `again` is the inspect command line that rebuilds this state. */
function listing(doc: InspectDocument, again: string): string[] {
  const rows = doc.devices.map((d) => [
    String(d.unit),
    sidText(d.sid),
    d.domain,
    d.ats ? 'yes' : 'no',
    String(d.mappings),
    String(d.mappedPages),
    d.firstMappings.map(mappingText).join(', ') + (d.mappings > d.firstMappings.length ? ', …' : ''),
    hex(d.unmappedIova),
  ]);
  const d = doc.devices[0]!;
  const first = d.firstMappings[0];
  const target = `${again} --sid ${hex(d.sid)}${doc.devices.some((x) => x.unit !== 0) ? ` --unit ${d.unit}` : ''}`;
  const next = [
    ...(first !== undefined ? [[`${target} --iova ${hex(first.iova)}`, 'walk a mapped IOVA level by level']] : []),
    [`${target} --iova ${hex(d.unmappedIova)} --access w`, 'an IOVA the guest does not map: where the walk faults'],
    [`${target} --ranges --cache`, "the device's mapped ranges and its IOTLB/ATC entries"],
    [`${again} --queues`, "the unit's queue and fault registers"],
  ];
  const width = Math.max(...next.map(([c]) => c!.length));
  return [
    'devices:',
    ...textTable(
      [
        { header: 'unit', right: true },
        { header: 'SID' },
        { header: 'domain' },
        { header: 'ATS' },
        { header: 'mappings', right: true },
        { header: 'pages', right: true },
        { header: 'mapped IOVAs (the first few)' },
        { header: 'not mapped' },
      ],
      rows,
      '  ',
    ),
    '',
    'next:',
    ...next.map(([c, what]) => `  ${c!.padEnd(width)}  ${what!}`),
  ];
}

/** The human output; `again` is the inspect command line that rebuilds this state (for the listing's hints). */
export function inspectHuman(doc: InspectDocument, again: string): string {
  const out = [...header(doc), ''];
  const r = doc.request;
  const who = r === undefined ? '' : `SID ${sidText(r.sid)}${r.pasid === undefined ? '' : ` PASID ${r.pasid}`}`;
  if (doc.walk !== undefined) out.push(formatTrace(doc.walk), '');
  if (doc.ranges !== undefined) out.push(`mapped ranges of ${who}:`, formatRanges(doc.ranges), '');
  if (doc.cache !== undefined) {
    out.push(`cache entries of ${who}:`, ...cacheBlock(doc.cache.iotlb));
    if (doc.cache.atc !== undefined) out.push(...cacheBlock(doc.cache.atc));
    out.push('');
  }
  if (doc.queues !== undefined) out.push(formatQueues(doc.queues), '');
  if (r === undefined && doc.queues === undefined) out.push(...listing(doc, again), '');
  return out.join('\n').trimEnd();
}
