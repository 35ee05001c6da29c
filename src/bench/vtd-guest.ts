/** The bench's VT-d unit: an emulated unit driven by the Linux-like `VtdGuestDriver`. */
import type { Iommufd } from '../iommufd.js';
import { iotlbGlobal, VtdGuestDriver } from '../guest/vtd/index.js';
import { VTD_REG } from '../vendor/vtd/regs-defs.js';
import { QemuVtdUnit } from '../baseline/index.js';
import type { VtdIommu } from '../vendor/vtd/iommu.js';
import type { BenchGuest, BenchGuestOptions, UnitCounters } from './bench-guest.js';
import { InstrumentedPort } from './instrumented-port.js';
import { vtdDropper, type DropperCounts } from './invalidation-dropper.js';
import type { BenchUnit } from './state.js';

/**
 * Creates a VT-d unit on `fd` (or, with `target` 'qemu', the QEMU-style baseline's, which has no
 * device-TLB) and brings its guest driver up (legacy tables, second stage).
 */
export function createVtdGuest(fd: Iommufd, o: BenchGuestOptions, target: 'ioasid' | 'qemu' = 'ioasid'): BenchGuest {
  const unit: AnyVtdUnit =
    target === 'qemu'
      ? new QemuVtdUnit({ guestRamBytes: o.guestRamBytes })
      : fd.vtdCreate({ guestRamBytes: o.guestRamBytes, deviceTlb: o.ats });
  const port = new InstrumentedPort(unit, VTD_REG.IQT);
  const driver = new VtdGuestDriver(port, { mode: 'legacy', policy: o.policy, flushQueueSize: o.batch });
  driver.probe();
  port.barrierCount = () => driver.queue.stats.waits;
  return new VtdBenchGuest(unit, driver, port, o);
}

/** Either kind of VT-d unit: this project's, or the QEMU-style baseline's. */
type AnyVtdUnit = VtdIommu | QemuVtdUnit;

class VtdBenchGuest implements BenchGuest {
  readonly vendor = 'vtd' as const;
  readonly port: InstrumentedPort;
  readonly target: BenchUnit | undefined;
  readonly #unit: AnyVtdUnit;
  readonly #driver: VtdGuestDriver;
  readonly #opts: BenchGuestOptions;
  /** DID by SID: one domain per device. */
  readonly #dids = new Map<number, number>();

  constructor(unit: AnyVtdUnit, driver: VtdGuestDriver, port: InstrumentedPort, o: BenchGuestOptions) {
    this.#unit = unit;
    this.#driver = driver;
    this.port = port;
    this.#opts = o;
    this.target = unit instanceof QemuVtdUnit ? undefined : { vendor: 'vtd', unit };
  }

  attach(sid: number, ats: boolean): void {
    const did = this.#dids.size + 1;
    if (ats) {
      if (this.#unit instanceof QemuVtdUnit) throw new RangeError('the QEMU-style baseline has no device-TLB (ATS)');
      this.#unit.addAtsDevice(sid);
    }
    this.#driver.attach(sid, { did, ats });
    this.#dids.set(sid, did);
  }

  rebuild(sid: number): void {
    this.#driver.unmap(sid, this.#opts.windowBase, this.#opts.teardownSpan);
  }

  map(sid: number, iova: number, gpa: number, bytes: number): void {
    this.#driver.map(sid, iova, gpa, bytes, 3);
  }

  unmap(sid: number, iova: number, bytes: number): void {
    this.#driver.unmap(sid, iova, bytes);
  }

  get pendingFlushes(): number {
    return this.#driver.pendingFlushes;
  }

  flushLazy(): void {
    this.#driver.flushLazy();
  }

  invalidateAll(): void {
    this.#driver.queue.submit([iotlbGlobal({ dr: 0, dw: 0 })]);
  }

  translate(sid: number, iova: number, access: number): number {
    return this.#unit.translate({ sid }, iova, access);
  }

  paOf(gpa: number): number {
    return this.#unit.ram.gpaToPa(gpa);
  }

  allocBuffer(pages: number): number {
    const frames = this.#driver.frames;
    return (pages === 1 ? frames.alloc() : frames.allocContiguous(pages)) * 4096;
  }

  counters(): UnitCounters {
    if (this.#unit instanceof QemuVtdUnit) {
      const q = this.#unit.stats();
      return {
        commands: q.queue.descriptors,
        barriers: q.queue.waits,
        iotlbHits: q.iotlb.hits,
        iotlbMisses: q.iotlb.misses,
        atcHits: 0,
      };
    }
    const s = this.#unit.stats();
    return {
      commands: s.descriptors,
      barriers: s.waits,
      iotlbHits: s.iotlbHits,
      iotlbMisses: s.iotlbMisses,
      atcHits: s.devTlbHits,
    };
  }

  domainLabel(sid: number): string {
    return `DID ${this.#dids.get(sid) ?? '?'}`;
  }

  dropInvalidations(from: number, counts: DropperCounts): void {
    const unusedDid = 2 ** this.#driver.caps.didBits - 1;
    this.port.beforeDoorbell = vtdDropper(this.#unit, this.#driver.queue, from, unusedDid, counts);
  }
}
