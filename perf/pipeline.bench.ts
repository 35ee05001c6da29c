/**
 * T1 and T2 (issue 4).
 * T1: ops/s of the invalidation pipeline for a mixed stream (80% page ranges, 15% domain flushes,
 *     5% global flushes), swept over shards and batch sizes, inline and on 2 workers. Baseline:
 *     a one-thread ring that enqueues and dequeues the same 16-byte records.
 * T2: barrier latency, p50/p99, for the strict pattern (one invalidation and a barrier per
 *     submit, on the calling thread). Baseline: a shared-memory spin round trip to a worker.
 *
 * Run: npm run build && node dist/perf/pipeline.bench.js [--ops N]
 */
import { Worker } from 'node:worker_threads';
import { Iotlb } from '../src/cache/index.js';
import { Op, OpList } from '../src/ops/index.js';
import { InvalidationPipeline } from '../src/pipeline/index.js';
import { intFlag, machineLine, median } from './common.js';

const TOTAL = intFlag('pipeline.bench', 'ops', 200_000);
const TAGS = 8;

function stream(batch: number, seed: number): OpList {
  const ops = new OpList(batch + 1);
  let x = seed;
  for (let i = 0; i < batch; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const kind = x % 100;
    const tag = 1 + (x % TAGS);
    if (kind < 80) ops.push(Op.IotlbRange, i, tag, 0, ((x >>> 8) % 16384) * 4096, 1 + (x % 16));
    else if (kind < 95) ops.push(Op.IotlbTag, i, tag);
    else ops.push(Op.IotlbAll, i);
  }
  ops.push(Op.Barrier, batch);
  return ops;
}

function ringBaseline(n: number): number {
  const ring = new Uint32Array(4 * 1024);
  let head = 0;
  let tail = 0;
  let sum = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const at = (head & 1023) * 4;
    ring[at] = 5;
    ring[at + 1] = i;
    ring[at + 2] = i * 4096;
    ring[at + 3] = 1;
    head++;
    const bt = (tail & 1023) * 4;
    sum += ring[bt]! + ring[bt + 2]!;
    tail++;
  }
  if (sum === 0.5) console.log('');
  return n / ((performance.now() - t0) / 1000);
}

function freshIotlb(shards: number): Iotlb {
  const t = new Iotlb(65536, shards);
  for (let p = 0; p < 8192; p++) {
    const tag = 1 + (p % TAGS);
    t.fill(tag, p * 4096, p * 4096, 12, 9, t.fillSeq(tag, p * 4096), t.fillClock(), 1);
  }
  return t;
}

async function t1(): Promise<void> {
  const ring = median([ringBaseline(TOTAL), ringBaseline(TOTAL), ringBaseline(TOTAL)]);
  console.log(`T1 baseline: one-thread ring of 16-byte records: ${(ring / 1e6).toFixed(1)} M ops/s`);
  for (const threads of [0, 2]) {
    for (const shards of [1, 2, 4, 8]) {
      for (const batch of [64, 1024, 16384]) {
        const t = freshIotlb(shards);
        const p = new InvalidationPipeline(t, { threads, inlineThreshold: threads === 0 ? Infinity : 256 });
        const lists = Array.from({ length: Math.max(1, Math.round(TOTAL / batch)) }, (_, k) => stream(batch, k + 1));
        await p.submit(stream(batch, 999)); // warm up (and start the workers)
        const rates: number[] = [];
        for (let r = 0; r < 3; r++) {
          const t0 = performance.now();
          await Promise.all(lists.map((l) => p.submit(l)));
          rates.push((lists.length * batch) / ((performance.now() - t0) / 1000));
        }
        await p.close();
        const rate = median(rates);
        console.log(
          `T1 ${threads === 0 ? 'inline   ' : '2 workers'} shards ${shards} batch ${String(batch).padStart(5)}: ${(rate / 1e6).toFixed(2)} M ops/s, ratio to the ring ${(rate / ring).toFixed(3)}`,
        );
      }
    }
  }
}

async function spinRoundTrip(n: number): Promise<number[]> {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  const w = new Worker(
    `const { workerData } = require('node:worker_threads'); const a = new Int32Array(workerData);
     (function () { for (;;) { let v; while ((v = Atomics.load(a, 0)) % 2 === 0) { if (Atomics.load(a, 1)) return; } Atomics.store(a, 0, v + 1); } })();`,
    { eval: true, workerData: sab },
  );
  await new Promise((r) => setTimeout(r, 100));
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const v = Atomics.add(a, 0, 1) + 1; // odd: the worker's turn
    while (Atomics.load(a, 0) === v);
    lat.push((performance.now() - t0) * 1000);
  }
  Atomics.store(a, 1, 1);
  Atomics.add(a, 0, 1);
  await w.terminate();
  return lat;
}

async function t2(): Promise<void> {
  const pct = (xs: number[], q: number): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * q)]!;
  const spin = await spinRoundTrip(20_000);
  const t = freshIotlb(4);
  const p = new InvalidationPipeline(t, { threads: 0 });
  const lat: number[] = [];
  const ops = new OpList(2);
  for (let i = 0; i < 20_000; i++) {
    ops.count = 0;
    ops.push(Op.IotlbRange, 2 * i, 1 + (i % TAGS), 0, (i % 8192) * 4096, 1);
    ops.push(Op.Barrier, 2 * i + 1);
    const t0 = performance.now();
    await p.submit(ops);
    lat.push((performance.now() - t0) * 1000);
  }
  const sync: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    ops.count = 0;
    ops.push(Op.IotlbRange, 2 * i, 1 + (i % TAGS), 0, (i % 8192) * 4096, 1);
    ops.push(Op.Barrier, 2 * i + 1);
    const t0 = performance.now();
    p.submitSync(ops);
    sync.push((performance.now() - t0) * 1000);
  }
  await p.close();
  const [s50, s99, b50, b99] = [pct(spin, 0.5), pct(spin, 0.99), pct(lat, 0.5), pct(lat, 0.99)];
  const [y50, y99] = [pct(sync, 0.5), pct(sync, 0.99)];
  console.log(`T2 baseline: shared-memory spin round trip p50 ${s50.toFixed(2)} µs, p99 ${s99.toFixed(2)} µs`);
  console.log(
    `T2 strict pattern through submit() (promise + RxJS): p50 ${b50.toFixed(2)} µs, p99 ${b99.toFixed(2)} µs; p50 ratio ${(b50 / s50).toFixed(2)}`,
  );
  console.log(
    `T2 strict pattern through submitSync() (the doorbell path): p50 ${y50.toFixed(2)} µs, p99 ${y99.toFixed(2)} µs; p50 ratio ${(y50 / s50).toFixed(2)}`,
  );
}

async function main(): Promise<void> {
  console.log(machineLine());
  await t2();
  await t1();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
