/**
 * The asynchronous invalidate calls (`hwptInvalidateAsync`, `viommuInvalidateAsync`): the shadow
 * syncs of software nesting go through the invalidation pipeline, on its worker pool when a
 * batch reaches `shadow.inlineThreshold` routed ops, and every translation after the promise
 * resolves matches the reference model; errors keep the synchronous call's errno and entry count.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Access, InvalidateError } from '../../src/index.js';
import { CTXS, DATA_PAGES, Model, Rig, SLOTS, slotIova, type Leaf, type Vendor } from './nesting-rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.fd.close();
  rig = undefined;
});

/** Every slot of every context translated for read, against the model. */
function checkAll(r: Rig, model: Model): void {
  for (let c = 0; c < CTXS; c++) {
    for (let s = 0; s < SLOTS; s++) {
      const want = model.expect(c, s, 0x10, Access.Read);
      const got = r.translate(c, slotIova(s) + 0x10, Access.Read);
      if (typeof want === 'number') expect(got.ok ? 'translated' : got.code, `ctx ${c} slot ${s}`).toBe(want);
      else expect(got, `ctx ${c} slot ${s}`).toEqual({ ok: true, ...want });
    }
  }
}

/** Maps every slot of both contexts (page `shift` onwards), in the model and the rig. */
function mapAll(r: Rig, model: Model, shift: number): void {
  for (let c = 0; c < CTXS; c++) {
    for (let s = 0; s < SLOTS; s++) {
      const leaf: Leaf = { page: (s + shift + c) % DATA_PAGES, write: true, dirty: true, af: true };
      model.leaves[c]![s] = leaf;
      r.setLeaf(c, s, leaf);
    }
  }
}

/** The IOVA ranges of all slots (three contiguous groups) as [iova, pages] pairs. */
const ALL: [number, number][] = [
  [slotIova(0), 16],
  [slotIova(16), 8],
];

describe.each(['vtd', 'smmuv3'] as Vendor[])('%s software nesting: asynchronous invalidation', (vendor) => {
  it('runs the shadow syncs on the pool and leaves no stale entry', async () => {
    rig = new Rig({ vendor, mode: 'software', shadowThreads: 1, inlineThreshold: 1 });
    const model = new Model(vendor);
    mapAll(rig, model, 0);
    for (let c = 0; c < CTXS; c++) await rig.invalidateAsync(c, ALL);
    checkAll(rig, model);
    checkAll(rig, model); // from the shadow and the IOTLB now
    for (const shift of [3, 7]) {
      mapAll(rig, model, shift);
      for (let c = 0; c < CTXS; c++) await rig.invalidateAsync(c, ALL, shift === 3);
      checkAll(rig, model);
    }
    const st = rig.fd.cacheStats();
    expect(st.pipeline!.poolSegments).toBeGreaterThan(0);
    expect(st.shadow.rewritten).toBeGreaterThan(0);
  });

  it('below the inline threshold it runs inline, with the same result', async () => {
    rig = new Rig({ vendor, mode: 'software', shadowThreads: 1 });
    const model = new Model(vendor);
    mapAll(rig, model, 0);
    checkAll(rig, model);
    mapAll(rig, model, 5);
    for (let c = 0; c < CTXS; c++) await rig.invalidateAsync(c, ALL);
    checkAll(rig, model);
    const p = rig.fd.cacheStats().pipeline!;
    expect(p.poolSegments).toBe(0);
    expect(p.inlineSegments).toBeGreaterThan(0);
  });

  it('hardware nesting: the asynchronous call is the synchronous one', async () => {
    rig = new Rig({ vendor, mode: 'hardware', shadowThreads: 1, inlineThreshold: 1 });
    const model = new Model(vendor);
    mapAll(rig, model, 0);
    checkAll(rig, model);
    mapAll(rig, model, 2);
    for (let c = 0; c < CTXS; c++) await rig.invalidateAsync(c, ALL);
    checkAll(rig, model);
    expect(rig.fd.cacheStats().pipeline!.batches).toBe(0);
  });
});

describe('vtd software nesting: a bad entry in an asynchronous call', () => {
  it('rejects with the errno and entry count of the synchronous call, after the good entries took effect', async () => {
    rig = new Rig({ vendor: 'vtd', mode: 'software', shadowThreads: 1, inlineThreshold: 1 });
    const model = new Model('vtd');
    mapAll(rig, model, 0);
    checkAll(rig, model);
    mapAll(rig, model, 9);
    const entries = [
      { addr: slotIova(0), npages: 16 },
      { addr: slotIova(16) + 1, npages: 1 }, // not 4 KiB aligned: EINVAL
      { addr: slotIova(16), npages: 8 },
    ];
    const call = rig.fd.hwptInvalidateAsync(rig.nested[0]!, { dataType: 'vtd-s1', entries });
    const err = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidateError);
    expect((err as InvalidateError).entryNum).toBe(1);
    expect((err as InvalidateError).errno).toBe('EINVAL');
    // The entry before the bad one took effect: context 0's first group translates to its new pages.
    for (let s = 0; s < 16; s++) {
      const want = model.expect(0, s, 0, Access.Read) as { page: string; off: number };
      expect(rig.translate(0, slotIova(s), Access.Read)).toEqual({ ok: true, ...want });
    }
    await rig.fd.hwptInvalidateAsync(rig.nested[0]!, { dataType: 'vtd-s1', entries: [entries[2]!] });
    await rig.invalidateAsync(1, ALL);
    checkAll(rig, model);
  });

  it('a closed fd rejects with EBADF', async () => {
    rig = new Rig({ vendor: 'vtd', mode: 'software' });
    const nested = rig.nested[0]!;
    await rig.fd.close();
    await expect(rig.fd.hwptInvalidateAsync(nested, { dataType: 'vtd-s1', entries: [] })).rejects.toMatchObject({
      errno: 'EBADF',
    });
  });
});
