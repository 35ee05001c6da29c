/**
 * Micro-benchmark for the IOTLB slot layout (issue 4): the cost of Atomics.load against a plain
 * load of an Int32Array over a SharedArrayBuffer, in optimized code, for the two access patterns
 * a lookup has: sequential words of one slot, and random slots of a large table.
 *
 * Run: npm run build && node dist/perf/atomics.bench.js [--runs N]
 */
import { intFlag, machineLine, median } from './common.js';

const RUNS = intFlag('atomics.bench', 'runs', 7);
const N = 20_000_000;

function plainSeq(a: Int32Array): number {
  let s = 0;
  for (let i = 0; i < N; i++) s += a[i & 1023]!;
  return s;
}
function atomicSeq(a: Int32Array): number {
  let s = 0;
  for (let i = 0; i < N; i++) s += Atomics.load(a, i & 1023);
  return s;
}
function plainRandom(a: Int32Array, idx: Int32Array): number {
  let s = 0;
  for (let i = 0; i < N; i++) s += a[idx[i & 65535]!]!;
  return s;
}
function atomicRandom(a: Int32Array, idx: Int32Array): number {
  let s = 0;
  for (let i = 0; i < N; i++) s += Atomics.load(a, idx[i & 65535]!);
  return s;
}
/** A versioned read as a lookup does it: load the version, two payload words, the version again. */
function versioned(a: Int32Array, idx: Int32Array, atomicPayload: boolean): number {
  let s = 0;
  for (let i = 0; i < N / 4; i++) {
    const at = idx[i & 65535]! & ~7;
    const v1 = Atomics.load(a, at);
    const k = atomicPayload ? Atomics.load(a, at + 1) : a[at + 1]!;
    const p = atomicPayload ? Atomics.load(a, at + 2) : a[at + 2]!;
    const v2 = Atomics.load(a, at);
    if (v1 === v2) s += k + p;
  }
  return s;
}

function rate(fn: () => number, ops: number): number {
  const t0 = performance.now();
  const r = fn();
  const ms = performance.now() - t0;
  if (r === 0.5) console.log(r);
  return ops / (ms / 1000);
}

function main(): void {
  console.log(machineLine());
  const big = new Int32Array(new SharedArrayBuffer(64 * 2 ** 20)); // 64 MiB: larger than the caches
  const idx = new Int32Array(65536);
  for (let i = 0, x = 12345; i < idx.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    idx[i] = x % big.length;
  }
  const rows: [string, () => number, number][] = [
    ['plain load, sequential (hot in L1)', () => plainSeq(big), N],
    ['Atomics.load, sequential (hot in L1)', () => atomicSeq(big), N],
    ['plain load, random over 64 MiB', () => plainRandom(big, idx), N],
    ['Atomics.load, random over 64 MiB', () => atomicRandom(big, idx), N],
    ['versioned slot read, payload plain', () => versioned(big, idx, false), N / 4],
    ['versioned slot read, payload atomic', () => versioned(big, idx, true), N / 4],
  ];
  for (const [, fn] of rows) fn(); // warm up: every function optimized before timing
  const results = rows.map(([name, fn, ops]) => {
    const xs: number[] = [];
    for (let r = 0; r < RUNS; r++) xs.push(rate(fn, ops));
    return [name, median(xs)] as const;
  });
  const base = results[0]![1];
  for (const [name, r] of results)
    console.log(`${name}: ${(r / 1e6).toFixed(0)} M/s (ratio to a plain sequential load ${(r / base).toFixed(2)})`);
}

main();
