/**
 * The replay's SMMUv3 guest: the Linux-like driver model brings the unit up (`probe`: queues,
 * stream table, `arm_smmu_device_reset`) and owns the command queue; the replay issues the
 * trace's re-encoded commands through it, one CMDQ_PROD write per trace doorbell.
 *
 * Domains: the driver model can only unmap together with its own invalidation, while a replay
 * must unmap silently and let the trace's invalidation follow, and must give a domain the ASID
 * the trace uses. So the replay installs a trace device's stage-1 configuration itself, with the
 * field values the driver model uses (drivers/iommu/arm/arm-smmu-v3 `arm_smmu_write_ctx_desc`,
 * `arm_smmu_write_strtab_ent`): a linear one-CD table whose CD names its own stage-1 table, and
 * the STE. These are memory writes only; the trace's CFGI_* commands invalidate them.
 */
import { linuxS1Cd, linuxS1Ste, S1_T0SZ, SmmuGuestDriver } from '../guest/smmuv3/index.js';
import { armS1Codec, armS1Config, RadixPageTable } from '../pgtable/index.js';
import { GERROR, SMMU_REG } from '../vendor/smmuv3/regs-defs.js';
import { CD, encodeCd } from '../vendor/smmuv3/structures-cd.js';
import { ReplayDomain } from './mappings.js';
import type { ReplayUnit } from './units.js';

/** log2 of the command queue's entries: room for the longest trace doorbell. */
const CMDQ_BITS = 12;

/** What issuing a doorbell found. */
export interface IssueOutcome {
  /** Commands the unit rejected (CMDQ_ERR), each recovered the way Linux does. */
  rejected: number;
  /** Whether CONS caught up with PROD (every CMD_SYNC completed). */
  drained: boolean;
}

/** The replay's SMMUv3 guest over one unit. */
export class SmmuTraceGuest {
  /** The unit (this project's, or the QEMU-style baseline). */
  readonly unit: ReplayUnit;
  /** The driver model that brought the unit up and owns its command queue. */
  readonly driver: SmmuGuestDriver;
  readonly #cd = new Int32Array(CD.WORDS);
  /** The CD table of each domain installed. */
  readonly #cdTables = new Map<ReplayDomain, number>();
  readonly #result: IssueOutcome = { rejected: 0, drained: true };

  /** Brings `unit` up with the driver model. */
  constructor(unit: ReplayUnit) {
    this.unit = unit;
    this.driver = new SmmuGuestDriver(unit, { policy: 'strict', cmdqBits: CMDQ_BITS });
    this.driver.probe();
  }

  /** The most commands one doorbell can carry. */
  get capacity(): number {
    return this.driver.queue.entries - 1;
  }

  /**
   * Writes the first `n` commands of `cmds` (4 words each) into the command queue and CMDQ_PROD
   * once. The unit consumes them before this returns; a command it rejects is handled by the
   * driver's GERROR handler (`arm_smmu_cmdq_skip_err`: the bad slot becomes a CMD_SYNC, GERRORN
   * is acknowledged and the queue resumes). The outcome object is reused.
   */
  issue(cmds: Uint32Array, n: number): IssueOutcome {
    const driver = this.driver;
    const r = this.#result;
    r.rejected = 0;
    driver.queue.issue(cmds, n, false);
    for (let guard = 0; guard <= n; guard++) {
      if ((driver.handleGlobalErrors() & GERROR.CMDQ_ERR) === 0) break;
      r.rejected++;
    }
    // Index and wrap bits only: CONS keeps the ERR code of an error that was recovered.
    const unit = this.unit;
    const mask = 2 * driver.queue.entries - 1;
    r.drained =
      (Number(unit.mmioRead(SMMU_REG.CMDQ_CONS, 4)) & mask) === (Number(unit.mmioRead(SMMU_REG.CMDQ_PROD, 4)) & mask);
    return r;
  }

  /**
   * Installs a stage-1 configuration for StreamID `sid`: the CD table of `domain` when given (a
   * domain shared by several devices), else a new domain whose CD has `asid`. Returns the domain.
   */
  install(sid: number, asid: number, domain?: ReplayDomain): ReplayDomain {
    const shared = domain !== undefined ? this.#cdTables.get(domain) : undefined;
    if (domain !== undefined && shared !== undefined) {
      this.#writeSte(sid, shared);
      return domain;
    }
    const driver = this.driver;
    const caps = driver.caps;
    const guest = this.unit.guest;
    const table = new RadixPageTable(guest, driver.frames, armS1Codec(armS1Config(S1_T0SZ, caps.ias)));
    const cdTable = driver.frames.alloc() * 4096;
    const cd = linuxS1Cd(caps, asid, table.rootPa);
    encodeCd(cd, this.#cd);
    const i32 = guest.i32;
    const at = cdTable / 4;
    for (let w = CD.WORDS - 1; w >= 1; w--) i32[at + w] = this.#cd[w]!;
    Atomics.store(i32, at, this.#cd[0]!);
    const created = new ReplayDomain(table);
    this.#cdTables.set(created, cdTable);
    this.#writeSte(sid, cdTable);
    return created;
  }

  /** The STE of a stage-1 stream over the linear one-CD table at `cdTable`, word 0 last. */
  #writeSte(sid: number, cdTable: number): void {
    const driver = this.driver;
    const ste = linuxS1Ste(driver.caps, cdTable);
    driver.addDevice(sid);
    driver.streamTable.writeSte(sid, ste, 0, 16);
  }
}
