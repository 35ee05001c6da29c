/**
 * Nesting edge cases that the random workloads of nesting-modes.property.test.ts did not reach,
 * each in both nesting modes (and with and without ATS where the device-TLB is involved):
 *
 * - a stage-1 block invalidated by one of its addresses goes whole, although stage 2 (4 KiB
 *   pages here) makes every cache hold it in 4 KiB pieces;
 * - an SMMUv3 vSTE serves every SubstreamID through the RID attach, so a stage-2 unmap, a
 *   detach or a replace must reach the device-TLB entries of every PASID, not only the RID's;
 * - a VT-d nested domain without SRE refuses supervisor requests even where an unprivileged
 *   request for the same page has filled the caches.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Access } from '../../src/index.js';
import { ARM_LO, ATTRIDX_WB, SH_INNER, X86_LO } from '../../src/pgtable/index.js';
import { dataGpa, Rig, slotIova, tableGpa, type Mode, type Vendor } from './nesting-rig.js';

const MODES: Mode[] = ['hardware', 'software'];
const BLOCK_IOVA = 0x4000_0000;

let rig: Rig | undefined;
afterEach(() => {
  rig?.close();
  rig = undefined;
});

/** A 2 MiB stage-1 block at guest-physical 0, readable and writable by user requests. */
function blockEntry(vendor: Vendor): bigint {
  if (vendor === 'vtd') return BigInt(X86_LO.P | X86_LO.RW | X86_LO.US | X86_LO.PS | X86_LO.A | X86_LO.D);
  return BigInt(
    (ARM_LO.Valid | ARM_LO.AF | ARM_LO.AP1 | (SH_INNER << ARM_LO.SHShift) | (ATTRIDX_WB << ARM_LO.AttrIndxShift)) >>> 0,
  );
}

const page = (n: number): { ok: true; page: string; off: number } => ({ ok: true, page: `r${n}`, off: 0 });

describe.each(['vtd', 'smmuv3'] as Vendor[])('%s: a stage-1 block invalidated by one address', (vendor) => {
  for (const mode of MODES) {
    for (const ats of [false, true]) {
      for (const ril of vendor === 'vtd' ? [true] : [false, true]) {
        const label = `${mode} nesting${ats ? ', ATS' : ''}${vendor === 'smmuv3' ? (ril ? ', range TLBI' : ', TLBI by address') : ''}`;
        it(`${label}: no 4 KiB piece of the block survives`, () => {
          rig = new Rig({ vendor, mode, ats });
          // Context 0's L2 entry for [1 GiB, 1 GiB + 2 MiB) becomes a block onto GPA 0.
          rig.write64(tableGpa(0, 2), blockEntry(vendor));
          for (const off of [0x41000, 0x43000, 0x7f000])
            expect(rig.translate(0, BLOCK_IOVA + off, Access.Read)).toEqual(page(off / 4096));
          // The guest unmaps the block and invalidates the one address it unmapped it by.
          rig.write64(tableGpa(0, 2), 0n);
          rig.invalidate(0, [[BLOCK_IOVA + 0x41000, 1]], ril);
          for (const off of [0x43000, 0x41000, 0x7f000, 0]) {
            const r = rig.translate(0, BLOCK_IOVA + off, Access.Read);
            expect(r.ok, `IOVA +0x${off.toString(16)} after the invalidation`).toBe(false);
          }
        });
      }
    }
    it(`${mode} nesting: a block's pieces do not make invalidations of 4 KiB pages elsewhere wider than their block`, () => {
      rig = new Rig({ vendor, mode });
      rig.write64(tableGpa(0, 2), blockEntry(vendor));
      expect(rig.translate(0, BLOCK_IOVA + 0x5000, Access.Read)).toEqual(page(5));
      // A 4 KiB leaf in the next 2 MiB region (slot 8), invalidated alone: the block stays.
      rig.setLeaf(0, 8, { page: 2, write: true, dirty: true, af: true });
      rig.invalidate(0, [[slotIova(8), 1]]);
      expect(rig.translate(0, slotIova(8), Access.Read)).toEqual(page(dataGpa(2) / 4096));
      expect(rig.translate(0, BLOCK_IOVA + 0x5000, Access.Read)).toEqual(page(5));
    });
  }
});

describe('smmuv3: a vSTE device-TLB holds every SubstreamID', () => {
  for (const mode of MODES) {
    /** A rig with PASID 1 (CD 1) translated once, so the device-TLB holds (device, SSID 1). */
    const primed = (): { r: Rig; iova: number; host: number } => {
      const r = new Rig({ vendor: 'smmuv3', mode, ats: true });
      r.setLeaf(1, 0, { page: 3, write: true, dirty: true, af: true });
      r.setLeaf(0, 0, { page: 4, write: true, dirty: true, af: true });
      const host = dataGpa(3) / 4096;
      expect(r.translate(1, slotIova(0), Access.Read)).toEqual(page(host));
      expect(r.translate(1, slotIova(0), Access.Read)).toEqual(page(host)); // now from the ATC
      expect(r.translate(0, slotIova(0), Access.Read)).toEqual(page(dataGpa(4) / 4096));
      return { r, iova: slotIova(0), host };
    };

    it(`${mode} nesting: a stage-2 unmap reaches PASID 1's entries`, () => {
      const { r, iova, host } = primed();
      rig = r;
      r.s2Unmap(host);
      const out = r.translate(1, iova, Access.Read);
      expect(out.ok).toBe(false);
      // The RID's own entry (another guest page) is still right.
      expect(r.translate(0, iova, Access.Read)).toEqual(page(dataGpa(4) / 4096));
    });

    it(`${mode} nesting: a detach drops PASID 1's entries`, () => {
      const { r, iova } = primed();
      rig = r;
      r.fd.deviceDetach(r.dev);
      expect(r.translate(1, iova, Access.Read).ok).toBe(false);
      expect(r.translate(0, iova, Access.Read).ok).toBe(false);
    });

    it(`${mode} nesting: a replace by an abort vSTE drops PASID 1's entries`, () => {
      const { r, iova } = primed();
      rig = r;
      const abort = r.fd.hwptAlloc({ devId: r.dev, ptId: r.viommu, dataType: 'arm-smmuv3', data: { ste: [1n, 0n] } });
      r.fd.deviceReplace(r.dev, abort);
      expect(r.translate(1, iova, Access.Read).ok).toBe(false);
      expect(r.translate(0, iova, Access.Read).ok).toBe(false);
    });

    it(`${mode} nesting: a replace by another S1 vSTE serves PASID 1 from the new CD table`, () => {
      const { r, iova } = primed();
      rig = r;
      // Another CD table at 0x3000 whose CD 1 (ASID 3) uses context 0's tables.
      r.cd(0x3000, { asid: 5, ttb0: tableGpa(0, 0) });
      r.cd(0x3000 + 64, { asid: 3, ttb0: tableGpa(0, 0) });
      const ste: [bigint, bigint] = [1n | (5n << 1n) | 0x3000n | (1n << 59n), 2n | (1n << 28n)];
      const other = r.fd.hwptAlloc({ devId: r.dev, ptId: r.viommu, dataType: 'arm-smmuv3', data: { ste } });
      r.fd.deviceReplace(r.dev, other);
      expect(r.translate(1, iova, Access.Read)).toEqual(page(dataGpa(4) / 4096));
    });
  }
});

describe('vtd: a nested domain without SRE and a cached unprivileged grant', () => {
  for (const mode of MODES) {
    for (const ats of [false, true]) {
      it(`${mode} nesting${ats ? ', ATS' : ''}: the supervisor request is refused with fault reason 0x5d`, () => {
        rig = new Rig({ vendor: 'vtd', mode, ats });
        for (const ctx of [0, 1]) {
          rig.setLeaf(ctx, 0, { page: 1 + ctx, write: true, dirty: true, af: true });
          const host = dataGpa(1 + ctx) / 4096;
          expect(rig.translate(ctx, slotIova(0), Access.Read)).toEqual(page(host));
          expect(rig.translate(ctx, slotIova(0), Access.Read)).toEqual(page(host));
          const priv = rig.translate(ctx, slotIova(0), Access.Read | Access.Priv);
          expect(priv).toMatchObject({ ok: false, vendorCode: 0x5d });
          // And the refusal cached nothing: the user request still translates.
          expect(rig.translate(ctx, slotIova(0), Access.Read)).toEqual(page(host));
        }
      });
    }
  }
});
