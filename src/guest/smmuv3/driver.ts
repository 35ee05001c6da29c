/**
 * A model of Linux 6.1's arm-smmu-v3 driver (drivers/iommu/arm/arm-smmu-v3/) as a guest kernel
 * runs it against an emulated SMMUv3: it talks to the unit only through MMIO and guest memory,
 * builds the stream table, CD tables and stage-1 page tables in guest RAM from its own page
 * allocator, and invalidates through the command queue as Linux does (reference/viommu-queues.md
 * §1, §4.1; the sequences match traces/smmu-lazy.clean.log).
 *
 * - probe (`arm_smmu_device_probe`): the ID registers, the queues and the stream table (2-level,
 *   SPLIT 8, when IDR0.ST_LEVEL allows and SIDSIZE > 8) in guest memory, then
 *   `arm_smmu_device_reset` in the order of the trace (probe.ts).
 * - attach (`arm_smmu_attach_dev`): a new domain gets an ASID (the lowest free from 1), a stage-1
 *   table (48-bit input, 4 KiB granule) and a linear one-CD table whose CD is written in two
 *   steps, each followed by `arm_smmu_sync_cd` (CFGI_CD per attached StreamID, batched, one
 *   SYNC: a bare SYNC while the domain has no device, as in the trace); the STE is written all
 *   but dword 0, CFGI_STE + SYNC, dword 0, CFGI_STE + SYNC, then PREFETCH_CONFIG; an ATS master
 *   then gets its ATC invalidated (`arm_smmu_enable_ats`); last comes the IOMMU core's
 *   `iommu_flush_iotlb_all` of `iommu_create_device_direct_mappings` (TLBI_NH_ASID + SYNC).
 * - unmap, strict: the leaves cleared form gathers (`iommu_iotlb_gather_add_page`: one per run of
 *   contiguous leaves of one size), each invalidated by `arm_smmu_tlb_inv_range_domain`:
 *   TLBI_NH_VA (range commands with RIL, else one per granule) in batches of 64, one SYNC, then
 *   one ATC_INV per ATS master and a SYNC. Lazy: the range and its freed table pages wait in a
 *   flush queue of 256 entries, drained (when full, or by `flushLazy`, the 10 ms timer) with
 *   `arm_smmu_tlb_inv_context`: TLBI_NH_ASID + SYNC, then ATC_INV of everything.
 * - CMD_SYNC completion by MSI write-back to the sync's own slot when IDR0.MSI and IDR0.COHACC
 *   (`ARM_SMMU_OPT_MSIPOLL`), else by polling CMDQ_CONS; command errors are recovered by the
 *   GERROR handler (`arm_smmu_gerror_handler`, `arm_smmu_cmdq_skip_err`).
 *
 * - recoverable faults (iopf.ts): a master attached with `stall` (a platform device with
 *   `dma-can-stall`) gets STE.S1STALLD = 0 and a domain whose CD has S = 1; its stall events
 *   (`readEvents`) go to the fault handler and are answered with CMD_RESUME (Retry on success,
 *   else Abort), as `arm_smmu_handle_evt` + `arm_smmu_page_response`. A master with ATS and PRI
 *   sends page requests to the PRI queue (`handlePageRequests`), grouped until Last and answered
 *   with CMD_PRI_RESP. The default handler demand-pages: it maps a fresh zeroed page, read-write,
 *   at each faulting address of the domain's stage-1 table (an SVA mm's `handle_mm_fault`).
 *   Neither response is followed by a CMD_SYNC, as Linux does ("it doesn't do anything for
 *   RESUME or PRI_RESP"), unless `faultResponseSync` asks for one.
 *
 * Deviations, each for a reason: a CMD_SYNC without an MSI asks for SIG_SEV only when IDR0.SEV
 * says the unit has it (Linux always asks for SEV); emptied page-table pages are freed (the
 * shared radix builder frees them, io-pgtable-arm does not) and such an unmap is invalidated as
 * non-leaf; no E2H (a guest kernel runs at EL1), no substreams (S1CDMax 0); Linux 6.1 denies every
 * PRI request (its PRIQ thread has no iopf path yet), this model handles them as it handles stalls.
 */
import { drainFlushQueues, pendingFlushes } from '../flush-queue.js';
import { FrameAllocator, type PhysMemory } from '../../memory/index.js';
import { armS1Codec, armS1Config, RadixPageTable } from '../../pgtable/index.js';
import { IommufdError } from '../../util/errors.js';
import { ATC_INV_SIZE_ALL, commandSpec, Opcode } from '../../vendor/smmuv3/commands.js';
import { EVT_ID, type SmmuEventRecord, type SmmuPriRecord } from '../../vendor/smmuv3/records.js';
import { GERROR, SMMU_REG } from '../../vendor/smmuv3/regs-defs.js';
import { encodeCd, CD } from '../../vendor/smmuv3/structures-cd.js';
import { CommandBatch, CommandQueue, type CommandQueueStats } from './cmdq.js';
import { DRIVER_ERRORS } from './errors.js';
import { EventQueue } from './evtq.js';
import {
  IopfQueue,
  IopfResponse,
  pageResponse,
  type SmmuIopfHandler,
  type SmmuIopfStats,
  type SmmuPageRequest,
} from './iopf.js';
import { PriQueue } from './priq.js';
import { linuxS1Cd, linuxS1Ste, S1_T0SZ } from './descriptors.js';
import { atcInvSpan, tlbiNhVaRange } from './invalidations.js';
import { SmmuMmio, type SmmuUnitPort } from './port.js';
import { deviceReset, hwProbe, writeRegSync, type SmmuGuestCaps } from './probe.js';
import { abortSte, StreamTable } from './strtab.js';

/** Options of the driver model. */
export interface SmmuGuestDriverOptions {
  /** DMA invalidation policy (iommu.strict=1 / 0); default strict. */
  policy?: 'strict' | 'lazy';
  /** log2 of the command queue's entries, in [7, IDR1.CMDQS]; default min(IDR1.CMDQS, 8). */
  cmdqBits?: number;
  /** log2 of the event queue's entries, in [0, IDR1.EVTQS]; default min(IDR1.EVTQS, 7). */
  evtqBits?: number;
  /** log2 of the PRI queue's entries (with IDR0.PRI), in [0, IDR1.PRIQS]; default min(IDR1.PRIQS, 7). */
  priqBits?: number;
  /** Lazy policy: flush-queue entries before a drain (IOVA_FQ_SIZE); default 256. */
  flushQueueSize?: number;
  /** Reads of an ACK register, or poll rounds of a sync, before the unit is declared dead (EIO); default 1000. */
  pollLimit?: number;
  /**
   * CMD_SYNC completion by MSI write-back (`ARM_SMMU_OPT_MSIPOLL`); default whenever the unit has
   * IDR0.MSI and IDR0.COHACC. false is Linux's `disable_msipolling=1`.
   */
  msiPoll?: boolean;
  /** The I/O page fault handler of stall and PRI masters; default demand paging (see the file comment). */
  faultHandler?: SmmuIopfHandler;
  /** A CMD_SYNC after each RESUME / PRI_RESP; default false, as Linux. */
  faultResponseSync?: boolean;
}

/** Options of an attach. */
export interface SmmuAttachOptions {
  /** Domain id: devices attached with the same id share its stage-1 table and ASID. Default: a new domain. */
  domain?: number;
  /** ASID of a new domain; default the lowest free one from 1 (Linux's `asid_xa`). */
  asid?: number;
  /** The device has ATS (used only when the unit has IDR0.ATS): EATS is set and its ATC invalidated. */
  ats?: boolean;
  /**
   * The device can stall (`dma-can-stall`; used only when IDR0.STALL_MODEL allows stalls): its
   * STE has S1STALLD = 0 and a new domain's CD has S = 1. A domain's masters all stall or none
   * do (EINVAL, as `arm_smmu_attach_dev`).
   */
  stall?: boolean;
  /** The device has PRI (used only with `ats` on a unit with IDR0.PRI): its page requests are handled. */
  pri?: boolean;
}

/** A domain to map into: a StreamID (the domain its device is attached to), or a domain id. */
export type SmmuDomainTarget = number | { readonly domain: number };

/** A domain, as {@link SmmuGuestDriver.domain} describes it. */
export interface SmmuDomainInfo {
  readonly id: number;
  readonly asid: number;
  /** Guest-physical address of the stage-1 start table (CD.TTB0). */
  readonly ttb0: number;
  /** Guest-physical address of the CD table (STE.S1ContextPtr). */
  readonly cdTable: number;
  /** Attached StreamIDs. */
  readonly devices: readonly number[];
  /** Entries waiting in its lazy flush queue. */
  readonly pendingFlushes: number;
}

/** Counters of the driver. */
export interface SmmuGuestStats extends CommandQueueStats {
  /** Commands written to the command queue, by the spec's name ('TLBI_NH_VA', 'CMD_SYNC', …). */
  commands: Record<string, number>;
  /** Lazy policy: unmaps deferred to the flush queue, and drains of it. */
  deferredUnmaps: number;
  flushQueueDrains: number;
  /** GERROR handler runs that found an active error. */
  gerrors: number;
  /** Event records read, and event queue overflows noticed. */
  events: number;
  eventOverflows: number;
  /** PRI queue records read, and PRI queue overflows noticed. */
  priRequests: number;
  priOverflows: number;
  /** The I/O page fault path. */
  iopf: SmmuIopfStats;
  /** MMIO accesses. */
  mmioReads: number;
  mmioWrites: number;
}

/** An unmapped range waiting for the lazy flush, with the table pages it freed. */
interface FlushQueueEntry {
  readonly iova: number;
  readonly length: number;
  readonly frames: readonly number[];
}

/** A stage-1 DMA domain (`struct arm_smmu_domain`). */
interface Domain {
  readonly id: number;
  readonly asid: number;
  readonly table: RadixPageTable;
  /** The linear CD table of one CD. */
  readonly cdTable: number;
  /** Attached StreamIDs. */
  readonly devices: Set<number>;
  /** Attached devices with ATS enabled (`nr_ats_masters`). */
  atsDevices: number;
  readonly flushQueue: FlushQueueEntry[];
  /** The CD has S = 1: its masters stall. */
  readonly stall: boolean;
  /** Pages the fault handler mapped (demand paging). */
  readonly demandPaged: Set<number>;
}

/** A device the driver knows (`struct arm_smmu_master`; one StreamID each). */
interface Device {
  readonly sid: number;
  domain: Domain | undefined;
  ats: boolean;
  stall: boolean;
  pri: boolean;
}

/** A gathered run of cleared leaves (`struct iommu_iotlb_gather`). */
interface Gather {
  start: number;
  end: number;
  pgsize: number;
}

const PAGE = 4096;
const DEFAULTS = { flushQueueSize: 256, pollLimit: 1000 } as const;
/** Linux `GERROR_ERR_MASK`: every error bit. */
const GERROR_ERR_MASK =
  GERROR.CMDQ_ERR |
  GERROR.EVTQ_ABT_ERR |
  GERROR.PRIQ_ABT_ERR |
  GERROR.MSI_CMDQ_ABT_ERR |
  GERROR.MSI_EVTQ_ABT_ERR |
  GERROR.MSI_PRIQ_ABT_ERR |
  GERROR.MSI_GERROR_ABT_ERR |
  GERROR.SFM_ERR;

/** A guest's arm-smmu-v3 driver for one SMMUv3 unit. */
export class SmmuGuestDriver {
  /** The guest's page allocator (over the unit's guest RAM); GPA 0 is kept out of use. */
  readonly frames: FrameAllocator;
  readonly #mmio: SmmuMmio;
  readonly #guest: PhysMemory;
  readonly #opts: Required<Pick<SmmuGuestDriverOptions, 'policy' | 'flushQueueSize' | 'pollLimit'>> &
    Omit<SmmuGuestDriverOptions, 'policy' | 'flushQueueSize' | 'pollLimit'>;
  readonly #domains = new Map<number, Domain>();
  readonly #devices = new Map<number, Device>();
  /** ASID → domain id. */
  readonly #asids = new Map<number, number>();
  readonly #cd = new Int32Array(CD.WORDS);
  readonly #gathers: Gather[] = [];
  readonly #onCleared: (iova: number, size: number) => void;
  #caps: SmmuGuestCaps | undefined;
  #cmdq: CommandQueue | undefined;
  #batch: CommandBatch | undefined;
  #evtq: EventQueue | undefined;
  #strtab: StreamTable | undefined;
  #priq: PriQueue | undefined;
  readonly #iopf = new IopfQueue();
  readonly #faultHandler: SmmuIopfHandler;
  /** Table pages freed while an unmap runs: they are released only after the invalidation. */
  #collecting: number[] | undefined;
  readonly #counts = { deferredUnmaps: 0, flushQueueDrains: 0, gerrors: 0 };

  /** A driver for `unit`; nothing touches the unit until {@link probe}. */
  constructor(unit: SmmuUnitPort, opts: SmmuGuestDriverOptions = {}) {
    const fq = opts.flushQueueSize ?? DEFAULTS.flushQueueSize;
    if (!Number.isInteger(fq) || fq < 1) throw DRIVER_ERRORS.option('flushQueueSize', fq, 'a positive integer');
    const pl = opts.pollLimit ?? DEFAULTS.pollLimit;
    if (!Number.isInteger(pl) || pl < 1) throw DRIVER_ERRORS.option('pollLimit', pl, 'a positive integer');
    this.#mmio = new SmmuMmio(unit);
    this.#guest = unit.guest;
    this.#opts = { ...opts, policy: opts.policy ?? 'strict', flushQueueSize: fq, pollLimit: pl };
    this.frames = new FrameAllocator(unit.guest);
    this.frames.alloc(); // GPA 0 stays unused, as a kernel's page 0
    this.frames.retire = (frame) => {
      if (this.#collecting !== undefined) this.#collecting.push(frame);
      else this.frames.release(frame);
    };
    this.#onCleared = (iova, size) => this.#gather(iova, size);
    this.#faultHandler = opts.faultHandler ?? ((group, domain) => this.demandPage(group, domain));
  }

  /** The capabilities read by probe (ENODEV before it). */
  get caps(): SmmuGuestCaps {
    if (this.#caps === undefined) throw DRIVER_ERRORS.notProbed();
    return this.#caps;
  }

  /** The command queue (ENODEV before probe). */
  get queue(): CommandQueue {
    if (this.#cmdq === undefined) throw DRIVER_ERRORS.notProbed();
    return this.#cmdq;
  }

  /** The event queue (ENODEV before probe). */
  get eventQueue(): EventQueue {
    if (this.#evtq === undefined) throw DRIVER_ERRORS.notProbed();
    return this.#evtq;
  }

  /** The stream table (ENODEV before probe). */
  get streamTable(): StreamTable {
    if (this.#strtab === undefined) throw DRIVER_ERRORS.notProbed();
    return this.#strtab;
  }

  /** Guest-physical base of the PRI queue (0 without IDR0.PRI or before probe). */
  get priqBase(): number {
    return this.#priq?.base ?? 0;
  }

  /** The invalidation policy. */
  get policy(): 'strict' | 'lazy' {
    return this.#opts.policy;
  }

  /** Counters. */
  stats(): SmmuGuestStats {
    const q = this.#cmdq;
    const commands: Record<string, number> = {};
    if (q !== undefined) {
      q.opcodeCounts.forEach((n, op) => {
        if (n > 0) commands[commandSpec(op)?.name ?? `0x${op.toString(16)}`] = n;
      });
    }
    return {
      submissions: 0,
      syncs: 0,
      batches: 0,
      fullBatches: 0,
      syncPolls: 0,
      consRefreshes: 0,
      cmdqErrors: 0,
      ...q?.stats,
      commands,
      ...this.#counts,
      events: this.#evtq?.records ?? 0,
      eventOverflows: this.#evtq?.overflows ?? 0,
      priRequests: this.#priq?.records ?? 0,
      priOverflows: this.#priq?.overflows ?? 0,
      iopf: { ...this.#iopf.stats },
      mmioReads: this.#mmio.reads,
      mmioWrites: this.#mmio.writes,
    };
  }

  // ---- probe (arm_smmu_device_probe) --------------------------------------------------------

  /**
   * Brings the unit up as `arm_smmu_device_probe` does: `arm_smmu_device_hw_probe` (IDR0, IDR1,
   * IDR3, IDR5), the queues and the stream table in guest memory, then `arm_smmu_device_reset`
   * (see the file comment for the sequence).
   */
  probe(): void {
    if (this.#caps !== undefined) throw DRIVER_ERRORS.probed();
    const caps = hwProbe(this.#mmio);
    const o = this.#opts;
    const cmdqBits = checkBits('cmdqBits', o.cmdqBits ?? Math.min(caps.cmdqs, 8), 7, caps.cmdqs);
    const evtqBits = checkBits('evtqBits', o.evtqBits ?? Math.min(caps.evtqs, 7), 0, caps.evtqs);
    const priqBits = caps.pri ? checkBits('priqBits', o.priqBits ?? Math.min(caps.priqs, 7), 0, caps.priqs) : 0;
    const msiCapable = caps.msi && caps.coherent;
    if (o.msiPoll === true && !msiCapable)
      throw DRIVER_ERRORS.option('msiPoll', true, 'false on a unit without IDR0.MSI and IDR0.COHACC');

    // arm_smmu_init_structures: the queues, then the stream table.
    const cmdq = new CommandQueue(this.#mmio, this.#guest, this.frames, {
      log2Size: cmdqBits,
      msiPoll: msiCapable && o.msiPoll !== false,
      sev: caps.sev,
      pollLimit: o.pollLimit,
      onStall: () => {
        this.handleGlobalErrors();
      },
    });
    const evtq = new EventQueue(this.#mmio, this.#guest, this.frames, evtqBits);
    const priq = caps.pri ? new PriQueue(this.#mmio, this.#guest, this.frames, priqBits) : undefined;
    const priqBase = priq?.base ?? 0;
    const strtab = new StreamTable(this.#guest, this.frames, caps.sidBits, caps.twoLevelStrtab);
    this.#caps = caps;
    this.#cmdq = cmdq;
    this.#batch = new CommandBatch(cmdq);
    this.#evtq = evtq;
    this.#strtab = strtab;
    this.#priq = priq;
    deviceReset(this.#mmio, { caps, cmdq, evtq, strtab, priqBase, priqBits }, o.pollLimit);
  }

  // ---- devices and domains (arm_smmu_probe_device, arm_smmu_attach_dev) -----------------------

  /**
   * `arm_smmu_probe_device`: the driver learns of the device `sid` and, in a 2-level stream
   * table, allocates its level-2 table (its STEs abort until an attach). Idempotent.
   */
  addDevice(sid: number): void {
    const strtab = this.streamTable;
    checkSid(sid, strtab.sidLimit);
    if (this.#devices.has(sid)) return;
    strtab.ensure(sid);
    this.#devices.set(sid, { sid, domain: undefined, ats: false, stall: false, pri: false });
  }

  /**
   * Attaches the device `sid` (added if new) to a stage-1 domain, `arm_smmu_attach_dev`: the
   * domain `opts.domain` (created if it does not exist) or a new one; a device attached elsewhere
   * is detached first. Returns the domain id. A new domain gets its ASID, page table and CD
   * (two `arm_smmu_sync_cd`); the STE is installed (CFGI_STE + SYNC twice, PREFETCH_CONFIG); with
   * `ats` on a unit with IDR0.ATS, EATS is set and the device's ATC invalidated; the core's
   * `iommu_flush_iotlb_all` follows (TLBI_NH_ASID + SYNC). Attaching again to the same domain is
   * a no-op.
   */
  attachDevice(sid: number, opts: SmmuAttachOptions = {}): number {
    const caps = this.caps;
    checkSid(sid, this.streamTable.sidLimit);
    if (opts.domain !== undefined && !(Number.isInteger(opts.domain) && opts.domain > 0))
      throw DRIVER_ERRORS.domainId(opts.domain);
    const existing = opts.domain !== undefined ? this.#domains.get(opts.domain) : undefined;
    if (opts.asid !== undefined) {
      const max = 2 ** caps.asidBits - 1;
      if (!Number.isInteger(opts.asid) || opts.asid < 1 || opts.asid > max) throw DRIVER_ERRORS.asid(opts.asid, max);
      if (existing !== undefined && existing.asid !== opts.asid)
        throw DRIVER_ERRORS.asidMismatch(existing.id, existing.asid, opts.asid);
      const owner = this.#asids.get(opts.asid);
      if (existing === undefined && owner !== undefined) throw DRIVER_ERRORS.asidInUse(opts.asid, owner);
    }
    this.addDevice(sid);
    const dev = this.#devices.get(sid)!;
    if (existing !== undefined && dev.domain === existing) return existing.id;
    const stall = opts.stall === true && caps.stalls;
    if (existing !== undefined && existing.stall !== stall) throw DRIVER_ERRORS.stallMismatch(sid, existing.id);
    if (dev.domain !== undefined) this.#detach(dev);
    const domain = existing ?? this.#createDomain(opts.domain ?? this.#freeDomainId(), opts.asid, stall);
    dev.domain = domain;
    dev.ats = opts.ats === true && caps.ats;
    dev.stall = stall;
    dev.pri = dev.ats && opts.pri === true && caps.pri;
    this.#installS1Ste(dev, domain);
    domain.devices.add(sid);
    if (dev.ats) {
      // arm_smmu_enable_ats: the ATC may hold anything from before.
      domain.atsDevices++;
      this.#atcInvDomain(domain, 0, 0);
    }
    // iommu_create_device_direct_mappings (6.1 core): iommu_flush_iotlb_all of the default domain.
    this.#tlbInvContext(domain);
    return domain.id;
  }

  /**
   * `arm_smmu_detach_dev`: ATS off (the device's ATC invalidated), then an abort STE and
   * CFGI_STE + SYNC. A domain left without devices is freed (`arm_smmu_domain_free`): its TLB
   * entries (TLBI_NH_ASID + SYNC), flush queue, page table, CD table and ASID.
   */
  detachDevice(sid: number): void {
    checkSid(sid, this.streamTable.sidLimit);
    const dev = this.#devices.get(sid);
    if (dev?.domain === undefined) throw DRIVER_ERRORS.notAttached(sid);
    this.#detach(dev);
  }

  /** What the driver holds for a domain (ENOENT / ENODEV when there is none). */
  domain(target: SmmuDomainTarget): SmmuDomainInfo {
    const d = this.#resolve(target);
    return {
      id: d.id,
      asid: d.asid,
      ttb0: d.table.rootPa,
      cdTable: d.cdTable,
      devices: [...d.devices],
      pendingFlushes: d.flushQueue.length,
    };
  }

  #detach(dev: Device): void {
    const domain = dev.domain!;
    if (dev.ats) {
      // arm_smmu_disable_ats: arm_smmu_atc_inv_master.
      this.#batch!.add(Opcode.AtcInv, { sid: dev.sid, size: ATC_INV_SIZE_ALL });
      this.#batch!.submit();
      domain.atsDevices--;
    }
    domain.devices.delete(dev.sid);
    dev.domain = undefined;
    dev.ats = false;
    dev.stall = false;
    dev.pri = false;
    // The abort STE: dwords 0–2 (V and Config, SHCFG, no VMID); negative caching needs the sync.
    this.streamTable.writeSte(dev.sid, abortSte(), 0, 6);
    this.#syncSte(dev.sid);
    if (domain.devices.size === 0) this.#freeDomain(domain);
  }

  /** `arm_smmu_domain_finalise_s1`: ASID, stage-1 table, CD table and its CD. */
  #createDomain(id: number, asid: number | undefined, stall: boolean): Domain {
    const caps = this.caps;
    const a = asid ?? this.#freeAsid();
    const table = new RadixPageTable(this.#guest, this.frames, armS1Codec(armS1Config(S1_T0SZ, caps.ias)));
    const domain: Domain = {
      id,
      asid: a,
      table,
      cdTable: this.frames.alloc() * PAGE,
      devices: new Set(),
      atsDevices: 0,
      flushQueue: [],
      stall,
      demandPaged: new Set(),
    };
    this.#domains.set(id, domain);
    this.#asids.set(a, id);
    this.#writeCd(domain);
    return domain;
  }

  /**
   * `arm_smmu_write_ctx_desc(…, 0, &cd)` for a CD that is not live: dwords 1–3 (TTB0, MAIR)
   * first, `arm_smmu_sync_cd`, then dword 0 (TCR fields, V), `arm_smmu_sync_cd` again.
   */
  #writeCd(domain: Domain): void {
    const cd = linuxS1Cd(this.caps, domain.asid, domain.table.rootPa, domain.stall);
    encodeCd(cd, this.#cd);
    const i32 = this.#guest.i32;
    const at = domain.cdTable / 4;
    for (let w = 7; w >= 2; w--) i32[at + w] = this.#cd[w]!;
    this.#syncCd(domain);
    i32[at + 1] = this.#cd[1]!;
    i32[at] = this.#cd[0]!;
    this.#syncCd(domain);
  }

  /** `arm_smmu_sync_cd(domain, 0, true)`: CFGI_CD of SSID 0 for every attached StreamID, one SYNC. */
  #syncCd(domain: Domain): void {
    const batch = this.#batch!;
    for (const sid of domain.devices) batch.add(Opcode.CfgiCd, { sid, ssid: 0, leaf: 1 });
    batch.submit();
  }

  /**
   * `arm_smmu_write_strtab_ent` for a stage-1 domain (abort to translate): dwords 1–7, CFGI_STE +
   * SYNC, dword 0, CFGI_STE + SYNC, then PREFETCH_CONFIG without a sync.
   */
  #installS1Ste(dev: Device, domain: Domain): void {
    const ste = linuxS1Ste(this.caps, domain.cdTable, { stall: dev.stall, ats: dev.ats });
    const strtab = this.streamTable;
    strtab.writeSte(dev.sid, ste, 2, 16);
    this.#syncSte(dev.sid);
    strtab.writeSte(dev.sid, ste, 0, 2);
    this.#syncSte(dev.sid);
    this.queue.issueCmd(Opcode.PrefetchConfig, { sid: dev.sid }, false);
  }

  /** `arm_smmu_sync_ste_for_sid`: CFGI_STE (leaf) with its SYNC in one insertion. */
  #syncSte(sid: number): void {
    this.queue.issueCmd(Opcode.CfgiSte, { sid, leaf: 1 }, true);
  }

  /** `arm_smmu_domain_free`: `free_io_pgtable_ops` flushes the TLB, then tables, CD table and ASID go. */
  #freeDomain(domain: Domain): void {
    this.#tlbInvContext(domain);
    for (const e of domain.flushQueue) this.#release(e.frames);
    domain.flushQueue.length = 0;
    domain.table.free();
    this.frames.put(domain.cdTable / PAGE);
    this.#asids.delete(domain.asid);
    this.#domains.delete(domain.id);
  }

  #freeAsid(): number {
    const max = 2 ** this.caps.asidBits - 1;
    for (let a = 1; a <= max; a++) if (!this.#asids.has(a)) return a;
    throw DRIVER_ERRORS.asidExhausted(max);
  }

  #freeDomainId(): number {
    let id = 1;
    while (this.#domains.has(id)) id++;
    return id;
  }

  #resolve(target: SmmuDomainTarget): Domain {
    if (this.#caps === undefined) throw DRIVER_ERRORS.notProbed();
    if (typeof target === 'number') {
      checkSid(target, this.streamTable.sidLimit);
      const d = this.#devices.get(target)?.domain;
      if (d === undefined) throw DRIVER_ERRORS.notAttached(target);
      return d;
    }
    const d = this.#domains.get(target.domain);
    if (d === undefined) throw DRIVER_ERRORS.noDomain(target.domain);
    return d;
  }

  // ---- map / unmap (arm_smmu_map_pages, arm_smmu_unmap_pages, iommu_dma_unmap) ----------------

  /**
   * Maps [iova, iova+length) of the domain to guest-physical `gpa` with `prot` (1 read, 2 write,
   * 3 both), with 2 MiB and 1 GiB blocks where the alignment of both allows, as
   * `arm_smmu_map_pages` with the 4 KiB granule's page sizes. No invalidation: SMMUv3 caches no
   * invalid entry. EBUSY when part of the range still waits in the lazy flush queue, EEXIST when
   * part of it is mapped.
   */
  map(target: SmmuDomainTarget, iova: number, gpa: number, length: number, prot: number): void {
    const domain = this.#resolve(target);
    checkRange(domain, iova, length);
    if (!Number.isInteger(gpa) || gpa < 0 || gpa % PAGE !== 0) throw DRIVER_ERRORS.gpa(gpa);
    if (prot !== 1 && prot !== 2 && prot !== 3) throw DRIVER_ERRORS.prot(prot);
    for (const e of domain.flushQueue) {
      if (iova < e.iova + e.length && e.iova < iova + length) throw DRIVER_ERRORS.pendingFree(Math.max(iova, e.iova));
    }
    try {
      domain.table.map(iova, length, (off) => gpa + off, prot, true);
    } catch (e) {
      if (e instanceof IommufdError) throw e;
      throw DRIVER_ERRORS.mapped(iova);
    }
  }

  /**
   * Unmaps [iova, iova+length) of the domain; returns the bytes that were mapped. Strict: each
   * gather is invalidated (`arm_smmu_iotlb_sync`) before this returns, then freed table pages are
   * released; leaf-only unless a table page was freed. Lazy: the range and its freed table pages
   * join the flush queue (a full queue is drained first).
   */
  unmap(target: SmmuDomainTarget, iova: number, length: number): number {
    const domain = this.#resolve(target);
    checkRange(domain, iova, length);
    const freed: number[] = [];
    this.#collecting = freed;
    this.#gathers.length = 0;
    let bytes: number;
    try {
      bytes = domain.table.unmap(iova, length, this.#onCleared);
    } finally {
      this.#collecting = undefined;
    }
    for (const page of domain.demandPaged) if (page >= iova && page < iova + length) domain.demandPaged.delete(page);
    if (bytes === 0 && freed.length === 0) return 0;
    if (this.#opts.policy === 'strict') {
      const leaf = freed.length === 0;
      if (this.#gathers.length === 0) this.#tlbInvRangeDomain(domain, iova, length, PAGE, leaf);
      for (const g of this.#gathers) this.#tlbInvRangeDomain(domain, g.start, g.end - g.start, g.pgsize, leaf);
      this.#release(freed);
    } else {
      // queue_iova: a full ring is flushed and freed before the new entry goes in.
      if (domain.flushQueue.length >= this.#opts.flushQueueSize) this.#drainFlushQueue(domain);
      domain.flushQueue.push({ iova, length, frames: freed });
      this.#counts.deferredUnmaps++;
    }
    return bytes;
  }

  /**
   * `iommu_iotlb_gather_add_page`: a leaf of another size, or one not adjacent to the gather,
   * starts a new gather (Linux syncs the old one there).
   */
  #gather(iova: number, size: number): void {
    const last = this.#gathers[this.#gathers.length - 1];
    if (last !== undefined && last.pgsize === size && last.end === iova) last.end += size;
    else this.#gathers.push({ start: iova, end: iova + size, pgsize: size });
  }

  /** Entries waiting in the lazy flush queues. */
  get pendingFlushes(): number {
    return pendingFlushes(this.#domains.values());
  }

  /**
   * Drains every non-empty flush queue, as the flush-queue timer does (`fq_flush_timeout`):
   * `arm_smmu_tlb_inv_context` per domain, then the queued table pages are freed. Returns the
   * entries drained.
   */
  flushLazy(): number {
    return drainFlushQueues(this.#domains.values(), (d) => this.#drainFlushQueue(d));
  }

  /** `fq_flush_iotlb` then `fq_ring_free`. */
  #drainFlushQueue(domain: Domain): void {
    this.#tlbInvContext(domain);
    for (const e of domain.flushQueue) this.#release(e.frames);
    domain.flushQueue.length = 0;
    this.#counts.flushQueueDrains++;
  }

  /** `arm_smmu_tlb_inv_range_domain`: TLBI_NH_VA batch + SYNC, then the ATCs of the range. */
  #tlbInvRangeDomain(domain: Domain, iova: number, size: number, granule: number, leaf: boolean): void {
    tlbiNhVaRange(this.#batch!, domain.asid, iova, size, granule, leaf, this.caps.ril);
    this.#atcInvDomain(domain, iova, size);
  }

  /** `arm_smmu_tlb_inv_context`: TLBI_NH_ASID with its SYNC, then every ATC of the domain. */
  #tlbInvContext(domain: Domain): void {
    this.queue.issueCmd(Opcode.TlbiNhAsid, { asid: domain.asid, vmid: 0 }, true);
    this.#atcInvDomain(domain, 0, 0);
  }

  /** `arm_smmu_atc_inv_domain(domain, 0, iova, size)`: one ATC_INV per ATS master, one SYNC (size 0: all). */
  #atcInvDomain(domain: Domain, iova: number, size: number): void {
    if (!this.caps.ats || domain.atsDevices === 0) return;
    const span = atcInvSpan(iova, size);
    const batch = this.#batch!;
    for (const sid of domain.devices) {
      if (this.#devices.get(sid)!.ats) batch.add(Opcode.AtcInv, { sid, addr: span.addr, size: span.size });
    }
    batch.submit();
  }

  #release(frames: readonly number[]): void {
    for (const f of frames) this.frames.release(f);
  }

  // ---- command queue, errors, events ----------------------------------------------------------

  /** An empty batch submitted: one bare CMD_SYNC, returning once every earlier command completed. */
  sync(): void {
    if (this.#batch === undefined) throw DRIVER_ERRORS.notProbed();
    this.#batch.submit();
  }

  /**
   * Queues raw commands (4 words each, as the unit reads them) in one insertion, with a CMD_SYNC
   * after them unless `sync` is false: how a test queues what the driver would never build (an
   * illegal command). With the sync, the call returns once it completed, command errors recovered.
   */
  submitRaw(cmds: Uint32Array, opts: { sync?: boolean } = {}): void {
    if (cmds.length % 4 !== 0) throw DRIVER_ERRORS.rawLength(cmds.length);
    this.queue.issue(cmds, cmds.length / 4, opts.sync !== false);
  }

  /**
   * The GERROR interrupt handler (`arm_smmu_gerror_handler`): reads GERROR and GERRORN; with an
   * active CMDQ_ERR runs `arm_smmu_cmdq_skip_err`; acknowledges every active error by writing
   * GERROR's value to GERRORN (which resumes the command queue). Service failure mode disables
   * the unit (CR0 = 0) and fails with EIO. Returns the active bits (0: nothing pending). The
   * command queue runs it whenever a poll finds no progress.
   */
  handleGlobalErrors(): number {
    const mmio = this.#mmio;
    const gerror = mmio.read32(SMMU_REG.GERROR);
    const gerrorn = mmio.read32(SMMU_REG.GERRORN);
    const active = (gerror ^ gerrorn) & GERROR_ERR_MASK;
    if (active === 0) return 0;
    this.#counts.gerrors++;
    if ((active & GERROR.SFM_ERR) !== 0)
      writeRegSync(mmio, SMMU_REG.CR0, 0, SMMU_REG.CR0ACK, 'CR0', this.#opts.pollLimit);
    if ((active & GERROR.CMDQ_ERR) !== 0) this.queue.skipErr();
    mmio.write32(SMMU_REG.GERRORN, gerror);
    if ((active & GERROR.SFM_ERR) !== 0) throw DRIVER_ERRORS.serviceFailure();
    return active;
  }

  /**
   * The event queue thread (`arm_smmu_evtq_thread`): every record the unit wrote since the last
   * call, in order, decoded; an overflow is counted and acknowledged. A stall event goes to the
   * fault path and is answered with CMD_RESUME before this returns (`arm_smmu_handle_evt`).
   */
  readEvents(): SmmuEventRecord[] {
    const records = this.eventQueue.drain();
    for (const e of records) if (e.stall) this.#handleStall(e);
    return records;
  }

  /**
   * The PRI queue thread: every page request the unit wrote since the last call, in order; each
   * group is answered with CMD_PRI_RESP once its last request arrived. After an overflow the
   * partial groups are dropped (the unit answered their lost last requests). Returns the records.
   */
  handlePageRequests(): SmmuPriRecord[] {
    if (this.#caps === undefined) throw DRIVER_ERRORS.notProbed();
    const q = this.#priq;
    if (q === undefined) return [];
    const { records, overflowed } = q.drain();
    for (const r of records) this.#handlePri(r);
    // After the records, as the PRIQ thread notices the overflow once the queue is empty.
    if (overflowed) this.#iopf.discardPartial();
    return records;
  }

  /** `arm_smmu_handle_evt` for Stall = 1: a recoverable stage-1 fault of a stalling master, or RESUME Abort. */
  #handleStall(e: SmmuEventRecord): void {
    const dev = this.#devices.get(e.sid);
    const recoverable =
      e.type === EVT_ID.F_TRANSLATION ||
      e.type === EVT_ID.F_ADDR_SIZE ||
      e.type === EVT_ID.F_ACCESS ||
      e.type === EVT_ID.F_PERMISSION;
    const r: SmmuPageRequest = {
      kind: 'stall',
      sid: e.sid,
      ssid: e.ssv ? e.ssid : undefined,
      addr: Number(e.inputAddress) - (Number(e.inputAddress) % PAGE),
      read: e.read,
      write: !e.read,
      exec: e.instruction,
      privileged: e.privileged,
      grpid: e.stag,
      last: true,
    };
    // Stage 2 is the host's ("always pinned"); a master that does not stall has nobody to care.
    if (!recoverable || e.stage2 || dev?.domain === undefined || !dev.stall) {
      this.#iopf.stats.unhandled++;
      this.#respond(r, IopfResponse.Failure);
      return;
    }
    this.#iopf.report(r, dev.domain.id, this.#faultHandler, (req, code) => this.#respond(req, code));
  }

  /** A PRI request: to the fault path for a PRI master, else PRI_RESP Deny for a last one (Linux 6.1). */
  #handlePri(p: SmmuPriRecord): void {
    const dev = this.#devices.get(p.sid);
    const r: SmmuPageRequest = {
      kind: 'pri',
      sid: p.sid,
      ssid: p.ssv ? p.ssid : undefined,
      addr: Number(p.address),
      read: p.read,
      write: p.write,
      exec: p.exec,
      privileged: p.privileged,
      grpid: p.prgIndex,
      last: p.last,
    };
    if (dev?.domain === undefined || !dev.pri) {
      this.#iopf.stats.unhandled++;
      if (p.last) this.#respond(r, IopfResponse.Invalid);
      return;
    }
    this.#iopf.report(r, dev.domain.id, this.#faultHandler, (req, code) => this.#respond(req, code));
  }

  /**
   * `arm_smmu_page_response`: RESUME (Retry on success, else Abort) for a stall, PRI_RESP (Success,
   * Deny for Invalid, Fail for Failure) for a page request group; no CMD_SYNC unless asked for.
   */
  #respond(r: SmmuPageRequest, code: number): void {
    const cmd = pageResponse(r, code);
    this.queue.issueCmd(cmd.opcode, cmd.fields, this.#opts.faultResponseSync === true);
  }

  /**
   * The default fault handler, demand paging (an SVA mm's `handle_mm_fault`): each faulting page
   * of the group that is not mapped gets a fresh zeroed guest page, mapped read-write; a page the
   * handler already mapped (another transaction's fault) is fine. Invalid when a page cannot be
   * mapped (mapped otherwise, or waiting in the lazy flush queue).
   */
  demandPage(group: readonly SmmuPageRequest[], domainId: number): number {
    const domain = this.#domains.get(domainId);
    if (domain === undefined) return IopfResponse.Invalid;
    for (const r of group) {
      if (domain.demandPaged.has(r.addr)) continue;
      const gpa = this.frames.alloc() * PAGE;
      this.#guest.u8.fill(0, gpa, gpa + PAGE);
      try {
        this.map({ domain: domainId }, r.addr, gpa, PAGE, 3);
      } catch {
        this.frames.put(gpa / PAGE);
        return IopfResponse.Invalid;
      }
      domain.demandPaged.add(r.addr);
    }
    return IopfResponse.Success;
  }
}

function checkBits(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) throw DRIVER_ERRORS.option(name, v, `an integer in [${lo}, ${hi}]`);
  return v;
}

function checkSid(sid: number, limit: number): void {
  if (!Number.isInteger(sid) || sid < 0 || sid >= limit) throw DRIVER_ERRORS.sid(sid, limit);
}

function checkRange(domain: Domain, iova: number, length: number): void {
  const limit = domain.table.inputLimit;
  if (
    !Number.isInteger(iova) ||
    !Number.isInteger(length) ||
    iova < 0 ||
    length <= 0 ||
    iova % PAGE !== 0 ||
    length % PAGE !== 0 ||
    iova + length > limit
  )
    throw DRIVER_ERRORS.range(iova, length, limit);
}
