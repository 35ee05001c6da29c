/**
 * A model of QEMU 7.2's SMMUv3 command queue consumer (hw/arm/smmuv3.c `smmuv3_cmdq_consume`,
 * `smmuv3_s1_range_inval`; reference/viommu-queues.md §3.1), not QEMU itself.
 *
 * Synchronous per doorbell: the CMDQ_PROD write consumes every command up to PROD before it
 * returns, one at a time, each executed at once on the caches and CONS advanced past it (which is
 * what makes CMD_SYNC trivially complete). An error stops the queue on the bad command with
 * CMDQ_CONS.ERR and GERROR.CMDQ_ERR, until the guest acknowledges through GERRORN (the register
 * model rings again).
 *
 * Per command, as QEMU: CFGI_STE / CFGI_CD / CFGI_CD_ALL drop one device's configuration,
 * CFGI_STE_RANGE scans the configuration cache, TLBI_NH_ASID scans the IOTLB, TLBI_NH_ALL and
 * TLBI_NSNH_ALL empty it, TLBI_NH_VA / TLBI_NH_VAA go through `smmuv3_s1_range_inval` (a range is
 * split into naturally aligned power-of-two chunks, each an IOTLB invalidation of its own),
 * CMD_SYNC with CS = SIG_IRQ raises the CMD_SYNC interrupt, PREFETCH_* do nothing, and the
 * commands QEMU 7.2 does not handle (EL2 and stage-2 TLBIs, ATC_INV, PRI_RESP, RESUME,
 * STALL_TERM) are counted and ignored. No notifiers: the replayed guests have no vhost or VFIO
 * device behind the vIOMMU.
 *
 * Decoding and its checks are the project's (vendor/smmuv3/commands.ts), so that both targets
 * of a replay accept and reject the same commands; the caching and invalidation are QEMU's.
 */
import { BqlDoorbell } from './doorbell.js';
import {
  CERROR_ABT,
  CERROR_ILL,
  CERROR_NONE,
  decodeCommand,
  Field,
  Opcode,
  SmmuCommand,
  SyncCs,
} from '../vendor/smmuv3/commands.js';
import { GERROR } from '../vendor/smmuv3/regs-defs.js';
import { queueEmpty, queueIncrement, queueSlot } from '../vendor/smmuv3/regs-queue.js';
import type { SmmuRegisters } from '../vendor/smmuv3/regs.js';
import { dmaAlignedPow2Size } from './dma-pow2.js';
import type { SmmuConfigCache } from './smmu-config-cache.js';
import { STAGE1_VMID, type SmmuIotlb } from './smmu-iotlb.js';

/** Counters of the command queue. */
export interface QemuCmdqStats {
  /** Doorbells served (the queue enabled and without a pending error). */
  doorbells: number;
  /** Commands consumed (CONS moved past them). */
  commands: number;
  /** CMD_SYNCs consumed. */
  syncs: number;
  /** Commands QEMU 7.2 traces as unhandled and ignores. */
  unhandled: number;
  /** Command errors (CERROR_ILL, CERROR_ABT). */
  errors: number;
}

/** The command queue of one QEMU-style SMMUv3. */
export class QemuSmmuCmdq {
  readonly #regs: SmmuRegisters;
  readonly #mem: Int32Array;
  readonly #features: number;
  readonly #iotlb: SmmuIotlb;
  readonly #configs: SmmuConfigCache;
  readonly #cmd = new SmmuCommand();
  readonly #doorbell = new BqlDoorbell(() => this.#consumeOnce());
  readonly #stats: QemuCmdqStats = { doorbells: 0, commands: 0, syncs: 0, unhandled: 0, errors: 0 };

  /**
   * A consumer of `regs`' command queue in guest RAM `mem` (GPA 0 = word 0), decoding with the
   * SmmuFeature bits `features`, invalidating `iotlb` and `configs`.
   */
  constructor(regs: SmmuRegisters, mem: Int32Array, features: number, iotlb: SmmuIotlb, configs: SmmuConfigCache) {
    this.#regs = regs;
    this.#mem = mem;
    this.#features = features;
    this.#iotlb = iotlb;
    this.#configs = configs;
  }

  /** The counters (a copy). */
  stats(): QemuCmdqStats {
    return { ...this.#stats };
  }

  /** Stops consuming for good (the unit closed). */
  stop(): void {
    this.#doorbell.stop();
  }

  /**
   * The doorbell. A doorbell rung from inside it (an interrupt handler of a CMD_SYNC) is served when
   * this one is done, as QEMU's BQL serialises the trap.
   */
  consume(): void {
    this.#doorbell.ring();
  }

  #consumeOnce(): void {
    const regs = this.#regs;
    if (!regs.cmdqEnabled || regs.cmdqErrorPending) return;
    this.#stats.doorbells++;
    const log2 = regs.cmdqLog2Size;
    const base = regs.cmdqBase;
    const prod = regs.cmdqProd;
    const mem = this.#mem;
    const cmd = this.#cmd;
    let cons = regs.cmdqCons;
    while (!queueEmpty(prod, cons, log2)) {
      const addr = base + queueSlot(cons, log2) * 16;
      let error: number = CERROR_NONE;
      if (addr + 16 > mem.length * 4) error = CERROR_ABT;
      else if (decodeCommand(mem, addr >>> 2, cmd, this.#features) !== CERROR_NONE) error = CERROR_ILL;
      if (error !== CERROR_NONE) {
        regs.setCmdqCons(cons, error);
        regs.raiseGerror(GERROR.CMDQ_ERR);
        this.#stats.errors++;
        return;
      }
      this.#execute(cmd);
      // CONS moves only once the command is done (queue_cons_incr).
      cons = queueIncrement(cons, log2);
      regs.setCmdqCons(cons);
      this.#stats.commands++;
    }
  }

  /** QEMU's `switch (type)`. */
  #execute(cmd: SmmuCommand): void {
    const f = cmd.f;
    const iotlb = this.#iotlb;
    switch (cmd.opcode) {
      case Opcode.Sync:
        this.#stats.syncs++;
        if (f[Field.cs] === SyncCs.Irq) this.#regs.signalCmdSync(f[Field.msiAddr], f[Field.msiData]! >>> 0);
        return;
      case Opcode.PrefetchConfig:
      case Opcode.PrefetchAddr:
        return;
      case Opcode.CfgiSte:
      case Opcode.CfgiCd:
      case Opcode.CfgiCdAll:
        this.#configs.invalidateSid(f[Field.sid]!);
        return;
      case Opcode.CfgiSteRange: {
        const span = 2 ** (f[Field.range]! + 1);
        const sid = f[Field.sid]!;
        const first = sid - (sid % span);
        this.#configs.invalidateRange(first, first + span - 1);
        return;
      }
      case Opcode.TlbiNhAsid:
        iotlb.invalidateAsid(f[Field.asid]!, STAGE1_VMID);
        return;
      case Opcode.TlbiNhAll:
      case Opcode.TlbiNsnhAll:
        iotlb.invalidateAll();
        return;
      case Opcode.TlbiNhVa:
        this.#rangeInvalidate(f, f[Field.asid]!);
        return;
      case Opcode.TlbiNhVaa:
        this.#rangeInvalidate(f, -1);
        return;
      default:
        this.#stats.unhandled++;
    }
  }

  /**
   * `smmuv3_s1_range_inval`: TG = 0 is one page; otherwise (NUM+1) << SCALE granules, split into
   * naturally aligned power-of-two chunks, each invalidated on its own.
   */
  #rangeInvalidate(f: Float64Array, asid: number): void {
    const iotlb = this.#iotlb;
    const tg = f[Field.tg]!;
    const ttl = f[Field.ttl]!;
    let addr = f[Field.addr]!;
    if (tg === 0) {
      iotlb.invalidateIova(asid, STAGE1_VMID, addr, 0, 1, ttl);
      return;
    }
    const granule = 2 ** (tg * 2 + 10);
    const end = addr + (f[Field.num]! + 1) * 2 ** f[Field.scale]! * granule - 1;
    while (addr !== end + 1) {
      const chunk = dmaAlignedPow2Size(addr, end);
      iotlb.invalidateIova(asid, STAGE1_VMID, addr, tg, chunk / granule, ttl);
      addr += chunk;
    }
  }
}
