/**
 * An emulated Arm SMMUv3 (issue 5): the register pages, the command queue in guest memory, the
 * configuration fetch (stream table, STE, CD table, CD) through a config cache, translation of
 * stage 1, stage 2 and nested configurations through the shared IOTLB (tagged VMID, ASID) and
 * the devices' ATCs, and the event queue. A VMM simulator embeds it as its SMMU: the guest writes
 * registers with `mmioWrite`, builds its tables in guest RAM and queues commands; devices do DMA
 * with `translate`, `dmaRead` and `dmaWrite`.
 *
 * The command queue is consumed on the doorbell, on the calling thread (cmdq-consumer.ts), as
 * QEMU serves the trap on the vCPU thread. A fault of the synchronous calls (`translate`,
 * `dmaRead`, `dmaWrite`) terminates the transaction and is recorded as an event (events.ts). The
 * asynchronous `dma` (dma-async.ts) is a device that can wait: a stallable fault of a stream
 * configured to stall holds the transaction (stall.ts: an event with Stall = 1 and a STAG, then
 * CMD_RESUME or CMD_STALL_TERM), and a device with ATS and PRI sends page requests to the PRI
 * queue (pri.ts: then CMD_PRI_RESP); the DMA retries once answered.
 *
 * Tags: each guest VMID has an IOTLB tag of the shared tables (a stage-1-only unit uses VMID 0);
 * stage-1 and nested entries are tagged (VMID, ASID), stage-2-only entries (VMID, S2_ONLY_ASID). Guest-
 * physical addresses are the unit's guest RAM; stage-2 tables, CDs and stage-1 tables all live
 * there.
 */
import type { Observable } from 'rxjs';
import { payloadRoot } from '../payload-root.js';
import {
  cacheAccess,
  ConfigCache,
  CONFIG_PAYLOAD_WORDS,
  Iotlb,
  NO_SSID,
  type ConfigCacheCounters,
} from '../../cache/index.js';
import type { HostAddressSpace, PhysMemory, SystemMemory } from '../../memory/index.js';
import { GuestRam } from '../../memory/index.js';
import type { OpList } from '../../ops/index.js';
import {
  Access,
  armNestedWalk,
  armS1Walk,
  armS2Walk,
  FaultReason,
  SMMU_EVT,
  TranslateFault,
  WalkFault,
} from '../../pgtable/index.js';
import { InvalidationPipeline, type Completion } from '../../pipeline/index.js';
import { EVT_CLASS } from './resolve-events.js';
import type { ContextTables } from '../../translate/index.js';
import { IommufdError } from '../../util/errors.js';
import { dmaRead, dmaWrite } from '../dma.js';
import { mapGuestRam, type GuestRamMapHost } from '../guest-ram-map.js';
import { UnitTags } from '../unit-tags.js';
import { CmdqConsumer, type CmdqHost, type CmdqStats } from './cmdq-consumer.js';
import { S2_ONLY_ASID } from './commands-ops.js';
import { SmmuDirectPath, type SmmuDirectStats, type SmmuExit, type SmmuViommuPort } from './direct.js';
import { ALL_FEATURES, Field, Opcode, SmmuFeature, type SmmuCommand } from './commands.js';
import { smmuDma, type SmmuDmaArgs, type SmmuDmaHost, type SmmuDmaResult, type SmmuFaultModel } from './dma-async.js';
import { SmmuEventWriter, type SmmuEventStats, type SmmuPageFault } from './events.js';
import { SmmuPriQueue, type SmmuPriStats } from './pri.js';
import { SmmuStallTable, type SmmuStallOutcome, type SmmuStallStats } from './stall.js';
import { CR0, STALL_MODEL, STRTAB_FMT } from './regs-defs.js';
import { smmuResolverCaps, smmuStallModel } from './regs-caps.js';
import { SmmuRegisters, type SmmuInterrupt, type SmmuRegisterOptions, type SmmuStreamTable } from './regs.js';
import { SMMU_ABORT, SMMU_BYPASS, SMMU_CFG_FLAG, SMMU_RESOLVED, SmmuConfig } from './resolve-config.js';
import { ArmStage2Translator } from './resolve-stage2.js';
import { SmmuResolver } from './resolve.js';
import { STE_CONFIG } from './structures.js';
import { PhysQwordReader } from '../vtd/resolve-reader.js';

/** What an SMMUv3 unit needs from its iommufd context. */
export interface SmmuBackend {
  /** Host memory (guest RAM is carved from it). */
  memory: SystemMemory;
  /** The shared context tables: IOTLB tags and ATC slots come from them. */
  tables: ContextTables;
  /** The shared IOTLB (undefined: translations are not cached). */
  iotlb: Iotlb | undefined;
  /** The shared device-TLB table (undefined: no ATCs). */
  atc: Iotlb | undefined;
  /** The iommufd that guest RAM is mapped into (see `mapGuestRam`). */
  host?: GuestRamMapHost | undefined;
  /** The VMM's address space (guest RAM is mapped into it by `mapGuestRam`). */
  mm?: HostAddressSpace | undefined;
}

/**
 * Options of an emulated SMMUv3: the register options (what the ID registers advertise), and
 * the unit's resources. The page walkers implement the 4 KiB granule only, so the unit
 * advertises GRAN4K alone (granule16k/granule64k are refused).
 */
export interface SmmuIommuOptions extends SmmuRegisterOptions {
  /** Guest RAM bytes (a multiple of 4 KiB); default 64 MiB. Ignored when `ram` is given. */
  guestRamBytes?: number;
  /** Guest RAM that already exists (the VMM's). */
  ram?: GuestRam;
  /** Pipeline worker threads for large invalidation batches; default 0 (everything inline). */
  threads?: number;
  /** Config-cache entries (STE + CD per StreamID and SubstreamID); default 1024. */
  configEntries?: number;
}

/** A device's transaction: its StreamID and, with a PASID, its SubstreamID. */
export interface SmmuRequest {
  /** StreamID. */
  sid: number;
  /** SubstreamID, or -1 / absent for a transaction without one. */
  ssid?: number;
}

/** Counters of an SMMUv3 unit. */
export interface SmmuStats {
  /** The command queue consumer's counters. */
  cmdq: CmdqStats;
  /** The event queue writer's counters. */
  events: SmmuEventStats;
  /** Translations requested, and how many faulted (terminated). */
  translations: number;
  faults: number;
  /** Translations of the asynchronous DMA that faulted recoverably (stalled, or a page request). */
  pending: number;
  /** The stall model: held transactions, RESUME and STALL_TERM. */
  stall: SmmuStallStats;
  /** PRI: page requests, groups, responses, the unit's own answers. */
  pri: SmmuPriStats;
  /** Transactions that bypassed (SMMUEN = 0 with GBPA bypass, or a bypass STE / S1DSS). */
  bypassed: number;
  /** IOTLB hits and misses of this unit's translations. */
  iotlbHits: number;
  iotlbMisses: number;
  /** ATC hits. */
  atcHits: number;
  /** Config cache: hits and misses of this unit, and its table counters. */
  configHits: number;
  configMisses: number;
  config: ConfigCacheCounters;
  /** Commands handled by the unit itself (TLBI_NSNH_ALL, EL2 TLBIs, PRI_RESP, RESUME, STALL_TERM). */
  unitCommands: number;
  /** The direct vIOMMU path's counters (undefined when the unit is not bound to a vIOMMU). */
  direct: SmmuDirectStats | undefined;
}

// Config-cache payload words.
const P_KIND = 0; // STE_CONFIG value in effect | EATS << 8
const P_TAG = 1; // IOTLB tag of the VMID
const P_ASID = 2;
const P_S2_ROOT = 3;
const P_S2_CFG = 4;
const P_TTB0 = 5;
const P_TTB0_CFG = 6;
const P_FLAGS = 7; // SMMU_CFG_FLAG bits
const EATS_SHIFT = 8;

const CFG_FAULT = -2;
const CFG_ABORTED = -3;
/** The payload's kind for a bypassed stream. */
const KIND_BYPASS = STE_CONFIG.Bypass;

/** Every message of the unit (one place, STYLE.md). */
const ERRORS = {
  closed: 'this SMMUv3 unit was closed',
  granule: (name: string) => `${name}: the page walkers implement the 4 KiB granule only`,
  dma: (sid: number, ssid: number, at: number, event: number) =>
    `DMA from StreamID 0x${sid.toString(16)}${ssid >= 0 ? ` SSID ${ssid}` : ''} at 0x${at.toString(16)} faulted (SMMU event 0x${event.toString(16)})`,
  asyncDma: (sid: number, ssid: number, at: number, why: string) =>
    `DMA from StreamID 0x${sid.toString(16)}${ssid >= 0 ? ` SSID ${ssid}` : ''} at 0x${at.toString(16)} failed: ${why}`,
  priDevice: (sid: number) => `StreamID 0x${sid.toString(16)}: PRI needs a unit with IDR0.PRI (and so ATS)`,
} as const;

/** An emulated SMMUv3. */
export class SmmuIommu {
  /** The register pages. */
  readonly regs: SmmuRegisters;
  /** Interrupts toward the VMM (CMD_SYNC, event queue, GERROR), wired or MSI. */
  readonly interrupts$: Observable<SmmuInterrupt>;
  /** Barriers (CMD_SYNCs) that completed in the pipeline. */
  readonly completions$: Observable<Completion>;
  /** Guest RAM. */
  readonly ram: GuestRam;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
  readonly #backend: SmmuBackend;
  readonly #ownsRam: boolean;
  readonly #iotlb: Iotlb;
  readonly #config: ConfigCache;
  readonly #pipeline: InvalidationPipeline;
  readonly #resolver: SmmuResolver;
  readonly #consumer: CmdqConsumer;
  readonly #events: SmmuEventWriter;
  readonly #stall: SmmuStallTable;
  readonly #pri: SmmuPriQueue;
  /** StreamIDs of devices with PRI. */
  readonly #priDevices = new Set<number>();
  /** The fault model of the translation in progress (the asynchronous DMA's), or undefined. */
  #recover: SmmuFaultModel | undefined;
  /** The recoverable fault of the last translation that returned Pending. */
  readonly #held: SmmuPageFault = { iova: 0, access: 0, type: 0, stage2: false, faultClass: 0, ipa: 0 };
  readonly #dmaHost: SmmuDmaHost;
  readonly #cfg = new SmmuConfig();
  readonly #payload = new Int32Array(CONFIG_PAYLOAD_WORDS);
  readonly #fault = new WalkFault();
  /** Guest VMID → IOTLB tag, and SID → ATC slot for devices registered with ATS. */
  readonly #tags: UnitTags;
  readonly #atcInvFailures = new Set<number>();
  readonly #stage2: boolean;
  readonly #host: CmdqHost;
  #direct: SmmuDirectPath | undefined;
  /** Guest RAM's VA in the VMM's address space, once mapped by `mapGuestRam`. */
  #ramVa: bigint | undefined;
  #closed = false;
  /** The SMMU event type of the last translation that faulted (0 when it had none). */
  lastEvent = 0;
  readonly #stats = {
    translations: 0,
    faults: 0,
    pending: 0,
    bypassed: 0,
    iotlbHits: 0,
    iotlbMisses: 0,
    atcHits: 0,
    unitCommands: 0,
  };

  /** Creates a unit over `backend` (see `Iommufd.smmuCreate`, which supplies it). */
  constructor(backend: SmmuBackend, opts: SmmuIommuOptions = {}) {
    if (opts.granule16k === true) throw new RangeError(ERRORS.granule('granule16k'));
    if (opts.granule64k === true) throw new RangeError(ERRORS.granule('granule64k'));
    this.#backend = backend;
    this.#ownsRam = opts.ram === undefined;
    this.regs = new SmmuRegisters(
      { ...registerOptions(opts), granule4k: true, granule16k: false, granule64k: false },
      {
        cmdqDoorbell: () => this.#consumer.consume(),
        controlChanged: (ack, changed) => {
          if ((changed & CR0.SMMUEN) !== 0) this.#dropEverything();
          // SMMUEN 1 -> 0 terminates every stalled transaction (IHI0070 §6.3.9.6).
          if ((changed & ack & CR0.SMMUEN) === 0 && (changed & CR0.SMMUEN) !== 0) this.#stall.terminateAll();
        },
        outQueueUpdated: (kind) => {
          if (kind === 'evtq') this.#stall.flush((r) => this.#events.pushRecord(r));
        },
        streamTableChanged: (t) => this.#latchStreamTable(t),
        msiWrite: (addr, data) => this.#writeWord(addr, data),
      },
    );
    this.ram = opts.ram ?? new GuestRam(backend.memory.phys, backend.memory.frames, opts.guestRamBytes ?? 64 * 2 ** 20);
    this.guest = this.ram.guestPhys();
    this.interrupts$ = this.regs.interrupts$;
    const o = this.regs.options;
    this.#stage2 = o.stage2;
    const mem = this.guest.i32;
    this.#resolver = new SmmuResolver(
      new PhysQwordReader(mem),
      smmuResolverCaps(o),
      o.stage1 && o.stage2 ? new ArmStage2Translator(mem) : null,
    );
    const iotlb = backend.iotlb ?? new Iotlb(64, 1);
    this.#iotlb = iotlb;
    this.#config = new ConfigCache(opts.configEntries ?? 1024, iotlb.shards);
    const atc = backend.atc !== undefined && backend.atc.shards === iotlb.shards ? backend.atc : undefined;
    this.#pipeline = new InvalidationPipeline(iotlb, { threads: opts.threads ?? 0, config: this.#config, atc });
    this.completions$ = this.#pipeline.completions$.asObservable();
    this.#tags = new UnitTags(backend.tables, iotlb, backend.atc, S2_ONLY_ASID);
    this.#events = new SmmuEventWriter(this.regs, (addr, words) => this.#writeRecord(addr, words));
    this.#stall = new SmmuStallTable(o.stall ? o.stallMax : 0);
    this.#pri = new SmmuPriQueue(this.regs, (addr, words) => this.#writeRecord(addr, words));
    this.#dmaHost = this.#makeDmaHost();
    const features =
      (o.stage1 ? SmmuFeature.Stage1 : 0) |
      (o.stage2 ? SmmuFeature.Stage2 : 0) |
      (o.hyp ? SmmuFeature.Hyp : 0) |
      (o.ats ? SmmuFeature.Ats : 0) |
      (o.pri ? SmmuFeature.Pri : 0) |
      (smmuStallModel(o) !== STALL_MODEL.TerminateOnly ? SmmuFeature.Stall : 0) |
      (o.ril ? SmmuFeature.Ril : 0);
    const host: CmdqHost = (this.#host = {
      mem,
      features: features & ALL_FEATURES,
      tagMap: this.#tags.tagMap,
      run: (ops: OpList) => {
        this.#pipeline.submitSync(ops);
      },
      unitCommand: (cmd) => this.#unitCommand(cmd),
      atcInvFails: (sid) => this.#atcInvFailures.size > 0 && this.#atcInvFailures.delete(sid),
    });
    this.#consumer = new CmdqConsumer(this.regs, host);
  }

  // ---- the VMM's side ------------------------------------------------------------------------

  /** An MMIO read of the register pages (size 4 or 8; see SmmuRegisters). */
  mmioRead(offset: number, size: 4 | 8): number | bigint {
    return this.regs.mmioRead(offset, size);
  }

  /** An MMIO write; a CMDQ_PROD write consumes the command queue before it returns. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void {
    if (this.#closed) throw new IommufdError('EBADF', ERRORS.closed);
    this.regs.mmioWrite(offset, value, size);
  }

  /**
   * Declares a PCIe device with ATS at `sid`: with STE.EATS its translations are cached in its ATC.
   * With `pri` (a unit with IDR0.PRI; EINVAL otherwise) it also has PRI: the faults of its
   * asynchronous DMA through ATS become page requests in the PRI queue.
   */
  addAtsDevice(sid: number, opts: { pri?: boolean } = {}): void {
    if (opts.pri === true && !this.regs.options.pri) throw new IommufdError('EINVAL', ERRORS.priDevice(sid));
    this.#tags.addAts(sid);
    if (opts.pri === true) this.#priDevices.add(sid);
  }

  /**
   * Fault injection for ATS invalidation completions (not modelled as PCIe transactions): the next
   * ATC_INV for `sid` fails, so the CMD_SYNC after it stops the queue with CERROR_ATC_INV_SYNC.
   */
  injectAtcInvError(sid: number): void {
    this.#atcInvFailures.add(sid);
  }

  /**
   * Maps guest RAM into the VMM's address space and then at IOVA (= GPA) 0 of `ioasId`, so that a
   * nest parent on that IOAS is the VM's guest-physical space for assigned devices: their vSTE
   * nested HWPTs read the guest's CD and stage-1 tables through it. Once (EEXIST).
   */
  mapGuestRam(ioasId: number): void {
    if (this.#closed) throw new IommufdError('EBADF', ERRORS.closed);
    this.#ramVa = mapGuestRam(this.#backend.host, this.#backend.mm, this.ram, ioasId, this.#ramVa);
  }

  /**
   * Binds the unit to an iommufd vIOMMU for the direct queue path (direct.ts): from now on the
   * guest's invalidations of assigned devices go to the vIOMMU as the command queue is consumed,
   * and commands the backend may not run stop the queue as exits (`exits$`, then `resumeExit`).
   * See `Iommufd.smmuCreate({ viommuId })`, which supplies the port. Once (EEXIST).
   */
  bindViommu(port: SmmuViommuPort): void {
    if (this.#closed) throw new IommufdError('EBADF', ERRORS.closed);
    if (this.#direct !== undefined) throw new IommufdError('EEXIST', 'this unit is already bound to a vIOMMU');
    const d = new SmmuDirectPath(port);
    this.#direct = d;
    const h = this.#host;
    h.check = (cmd) => d.check(cmd);
    h.isExit = (cmd) => d.isExit(cmd);
    h.emitExit = (cmd, index, mem, at) => d.emitExit(cmd, index, mem, at);
    h.forward = (cmd, mem, at) => d.forward(cmd, mem, at);
    h.flushForwarded = () => d.flush();
  }

  /** The vIOMMU the unit is bound to, or undefined. */
  get viommuId(): number | undefined {
    return this.#direct?.viommuId;
  }

  /** Commands handed to the VMM by the direct path (EINVAL when the unit is not bound). */
  get exits$(): Observable<SmmuExit> {
    if (this.#direct === undefined) throw new IommufdError('EINVAL', 'this unit is not bound to a vIOMMU');
    return this.#direct.exits$;
  }

  /**
   * The VMM is done with the exit the queue stopped at: CONS moves past it and consumption goes on.
   * With `runIt` (the default) the unit also runs the command on its own caches (a CFGI_STE drops
   * its cached configuration, a TLBI_S12_VMALL its entries); a no-op without a pending exit.
   */
  resumeExit(runIt = true): void {
    if (this.#closed) throw new IommufdError('EBADF', ERRORS.closed);
    this.#consumer.resume(runIt);
  }

  /** The unit's counters. */
  stats(): SmmuStats {
    return {
      ...this.#stats,
      cmdq: this.#consumer.stats(),
      events: this.#events.stats(),
      stall: this.#stall.stats(),
      pri: this.#pri.stats(),
      configHits: this.#config.hits,
      configMisses: this.#config.misses,
      config: this.#config.counters(),
      direct: this.#direct?.stats(),
    };
  }

  /** Returns guest RAM (if the unit allocated it) and its tags at once, and stops the pipeline. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#consumer.stop();
    this.#stall.terminateAll();
    this.#pri.failAll();
    this.#direct?.close();
    if (this.#ramVa !== undefined) this.#backend.mm?.munmap(this.#ramVa, BigInt(this.ram.bytes));
    this.#tags.release();
    if (this.#ownsRam) this.ram.release();
    this.#backend.memory.reclaimer.reclaim();
    return this.#pipeline.close();
  }

  // ---- register side effects -----------------------------------------------------------------

  #latchStreamTable(t: SmmuStreamTable): void {
    const r = this.#resolver;
    r.strtabBase = t.address;
    r.fmt = t.format === '2-level' ? STRTAB_FMT.TwoLevel : STRTAB_FMT.Linear;
    r.log2size = t.log2Size;
    r.split = t.split;
    this.#dropEverything();
  }

  /** A 32-bit store into guest RAM (an MSI); false if it is outside guest RAM or unaligned. */
  #writeWord(addr: number, data: number): boolean {
    if (addr % 4 !== 0 || addr + 4 > this.ram.bytes) return false;
    this.guest.i32[addr / 4] = data | 0;
    return true;
  }

  /** An output-queue record store into guest RAM; false (an abort) outside guest RAM. */
  #writeRecord(addr: number, words: Int32Array): boolean {
    if (addr % 4 !== 0 || addr + words.length * 4 > this.ram.bytes) return false;
    this.guest.i32.set(words, addr / 4);
    return true;
  }

  /** SMMUEN changes and a new stream table: drop every cached entry of this unit. */
  #dropEverything(): void {
    this.#config.flushAll();
    this.#tags.flushAll();
  }

  /**
   * Commands without ops: TLBI_NSNH_ALL flushes every tag of this unit (never another guest's);
   * the EL2 TLBIs do the same (no EL2 regime is tagged apart, so over-invalidating is the safe
   * choice); RESUME and STALL_TERM end stalled transactions (stall.ts), PRI_RESP answers a page
   * request group (pri.ts); one that names nothing is ignored and counted there.
   */
  #unitCommand(cmd: SmmuCommand): void {
    this.#stats.unitCommands++;
    switch (cmd.opcode) {
      case Opcode.TlbiNsnhAll:
      case Opcode.TlbiEl2All:
      case Opcode.TlbiEl2Asid:
      case Opcode.TlbiEl2Va:
      case Opcode.TlbiEl2Vaa:
        this.#tags.flushIotlb();
        break;
      case Opcode.Resume: {
        const f = cmd.f;
        const outcome: SmmuStallOutcome = f[Field.ac] !== 0 ? 'retry' : f[Field.ab] !== 0 ? 'abort' : 'terminate';
        this.#stall.resume(f[Field.sid]!, f[Field.stag]!, outcome);
        break;
      }
      case Opcode.StallTerm:
        this.#stall.terminateStream(cmd.f[Field.sid]!);
        break;
      case Opcode.PriResp:
        this.#pri.respond(cmd.f[Field.sid]!, cmd.f[Field.prgi]!, cmd.f[Field.resp]!);
        break;
      default:
        break;
    }
  }

  // ---- translation ---------------------------------------------------------------------------

  /**
   * Fetches (or finds cached) the configuration of a transaction into the payload scratch: returns
   * 0, or CFG_FAULT (the event is in `#cfg` and was recorded), or CFG_ABORTED.
   */
  #fetchConfig(sid: number, ssid: number, iova: number, access: number): number {
    const p = this.#payload;
    const key = ssid < 0 ? NO_SSID : ssid;
    const cache = this.#config;
    if (cache.lookup(sid, key, p) >= 0) return 0;
    const s0 = cache.fillSeq(sid);
    const c0 = cache.fillClock();
    const out = this.#cfg;
    const r = this.#resolver.resolve(sid, ssid, out);
    if (r === SMMU_ABORT) return CFG_ABORTED;
    if (r !== SMMU_RESOLVED && r !== SMMU_BYPASS) {
      this.#events.configFault(sid, ssid, out, iova, access);
      this.lastEvent = out.event;
      return CFG_FAULT;
    }
    const kind = r === SMMU_BYPASS ? KIND_BYPASS : out.kind;
    p[P_KIND] = kind | (out.eats << EATS_SHIFT);
    p[P_TAG] = kind === KIND_BYPASS ? -1 : this.#tags.tagFor(this.#stage2 ? out.vmid : 0);
    p[P_ASID] = out.asid < 0 ? 0 : out.asid;
    p[P_S2_ROOT] = payloadRoot(out.s2Root);
    p[P_S2_CFG] = out.s2Cfg;
    p[P_TTB0] = payloadRoot(out.ttb0);
    p[P_TTB0_CFG] = out.ttb0Cfg;
    p[P_FLAGS] = out.flags;
    cache.fill(sid, key, 0, p, s0, c0, 999);
    return 0;
  }

  /**
   * Translates a transaction: the host physical address of `iova` for `access` (Access bits), or
   * a negative TranslateFault. A fault terminates the transaction and is recorded in the event
   * queue as the configuration says; `lastEvent` has its event type.
   */
  translate(req: SmmuRequest, iova: number, access: number): number {
    this.#stats.translations++;
    const sid = req.sid;
    const ssid = req.ssid ?? -1;
    this.lastEvent = 0;
    if ((this.regs.cr0 & CR0.SMMUEN) === 0) {
      // SMMUEN = 0: GBPA decides, bypass or abort (no event either way).
      if (this.regs.bypassAbort) return this.#terminated(TranslateFault.NoDomain);
      this.#stats.bypassed++;
      const pa = this.ram.gpaToPa(iova);
      return pa >= 0 ? pa : this.#terminated(TranslateFault.WalkAbort);
    }
    // The device's ATC first, tagged (device, SSID).
    const atc = this.#backend.atc;
    const atsSlot = this.#tags.atsSlot(sid);
    const want = cacheAccess(access);
    let atag = 0;
    let a0 = 0;
    let ac0 = 0;
    if (atsSlot !== undefined) {
      atag = Iotlb.tagWord(atsSlot, ssid < 0 ? 0 : ssid);
      a0 = atc!.fillSeq(atag, iova);
      ac0 = atc!.fillClock();
      const hit = atc!.lookup(atag, iova, want);
      if (hit >= 0) {
        this.#stats.atcHits++;
        return hit;
      }
    }
    const c = this.#fetchConfig(sid, ssid, iova, access);
    if (c === CFG_ABORTED) return this.#terminated(TranslateFault.NoDomain);
    if (c === CFG_FAULT) return this.#terminated(TranslateFault.NoDomain);
    const p = this.#payload;
    const kind = p[P_KIND]! & 0xff;
    const eats = p[P_KIND]! >>> EATS_SHIFT !== 0;
    const mem = this.guest.i32;
    const f = this.#fault;
    if (kind === KIND_BYPASS) {
      this.#stats.bypassed++;
      const pa = this.ram.gpaToPa(iova);
      return pa >= 0 ? pa : this.#terminated(TranslateFault.WalkAbort);
    }
    const tag = p[P_TAG]!;
    const tlb = this.#iotlb;
    const tw = tag < 0 ? -1 : Iotlb.tagWord(tag, kind === STE_CONFIG.S2 ? S2_ONLY_ASID : p[P_ASID]!);
    let s0 = 0;
    let c0 = 0;
    if (tag >= 0) {
      const hit = tlb.lookup(tw, iova, want);
      if (hit >= 0) {
        this.#stats.iotlbHits++;
        if (atsSlot !== undefined && eats)
          atc!.fill(atag, iova, hit, tlb.lastShift, want, a0, ac0, 999, tlb.unitShiftOf(tw));
        return hit;
      }
      this.#stats.iotlbMisses++;
      s0 = tlb.fillSeq(tw, iova);
      c0 = tlb.fillClock();
    }
    let gpa: number;
    if (kind === STE_CONFIG.S2) {
      gpa = armS2Walk(mem, p[P_S2_ROOT]! >>> 0, p[P_S2_CFG]!, iova, access & ~Access.Priv, f);
    } else if (p[P_TTB0_CFG] === 0) {
      // TTB0 disabled (EPD0) or the upper (TTB1) half, which the unit does not walk: a Translation fault.
      gpa = f.set(TranslateFault.NotMapped, 0, FaultReason.Aperture, iova, SMMU_EVT.F_TRANSLATION);
    } else if (kind === STE_CONFIG.S1) {
      gpa = armS1Walk(mem, p[P_TTB0]! >>> 0, p[P_TTB0_CFG]!, iova, access, f);
    } else {
      gpa = armNestedWalk(mem, p[P_TTB0]! >>> 0, p[P_TTB0_CFG]!, p[P_S2_ROOT]! >>> 0, p[P_S2_CFG]!, iova, access, f);
    }
    if (gpa < 0) {
      const flags = p[P_FLAGS]!;
      this.lastEvent = f.words[4]!;
      if (this.#recover !== undefined && this.#recoverable(iova, f, flags, kind, atsSlot !== undefined && eats)) {
        this.#stats.pending++;
        return TranslateFault.Pending;
      }
      this.#events.walkFault(
        sid,
        ssid,
        iova,
        access,
        f,
        (flags & SMMU_CFG_FLAG.CD_R) !== 0,
        (flags & SMMU_CFG_FLAG.S2R) !== 0,
        kind === STE_CONFIG.S2,
      );
      return this.#terminated(gpa);
    }
    const pa = this.ram.gpaToPa(gpa);
    if (pa < 0) return this.#terminated(TranslateFault.WalkAbort);
    if (tag >= 0) tlb.fill(tw, iova, pa, f.leafShift, want, s0, c0, 999, f.unitShift);
    if (atsSlot !== undefined && eats) atc!.fill(atag, iova, pa, f.leafShift, want, a0, ac0, 999, f.unitShift);
    return pa;
  }

  /**
   * Whether the walk fault in `f` waits rather than terminates, under the fault model of the
   * asynchronous DMA in progress: a stallable fault (IHI0070 §5.5: F_TRANSLATION, F_ADDR_SIZE,
   * F_ACCESS, F_PERMISSION) of a stream whose configuration stalls that stage (CD.S without
   * STE.S1STALLD, STE.S2S, or STALL_MODEL forced); or, for a device with PRI, the same faults of
   * an ATS translation (an ATS translation fault is not recorded: the completion denies access
   * and the device sends a page request). Captures the fault in `#held`.
   */
  #recoverable(iova: number, f: WalkFault, flags: number, kind: number, ats: boolean): boolean {
    const type = f.words[4]!;
    const stallable =
      type === SMMU_EVT.F_TRANSLATION ||
      type === SMMU_EVT.F_ADDR_SIZE ||
      type === SMMU_EVT.F_ACCESS ||
      type === SMMU_EVT.F_PERMISSION;
    if (!stallable) return false;
    const stage2Only = kind === STE_CONFIG.S2;
    const s2 = stage2Only || f.s2 !== 0;
    if (this.#recover === 'pri') {
      if (!ats) return false;
    } else if ((flags & (s2 ? SMMU_CFG_FLAG.S2_STALL : SMMU_CFG_FLAG.S1_STALL)) === 0) return false;
    const h = this.#held;
    h.iova = iova;
    h.type = type;
    h.stage2 = s2;
    h.faultClass = stage2Only ? EVT_CLASS.IN : f.faultClass;
    h.ipa = stage2Only ? iova : f.ipa;
    return true;
  }

  #terminated(code: number): number {
    this.#stats.faults++;
    return code;
  }

  /** DMA read by a device: `length` bytes at `iova`. A fault throws EFAULT (and is recorded). */
  dmaRead(req: SmmuRequest, iova: number, length: number): Uint8Array {
    return dmaRead(
      this.#backend.memory.phys,
      (at, access) => this.translate(req, at, access),
      iova,
      length,
      (at) => this.#dmaFault(req, at),
    );
  }

  /** DMA write by a device. A fault throws EFAULT (and is recorded); earlier pages were written. */
  dmaWrite(req: SmmuRequest, iova: number, bytes: Uint8Array): void {
    dmaWrite(
      this.#backend.memory.phys,
      (at, access) => this.translate(req, at, access),
      iova,
      bytes,
      (at) => this.#dmaFault(req, at),
    );
  }

  #dmaFault(req: SmmuRequest, at: number): IommufdError {
    return new IommufdError('EFAULT', ERRORS.dma(req.sid, req.ssid ?? -1, at, this.lastEvent));
  }

  /**
   * An asynchronous DMA by the device of `req` (dma-async.ts): reads `length` bytes at `iova`
   * (access Read) or writes `data` (access Write). A recoverable fault stalls the transaction (an
   * event with Stall = 1 and a STAG; CMD_RESUME Retry retries it) or, for a device with PRI
   * ({@link addAtsDevice}), sends a page request group (CMD_PRI_RESP Success retries it). Fails
   * with EFAULT on a terminating fault, a RESUME Terminate / Abort, a STALL_TERM, a PRI response
   * other than Success, or `maxRetries` (default 8) rounds; no data moves unless it completes.
   */
  dma(req: SmmuRequest, args: SmmuDmaArgs): Promise<SmmuDmaResult> {
    return smmuDma(this.#dmaHost, req, args);
  }

  /** Transactions held by the stall model now. */
  get stalledTransactions(): number {
    return this.#stall.held;
  }

  /** Page request groups waiting for a PRI_RESP now. */
  get outstandingPageRequests(): number {
    return this.#pri.outstanding;
  }

  #makeDmaHost(): SmmuDmaHost {
    return {
      phys: this.#backend.memory.phys,
      held: this.#held,
      live: () => {
        if (this.#closed) throw new IommufdError('EBADF', ERRORS.closed);
      },
      model: (sid) => (this.#priDevices.has(sid) ? 'pri' : 'stall'),
      translate: (req, iova, access, model) => {
        this.#recover = model;
        this.#held.access = access;
        try {
          return this.translate(req, iova, access);
        } finally {
          this.#recover = undefined;
        }
      },
      stall: (req, f) => {
        let settle!: (o: SmmuStallOutcome) => void;
        const outcome = new Promise<SmmuStallOutcome>((resolve) => (settle = resolve));
        const sid = req.sid;
        const stag = this.#stall.hold(sid, settle);
        if (stag < 0) return undefined;
        // Never lost: an event the queue cannot take now waits in the stall table.
        const written = this.#events.stallFault(sid, req.ssid ?? -1, stag, f);
        if (written === 'retry' || written === 'abort') this.#stall.defer(sid, stag, this.#events.record);
        return outcome;
      },
      pageRequest: (req, pages) => {
        let settle!: (resp: number) => void;
        const resp = new Promise<number>((resolve) => (settle = resolve));
        return this.#pri.request(req.sid, req.ssid ?? -1, pages, settle) < 0 ? undefined : resp;
      },
      fault: (req, at, why) => new IommufdError('EFAULT', ERRORS.asyncDma(req.sid, req.ssid ?? -1, at, why)),
    };
  }
}

/** The register options of `opts` (without the unit's own resources). */
function registerOptions(opts: SmmuIommuOptions): SmmuRegisterOptions {
  const o: Record<string, unknown> = { ...opts };
  for (const k of ['guestRamBytes', 'ram', 'threads', 'configEntries', 'viommuId']) delete o[k];
  return o;
}
