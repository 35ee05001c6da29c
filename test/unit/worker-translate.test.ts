import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Access,
  Iommufd,
  MOCK_APERTURE_START,
  TranslatePool,
  attachTranslator,
  runTranslateBatch,
  type TranslateBatch,
} from '../../src/index.js';
import { SystemMemory } from '../../src/memory/index.js';

describe('translation on worker threads over shared memory', () => {
  let fd: Iommufd;
  let pool: TranslatePool;
  let dev: number;
  let iova: number;

  beforeAll(() => {
    fd = Iommufd.open({ memoryBytes: 32 * 2 ** 20 });
    const ioas = fd.ioasAlloc();
    dev = fd.deviceBind({ iommu: 'mock' });
    fd.deviceAttach(dev, ioas);
    const va = fd.memory.mmap(4n << 20n);
    iova = Number(
      fd.ioasMap(ioas, { userVa: va, length: 4n << 20n, iova: MOCK_APERTURE_START, flags: { fixedIova: true } }),
    );
    pool = new TranslatePool(fd.dataPlane(), 2);
  });

  afterAll(async () => {
    await pool.destroy();
    await fd.close();
  });

  it('a worker translates a batch to the same addresses as the main thread', async () => {
    const batch: TranslateBatch = {
      dev: fd.deviceSlot(dev),
      pasid: -1,
      base: iova,
      pages: 2048,
      pageSize: 2048,
      stride: 7,
      start: 3,
      count: 10_000,
      access: Access.Read,
    };
    let expected = 0;
    let page = batch.start;
    for (let i = 0; i < batch.count; i++) {
      expected += fd.translate(dev, iova + page * 2048, Access.Read);
      page = (page + batch.stride) % batch.pages;
    }
    const results = await Promise.all([pool.run(batch), pool.run(batch)]);
    for (const r of results) expect(r).toEqual({ checksum: expected, faults: 0 });
  });

  it('a worker sees an unmap at once: every translation of the removed range faults', async () => {
    const batch: TranslateBatch = {
      dev: fd.deviceSlot(dev),
      pasid: -1,
      base: iova,
      pages: 512,
      pageSize: 2048,
      stride: 1,
      start: 0,
      count: 512,
      access: Access.Write,
    };
    expect((await pool.run(batch)).faults).toBe(0);
    const other = fd.ioasAlloc();
    const va2 = fd.memory.mmap(1n << 20n);
    fd.ioasMap(other, {
      userVa: va2,
      length: 1n << 20n,
      iova: MOCK_APERTURE_START + (64n << 20n),
      flags: { fixedIova: true },
    });
    fd.deviceReplace(dev, other); // the RID now points at a domain without the window
    expect((await pool.run(batch)).faults).toBe(512);
  });
});

describe('reader slots', () => {
  it("a destroyed pool gives its workers' reader slots back", async () => {
    const fd = Iommufd.open({ memoryBytes: 8 * 2 ** 20 });
    const pool = new TranslatePool(fd.dataPlane(), 2);
    const dev = fd.deviceBind({ iommu: 'mock' });
    const batch = {
      dev: fd.deviceSlot(dev),
      pasid: -1,
      base: 0,
      pages: 1,
      pageSize: 2048,
      stride: 1,
      start: 0,
      count: 1,
      access: 1,
    };
    await Promise.all([pool.run(batch), pool.run(batch)]);
    const view = new SystemMemory(0, fd.dataPlane().memory).reclaimer;
    const free = (): number => {
      const got: number[] = [];
      for (let s = view.acquireSlot(); s >= 0; s = view.acquireSlot()) got.push(s);
      got.forEach((s) => view.releaseSlot(s));
      return got.length;
    };
    expect(free()).toBeLessThan(64);
    await pool.destroy();
    expect(free()).toBe(64);
    await fd.close();
  });
});

describe('reclamation with a reader on another thread', () => {
  it('a retired frame is not reused while a walk that could reach it is in flight', () => {
    const mem = new SystemMemory(2 ** 20);
    // A second view of the same buffers stands in for a worker's.
    const worker = attachTranslator({
      memory: mem.handles(),
      tables: { domains: new SharedArrayBuffer(4096 * 16), devices: new SharedArrayBuffer(4096 * 16) },
    });
    const f = mem.frames.alloc();
    const readerView = new SystemMemory(0, mem.handles());
    const slot = readerView.reclaimer.acquireSlot();
    readerView.reclaimer.enter(slot); // the worker starts a walk
    mem.frames.put(f); // the control plane unlinks and retires the frame
    mem.reclaimer.reclaim();
    expect(mem.frames.inUse).toBe(1);
    readerView.reclaimer.exit(slot);
    mem.reclaimer.reclaim();
    expect(mem.frames.inUse).toBe(0);
    readerView.reclaimer.releaseSlot(slot);
    worker.release();
    // runTranslateBatch over a device with nothing attached faults every time.
    expect(
      runTranslateBatch(worker.translator, {
        dev: 1,
        pasid: -1,
        base: 0,
        pages: 1,
        pageSize: 2048,
        stride: 1,
        start: 0,
        count: 3,
        access: 1,
      }),
    ).toEqual({ checksum: 0, faults: 3 });
  });
});
