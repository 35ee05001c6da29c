/**
 * The SMMUv3 command queue consumer (reference/viommu-queues.md §1.1, §1.4, §1.5, §3.1): reads
 * 16-byte commands from guest memory between CONS and PROD, decodes each once into the pipeline's
 * op list, and runs them. As QEMU's `smmuv3_cmdq_consume` it runs synchronously inside the MMIO
 * write that rang the doorbell.
 *
 * - CMD_SYNC is a barrier: the ops before it run, then its completion is signalled per CS (none,
 *   IRQ: the wired interrupt and the MSI write of MSIData to MSIAddr, SEV: counted, a VMM has no
 *   WFE to wake). CONS is written once the commands it passes have taken effect, so it never
 *   passes an incomplete CMD_SYNC.
 * - Errors stop the queue on the bad entry, as hardware does: CMDQ_CONS.RD names it,
 *   CMDQ_CONS.ERR takes the CERROR code and GERROR.CMDQ_ERR is activated. Everything before the
 *   entry took effect. Nothing more is fetched until the guest acknowledges through GERRORN (the
 *   register model then rings the doorbell again). CERROR_ILL: an illegal command (decoder);
 *   CERROR_ABT: the fetch aborted (the entry lies outside guest RAM); CERROR_ATC_INV_SYNC: a
 *   CMD_SYNC after an ATC_INV whose completion failed (fault injection; CONS stays on the sync).
 * - PROD and CONS are index + wrap bit, masked by the register model to the queue's size, so a
 *   PROD "beyond the queue" cannot be expressed: its upper bits are ignored.
 * - Commands the op format does not cover (TLBI_NSNH_ALL, the EL2 TLBIs, PRI_RESP, RESUME,
 *   STALL_TERM) go to the host's `unitCommand`, in queue order.
 * - The direct vIOMMU path (direct.ts) may refuse a command (CERROR_ILL), stop the queue at a
 *   command the backend may not run itself (an exit to the VMM; CONS stays on it until the VMM
 *   resumes), and collect the commands it forwards to iommufd.
 */
import { OpList } from '../../ops/index.js';
import {
  CERROR_ABT,
  CERROR_ATC_INV_SYNC,
  CERROR_ILL,
  CERROR_NONE,
  decodeCommand,
  Field,
  Opcode,
  SmmuCommand,
  SyncCs,
} from './commands.js';
import { commandToOps, UNIT_HANDLES, type SmmuTagMap } from './commands-ops.js';
import { GERROR } from './regs-defs.js';
import { queueEmpty, queueIncrement, queueSlot } from './regs-queue.js';
import type { SmmuRegisters } from './regs.js';

/** What the consumer needs from its unit. */
export interface CmdqHost {
  /** Guest RAM as 32-bit words (GPA 0 = word 0). */
  readonly mem: Int32Array;
  /** SmmuFeature bits the decoder checks commands against. */
  readonly features: number;
  /** The unit's VMID → IOTLB tag and SID → ATC slot maps. */
  readonly tagMap: SmmuTagMap;
  /** Runs a batch of ops (the pipeline) and returns when they took effect. */
  run(ops: OpList): void;
  /** Executes a command that produces no ops (see the file comment). */
  unitCommand(cmd: SmmuCommand): void;
  /** Whether an ATC_INV for `sid` fails (consumes an injected failure). */
  atcInvFails(sid: number): boolean;
  /** The direct path: false stops the queue on `cmd` with CERROR_ILL (a vSID without a vDEVICE). */
  check?(cmd: SmmuCommand): boolean;
  /** The direct path: whether the queue stops at `cmd` as an exit to the VMM (CONS stays on it). */
  isExit?(cmd: SmmuCommand): boolean;
  /** The direct path: hands the exit at `index` (its words at word `at` of `mem`) to the VMM. */
  emitExit?(cmd: SmmuCommand, index: number, mem: Int32Array, at: number): void;
  /** The direct path: collects a command that runs (its words at word `at` of `mem`). */
  forward?(cmd: SmmuCommand, mem: Int32Array, at: number): void;
  /** The direct path: sends what `forward` collected; runs before any CMD_SYNC behind it completes. */
  flushForwarded?(): void;
}

/** Counters of the consumer. */
export interface CmdqStats {
  /** Doorbells served (consumption passes that found the queue enabled and without error). */
  doorbells: number;
  /** Commands consumed (CONS moved past them). */
  commands: number;
  /** CMD_SYNCs completed, and by CS. */
  syncs: number;
  syncIrq: number;
  syncSev: number;
  /** MSI writes of CMD_SYNC that aborted (GERROR.MSI_CMDQ_ABT_ERR). */
  syncMsiAborts: number;
  /** Command errors by code. */
  errIll: number;
  errAbt: number;
  errAtcInvSync: number;
  /** Exits to the VMM (direct path). */
  exits: number;
}

/** Scratch capacity of one pass's op list; a longer run is executed in several segments. */
const OPS_PER_SEGMENT = 4096;
/** CMD_SYNCs held until their segment runs (more flush the segment early). */
const MAX_PENDING_SYNCS = 256;
const SYNC_STRIDE = 4;

/** The command queue consumer of one unit. */
export class CmdqConsumer {
  readonly #regs: SmmuRegisters;
  readonly #host: CmdqHost;
  readonly #cmd = new SmmuCommand();
  readonly #ops = new OpList(OPS_PER_SEGMENT + 64);
  /** Pending syncs: CS, MSI address, MSI data, the CONS that passes the sync (SYNC_STRIDE numbers each). */
  readonly #syncs = new Float64Array(MAX_PENDING_SYNCS * SYNC_STRIDE);
  #syncCount = 0;
  #seq = 0;
  #consuming = false;
  #rungAgain = false;
  #stopped = false;
  /** An ATC_INV since the last CMD_SYNC failed: that sync cannot complete. */
  #atcFailed = false;
  /** The direct path stopped at this index (index + wrap), or -1. */
  #exitAt = -1;
  readonly #stats: CmdqStats = {
    doorbells: 0,
    commands: 0,
    syncs: 0,
    syncIrq: 0,
    syncSev: 0,
    syncMsiAborts: 0,
    errIll: 0,
    errAbt: 0,
    errAtcInvSync: 0,
    exits: 0,
  };

  /** A consumer of `regs`' command queue for `host`. */
  constructor(regs: SmmuRegisters, host: CmdqHost) {
    this.#regs = regs;
    this.#host = host;
  }

  /** The counters (a copy). */
  stats(): CmdqStats {
    return { ...this.#stats };
  }

  /** The decoded command the consumer is stopped at (an exit), valid until it resumes. */
  get exitCommand(): SmmuCommand | undefined {
    return this.#exitAt >= 0 ? this.#cmd : undefined;
  }

  /** Stops consuming for good (the unit closed). */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * The doorbell. An interrupt handler may ring again from inside it (a CMD_SYNC interrupt is
   * delivered synchronously): that doorbell is served when this one is done, never nested.
   */
  consume(): void {
    if (this.#consuming) {
      this.#rungAgain = true;
      return;
    }
    this.#consuming = true;
    try {
      do {
        this.#rungAgain = false;
        this.#consumeOnce();
      } while (this.#rungAgain);
    } finally {
      this.#consuming = false;
    }
  }

  /**
   * The VMM finished the command the queue stopped at (an exit): CONS moves past it and
   * consumption goes on. With `runIt` the command runs here first (the VMM hands back one the
   * consumer can run). No-op without an exit.
   */
  resume(runIt = false): void {
    if (this.#exitAt < 0) return;
    const at = this.#exitAt;
    this.#exitAt = -1;
    const next = queueIncrement(at, this.#regs.cmdqLog2Size);
    if (runIt) this.#execute(this.#cmd, next);
    this.#runSegment();
    this.#regs.setCmdqCons(next);
    this.#stats.commands++;
    this.consume();
  }

  #consumeOnce(): void {
    const regs = this.#regs;
    if (this.#stopped || this.#exitAt >= 0 || !regs.cmdqEnabled || regs.cmdqErrorPending) return;
    this.#stats.doorbells++;
    const host = this.#host;
    const log2 = regs.cmdqLog2Size;
    const base = regs.cmdqBase;
    const prod = regs.cmdqProd;
    const mem = host.mem;
    const memBytes = mem.length * 4;
    const cmd = this.#cmd;
    let cons = regs.cmdqCons;
    this.#ops.count = 0;
    this.#syncCount = 0;
    while (!queueEmpty(prod, cons, log2)) {
      const addr = base + queueSlot(cons, log2) * 16;
      if (addr + 16 > memBytes) {
        this.#fail(cons, CERROR_ABT);
        return;
      }
      if (decodeCommand(mem, addr >>> 2, cmd, host.features) !== CERROR_NONE) {
        this.#fail(cons, CERROR_ILL);
        return;
      }
      if (host.check !== undefined && !host.check(cmd)) {
        this.#fail(cons, CERROR_ILL);
        return;
      }
      if (host.isExit?.(cmd) === true) {
        // An exit: what came before takes effect, CONS stays on the command until resume(). The
        // state is settled before the VMM hears of it: its handler may resume at once.
        this.#runSegment();
        regs.setCmdqCons(cons);
        this.#exitAt = cons;
        this.#stats.exits++;
        host.emitExit?.(cmd, cons, mem, addr >>> 2);
        return;
      }
      if (cmd.opcode === Opcode.Sync && this.#atcFailed) {
        this.#atcFailed = false;
        this.#fail(cons, CERROR_ATC_INV_SYNC);
        return;
      }
      host.forward?.(cmd, mem, addr >>> 2);
      cons = queueIncrement(cons, log2);
      this.#execute(cmd, cons);
      this.#stats.commands++;
    }
    this.#runSegment();
    regs.setCmdqCons(cons);
  }

  /**
   * Decodes `cmd` into ops (or runs it on the unit) and queues a CMD_SYNC's completion; `next` is
   * the CONS value past the command.
   */
  #execute(cmd: SmmuCommand, next: number): void {
    const host = this.#host;
    const ops = this.#ops;
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    if (cmd.opcode === Opcode.AtcInv && host.atcInvFails(cmd.f[Field.sid]!)) this.#atcFailed = true;
    const n = commandToOps(cmd, host.tagMap, seq, ops);
    if (n === UNIT_HANDLES) {
      this.#runSegment();
      host.unitCommand(cmd);
      return;
    }
    if (cmd.opcode === Opcode.Sync) {
      const at = this.#syncCount * SYNC_STRIDE;
      const f = cmd.f;
      this.#syncs[at] = f[Field.cs]!;
      this.#syncs[at + 1] = f[Field.msiAddr]!;
      this.#syncs[at + 2] = f[Field.msiData]!;
      this.#syncs[at + 3] = next;
      this.#syncCount++;
      if (this.#syncCount === MAX_PENDING_SYNCS) this.#runSegment();
    }
    if (ops.count >= OPS_PER_SEGMENT) this.#runSegment();
  }

  /**
   * Runs the ops decoded so far, then completes their CMD_SYNCs in order: CONS passes each sync
   * before its interrupt or MSI, so a handler that reads CMDQ_CONS sees the sync consumed.
   */
  #runSegment(): void {
    const ops = this.#ops;
    if (ops.count > 0) this.#host.run(ops);
    ops.count = 0;
    this.#host.flushForwarded?.();
    const s = this.#syncs;
    for (let i = 0; i < this.#syncCount; i++) {
      const at = i * SYNC_STRIDE;
      const cs = s[at]!;
      this.#stats.syncs++;
      this.#regs.setCmdqCons(s[at + 3]!);
      if (cs === SyncCs.Irq) {
        this.#stats.syncIrq++;
        if (!this.#regs.signalCmdSync(s[at + 1], s[at + 2]! >>> 0)) this.#stats.syncMsiAborts++;
      } else if (cs === SyncCs.Sev) {
        this.#stats.syncSev++;
      }
    }
    this.#syncCount = 0;
  }

  /** A command error on the entry at `cons`: what came before takes effect, then the queue stops. */
  #fail(cons: number, code: number): void {
    this.#runSegment();
    const regs = this.#regs;
    regs.setCmdqCons(cons, code);
    regs.raiseGerror(GERROR.CMDQ_ERR);
    if (code === CERROR_ILL) this.#stats.errIll++;
    else if (code === CERROR_ABT) this.#stats.errAbt++;
    else this.#stats.errAtcInvSync++;
  }
}
