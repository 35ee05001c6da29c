/**
 * A QEMU-style VT-d remapping unit: a model of the algorithms of QEMU 7.2's `intel-iommu` device
 * (hw/i386/intel_iommu.c; reference/viommu-queues.md §3.3, §3.4, §6.3). It is not QEMU: it is
 * the baseline that ioasid's own VT-d unit (vendor/vtd/iommu.ts) is measured against, in the
 * same harness, with the same guest and the same input.
 *
 * What is QEMU's: single-threaded, synchronous consumption of the whole invalidation queue on the
 * IQT write (vtd-queue.ts); a 1024-entry IOTLB hash table keyed by source id, flushed whole when
 * full, with a full-table scan per domain- or page-selective invalidation (vtd-iotlb.ts); the
 * context cache with its generation counter (vtd-context-cache.ts); translation in
 * `vtd_do_iommu_translate`'s order: in legacy mode the IOTLB first (by source id), then the
 * context entry (cached while its generation matches), pass-through uncached, then the walk and
 * an insert. Second stage and pass-through only, as QEMU 7.2: first-stage, nested, PASID and
 * page-request options are refused.
 *
 * Scalable mode: the context entry's RID_PASID tags the IOTLB entries, so the context comes
 * first; on an IOTLB miss the configuration is fetched again from guest memory, PASID entry
 * included (QEMU re-reads the PASID entry on every miss; the model re-reads the context entry
 * with it, a little more than QEMU does).
 *
 * What is the project's, so that the comparison measures the caching and invalidation and not
 * the plumbing: the register file (vendor/vtd/regs.ts), the descriptor decoder, the root,
 * context and PASID entry fetch (vendor/vtd/resolve.ts), the second-stage walker
 * (pgtable/x86/walk.ts) and fault recording.
 */
import type { GuestRam, PhysMemory } from '../memory/index.js';
import { Access, CFG, packWalkConfig, TranslateFault, vtdSecondStageWalk, WalkFault } from '../pgtable/index.js';
import { IommufdError } from '../util/errors.js';
import type { VtdRegisterInvalidation, VtdRootTable } from '../vendor/vtd/regs.js';
import { VtdRegisters, type VtdRegisterOptions } from '../vendor/vtd/regs.js';
import { isQualifiedFault } from '../vendor/vtd/resolve-faults.js';
import { PhysQwordReader } from '../vendor/vtd/resolve-reader.js';
import { RequestKind, VTD_ABORTED, VTD_RESOLVED, VtdConfig, VtdResolver } from '../vendor/vtd/resolve.js';
import { PGTT } from '../vendor/vtd/structures-pasid.js';
import type { QemuConfigCacheStats, QemuIotlbStats } from './counters.js';
import { baselineRam, type BaselineRamOptions } from './guest-memory.js';
import { VtdCachedContext, VtdContextCache } from './vtd-context-cache.js';
import { iotlbGfn, VtdIotlb, VtdIotlbEntry } from './vtd-iotlb.js';
import { QemuVtdQueue, type QemuQueueStats } from './vtd-queue.js';

/** Options of a QEMU-style VT-d unit: its capabilities and its guest RAM. */
export interface QemuVtdOptions extends VtdRegisterOptions, BaselineRamOptions {}

/** A device's DMA request. */
export interface QemuVtdRequest {
  /** Source id: bus << 8 | devfn. */
  sid: number;
  /** PASID, or -1 (default) for a request without PASID. */
  pasid?: number;
}

/** Counters of a QEMU-style VT-d unit. */
export interface QemuVtdStats {
  /** The invalidation queue's counters. */
  queue: QemuQueueStats;
  /** Translations requested, faults among them, and faults recorded in the FRCD registers. */
  translations: number;
  faults: number;
  faultsRecorded: number;
  iotlb: QemuIotlbStats;
  /** The context cache, and its generation now. */
  context: QemuConfigCacheStats & { gen: number };
}

/** Every message of the unit (one place, STYLE.md). */
const ERRORS = {
  closed: 'this QEMU-style VT-d unit was closed',
  unsupported: (name: string) => `${name}: the QEMU 7.2 model implements second-stage and pass-through only`,
} as const;

/** Options QEMU 7.2's model does not have, and the value that asks for them. */
const UNSUPPORTED: readonly (readonly [keyof VtdRegisterOptions, (v: unknown) => boolean])[] = [
  ['firstStage', (v) => v === true],
  ['nesting', (v) => v === true],
  ['pageRequests', (v) => v === true],
  ['pasidWidth', (v) => typeof v === 'number' && v > 0],
];

/** Returned by the configuration fetch when it faulted (the fault code is in `#fetchFault`). */
const NO_CONTEXT = undefined;

/** A QEMU-style VT-d unit (see the file comment). */
export class QemuVtdUnit {
  /** The register block. */
  readonly regs: VtdRegisters;
  /** Guest RAM. */
  readonly ram: GuestRam;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
  /** The VT-d fault reason of the last translation that faulted (0 when it had none). */
  lastFaultReason = 0;
  readonly #ownsRam: boolean;
  readonly #iotlb = new VtdIotlb();
  readonly #contexts = new VtdContextCache();
  readonly #queue: QemuVtdQueue;
  readonly #resolver: VtdResolver;
  readonly #haw: number;
  readonly #cfg = new VtdConfig();
  readonly #uncached = new VtdCachedContext(-1);
  readonly #fault = new WalkFault();
  #scalable = false;
  #fetchFault = 0;
  #closed = false;
  readonly #stats = { translations: 0, faults: 0, faultsRecorded: 0 };

  /** A unit with the capabilities of `opts` (QEMU's defaults); RangeError for what the model lacks. */
  constructor(opts: QemuVtdOptions = {}) {
    for (const [name, asks] of UNSUPPORTED) {
      if (asks(opts[name])) throw new RangeError(ERRORS.unsupported(name));
    }
    // The register model reads the capability options and ignores the rest.
    this.regs = new VtdRegisters(opts, {
      doorbell: () => this.#queue.consume(),
      rootTableSet: (root) => this.#latchRootTable(root),
      translationEnable: () => this.#resetCaches(),
      registerInvalidation: (req) => this.#registerInvalidation(req),
    });
    const r = baselineRam(opts);
    this.ram = r.ram;
    this.guest = r.guest;
    this.#ownsRam = r.owned;
    const o = this.regs.options;
    this.#haw = Math.min(52, Math.max(32, o.addressWidth));
    this.#resolver = new VtdResolver(new PhysQwordReader(this.guest.i32), {
      sagaw: o.addressWidth === 57 ? 0b1110 : o.addressWidth === 48 ? 0b0110 : 0b0010,
      mgaw: o.addressWidth,
      haw: this.#haw,
      smts: o.scalableMode,
      adms: false,
      dt: o.deviceTlb,
      pt: o.passThrough,
      pasid: false,
      prs: false,
      flts: false,
      slts: o.secondStage,
      nest: false,
      fl5lp: false,
    });
    this.#queue = new QemuVtdQueue(this.regs, this.guest.i32, this.#iotlb, this.#contexts);
  }

  /** An MMIO read of the register block (size 4 or 8; see VtdRegisters). */
  mmioRead(offset: number, size: 4 | 8): number | bigint {
    return this.regs.mmioRead(offset, size);
  }

  /** An MMIO write; an IQT write consumes the whole invalidation queue before it returns. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void {
    if (this.#closed) throw new IommufdError('EBADF', ERRORS.closed);
    this.regs.mmioWrite(offset, value, size);
  }

  /** The unit's counters. */
  stats(): QemuVtdStats {
    return {
      ...this.#stats,
      queue: this.#queue.stats(),
      iotlb: this.#iotlb.stats(),
      context: { ...this.#contexts.stats(), gen: this.#contexts.gen },
    };
  }

  /** Releases guest RAM (if the unit allocated it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.stop();
    if (this.#ownsRam) this.ram.release();
  }

  /**
   * Translates a DMA request (`vtd_do_iommu_translate`): the host physical address of `iova` for
   * `access` (Access bits), or a negative TranslateFault. A fault is recorded in the fault
   * recording registers unless FPD suppresses it; `lastFaultReason` has its reason code.
   */
  translate(req: QemuVtdRequest, iova: number, access: number): number {
    this.#stats.translations++;
    this.lastFaultReason = 0;
    if (!this.regs.translationEnabled) {
      const pa = this.ram.gpaToPa(iova);
      return pa >= 0 ? pa : this.#faulted(req, iova, access, 0, TranslateFault.WalkAbort, false);
    }
    const sid = req.sid;
    const pasid = req.pasid ?? -1;
    const iotlb = this.#iotlb;
    const legacy = !this.#scalable && pasid < 0;
    if (legacy) {
      const e = iotlb.lookup(sid, -1, iova);
      if (e !== undefined && this.#allows(e, access)) return this.#hit(e, req, iova, access);
    }
    let c = pasid < 0 ? this.#contexts.lookup(sid) : NO_CONTEXT;
    c ??= this.#fetch(req, pasid, iova, access);
    if (c === NO_CONTEXT) return this.#fetchFault;
    if (c.type === PGTT.PassThrough) {
      // Pass-through is not cached (QEMU switches the device to its no-IOMMU address space).
      const pa = this.ram.gpaToPa(iova);
      return pa >= 0 ? pa : this.#faulted(req, iova, access, 0, TranslateFault.WalkAbort, false);
    }
    if (!legacy) {
      const e = iotlb.lookup(sid, c.pasid, iova);
      if (e !== undefined && this.#allows(e, access)) return this.#hit(e, req, iova, access);
      c = this.#fetch(req, pasid, iova, access);
      if (c === NO_CONTEXT) return this.#fetchFault;
    }
    const f = this.#fault;
    const gpa = vtdSecondStageWalk(this.guest.i32, c.ssptr, c.ssCfg, iova, access, f);
    if (gpa < 0) {
      const code = f.words[4]!;
      return this.#faulted(req, iova, access, code, gpa, !(c.fpd && isQualifiedFault(code)));
    }
    const pa = this.ram.gpaToPa(gpa);
    if (pa < 0) return this.#faulted(req, iova, access, 0, TranslateFault.WalkAbort, false);
    const level = (f.leafShift - 12) / 9 + 1;
    const offset = iova % 2 ** f.leafShift;
    const perm = Access.Read | (f.s2Writable !== 0 ? Access.Write : 0);
    iotlb.insert(
      new VtdIotlbEntry(sid, legacy ? -1 : c.pasid, iotlbGfn(iova, level), level, c.did, gpa - offset, perm),
    );
    return pa;
  }

  /** Whether a cached entry grants `access`; one that does not is not used (the walk decides). */
  #allows(e: VtdIotlbEntry, access: number): boolean {
    return (access & Access.Write) === 0 || (e.perm & Access.Write) !== 0;
  }

  #hit(e: VtdIotlbEntry, req: QemuVtdRequest, iova: number, access: number): number {
    const pa = this.ram.gpaToPa(e.gpa + (iova % e.size));
    return pa >= 0 ? pa : this.#faulted(req, iova, access, 0, TranslateFault.WalkAbort, false);
  }

  /**
   * Fetches the configuration from guest memory (`vtd_dev_to_context_entry`, and the PASID entry
   * in scalable mode) into the device's context-cache entry (a request with PASID: into scratch,
   * uncached). On a fault, records it and returns {@link NO_CONTEXT} with the code in `#fetchFault`.
   */
  #fetch(req: QemuVtdRequest, pasid: number, iova: number, access: number): VtdCachedContext | undefined {
    const out = this.#cfg;
    const r = this.#resolver.resolve(req.sid, pasid, access, RequestKind.Untranslated, out);
    if (r === VTD_ABORTED) {
      this.#fetchFault = this.#faulted(req, iova, access, 0, TranslateFault.NoDomain, false);
      return NO_CONTEXT;
    }
    if (r !== VTD_RESOLVED || (out.type !== PGTT.SecondStage && out.type !== PGTT.PassThrough)) {
      this.#fetchFault = this.#faulted(req, iova, access, out.fault, TranslateFault.NoDomain, out.record);
      return NO_CONTEXT;
    }
    const c = pasid < 0 ? this.#contexts.fill(req.sid) : this.#uncached;
    c.type = out.type;
    c.did = out.did;
    c.pasid = out.pasid;
    c.ssptr = out.ssptr;
    c.ssCfg =
      out.ssLevels > 0 ? packWalkConfig(4 - out.ssLevels, out.ssWidth, this.#haw, out.scalable ? CFG.SCALABLE : 0) : 0;
    c.fpd = out.fpd;
    return c;
  }

  #faulted(req: QemuVtdRequest, iova: number, access: number, reason: number, code: number, record: boolean): number {
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

  /** SRTP: the new root table, and QEMU's `vtd_reset_caches`. */
  #latchRootTable(root: VtdRootTable): void {
    this.#resolver.rootTable = Number(root.address);
    this.#resolver.ttm = root.ttm;
    this.#scalable = root.mode === 'scalable';
    this.#resetCaches();
  }

  /** `vtd_reset_caches`: the context cache and the IOTLB. */
  #resetCaches(): void {
    this.#contexts.reset();
    this.#iotlb.reset();
  }

  /** Register-based invalidation (before QI is enabled): the same back ends as the queue's. */
  #registerInvalidation(req: VtdRegisterInvalidation): void {
    if (req.kind === 'context') {
      if (req.granularity === 'device') this.#contexts.invalidateDevice(req.sid, req.functionMask);
      else this.#contexts.invalidateGlobal();
    } else if (req.granularity === 'global') this.#iotlb.invalidateAll();
    else if (req.granularity === 'domain') this.#iotlb.invalidateDomain(req.did);
    else this.#iotlb.invalidatePages(req.did, Number(req.address), req.addressMask);
  }
}
