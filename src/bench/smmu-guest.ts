/** The bench's SMMUv3 unit: an emulated SMMUv3 driven by the Linux-like `SmmuGuestDriver`. */
import type { Iommufd } from '../iommufd.js';
import { SmmuGuestDriver } from '../guest/smmuv3/index.js';
import { encodeCommand, Opcode } from '../vendor/smmuv3/commands.js';
import { QemuSmmuUnit } from '../baseline/index.js';
import type { SmmuIommu } from '../vendor/smmuv3/iommu.js';
import { SMMU_REG } from '../vendor/smmuv3/regs-defs.js';
import type { BenchGuest, BenchGuestOptions, UnitCounters } from './bench-guest.js';
import { InstrumentedPort } from './instrumented-port.js';
import { smmuDropper, type DropperCounts } from './invalidation-dropper.js';
import type { BenchUnit } from './state.js';

/**
 * Creates an SMMUv3 on `fd` (stage 1, range invalidation), or with `target` 'qemu' the QEMU-style
 * baseline's (QEMU 7.2's capabilities: no ATS), and brings its guest driver up.
 */
export function createSmmuGuest(fd: Iommufd, o: BenchGuestOptions, target: 'ioasid' | 'qemu' = 'ioasid'): BenchGuest {
  const unit: AnySmmuUnit =
    target === 'qemu'
      ? new QemuSmmuUnit({ guestRamBytes: o.guestRamBytes })
      : fd.smmuCreate({ guestRamBytes: o.guestRamBytes, ril: true, ats: o.ats });
  const port = new InstrumentedPort(unit, SMMU_REG.CMDQ_PROD);
  const driver = new SmmuGuestDriver(port, { policy: o.policy, flushQueueSize: o.batch });
  driver.probe();
  port.barrierCount = () => driver.queue.stats.syncs;
  return new SmmuBenchGuest(unit, driver, port);
}

/** Either kind of SMMUv3: this project's, or the QEMU-style baseline's. */
type AnySmmuUnit = SmmuIommu | QemuSmmuUnit;

/** TLBI_NH_ALL of VMID 0: every stage-1 entry of a stage-1-only unit. */
const TLBI_NH_ALL = encodeCommand(Opcode.TlbiNhAll, { vmid: 0 });

class SmmuBenchGuest implements BenchGuest {
  readonly vendor = 'smmu' as const;
  readonly port: InstrumentedPort;
  readonly target: BenchUnit | undefined;
  readonly #unit: AnySmmuUnit;
  readonly #driver: SmmuGuestDriver;
  readonly #ats = new Set<number>();

  constructor(unit: AnySmmuUnit, driver: SmmuGuestDriver, port: InstrumentedPort) {
    this.#unit = unit;
    this.#driver = driver;
    this.port = port;
    this.target = unit instanceof QemuSmmuUnit ? undefined : { vendor: 'smmu', unit };
  }

  attach(sid: number, ats: boolean): void {
    if (ats) {
      if (this.#unit instanceof QemuSmmuUnit) throw new RangeError('the QEMU-style baseline has no ATS');
      this.#unit.addAtsDevice(sid);
      this.#ats.add(sid);
    }
    this.#driver.attachDevice(sid, { ats });
  }

  rebuild(sid: number): void {
    this.#driver.detachDevice(sid);
    this.#driver.attachDevice(sid, { ats: this.#ats.has(sid) });
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
    this.#driver.submitRaw(TLBI_NH_ALL);
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
    if (this.#unit instanceof QemuSmmuUnit) {
      const q = this.#unit.stats();
      return {
        commands: q.cmdq.commands,
        barriers: q.cmdq.syncs,
        iotlbHits: q.iotlb.hits,
        iotlbMisses: q.iotlb.misses,
        atcHits: 0,
      };
    }
    const s = this.#unit.stats();
    return {
      commands: s.cmdq.commands,
      barriers: s.cmdq.syncs,
      iotlbHits: s.iotlbHits,
      iotlbMisses: s.iotlbMisses,
      atcHits: s.atcHits,
    };
  }

  domainLabel(sid: number): string {
    return `ASID ${this.#driver.domain(sid).asid}`;
  }

  dropInvalidations(from: number, counts: DropperCounts): void {
    const unusedAsid = 2 ** this.#driver.caps.asidBits - 1;
    this.port.beforeDoorbell = smmuDropper(this.#unit, this.#driver.queue, from, unusedAsid, counts);
  }
}
