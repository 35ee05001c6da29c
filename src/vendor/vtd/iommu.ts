/**
 * An emulated Intel VT-d remapping unit (issue 6): the register block, the invalidation queue in
 * guest memory, the configuration fetch with the context and PASID caches, translation by PGTT
 * through the shared IOTLB and the devices' TLBs, and fault recording. A VMM simulator embeds it
 * as its IOMMU: the guest writes registers with `mmioWrite`, builds root, context and PASID
 * tables and page tables in guest RAM, and queues descriptors; devices do DMA with `translate`,
 * `dmaRead` and `dmaWrite`.
 *
 * The queue is consumed on the doorbell (an IQT write), on the calling thread, as QEMU serves a
 * trap on the vCPU thread: descriptors decode into the pipeline's op lists, a wait descriptor is
 * a barrier, and its status write and interrupt happen only once everything before it has taken
 * effect. An invalid descriptor stops the queue on that entry with IQE (what came before it took
 * effect), until the guest clears FSTS.IQE and rings again.
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
import { Op, OpList } from '../../ops/index.js';
import {
  Access,
  CFG,
  packWalkConfig,
  TranslateFault,
  vtdSecondStageWalk,
  WalkFault,
  x86FirstStageWalk,
  x86NestedWalk,
} from '../../pgtable/index.js';
import { InvalidationPipeline, type Completion } from '../../pipeline/index.js';
import type { ContextTables } from '../../translate/index.js';
import { IommufdError } from '../../util/errors.js';
import { dmaRead, dmaWrite } from '../dma.js';
import { mapGuestRam } from '../guest-ram-map.js';
import { UnitTags } from '../unit-tags.js';
import { VtdAssignments, type VtdAssignmentHost, type VtdAssignmentStats } from './assign.js';
import {
  decodeDescriptor,
  DescStatus,
  DescType,
  Field,
  GRAN,
  iqeiOf,
  PC_GRAN,
  PIOTLB_GRAN,
  VtdDescriptor,
} from './descriptors.js';
import { descriptorToOps } from './descriptors-ops.js';
import { priDma, type VtdDmaTransfer } from './pri-dma.js';
import { VtdPageRequestQueue, type VtdPrqStats } from './prq.js';
import { VtdRegisters, type VtdInterrupt, type VtdRegisterOptions } from './regs.js';
import { IQEI } from './regs-defs.js';
import {
  CONFIG_FLAG,
  RequestKind,
  VTD_ABORTED,
  VTD_RESOLVED,
  VtdConfig,
  VtdResolver,
  vtdResolverCaps,
} from './resolve.js';
import { isQualifiedFault } from './resolve-faults.js';
import { PhysQwordReader } from './resolve-reader.js';
import { PGTT } from './structures-pasid.js';

/** What a VT-d unit needs from its iommufd context. */
export interface VtdBackend {
  /** Host memory (guest RAM is carved from it). */
  memory: SystemMemory;
  /** The shared context tables: IOTLB tags (domain descriptors) and ATC slots come from them. */
  tables: ContextTables;
  /** The shared IOTLB (undefined: translations are not cached). */
  iotlb: Iotlb | undefined;
  /** The shared device-TLB table (undefined: no device-TLBs). */
  atc: Iotlb | undefined;
  /** The iommufd that host devices assigned to the guest are bound in (see `assignDevice`). */
  host?: VtdAssignmentHost | undefined;
  /** The VMM's address space (guest RAM is mapped into it by `mapGuestRam`). */
  mm?: HostAddressSpace | undefined;
}

/** Options of an emulated VT-d unit. */
export interface VtdIommuOptions extends VtdRegisterOptions {
  /** Guest RAM bytes (a multiple of 4 KiB); default 64 MiB. Ignored when `ram` is given. */
  guestRamBytes?: number;
  /** Guest RAM that already exists (the VMM's). */
  ram?: GuestRam;
  /** Pipeline worker threads for large invalidation batches; default 0 (everything inline). */
  threads?: number;
  /** Config-cache entries (context and PASID entries); default 1024. */
  configEntries?: number;
}

/** A device's DMA request. */
export interface VtdRequest {
  /** Source id: bus << 8 | devfn. */
  sid: number;
  /** PASID, or -1 (default) for a request without PASID. */
  pasid?: number;
}

/** Counters of a VT-d unit. */
export interface VtdStats {
  /** Descriptors consumed from the invalidation queue. */
  descriptors: number;
  /** Wait descriptors completed. */
  waits: number;
  /** Doorbells (IQT writes) served. */
  doorbells: number;
  /** Invalid descriptors (IQE raised). */
  queueErrors: number;
  /** Translations requested, and how many faulted. */
  translations: number;
  faults: number;
  /** Faults recorded in the fault recording registers (others were suppressed, collapsed or lost). */
  faultsRecorded: number;
  /** IOTLB hits and misses of this unit's translations. */
  iotlbHits: number;
  iotlbMisses: number;
  /** Device-TLB hits. */
  devTlbHits: number;
  /** Config cache: hits and misses of this unit, and its table counters. */
  configHits: number;
  configMisses: number;
  config: ConfigCacheCounters;
  /** Wait descriptors whose status address was outside guest RAM or unaligned: no status was written. */
  badStatusWrites: number;
  /** Host devices assigned to the guest: syncs, host attaches, forwarded invalidations, errors. */
  assigned: VtdAssignmentStats;
  /** Recoverable faults of page-request DMA (`dma`): no fault record, a page request instead. */
  recoverableFaults: number;
  /** The page request queue. */
  prq: VtdPrqStats;
}

// Config-cache payload words.
const P_KIND = 0; // PGTT (legacy second stage = SecondStage, pass-through = PassThrough)
const P_SS_ROOT = 1;
const P_SS_CFG = 2;
const P_FS_ROOT = 3;
const P_FS_CFG = 4;
const P_FLAGS = 5; // CONFIG_FLAG bits | FPD << 16
const P_PASID = 6; // the PASID that tags first-stage IOTLB entries (request PASID or RID_PASID)
const FPD_BIT = 1 << 16;

const CFG_FAULT = -2;
const CFG_ABORTED = -3;
/** Requests without PASID in the config cache's key space. */
const NO_PASID = -1;
/** Scratch capacity of one doorbell's op list; a longer queue slice runs in several segments. */
const OPS_PER_SEGMENT = 4096;
/** A wait descriptor to complete after its barrier. */
interface PendingWait {
  sw: boolean;
  irq: boolean;
  addr: number;
  data: number;
}

/** An emulated VT-d unit. */
export class VtdIommu {
  /** The register block. */
  readonly regs: VtdRegisters;
  /** Interrupts toward the VMM (fault events, invalidation completion, page requests). */
  readonly interrupts$: Observable<VtdInterrupt>;
  /** Barriers (wait descriptors) that completed. */
  readonly completions$: Observable<Completion>;
  /** Guest RAM. */
  readonly ram: GuestRam;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
  readonly #backend: VtdBackend;
  readonly #ownsRam: boolean;
  readonly #iotlb: Iotlb;
  readonly #config: ConfigCache;
  readonly #pipeline: InvalidationPipeline;
  readonly #resolver: VtdResolver;
  readonly #prq: VtdPageRequestQueue;
  readonly #cfg = new VtdConfig();
  readonly #desc = new VtdDescriptor();
  readonly #ops = new OpList(OPS_PER_SEGMENT + 64);
  readonly #waits: PendingWait[] = [];
  readonly #payload = new Int32Array(CONFIG_PAYLOAD_WORDS);
  readonly #fault = new WalkFault();
  /** Guest DID → IOTLB tag, and SID → device-TLB slot for devices registered with ATS. */
  readonly #tags: UnitTags;
  readonly #devTlbErrors = new Map<number, 'timeout' | 'completion-error'>();
  readonly #haw: number;
  #assign: VtdAssignments | undefined;
  /** Guest RAM's VA in the VMM's address space, once mapped by `mapGuestRam`. */
  #ramVa: bigint | undefined;
  #seq = 0;
  #closed = false;
  #consuming = false;
  #rungAgain = false;
  /** The VT-d fault reason of the last translation that faulted (0 when the fault had none). */
  lastFaultReason = 0;
  readonly #stats = {
    descriptors: 0,
    waits: 0,
    doorbells: 0,
    queueErrors: 0,
    translations: 0,
    faults: 0,
    faultsRecorded: 0,
    iotlbHits: 0,
    iotlbMisses: 0,
    devTlbHits: 0,
    badStatusWrites: 0,
    recoverableFaults: 0,
  };

  /** Creates a unit over `backend` (see `Iommufd.vtdCreate`, which supplies it). */
  constructor(backend: VtdBackend, opts: VtdIommuOptions = {}) {
    this.#backend = backend;
    this.#ownsRam = opts.ram === undefined;
    this.ram = opts.ram ?? new GuestRam(backend.memory.phys, backend.memory.frames, opts.guestRamBytes ?? 64 * 2 ** 20);
    this.guest = this.ram.guestPhys();
    this.regs = new VtdRegisters(opts, {
      doorbell: () => this.#consume(),
      rootTableSet: (root) => {
        this.#resolver.rootTable = Number(root.address);
        this.#resolver.ttm = root.ttm;
        this.#dropEverything();
        this.#assign?.resync();
      },
      translationEnable: () => {
        this.#dropEverything();
        this.#assign?.resync();
      },
      registerInvalidation: () => this.#dropEverything(),
    });
    this.interrupts$ = this.regs.interrupts$;
    this.#prq = new VtdPageRequestQueue(this.regs, this.guest.i32, this.ram.bytes);
    const o = this.regs.options;
    this.#haw = o.addressWidth;
    this.#resolver = new VtdResolver(new PhysQwordReader(this.guest.i32), vtdResolverCaps(o));
    const iotlb = backend.iotlb ?? new Iotlb(64, 1);
    this.#iotlb = iotlb;
    this.#config = new ConfigCache(opts.configEntries ?? 1024, iotlb.shards);
    const atc = backend.atc !== undefined && backend.atc.shards === iotlb.shards ? backend.atc : undefined;
    this.#pipeline = new InvalidationPipeline(iotlb, { threads: opts.threads ?? 0, config: this.#config, atc });
    this.completions$ = this.#pipeline.completions$.asObservable();
    this.#tags = new UnitTags(backend.tables, iotlb, backend.atc);
  }

  // ---- the VMM's side ------------------------------------------------------------------------

  /** An MMIO read of the register block (size 4 or 8; see VtdRegisters). */
  mmioRead(offset: number, size: 4 | 8): number | bigint {
    return this.regs.mmioRead(offset, size);
  }

  /** An MMIO write; an IQT write rings the doorbell and consumes the queue before it returns. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void {
    if (this.#closed) throw new IommufdError('EBADF', 'this VT-d unit was closed');
    this.regs.mmioWrite(offset, value, size);
  }

  /**
   * Fault injection for device-TLB invalidations (ATS completions are not modelled as real PCIe
   * transactions): the next device-TLB descriptor for `sid` times out (ITE: the queue halts after
   * it, and the waits behind it are not completed until the guest clears FSTS.ITE), or completes
   * with an error (ICE: recorded, and the queue goes on).
   */
  injectDevTlbError(sid: number, kind: 'timeout' | 'completion-error'): void {
    this.#devTlbErrors.set(sid, kind);
  }

  /** Declares a PCIe device with ATS at `sid`: its translations are cached in its device-TLB. */
  addAtsDevice(sid: number): void {
    this.#tags.addAts(sid);
  }

  /**
   * Maps guest RAM into the VMM's address space and then at IOVA (= GPA) 0 of `ioasId`, so that a
   * nest-parent HWPT on that IOAS is the VM's guest-physical space for assigned devices. Once.
   */
  mapGuestRam(ioasId: number): void {
    const { host, mm } = this.#backend;
    this.#ramVa = mapGuestRam(host, mm, this.ram, ioasId, this.#ramVa);
  }

  /**
   * Assigns host device `devId` (bound in this unit's iommufd) to the guest as RID `sid`, with
   * `parentHwptId` (a VT-d nest parent over the IOAS that {@link mapGuestRam} filled) as the VM's
   * second stage. From then on the device's host attachment follows the guest's configuration, and
   * the guest's PASID-based IOTLB invalidations reach its nested HWPTs (see assign.ts). DMA of
   * the device goes through iommufd (`fd.dmaRead(devId, …)`), translated by the host IOMMU.
   * Needs caching mode (EOPNOTSUPP otherwise), as QEMU requires it for assigned devices.
   */
  assignDevice(sid: number, devId: number, parentHwptId: number): void {
    if (this.#closed) throw new IommufdError('EBADF', 'this VT-d unit was closed');
    const host = this.#backend.host;
    if (host === undefined) throw new IommufdError('EOPNOTSUPP', 'this unit has no iommufd host');
    // As QEMU: without caching mode the guest does not report not-present to present changes,
    // so the host could never learn of its configuration.
    if (!this.regs.options.cachingMode)
      throw new IommufdError('EOPNOTSUPP', 'device assignment needs caching mode (CAP.CM = 1)');
    this.#assign ??= new VtdAssignments(host, this.#resolver, () => this.regs.translationEnabled);
    this.#assign.assign(sid, devId, parentHwptId);
  }

  /** Undoes {@link assignDevice}: the device is detached on the host and its nested HWPTs destroyed. */
  unassignDevice(sid: number): void {
    this.#assign?.unassign(sid);
  }

  /** The last host error of the assignment path (counted in `stats().assigned.errors`). */
  get lastAssignError(): string | undefined {
    return this.#assign?.lastError;
  }

  /** The unit's counters. */
  stats(): VtdStats {
    return {
      ...this.#stats,
      configHits: this.#config.hits,
      configMisses: this.#config.misses,
      config: this.#config.counters(),
      assigned: this.#assign?.stats() ?? VtdAssignments.emptyStats(),
      prq: this.#prq.stats(),
    };
  }

  /** Returns guest RAM (if the unit allocated it) and its tags at once, and stops the pipeline. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    // Devices waiting on a page request group fail (EBADF): nobody will answer them.
    this.#prq.abortAll();
    // Resources go back synchronously (the queue is consumed synchronously, so nothing is in
    // flight); only the pipeline's workers, if any, stop asynchronously.
    this.#assign?.close();
    if (this.#ramVa !== undefined) this.#backend.mm?.munmap(this.#ramVa, BigInt(this.ram.bytes));
    this.#tags.release();
    if (this.#ownsRam) this.ram.release();
    this.#backend.memory.reclaimer.reclaim();
    return this.#pipeline.close();
  }

  // ---- the invalidation queue ----------------------------------------------------------------

  /**
   * The doorbell. A VMM's interrupt handler may ring again from inside it (a completion
   * interrupt is delivered synchronously): that doorbell is served when this one is done, never
   * nested inside it.
   */
  #consume(): void {
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

  #consumeOnce(): void {
    const regs = this.regs;
    if (this.#closed || regs.queueErrorPending || !regs.queueEnabled) return;
    this.#stats.doorbells++;
    const wide = regs.descriptorWidth === 256;
    const bytes = wide ? 32 : 16;
    const entries = regs.queueSizeEntries;
    const base = Number(regs.queueBase);
    const tail = regs.queueTail / bytes;
    const mamv = regs.options.mamv;
    const mem = this.guest.i32;
    let head = regs.queueHead / bytes;
    const ops = this.#ops;
    ops.count = 0;
    this.#waits.length = 0;
    while (head !== tail) {
      const addr = base + head * bytes;
      let status: number;
      if (addr + bytes > this.ram.bytes) {
        status = -1; // the fetch aborts (IQEI 2, descriptor fetch error)
      } else {
        status = decodeDescriptor(mem, addr / 4, wide, mamv, this.#desc);
      }
      if (status !== DescStatus.Ok) {
        // What came before the bad descriptor takes effect; IQH stays on it.
        this.#runSegment();
        regs.setQueueHead(head * bytes);
        regs.reportQueueError(status < 0 ? IQEI.FetchError : iqeiOf(status as DescStatus));
        this.#stats.queueErrors++;
        return;
      }
      this.#stats.descriptors++;
      const t = this.#desc.type;
      if ((t === DescType.DeviceTlb || t === DescType.PasidDeviceTlb) && this.#devTlbErrors.size > 0) {
        const sid = this.#desc.f[Field.sid]!;
        const err = this.#devTlbErrors.get(sid);
        if (err !== undefined) {
          this.#devTlbErrors.delete(sid);
          this.#decodeOne(); // the invalidation itself still happens in the model's caches
          this.#runSegment();
          head = (head + 1) % entries;
          if (err === 'timeout') {
            // ITE: fetching stops after the timed-out descriptor until the guest clears ITE.
            regs.setQueueHead(head * bytes);
            regs.reportInvTimeout(sid);
            return;
          }
          regs.reportInvCompletionError(sid);
          continue;
        }
      }
      this.#decodeOne();
      head = (head + 1) % entries;
      if (ops.count >= OPS_PER_SEGMENT) this.#runSegment();
    }
    this.#runSegment();
    regs.setQueueHead(head * bytes);
  }

  /** Turns the decoded descriptor into ops (and, for a wait, a barrier and its completion). */
  #decodeOne(): void {
    const d = this.#desc;
    const f = d.f;
    const ops = this.#ops;
    const seq = ++this.#seq >>> 0;
    if (d.type === DescType.Wait) {
      ops.push(Op.Barrier, seq);
      const lo = f[Field.statusAddrLo]!;
      const hi = f[Field.statusAddrHi]!;
      this.#waits.push({
        sw: f[Field.sw] !== 0,
        irq: f[Field.if] !== 0,
        addr: hi * 2 ** 32 + lo,
        data: f[Field.statusData]!,
      });
      return;
    }
    if (d.type === DescType.PageGroupResponse) {
      // It completes the group whose device waits (a promise: the retry runs after this doorbell).
      this.#prq.respond(f[Field.rid]!, f[Field.pp] !== 0 ? f[Field.pasid]! : NO_PASID, f[Field.prgi]!, f[Field.rc]!);
      return;
    }
    if (this.#assign?.active === true) this.#forwardToHost(d);
    if (d.type === DescType.Iotlb && f[Field.g] === GRAN.Global) {
      // Global: every tag of this unit (not the other guests' tags that share the IOTLB). A unit
      // may have thousands of DIDs: run what is decoded so far whenever the list fills up.
      for (const tag of this.#tags.tags()) {
        if (ops.count >= OPS_PER_SEGMENT) this.#runSegment();
        ops.push(Op.IotlbTag, seq, tag);
      }
      return;
    }
    descriptorToOps(d, this.#tags.tagMap, seq, ops);
  }

  /**
   * The assigned devices' side of a descriptor: configuration invalidations re-read their
   * configuration, PASID-based IOTLB invalidations (and global IOTLB ones) reach their nested HWPTs.
   */
  #forwardToHost(d: VtdDescriptor): void {
    const a = this.#assign!;
    const f = d.f;
    switch (d.type) {
      case DescType.ContextCache:
        a.resync();
        break;
      case DescType.PasidCache:
        a.resync(f[Field.g] === PC_GRAN.PasidSelective ? f[Field.pasid] : undefined);
        break;
      case DescType.PasidIotlb:
        a.forward(
          f[Field.did]!,
          f[Field.pasid]!,
          f[Field.addr]!,
          f[Field.g] === PIOTLB_GRAN.Pages ? 2 ** f[Field.am]! : 0,
          f[Field.ih] !== 0,
        );
        break;
      case DescType.Iotlb:
        if (f[Field.g] === GRAN.Global) a.forwardAll();
        break;
    }
  }

  /** Runs the ops decoded so far, then completes their waits in order. */
  #runSegment(): void {
    const ops = this.#ops;
    if (ops.count > 0) this.#pipeline.submitSync(ops);
    ops.count = 0;
    for (const w of this.#waits) {
      if (w.sw) {
        // A status address outside guest RAM: the write aborts (QEMU logs it); the wait still completes.
        if (w.addr + 4 <= this.ram.bytes && w.addr % 4 === 0) this.guest.i32[w.addr / 4] = w.data | 0;
        else this.#stats.badStatusWrites++;
      }
      this.#stats.waits++;
      this.regs.completeWait(w.irq);
    }
    this.#waits.length = 0;
  }

  /** SRTP, TE changes and register-based invalidations: drop every cached entry of this unit. */
  #dropEverything(): void {
    this.#config.flushAll();
    this.#tags.flushAll();
  }

  // ---- translation ---------------------------------------------------------------------------

  /**
   * Fetches (or finds cached) the configuration of a request into the payload scratch: returns
   * its DID, or CFG_FAULT (the reason and whether to record it are in `#cfg`), or CFG_ABORTED.
   */
  #fetchConfig(sid: number, pasid: number, access: number): number {
    const p = this.#payload;
    const key = pasid < 0 ? NO_SSID : pasid;
    const cache = this.#config;
    const hit = cache.lookup(sid, key, p);
    if (hit >= 0) return hit;
    const s0 = cache.fillSeq(sid);
    const c0 = cache.fillClock();
    const out = this.#cfg;
    const r = this.#resolver.resolve(sid, pasid, access, RequestKind.Untranslated, out);
    if (r === VTD_ABORTED) return CFG_ABORTED;
    if (r !== VTD_RESOLVED) return CFG_FAULT;
    const sm = out.scalable ? CFG.SCALABLE : 0;
    p[P_KIND] = out.type;
    p[P_SS_ROOT] = payloadRoot(out.ssptr);
    p[P_SS_CFG] = out.ssLevels > 0 ? packWalkConfig(4 - out.ssLevels, out.ssWidth, this.#haw, sm) : 0;
    p[P_FS_ROOT] = payloadRoot(out.fsptr);
    // First-stage walks set A and D as the hardware does; WPE = 0 lets supervisor writes ignore R/W.
    const fsFlags = sm | CFG.SET_AD | ((out.flags & CONFIG_FLAG.WPE) === 0 ? CFG.WP_OFF : 0);
    p[P_FS_CFG] = out.fsLevels > 0 ? packWalkConfig(4 - out.fsLevels, out.fsWidth, this.#haw, fsFlags) : 0;
    p[P_FLAGS] = out.flags | (out.fpd ? FPD_BIT : 0);
    p[P_PASID] = out.pasid;
    cache.fill(sid, key, out.did, p, s0, c0, 999);
    return out.did;
  }

  /**
   * Translates a DMA request: the host physical address of `iova` for `access` (Access bits),
   * or a negative TranslateFault. A fault is recorded in the fault recording registers as the
   * unit would (unless FPD suppresses it); `lastFaultReason` has its VT-d reason code.
   */
  translate(req: VtdRequest, iova: number, access: number): number {
    return this.#translate(req, iova, access, false);
  }

  /**
   * {@link translate} for a device with PRI: a not-present or permission fault of the walk, for a
   * device whose scalable-mode context entry has PRE, is recoverable. It records nothing, drops
   * the page's IOTLB and device-TLB entries (the implicit invalidation that precedes a page
   * request, reference §3.5) and returns TranslateFault.Pending; the caller raises the request.
   */
  translateForPageRequest(req: VtdRequest, iova: number, access: number): number {
    return this.#translate(req, iova, access, true);
  }

  #translate(req: VtdRequest, iova: number, access: number, pri: boolean): number {
    this.#stats.translations++;
    const sid = req.sid;
    const pasid = req.pasid ?? NO_PASID;
    if (!this.regs.translationEnabled) {
      // Remapping off: DMA addresses are guest-physical.
      const pa = this.ram.gpaToPa(iova);
      return pa >= 0 ? pa : this.#faulted(req, iova, access, 0, TranslateFault.WalkAbort, false);
    }
    // The device's TLB first (ATS), tagged (device, PASID).
    const atc = this.#backend.atc;
    const atsSlot = this.#tags.atsSlot(sid);
    const want = cacheAccess(access);
    let atag = 0;
    let a0 = 0;
    let ac0 = 0;
    if (atsSlot !== undefined) {
      atag = Iotlb.tagWord(atsSlot, pasid < 0 ? 0 : pasid);
      a0 = atc!.fillSeq(atag, iova);
      ac0 = atc!.fillClock();
      const hit = atc!.lookup(atag, iova, want);
      if (hit >= 0) {
        this.#stats.devTlbHits++;
        return hit;
      }
    }
    const did = this.#fetchConfig(sid, pasid, access);
    if (did === CFG_ABORTED) return this.#faulted(req, iova, access, 0, TranslateFault.NoDomain, false);
    if (did === CFG_FAULT)
      return this.#faulted(req, iova, access, this.#cfg.fault, TranslateFault.NoDomain, this.#cfg.record);
    const p = this.#payload;
    const kind = p[P_KIND]!;
    const tlb = this.#iotlb;
    const tag = this.#tags.tagFor(did);
    // Second-stage entries are shared by every PASID of the DID; first-stage and nested entries
    // are tagged with their PASID.
    const tw =
      tag < 0 ? -1 : Iotlb.tagWord(tag, kind === PGTT.FirstStage || kind === PGTT.Nested ? p[P_PASID]! & 0xfffff : 0);
    let s0 = 0;
    let c0 = 0;
    if (tag >= 0) {
      const hit = tlb.lookup(tw, iova, want);
      if (hit >= 0) {
        this.#stats.iotlbHits++;
        if (atsSlot !== undefined && (p[P_FLAGS]! & CONFIG_FLAG.DEV_TLB) !== 0)
          atc!.fill(atag, iova, hit, tlb.lastShift, want, a0, ac0, 999, tlb.unitShiftOf(tw));
        return hit;
      }
      this.#stats.iotlbMisses++;
      s0 = tlb.fillSeq(tw, iova);
      c0 = tlb.fillClock();
    }
    const f = this.#fault;
    const mem = this.guest.i32;
    let gpa: number;
    switch (kind) {
      case PGTT.SecondStage:
        gpa = vtdSecondStageWalk(mem, p[P_SS_ROOT]! >>> 0, p[P_SS_CFG]!, iova, access, f);
        break;
      case PGTT.FirstStage:
        gpa = x86FirstStageWalk(mem, p[P_FS_ROOT]! >>> 0, p[P_FS_CFG]!, iova, access, f);
        break;
      case PGTT.Nested:
        gpa = x86NestedWalk(mem, p[P_FS_ROOT]! >>> 0, p[P_FS_CFG]!, p[P_SS_ROOT]! >>> 0, p[P_SS_CFG]!, iova, access, f);
        break;
      case PGTT.PassThrough:
        gpa = iova;
        f.leafShift = f.unitShift = 12;
        break;
      default:
        gpa = TranslateFault.NoDomain;
    }
    if (gpa < 0) {
      const code = f.words[4]!;
      if (
        pri &&
        (p[P_FLAGS]! & CONFIG_FLAG.PRE) !== 0 &&
        (gpa === TranslateFault.NotMapped || gpa === TranslateFault.Permission)
      ) {
        this.#stats.recoverableFaults++;
        this.lastFaultReason = code;
        const page = iova - (iova % 4096);
        if (tag >= 0) tlb.invalidateRange(tw, page, 4096);
        if (atsSlot !== undefined) atc!.invalidateRange(atag, page, 4096);
        return TranslateFault.Pending;
      }
      const fpd = (p[P_FLAGS]! & FPD_BIT) !== 0;
      return this.#faulted(req, iova, access, code, gpa, !(fpd && isQualifiedFault(code)));
    }
    const pa = this.ram.gpaToPa(gpa);
    if (pa < 0) return this.#faulted(req, iova, access, 0, TranslateFault.WalkAbort, false);
    if (tag >= 0) tlb.fill(tw, iova, pa, f.leafShift, want, s0, c0, 999, f.unitShift);
    if (atsSlot !== undefined && (p[P_FLAGS]! & CONFIG_FLAG.DEV_TLB) !== 0)
      atc!.fill(atag, iova, pa, f.leafShift, want, a0, ac0, 999, f.unitShift);
    return pa;
  }

  #faulted(req: VtdRequest, iova: number, access: number, reason: number, code: number, record: boolean): number {
    this.#stats.faults++;
    this.lastFaultReason = reason;
    if (record && reason !== 0) {
      const outcome = this.regs.recordFault({
        sid: req.sid,
        ...(req.pasid !== undefined && req.pasid >= 0 ? { pasid: req.pasid } : {}),
        address: iova - (iova % 4096),
        reason,
        type: (access & Access.Write) !== 0 ? 'write' : 'read',
        exec: (access & Access.Exec) !== 0,
        priv: (access & Access.Priv) !== 0,
      });
      if (outcome === 'recorded') this.#stats.faultsRecorded++;
    }
    return code;
  }

  /** DMA read by a device: `length` bytes at `iova`. A fault throws EFAULT (and is recorded). */
  dmaRead(req: VtdRequest, iova: number, length: number): Uint8Array {
    return dmaRead(
      this.#backend.memory.phys,
      (at, access) => this.translate(req, at, access),
      iova,
      length,
      (at) => this.#dmaFault(req, at),
    );
  }

  /** DMA write by a device. A fault throws EFAULT (and is recorded); earlier pages were written. */
  dmaWrite(req: VtdRequest, iova: number, bytes: Uint8Array): void {
    dmaWrite(
      this.#backend.memory.phys,
      (at, access) => this.translate(req, at, access),
      iova,
      bytes,
      (at) => this.#dmaFault(req, at),
    );
  }

  /**
   * DMA by a device with PRI (ATS page requests), asynchronously: each page is translated; the
   * pages that fault recoverably (see {@link translateForPageRequest}) go out as one page request
   * group, the last with LPIG, and the transfer waits for its page group response: Success
   * retries, Invalid Request or Response Failure fail the DMA (EFAULT), as does a fault that is
   * not recoverable (recorded as `dmaRead` would). Nothing is transferred until every page
   * translates. Resolves with the bytes read, or the bytes written.
   */
  dma(req: VtdRequest, transfer: VtdDmaTransfer): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new IommufdError('EBADF', 'this VT-d unit was closed'));
    return priDma(
      {
        phys: this.#backend.memory.phys,
        translate: (at, access) => this.#translate(req, at, access, true),
        raise: (pages, access) => this.#prq.raise(req.sid, req.pasid ?? NO_PASID, pages, access),
        fault: (at) => this.#dmaFault(req, at),
        closed: () => this.#closed,
      },
      transfer,
    );
  }

  #dmaFault(req: VtdRequest, at: number): IommufdError {
    return new IommufdError(
      'EFAULT',
      `DMA from SID 0x${req.sid.toString(16)} at 0x${at.toString(16)} faulted (VT-d reason 0x${this.lastFaultReason.toString(16)})`,
    );
  }
}
