import { describe, expect, it } from 'vitest';
import { Access, Iommufd, VTD_S1_ALL_PAGES, type VtdS1Invalidation } from '../../src/index.js';
import { X86_LO } from '../../src/pgtable/index.js';
import { expectErrno } from './helpers.js';

/*
 * VT-d nested HWPTs (reference/iommufd.md §2 HWPT_ALLOC nested, §3 VTD_S1): the kernel's
 * allocation, attach and invalidation rules, and hardware nesting: a device attached to a nested
 * HWPT translates through the guest's first-stage table, which lives in guest memory (the nest
 * parent's IOVA space) and is itself read through the parent's second stage.
 */

const GUEST_BYTES = 4 * 2 ** 20;
const ROOT = 0x1000; // guest-physical addresses of the first-stage tables
const IOVA = 0x4000_0000; // where the test maps guest pages, in the device's first-stage space
const DATA = 0x20_0000; // guest-physical pages the mappings point at

/** A VM: guest RAM mapped at GPA 0 of an IOAS, a VT-d nest parent over it, and the guest's first stage. */
class Vm {
  readonly fd = Iommufd.open({ memoryBytes: 64 * 2 ** 20 });
  readonly ioas = this.fd.ioasAlloc();
  readonly va = this.fd.memory.mmap(BigInt(GUEST_BYTES));
  readonly dev: number;
  readonly parent: number;
  #nextTable = ROOT + 0x1000;

  /** `pageAreas`: map guest RAM one 4 KiB area per page, so that the VMM can unmap any page. */
  constructor(bind: { ats?: boolean; pasidBits?: number } = {}, pageAreas = false) {
    this.dev = this.fd.deviceBind({ iommu: 'vtd', ...bind });
    const step = pageAreas ? 4096 : GUEST_BYTES;
    for (let gpa = 0; gpa < GUEST_BYTES; gpa += step) {
      this.fd.ioasMap(this.ioas, {
        userVa: this.va + BigInt(gpa),
        length: BigInt(step),
        iova: BigInt(gpa),
        flags: { fixedIova: true, readable: true, writeable: true },
      });
    }
    this.parent = this.fd.hwptAlloc({ devId: this.dev, ptId: this.ioas, flags: { nestParent: true } });
  }

  /** Reads the qword at guest-physical `gpa`. */
  read64(gpa: number): bigint {
    return new DataView(this.fd.memory.read(this.va + BigInt(gpa), 8).buffer).getBigUint64(0, true);
  }

  write64(gpa: number, v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.fd.memory.write(this.va + BigInt(gpa), b);
  }

  /** Maps the 4 KiB page at `iova` to guest-physical `gpa` in the 4-level first stage at ROOT. */
  map(iova: number, gpa: number, opts: { write?: boolean; user?: boolean } = {}): void {
    let table = ROOT;
    for (let level = 0; level < 3; level++) {
      const at = table + (Math.floor(iova / 2 ** (39 - 9 * level)) % 512) * 8;
      let e = this.read64(at);
      if ((e & 1n) === 0n) {
        const next = this.#nextTable;
        this.#nextTable += 0x1000;
        e = BigInt(next) | BigInt(X86_LO.P | X86_LO.RW | X86_LO.US);
        this.write64(at, e);
      }
      table = Number(e & 0xf_ffff_ffff_f000n);
    }
    const bits = X86_LO.P | (opts.write === false ? 0 : X86_LO.RW) | (opts.user === false ? 0 : X86_LO.US);
    this.write64(table + (Math.floor(iova / 4096) % 512) * 8, BigInt(gpa) | BigInt(bits));
  }

  /** The leaf entry of `iova` (after {@link map}). */
  leaf(iova: number): bigint {
    let table = ROOT;
    for (let level = 0; level < 3; level++) {
      table = Number(this.read64(table + (Math.floor(iova / 2 ** (39 - 9 * level)) % 512) * 8) & 0xf_ffff_ffff_f000n);
    }
    return this.read64(table + (Math.floor(iova / 4096) % 512) * 8);
  }

  nested(data: Record<string, unknown> = {}, flags?: { pasid?: boolean }): number {
    return this.fd.hwptAlloc({
      devId: this.dev,
      ptId: this.parent,
      dataType: 'vtd-s1',
      data: { pgtblAddr: ROOT, addrWidth: 48, ...data },
      ...(flags === undefined ? {} : { flags }),
    });
  }

  /** What a device reads at `iova`: the first 4 bytes, by DMA. */
  dmaWord(iova: number, pasid?: number): number {
    const b = this.fd.dmaRead(this.dev, iova, 4, pasid === undefined ? undefined : { pasid });
    return new DataView(b.buffer).getUint32(0, true);
  }

  /** Writes a marker word into guest page `gpa`. */
  mark(gpa: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.fd.memory.write(this.va + BigInt(gpa), b);
  }

  inv(hwpt: number, entries: VtdS1Invalidation[]): number {
    return this.fd.hwptInvalidate(hwpt, { dataType: 'vtd-s1', entries });
  }
}

describe('a first stage above 4 GiB of guest-physical space', () => {
  it('is walked where pgtblAddr says, not at its low 32 bits', () => {
    const vm = new Vm();
    const high = 2 ** 32;
    const hiVa = vm.fd.memory.mmap(0x4000n);
    vm.fd.ioasMap(vm.ioas, { userVa: hiVa, length: 0x4000n, iova: BigInt(high), flags: { fixedIova: true } });
    const put = (gpa: number, v: bigint): void => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v, true);
      vm.fd.memory.write(hiVa + BigInt(gpa - high), b);
    };
    // Four levels at 2^32, 2^32 + 4 KiB, ...: the leaf maps IOVA to DATA.
    for (let level = 0; level < 4; level++) {
      const t = high + level * 0x1000;
      const next = level === 3 ? DATA : t + 0x1000;
      put(t + (Math.floor(IOVA / 2 ** (39 - 9 * level)) % 512) * 8, BigInt(next) | 7n);
    }
    vm.mark(DATA, 0x5151);
    const n = vm.nested({ pgtblAddr: high });
    vm.fd.deviceAttach(vm.dev, n);
    expect(vm.dmaWord(IOVA)).toBe(0x5151);
    void vm.fd.close();
  });
});

describe('HWPT_ALLOC vtd-s1', () => {
  it('follows the kernel rules: parent, data type, data, flags, nested-on-nested, busy parent', () => {
    const vm = new Vm();
    const { fd, dev, ioas, parent } = vm;
    const plain = fd.hwptAlloc({ devId: dev, ptId: ioas });
    expectErrno(
      () => fd.hwptAlloc({ devId: dev, ptId: plain, dataType: 'vtd-s1', data: { pgtblAddr: ROOT, addrWidth: 48 } }),
      'EINVAL',
    ); // not a nest parent
    expectErrno(
      () => fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'selftest', data: { iotlb: 1 } }),
      'EOPNOTSUPP',
    ); // the mock's type
    expectErrno(() => fd.hwptAlloc({ devId: dev, ptId: parent, dataType: 'arm-smmuv3', data: {} }), 'EOPNOTSUPP');
    expectErrno(() => vm.nested({ flags: { bogus: true } }), 'EOPNOTSUPP');
    expectErrno(() => vm.nested({ pgtblAddr: -1 }), 'EINVAL');
    expectErrno(() => vm.nested({ addrWidth: 'wide' }), 'EINVAL');
    // A mock device cannot use the Intel parent.
    const mockDev = fd.deviceBind({ iommu: 'mock' });
    expectErrno(
      () => fd.hwptAlloc({ devId: mockDev, ptId: parent, dataType: 'selftest', data: { iotlb: 1 } }),
      'EINVAL',
    );
    const n = vm.nested();
    expectErrno(
      () => fd.hwptAlloc({ devId: dev, ptId: n, dataType: 'vtd-s1', data: { pgtblAddr: ROOT, addrWidth: 48 } }),
      'EINVAL',
    ); // nested on nested
    expectErrno(() => fd.destroy(parent), 'EBUSY');
    fd.destroy(n);
    fd.destroy(parent);
    void fd.close();
  });

  it('checks the configuration against the host unit at attach (intel_pasid_setup_nested)', () => {
    const vm = new Vm({ pasidBits: 8 });
    const { fd, dev } = vm;
    expectErrno(() => fd.deviceAttach(dev, vm.nested({ addrWidth: 39 })), 'EINVAL');
    expectErrno(() => fd.deviceAttach(dev, vm.nested({ flags: { eafe: true } })), 'EINVAL'); // no ECAP.EAFS
    // A PASID needs a nested HWPT allocated for PASID use.
    expectErrno(() => fd.deviceAttach(dev, vm.nested(), { pasid: 5 }), 'EINVAL');
    expect(fd.deviceAttach(dev, vm.nested({ addrWidth: 57 }))).toBeGreaterThan(0);
    const forPasid = vm.nested({}, { pasid: true });
    expectErrno(() => fd.deviceAttach(dev, forPasid, { pasid: 5 }), 'EINVAL'); // the RID's HWPT is not PASID-compatible
    fd.deviceReplace(dev, vm.nested({}, { pasid: true }));
    expect(fd.deviceAttach(dev, forPasid, { pasid: 5 })).toBe(forPasid);
    expectErrno(() => fd.destroy(forPasid), 'EBUSY');
    fd.deviceDetach(dev, { pasid: 5 });
    fd.destroy(forPasid);
    void fd.close();
  });
});

describe('hardware nesting (VT-d): a device on a nested HWPT', () => {
  it('translates through the guest first stage and the parent second stage, and sets A/D', () => {
    const vm = new Vm();
    const n = vm.nested();
    vm.fd.deviceAttach(vm.dev, n);
    vm.map(IOVA, DATA);
    vm.map(IOVA + 0x1000, DATA + 0x3000);
    vm.mark(DATA, 0x1111);
    vm.mark(DATA + 0x3000, 0x2222);
    expect(vm.dmaWord(IOVA)).toBe(0x1111);
    expect(vm.dmaWord(IOVA + 0x1000)).toBe(0x2222);
    // The guest's entry has A set by the read, then D by a write.
    expect(vm.leaf(IOVA) & BigInt(X86_LO.A | X86_LO.D)).toBe(BigInt(X86_LO.A));
    vm.fd.dmaWrite(vm.dev, IOVA + 8, new Uint8Array([1]));
    expect(vm.leaf(IOVA) & BigInt(X86_LO.D)).toBe(BigInt(X86_LO.D));
    // An IOVA the guest did not map faults with the first stage's reason.
    expect(vm.fd.translate(vm.dev, IOVA + 0x10_0000, Access.Read)).toBeLessThan(0);
    expect(vm.fd.lastFault().vendorCode).toBe(0x71);
    void vm.fd.close();
  });

  it('caches in the IOTLB until the guest invalidates, by range or all (entry rules and entryNum)', () => {
    const vm = new Vm();
    const n = vm.nested();
    vm.fd.deviceAttach(vm.dev, n);
    vm.map(IOVA, DATA);
    vm.map(IOVA + 0x1000, DATA + 0x1000);
    vm.mark(DATA, 1);
    vm.mark(DATA + 0x1000, 2);
    vm.mark(DATA + 0x5000, 5);
    vm.mark(DATA + 0x6000, 6);
    expect(vm.dmaWord(IOVA)).toBe(1);
    expect(vm.dmaWord(IOVA + 0x1000)).toBe(2);
    // The guest repoints both pages. Without an invalidation the IOTLB still serves the old
    // translation, as hardware would.
    vm.map(IOVA, DATA + 0x5000);
    vm.map(IOVA + 0x1000, DATA + 0x6000);
    expect(vm.dmaWord(IOVA)).toBe(1);
    // A range covering only the first page.
    expect(vm.inv(n, [{ addr: IOVA, npages: 1, flags: { leaf: true } }])).toBe(1);
    expect(vm.dmaWord(IOVA)).toBe(5);
    expect(vm.dmaWord(IOVA + 0x1000)).toBe(2);
    // Bad entries after a good one: the good one took effect, entryNum says so.
    vm.map(IOVA, DATA);
    expectErrno(
      () =>
        vm.inv(n, [
          { addr: 0, npages: VTD_S1_ALL_PAGES },
          { addr: 0x800, npages: 1 },
        ]),
      'EINVAL',
      1,
    );
    expect(vm.dmaWord(IOVA)).toBe(1);
    expect(vm.dmaWord(IOVA + 0x1000)).toBe(6);
    expectErrno(() => vm.inv(n, [{ addr: 0x1000, npages: VTD_S1_ALL_PAGES }]), 'EINVAL', 0);
    expectErrno(
      () => vm.inv(n, [{ addr: 0, npages: 1, flags: { leaf: true, global: true } as { leaf: boolean } }]),
      'EOPNOTSUPP',
      0,
    );
    expectErrno(() => vm.inv(n, [{ addr: 0, npages: -1 }]), 'EINVAL', 0);
    expectErrno(() => vm.fd.hwptInvalidate(n, { dataType: 'selftest', entries: [] }), 'EINVAL', 0);
    expectErrno(() => vm.fd.hwptInvalidate(vm.parent, { dataType: 'vtd-s1', entries: [] }), 'EINVAL', 0);
    expect(vm.inv(n, [])).toBe(0);
    expect(vm.inv(n, [{ addr: IOVA, npages: 0 }])).toBe(1);
    void vm.fd.close();
  });

  it('flushes the device-TLB of an ATS device with the IOTLB', () => {
    const vm = new Vm({ ats: true });
    const n = vm.nested();
    vm.fd.deviceAttach(vm.dev, n);
    vm.map(IOVA, DATA);
    vm.mark(DATA, 1);
    vm.mark(DATA + 0x5000, 5);
    expect(vm.dmaWord(IOVA)).toBe(1);
    const atcHits = vm.fd.cacheStats().atcHits;
    expect(vm.dmaWord(IOVA)).toBe(1);
    expect(vm.fd.cacheStats().atcHits).toBeGreaterThan(atcHits);
    vm.map(IOVA, DATA + 0x5000);
    vm.inv(n, [{ addr: IOVA, npages: 1 }]);
    expect(vm.dmaWord(IOVA)).toBe(5);
    void vm.fd.close();
  });

  it('loses a translation when the VMM unmaps the guest page from the parent (stage 2)', () => {
    const vm = new Vm({}, true);
    const n = vm.nested();
    vm.fd.deviceAttach(vm.dev, n);
    vm.map(IOVA, DATA);
    vm.mark(DATA, 7);
    expect(vm.dmaWord(IOVA)).toBe(7);
    vm.fd.ioasUnmap(vm.ioas, BigInt(DATA), 0x1000n);
    expect(vm.fd.translate(vm.dev, IOVA, Access.Read)).toBeLessThan(0);
    // And a table page: every translation through it faults.
    vm.map(IOVA + 0x1000, DATA + 0x1000);
    expect(vm.fd.translate(vm.dev, IOVA + 0x1000, Access.Read)).toBeGreaterThan(0);
    vm.fd.ioasUnmap(vm.ioas, BigInt(ROOT), 0x1000n);
    expect(vm.fd.translate(vm.dev, IOVA + 0x1000, Access.Read)).toBeLessThan(0);
    void vm.fd.close();
  });

  it('applies SRE and WPE to supervisor requests', () => {
    const vm = new Vm();
    const { fd, dev } = vm;
    vm.map(IOVA, DATA, { write: false });
    const priv = Access.Read | Access.Priv;
    const privWrite = Access.Write | Access.Priv;
    fd.deviceAttach(dev, vm.nested());
    expect(fd.translate(dev, IOVA, priv)).toBeLessThan(0); // SRE = 0
    expect(fd.lastFault().vendorCode).toBe(0x5d);
    fd.deviceReplace(dev, vm.nested({ flags: { sre: true } }));
    expect(fd.translate(dev, IOVA, priv)).toBeGreaterThan(0);
    expect(fd.translate(dev, IOVA, privWrite)).toBeGreaterThan(0); // WPE = 0: supervisor writes ignore R/W
    expect(fd.translate(dev, IOVA, Access.Write)).toBeLessThan(0); // a user write does not
    fd.deviceReplace(dev, vm.nested({ flags: { sre: true, wpe: true } }));
    expect(fd.translate(dev, IOVA, privWrite)).toBeLessThan(0);
    void fd.close();
  });

  it('keeps working when the PASID is attached to a nested HWPT and replaced between two', () => {
    const vm = new Vm({ pasidBits: 8 });
    const { fd, dev } = vm;
    fd.deviceAttach(dev, vm.nested({}, { pasid: true }));
    vm.map(IOVA, DATA);
    vm.mark(DATA, 3);
    vm.mark(DATA + 0x7000, 9);
    const a = vm.nested({}, { pasid: true });
    fd.deviceAttach(dev, a, { pasid: 3 });
    expect(vm.dmaWord(IOVA, 3)).toBe(3);
    // A second first stage, rooted elsewhere, that maps the same IOVA to another page.
    const root2 = 0x10_0000;
    const b = vm.nested({ pgtblAddr: root2 }, { pasid: true });
    for (let level = 0, t = root2; level < 3; level++, t += 0x1000) {
      vm.write64(t + (Math.floor(IOVA / 2 ** (39 - 9 * level)) % 512) * 8, BigInt(t + 0x1000) | 7n);
      if (level === 2) vm.write64(t + 0x1000 + (Math.floor(IOVA / 4096) % 512) * 8, BigInt(DATA + 0x7000) | 7n);
    }
    fd.deviceReplace(dev, b, { pasid: 3 });
    expect(vm.dmaWord(IOVA, 3)).toBe(9);
    fd.deviceReplace(dev, a, { pasid: 3 });
    expect(vm.dmaWord(IOVA, 3)).toBe(3);
    fd.deviceDetach(dev, { pasid: 3 });
    expect(fd.translate(dev, IOVA, Access.Read, 3)).toBeLessThan(0);
    void fd.close();
    expect(fd.framesInUse()).toBe(0);
  });
});
