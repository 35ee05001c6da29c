/**
 * I/O page faults under churn (issue 9 item 5): many asynchronous DMAs fault on IOPF-capable
 * domains while a demand-paging handler maps pages, the VMM unmaps pages (IOTLB invalidations),
 * and the device is replaced between two fault-capable HWPTs (two FAULT queues) or detached and
 * attached again. Every DMA settles (completes, or fails with EFAULT), every group queued is
 * answered exactly once (by the handler or by an auto-response), and nothing is left pending.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Access, DmaFaultError, Iommufd, PAGE_RESPONSE, type FaultQueue } from '../../src/index.js';

const BASE = 0x100_0000;
const PAGES = 24;

type Step =
  | { k: 'dma'; page: number; pages: number; write: boolean }
  | { k: 'unmap'; page: number }
  | { k: 'replace' }
  | { k: 'detach' }
  | { k: 'tick' };

const stepA: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('dma' as const),
      page: fc.integer({ min: 0, max: PAGES - 1 }),
      pages: fc.integer({ min: 1, max: 3 }),
      write: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('unmap' as const), page: fc.integer({ min: 0, max: PAGES - 1 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ k: 'replace' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'detach' as const }) },
  { weight: 3, arbitrary: fc.constant({ k: 'tick' as const }) },
);

/** Totals over all runs: the workload reached completions, failures and auto-responses. */
const totals = { done: 0, efault: 0, auto: 0, answered: 0 };

async function run(kind: 'vtd' | 'smmuv3' | 'mock', steps: Step[]): Promise<void> {
  const fd = Iommufd.open({ memoryBytes: 32 * 2 ** 20 });
  const ioas = fd.ioasAlloc();
  const dev = fd.deviceBind({ iommu: kind, pri: kind !== 'smmuv3' });
  const a = fd.faultQueueAlloc();
  const b = fd.faultQueueAlloc();
  const hwpts = [
    fd.hwptAlloc({ devId: dev, ptId: ioas, faultId: a.faultId }),
    fd.hwptAlloc({ devId: dev, ptId: ioas, faultId: b.faultId }),
  ];
  let current = 0;
  let attached = true;
  fd.deviceAttach(dev, hwpts[0]!);
  const mapped = new Set<number>();
  const buffer = fd.memory.mmap(BigInt(PAGES * 4096));
  const handler = (q: FaultQueue) => (): void => {
    // Asynchronous, as a VMM thread would be: the queue may have moved on meanwhile.
    setTimeout(() => {
      for (const r of q.read()) {
        const page = Number(r.addr - BigInt(BASE)) / 4096;
        if (page >= 0 && page < PAGES && !mapped.has(page)) {
          mapped.add(page);
          fd.ioasMap(ioas, {
            userVa: buffer + BigInt(page * 4096),
            length: 4096n,
            iova: r.addr,
            flags: { fixedIova: true },
          });
        }
        // The device may have been replaced away: an auto-response answered it already.
        try {
          q.respond([{ cookie: r.cookie, code: PAGE_RESPONSE.Success }]);
        } catch (e) {
          if (!(e instanceof Error) || !/EINVAL/.test(e.message)) throw e;
        }
      }
    }, 0);
  };
  a.queue.faults$.subscribe(handler(a.queue));
  b.queue.faults$.subscribe(handler(b.queue));
  const dmas: Promise<'done' | 'efault'>[] = [];
  for (const s of steps) {
    switch (s.k) {
      case 'dma': {
        const iova = BASE + s.page * 4096 + 16;
        const length = Math.min(s.pages, PAGES - s.page) * 4096 - 32;
        const p = s.write
          ? fd.dma(dev, { iova, access: Access.Write, data: new Uint8Array(length).fill(7), maxRetries: 16 })
          : fd.dma(dev, { iova, length, access: Access.Read, maxRetries: 16 });
        dmas.push(
          p.then(
            () => 'done' as const,
            (e: unknown) => {
              if (e instanceof DmaFaultError) return 'efault' as const;
              throw e;
            },
          ),
        );
        break;
      }
      case 'unmap':
        if (mapped.delete(s.page)) fd.ioasUnmap(ioas, BigInt(BASE + s.page * 4096), 4096n);
        break;
      case 'replace':
        if (!attached) break;
        current ^= 1;
        fd.deviceReplace(dev, hwpts[current]!);
        break;
      case 'detach':
        if (attached) fd.deviceDetach(dev);
        else fd.deviceAttach(dev, hwpts[current]!);
        attached = !attached;
        break;
      case 'tick':
        await new Promise((r) => setTimeout(r, 0));
        break;
    }
  }
  if (!attached) fd.deviceAttach(dev, hwpts[current]!);
  const outcomes = await Promise.all(dmas);
  // Let the handlers' last timers run, then everything is answered.
  await new Promise((r) => setTimeout(r, 5));
  for (const q of [a.queue, b.queue]) {
    expect(q.pending + q.awaiting).toBe(0);
    expect(q.stats.answered + q.stats.autoAnswered).toBe(q.stats.queued);
    expect(q.stats.read).toBeLessThanOrEqual(q.stats.queued);
    totals.auto += q.stats.autoAnswered;
    totals.answered += q.stats.answered;
  }
  for (const o of outcomes) totals[o]++;
  expect(outcomes.length).toBe(dmas.length);
  await fd.close();
}

describe('I/O page faults under unmaps, replaces and detaches', () => {
  afterAll(() => {
    // A sanity check on the generator, not the property.
    expect(totals.done).toBeGreaterThan(0);
    expect(totals.efault).toBeGreaterThan(0);
    expect(totals.auto).toBeGreaterThan(0);
    expect(totals.answered).toBeGreaterThan(0);
  });

  for (const kind of ['vtd', 'smmuv3', 'mock'] as const) {
    it(`${kind}: every DMA settles, every group is answered once, nothing is left pending`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(stepA, { minLength: 10, maxLength: 60 }), (steps) => run(kind, steps)),
        { numRuns: 40 },
      );
    });
  }
});
