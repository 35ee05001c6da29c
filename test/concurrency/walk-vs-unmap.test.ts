/**
 * Device threads walk while the main thread maps and unmaps: a walker never sees a torn
 * descriptor, and never reads a freed table (README "The thread model", DESIGN.md "Memory").
 *
 * Freed frames are poisoned with {@link POISON}, which every format decodes as a valid entry
 * pointing outside physical memory, so a walk that reads a freed table ends in a forbidden fault,
 * an exception or an address outside memory. Each churn IOVA is only ever mapped to one host page,
 * so a torn descriptor (the valid word of one entry with the other word of another, or of a
 * cleared one) shows as an address that the IOVA never maps to.
 */
import { describe, expect, it } from 'vitest';
import { Access, Iommufd } from '../../src/index.js';
import { SystemMemory } from '../../src/memory/index.js';
import { ContextTables, MAX_DEVICES, MAX_DOMAINS, NO_PASID, Translator } from '../../src/translate/index.js';
import { judge, POISON, Verdict } from './check.js';
import { runWalkVsUnmap } from './churn.js';

const MiB = 2 ** 20;

describe('device threads walk while the main thread maps and unmaps', () => {
  it('no walk of a mock, smmuv3 or vtd domain returns a torn or freed-table result', async () => {
    const r = await runWalkVsUnmap({
      epoch: true,
      enough: (p) => p.ms >= 1500 && p.ops >= 1500 && p.walks >= 200_000,
    });
    const { faultCodes, samples, ...totals } = r;
    console.log('walk-vs-unmap:', JSON.stringify(totals));

    expect({ ...totals, faultCodes, samples }).toMatchObject({
      stableMismatches: 0,
      churnIllegal: 0,
      forbiddenFaults: 0,
      exceptions: 0,
      samples: [],
      framesAfterClose: 0,
    });
    // The run exercised something: many walks, many table changes and HWPT replacements, and
    // walks that found the churn region both mapped and unmapped.
    expect(r.walks).toBeGreaterThan(100_000);
    expect(r.ops).toBeGreaterThan(1000);
    expect(r.recycles).toBeGreaterThan(10);
    expect(r.stableOk).toBeGreaterThan(0);
    expect(r.churnHits).toBeGreaterThan(0);
    expect(r.churnMisses).toBeGreaterThan(0);
  });

  it('walkers without a reader slot do read freed tables, and the check sees it (negative control)', async () => {
    const r = await runWalkVsUnmap({ epoch: false, enough: (p) => p.forbidden > 0 });
    console.log('walk-vs-unmap, no epoch:', JSON.stringify({ ...r, samples: r.samples.length }));
    expect(r.forbiddenFaults + r.exceptions).toBeGreaterThan(0);
    expect(r.framesAfterClose).toBe(0);
  });

  it('a walk of a table freed under it is flagged, in every format', async () => {
    const fd = Iommufd.open({ memoryBytes: 16 * MiB, poisonFreedFrames: POISON });
    const va = fd.memory.mmap(2n * BigInt(MiB));
    const dp = fd.dataPlane();
    const memory = new SystemMemory(0, dp.memory);
    const live = new ContextTables(memory.phys, undefined, dp.tables);
    for (const kind of ['mock', 'smmuv3', 'vtd'] as const) {
      const devId = fd.deviceBind({ iommu: kind });
      const ioas = fd.ioasAlloc();
      const hwpt = fd.hwptAlloc({ devId, ptId: ioas });
      fd.deviceAttach(devId, hwpt);
      const base = 16 * MiB;
      fd.ioasMap(ioas, { userVa: va, length: 2n * BigInt(MiB), iova: BigInt(base), flags: { fixedIova: true } });
      const iova = base + 5 * 4096 + 24;
      const expected = fd.translate(devId, iova, Access.Read);
      expect(expected).toBeGreaterThanOrEqual(0);

      // A walker that read the domain's root pointer before the domain was freed: its own copy of
      // the descriptor, in tables that reclamation does not know of, and no reader slot.
      const d = live.ridDomain(fd.deviceSlot(devId));
      const stale = new ContextTables(memory.phys, undefined, {
        domains: new SharedArrayBuffer(MAX_DOMAINS * 16), // 4 words per descriptor
        devices: new SharedArrayBuffer(MAX_DEVICES * 16), // 4 words per device
      });
      stale.setRidDomain(1, stale.publishDomain(live.domainFormat(d), live.domainRoot(d), live.domainConfig(d)));
      const walker = new Translator(memory.phys, stale, memory.reclaimer, -1);
      const walk = (): number | string => {
        try {
          return walker.translate(1, iova, Access.Read, NO_PASID);
        } catch (e) {
          return String(e);
        }
      };
      expect(walk()).toBe(expected);

      fd.deviceDetach(devId);
      fd.destroy(hwpt); // frees every table of the domain; no reader holds them back
      // mock: a RangeError (a table "beyond" memory); smmuv3: WalkAbort; vtd: Reserved.
      const after = walk();
      const verdict = typeof after === 'string' ? 'exception' : judge(false, after, expected);
      expect(verdict, `${kind} walk of its freed table gave ${after}`).not.toBe(Verdict.Ok);
      expect(verdict, `${kind} walk of its freed table gave ${after}`).not.toBe(Verdict.Miss);
    }
    await fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});

describe('the poisonFreedFrames open option', () => {
  it('fills the frames of a freed table with the pattern', async () => {
    const fd = Iommufd.open({ memoryBytes: 16 * MiB, poisonFreedFrames: POISON });
    const devId = fd.deviceBind({ iommu: 'vtd' });
    const ioas = fd.ioasAlloc();
    const hwpt = fd.hwptAlloc({ devId, ptId: ioas });
    const dp = fd.dataPlane();
    const tables = new ContextTables(new SystemMemory(0, dp.memory).phys, undefined, dp.tables);
    fd.deviceAttach(devId, hwpt);
    const root = tables.domainRoot(tables.ridDomain(fd.deviceSlot(devId)));
    fd.deviceDetach(devId);
    fd.destroy(hwpt);
    const words = new Int32Array(dp.memory.phys, root, 1024);
    await fd.close();
    expect(words.every((w) => w === POISON)).toBe(true);
  });
});
