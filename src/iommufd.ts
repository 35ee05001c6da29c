import type { CacheCounters, ShadowCounters } from './cache/index.js';
import { DmaEngine, type DmaEngineOptions } from './registry/dma-engine.js';
import { DEFAULT_MEMORY_BYTES, MemoryWindow } from './memory/index.js';
import type { PipelineMetrics } from './pipeline/index.js';
import { Access, FAULT_REASON_NAMES, MOCK_PAGE_SIZE, TranslateFault } from './pgtable/index.js';
import * as reg from './registry/index.js';
import type { FaultQueue } from './registry/fault.js';
import { encodeEvent, EVT_WORDS } from './vendor/smmuv3/records.js';
import type {
  ArmSmmuv3Command,
  ArmVste,
  SelftestInvalidation,
  SelftestViommuInvalidation,
  ViommuInfo,
  NestingMode,
  ViommuType,
  VtdS1Invalidation,
} from './registry/index.js';
import { NO_PASID, type DataPlaneHandles } from './translate/index.js';
import { argEnum, argFlags, argId, argInt, argObject, argOptBool, argOptU64, argRanges, argU64 } from './util/args.js';
import { IommufdError } from './util/errors.js';
import { VtdIommu, type VtdIommuOptions } from './vendor/vtd/iommu.js';
import { SmmuIommu, type SmmuIommuOptions } from './vendor/smmuv3/iommu.js';
import type { FaultInjector } from './util/fail-nth.js';

/** Options of {@link Iommufd.open}. */
export interface OpenOptions {
  /** Physical memory in bytes (a multiple of 4096; default 256 MiB, at most 4 GiB). */
  memoryBytes?: number;
  /** Whether the caller has CAP_SYS_RESOURCE (needed to set rlimit-mode). Default true. */
  privileged?: boolean;
  /**
   * A debugging aid: fill every frame that is freed with this 32-bit pattern, so that a walk that
   * reads a freed table sees recognisable garbage. Off by default.
   */
  poisonFreedFrames?: number;
  /**
   * The IOTLB that every translation goes through: `false` turns it off; otherwise its size in
   * entries (default 65536, 32 bytes each) and shards (default 8).
   */
  iotlb?: false | { entries?: number; shards?: number };
  /**
   * Software nesting (nest parents or vIOMMUs allocated with `nesting: 'software'`): the shadow's
   * size in 4 KiB pages (default 32768, 32 bytes each plus the reverse index), and the workers
   * that large asynchronous shadow batches run on (default 0: everything inline), and the
   * routed ops from which a batch of an `*InvalidateAsync` call runs on them rather than inline
   * (default 65536; see perf/RESULTS.md T1 for why the pool pays off only for huge batches).
   */
  shadow?: { entries?: number; threads?: number; inlineThreshold?: number };
}

/** IOTLB counters: the table's, and the hits and misses of this fd's own translations. */
export interface CacheStats extends CacheCounters {
  /** Translations served from the IOTLB. */
  hits: number;
  /** Translations that walked. */
  misses: number;
  /** Translations served from a device's ATC (devices with ATS). */
  atcHits: number;
  /** Software nesting: translations served from the shadow after an IOTLB miss, and shadow misses (nested walks). */
  shadowHits: number;
  shadowMisses: number;
  /** Hardware-nested VT-d walks resumed from the PDE cache at the stage-1 leaf table, and entries recorded. */
  pdeHits: number;
  pdeFills: number;
  /** The invalidation pipeline's totals (shadow syncs run inline and on the pool), without an IOTLB undefined. */
  pipeline: PipelineMetrics | undefined;
  /** The shadow's own counters (fills, syncs' rewrites, prefetches and drops, stage-2 drops, evictions). */
  shadow: ShadowCounters;
  /** Slots, and bytes per slot. */
  capacity: number;
  bytesPerEntry: number;
}

/** An inclusive IOVA range. */
export interface IovaRange {
  /** First IOVA. */
  start: bigint;
  /** Last IOVA (inclusive). */
  last: bigint;
}

/** Flags of {@link Iommufd.ioasMap} and {@link Iommufd.ioasCopy}. */
export interface MapFlags {
  /** Map at the given IOVA (IOMMU_IOAS_MAP_FIXED_IOVA). */
  fixedIova?: boolean;
  /** DMA may read (IOMMU_IOAS_MAP_READABLE). */
  readable?: boolean;
  /** DMA may write (IOMMU_IOAS_MAP_WRITEABLE). */
  writeable?: boolean;
}

/** Details of the last translation fault. */
export interface TranslateFaultInfo {
  /** The negative TranslateFault code. */
  code: number;
  /** The faulting IOVA. */
  iova: number;
  /** Page-table level where the walk stopped, in the Arm numbering for every format (3 = the 4 KiB level, 0 = PML4 / L0, -1 = PML5). */
  level: number;
  /** Why: 'no-domain', 'aperture', 'not-present', 'read-denied', 'write-denied'. */
  reason: string;
  /** The PASID, or -1 for a request without PASID. */
  pasid: number;
  /** The vendor's code: the SMMUv3 event number (0x10 F_TRANSLATION …) or the VT-d fault reason (0x5 …); 0 for mock. */
  vendorCode: number;
}

/** A DMA that faulted: EFAULT, with the translation fault's details. */
export class DmaFaultError extends IommufdError {
  /** The fault. */
  readonly fault: TranslateFaultInfo;
  constructor(fault: TranslateFaultInfo) {
    super('EFAULT', `DMA fault at IOVA 0x${fault.iova.toString(16)}: ${fault.reason} (level ${fault.level})`);
    this.fault = fault;
  }
}

/** The VMM's host memory, as seen through an open {@link Iommufd}. */
export interface HostMemory {
  /** Maps zeroed memory; returns a page-aligned host VA. */
  mmap(length: bigint): bigint;
  /** Unmaps [va, va+length). */
  munmap(va: bigint, length: bigint): void;
  /** Writes bytes at a host VA (EFAULT if unmapped). */
  write(va: bigint, bytes: Uint8Array): void;
  /** Reads bytes at a host VA (EFAULT if unmapped). */
  read(va: bigint, length: number): Uint8Array;
  /** How many pins hold the host page of `va` (1 while it is mapped into any domain). */
  pinCount(va: bigint): number;
  /**
   * Word access to the `length` bytes (whole pages) at the page-aligned `va`, resolved once and
   * allocation-free afterwards (see {@link MemoryWindow}); it pins those pages until closed.
   * EFAULT if any page is unmapped.
   */
  window(va: bigint, length: bigint): MemoryWindow;
}

/** The fault-injection control of an open {@link Iommufd} (iommufd_fail_nth). */
export interface FaultInjection {
  /** The nth fallible step from now fails (ENOMEM unless the step names another errno). */
  arm(nth: number): void;
  /** Cancels an armed failure. */
  disarm(): void;
  /** Whether the armed failure was consumed. */
  readonly fired: boolean;
}

const DEVICE_KINDS = ['mock', 'smmuv3', 'vtd'] as const;
const DATA_TYPES = ['none', 'selftest', 'vtd-s1', 'arm-smmuv3'] as const;
const VIOMMU_TYPES = ['arm-smmuv3', 'selftest'] as const;
const NESTING_MODES = ['hardware', 'software'] as const;
const MAX_IOVA = 2 ** 53 - 1;

/**
 * An open iommufd: the typed mirror of `/dev/iommu`'s uAPI. Control-plane calls are synchronous,
 * like ioctls, and throw {@link IommufdError} with the errno Linux returns for the same misuse.
 */
export class Iommufd {
  readonly #ctx: reg.IommufdCtx;
  readonly #units: (VtdIommu | SmmuIommu)[] = [];
  /** The register model of each vIOMMU that has one. */
  readonly #viommuUnits = new Map<number, SmmuIommu>();
  #closed = false;
  /** Device slot by device id (the data plane's name for a device). */
  readonly #slots: number[] = [];
  /** The VMM's host memory. */
  readonly memory: HostMemory;
  /** Fault injection. */
  readonly faultInjection: FaultInjection;

  private constructor(opts: OpenOptions) {
    this.#ctx = new reg.IommufdCtx({
      memoryBytes: opts.memoryBytes ?? DEFAULT_MEMORY_BYTES,
      privileged: opts.privileged ?? true,
      iotlbEntries: opts.iotlb === false ? 0 : (opts.iotlb?.entries ?? 65536),
      iotlbShards: opts.iotlb === false ? 1 : (opts.iotlb?.shards ?? 8),
      shadowEntries: opts.shadow?.entries,
      shadowThreads: opts.shadow?.threads,
      shadowInlineThreshold: opts.shadow?.inlineThreshold,
    });
    if (opts.poisonFreedFrames !== undefined) this.#ctx.memory.frames.poison = opts.poisonFreedFrames;
    const mm = this.#ctx.mm;
    const live = (): void => this.#live();
    this.memory = {
      mmap: (length) => this.#control(() => mm.mmap(length)),
      munmap: (va, length) => this.#control(() => mm.munmap(va, length)),
      write: (va, bytes) => (live(), mm.write(va, bytes)),
      read: (va, length) => (live(), mm.read(va, length)),
      pinCount: (va) => (live(), mm.pinCount(argU64('va', va))),
      window: (va, length) => {
        live();
        const start = argU64('va', va);
        const len = argU64('length', length);
        if (start % 4096n !== 0n || len === 0n || len > BigInt(this.#ctx.memory.phys.u8.length))
          throw new IommufdError('EINVAL', 'a window needs a page-aligned va and a length within physical memory');
        const frames = mm.pin(start, Number((len + 4095n) / 4096n));
        return new MemoryWindow(this.#ctx.memory.phys.i32, frames, (f) => mm.unpin(f));
      },
    };
    const faults: FaultInjector = this.#ctx.faults;
    this.faultInjection = {
      arm: (nth) => faults.arm(nth),
      disarm: () => faults.disarm(),
      get fired() {
        return faults.fired;
      },
    };
  }

  /** Opens a new iommufd with its own physical memory (synchronous). */
  static open(opts: OpenOptions = {}): Iommufd {
    const o = argObject('opts', opts)!;
    if (o['memoryBytes'] !== undefined) argInt('memoryBytes', o['memoryBytes'], 0, Number.MAX_SAFE_INTEGER);
    argOptBool('privileged', o['privileged']);
    if (o['iotlb'] !== undefined && o['iotlb'] !== false) {
      const t = argObject('iotlb', o['iotlb'])!;
      if (t['entries'] !== undefined) argInt('iotlb.entries', t['entries'], 8, 2 ** 24);
      if (t['shards'] !== undefined) argInt('iotlb.shards', t['shards'], 1, 256);
    }
    if (o['shadow'] !== undefined) {
      const t = argObject('shadow', o['shadow'])!;
      if (t['entries'] !== undefined) argInt('shadow.entries', t['entries'], 8, 2 ** 22);
      if (t['threads'] !== undefined) argInt('shadow.threads', t['threads'], 0, 16);
    }
    if (o['poisonFreedFrames'] !== undefined)
      argInt('poisonFreedFrames', o['poisonFreedFrames'], -(2 ** 31), 2 ** 32 - 1);
    return new Iommufd(opts);
  }

  /** Releases everything (emulated vIOMMUs included); later calls fail with EBADF. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    // Everything is released before this returns; only emulated units' workers stop later.
    const stopping = this.#units.splice(0).map((u) => u.close());
    this.#viommuUnits.clear();
    reg.destroyAll(this.#ctx);
    if (this.#ctx.pipeline !== undefined) stopping.push(this.#ctx.pipeline.close());
    return Promise.all(stopping).then(() => undefined);
  }

  /**
   * Runs a control-plane call: EBADF once closed, and afterwards the one place that reclaims
   * what the call retired (frames, descriptors), whichever path retired them and even if it
   * failed half-way (an unmap that removed some areas before ENOENT).
   */
  #control<T>(fn: () => T): T {
    this.#live();
    try {
      return fn();
    } finally {
      this.#ctx.memory.reclaimer.reclaim();
    }
  }

  #live(): void {
    if (this.#closed) throw new IommufdError('EBADF', 'the iommufd is closed');
  }

  // ---- objects ------------------------------------------------------------------------------

  /** IOMMU_IOAS_ALLOC: returns the new IOAS id. */
  ioasAlloc(): number {
    return this.#control(() => {
      return reg.ioasAlloc(this.#ctx);
    });
  }

  /** IOMMU_DESTROY. */
  destroy(id: number): void {
    return this.#control(() => {
      reg.destroy(this.#ctx, argId('id', id));
    });
  }

  /** IOMMU_IOAS_IOVA_RANGES. EMSGSIZE (an IovaRangesTooSmall with numIovas and ranges) when `capacity` is too small. */
  ioasIovaRanges(ioasId: number, capacity?: number): { ranges: IovaRange[]; alignment: bigint } {
    this.#live();
    const cap = capacity === undefined ? Number.MAX_SAFE_INTEGER : argInt('capacity', capacity, 0, 0xffff_ffff);
    return reg.ioasIovaRanges(this.#ctx, argId('ioasId', ioasId), cap);
  }

  /** IOMMU_IOAS_ALLOW_IOVAS: replaces the allowed list (an empty list clears it). */
  ioasAllowIovas(ioasId: number, ranges: IovaRange[]): void {
    return this.#control(() => {
      reg.ioasAllowIovas(this.#ctx, argId('ioasId', ioasId), argRanges('ranges', ranges));
    });
  }

  /** IOMMU_IOAS_MAP: returns the IOVA. Flags omitted: readable and writeable. */
  ioasMap(ioasId: number, a: { userVa: bigint; length: bigint; iova?: bigint; flags?: MapFlags }): bigint {
    return this.#control(() => {
      const o = argObject('args', a)!;
      return reg.ioasMap(this.#ctx, argId('ioasId', ioasId), {
        userVa: argU64('userVa', o['userVa']),
        length: argU64('length', o['length']),
        iova: argOptU64('iova', o['iova']),
        flags: mapFlags(o['flags']),
      });
    });
  }

  /** IOMMU_IOAS_COPY: maps the pages behind [srcIova, srcIova+length) of one IOAS into another; returns the IOVA. */
  ioasCopy(a: {
    dstIoasId: number;
    srcIoasId: number;
    srcIova: bigint;
    length: bigint;
    dstIova?: bigint;
    flags?: MapFlags;
  }): bigint {
    return this.#control(() => {
      const o = argObject('args', a)!;
      return reg.ioasCopy(this.#ctx, {
        dstIoasId: argId('dstIoasId', o['dstIoasId']),
        srcIoasId: argId('srcIoasId', o['srcIoasId']),
        srcIova: argU64('srcIova', o['srcIova']),
        length: argU64('length', o['length']),
        dstIova: argOptU64('dstIova', o['dstIova']),
        flags: mapFlags(o['flags']),
      });
    });
  }

  /** IOMMU_IOAS_UNMAP: returns the bytes unmapped; (0n, 2n ** 64n - 1n) unmaps everything. */
  ioasUnmap(ioasId: number, iova: bigint, length: bigint): bigint {
    return this.#control(() => {
      return reg.ioasUnmap(this.#ctx, argId('ioasId', ioasId), argU64('iova', iova), argU64('length', length));
    });
  }

  /** IOMMU_OPTION: 'huge-pages' on an IOAS, or the global 'rlimit-mode'. Returns the value. */
  option(a: { option: 'huge-pages' | 'rlimit-mode'; op: 'get' | 'set'; objectId?: number; val?: bigint }): bigint {
    return this.#control(() => {
      const o = argObject('args', a)!;
      const op = argEnum('op', o['op'], ['get', 'set'] as const, 'EOPNOTSUPP');
      const val = argOptU64('val', o['val']);
      if (op === 'set' && val === undefined) throw new IommufdError('EINVAL', 'val is required for set');
      return reg.option(this.#ctx, {
        option: argEnum('option', o['option'], ['huge-pages', 'rlimit-mode'] as const, 'EOPNOTSUPP'),
        op,
        objectId: o['objectId'] === undefined ? 0 : argId('objectId', o['objectId']),
        val: val ?? 0n,
      });
    });
  }

  /** Binds a device behind a mock, smmuv3 or vtd IOMMU; returns the device id. */
  deviceBind(a: {
    iommu: 'mock' | 'smmuv3' | 'vtd';
    sid?: number;
    pasidBits?: number;
    ats?: boolean;
    pri?: boolean;
    /** Dirty-tracking capability (default: true for mock devices, as the kernel's mock; false otherwise). */
    dirtyTracking?: boolean;
    pasidExec?: boolean;
    pasidPriv?: boolean;
    reservedRegions?: IovaRange[];
  }): number {
    return this.#control(() => {
      const o = argObject('args', a)!;
      const regions =
        o['reservedRegions'] === undefined ? undefined : argRanges('reservedRegions', o['reservedRegions']);
      regions?.forEach((r, i) => {
        if (r.start > r.last) throw new IommufdError('EINVAL', `reservedRegions[${i}] has start > last`);
      });
      const id = reg.deviceBind(this.#ctx, {
        iommu: argEnum('iommu', o['iommu'], DEVICE_KINDS),
        sid: o['sid'] === undefined ? undefined : argInt('sid', o['sid'], 0, 0xffff_ffff),
        pasidBits:
          o['pasidBits'] === undefined ? undefined : argInt('pasidBits', o['pasidBits'], 0, reg.MAX_PASID_BITS),
        ats: argOptBool('ats', o['ats']),
        pri: argOptBool('pri', o['pri']),
        dirtyTracking: argOptBool('dirtyTracking', o['dirtyTracking']),
        pasidExec: argOptBool('pasidExec', o['pasidExec']),
        pasidPriv: argOptBool('pasidPriv', o['pasidPriv']),
        reservedRegions: regions,
      });
      this.#slots[id] = this.#ctx.objects.get(id, 'device').slot;
      return id;
    });
  }

  /** Unbinds a device: detaches its RID and PASIDs, then destroys it. */
  deviceUnbind(devId: number): void {
    return this.#control(() => {
      reg.deviceUnbind(this.#ctx, argId('devId', devId));
      this.#slots[devId] = -1;
    });
  }

  /**
   * IOMMU_FAULT_QUEUE_ALLOC: a FAULT object and its queue handle (the kernel's
   * `[iommufd-pgfault]` fd). Allocate a HWPT with `faultId` to make it IOPF-capable: a
   * translation fault there becomes a page request in this queue (`translate` returns
   * TranslateFault.Pending). The handle reads whole groups (`read`, `readBytes`: 40-byte records),
   * answers them (`respond`, `writeBytes`), and streams them on `faults$`. Close the handle and
   * destroy the id to release it; groups still pending are then answered INVALID.
   */
  faultQueueAlloc(): { faultId: number; queue: FaultQueue } {
    return this.#control(() => {
      const queue = reg.faultQueueAlloc(this.#ctx);
      return { faultId: queue.id, queue };
    });
  }

  /**
   * IOMMU_TEST_OP_TRIGGER_IOPF (the selftest's): device `devId` reports a page request for
   * `addr` with `perm` (PGFAULT_PERM bits) in group `grpid`, on its RID or `pasid`. `last`
   * (default true) ends the group; earlier faults of the group wait for it. ENODEV when the
   * domain attached there has no FAULT object.
   */
  triggerIopf(a: { devId: number; pasid?: number; grpid: number; perm: number; addr: bigint; last?: boolean }): void {
    return this.#control(() => {
      const o = argObject('args', a)!;
      const dev = this.#ctx.objects.get(argId('devId', o['devId']), 'device');
      const pasid = o['pasid'] === undefined ? NO_PASID : argInt('pasid', o['pasid'], 0, 0xfffff);
      reg.reportPageFault(dev, pasid, {
        grpid: argInt('grpid', o['grpid'], 0, 0x1ff),
        perm: argInt('perm', o['perm'], 0, 15),
        addr: argU64('addr', o['addr']),
        last: o['last'] === undefined ? true : argOptBool('last', o['last']) === true,
      });
    });
  }

  /**
   * IOMMU_HWPT_ALLOC: returns the HWPT id. `ptId` an IOAS: a paging HWPT. `ptId` a nest-parent
   * paging HWPT: a nested HWPT with the driver's data type (`selftest` on the mock, `vtd-s1` on
   * VT-d with `VtdS1Data`). `ptId` a vIOMMU: a nested HWPT of the vIOMMU's driver, `arm-smmuv3`
   * with `ArmSmmuv3Data` (the guest's vSTE; bad contents EIO) or `selftest`.
   */
  hwptAlloc(a: {
    devId: number;
    ptId: number;
    flags?: { nestParent?: boolean; dirtyTracking?: boolean; pasid?: boolean };
    faultId?: number;
    dataType?: 'none' | 'selftest' | 'vtd-s1' | 'arm-smmuv3';
    data?: unknown;
    nesting?: NestingMode;
  }): number {
    return this.#control(() => {
      const o = argObject('args', a)!;
      return reg.hwptAlloc(this.#ctx, {
        nesting: o['nesting'] === undefined ? undefined : argEnum('nesting', o['nesting'], NESTING_MODES),
        devId: argId('devId', o['devId']),
        ptId: argId('ptId', o['ptId']),
        flags: argFlags('flags', o['flags'], ['nestParent', 'dirtyTracking', 'pasid'] as const),
        faultId: o['faultId'] === undefined ? undefined : argId('faultId', o['faultId']),
        dataType: o['dataType'] === undefined ? undefined : argEnum('dataType', o['dataType'], DATA_TYPES),
        data: o['data'],
      });
    });
  }

  /**
   * IOMMU_HWPT_INVALIDATE on a nested HWPT: `selftest` entries on the mock's, `vtd-s1` entries
   * ({@link VtdS1Invalidation}) on VT-d's; on a vIOMMU id, as {@link viommuInvalidate} (its
   * commands or entries in `entries`). Returns the entries handled; a failure is an
   * `InvalidateError` whose `entryNum` counts the entries that took effect before it.
   */
  hwptInvalidate(
    hwptId: number,
    a:
      | { dataType: 'selftest'; entries: SelftestInvalidation[] }
      | { dataType: 'vtd-s1'; entries: VtdS1Invalidation[] }
      | { dataType: 'arm-smmuv3'; entries: unknown[] },
  ): number {
    return this.#control(() => {
      const o = argObject('args', a)!;
      if (!Array.isArray(o['entries'])) throw new IommufdError('EINVAL', 'entries must be an array');
      // Entries are checked one by one, in order, by the registry: a bad one stops the call after
      // the ones before it took effect, and its error says how many did.
      return reg.hwptInvalidate(
        this.#ctx,
        argId('hwptId', hwptId),
        argEnum('dataType', o['dataType'], DATA_TYPES),
        o['entries'] as unknown[],
      );
    });
  }

  /**
   * {@link hwptInvalidate} with the shadow syncs of software-nested domains submitted to the
   * invalidation pipeline rather than run inline, so that batches of `shadow.inlineThreshold`
   * routed ops or more run on its worker pool (`shadow.threads`). Argument checks, errnos and
   * every other effect happen before this returns its promise, exactly as the synchronous call's;
   * the promise resolves with the entries handled once the shadow syncs (and the device-TLB
   * invalidations that follow them) have taken effect, or rejects with the synchronous call's
   * error after the syncs of the entries before the bad one. Until it settles, translations may
   * still see what the invalidated entries mapped, as a guest's may until its wait descriptor.
   */
  hwptInvalidateAsync(
    hwptId: number,
    a:
      | { dataType: 'selftest'; entries: SelftestInvalidation[] }
      | { dataType: 'vtd-s1'; entries: VtdS1Invalidation[] }
      | { dataType: 'arm-smmuv3'; entries: unknown[] },
  ): Promise<number> {
    return this.#deferShadow(() => this.hwptInvalidate(hwptId, a));
  }

  /** {@link viommuInvalidate} with its shadow syncs on the pipeline: see {@link hwptInvalidateAsync}. */
  viommuInvalidateAsync(
    viommuId: number,
    a:
      | { dataType: 'arm-smmuv3'; cmds: readonly ArmSmmuv3Command[] | Uint32Array }
      | { dataType: 'selftest'; entries: readonly SelftestViommuInvalidation[] },
  ): Promise<number> {
    return this.#deferShadow(() => this.viommuInvalidate(viommuId, a));
  }

  /** Runs the synchronous invalidate `call` with its shadow-sync op lists submitted to the pipeline; settles when they took effect. */
  async #deferShadow(call: () => number): Promise<number> {
    const ctx = this.#ctx;
    const pipeline = ctx.pipeline;
    if (pipeline === undefined) return call();
    const pending: Promise<void>[] = [];
    // Submitted at once, in order (the pipeline runs batches in order): a close() after this
    // returns its promise still runs them, as it runs everything it accepted.
    ctx.shadowSink = (ops, after) => pending.push(pipeline.submit(ops).then(() => after?.()));
    let handled = 0;
    let failure: { error: unknown } | undefined;
    try {
      handled = call();
    } catch (error) {
      failure = { error };
    } finally {
      ctx.shadowSink = undefined;
    }
    await Promise.all(pending);
    if (failure !== undefined) throw failure.error;
    return handled;
  }

  /**
   * IOMMU_VIOMMU_ALLOC: a vIOMMU of `type` for the device's IOMMU over the nest-parent paging HWPT
   * `hwptId`; returns its id. Flags (none are defined) and an unknown type are EOPNOTSUPP, and so
   * is a type the device's driver lacks (`arm-smmuv3` needs an smmuv3 device, `selftest` a mock
   * one); an unknown device or a `hwptId` that is not a paging HWPT ENOENT; a HWPT that is not a
   * nest parent of the device's driver EINVAL. The vIOMMU keeps the parent busy (EBUSY) and gets
   * a VMID of its own ({@link Iommufd.viommuInfo}).
   */
  viommuAlloc(a: {
    devId: number;
    hwptId: number;
    type: ViommuType;
    flags?: Record<string, never>;
    nesting?: NestingMode;
  }): number {
    return this.#control(() => {
      const o = argObject('args', a)!;
      argFlags('flags', o['flags'], [] as const);
      const type = argEnum('type', o['type'], VIOMMU_TYPES, 'EOPNOTSUPP');
      return reg.viommuAlloc(this.#ctx, {
        nesting: o['nesting'] === undefined ? undefined : argEnum('nesting', o['nesting'], NESTING_MODES),
        devId: argId('devId', o['devId']),
        hwptId: argId('hwptId', o['hwptId']),
        type,
      });
    });
  }

  /**
   * IOMMU_VDEVICE_ALLOC: gives device `devId` the guest-visible ID `virtId` (the vSID on SMMUv3) on
   * a vIOMMU; returns the vDEVICE id. A `virtId` that is not a u64 (a bigint, or a safe integer,
   * from 0) is EINVAL; an unknown vIOMMU or device ENOENT; a device behind another IOMMU EINVAL;
   * a device that has a vDEVICE already, or a `virtId` in use on the vIOMMU, EEXIST. The vDEVICE
   * keeps the vIOMMU busy; unbinding the device destroys the vDEVICE and leaves its id a tombstone
   * (ENOENT, not reused until close), as the kernel does.
   */
  vdeviceAlloc(a: { viommuId: number; devId: number; virtId: bigint | number }): number {
    return this.#control(() => {
      const o = argObject('args', a)!;
      const virtId = argVirtId(o['virtId']);
      return reg.vdeviceAlloc(this.#ctx, {
        viommuId: argId('viommuId', o['viommuId']),
        devId: argId('devId', o['devId']),
        virtId,
      });
    });
  }

  /**
   * IOMMU_VEVENTQ_ALLOC: a vEVENTQ of `type` on vIOMMU `viommuId`, holding at most `depth` events.
   * Flags (none are defined) or an unknown type EOPNOTSUPP, depth 0 EINVAL, an unknown vIOMMU
   * ENOENT, a second queue of the same type on the vIOMMU EEXIST. `arm-smmuv3` queues receive the
   * SMMUv3 event records (C_BAD_STE, F_TRANSLATION … F_PERMISSION) of translations through the
   * vIOMMU's vSTE HWPTs, with the StreamID rewritten to the vSID; `selftest` ones the selftest's
   * `{u32 virt_id}` events ({@link triggerVevent}). The handle reads whole events and streams them
   * on `events$`; the queue holds the vIOMMU (destroy EBUSY) until its handle is closed and its
   * id destroyed.
   */
  veventqAlloc(a: {
    viommuId: number;
    type: 'arm-smmuv3' | 'selftest';
    depth: number;
    flags?: Record<string, unknown>;
  }): {
    veventqId: number;
    queue: reg.VeventQueue;
  } {
    return this.#control(() => {
      const o = argObject('args', a)!;
      if (o['flags'] !== undefined && Object.keys(argObject('flags', o['flags'])!).length > 0)
        throw new IommufdError('EOPNOTSUPP', 'no vEVENTQ flags are defined');
      const type = o['type'];
      if (type !== 'arm-smmuv3' && type !== 'selftest')
        throw new IommufdError('EOPNOTSUPP', `unknown vEVENTQ type ${String(type)}`);
      const depth = argInt('depth', o['depth'], 0, 2 ** 31 - 1);
      const viommu = this.#ctx.objects.get(argId('viommuId', o['viommuId']), 'viommu');
      const queue = reg.veventqAlloc(this.#ctx, viommu, type, depth);
      return { veventqId: queue.id, queue };
    });
  }

  /**
   * IOMMU_TEST_OP_TRIGGER_VEVENT (the selftest's): device `devId` reports a selftest vEVENT, its
   * vDEVICE's virtual ID, to its vIOMMU's `selftest` vEVENTQ (dropped if there is none). ENOENT
   * when the device has no vDEVICE.
   */
  triggerVevent(devId: number): void {
    return this.#control(() => {
      const dev = this.#ctx.objects.get(argId('devId', devId), 'device');
      const vdev = dev.vdevice;
      if (vdev === undefined) throw new IommufdError('ENOENT', `device ${devId} has no vDEVICE`);
      const data = new Uint8Array(4);
      new DataView(data.buffer).setUint32(0, Number(vdev.virtId & 0xffffffffn), true);
      reg.reportVevent(vdev.viommu, 'selftest', data);
    });
  }

  /**
   * The device behind virtual ID `virtId` on a vIOMMU (`iommufd_viommu_find_dev`): what a vIOMMU
   * model uses to turn a guest's vSID (in a command or STE index) into a host device. ENOENT when
   * the vIOMMU or a vDEVICE with that ID does not exist.
   */
  viommuVsidToDevice(viommuId: number, virtId: bigint | number): number {
    this.#live();
    return reg.viommuFindDev(this.#ctx, argId('viommuId', viommuId), argVirtId(virtId));
  }

  /** A vIOMMU's type, nest parent, VMID and vDEVICEs (by virtual ID). ENOENT for another object. */
  viommuInfo(viommuId: number): ViommuInfo {
    this.#live();
    return reg.viommuInfo(this.#ctx, argId('viommuId', viommuId));
  }

  /**
   * IOMMU_HWPT_INVALIDATE on a vIOMMU (also reachable as `hwptInvalidate(viommuId, …)` with
   * `entries`). `arm-smmuv3`: `cmds` is the guest's raw CMDQ commands, primarily an array of
   * `[cmd0, cmd1]` u64 bigints (`struct iommu_viommu_arm_smmuv3_invalidate`), or a Uint32Array of
   * 4 words per command (what `encodeCommand` writes). `selftest`: `entries` of
   * {@link SelftestViommuInvalidation} on the mock's vIOMMU. Returns the entries handled. In the
   * kernel's order: not a vIOMMU ENOENT; a data type other than the vIOMMU's EINVAL; a malformed
   * entry anywhere EINVAL with nothing done; then per command the SMMUv3 fix-ups (VMID forced to
   * the vIOMMU's, NSNH_ALL → NH_ALL, vSID → SID) and EIO for an opcode a guest may not issue or
   * a vSID without a vDEVICE. A failure is an `InvalidateError` whose `entryNum` counts the
   * commands that took effect. See registry/viommu-invalidate.ts for each command's effect.
   */
  viommuInvalidate(
    viommuId: number,
    a:
      | { dataType: 'arm-smmuv3'; cmds: readonly ArmSmmuv3Command[] | Uint32Array }
      | { dataType: 'selftest'; entries: readonly SelftestViommuInvalidation[] },
  ): number {
    return this.#control(() => {
      const o = argObject('args', a)!;
      const list = o['dataType'] === 'selftest' ? o['entries'] : o['cmds'];
      return reg.viommuInvalidate(this.#ctx, argId('viommuId', viommuId), o['dataType'], list);
    });
  }

  /** A mock device's 4 cache slots (the selftest's DEV_CHECK_CACHE); empty for other kinds. ENOENT for another object. */
  mockDeviceCache(devId: number): number[] {
    this.#live();
    return [...this.#ctx.objects.get(argId('devId', devId), 'device').cache];
  }

  /**
   * The decoded vSTE of an `arm-smmuv3` nested HWPT, as the driver keeps it (a non-valid vSTE
   * reads as all zero, EATS is cleared in the stored words). ENOENT for another object.
   */
  armNestedVste(hwptId: number): ArmVste {
    this.#live();
    const obj = this.#ctx.objects.get(argId('hwptId', hwptId), 'hwpt-nested');
    if (obj.vste === undefined) throw new IommufdError('ENOENT', `HWPT ${hwptId} is not an arm-smmuv3 nested HWPT`);
    return { ...obj.vste, ste: [...obj.vste.ste] as [bigint, bigint] };
  }

  /** The 4 IOTLB slots of a mock nested HWPT (the selftest's MD_CHECK_IOTLB). ENOENT for another object. */
  mockNestedIotlb(hwptId: number): number[] {
    this.#live();
    const obj = this.#ctx.objects.get(argId('hwptId', hwptId), 'hwpt-nested');
    return [...obj.iotlb];
  }

  /** Attaches a device's RID (or a PASID) to an IOAS or HWPT; returns the HWPT id now attached. */
  deviceAttach(devId: number, ptId: number, opts?: { pasid?: number }): number {
    return this.#control(() => {
      return reg.deviceAttach(this.#ctx, argId('devId', devId), argId('ptId', ptId), pasidOf(opts));
    });
  }

  /** Replaces a device's RID (or PASID) attachment in one step; returns the HWPT id now attached. */
  deviceReplace(devId: number, ptId: number, opts?: { pasid?: number }): number {
    return this.#control(() => {
      return reg.deviceReplace(this.#ctx, argId('devId', devId), argId('ptId', ptId), pasidOf(opts));
    });
  }

  /** Detaches a device's RID (or PASID); detaching what is not attached does nothing. */
  deviceDetach(devId: number, opts?: { pasid?: number }): void {
    return this.#control(() => {
      reg.deviceDetachById(this.#ctx, argId('devId', devId), pasidOf(opts));
    });
  }

  /** IOMMU_GET_HW_INFO. */
  getHwInfo(devId: number): {
    type: string;
    maxPasidLog2: number;
    capabilities: { dirtyTracking: boolean; pasidExec: boolean; pasidPriv: boolean };
  } {
    this.#live();
    return reg.getHwInfo(this.#ctx, argId('devId', devId));
  }

  // ---- data plane ---------------------------------------------------------------------------

  /**
   * Translates a DMA request: returns the physical address, or a negative TranslateFault whose
   * details {@link lastFault} returns. Allocation-free.
   */
  translate(devId: number, iova: number, access: number, pasid?: number): number {
    if (this.#closed) throw new IommufdError('EBADF', 'the iommufd is closed');
    const slot = this.#slots[devId];
    if (slot === undefined || slot < 0 || devId !== devId >>> 0)
      throw new IommufdError('ENOENT', `no device with id ${String(devId)}`);
    if (!(iova >= 0 && iova <= MAX_IOVA) || iova !== Math.floor(iova)) {
      throw new IommufdError('EINVAL', `iova must be an integer in [0, 2^53), got ${String(iova)}`);
    }
    if ((access & 15) !== access || access === 0) {
      throw new IommufdError('EINVAL', `access must be a non-empty set of Access bits, got ${String(access)}`);
    }
    let p = NO_PASID;
    if (pasid !== undefined && pasid !== NO_PASID) {
      if ((pasid & 0xfffff) !== pasid)
        throw new IommufdError('EINVAL', `pasid must be an integer in [0, 2^20) or NO_PASID, got ${String(pasid)}`);
      p = pasid;
    }
    const r = this.#ctx.translator.translate(slot, iova, access, p);
    if (r === TranslateFault.Pending) this.#pageRequest(devId, p, iova, access);
    else if (r < 0) this.#vevent(devId, p, iova, access);
    return r;
  }

  /**
   * A fault through an SMMUv3 vSTE HWPT: the event record the host driver forwards to the
   * vIOMMU's `arm-smmuv3` vEVENTQ (`arm_vmaster_report_event`): the reported event types only,
   * with the vSID as its StreamID.
   */
  #vevent(devId: number, pasid: number, iova: number, access: number): void {
    const f = this.#ctx.translator.fault;
    const type = f.words[4]!;
    if (!VEVENT_SMMU_TYPES.has(type)) return;
    const dev = this.#ctx.objects.find(devId);
    if (dev?.type !== 'device' || dev.vdevice === undefined) return;
    const rid = dev.rid;
    if (rid?.type !== 'hwpt-nested' || rid.vste === undefined) return;
    const words = encodeEvent(new Int32Array(EVT_WORDS), {
      type,
      sid: Number(dev.vdevice.virtId & 0xffffffffn),
      ssid: pasid === NO_PASID ? undefined : pasid,
      privileged: (access & Access.Priv) !== 0,
      instruction: (access & Access.Exec) !== 0,
      read: (access & Access.Write) === 0,
      stage2: f.s2 !== 0,
      class: f.faultClass,
      inputAddress: iova,
      address2: f.s2 !== 0 ? f.ipa : undefined,
    });
    reg.reportVevent(dev.vdevice.viommu, 'arm-smmuv3', new Uint8Array(words.buffer));
  }

  /**
   * A translation on an IOPF-capable domain faulted: the device sends a one-page request (a PRI
   * group, or a stalled transaction), with a tag it holds until the answer (none free: the
   * device sends nothing more until one comes back).
   */
  #pageRequest(devId: number, pasid: number, iova: number, access: number): void {
    const dev = this.#ctx.objects.get(devId, 'device');
    const model = iopfModel(dev);
    const tags = this.#ctx.requests;
    const grpid = tags.take(devId, model, pasid, reg.NO_WAITER);
    if (grpid < 0) return;
    // The tag comes back with the answer (a write, or an auto-response).
    if (!reg.reportPageRequest(dev, pasid, grpid, reg.pgfaultPerm(access), iova - (iova % 4096)))
      tags.give(devId, grpid);
  }

  /**
   * An asynchronous DMA: device `devId` reads `length` bytes at `iova` (access Read), or writes
   * `data` there (access Write), on its RID or `pasid`. Every page is translated first; pages
   * whose translation is Pending (an IOPF-capable domain) become page requests: one PRI group
   * for the whole transfer, with LAST_PAGE on its last fault (a device with PRI, a mock or a
   * VT-d device), or one stalled transaction per fault, each with its own stall tag (an SMMUv3
   * device without PRI). When every request is answered SUCCESS the transfer is retried; an
   * INVALID answer (the VMM's, or an auto-response on detach, replace or queue teardown), any
   * other fault, or `maxRetries` rounds (default 8) of SUCCESS without progress fail it with a
   * {@link DmaFaultError}. Resolves with the bytes read (or an empty array for a write), the
   * rounds retried and the page requests sent.
   */
  async dma(
    devId: number,
    a: { iova: number; length?: number; access: number; pasid?: number; data?: Uint8Array; maxRetries?: number },
  ): Promise<{ data: Uint8Array; retries: number; requests: number }> {
    this.#live();
    const o = argObject('args', a)!;
    const write = (a.access & Access.Write) !== 0;
    if (write && !(a.data instanceof Uint8Array)) throw new IommufdError('EINVAL', 'a DMA write needs data');
    const length = write ? a.data!.length : argInt('length', o['length'], 0, 2 ** 31);
    const maxRetries = o['maxRetries'] === undefined ? 8 : argInt('maxRetries', o['maxRetries'], 0, 1 << 20);
    const dev = this.#ctx.objects.get(argId('devId', devId), 'device');
    const model = iopfModel(dev);
    const pasid = a.pasid ?? NO_PASID;
    let requests = 0;
    for (let round = 0; ; round++) {
      this.#live();
      const slot = this.#slots[devId]!;
      // Translate every page; collect the ones waiting for a page request.
      const waiting: { addr: number; fault: TranslateFaultInfo }[] = [];
      // In steps of the smallest page of any format (the mock's 2 KiB); requests name 4 KiB pages.
      const step = Number(MOCK_PAGE_SIZE);
      for (let at = a.iova - (a.iova % step); at < a.iova + Math.max(length, 1); at += step) {
        const r = this.#ctx.translator.translate(slot, Math.max(at, a.iova), a.access, pasid);
        const page = at - (at % 4096);
        if (r === TranslateFault.Pending) {
          if (waiting[waiting.length - 1]?.addr !== page) waiting.push({ addr: page, fault: this.lastFault() });
        } else if (r < 0) throw new DmaFaultError(this.lastFault());
      }
      if (waiting.length === 0) {
        const out = write ? new Uint8Array(0) : new Uint8Array(length);
        if (write) this.dmaWrite(devId, a.iova, a.data!, a.pasid === undefined ? {} : { pasid });
        else if (length > 0) out.set(this.dmaRead(devId, a.iova, length, a.pasid === undefined ? {} : { pasid }));
        return { data: out, retries: round, requests };
      }
      if (round >= maxRetries) throw new DmaFaultError(waiting[0]!.fault);
      // PRI: one group, the last fault with LAST_PAGE; stall: a group (a tag) per transaction.
      const groups = model === 'pri' ? [waiting] : waiting.map((w) => [w]);
      const answers: Promise<number>[] = [];
      const tags = this.#ctx.requests;
      for (const g of groups) {
        let resolve!: (code: number) => void;
        answers.push(new Promise<number>((r) => (resolve = r)));
        // The waiter is in place before the report: a handler on faults$ may answer at once.
        const tag = tags.take(devId, model, pasid, { answered: (_d, _t, code) => resolve(code) });
        if (tag < 0) throw new IommufdError('EBUSY', `device ${devId} has every request tag outstanding`);
        try {
          reg.faultQueueOf(dev, pasid);
          g.forEach((w, i) => {
            reg.reportPageFault(dev, pasid, {
              grpid: tag,
              perm: reg.pgfaultPerm(a.access),
              addr: BigInt(w.addr),
              last: i === g.length - 1,
            });
          });
        } catch (e) {
          // This group was not sent (earlier ones were: their answers free their tags).
          tags.give(devId, tag);
          throw e;
        }
        requests += g.length;
      }
      const codes = await Promise.all(answers);
      const bad = codes.findIndex((c) => c !== reg.PAGE_RESPONSE.Success);
      if (bad >= 0) throw new DmaFaultError(groups[bad]![0]!.fault);
    }
  }

  /**
   * A DMA engine for device `devId` (on its RID, or `opts.pasid`): transfers with recoverable
   * faults, as {@link dma} makes them, but allocation-free, with up to `opts.depth` in flight and
   * completions by callback or ring (see {@link DmaEngine}). Page requests use the device's
   * tags, shared with {@link dma}: PRI groups, or stall tags for an SMMUv3 device without PRI.
   */
  dmaEngine(devId: number, opts: DmaEngineOptions = {}): DmaEngine {
    this.#live();
    const o = argObject('opts', opts) ?? {};
    const dev = this.#ctx.objects.get(argId('devId', devId), 'device');
    const pasid = o['pasid'] === undefined ? undefined : argInt('pasid', o['pasid'], 1, 0xfffff);
    const depth = o['depth'] === undefined ? undefined : argInt('depth', o['depth'], 1, 65536);
    const maxRetries = o['maxRetries'] === undefined ? undefined : argInt('maxRetries', o['maxRetries'], 0, 1 << 20);
    const autoPump = o['autoPump'] === undefined ? undefined : argOptBool('autoPump', o['autoPump']);
    if (opts.onComplete !== undefined && typeof opts.onComplete !== 'function')
      throw new IommufdError('EINVAL', 'onComplete must be a function');
    return new DmaEngine(
      {
        dev,
        devId,
        slot: dev.slot,
        model: iopfModel(dev),
        translator: this.#ctx.translator,
        tags: this.#ctx.requests,
        u8: this.#ctx.memory.phys.u8,
        live: () => {
          this.#live();
          if (this.#slots[devId] !== dev.slot) throw new IommufdError('ENOENT', `device ${devId} was unbound`);
        },
      },
      {
        ...(pasid === undefined ? {} : { pasid }),
        ...(depth === undefined ? {} : { depth }),
        ...(maxRetries === undefined ? {} : { maxRetries }),
        ...(autoPump === undefined ? {} : { autoPump }),
        ...(opts.onComplete === undefined ? {} : { onComplete: opts.onComplete }),
      },
    );
  }

  /** Details of the last fault that {@link translate} returned on this fd. */
  lastFault(): TranslateFaultInfo {
    const f = this.#ctx.translator.fault;
    return {
      code: f.words[0]!,
      iova: f.iova,
      level: f.words[1]!,
      reason: FAULT_REASON_NAMES[f.words[2]!] ?? 'unknown',
      pasid: f.words[3]!,
      vendorCode: f.words[4]!,
    };
  }

  /** A device reads `length` bytes at `iova` by DMA. A fault throws a {@link DmaFaultError} (EFAULT). */
  dmaRead(devId: number, iova: number, length: number, opts?: { pasid?: number }): Uint8Array {
    this.#live();
    argInt('length', length, 0, 2 ** 31);
    const out = new Uint8Array(length);
    this.#dma(devId, iova, length, Access.Read, opts?.pasid, (pa, off, n) =>
      out.set(this.#ctx.memory.phys.u8.subarray(pa, pa + n), off),
    );
    return out;
  }

  /** A device writes `bytes` at `iova` by DMA. A fault throws a {@link DmaFaultError}; nothing is written then. */
  dmaWrite(devId: number, iova: number, bytes: Uint8Array, opts?: { pasid?: number }): void {
    this.#live();
    if (!(bytes instanceof Uint8Array)) throw new IommufdError('EINVAL', 'bytes must be a Uint8Array');
    const u8 = this.#ctx.memory.phys.u8;
    const chunks: number[] = [];
    // Translate every chunk first, so a fault part-way writes nothing.
    this.#dma(devId, iova, bytes.length, Access.Write, opts?.pasid, (pa, off, n) => chunks.push(pa, off, n));
    for (let i = 0; i + 2 < chunks.length; i += 3) {
      const [pa, off, n] = [chunks[i], chunks[i + 1], chunks[i + 2]] as [number, number, number];
      u8.set(bytes.subarray(off, off + n), pa);
    }
  }

  #dma(
    devId: number,
    iova: number,
    length: number,
    access: number,
    pasid: number | undefined,
    each: (pa: number, off: number, n: number) => void,
  ): void {
    const memBytes = this.#ctx.memory.phys.u8.length;
    let off = 0;
    while (off < length) {
      const at = iova + off;
      const pa = this.translate(devId, at, access, pasid);
      if (pa < 0) throw new DmaFaultError(this.lastFault());
      // Every format's pages are at least MOCK_PAGE_SIZE, so a chunk never crosses a page.
      const n = Math.min(length - off, MOCK_PAGE_SIZE - (at % MOCK_PAGE_SIZE));
      if (pa + n > memBytes) {
        throw new IommufdError(
          'EFAULT',
          `DMA at IOVA 0x${at.toString(16)} targets PA 0x${pa.toString(16)}, outside physical memory`,
        );
      }
      each(pa, off, n);
      off += n;
    }
  }

  /**
   * The shared buffers of the data plane, for translating on other threads (see
   * `TranslatePool` and `attachTranslator`). Hand them to a worker once, at start-up.
   */
  dataPlane(): DataPlaneHandles {
    this.#live();
    const tlb = this.#ctx.iotlb;
    const atc = this.#ctx.atc;
    const sh = this.#ctx.shadow;
    return {
      memory: this.#ctx.memory.handles(),
      tables: this.#ctx.tables.handles(),
      iotlb: tlb === undefined ? undefined : { handles: tlb.handles(), entries: tlb.capacity, shards: tlb.shards },
      atc: atc === undefined ? undefined : { handles: atc.handles(), entries: atc.capacity, shards: atc.shards },
      shadow: sh === undefined ? undefined : { handles: sh.handles(), entries: sh.capacity },
    };
  }

  /** The data plane's name for a device: its slot in the shared context tables. */
  deviceSlot(devId: number): number {
    this.#live();
    return this.#ctx.objects.get(argId('devId', devId), 'device').slot;
  }

  // ---- introspection ------------------------------------------------------------------------

  /** A deterministic, JSON-comparable picture of all visible state. */
  snapshot(): unknown {
    this.#live();
    return reg.snapshot(this.#ctx);
  }

  /** IOTLB counters (all zero without an IOTLB). */
  cacheStats(): CacheStats {
    this.#live();
    const tlb = this.#ctx.iotlb;
    const t = this.#ctx.translator;
    const none: CacheCounters = {
      fills: 0,
      discardedFills: 0,
      evictions: 0,
      invalidated: 0,
      overInvalidations: 0,
      rollovers: 0,
      stolenOwners: 0,
    };
    return {
      ...(tlb?.counters() ?? none),
      hits: t.hits,
      misses: t.misses,
      atcHits: t.atcHits,
      shadowHits: t.shadowHits,
      shadowMisses: t.shadowMisses,
      pdeHits: t.pde?.hits ?? 0,
      pdeFills: t.pde?.fills ?? 0,
      shadow: this.#ctx.shadow?.counters() ?? {
        fills: 0,
        rewritten: 0,
        prefetched: 0,
        dropped: 0,
        s2Dropped: 0,
        evictions: 0,
        overflows: 0,
      },
      capacity: tlb?.capacity ?? 0,
      bytesPerEntry: tlb?.bytesPerEntry ?? 0,
      pipeline: this.#ctx.pipeline?.metrics(),
    };
  }

  // ---- emulated vIOMMUs ----------------------------------------------------------------------

  /**
   * Creates an emulated Intel VT-d remapping unit with its own guest RAM (or the VMM's), sharing
   * this context's IOTLB and device-TLB table. The VMM drives it through `mmioRead`/`mmioWrite`;
   * devices translate and do DMA through it. Close it (or this fd) to release it.
   */
  vtdCreate(opts: VtdIommuOptions = {}): VtdIommu {
    this.#live();
    const ctx = this.#ctx;
    const unit = new VtdIommu(
      { memory: ctx.memory, tables: ctx.tables, iotlb: ctx.iotlb, atc: ctx.atc, host: this, mm: ctx.mm },
      opts,
    );
    this.#units.push(unit);
    return unit;
  }

  /**
   * Creates an emulated Arm SMMUv3 with its own guest RAM (or the VMM's), sharing this context's
   * IOTLB and device-TLB table. The VMM drives it through `mmioRead`/`mmioWrite`; devices translate
   * and do DMA through it. Close it (or this fd) to release it. RangeError for options the
   * architecture or the model does not allow.
   *
   * With `viommuId` (an `arm-smmuv3` vIOMMU of this fd) the unit is that vIOMMU's register model
   * ({@link viommuUnit} finds it) and consumes its command queue on the direct path: the guest's
   * TLBIs, ATC_INVs and CFGI_CDs go to {@link viommuInvalidate}, other commands exit to the VMM.
   * ENOENT for another id, EINVAL for a selftest vIOMMU, EEXIST if the vIOMMU has a unit already.
   */
  smmuCreate(opts: SmmuIommuOptions & { viommuId?: number } = {}): SmmuIommu {
    this.#live();
    const ctx = this.#ctx;
    const { viommuId: rawId, ...unitOpts } = argObject('opts', opts) as SmmuIommuOptions & { viommuId?: unknown };
    let viommuId: number | undefined;
    if (rawId !== undefined) {
      viommuId = argId('viommuId', rawId);
      const info = reg.viommuInfo(ctx, viommuId);
      if (info.type !== 'arm-smmuv3') throw new IommufdError('EINVAL', `vIOMMU ${viommuId} is not arm-smmuv3`);
      if (this.#viommuUnits.has(viommuId)) throw new IommufdError('EEXIST', `vIOMMU ${viommuId} has a unit already`);
    }
    const unit = new SmmuIommu(
      { memory: ctx.memory, tables: ctx.tables, iotlb: ctx.iotlb, atc: ctx.atc, host: this, mm: ctx.mm },
      unitOpts,
    );
    if (viommuId !== undefined) {
      const id = viommuId;
      unit.bindViommu({
        viommuId: id,
        invalidate: (cmds) => this.viommuInvalidate(id, { dataType: 'arm-smmuv3', cmds }),
        // A destroyed vIOMMU knows no vSID: the command is refused (CERROR_ILL), the doorbell does not throw.
        hasVsid: (vsid) => reg.viommuHasVdev(ctx, id, BigInt(vsid)),
      });
      this.#viommuUnits.set(id, unit);
    }
    this.#units.push(unit);
    return unit;
  }

  /** The SMMUv3 register model of vIOMMU `viommuId` (created by `smmuCreate({ viommuId })`); ENOENT if none. */
  viommuUnit(viommuId: number): SmmuIommu {
    this.#live();
    const id = argId('viommuId', viommuId);
    reg.viommuInfo(this.#ctx, id); // ENOENT once the vIOMMU is gone
    const unit = this.#viommuUnits.get(id);
    if (unit === undefined) throw new IommufdError('ENOENT', `vIOMMU ${viommuId} has no SMMUv3 unit`);
    return unit;
  }

  /** Frames of physical memory in use (allocated or awaiting reclamation). */
  framesInUse(): number {
    return this.#ctx.memory.frames.inUse;
  }
}

function mapFlags(v: unknown): MapFlags | undefined {
  return argFlags('flags', v, ['fixedIova', 'readable', 'writeable'] as const);
}

/** A virtual ID: a u64 as a bigint, or a non-negative safe integer (EINVAL otherwise). */
function argVirtId(v: unknown): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  return argU64('virtId', v);
}

function pasidOf(opts: unknown): number {
  const o = argObject('opts', opts, true);
  if (o === undefined || o['pasid'] === undefined) return NO_PASID;
  return argInt('opts.pasid', o['pasid'], 0, 2 ** 20 - 1);
}

/** How a device's recoverable faults travel: PRI groups, or (an SMMUv3 device without PRI) stalled transactions. */
function iopfModel(dev: { kind: string; pri: boolean }): reg.IopfModel {
  return dev.kind === 'smmuv3' && !dev.pri ? 'stall' : 'pri';
}

/** The SMMUv3 events the host driver forwards to a vEVENTQ (reference/iommufd.md §2). */
const VEVENT_SMMU_TYPES: ReadonlySet<number> = new Set([0x04, 0x06, 0x08, 0x0a, 0x10, 0x11, 0x12, 0x13]);
