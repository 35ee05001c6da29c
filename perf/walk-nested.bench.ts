/**
 * The cost of a hardware-nested (two-dimensional) page walk against single-stage walks, for both
 * vendors, with the real walkers of src/pgtable called directly (no IOTLB, no device lookup):
 *   (a) x86 first stage alone          x86FirstStageWalk over the guest's RAM (GPA = address)
 *   (b) VT-d second stage alone        vtdSecondStageWalk of the data GPAs, in host memory
 *   (c) x86 nested                     x86NestedWalk: (a) with every table address and the output through (b)
 *   (d) Arm stage 1 alone              armS1Walk over the guest's RAM (IPA = address)
 *   (e) Arm stage 2 alone              armS2Walk of the data IPAs, in host memory
 *   (f) Arm nested                     armNestedWalk: (d) with every table address and the output through (e)
 *
 * Layout, per vendor (as in test/pgtable/{x86,arm}-nested.test.ts): host memory holds the stage-2
 * table, then guest RAM; the stage-1 table lives in guest RAM and its table pointers are guest
 * physical. Both stages are 4-level, 48-bit input, 4 KiB granule, 4 KiB leaves only (Arm stage 2:
 * S2T0SZ = 16, SL0 = 2, start level 0, no concatenation). `--pages` 4 KiB pages (default 1024,
 * 4 MiB) are mapped at distinct pseudo-random IOVAs inside a 4 GiB window at 0x40_0000_0000, each
 * to its own data GPA/IPA; stage 2 maps all of guest RAM (the table pages) and the data GPAs/IPAs
 * in 4 KiB pages to synthetic host addresses that no walk reads. Every walk is a full, successful
 * walk: a pseudo-random sequence of those pages, reads and writes alternating; the single-stage
 * stage-2 walks translate the same pages' data addresses.
 *
 * Descriptor reads per walk (analytical; a "read" is one 8-byte descriptor fetch; the walkers model
 * no walk caches): a single-stage 4-level walk reads 4. The nested walk reads the 4 stage-1
 * descriptors, and translates 5 addresses through a 4-level stage 2 (the stage-1 root, the 3
 * next-level tables and the output), 5 x 4 = 20: (4 + 1) x (4 + 1) - 1 = 24. In JavaScript each
 * descriptor fetch is 3 loads (Atomics.load of the valid word, the high word, the valid word again).
 *
 * Baseline: the vendor's single-stage stage-1 walk, (a) or (d), measured interleaved in the same
 * run; "ratio" is walks/s of the row ÷ walks/s of the baseline (the median of the per-run ratios),
 * and "cost" is its inverse. One warm-up run is discarded.
 *
 * Run: npm run build && node dist/perf/walk-nested.bench.js
 * Flags: --runs N (default 7), --walks N (walks per case per run, default 1000000),
 *        --pages N (default 1024), --json (one JSON document on stdout instead of the table)
 */
import { intFlag, machineLine, median } from './common.js';
import { FrameAllocator, GuestRam, SystemMemory, type PhysMemory } from '../src/memory/index.js';
import {
  Access,
  armNestedWalk,
  armS1Codec,
  armS1Config,
  armS1Walk,
  armS2Codec,
  armS2Config,
  armS2Walk,
  packWalkConfig,
  Prot,
  RadixPageTable,
  vtdSecondStageCodec,
  vtdSecondStageWalk,
  WalkFault,
  x86FirstStageCodec,
  x86FirstStageWalk,
  x86NestedWalk,
} from '../src/pgtable/index.js';

const NAME = 'walk-nested.bench';
const RUNS = intFlag(NAME, 'runs', 7);
const WALKS = intFlag(NAME, 'walks', 1_000_000);
const PAGES = intFlag(NAME, 'pages', 1024);
const JSON_OUT = process.argv.slice(2).includes('--json');

const PAGE = 4096;
const MIB = 2 ** 20;
const IOVA_BASE = 0x40_0000_0000; // 1 GiB aligned, below 2^47 (canonical for x86)
const IOVA_WINDOW_PAGES = 2 ** 20; // 4 GiB: shared upper levels, scattered level-2/3 tables
const DATA_IPA = 2 ** 32; // data GPAs/IPAs: above guest RAM
const DATA_PA = 2 ** 44; // synthetic host addresses, beyond host memory (never read)
const READS_SINGLE = 4;
const READS_NESTED = (4 + 1) * (4 + 1) - 1; // 24
const RW = Prot.Read | Prot.Write;

if (PAGES > IOVA_WINDOW_PAGES / 2) {
  console.error(`${NAME}: --pages must be at most ${IOVA_WINDOW_PAGES / 2}`);
  process.exit(2);
}

/** xorshift32, so every run and both vendors use the same pages and order. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

// Page k is at IOVA IOVAS_BY_PAGE[k] and data address DATA_IPA + k * 4096.
const IOVAS_BY_PAGE: number[] = [];
{
  const next = rng(0x2545f491);
  const used = new Set<number>();
  while (IOVAS_BY_PAGE.length < PAGES) {
    const slot = next() % IOVA_WINDOW_PAGES;
    if (used.has(slot)) continue;
    used.add(slot);
    IOVAS_BY_PAGE.push(IOVA_BASE + slot * PAGE);
  }
}

/** The walk sequence: IOVA, the data address stage 1 yields for it, the final host address. */
const SEQ_LEN = 1 << 16;
const SEQ_MASK = SEQ_LEN - 1;
const SEQ_IOVA = new Float64Array(SEQ_LEN);
const SEQ_IPA = new Float64Array(SEQ_LEN);
const SEQ_PA = new Float64Array(SEQ_LEN);
{
  const next = rng(0x9e3779b9);
  for (let i = 0; i < SEQ_LEN; i++) {
    const r = next();
    const k = r % PAGES;
    const off = (r >>> 20) & 0xff8;
    SEQ_IOVA[i] = IOVAS_BY_PAGE[k]! + off;
    SEQ_IPA[i] = DATA_IPA + k * PAGE + off;
    SEQ_PA[i] = DATA_PA + k * PAGE + off;
  }
}
const accessOf = (i: number): number => ((i & 1) === 0 ? Access.Read : Access.Write);

/** One vendor's two stages: host memory with stage 2, guest RAM with stage 1. */
interface Nest {
  /** Host physical memory (stage 2's tables, and guest RAM inside it). */
  host: Int32Array;
  /** Guest RAM alone, address = GPA/IPA (stage 1's tables). */
  guest: Int32Array;
  s1Root: number;
  s1Cfg: number;
  s2Root: number;
  s2Cfg: number;
  s1Tables: number;
}

function build(vendor: 'x86' | 'arm'): Nest {
  const ramBytes = Math.ceil(((3 * PAGES + 64) * PAGE) / (2 * MIB)) * 2 * MIB;
  const sys = new SystemMemory(ramBytes + 16 * MIB);
  const s2c = vendor === 'x86' ? vtdSecondStageCodec(48) : armS2Codec(armS2Config(16, 2));
  const s2 = new RadixPageTable(sys.phys, sys.frames, s2c);
  const ram = new GuestRam(sys.phys, sys.frames, ramBytes);
  const gp: PhysMemory = ram.guestPhys();
  const guestFrames = new FrameAllocator(gp);
  guestFrames.alloc(); // keep GPA/IPA 0 out of use
  const s1c = vendor === 'x86' ? x86FirstStageCodec(48) : armS1Codec(armS1Config(16));
  const s1 = new RadixPageTable(gp, guestFrames, s1c);
  for (let k = 0; k < PAGES; k++) s1.map(IOVAS_BY_PAGE[k]!, PAGE, () => DATA_IPA + k * PAGE, RW, false);
  s2.map(0, ram.bytes, (o) => ram.basePa + o, RW, false); // the stage-1 table pages
  s2.map(DATA_IPA, PAGES * PAGE, (o) => DATA_PA + o, RW, false);
  if (s1c.startLevel !== 0 || s2c.startLevel !== 0 || s2c.startEntries !== 512)
    throw new Error('expected 4-level tables at both stages');
  const s1Tables = guestFrames.inUse - 1; // less the frame that keeps GPA/IPA 0 out of use
  return {
    host: sys.phys.i32,
    guest: gp.i32,
    s1Root: s1.rootPa,
    s1Cfg: packWalkConfig(s1c.startLevel, 48, 48),
    s2Root: s2.rootPa,
    s2Cfg: packWalkConfig(s2c.startLevel, 48, 48),
    s1Tables,
  };
}

// One loop per walker, so that each call site stays monomorphic. Each returns an XOR of the low
// 16 bits of the results, checked against the expected one.

function loopX86S1(n: Nest, walks: number, f: WalkFault): number {
  const { guest, s1Root, s1Cfg } = n;
  let x = 0;
  for (let i = 0; i < walks; i++)
    x ^= x86FirstStageWalk(guest, s1Root, s1Cfg, SEQ_IOVA[i & SEQ_MASK]!, accessOf(i), f) & 0xffff;
  return x;
}

function loopVtdS2(n: Nest, walks: number, f: WalkFault): number {
  const { host, s2Root, s2Cfg } = n;
  let x = 0;
  for (let i = 0; i < walks; i++)
    x ^= vtdSecondStageWalk(host, s2Root, s2Cfg, SEQ_IPA[i & SEQ_MASK]!, accessOf(i), f) & 0xffff;
  return x;
}

function loopX86Nested(n: Nest, walks: number, f: WalkFault): number {
  const { host, s1Root, s1Cfg, s2Root, s2Cfg } = n;
  let x = 0;
  for (let i = 0; i < walks; i++)
    x ^= x86NestedWalk(host, s1Root, s1Cfg, s2Root, s2Cfg, SEQ_IOVA[i & SEQ_MASK]!, accessOf(i), f) & 0xffff;
  return x;
}

function loopArmS1(n: Nest, walks: number, f: WalkFault): number {
  const { guest, s1Root, s1Cfg } = n;
  let x = 0;
  for (let i = 0; i < walks; i++)
    x ^= armS1Walk(guest, s1Root, s1Cfg, SEQ_IOVA[i & SEQ_MASK]!, accessOf(i), f) & 0xffff;
  return x;
}

function loopArmS2(n: Nest, walks: number, f: WalkFault): number {
  const { host, s2Root, s2Cfg } = n;
  let x = 0;
  for (let i = 0; i < walks; i++) x ^= armS2Walk(host, s2Root, s2Cfg, SEQ_IPA[i & SEQ_MASK]!, accessOf(i), f) & 0xffff;
  return x;
}

function loopArmNested(n: Nest, walks: number, f: WalkFault): number {
  const { host, s1Root, s1Cfg, s2Root, s2Cfg } = n;
  let x = 0;
  for (let i = 0; i < walks; i++)
    x ^= armNestedWalk(host, s1Root, s1Cfg, s2Root, s2Cfg, SEQ_IOVA[i & SEQ_MASK]!, accessOf(i), f) & 0xffff;
  return x;
}

interface Case {
  vendor: 'x86' | 'arm';
  id: string;
  what: string;
  reads: number;
  /** The timed loop. */
  loop: (n: Nest, walks: number, f: WalkFault) => number;
  /** One walk, for the check before timing (its own call site, not the timed one). */
  one: (n: Nest, input: number, access: number, f: WalkFault) => number;
  /** Walk i's input address and expected result. */
  input: Float64Array;
  want: Float64Array;
}

const CASES: readonly Case[] = [
  {
    vendor: 'x86',
    id: 'a',
    what: 'x86 first stage alone',
    reads: READS_SINGLE,
    loop: loopX86S1,
    one: (n, v, a, f) => x86FirstStageWalk(n.guest, n.s1Root, n.s1Cfg, v, a, f),
    input: SEQ_IOVA,
    want: SEQ_IPA,
  },
  {
    vendor: 'x86',
    id: 'b',
    what: 'VT-d second stage alone',
    reads: READS_SINGLE,
    loop: loopVtdS2,
    one: (n, v, a, f) => vtdSecondStageWalk(n.host, n.s2Root, n.s2Cfg, v, a, f),
    input: SEQ_IPA,
    want: SEQ_PA,
  },
  {
    vendor: 'x86',
    id: 'c',
    what: 'x86 nested (first through second stage)',
    reads: READS_NESTED,
    loop: loopX86Nested,
    one: (n, v, a, f) => x86NestedWalk(n.host, n.s1Root, n.s1Cfg, n.s2Root, n.s2Cfg, v, a, f),
    input: SEQ_IOVA,
    want: SEQ_PA,
  },
  {
    vendor: 'arm',
    id: 'd',
    what: 'Arm stage 1 alone',
    reads: READS_SINGLE,
    loop: loopArmS1,
    one: (n, v, a, f) => armS1Walk(n.guest, n.s1Root, n.s1Cfg, v, a, f),
    input: SEQ_IOVA,
    want: SEQ_IPA,
  },
  {
    vendor: 'arm',
    id: 'e',
    what: 'Arm stage 2 alone',
    reads: READS_SINGLE,
    loop: loopArmS2,
    one: (n, v, a, f) => armS2Walk(n.host, n.s2Root, n.s2Cfg, v, a, f),
    input: SEQ_IPA,
    want: SEQ_PA,
  },
  {
    vendor: 'arm',
    id: 'f',
    what: 'Arm nested (stage 1 through stage 2)',
    reads: READS_NESTED,
    loop: loopArmNested,
    one: (n, v, a, f) => armNestedWalk(n.host, n.s1Root, n.s1Cfg, n.s2Root, n.s2Cfg, v, a, f),
    input: SEQ_IOVA,
    want: SEQ_PA,
  },
];

/** The XOR a loop of `walks` walks should return. */
function expectedXor(want: Float64Array, walks: number): number {
  let x = 0;
  for (let i = 0; i < walks; i++) x ^= want[i & SEQ_MASK]! & 0xffff;
  return x;
}

/** Walks the whole sequence once and checks every result: every timed walk is a full, successful one. */
function validate(c: Case, n: Nest, f: WalkFault): void {
  for (let i = 0; i < SEQ_LEN; i++) {
    const r = c.one(n, c.input[i]!, accessOf(i), f);
    if (r !== c.want[i])
      throw new Error(`(${c.id}) ${c.what}: walk ${i} of 0x${c.input[i]!.toString(16)} gave ${r}, not ${c.want[i]}`);
  }
}

interface Row {
  vendor: string;
  id: string;
  what: string;
  walksPerSec: number;
  nsPerWalk: number;
  readsPerWalk: number;
  nsPerRead: number;
  ratio: number;
  cost: number;
  runs: number[];
}

function main(): void {
  const nests = { x86: build('x86'), arm: build('arm') };
  const f = new WalkFault();
  for (const c of CASES) validate(c, nests[c.vendor], f);
  const want = CASES.map((c) => expectedXor(c.want, WALKS));

  const rates = CASES.map((): number[] => []);
  for (let r = 0; r < RUNS + 1; r++) {
    CASES.forEach((c, j) => {
      const t0 = performance.now();
      const x = c.loop(nests[c.vendor], WALKS, f);
      const rate = WALKS / ((performance.now() - t0) / 1000);
      if (x !== want[j]) throw new Error(`(${c.id}) ${c.what}: checksum ${x}, expected ${want[j]}`);
      if (r > 0) rates[j]!.push(rate);
    });
  }

  const rows: Row[] = CASES.map((c, j) => {
    const base = CASES.findIndex((b) => b.vendor === c.vendor); // (a) or (d): the stage-1 walk
    const walksPerSec = median(rates[j]!);
    const ratio = median(rates[j]!.map((v, r) => v / rates[base]![r]!));
    return {
      vendor: c.vendor,
      id: c.id,
      what: c.what,
      walksPerSec,
      nsPerWalk: 1e9 / walksPerSec,
      readsPerWalk: c.reads,
      nsPerRead: 1e9 / walksPerSec / c.reads,
      ratio,
      cost: 1 / ratio,
      runs: rates[j]!,
    };
  });

  const setup = {
    pages: PAGES,
    mappedBytes: PAGES * PAGE,
    iovaWindow: `0x${IOVA_BASE.toString(16)} + 4 GiB`,
    s1TableFrames: { x86: nests.x86.s1Tables, arm: nests.arm.s1Tables },
    levels: '4 + 4, 48-bit, 4 KiB leaves at both stages',
  };
  if (JSON_OUT) {
    console.log(
      JSON.stringify(
        {
          bench: NAME,
          machine: machineLine(),
          runs: RUNS,
          walksPerRun: WALKS,
          ...setup,
          baseline: 'the same vendor stage-1 walk, (a) or (d)',
          rows,
        },
        null,
        2,
      ),
    );
    return;
  }

  console.log(machineLine());
  console.log(
    `runs: ${RUNS} (medians, 1 warm-up discarded), walks per case per run: ${WALKS}; ${PAGES} x 4 KiB pages (${(PAGES * PAGE) / MIB} MiB) at scattered IOVAs in ${setup.iovaWindow}; ${setup.levels}; stage-1 tables: x86 ${setup.s1TableFrames.x86} frames, Arm ${setup.s1TableFrames.arm} frames`,
  );
  console.log('reads = 8-byte descriptor fetches per walk (analytical): single stage 4, nested (4+1)*(4+1)-1 = 24\n');
  const head = ['', 'walk', 'walks/s', 'ns/walk', 'reads', 'ns/read', 'ratio to S1', 'cost x'];
  const body = rows.map((w) => [
    `(${w.id})`,
    w.what,
    `${(w.walksPerSec / 1e6).toFixed(2)} M`,
    w.nsPerWalk.toFixed(0),
    String(w.readsPerWalk),
    w.nsPerRead.toFixed(1),
    w.ratio.toFixed(3),
    w.cost.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((s, i) => (i < 2 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
}

main();
