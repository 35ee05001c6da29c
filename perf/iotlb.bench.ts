/**
 * T3/T4 (issue 4): IOTLB lookups per second at 4 K, 64 K and 1 M live entries, against a plain
 * Int32Array open-addressing table (keys and values in one typed array, linear probing) and a
 * Map, measured in the same run; and bytes per IOTLB entry.
 *
 * Run: npm run build && node dist/perf/iotlb.bench.js [--runs N]
 */
import { Iotlb } from '../src/cache/index.js';
import { intFlag, machineLine, median } from './common.js';

const RUNS = intFlag('iotlb.bench', 'runs', 5);
const LOOKUPS = 4_000_000;
const TAG = 7;
const R = 1 | 8;

/** The baseline: open addressing over an Int32Array of [key, value] pairs, capacity 2x. */
class I32Table {
  readonly a: Int32Array;
  readonly mask: number;
  constructor(n: number) {
    let cap = 1;
    while (cap < n * 2) cap *= 2;
    this.a = new Int32Array(cap * 2).fill(-1);
    this.mask = cap - 1;
  }
  set(k: number, v: number): void {
    let i = Math.imul(k, 0x9e3779b1) & this.mask;
    while (this.a[i * 2] !== -1 && this.a[i * 2] !== k) i = (i + 1) & this.mask;
    this.a[i * 2] = k;
    this.a[i * 2 + 1] = v;
  }
  get(k: number): number {
    let i = Math.imul(k, 0x9e3779b1) & this.mask;
    for (;;) {
      const x = this.a[i * 2]!;
      if (x === k) return this.a[i * 2 + 1]!;
      if (x === -1) return -1;
      i = (i + 1) & this.mask;
    }
  }
}

function main(): void {
  console.log(machineLine());
  for (const n of [4096, 65536, 1 << 20]) {
    const tlb = new Iotlb(n * 2, 8); // room so that every live entry stays (8-way sets, capacity 2x)
    const i32 = new I32Table(n);
    const map = new Map<number, number>();
    for (let p = 0; p < n; p++) {
      const iova = p * 4096;
      tlb.fill(TAG, iova, 0x1000_0000 + iova, 12, R, tlb.fillSeq(TAG, iova), tlb.fillClock(), 1);
      i32.set(p, p);
      map.set(p, p);
    }
    const order = new Int32Array(1 << 16);
    for (let i = 0, x = 99991; i < order.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      order[i] = x % n;
    }
    let live = 0;
    for (let p = 0; p < n; p += Math.max(1, n >> 12)) if (tlb.lookup(TAG, p * 4096, R) >= 0) live++;
    const rows = {
      iotlb: (): number => {
        let s = 0;
        for (let i = 0; i < LOOKUPS; i++) s += tlb.lookup(TAG, order[i & 0xffff]! * 4096, R);
        return s;
      },
      int32: (): number => {
        let s = 0;
        for (let i = 0; i < LOOKUPS; i++) s += i32.get(order[i & 0xffff]!);
        return s;
      },
      map: (): number => {
        let s = 0;
        for (let i = 0; i < LOOKUPS; i++) s += map.get(order[i & 0xffff]!)!;
        return s;
      },
    };
    const res: Record<string, number[]> = { iotlb: [], int32: [], map: [] };
    for (let r = 0; r < RUNS + 1; r++) {
      for (const [k, fn] of Object.entries(rows)) {
        const t0 = performance.now();
        if (fn() === 0.5) console.log('');
        if (r > 0) res[k]!.push(LOOKUPS / ((performance.now() - t0) / 1000));
      }
    }
    const [a, b, c] = [median(res['iotlb']!), median(res['int32']!), median(res['map']!)];
    console.log(
      `lookups at ${n} live entries: IOTLB ${(a / 1e6).toFixed(1)} M/s, Int32Array table ${(b / 1e6).toFixed(1)} M/s (ratio ${(a / b).toFixed(2)}), Map ${(c / 1e6).toFixed(1)} M/s (ratio ${(a / c).toFixed(2)}); sampled hit rate ${((live / Math.ceil(n / Math.max(1, n >> 12))) * 100).toFixed(0)}%, ${tlb.bytesPerEntry} bytes per entry`,
    );
  }
}

main();
