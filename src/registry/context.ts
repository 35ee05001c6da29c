import { Iotlb, ShadowTable } from '../cache/index.js';
import { RequestTags } from './page-requests.js';
import type { OpList } from '../ops/index.js';
import { HostAddressSpace, SystemMemory } from '../memory/index.js';
import { InvalidationPipeline } from '../pipeline/index.js';
import { ContextTables, Translator } from '../translate/index.js';
import { NestedShadowWalker } from '../translate/nested-walk.js';
import { FaultInjector } from '../util/fail-nth.js';
import type { IommufdObject, ObjectType } from './objects.js';
import { ObjectTable } from './table.js';

/** Options for a new context. */
export interface ContextOptions {
  /** Physical memory size in bytes. */
  memoryBytes: number;
  /** Whether the caller has CAP_SYS_RESOURCE (RLIMIT_MODE set). */
  privileged: boolean;
  /** IOTLB entries (0: no IOTLB) and shards. */
  iotlbEntries: number;
  iotlbShards: number;
  /** Software nesting: shadow pages (default 32768), and the workers its large syncs run on (default 0: inline). */
  shadowEntries?: number | undefined;
  shadowThreads?: number | undefined;
  /** Routed ops from which a pipeline segment runs on the pool rather than inline (default: the pipeline's). */
  shadowInlineThreshold?: number | undefined;
}

/** Destroy handlers, one per object kind (the kernel's per-type ops table). */
export type DestroyOps = { [T in ObjectType]: (ctx: IommufdCtx, obj: Extract<IommufdObject, { type: T }>) => void };

/**
 * The state of one open iommufd (`struct iommufd_ctx`): the object table, the memory it owns,
 * the shared data-plane tables, and the fault-injection point that every fallible step consults.
 */
export class IommufdCtx {
  /** The fault-injection point. */
  readonly faults = new FaultInjector();
  /** All objects. */
  readonly objects = new ObjectTable(this.faults);
  /** Physical memory, the frame allocator and the reclaimer. */
  readonly memory: SystemMemory;
  /** The VMM's host address space. */
  readonly mm: HostAddressSpace;
  /** Data-plane tables in shared memory. */
  readonly tables: ContextTables;
  /** The IOTLB, shared by every translating thread (undefined when disabled). */
  readonly iotlb: Iotlb | undefined;
  /**
   * The devices' ATCs (PCIe ATS): one table tagged by (device slot, PASID), sharded by device
   * (with the IOTLB, or none).
   */
  readonly atc: Iotlb | undefined;
  /** For each domain descriptor, the ATC tag words (device slot, PASID) of the ATS devices it translates for. */
  readonly atsDevices = new Map<number, Set<number>>();
  /**
   * The software-nesting shadow, under the IOTLB's owner words and epochs (undefined without an
   * IOTLB), and the pipeline that runs its sync ops (inline for the synchronous uAPI; on the
   * pool for large asynchronous batches).
   */
  readonly shadow: ShadowTable | undefined;
  readonly pipeline: InvalidationPipeline | undefined;
  /**
   * Where shadow-sync op lists go instead of running inline, while an asynchronous invalidate
   * call runs (set by `Iommufd`'s `*InvalidateAsync` around the synchronous call): each op list,
   * and what must follow its completion (device-TLB invalidations), or undefined.
   */
  shadowSink: ((ops: OpList, after: (() => void) | undefined) => void) | undefined = undefined;
  /** The control-plane thread's translator. */
  readonly translator: Translator;
  /** Whether RLIMIT_MODE may be set. */
  readonly privileged: boolean;
  /** RLIMIT_MODE: 0 user-based, 1 mm-based accounting. */
  accountMode = 0;
  /** The page-request tags each device has outstanding (PRG indices or stall tags), and who waits on each. */
  readonly requests = new RequestTags();
  /** Next stream ID handed to a device bound without one. */
  nextSid = 1;

  /** Creates a context. */
  constructor(opts: ContextOptions) {
    this.memory = new SystemMemory(opts.memoryBytes);
    this.memory.frames.faults = this.faults;
    this.mm = new HostAddressSpace(this.memory.phys, this.memory.frames);
    this.tables = new ContextTables(this.memory.phys, this.memory.frames);
    this.memory.onReclaimOther = (index) => this.tables.recycleDomain(index);
    this.iotlb = opts.iotlbEntries > 0 ? new Iotlb(opts.iotlbEntries, opts.iotlbShards) : undefined;
    this.atc =
      opts.iotlbEntries > 0
        ? new Iotlb(Math.max(1024, opts.iotlbEntries >> 2), opts.iotlbShards, undefined, true)
        : undefined;
    this.shadow = this.iotlb && new ShadowTable(this.iotlb, opts.shadowEntries ?? 32768);
    this.pipeline =
      this.iotlb &&
      new InvalidationPipeline(this.iotlb, {
        threads: opts.shadowThreads ?? 0,
        ...(opts.shadowInlineThreshold === undefined ? {} : { inlineThreshold: opts.shadowInlineThreshold }),
        atc: this.atc,
        shadow: this.shadow && {
          table: this.shadow,
          walker: new NestedShadowWalker(this.memory.phys.i32, this.tables),
          walk: {
            memory: this.memory.handles(),
            tables: this.tables.handles(),
            slots: new Int32Array(new SharedArrayBuffer(4 * 64)).fill(-1).buffer,
          },
        },
      });
    this.translator = new Translator(
      this.memory.phys,
      this.tables,
      this.memory.reclaimer,
      -1,
      this.iotlb,
      this.atc,
      this.shadow,
    );
    this.privileged = opts.privileged;
  }

  /**
   * Runs `fn`, undoing the steps it registered on `undo` (in reverse) if it throws: the
   * all-or-nothing rule for registry operations (DESIGN.md invariant 3). What an undo retires is
   * reclaimed by the caller of the control-plane call (`Iommufd`), after every call.
   */
  atomically<T>(fn: (undo: (() => void)[]) => T): T {
    const undo: (() => void)[] = [];
    try {
      return fn(undo);
    } catch (e) {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
      throw e;
    }
  }
}
