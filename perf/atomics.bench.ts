/**
 * Micro-benchmark for the IOTLB slot layout (issue 4): the cost of Atomics.load against a plain
 * load of an Int32Array over a SharedArrayBuffer, in optimized code, for the two access patterns
 * a lookup has: sequential words of one slot, and random slots of a large table.
 *
 * The last two rows load through a shared WebAssembly.Memory instead: what the hot paths'
 * atomics would cost if their buffers were wasm memories (issue 9's T6 profile: about 27
 * Atomics calls per recoverable fault).
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

/**
 * A shared WebAssembly.Memory of `bytes` (its buffer is a SharedArrayBuffer, so Int32Array views
 * work as on any other) with two exports, hand-assembled (no toolchain needed): `ld(addr)`, an
 * i32.atomic.load of byte address `addr`, and `sum(addr, n)`, n atomic loads 8 bytes apart
 * inside wasm. On x86-64 a wasm atomic load is a plain MOV; V8 11 (Node 20) does not inline
 * Atomics.load into optimized JS but calls a builtin.
 */
/** The WebAssembly API, as far as this file uses it (the project's lib settings omit the DOM's types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: ArrayBufferLike };
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

function wasmAtomics(bytes: number): {
  i32: Int32Array;
  ld: (addr: number) => number;
  sum: (addr: number, n: number) => number;
} {
  const leb = (n: number): number[] => {
    const o: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      o.push(b);
    } while (n !== 0);
    return o;
  };
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
  const name = (t: string): number[] => [...leb(t.length), ...Array.from(t, (c) => c.charCodeAt(0))];
  const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
  const pages = bytes / 65536;
  const I32 = 0x7f;
  const ld = [0x00, 0x20, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x0b]; // local.get 0; i32.atomic.load; end
  // sum: locals s, i; block { loop { if i >= n break; s += load(addr + i*8); i++ } }; s
  const sum = [
    0x01,
    0x02,
    I32,
    0x02,
    0x40,
    0x03,
    0x40,
    0x20,
    0x03,
    0x20,
    0x01,
    0x4f,
    0x0d,
    0x01,
    0x20,
    0x02,
    0x20,
    0x00,
    0x20,
    0x03,
    0x41,
    0x03,
    0x74,
    0x6a,
    0xfe,
    0x10,
    0x02,
    0x00,
    0x6a,
    0x21,
    0x02,
    0x20,
    0x03,
    0x41,
    0x01,
    0x6a,
    0x21,
    0x03,
    0x0c,
    0x00,
    0x0b,
    0x0b,
    0x20,
    0x02,
    0x0b,
  ];
  const module = new wasmApi.Module(
    new Uint8Array([
      0x00,
      0x61,
      0x73,
      0x6d,
      1,
      0,
      0,
      0,
      ...section(
        1,
        vec([
          [0x60, 1, I32, 1, I32],
          [0x60, 2, I32, I32, 1, I32],
        ]),
      ),
      ...section(2, vec([[...name('env'), ...name('mem'), 0x02, 0x03, ...leb(pages), ...leb(pages)]])),
      ...section(3, vec([[0], [1]])),
      ...section(
        7,
        vec([
          [...name('ld'), 0, 0],
          [...name('sum'), 0, 1],
        ]),
      ),
      ...section(
        10,
        vec([
          [...leb(ld.length), ...ld],
          [...leb(sum.length), ...sum],
        ]),
      ),
    ]),
  );
  const mem = new wasmApi.Memory({ initial: pages, maximum: pages, shared: true });
  const e = new wasmApi.Instance(module, { env: { mem } }).exports as {
    ld: (addr: number) => number;
    sum: (addr: number, n: number) => number;
  };
  if (!(mem.buffer instanceof SharedArrayBuffer))
    throw new Error('a shared WebAssembly.Memory gave no SharedArrayBuffer');
  return { i32: new Int32Array(mem.buffer), ld: e.ld, sum: e.sum };
}

function wasmCallSeq(ld: (addr: number) => number): number {
  let s = 0;
  for (let i = 0; i < N; i++) s += ld((i & 1023) << 2);
  return s;
}
function wasmLoopSeq(sum: (addr: number, n: number) => number): number {
  let s = 0;
  for (let i = 0; i < N / 8; i++) s += sum(((i * 8) & 1023) << 2, 8);
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
  const wasm = wasmAtomics(2 ** 20);
  for (let i = 0; i < 1024; i++) wasm.i32[i] = i;
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
    ['wasm atomic load, one JS->wasm call each (hot in L1)', () => wasmCallSeq(wasm.ld), N],
    ['wasm atomic loads, 8 per JS->wasm call (hot in L1)', () => wasmLoopSeq(wasm.sum), N],
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
