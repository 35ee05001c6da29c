/**
 * A model of Linux 6.1's intel-iommu driver (drivers/iommu/intel/) as a guest kernel runs it
 * against an emulated VT-d unit: it talks to the unit only through MMIO and guest memory, builds
 * root, context and PASID tables and second-stage page tables in guest RAM from its own page
 * allocator, and invalidates through the queue as Linux does (reference/viommu-queues.md §2,
 * §4.2; the sequences match traces/vtd-nocm-lazy.clean.log).
 *
 * - strict policy: every unmap is followed by a page-selective IOTLB invalidation (domain-selective
 *   when the mask exceeds CAP.MAMV or PSI is absent), a device-TLB invalidation per ATS device,
 *   each as its own submission with its wait (6.1 batches nothing), before page-table pages are
 *   freed.
 * - lazy policy: unmapped ranges and their freed table pages wait in a flush queue of 256 entries
 *   (the iova flush queue); a full queue, or `flushLazy()` (the 10 ms timer), drains it with one
 *   domain-selective IOTLB invalidation (and a whole device-TLB one per ATS device when CM = 0).
 * - caching mode (CAP.CM = 1): not-present to present changes are invalidated too (context
 *   entries, PASID entries, and every map), and lazy is refused as Linux refuses it ("IOMMU
 *   batching disallowed due to virtualization").
 * - first level: in scalable mode with ECAP.FLTS, DMA domains use first-stage (x86 IA-32e) tables
 *   as Linux's `first_level_by_default` chooses, with a first-stage RID_PASID entry, and IOTLB
 *   invalidations become PASID-based ones (`qi_flush_piotlb`); one deviation: a mask above
 *   CAP.MAMV, which Linux would send as it is (and the unit reject with IQE), falls back to the
 *   PASID-selective form.
 * - page requests (ECAP.PRS): `enablePageRequests` sets up the page request queue, devices
 *   attached with `pri` get PRE in their context entry, and each complete page request group is
 *   demand-paged: the handler picks a guest page, the driver maps it in the device's domain and
 *   answers with a page group response (prq.ts).
 */
import type { Observable, Subscription } from 'rxjs';
import { drainFlushQueues, pendingFlushes } from '../flush-queue.js';
import { FrameAllocator } from '../../memory/index.js';
import { RadixPageTable, vtdSecondStageCodec, x86FirstStageCodec } from '../../pgtable/index.js';
import { IommufdError } from '../../util/errors.js';
import { DescType } from '../../vendor/vtd/descriptors.js';
import { CAP, ECAP, FRCD_BYTES, FRCD_W2, FRCD_W3, FSTS, GCMD, GSTS, TTM, VTD_REG } from '../../vendor/vtd/regs-defs.js';
import {
  CONTEXT_TT,
  ContextEntry,
  decodeSmRootEntry,
  encodeContextEntry,
  encodeRootEntry,
  encodeSmContextEntry,
  encodeSmRootEntry,
  decodeRootEntry,
  ptrFromWords,
  RootEntry,
  SmContextEntry,
  SmRootEntry,
} from '../../vendor/vtd/structures.js';
import { encodePasidDirEntry, encodePasidEntry, FLPM, PasidEntry, PGTT } from '../../vendor/vtd/structures-pasid.js';
import { DRIVER_ERRORS } from './errors.js';
import {
  pageGroupResponse,
  contextCacheDevice,
  contextCacheGlobal,
  DEV_TLB_ALL_MASK,
  deviceTlb,
  iotlbDomain,
  iotlbGlobal,
  iotlbPages,
  PC_GRAN,
  pasidCache,
  pasidIotlbAll,
  pasidIotlbPages,
  psiMask,
  type Drain,
  type QueuedDescriptor,
} from './invalidations.js';
import { InvalidationQueue, type QueueStats, type VtdUnitPort } from './queue.js';
import {
  GuestPageRequestQueue,
  PRQ_ORDER,
  type VtdPageRequest,
  type VtdPageRequestGroup,
  type VtdPrqHandlerStats,
  zeroPrqStats,
} from './prq.js';
import { PRG_RESPONSE } from '../../vendor/vtd/page-request.js';

/** Options of the driver model. */
export interface VtdGuestDriverOptions {
  /**
   * Root-table format: scalable-mode root, context and PASID tables (RID_PASID entry with a
   * second-stage PGTT), or legacy root and context entries. Default: scalable when the unit
   * advertises ECAP.SMTS (CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON), else legacy.
   */
  mode?: 'legacy' | 'scalable';
  /** DMA invalidation policy (iommu.strict=1 / 0); default strict. Caching mode forces strict. */
  policy?: 'strict' | 'lazy';
  /**
   * IQA.QS: the queue is 2^QS pages. Default: Linux's 256 entries (QS 1 with 256-bit
   * descriptors, which the driver uses whenever ECAP.SMTS is set, else QS 0).
   */
  queueBits?: number;
  /** Lazy policy: flush-queue entries before a drain (IOVA_FQ_SIZE); default 256. */
  flushQueueSize?: number;
  /** Reads of GSTS or of a status slot before the unit is declared dead (EIO); default 1000. */
  pollLimit?: number;
  /**
   * Scalable mode: DMA domains use first-stage tables. Default: Linux 6.1's
   * `first_level_by_default`, i.e. when the unit has ECAP.FLTS (and if it has only FLTS).
   */
  firstLevel?: boolean;
}

/** Options of an attach. */
export interface VtdAttachOptions {
  /** Domain id; devices attached with the same id share the domain and its page table. */
  did: number;
  /** The device has ATS: its translations are cached in a device TLB (used only with ECAP.DT). */
  ats?: boolean;
  /** The device has PRI: PRE in its context entry (scalable mode, page requests enabled). */
  pri?: boolean;
}

/**
 * The demand-paging policy of page requests: the guest-physical page to map at `request.address`
 * (read and write), or undefined to answer the group Invalid Request. The default takes a fresh
 * zeroed page from the driver's allocator, as an anonymous fault would.
 */
export type VtdPageFaultHandler = (request: VtdPageRequest) => number | undefined;

/** Options of {@link VtdGuestDriver.enablePageRequests}. */
export interface VtdPageRequestOptions {
  /** The demand-paging policy; default: a fresh zeroed page. */
  handler?: VtdPageFaultHandler;
  /** PQA.PQS: the queue is 2^order pages of 128 descriptors; default Linux's PRQ_ORDER (4). */
  order?: number;
  /** The unit's interrupts: the handler runs on each page request event (else call `handlePageRequests`). */
  interrupts?: Observable<{ readonly kind: string }>;
}

/** What probe() read from CAP and ECAP. */
export interface VtdGuestCaps {
  /** CAP.CM. */
  readonly cachingMode: boolean;
  /** CAP.PSI. */
  readonly pageSelective: boolean;
  /** CAP.MAMV. */
  readonly mamv: number;
  /** CAP.SAGAW bits. */
  readonly sagaw: number;
  /** CAP.MGAW + 1: the widest input address. */
  readonly mgaw: number;
  /** The AGAW the driver builds tables with (2 = 48-bit 4-level, …); Linux's `iommu->agaw`. */
  readonly agaw: number;
  /** Domain-id bits (CAP.ND). */
  readonly didBits: number;
  /** CAP.SLLPS: second-stage large pages (bit 0 = 2 MiB, bit 1 = 1 GiB). */
  readonly sllps: number;
  /** Fault recording registers and their offset (CAP.NFR + 1, CAP.FRO · 16). */
  readonly faultRecords: number;
  readonly faultRecordOffset: number;
  /** ECAP.DT. */
  readonly deviceTlb: boolean;
  /** ECAP.SMTS. */
  readonly scalable: boolean;
  /** ECAP.FLTS. */
  readonly firstStage: boolean;
  /** ECAP.PRS. */
  readonly pageRequests: boolean;
}

/** A fault the driver read (and cleared) from the fault recording registers (`dmar_fault`). */
export interface VtdFaultRecord {
  readonly sid: number;
  /** The faulting page address. */
  readonly address: number;
  /** The VT-d fault reason. */
  readonly reason: number;
  /** A write request (FRCD.T1 = 0), else a read. */
  readonly write: boolean;
  /** The request's PASID, when it had one. */
  readonly pasid?: number;
}

/** Counters of the driver: the queue's, and invalidations by kind. */
export interface VtdGuestStats extends QueueStats {
  /** Submissions (each is one IQT write and one wait). */
  submissions: number;
  contextGlobal: number;
  contextDevice: number;
  pasidCache: number;
  pasidIotlb: number;
  iotlbGlobal: number;
  iotlbDomain: number;
  iotlbPage: number;
  devTlb: number;
  /** Lazy policy: unmaps deferred to the flush queue, and drains of it. */
  deferredUnmaps: number;
  flushQueueDrains: number;
  /** Page group responses submitted. */
  pageResponses: number;
  /** The page request handler's counters (zero until page requests are enabled). */
  prq: VtdPrqHandlerStats;
}

/** An unmapped range waiting for the lazy flush, with the table pages it freed. */
interface FlushQueueEntry {
  readonly iova: number;
  readonly length: number;
  readonly frames: readonly number[];
}

/** A DMA domain: its table (second stage, or first stage) and the devices attached to it. */
interface Domain {
  readonly did: number;
  readonly table: RadixPageTable;
  /** The table is first-stage (`domain_use_first_level`). */
  readonly firstLevel: boolean;
  /** IOVAs are below this. */
  readonly limit: number;
  /** Attached SIDs. */
  readonly devices: Set<number>;
  readonly flushQueue: FlushQueueEntry[];
}

/** An attached device. */
interface Device {
  readonly sid: number;
  readonly domain: Domain;
  /** ATS enabled (the device was attached with `ats` and the unit has ECAP.DT). */
  readonly ats: boolean;
  /** PRI enabled: PRE in the context entry. */
  readonly pri: boolean;
}

/** PDTS of Linux's order-0 PASID directory: 2^(2+7) = 512 entries, one page (`context_get_sm_pds`). */
const PASID_DIR_PDTS = 2;
/** Linux `PASID_RID2PASID`. */
const RID_PASID = 0;
const DEFAULTS = { flushQueueSize: 256, pollLimit: 1000 } as const;

/** A guest's intel-iommu driver for one VT-d unit. */
export class VtdGuestDriver {
  /** The guest's page allocator (over the unit's guest RAM); GPA 0 is kept out of use. */
  readonly frames: FrameAllocator;
  readonly #unit: VtdUnitPort;
  readonly #i32: Int32Array;
  readonly #opts: Required<Omit<VtdGuestDriverOptions, 'mode' | 'queueBits' | 'firstLevel'>> &
    Pick<VtdGuestDriverOptions, 'mode' | 'queueBits' | 'firstLevel'>;
  readonly #domains = new Map<number, Domain>();
  readonly #devices = new Map<number, Device>();
  readonly #scratch = new Int32Array(16);
  /** PASID directory by DID. */
  readonly #pasidDirs = new Map<number, number>();
  #caps: VtdGuestCaps | undefined;
  #queue: InvalidationQueue | undefined;
  #scalable = false;
  #firstLevel = false;
  #drain: Drain = { dr: 0, dw: 0 };
  #gcmd = 0;
  #root = 0;
  /** Table pages freed while an unmap runs: they are released only after the flush. */
  #collecting: number[] | undefined;
  #prq: GuestPageRequestQueue | undefined;
  readonly #zeroedPage: VtdPageFaultHandler = () => {
    const gpa = this.frames.alloc() * 4096;
    this.#unit.guest.u8.fill(0, gpa, gpa + 4096);
    return gpa;
  };
  #prqHandler: VtdPageFaultHandler = this.#zeroedPage;
  #prqSubscription: Subscription | undefined;
  readonly #counts = {
    submissions: 0,
    contextGlobal: 0,
    contextDevice: 0,
    pasidCache: 0,
    pasidIotlb: 0,
    iotlbGlobal: 0,
    iotlbDomain: 0,
    iotlbPage: 0,
    devTlb: 0,
    deferredUnmaps: 0,
    flushQueueDrains: 0,
    pageResponses: 0,
  };

  /** A driver for `unit`; nothing touches the unit until {@link probe}. */
  constructor(unit: VtdUnitPort, opts: VtdGuestDriverOptions = {}) {
    const qb = opts.queueBits;
    if (qb !== undefined && !(Number.isInteger(qb) && qb >= 0 && qb <= 7))
      throw DRIVER_ERRORS.option('queueBits', qb, 'an integer in [0, 7]');
    const fq = opts.flushQueueSize ?? DEFAULTS.flushQueueSize;
    if (!Number.isInteger(fq) || fq < 1) throw DRIVER_ERRORS.option('flushQueueSize', fq, 'a positive integer');
    const pl = opts.pollLimit ?? DEFAULTS.pollLimit;
    if (!Number.isInteger(pl) || pl < 1) throw DRIVER_ERRORS.option('pollLimit', pl, 'a positive integer');
    this.#unit = unit;
    this.#i32 = unit.guest.i32;
    this.#opts = { ...opts, policy: opts.policy ?? 'strict', flushQueueSize: fq, pollLimit: pl };
    this.frames = new FrameAllocator(unit.guest);
    this.frames.alloc(); // GPA 0 stays unused, as a kernel's page 0
    this.frames.retire = (frame) => {
      if (this.#collecting !== undefined) this.#collecting.push(frame);
      else this.frames.release(frame);
    };
  }

  /** The capabilities read by probe (ENODEV before it). */
  get caps(): VtdGuestCaps {
    if (this.#caps === undefined) throw DRIVER_ERRORS.notProbed();
    return this.#caps;
  }

  /** The invalidation queue (ENODEV before probe). */
  get queue(): InvalidationQueue {
    if (this.#queue === undefined) throw DRIVER_ERRORS.notProbed();
    return this.#queue;
  }

  /** Whether the driver uses scalable-mode tables (known after probe). */
  get scalable(): boolean {
    return this.#scalable;
  }

  /** Whether DMA domains use first-stage tables (known after probe). */
  get firstLevel(): boolean {
    return this.#firstLevel;
  }

  /** The policy in force: the requested one, except that caching mode forces strict. */
  get policy(): 'strict' | 'lazy' {
    return this.#caps?.cachingMode === true ? 'strict' : this.#opts.policy;
  }

  /** Counters. */
  stats(): VtdGuestStats {
    const q = this.#queue?.stats ?? {
      descriptors: 0,
      waits: 0,
      doorbells: 0,
      pollSpins: 0,
      queueErrors: 0,
      restarts: 0,
    };
    return { ...q, ...this.#counts, prq: { ...(this.#prq?.stats ?? zeroPrqStats()) } };
  }

  // ---- probe (init_dmars) --------------------------------------------------------------------

  /**
   * Brings the unit up as `init_dmars` does: reads CAP/ECAP, clears stale faults, enables queued
   * invalidation (IQT = 0, IQA, GCMD.QIE, poll GSTS.QIES), allocates the root table and latches
   * it (RTADDR, GCMD.SRTP, poll GSTS.RTPS), invalidates the context cache, the PASID cache (in
   * scalable mode) and the IOTLB globally, each with its wait, then enables translation (TE).
   */
  probe(): void {
    if (this.#caps !== undefined) throw DRIVER_ERRORS.probed();
    const cap = BigInt(this.#unit.mmioRead(VTD_REG.CAP, 8));
    const ecap = BigInt(this.#unit.mmioRead(VTD_REG.ECAP, 8));
    if ((ecap & ECAP.QI) === 0n) throw DRIVER_ERRORS.noQi();
    const sagaw = bits(cap, CAP.SagawShift, 5);
    const mgaw = bits(cap, CAP.MgawShift, 6) + 1;
    // __iommu_calculate_agaw: the widest supported AGAW up to 57 bits.
    let agaw = 3;
    while (agaw >= 1 && ((sagaw >>> agaw) & 1) === 0) agaw--;
    if (agaw < 1) throw DRIVER_ERRORS.noSagaw(sagaw);
    const smts = (ecap & ECAP.SMTS) !== 0n;
    const mode = this.#opts.mode ?? (smts ? 'scalable' : 'legacy');
    if (mode === 'scalable' && (!smts || (ecap & (ECAP.SLTS | ECAP.FLTS)) === 0n)) throw DRIVER_ERRORS.noScalable();
    const scalable = mode === 'scalable';
    const flts = (ecap & ECAP.FLTS) !== 0n;
    // first_level_by_default: the only stage the unit has, or the first when it has both.
    const fl = this.#opts.firstLevel ?? (scalable && flts);
    if (fl && !(scalable && flts)) throw DRIVER_ERRORS.noFirstLevel();
    if (!fl && scalable && (ecap & ECAP.SLTS) === 0n) throw DRIVER_ERRORS.noScalable();
    this.#scalable = scalable;
    this.#caps = {
      cachingMode: (cap & CAP.CM) !== 0n,
      pageSelective: (cap & CAP.PSI) !== 0n,
      mamv: bits(cap, CAP.MamvShift, 6),
      sagaw,
      mgaw,
      agaw,
      didBits: 4 + 2 * bits(cap, CAP.NdShift, 3),
      sllps: bits(cap, CAP.SllpsShift, 4),
      faultRecords: bits(cap, CAP.NfrShift, 8) + 1,
      faultRecordOffset: bits(cap, CAP.FroShift, 10) * 16,
      deviceTlb: (ecap & ECAP.DT) !== 0n,
      scalable: smts,
      firstStage: flts,
      pageRequests: (ecap & ECAP.PRS) !== 0n,
    };
    this.#firstLevel = fl;
    this.#drain = { dr: (cap & CAP.DRD) !== 0n ? 1 : 0, dw: (cap & CAP.DWD) !== 0n ? 1 : 0 };

    this.readFaults(); // dmar_fault(-1, iommu): forget what firmware left behind

    // dmar_enable_qi: 256-bit descriptors whenever the unit has scalable mode (6.1 sets DW and
    // QS = 1 on ECAP.SMTS, whatever mode is used).
    const wide = smts;
    const queue = new InvalidationQueue(this.#unit, this.frames, {
      qs: this.#opts.queueBits ?? (wide ? 1 : 0),
      wide,
      pollLimit: this.#opts.pollLimit,
    });
    this.#queue = queue;
    this.#unit.mmioWrite(VTD_REG.IQT, 0, 4);
    this.#unit.mmioWrite(VTD_REG.IQA, queue.iqa, 8);
    this.#gcmd |= GCMD.QIE;
    this.#command(this.#gcmd, GSTS.QIES, 'QIES');

    // iommu_alloc_root_entry + iommu_set_root_entry.
    this.#root = this.frames.alloc() * 4096;
    const ttm = this.#scalable ? TTM.Scalable << 10 : 0;
    this.#unit.mmioWrite(VTD_REG.RTADDR, BigInt(this.#root) | BigInt(ttm), 8);
    this.#command(this.#gcmd | GCMD.SRTP, GSTS.RTPS, 'RTPS');
    this.#submit([contextCacheGlobal()]);
    if (this.#scalable) this.#submit([pasidCache(0, PC_GRAN.Global, 0)]);
    this.#submit([iotlbGlobal(this.#drain)]);

    // iommu_enable_translation.
    this.#gcmd |= GCMD.TE;
    this.#command(this.#gcmd, GSTS.TES, 'TES');
  }

  /** Writes GCMD and polls GSTS until `status` is set (IOMMU_WAIT_OP). */
  #command(value: number, status: number, name: string): void {
    this.#unit.mmioWrite(VTD_REG.GCMD, value >>> 0, 4);
    const limit = this.#opts.pollLimit;
    for (let i = 0; i < limit; i++) {
      if ((this.#read32(VTD_REG.GSTS) & status) !== 0) return;
    }
    throw DRIVER_ERRORS.handshake(name, limit);
  }

  // ---- attach (domain_add_dev_info, domain_context_mapping_one) ------------------------------

  /**
   * Attaches the device `sid` to domain `did` (created with a second-stage table of the unit's
   * AGAW if new): in scalable mode the PASID directory, table and RID_PASID entry first (PGTT
   * second stage), then the context entry (legacy: TT 0, or TT 1 for an ATS device on a unit
   * with ECAP.DT; scalable: DTE for ATS). Those are not-present to present changes, which need
   * no invalidation unless the unit is in caching mode; then Linux invalidates the PASID cache
   * and PASID-IOTLB for the PASID entry, and the context cache (device-selective, DID 0) and the
   * IOTLB (domain-selective) for the context entry. Attaching again to the same domain is a no-op.
   */
  attach(sid: number, opts: VtdAttachOptions): void {
    const caps = this.caps;
    checkSid(sid);
    const did = opts.did;
    const maxDid = 2 ** caps.didBits - 1;
    if (!Number.isInteger(did) || did < 1 || did > maxDid) throw DRIVER_ERRORS.did(did, maxDid);
    const existing = this.#devices.get(sid);
    if (existing !== undefined) {
      if (existing.domain.did === did) return;
      throw DRIVER_ERRORS.attached(sid, existing.domain.did);
    }
    const domain = this.#domains.get(did) ?? this.#createDomain(did);
    const ats = opts.ats === true && caps.deviceTlb;
    const pri = opts.pri === true;
    if (pri && this.#prq === undefined) throw DRIVER_ERRORS.prqOff();
    const entry = this.#contextEntryAddress(sid);
    if (this.#scalable) {
      this.#setupPasidEntry(domain);
      const dir = this.#pasidDirectory(domain);
      const ce = Object.assign(new SmContextEntry(), {
        present: true,
        pdts: PASID_DIR_PDTS,
        pasidDirPtr: dir,
        ridPasid: RID_PASID,
        dte: ats,
        pre: pri,
      });
      this.#publish(entry, encodeSmContextEntry(ce, this.#scratch), 8);
    } else {
      const ce = Object.assign(new ContextEntry(), {
        present: true,
        tt: ats ? CONTEXT_TT.DevIotlb : CONTEXT_TT.MultiLevel,
        slptptr: domain.table.rootPa,
        aw: caps.agaw,
        did,
      });
      this.#publish(entry, encodeContextEntry(ce, this.#scratch), 4);
    }
    if (caps.cachingMode) {
      this.#submit([contextCacheDevice(0, sid)]);
      this.#submit([iotlbDomain(did, this.#drain)]);
    }
    this.#devices.set(sid, { sid, domain, ats, pri });
    domain.devices.add(sid);
  }

  #createDomain(did: number): Domain {
    const caps = this.caps;
    const firstLevel = this.#firstLevel;
    // A first-level domain is 4-level (48-bit) here, as Linux without CAP.FL5LP builds it.
    const width = firstLevel ? 48 : ((30 + 9 * caps.agaw) as 39 | 48 | 57);
    const codec = firstLevel ? x86FirstStageCodec(48) : vtdSecondStageCodec(width);
    const table = new RadixPageTable(this.#unit.guest, this.frames, codec);
    const domain: Domain = {
      did,
      table,
      firstLevel,
      limit: 2 ** Math.min(width, caps.mgaw),
      devices: new Set(),
      flushQueue: [],
    };
    this.#domains.set(did, domain);
    return domain;
  }

  /** The context entry of `sid`, allocating its context table (and root entry) on first use. */
  #contextEntryAddress(sid: number): number {
    const bus = sid >>> 8;
    const devfn = sid & 0xff;
    const rootAt = this.#root + bus * 16;
    const w = this.#scratch;
    if (!this.#scalable) {
      const re = decodeRootEntry(this.#i32, rootAt / 4, new RootEntry());
      if (!re.present) {
        Object.assign(re, { present: true, ctp: this.frames.alloc() * 4096 });
        this.#publish(rootAt, encodeRootEntry(re, w), 4);
      }
      return re.ctp + devfn * 16;
    }
    const re = decodeSmRootEntry(this.#i32, rootAt / 4, new SmRootEntry());
    const upper = devfn >= 128;
    if (!(upper ? re.up : re.lp)) {
      const ctp = this.frames.alloc() * 4096;
      if (upper) Object.assign(re, { up: true, uctp: ctp });
      else Object.assign(re, { lp: true, lctp: ctp });
      this.#publish(rootAt, encodeSmRootEntry(re, w), 4);
    }
    return (upper ? re.uctp : re.lctp) + (devfn & 127) * 32;
  }

  /** The domain's PASID directory (one per domain here; Linux has one per device, alike). */
  #pasidDirectory(domain: Domain): number {
    let dir = this.#pasidDirs.get(domain.did);
    if (dir === undefined) {
      dir = this.frames.alloc() * 4096;
      const table = this.frames.alloc() * 4096;
      this.#publish(dir, encodePasidDirEntry({ present: true, fpd: false, pasidTablePtr: table }, this.#scratch), 2);
      this.#pasidDirs.set(domain.did, dir);
    }
    return dir;
  }

  /**
   * `intel_pasid_setup_second_level` (or `_first_level`: PGTT first stage, FLPM 4-level, no SRE
   * for RID_PASID) for RID_PASID, with `pasid_flush_caches`.
   */
  #setupPasidEntry(domain: Domain): void {
    const dir = this.#pasidDirectory(domain);
    const table = ptrFromWords(this.#i32[dir / 4]!, this.#i32[dir / 4 + 1]!);
    const at = table + RID_PASID * 64;
    if ((this.#i32[at / 4]! & 1) !== 0) return; // already set up for another device of the domain
    const pe = Object.assign(
      new PasidEntry(),
      domain.firstLevel
        ? { present: true, pgtt: PGTT.FirstStage, flpm: FLPM.Level4, flptptr: domain.table.rootPa, did: domain.did }
        : { present: true, aw: this.caps.agaw, pgtt: PGTT.SecondStage, slptptr: domain.table.rootPa, did: domain.did },
    );
    this.#publish(at, encodePasidEntry(pe, this.#scratch), 16);
    if (this.caps.cachingMode) {
      this.#submit([pasidCache(domain.did, PC_GRAN.PasidSelective, RID_PASID)]);
      this.#submit([pasidIotlbAll(domain.did, RID_PASID)]);
    }
  }

  /** Copies `n` encoded words to guest memory at `gpa`, word 0 (which holds P) last. */
  #publish(gpa: number, words: Int32Array, n: number): void {
    const at = gpa / 4;
    for (let i = 1; i < n; i++) this.#i32[at + i] = words[i]!;
    this.#i32[at] = words[0]!;
  }

  // ---- map / unmap (intel_iommu_map, intel_iommu_unmap, iommu_dma_unmap) ---------------------

  /**
   * Maps [iova, iova+length) of the device's domain to guest-physical `gpa` with `prot` (1 read,
   * 2 write, 3 both), with large pages where CAP.SLLPS and alignment allow. In caching mode the
   * new range is then invalidated page-selectively (`__mapping_notify_one`). EBUSY when part of
   * the range still waits in the lazy flush queue, EEXIST when part of it is mapped.
   */
  map(sid: number, iova: number, gpa: number, length: number, prot: number): void {
    const domain = this.#domainOf(sid);
    checkRange(domain, iova, length);
    if (!Number.isInteger(gpa) || gpa < 0 || gpa % 4096 !== 0) throw DRIVER_ERRORS.gpa(gpa);
    if (prot !== 1 && prot !== 2 && prot !== 3) throw DRIVER_ERRORS.prot(prot);
    for (const e of domain.flushQueue) {
      if (iova < e.iova + e.length && e.iova < iova + length) throw DRIVER_ERRORS.pendingFree(Math.max(iova, e.iova));
    }
    try {
      domain.table.map(iova, length, (off) => gpa + off, prot, this.caps.sllps !== 0);
    } catch (e) {
      if (e instanceof IommufdError) throw e;
      throw DRIVER_ERRORS.mapped(iova);
    }
    if (this.caps.cachingMode) this.#flushIotlbPsi(domain, iova / 4096, length / 4096, false, true);
  }

  /**
   * Unmaps [iova, iova+length) of the device's domain; returns the bytes that were mapped.
   * Strict: the IOTLB (and device TLBs) are invalidated before this returns, then the freed
   * table pages are released; the invalidation hint is set when no table page was freed. Lazy:
   * the range and its freed table pages join the flush queue (a full queue is drained first).
   */
  unmap(sid: number, iova: number, length: number): number {
    const domain = this.#domainOf(sid);
    checkRange(domain, iova, length);
    const freed: number[] = [];
    this.#collecting = freed;
    let bytes: number;
    try {
      bytes = domain.table.unmap(iova, length);
    } finally {
      this.#collecting = undefined;
    }
    if (bytes === 0 && freed.length === 0) return 0;
    if (this.policy === 'strict') {
      this.#flushIotlbPsi(domain, iova / 4096, length / 4096, freed.length === 0, false);
      this.#release(freed);
    } else {
      // queue_iova: a full ring is flushed and freed before the new entry goes in.
      if (domain.flushQueue.length >= this.#opts.flushQueueSize) this.#drainFlushQueue(domain);
      domain.flushQueue.push({ iova, length, frames: freed });
      this.#counts.deferredUnmaps++;
    }
    return bytes;
  }

  /** Entries waiting in the lazy flush queues. */
  get pendingFlushes(): number {
    return pendingFlushes(this.#domains.values());
  }

  /**
   * Drains every non-empty flush queue, as the flush-queue timer does (`fq_flush_timeout`): one
   * domain-selective IOTLB invalidation per domain, whole device-TLB invalidations (CM = 0), then
   * the queued table pages are freed. Returns the entries drained.
   */
  flushLazy(): number {
    return drainFlushQueues(this.#domains.values(), (d) => this.#drainFlushQueue(d));
  }

  /** `fq_flush_iotlb` (`intel_flush_iotlb_all`) then `fq_ring_free`. */
  #drainFlushQueue(domain: Domain): void {
    this.#submit([domain.firstLevel ? pasidIotlbAll(domain.did, RID_PASID) : iotlbDomain(domain.did, this.#drain)]);
    if (!this.caps.cachingMode) this.#flushDevIotlb(domain, 0, DEV_TLB_ALL_MASK);
    for (const e of domain.flushQueue) this.#release(e.frames);
    domain.flushQueue.length = 0;
    this.#counts.flushQueueDrains++;
  }

  /** `iommu_flush_iotlb_psi`. */
  #flushIotlbPsi(domain: Domain, pfn: number, pages: number, ih: boolean, map: boolean): void {
    const caps = this.caps;
    const mask = psiMask(pfn, pages);
    const addr = pfn * 4096;
    if (domain.firstLevel) {
      this.#submit([
        mask > caps.mamv
          ? pasidIotlbAll(domain.did, RID_PASID)
          : pasidIotlbPages(domain.did, RID_PASID, addr, mask, ih),
      ]);
    } else if (!caps.pageSelective || mask > caps.mamv) this.#submit([iotlbDomain(domain.did, this.#drain)]);
    else this.#submit([iotlbPages(domain.did, addr, mask, ih, this.#drain)]);
    // In caching mode a map (not-present to present) needs no device-TLB invalidation.
    if (!caps.cachingMode || !map) this.#flushDevIotlb(domain, addr, mask);
  }

  /** `iommu_flush_dev_iotlb`: one submission per ATS device of the domain. */
  #flushDevIotlb(domain: Domain, addr: number, mask: number): void {
    for (const sid of domain.devices) {
      if (!this.#devices.get(sid)!.ats) continue;
      this.#submit([deviceTlb(sid, sid, 0, addr, mask)]);
    }
  }

  #release(frames: readonly number[]): void {
    for (const f of frames) this.frames.release(f);
  }

  #domainOf(sid: number): Domain {
    if (this.#caps === undefined) throw DRIVER_ERRORS.notProbed();
    checkSid(sid);
    const dev = this.#devices.get(sid);
    if (dev === undefined) throw DRIVER_ERRORS.notAttached(sid);
    return dev.domain;
  }

  /** One `qi_submit_sync`, counted by descriptor kind. */
  #submit(descs: readonly QueuedDescriptor[]): void {
    for (const d of descs) this.#count(d);
    this.#counts.submissions++;
    this.queue.submit(descs);
  }

  #count(d: QueuedDescriptor): void {
    const g = d.fields.g ?? 0;
    const c = this.#counts;
    switch (d.type) {
      case DescType.ContextCache:
        if (g === 1) c.contextGlobal++;
        else c.contextDevice++;
        break;
      case DescType.Iotlb:
        if (g === 1) c.iotlbGlobal++;
        else if (g === 2) c.iotlbDomain++;
        else c.iotlbPage++;
        break;
      case DescType.DeviceTlb:
        c.devTlb++;
        break;
      case DescType.PasidIotlb:
        c.pasidIotlb++;
        break;
      case DescType.PasidCache:
        c.pasidCache++;
        break;
    }
  }

  // ---- page requests (prq.c, the iopf layer) -------------------------------------------------

  /**
   * `intel_iommu_enable_prq` (Linux does it at probe when the unit has ECAP.PRS): the page request
   * queue, PQH/PQT/PQA, the event unmasked; with `interrupts`, the handler runs on each page
   * request event. Needs scalable mode and ECAP.PRS (EOPNOTSUPP); once (EBUSY).
   */
  enablePageRequests(opts: VtdPageRequestOptions = {}): void {
    const caps = this.caps;
    if (!this.#scalable || !caps.pageRequests) throw DRIVER_ERRORS.noPrs();
    if (this.#prq !== undefined) throw DRIVER_ERRORS.prqOn();
    const order = opts.order ?? PRQ_ORDER;
    if (!Number.isInteger(order) || order < 0 || order > 7)
      throw DRIVER_ERRORS.option('order', order, 'an integer in [0, 7]');
    if (opts.handler !== undefined) this.#prqHandler = opts.handler;
    const prq = new GuestPageRequestQueue(
      this.#unit,
      this.frames,
      {
        handleGroup: (g) => this.#demandPage(g),
        respond: (sid, pasid, prgi, code) => {
          this.#counts.pageResponses++;
          this.#submit([pageGroupResponse(sid, pasid, prgi, code)]);
        },
      },
      order,
    );
    this.#prq = prq;
    prq.enable();
    this.#prqSubscription = opts.interrupts?.subscribe((irq) => {
      if (irq.kind === 'page-request') prq.run();
    });
  }

  /** The guest's page request queue (ENODEV before {@link enablePageRequests}). */
  get pageRequestQueue(): GuestPageRequestQueue {
    if (this.#prq === undefined) throw DRIVER_ERRORS.prqOff();
    return this.#prq;
  }

  /** `prq_event_thread`, as on the interrupt or a poll: returns the descriptors read. */
  handlePageRequests(): number {
    return this.pageRequestQueue.run();
  }

  /**
   * A complete group of a device with PRI, as the SVA fault handler serves it: each page gets the
   * handler's guest page mapped read-write in the device's domain (a page already mapped counts
   * as served). A request without PASID or with RID_PASID targets the device's DMA domain; an
   * unknown requester, another PASID, a refusal of the handler or a failed map answer the group
   * Invalid Request.
   */
  #demandPage(group: VtdPageRequestGroup): number {
    const dev = this.#devices.get(group.sid);
    if (dev === undefined || !dev.pri || (group.pasid !== -1 && group.pasid !== RID_PASID))
      return PRG_RESPONSE.InvalidRequest;
    for (const req of group.pages) {
      const gpa = this.#prqHandler(req);
      if (gpa === undefined) return PRG_RESPONSE.InvalidRequest;
      try {
        this.map(group.sid, req.address, gpa, 4096, 3);
      } catch (e) {
        if (!(e instanceof IommufdError)) throw e;
        // The page the default policy took goes back; EEXIST: another group mapped it first.
        if (this.#prqHandler === this.#zeroedPage) this.frames.release(gpa / 4096);
        if (e.errno !== 'EEXIST') return PRG_RESPONSE.InvalidRequest;
      }
    }
    return PRG_RESPONSE.Success;
  }

  /** Stops page request handling: the queue registers are cleared and the interrupt unsubscribed. */
  disablePageRequests(): void {
    this.#prqSubscription?.unsubscribe();
    this.#prqSubscription = undefined;
    this.#prq?.disable();
    this.#prq = undefined;
  }

  // ---- faults (dmar_fault) -------------------------------------------------------------------

  /**
   * Reads and clears the primary fault records from FSTS.FRI on, as `dmar_fault` does, then
   * clears FSTS.PFO. Returns the records in the order read.
   */
  readFaults(): VtdFaultRecord[] {
    const caps = this.caps;
    const out: VtdFaultRecord[] = [];
    const fsts = this.#read32(VTD_REG.FSTS);
    if ((fsts & FSTS.PPF) !== 0) {
      let index = (fsts >>> FSTS.FriShift) & FSTS.FriMask;
      for (;;) {
        const base = caps.faultRecordOffset + index * FRCD_BYTES;
        const w3 = this.#read32(base + 12);
        if ((w3 & FRCD_W3.F) === 0) break;
        const w2 = this.#read32(base + 8);
        const address = Number(BigInt(this.#unit.mmioRead(base, 8)) & ~0xfffn);
        const pasid = (w2 & FRCD_W2.PP) !== 0 ? (w3 >>> FRCD_W3.PvShift) & FRCD_W3.PvMask : undefined;
        out.push({
          sid: w2 & FRCD_W2.SidMask,
          address,
          reason: w3 & FRCD_W3.FrMask,
          write: (w3 & FRCD_W3.T1) === 0,
          ...(pasid !== undefined ? { pasid } : {}),
        });
        this.#unit.mmioWrite(base + 12, FRCD_W3.F, 4);
        index = (index + 1) % caps.faultRecords;
      }
    }
    this.#unit.mmioWrite(VTD_REG.FSTS, FSTS.PFO | FSTS.PPF | FSTS.PRO, 4);
    return out;
  }

  #read32(offset: number): number {
    return Number(this.#unit.mmioRead(offset, 4));
  }
}

/** Bits [shift + n − 1 : shift] of a 64-bit register. */
function bits(reg: bigint, shift: bigint, n: number): number {
  return Number((reg >> shift) & ((1n << BigInt(n)) - 1n));
}

function checkSid(sid: number): void {
  if (!Number.isInteger(sid) || sid < 0 || sid > 0xffff) throw DRIVER_ERRORS.sid(sid);
}

function checkRange(domain: Domain, iova: number, length: number): void {
  if (
    !Number.isInteger(iova) ||
    !Number.isInteger(length) ||
    iova < 0 ||
    length <= 0 ||
    iova % 4096 !== 0 ||
    length % 4096 !== 0 ||
    iova + length > domain.limit
  )
    throw DRIVER_ERRORS.range(iova, length, domain.limit);
}
