/**
 * The correctness gate (reference/perf-anchors.md §5.3.5): every DMA translation during the run
 * and, after the final sync, every page the guest ever mapped is translated through the unit
 * (its ATC and IOTLB first, as a device would) and compared with the reference model. A cached
 * entry that maps a page the model says is unmapped, or maps it elsewhere, fails the run.
 */
import { Access } from '../pgtable/index.js';
import type { BenchDevice } from './device.js';
import type { CorrectnessFailure, CorrectnessResult } from './types.js';

/** Disagreements kept word for word; the rest are counted. */
const KEEP_FAILURES = 5;

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Counts of a run's comparisons against the model, and its first disagreements. */
export class CorrectnessLog {
  checkedDuringRun = 0;
  probedPages = 0;
  stale = 0;
  wrongAddress = 0;
  faults = 0;
  readonly failures: CorrectnessFailure[] = [];

  /**
   * Compares `got`, what the unit translated page `page` of `slot` to, with the model; returns
   * whether they agree.
   */
  compare(dev: BenchDevice, slot: number, page: number, got: number, when: CorrectnessFailure['when']): boolean {
    const gpa = dev.model.expected(slot, page);
    let kind: CorrectnessFailure['kind'];
    if (gpa < 0) {
      if (got < 0) return true;
      kind = 'stale';
      this.stale++;
    } else {
      if (got === dev.guest.paOf(gpa)) return true;
      kind = got < 0 ? 'fault' : 'wrong-address';
      if (got < 0) this.faults++;
      else this.wrongAddress++;
    }
    if (this.failures.length < KEEP_FAILURES) {
      const iova = dev.model.iovaOf(slot) + page * 4096;
      const where =
        `${dev.guest.vendor} unit ${dev.unit}, SID ${hex(dev.sid)} (${dev.guest.domainLabel(dev.sid)}), ` +
        `IOVA ${hex(iova)}`;
      const what =
        kind === 'stale'
          ? `translated to PA ${hex(got)} but the guest unmapped it: a stale IOTLB/ATC entry survived its invalidation`
          : kind === 'fault'
            ? `faulted (${got}) but the guest maps it to GPA ${hex(gpa)}`
            : `translated to PA ${hex(got)} but the guest maps it to GPA ${hex(gpa)} (PA ${hex(dev.guest.paOf(gpa))})`;
      this.failures.push({ kind, when, message: `${where} ${what} (${when})` });
    }
    return false;
  }

  /** The result, with the count of invalidations the test hook dropped. */
  result(droppedInvalidations: number): CorrectnessResult {
    return {
      ok: this.stale + this.wrongAddress + this.faults === 0,
      probedPages: this.probedPages,
      checkedDuringRun: this.checkedDuringRun,
      stale: this.stale,
      wrongAddress: this.wrongAddress,
      faults: this.faults,
      failures: this.failures,
      droppedInvalidations,
    };
  }
}

/**
 * The final probe, after every lazy flush queue drained: translates every probe page of every
 * slot each device ever mapped (DomainModel.forEachProbePage) and compares it with the model.
 * Cached entries grant the access they were filled for, so each page is translated for a write
 * (what the workloads' DMA does) and for a read.
 */
export function probeAgainstModel(devices: readonly BenchDevice[], log: CorrectnessLog): void {
  for (const dev of devices) {
    const { model, guest, sid } = dev;
    for (let slot = 0; slot < model.slots; slot++) {
      const iova = model.iovaOf(slot);
      model.forEachProbePage(slot, (page) => {
        log.probedPages++;
        const at = iova + page * 4096;
        if (log.compare(dev, slot, page, guest.translate(sid, at, Access.Write), 'final-probe'))
          log.compare(dev, slot, page, guest.translate(sid, at, Access.Read), 'final-probe');
      });
    }
  }
}
