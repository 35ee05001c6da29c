/**
 * The asynchronous DMA API on IOPF-capable domains (issue 9 item 2): a DMA that faults waits for
 * its page requests' answers and is retried after SUCCESS; INVALID, an auto-response, a plain
 * fault or too many rounds fail it. PRI devices send one group per transfer (LAST_PAGE on its
 * last fault); SMMUv3 devices without PRI stall each transaction with its own tag.
 */
import { describe, expect, it } from 'vitest';
import {
  Access,
  DmaFaultError,
  Iommufd,
  PAGE_RESPONSE,
  PGFAULT_FLAG,
  TranslateFault,
  type PageFaultRecord,
} from '../../src/index.js';
import { KINDS, MEMORY_BYTES } from './helpers.js';

const BASE = 0x100_0000;

/** An fd with a device on an IOPF-capable paging HWPT, and a demand-paging handler the test can tune. */
function rig(kind: (typeof KINDS)[number], pri: boolean) {
  const fd = Iommufd.open({ memoryBytes: MEMORY_BYTES });
  const ioas = fd.ioasAlloc();
  const dev = fd.deviceBind({ iommu: kind, pri, pasidBits: 8 });
  const { faultId, queue } = fd.faultQueueAlloc();
  const hwpt = fd.hwptAlloc({ devId: dev, ptId: ioas, faultId });
  fd.deviceAttach(dev, hwpt);
  const groups: PageFaultRecord[][] = [];
  const mapped = new Set<bigint>();
  let mode: 'map' | 'invalid' | 'ignore' | 'success-only' = 'map';
  let sync = false;
  const handle = (): void => {
    for (const r of queue.read()) {
      const g = groups.at(-1);
      if (g !== undefined && g[0]!.cookie === r.cookie) g.push(r);
      else groups.push([r]);
      if ((r.flags & PGFAULT_FLAG.LastPage) === 0) continue;
      if (mode === 'ignore') continue;
      if (mode === 'map') {
        // The SVA-like handler: back every faulting page of the group, then answer.
        // Another group may have faulted on the same page first (EEXIST: already backed).
        for (const f of groups.at(-1)!) {
          if (mapped.has(f.addr)) continue;
          mapped.add(f.addr);
          const va = fd.memory.mmap(4096n);
          fd.ioasMap(ioas, { userVa: va, length: 4096n, iova: f.addr, flags: { fixedIova: true } });
        }
      }
      queue.respond([{ cookie: r.cookie, code: mode === 'invalid' ? PAGE_RESPONSE.Invalid : PAGE_RESPONSE.Success }]);
    }
  };
  queue.faults$.subscribe(() => (sync ? handle() : queueMicrotask(handle)));
  return {
    fd,
    ioas,
    dev,
    hwpt,
    queue,
    groups,
    setMode: (m: typeof mode) => (mode = m),
    setSync: (s: boolean) => (sync = s),
  };
}

describe.each(KINDS)('asynchronous DMA with demand paging (%s)', (kind) => {
  const model = kind === 'smmuv3' ? 'stall' : 'pri';
  const pri = kind !== 'smmuv3';

  it(`a write over 3 unmapped pages faults once (${model}), is retried, and lands`, async () => {
    const r = rig(kind, pri);
    const data = new Uint8Array(3 * 4096 - 100).map((_, i) => i & 0xff);
    const done = await r.fd.dma(r.dev, { iova: BASE + 50, access: Access.Write, data });
    expect(done).toMatchObject({ retries: 1, requests: 3 });
    expect(r.fd.dmaRead(r.dev, BASE + 50, data.length)).toEqual(data);
    if (model === 'pri') {
      // One group of three, LAST_PAGE on the last only.
      expect(r.groups.map((g) => g.map((f) => f.flags))).toEqual([[0, 0, PGFAULT_FLAG.LastPage]]);
    } else {
      // Three stalled transactions, each its own tag.
      expect(r.groups.map((g) => g.length)).toEqual([1, 1, 1]);
      expect(new Set(r.groups.map((g) => g[0]!.grpid)).size).toBe(3);
    }
    expect(r.groups.flat().map((f) => f.addr)).toEqual([0, 1, 2].map((p) => BigInt(BASE + p * 4096)));
    await r.fd.close();
  });

  it('a read resolves with the bytes; a handler that answers synchronously is not missed', async () => {
    const r = rig(kind, pri);
    r.setSync(true);
    const got = await r.fd.dma(r.dev, { iova: BASE, length: 8, access: Access.Read });
    expect(got.data).toEqual(new Uint8Array(8));
    expect(got.retries).toBe(1);
    await r.fd.close();
  });

  it('INVALID fails the DMA with EFAULT and the fault', async () => {
    const r = rig(kind, pri);
    r.setMode('invalid');
    const err = await r.fd.dma(r.dev, { iova: BASE, length: 4096, access: Access.Read }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DmaFaultError);
    expect((err as DmaFaultError).errno).toBe('EFAULT');
    expect((err as DmaFaultError).fault.code).toBe(TranslateFault.Pending);
    await r.fd.close();
  });

  it('a detach while the request waits answers it INVALID: the DMA fails', async () => {
    const r = rig(kind, pri);
    r.setMode('ignore');
    const pending = r.fd.dma(r.dev, { iova: BASE, length: 16, access: Access.Write, data: new Uint8Array(16) });
    await new Promise((res) => setTimeout(res, 5));
    r.fd.deviceDetach(r.dev);
    await expect(pending).rejects.toBeInstanceOf(DmaFaultError);
    await r.fd.close();
  });

  it('SUCCESS without a mapping: retried up to maxRetries, then EFAULT', async () => {
    const r = rig(kind, pri);
    r.setMode('success-only');
    await expect(
      r.fd.dma(r.dev, { iova: BASE, length: 4096 * 2, access: Access.Read, maxRetries: 3 }),
    ).rejects.toBeInstanceOf(DmaFaultError);
    // Rounds 0–2 send requests (two pages each); the third retry still faults and fails.
    expect(r.groups.flat()).toHaveLength(3 * 2);
    await r.fd.close();
  });

  it('on a domain without a FAULT object a fault fails at once', async () => {
    const fd = Iommufd.open({ memoryBytes: MEMORY_BYTES });
    const ioas = fd.ioasAlloc();
    const dev = fd.deviceBind({ iommu: kind });
    fd.deviceAttach(dev, ioas);
    await expect(fd.dma(dev, { iova: BASE, length: 4, access: Access.Read })).rejects.toMatchObject({
      errno: 'EFAULT',
      fault: { code: TranslateFault.NotMapped },
    });
    await fd.close();
  });

  it('stress: 64 concurrent DMAs over shared pages, no fault lost, none answered twice', async () => {
    const r = rig(kind, pri);
    const jobs = Array.from({ length: 64 }, (_, k) => {
      const iova = BASE + (k % 16) * 4096 + (k >> 4) * 64;
      return r.fd.dma(r.dev, { iova, access: Access.Write, data: new Uint8Array(64).fill(k) });
    });
    const results = await Promise.all(jobs);
    for (let k = 0; k < 64; k++) {
      const iova = BASE + (k % 16) * 4096 + (k >> 4) * 64;
      expect(r.fd.dmaRead(r.dev, iova, 64)).toEqual(new Uint8Array(64).fill(k));
      expect(results[k]!.retries).toBeLessThanOrEqual(2);
    }
    // Every group queued was read and answered exactly once (a second answer would be EINVAL).
    expect(r.queue.stats.queued).toBeGreaterThanOrEqual(16);
    expect(r.queue.stats).toEqual({
      queued: r.queue.stats.queued,
      read: r.queue.stats.queued,
      answered: r.queue.stats.queued,
      autoAnswered: 0,
    });
    expect(r.queue.pending + r.queue.awaiting).toBe(0);
    await r.fd.close();
  });
});
