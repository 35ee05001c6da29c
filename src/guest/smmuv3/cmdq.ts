/**
 * The guest side of the SMMUv3 command queue, as Linux 6.1's arm-smmu-v3 produces into it
 * (reference/viommu-queues.md §1.1, §1.4, §1.5, §4.1): `arm_smmu_cmdq_issue_cmdlist`,
 * `arm_smmu_cmdq_batch_add` / `_submit`, the CMD_SYNC wait (`__arm_smmu_cmdq_poll_until_msi` or
 * `__arm_smmu_cmdq_poll_until_consumed`) and `__arm_smmu_cmdq_skip_err`.
 *
 * One producer on one thread, so Linux's lock-free reservation (the shared `llq`, the owner
 * flag, `valid_map`) reduces to a shadow PROD/CONS pair: an insertion reserves `n + sync` slots
 * (refreshing CONS from the register when the shadow says the queue is full), writes the
 * commands, then the sync, and writes CMDQ_PROD once. The unit consumes synchronously inside that
 * write, so a sync that has not completed when polled means the queue stopped on an error: each
 * poll round that finds no progress runs the caller's `onStall` (the driver's GERROR handler,
 * standing in for the interrupt that would run concurrently on hardware).
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { encodeCommand, Opcode, SyncCs, type CommandFields } from '../../vendor/smmuv3/commands.js';
import { CERROR, CMDQ_CONS, Q_BASE, QUEUE_ENTRY_BYTES, SMMU_REG } from '../../vendor/smmuv3/regs-defs.js';
import { allocCoherent } from './coherent.js';
import { DRIVER_ERRORS } from './errors.js';
import type { SmmuMmio } from './port.js';

/** Linux `CMDQ_BATCH_ENTRIES` (BITS_PER_LONG): commands a batch holds before it is issued without a sync. */
export const CMDQ_BATCH_ENTRIES = 64;
/** 32-bit words per command. */
export const CMD_WORDS = QUEUE_ENTRY_BYTES.cmdq / 4;
/** Linux `ARM_SMMU_SH_ISH`: inner shareable (CMD_SYNC MSH, STE S1CSH, CD SH0, CR1). */
export const SH_ISH = 3;
/** Linux `ARM_SMMU_MEMATTR_OIWB`: the CMD_SYNC MSIAttr Linux always sets. */
export const MEMATTR_OIWB = 0xf;
/** Linux `Q_BASE_RWA`: bit 62 of every queue's BASE (read/write-allocate hint). */
const Q_BASE_RWA = BigInt(Q_BASE.ALLOC_HI) << 32n;

/** A queue's BASE register as Linux writes it: RWA, the base address and LOG2SIZE. */
export function queueBaseRegister(base: number, log2Size: number): bigint {
  return Q_BASE_RWA | BigInt(base) | BigInt(log2Size);
}

/** Options of the command queue. */
export interface CommandQueueOptions {
  /** log2 of the entries (Linux `cmdq.q.llq.max_n_shift`). */
  readonly log2Size: number;
  /**
   * `ARM_SMMU_OPT_MSIPOLL` (IDR0.MSI with coherent accesses): a CMD_SYNC asks for an MSI of 0 to
   * its own slot and completion is polled in memory; otherwise CMDQ_CONS is polled by MMIO.
   */
  readonly msiPoll: boolean;
  /** IDR0.SEV: a CMD_SYNC without an MSI asks for SIG_SEV instead of SIG_NONE. */
  readonly sev: boolean;
  /** Poll rounds before a sync, or room in a full queue, is declared lost (EIO). */
  readonly pollLimit: number;
  /** Runs on every poll round that found no progress: the driver's GERROR handler. */
  readonly onStall: () => void;
}

/** Counters of the guest's command queue use. */
export interface CommandQueueStats {
  /** Insertions (`arm_smmu_cmdq_issue_cmdlist` calls), each one CMDQ_PROD write. */
  submissions: number;
  /** CMD_SYNCs inserted (the ones that replace a bad command not included). */
  syncs: number;
  /** Batch submissions (`arm_smmu_cmdq_batch_submit`), each ending in one CMD_SYNC. */
  batches: number;
  /** Full batches of 64 issued without a sync (`arm_smmu_cmdq_batch_add`). */
  fullBatches: number;
  /** Poll rounds that found a sync not yet complete. */
  syncPolls: number;
  /** CMDQ_CONS reads because the shadow CONS said the queue lacked room. */
  consRefreshes: number;
  /** Command errors handled (`arm_smmu_cmdq_skip_err` runs). */
  cmdqErrors: number;
}

/** The last command error the driver handled. */
export interface CmdqErrorRecord {
  /** CMDQ_CONS.ERR: a CERROR code. */
  readonly code: number;
  /** CMDQ_CONS.RD (index and wrap bit): the command the unit stopped on. */
  readonly index: number;
  /** The command's four words as the unit saw them. */
  readonly command: readonly number[];
}

/** A guest's command queue over one unit. */
export class CommandQueue {
  /** Guest-physical base of the ring. */
  readonly base: number;
  /** log2 of the entries. */
  readonly log2Size: number;
  /** Entries in the ring. */
  readonly entries: number;
  /** CMD_SYNC completion by MSI write-back (`ARM_SMMU_OPT_MSIPOLL`). */
  readonly msiPoll: boolean;
  /** Counters. */
  readonly stats: CommandQueueStats = {
    submissions: 0,
    syncs: 0,
    batches: 0,
    fullBatches: 0,
    syncPolls: 0,
    consRefreshes: 0,
    cmdqErrors: 0,
  };
  /** Commands written to the ring by opcode, CMD_SYNCs included. */
  readonly opcodeCounts = new Float64Array(256);
  /** The last command error handled, if any. */
  lastError: CmdqErrorRecord | undefined;
  readonly #mmio: SmmuMmio;
  readonly #i32: Int32Array;
  readonly #sev: boolean;
  readonly #pollLimit: number;
  readonly #onStall: () => void;
  /** Index and wrap bits. */
  readonly #mask: number;
  readonly #scratch = new Uint32Array(CMD_WORDS);
  #prod = 0;
  #cons = 0;

  /** Allocates the ring from `frames` (aligned to its size). Nothing touches the unit. */
  constructor(mmio: SmmuMmio, guest: PhysMemory, frames: FrameAllocator, opts: CommandQueueOptions) {
    this.#mmio = mmio;
    this.#i32 = guest.i32;
    this.log2Size = opts.log2Size;
    this.entries = 2 ** opts.log2Size;
    this.msiPoll = opts.msiPoll;
    this.#sev = opts.sev;
    this.#pollLimit = opts.pollLimit;
    this.#onStall = opts.onStall;
    this.#mask = 2 * this.entries - 1;
    this.base = allocCoherent(frames, this.entries * QUEUE_ENTRY_BYTES.cmdq);
  }

  /** CMDQ_BASE as Linux writes it. */
  get baseRegister(): bigint {
    return queueBaseRegister(this.base, this.log2Size);
  }

  /** The shadow PROD (index and wrap bit): where the next insertion starts. */
  get prod(): number {
    return this.#prod;
  }

  /** The shadow CONS (index and wrap bit), as last learnt from a sync or CMDQ_CONS. */
  get cons(): number {
    return this.#cons;
  }

  /** Guest-physical address of the slot an index names. */
  slotAddress(index: number): number {
    return this.base + (index & (this.entries - 1)) * QUEUE_ENTRY_BYTES.cmdq;
  }

  /** `arm_smmu_cmdq_issue_cmd`: one command, with its CMD_SYNC in the same insertion when `sync`. */
  issueCmd(opcode: number, fields: CommandFields, sync: boolean): void {
    encodeCommand(opcode, fields, this.#scratch, 0);
    this.issue(this.#scratch, 1, sync);
  }

  /**
   * `arm_smmu_cmdq_issue_cmdlist`: copies the first `n` commands of `cmds` into the ring and, with
   * `sync`, a CMD_SYNC after them, writes CMDQ_PROD once and, with `sync`, waits for the sync.
   * EINVAL when `n` and the sync can never fit; EIO when room or completion never comes.
   */
  issue(cmds: Uint32Array | Int32Array, n: number, sync: boolean): void {
    const need = n + (sync ? 1 : 0);
    if (need > this.entries) throw DRIVER_ERRORS.tooMany(n, this.entries);
    this.#reserve(need);
    const prod = this.#prod;
    const i32 = this.#i32;
    for (let i = 0; i < n; i++) {
      const at = this.#slotWord(prod + i);
      const from = i * CMD_WORDS;
      i32[at] = cmds[from]!;
      i32[at + 1] = cmds[from + 1]!;
      i32[at + 2] = cmds[from + 2]!;
      i32[at + 3] = cmds[from + 3]!;
      this.opcodeCounts[cmds[from]! & 0xff]!++;
    }
    const syncIndex = (prod + n) & this.#mask;
    if (sync) {
      this.#buildSync(this.#slotWord(syncIndex), this.msiPoll ? this.slotAddress(syncIndex) : 0);
      this.opcodeCounts[Opcode.Sync]!++;
      this.stats.syncs++;
    }
    this.#prod = (prod + need) & this.#mask;
    this.stats.submissions++;
    this.#mmio.write32(SMMU_REG.CMDQ_PROD, this.#prod);
    if (sync) this.#waitSync(syncIndex);
  }

  /** `queue_has_space(n)` against the shadow CONS, refreshed from CMDQ_CONS while it says no. */
  #reserve(need: number): void {
    for (let polls = 0; !this.#hasSpace(need); polls++) {
      if (polls >= this.#pollLimit) {
        throw DRIVER_ERRORS.cmdqFull(need, this.#prod, this.#cons, polls);
      }
      if (polls > 0) this.#onStall();
      this.#cons = this.#mmio.read32(SMMU_REG.CMDQ_CONS) & this.#mask;
      this.stats.consRefreshes++;
    }
  }

  #hasSpace(n: number): boolean {
    const e = this.entries;
    const prodIdx = this.#prod & (e - 1);
    const consIdx = this.#cons & (e - 1);
    const space = (this.#prod & e) === (this.#cons & e) ? e - (prodIdx - consIdx) : consIdx - prodIdx;
    return space >= n;
  }

  /**
   * Polls the sync at `index` until it completed: its slot's first word turned 0 (MSI poll), or
   * CMDQ_CONS moved past it (`queue_consumed`). Each round without progress runs `onStall`.
   */
  #waitSync(index: number): void {
    const word = this.#slotWord(index);
    for (let polls = 0; ; polls++) {
      if (this.msiPoll) {
        if (this.#i32[word] === 0) {
          this.#cons = (index + 1) & this.#mask;
          return;
        }
      } else {
        this.#cons = this.#mmio.read32(SMMU_REG.CMDQ_CONS) & this.#mask;
        if (this.#consumed(index)) return;
      }
      if (polls >= this.#pollLimit) {
        const hwProd = this.#mmio.read32(SMMU_REG.CMDQ_PROD);
        const hwCons = this.#mmio.read32(SMMU_REG.CMDQ_CONS);
        throw DRIVER_ERRORS.syncTimeout(index, hwProd, hwCons, polls);
      }
      this.stats.syncPolls++;
      this.#onStall();
    }
  }

  /** `queue_consumed(llq, prod)`: the shadow CONS has passed `index`. */
  #consumed(index: number): boolean {
    const e = this.entries;
    const consIdx = this.#cons & (e - 1);
    const idx = index & (e - 1);
    return (this.#cons & e) === (index & e) ? consIdx > idx : consIdx <= idx;
  }

  /**
   * `__arm_smmu_cmdq_skip_err`, run by the GERROR handler while CMDQ_ERR is active: reads
   * CMDQ_CONS.ERR; an illegal command (CERROR_ILL, or an unknown code) is overwritten with a
   * CMD_SYNC so the unit can go on; an abort on fetch (CERROR_ABT) is retried as it is, and so is
   * a sync that an ATC invalidation failed (CERROR_ATC_INV_SYNC). Returns the code; the caller
   * then acknowledges GERROR, which resumes the queue.
   */
  skipErr(): number {
    const cons = this.#mmio.read32(SMMU_REG.CMDQ_CONS);
    const code = (cons >>> CMDQ_CONS.ErrShift) & CMDQ_CONS.ErrMask;
    const index = cons & this.#mask;
    const at = this.#slotWord(index);
    const i32 = this.#i32;
    this.stats.cmdqErrors++;
    this.lastError = {
      code,
      index,
      command: [i32[at]! >>> 0, i32[at + 1]! >>> 0, i32[at + 2]! >>> 0, i32[at + 3]! >>> 0],
    };
    switch (code) {
      case CERROR.NONE:
      case CERROR.ABT:
      case CERROR.ATC_INV_SYNC:
        return code;
      default:
        this.#buildSync(at, 0);
        return code;
    }
  }

  /** `arm_smmu_cmdq_build_sync_cmd`: SIG_IRQ to `msiAddr` with data 0, or SIG_SEV / SIG_NONE without. */
  #buildSync(at: number, msiAddr: number): void {
    const fields: CommandFields =
      msiAddr !== 0
        ? { cs: SyncCs.Irq, msh: SH_ISH, msiAttr: MEMATTR_OIWB, msiAddr }
        : { cs: this.#sev ? SyncCs.Sev : SyncCs.None, msh: SH_ISH, msiAttr: MEMATTR_OIWB };
    encodeCommand(Opcode.Sync, fields, this.#i32, at);
  }

  #slotWord(index: number): number {
    return (this.base + (index & (this.entries - 1)) * QUEUE_ENTRY_BYTES.cmdq) / 4;
  }
}

/**
 * `struct arm_smmu_cmdq_batch`: up to 64 commands gathered in a preallocated buffer. Adding to a
 * full batch issues it without a sync; `submit` issues the rest with exactly one CMD_SYNC.
 */
export class CommandBatch {
  /** The commands, 4 words each. */
  readonly cmds = new Uint32Array(CMDQ_BATCH_ENTRIES * CMD_WORDS);
  /** Commands gathered. */
  num = 0;
  readonly #queue: CommandQueue;

  /** A batch for `queue`. */
  constructor(queue: CommandQueue) {
    this.#queue = queue;
  }

  /** `arm_smmu_cmdq_batch_add`. */
  add(opcode: number, fields: CommandFields): void {
    if (this.num === CMDQ_BATCH_ENTRIES) {
      this.#queue.issue(this.cmds, this.num, false);
      this.#queue.stats.fullBatches++;
      this.num = 0;
    }
    encodeCommand(opcode, fields, this.cmds, this.num * CMD_WORDS);
    this.num++;
  }

  /** `arm_smmu_cmdq_batch_submit`: the commands gathered and one CMD_SYNC, then waits for it. */
  submit(): void {
    const n = this.num;
    this.num = 0;
    this.#queue.stats.batches++;
    this.#queue.issue(this.cmds, n, true);
  }
}
