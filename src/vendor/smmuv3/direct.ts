/**
 * The direct queue path of an SMMUv3 bound to an iommufd vIOMMU (seed 001, Jason Gunthorpe and
 * Kevin Tian, 2023: "Kernel simply reads the cons index after the eventfd, looks in the IOAS to get
 * the queue memory and does the operation", and "the kernel thread can selectively exit to
 * userspace for cmds which it cannot directly handle").
 *
 * After a doorbell the backend consumes the guest's CMDQ itself. The commands the kernel accepts in
 * IOMMU_VIOMMU_INVALIDATE (TLBI_NH_ALL/ASID/VA/VAA, TLBI_NSNH_ALL, ATC_INV, CFGI_CD, CFGI_CD_ALL;
 * reference/iommufd.md §3) are collected in batches of up to 64 raw commands and handed to
 * `viommuInvalidate`, which applies the same rewrites and isolation as a VMM's call would (the
 * vIOMMU's VMID replaces the guest's, vSIDs become the SIDs of the vIOMMU's vDEVICEs). CMD_SYNC is
 * the barrier: the batch goes out before the sync completes. A vSID without a vDEVICE is an illegal
 * command for the guest (CERROR_ILL on that entry), as QEMU's accelerated vSMMU reports it.
 *
 * Any other command (CFGI_STE, CFGI_STE_RANGE/CFGI_ALL, PREFETCH_*, the stage-2 and EL2 TLBIs,
 * PRI_RESP, RESUME, STALL_TERM) is an exit: the queue stops on it (CONS names it) and `exits$`
 * hands it to the VMM, which acts on it (typically: read the guest's STE and allocate or replace
 * the device's vSTE nested HWPT) and then calls `resume`. Commands are decoded once; the batch is
 * a preallocated buffer.
 */
import { Subject, type Observable } from 'rxjs';
import { commandSpec, Field, Opcode, type SmmuCommand } from './commands.js';

/** What the direct path needs from iommufd, for one vIOMMU. */
export interface SmmuViommuPort {
  /** The vIOMMU's id. */
  readonly viommuId: number;
  /** IOMMU_VIOMMU_INVALIDATE with `arm-smmuv3` commands (4 words each); throws an IommufdError. */
  invalidate(cmds: Uint32Array): number;
  /** Whether virtual StreamID `vsid` has a vDEVICE on the vIOMMU. */
  hasVsid(vsid: number): boolean;
}

/** A command handed to the VMM. */
export interface SmmuExit {
  /** CMDQ index (with the wrap bit) of the command; CONS stays on it until `resume`. */
  readonly index: number;
  /** Its opcode and the spec's name. */
  readonly opcode: number;
  readonly name: string;
  /** Its four words (a copy). */
  readonly words: Uint32Array;
}

/** Counters of the direct path. */
export interface SmmuDirectStats {
  /** Commands forwarded to the vIOMMU, and the invalidate calls that carried them. */
  forwarded: number;
  batches: number;
  /** Exits to the VMM. */
  exits: number;
  /** Commands refused for a vSID without a vDEVICE (CERROR_ILL). */
  unknownVsid: number;
  /** Invalidate calls that failed (the vIOMMU was destroyed meanwhile …), and the last error. */
  forwardErrors: number;
  lastError: string | undefined;
}

/** Commands per invalidate call (the kernel's CMDQ_BATCH_ENTRIES). */
const BATCH = 64;

const FORWARDED = new Set<number>([
  Opcode.TlbiNhAll,
  Opcode.TlbiNhAsid,
  Opcode.TlbiNhVa,
  Opcode.TlbiNhVaa,
  Opcode.TlbiNsnhAll,
  Opcode.AtcInv,
  Opcode.CfgiCd,
  Opcode.CfgiCdAll,
]);
const BY_SID = new Set<number>([Opcode.AtcInv, Opcode.CfgiCd, Opcode.CfgiCdAll]);

/** The direct path of one bound unit. */
export class SmmuDirectPath {
  readonly #port: SmmuViommuPort;
  readonly #batch = new Uint32Array(BATCH * 4);
  #count = 0;
  readonly #exits = new Subject<SmmuExit>();
  /** Exits toward the VMM (synchronous, inside the doorbell's MMIO write). */
  readonly exits$: Observable<SmmuExit> = this.#exits.asObservable();
  readonly #stats: SmmuDirectStats = {
    forwarded: 0,
    batches: 0,
    exits: 0,
    unknownVsid: 0,
    forwardErrors: 0,
    lastError: undefined,
  };

  /** A direct path into `port`'s vIOMMU. */
  constructor(port: SmmuViommuPort) {
    this.#port = port;
  }

  /** The vIOMMU id. */
  get viommuId(): number {
    return this.#port.viommuId;
  }

  /** The counters (a copy). */
  stats(): SmmuDirectStats {
    return { ...this.#stats };
  }

  /** Checks a command before it runs: false (CERROR_ILL) for a vSID without a vDEVICE. */
  check(cmd: SmmuCommand): boolean {
    if (!BY_SID.has(cmd.opcode) || this.#port.hasVsid(cmd.f[Field.sid]!)) return true;
    this.#stats.unknownVsid++;
    return false;
  }

  /** Whether the queue must stop at `cmd` and exit to the VMM. */
  isExit(cmd: SmmuCommand): boolean {
    return cmd.opcode !== Opcode.Sync && !FORWARDED.has(cmd.opcode);
  }

  /** Hands the exit at entry `index` (words at word `at` of `mem`) to the VMM. */
  emitExit(cmd: SmmuCommand, index: number, mem: Int32Array, at: number): void {
    this.#stats.exits++;
    this.#exits.next({
      index,
      opcode: cmd.opcode,
      name: commandSpec(cmd.opcode)?.name ?? 'unknown',
      words: new Uint32Array(mem.buffer, mem.byteOffset + at * 4, 4).slice(),
    });
  }

  /** Collects a command that runs (words at word `at` of `mem`) if the vIOMMU takes it. */
  forward(cmd: SmmuCommand, mem: Int32Array, at: number): void {
    if (!FORWARDED.has(cmd.opcode)) return;
    const b = this.#batch;
    const o = this.#count * 4;
    b[o] = mem[at]!;
    b[o + 1] = mem[at + 1]!;
    b[o + 2] = mem[at + 2]!;
    b[o + 3] = mem[at + 3]!;
    if (++this.#count === BATCH) this.flush();
  }

  /** Hands the collected batch to the vIOMMU (before any CMD_SYNC behind it completes). */
  flush(): void {
    const n = this.#count;
    if (n === 0) return;
    this.#count = 0;
    this.#stats.batches++;
    try {
      this.#port.invalidate(this.#batch.subarray(0, n * 4));
      this.#stats.forwarded += n;
    } catch (e) {
      this.#stats.forwardErrors++;
      this.#stats.lastError = e instanceof Error ? e.message : String(e);
    }
  }

  /** Completes the exits observable (the unit closed). */
  close(): void {
    this.#exits.complete();
  }
}
