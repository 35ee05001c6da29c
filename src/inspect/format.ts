/*
 * The human output of `ioasid inspect`: a walk as one small table per descriptor read (where it
 * lies, the raw words, the decoded fields, what it led to), a nested walk's stage-2 walks
 * indented under the stage-1 fetch that needed them; range dumps, cache dumps and register state
 * as tables. Addresses in hex. The JSON output is the objects themselves.
 */
import { bytes, hexPad, renderPairs, renderTable } from './format-table.js';
import type {
  CacheDump,
  FieldValue,
  Fields,
  InspectFault,
  RangeDump,
  SmmuQueueState,
  SmmuRegisterState,
  VtdRegisterState,
  WalkStep,
  WalkTrace,
} from './types.js';

// Fields that hold an address (or a MAIR), shown in hex: by their name's ending.
const ADDRESS_FIELD = /(addr|address|ptr|ttb\d?|ctp|root|roottable|base|strtab|mair\d|ipa|gpa|hpa)$/i;

function fieldText(name: string, v: FieldValue): string {
  if (typeof v === 'boolean') return `${name}=${v ? 1 : 0}`;
  if (typeof v === 'string') return `${name}=${v === '' ? '-' : v}`;
  return `${name}=${ADDRESS_FIELD.test(name) ? hexPad(v) : String(v)}`;
}

/** Fields as `name=value` words, wrapped at `width` columns. */
function fieldLines(fields: Fields, width = 96): string[] {
  const lines: string[] = [];
  let line = '';
  for (const [k, v] of Object.entries(fields)) {
    const w = fieldText(k, v);
    if (line.length > 0 && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line.length === 0 ? w : `${line} ${w}`;
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

const X86_LEVELS: Record<number, string> = { [-1]: 'PML5', 0: 'PML4', 1: 'PDPT', 2: 'PD', 3: 'PT' };

/** The name of a page-table level in the format's own words. */
function levelName(s: WalkStep): string {
  const l = s.level ?? 0;
  if (s.format === 'x86-first-stage' || s.format === 'vtd-second-stage') return `${X86_LEVELS[l] ?? l} (level ${l})`;
  return `L${l}`;
}

function stepTitle(s: WalkStep, n: number): string {
  const what = s.structure === 'pte' ? `${s.format} entry, ${levelName(s)}` : s.structure;
  const index = s.index === undefined ? '' : `, index ${hexPad(s.index)}`;
  return `[${n}] ${s.stage}: ${what}${index}`;
}

function outcomeText(s: WalkStep): string {
  const next = s.fields['address'];
  const base = s.outcome === 'table' && typeof next === 'number' ? `next table ${hexPad(next)}` : s.outcome;
  return s.wouldSet === undefined ? base : `${base} (the walk would set ${s.wouldSet})`;
}

function stepBlock(s: WalkStep, n: number): string {
  const where: string[] = [];
  if (s.ipa !== undefined) where.push(`IPA ${hexPad(s.ipa, 12)}`);
  if (s.gpa !== undefined) where.push(`GPA ${hexPad(s.gpa, 12)}`);
  where.push(s.hpa >= 0 ? `HPA ${hexPad(s.hpa, 12)}` : 'HPA outside memory');
  const pairs: [string, string][] = [['at', where.join('  ')]];
  if (s.raw.length > 0) {
    for (let i = 0; i < s.raw.length; i += 4) pairs.push([i === 0 ? 'raw' : '', s.raw.slice(i, i + 4).join(' ')]);
  } else pairs.push(['raw', '(the read aborted)']);
  fieldLines(s.fields).forEach((l, i) => pairs.push([i === 0 ? 'fields' : '', l]));
  pairs.push(['outcome', outcomeText(s)]);
  const indent = s.s2 === undefined || s.stage === 'config' ? 4 : 8;
  const head = `${' '.repeat(indent - 2)}${stepTitle(s, n)}`;
  return `${head}\n${renderPairs(pairs, indent)}`;
}

const S2_PURPOSE = { table: 'the stage-1 table fetch', output: 'the output', cd: 'the CD fetch' } as const;

/** The fault line. */
function faultText(f: InspectFault): string {
  const vendor = f.vendorCode === 0 ? '' : `, ${hexPad(f.vendorCode)} ${f.vendorName}`;
  const where = f.stage === 'config' ? 'in the configuration' : `at ${f.stage} level ${f.level}`;
  const ipa = f.ipa === undefined ? '' : `, IPA ${hexPad(f.ipa)}`;
  const cls = f.eventClass === undefined ? '' : `, CLASS ${f.eventClass}`;
  const rec = f.recorded === undefined ? '' : f.recorded ? ', recorded' : ', not recorded';
  return `FAULT ${f.name} (${f.reason}) ${where}${vendor}${ipa}${cls}${rec}`;
}

/** A walk, as text. */
export function formatTrace(t: WalkTrace): string {
  const r = t.request;
  const who =
    r.devId !== undefined
      ? `device ${r.devId}`
      : `${t.target === 'vtd' ? 'SID' : 'StreamID'} ${hexPad(r.sid ?? 0, 4)}` +
        (t.target === 'vtd'
          ? ` (${((r.sid ?? 0) >>> 8).toString(16).padStart(2, '0')}:${(((r.sid ?? 0) >>> 3) & 31).toString(16).padStart(2, '0')}.${(r.sid ?? 0) & 7})`
          : '');
  const id = r.pasid === undefined ? '' : ` ${t.target === 'smmuv3' ? 'SSID' : 'PASID'} ${r.pasid}`;
  const a = r.accessBits;
  const access = [a.read ? 'read' : '', a.write ? 'write' : '', a.exec ? 'exec' : '', a.priv ? 'priv' : 'user']
    .filter((x) => x !== '')
    .join(' ');
  const out: string[] = [`${t.target} ${who}${id}  IOVA ${hexPad(r.iova)}  ${access}`];
  out.push(`translation: ${t.translation === '' ? '(none)' : t.translation}`);
  const ctx = fieldLines(t.context);
  if (ctx.length > 0) out.push(...ctx.map((l, i) => `${i === 0 ? 'context:' : '        '} ${l}`));
  out.push('');
  let s2Input = -1;
  t.steps.forEach((s, i) => {
    if (s.s2 !== undefined && s.stage !== 'config' && (s2Input !== s.s2.input || t.steps[i - 1]?.s2 === undefined)) {
      out.push(`  stage-2 walk of IPA ${hexPad(s.s2.input)} for ${S2_PURPOSE[s.s2.purpose]}:`);
    }
    s2Input = s.s2?.input ?? -1;
    out.push(stepBlock(s, i + 1));
  });
  if (t.steps.length > 0) out.push('');
  const res = t.result;
  if (res.ok) {
    const via = [
      res.ipa === undefined ? '' : `IPA ${hexPad(res.ipa)}`,
      res.gpa === undefined ? '' : `GPA ${hexPad(res.gpa)}`,
    ]
      .filter((x) => x !== '')
      .join(' → ');
    out.push(`result: ${via === '' ? '' : `${via} → `}HPA ${hexPad(res.hpa)}  (${bytes(2 ** res.pageShift)} page)`);
  } else out.push(`result: ${faultText(res.fault)}`);
  for (const n of t.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

function permsText(p: RangeDump['ranges'][number]['perms']): string {
  return [
    p.read ? 'r' : '-',
    p.write ? 'w' : '-',
    p.exec ? 'x' : '-',
    p.user === undefined ? '' : p.user ? 'u' : 's',
    p.accessFlag === false ? ' AF=0' : '',
  ].join('');
}

const SPACE_NAMES = { hpa: 'host-physical', gpa: 'guest-physical', ipa: 'intermediate' } as const;

/** A range dump, as text. */
export function formatRanges(d: RangeDump): string {
  const out = [
    `${d.format === '' ? '(no table)' : d.format}: root ${hexPad(d.root)}, outputs ${SPACE_NAMES[d.outputSpace]}; ` +
      `${bytes(d.mappedBytes)} mapped in ${d.ranges.length} run${d.ranges.length === 1 ? '' : 's'} ` +
      `(${d.tablesRead} table pages read${d.invalidEntries === 0 ? '' : `, ${d.invalidEntries} invalid entries`})`,
  ];
  if (d.ranges.length > 0) {
    out.push(
      renderTable(
        [
          { header: 'IOVA' },
          { header: 'last' },
          { header: 'output' },
          { header: 'size', right: true },
          { header: 'page', right: true },
          { header: 'perms' },
        ],
        d.ranges.map((r) => [
          hexPad(r.iova, 12),
          hexPad(r.iova + r.size - 1, 12),
          hexPad(r.output, 12),
          bytes(r.size),
          bytes(r.pageSize),
          permsText(r.perms),
        ]),
      ),
    );
  }
  for (const n of d.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

/** A cache dump, as text. */
export function formatCache(d: CacheDump): string {
  const live = d.entries.filter((e) => e.live).length;
  const head =
    `${d.table.toUpperCase()}${d.tag === undefined ? '' : ` tag ${hexPad(d.tag)}`}: ${d.entries.length} entr${d.entries.length === 1 ? 'y' : 'ies'}` +
    ` (${live} live; capacity ${d.capacity}, clock ${d.clock})`;
  if (d.entries.length === 0) return head;
  const access = (g: CacheDump['entries'][number]['granted']): string =>
    `${g.read ? 'r' : '-'}${g.write ? 'w' : '-'}${g.exec ? 'x' : '-'} ${[g.user ? 'user' : '', g.priv ? 'priv' : ''].filter((x) => x !== '').join('+')}`;
  return [
    head,
    renderTable(
      [
        { header: 'tag' },
        { header: 'domain', right: true },
        { header: 'asid', right: true },
        { header: 'IOVA' },
        { header: 'size', right: true },
        { header: 'PA' },
        { header: 'grants' },
        { header: 'stamp', right: true },
        { header: 'live' },
        { header: 'shard', right: true },
      ],
      d.entries.map((e) => [
        hexPad(e.tag),
        String(e.domain),
        String(e.asid),
        hexPad(e.iova, 12),
        bytes(e.size),
        hexPad(e.pa, 9),
        access(e.granted),
        String(e.stamp),
        e.live ? 'yes' : 'stale',
        String(e.shard),
      ]),
    ),
  ].join('\n');
}

const onOff = (b: boolean): string => (b ? 'on' : 'off');

/** A VT-d unit's register state, as text. */
export function formatVtdState(s: VtdRegisterState): string {
  const q = s.invalidationQueue;
  const f = s.faultStatus;
  const out = [
    'VT-d registers',
    renderPairs(
      [
        [
          'GSTS',
          `TES ${onOff(s.gsts.tes)}  RTPS ${onOff(s.gsts.rtps)}  QIES ${onOff(s.gsts.qies)}  IRES ${onOff(s.gsts.ires)}`,
        ],
        ['RTADDR', `${hexPad(s.rootTable.address)} (TTM ${s.rootTable.ttm}, ${s.rootTable.mode})`],
        ['IQA', `${hexPad(q.base)}  QS ${q.qs}  ${q.descriptorBits}-bit descriptors, ${q.entries} entries`],
        [
          'IQH / IQT',
          `${hexPad(q.headOffset)} / ${hexPad(q.tailOffset)}  (slots ${q.head} / ${q.tail}, ${q.pending} pending)`,
        ],
        ['IQER', `IQEI ${q.iqei} ${q.iqeiName}`],
        ['ICS', `IWC ${q.waitCompleted ? 1 : 0}`],
        ['FSTS', `PFO ${+f.pfo}  PPF ${+f.ppf}  IQE ${+f.iqe}  ICE ${+f.ice}  ITE ${+f.ite}  FRI ${f.fri}`],
        ['FECTL', `IM ${+s.faultEvent.masked}  IP ${+s.faultEvent.pending}`],
      ],
      2,
    ),
  ];
  const recs = s.faultRecords.filter((r) => r.valid);
  out.push(`  fault records: ${recs.length} of ${s.faultRecords.length} valid`);
  if (recs.length > 0) {
    out.push(
      renderTable(
        [
          { header: '#', right: true },
          { header: 'SID' },
          { header: 'address' },
          { header: 'type' },
          { header: 'PASID', right: true },
          { header: 'reason' },
        ],
        recs.map((r) => [
          String(r.index),
          hexPad(r.sid, 4),
          hexPad(r.address),
          `${r.type}${r.priv ? ' priv' : ''}${r.exec ? ' exec' : ''}`,
          r.pasid === undefined ? '-' : String(r.pasid),
          `${hexPad(r.reason, 2)} ${r.reasonName}`,
        ]),
        4,
      ),
    );
  }
  return out.join('\n');
}

function queueRow(name: string, q: SmmuQueueState): string[] {
  const state =
    q.error !== undefined && q.error !== 0
      ? `ERR ${q.error} ${q.errorName ?? ''}`
      : q.overflow === true
        ? 'overflow'
        : '';
  return [
    name,
    onOff(q.enabled),
    hexPad(q.base),
    String(2 ** q.log2Size),
    hexPad(q.prod),
    hexPad(q.cons),
    String(q.pending),
    state,
  ];
}

/** An SMMUv3's register state, as text. */
export function formatSmmuState(s: SmmuRegisterState): string {
  const c = s.cr0;
  const t = s.streamTable;
  const rows = [queueRow('CMDQ', s.cmdq), queueRow('EVTQ', s.evtq)];
  if (s.priq !== undefined) rows.push(queueRow('PRIQ', s.priq));
  return [
    'SMMUv3 registers',
    renderPairs(
      [
        [
          'CR0ACK',
          `SMMUEN ${onOff(c.smmuen)}  CMDQEN ${onOff(c.cmdqen)}  EVTQEN ${onOff(c.evtqen)}  PRIQEN ${onOff(c.priqen)}  ATSCHK ${onOff(c.atschk)}`,
        ],
        ['GBPA', c.smmuen ? '(unused: SMMUEN)' : s.gbpaAbort ? 'abort' : 'bypass'],
        [
          'GERROR',
          `${hexPad(s.gerror)} / GERRORN ${hexPad(s.gerrorn)}: ${s.activeErrors.length === 0 ? 'no active error' : s.activeErrors.join(' ')}`,
        ],
        [
          'STRTAB',
          `${hexPad(t.base)} ${t.format}, LOG2SIZE ${t.log2Size}${t.format === '2-level' ? `, SPLIT ${t.split}` : ''}`,
        ],
      ],
      2,
    ),
    renderTable(
      [
        { header: 'queue' },
        { header: 'enabled' },
        { header: 'base' },
        { header: 'entries', right: true },
        { header: 'PROD' },
        { header: 'CONS' },
        { header: 'pending', right: true },
        { header: 'state' },
      ],
      rows,
    ),
  ].join('\n');
}
