/**
 * Host devices assigned to a VT-d guest (issue 6, "the VMM side"). iommufd has no VT-d vIOMMU
 * object, so the device model keeps the maps itself: guest RID → iommufd device, and guest DID →
 * the nested HWPTs that carry the guest's first-stage tables. This is what QEMU's intel_iommu does
 * with an iommufd backend and first-stage translation (`x-flts`):
 *
 * - The VM's guest-physical space is a nest-parent HWPT (its IOAS maps guest RAM at GPA 0).
 * - When the guest points a RID (RID_PASID) or a PASID of an assigned device at a first-stage
 *   table, the model allocates a `vtd-s1` nested HWPT over the parent with that table, its address
 *   width and its SRE/WPE/EAFE bits, and attaches (or replaces) the device to it: the host IOMMU
 *   then walks both stages in hardware. Pass-through, and translation disabled, attach the parent.
 * - The guest's PASID-based IOTLB invalidations for that DID become `hwptInvalidate` entries with
 *   `dataType: 'vtd-s1'` (the host flushes device TLBs itself, so the guest's device-TLB
 *   descriptors for an assigned device are not forwarded).
 * - A guest second-stage or nested table cannot be handed to the host IOMMU (it would need a
 *   shadow, the software nesting of the nesting issue): such a device is left blocked and counted,
 *   as QEMU refuses that configuration for assigned devices.
 *
 * The configuration is re-read when the guest invalidates the context or PASID cache, and when it
 * sets the root table or toggles translation, which is when a real unit may re-read it too.
 */
import { VTD_S1_ALL_PAGES, type VtdS1Data, type VtdS1Invalidation } from '../../registry/index.js';
import { IommufdError } from '../../util/errors.js';
import { Access } from '../../pgtable/index.js';
import { CONFIG_FLAG, RequestKind, VTD_RESOLVED, VtdConfig, type VtdResolver } from './resolve.js';
import { PGTT } from './structures-pasid.js';

/** The iommufd operations the model uses (an `Iommufd` has them all). */
export interface VtdAssignmentHost {
  hwptAlloc(a: {
    devId: number;
    ptId: number;
    dataType: 'vtd-s1';
    data: VtdS1Data;
    flags?: { pasid?: boolean };
  }): number;
  deviceAttach(devId: number, ptId: number, opts?: { pasid?: number }): number;
  deviceReplace(devId: number, ptId: number, opts?: { pasid?: number }): number;
  deviceDetach(devId: number, opts?: { pasid?: number }): void;
  hwptInvalidate(hwptId: number, a: { dataType: 'vtd-s1'; entries: VtdS1Invalidation[] }): number;
  destroy(id: number): void;
  ioasMap(
    ioasId: number,
    a: { userVa: bigint; length: bigint; iova: bigint; flags: { fixedIova: true; readable: true; writeable: true } },
  ): bigint;
}

/** Counters of the assignment path. */
export interface VtdAssignmentStats {
  /** Configuration re-reads of assigned RIDs and PASIDs. */
  syncs: number;
  /** Host attach or replace operations. */
  hostAttaches: number;
  /** Invalidation entries forwarded to nested HWPTs. */
  forwarded: number;
  /** Configurations the host cannot nest (guest second-stage or nested tables): left blocked. */
  unsupported: number;
  /** Host operations that failed (the binding is left blocked); see `lastError`. */
  errors: number;
}

/** What one guest RID or PASID of an assigned device is attached to on the host. */
interface Binding {
  /** 'parent': the nest parent; 'nested': `hwptId`; 'blocked': nothing. */
  state: 'parent' | 'nested' | 'blocked';
  /** The nested HWPT (state 'nested'), else 0. */
  hwptId: number;
  /** The guest DID and PASID whose invalidations reach it (state 'nested'). */
  did: number;
  guestPasid: number;
  /** The configuration it was built from: (root, width, flags). */
  key: string;
}

interface Assignment {
  sid: number;
  devId: number;
  parentHwptId: number;
  /** By PASID; -1 is the RID (requests without PASID). */
  bindings: Map<number, Binding>;
}

const RID = -1;
/** The key of a configuration the host cannot nest (guest second-stage or nested tables). */
const UNSUPPORTED = 'unsupported';

/** The assigned devices of one VT-d unit. */
export class VtdAssignments {
  readonly #host: VtdAssignmentHost;
  readonly #resolver: VtdResolver;
  readonly #translating: () => boolean;
  readonly #cfg = new VtdConfig();
  readonly #bySid = new Map<number, Assignment>();
  readonly #stats = VtdAssignments.emptyStats();
  /** The last host error, for the VMM's log. */
  lastError: string | undefined;

  /** Assignments over `host`, reading guest configuration with `resolver` while `translating()`. */
  constructor(host: VtdAssignmentHost, resolver: VtdResolver, translating: () => boolean) {
    this.#host = host;
    this.#resolver = resolver;
    this.#translating = translating;
  }

  /** Whether any device is assigned (the unit skips the forwarding work otherwise). */
  get active(): boolean {
    return this.#bySid.size > 0;
  }

  /** All-zero counters (a unit without assignments reports these). */
  static emptyStats(): VtdAssignmentStats {
    return { syncs: 0, hostAttaches: 0, forwarded: 0, unsupported: 0, errors: 0 };
  }

  /** Counters. */
  stats(): VtdAssignmentStats {
    return { ...this.#stats };
  }

  /** Whether guest RID `sid` is an assigned device. */
  has(sid: number): boolean {
    return this.#bySid.has(sid);
  }

  /**
   * Assigns host device `devId` as guest RID `sid`, over the VM's nest-parent HWPT. Its RID is
   * attached at once by the guest's current configuration. EEXIST if `sid` is already assigned;
   * errors of the first attach propagate (nothing stays assigned).
   */
  assign(sid: number, devId: number, parentHwptId: number): void {
    if (this.#bySid.has(sid)) throw new IommufdError('EEXIST', `guest RID 0x${sid.toString(16)} is already assigned`);
    const a: Assignment = { sid, devId, parentHwptId, bindings: new Map() };
    this.#bySid.set(sid, a);
    try {
      this.#sync(a, RID, true);
    } catch (e) {
      this.#bySid.delete(sid);
      throw e;
    }
  }

  /** Detaches every RID and PASID of an assigned device and forgets it (its nested HWPTs are destroyed). */
  unassign(sid: number): void {
    const a = this.#bySid.get(sid);
    if (a === undefined) return;
    for (const [pasid, b] of a.bindings) {
      if (b.state !== 'blocked') this.#host.deviceDetach(a.devId, pasid === RID ? undefined : { pasid });
      if (b.hwptId !== 0) this.#host.destroy(b.hwptId);
    }
    this.#bySid.delete(sid);
  }

  /** Re-reads the configuration of every assigned RID, its known PASIDs, and `pasid` if given. */
  resync(pasid?: number): void {
    for (const a of this.#bySid.values()) {
      this.#sync(a, RID, false);
      for (const p of a.bindings.keys()) if (p !== RID) this.#sync(a, p, false);
      // A PASID the guest named in a PASID-cache invalidation, unless it is the RID's own
      // (RID_PASID, which requests without PASID use).
      const rid = a.bindings.get(RID);
      if (pasid !== undefined && pasid > 0 && pasid !== rid?.guestPasid && !a.bindings.has(pasid))
        this.#sync(a, pasid, false);
    }
  }

  /**
   * Forwards a PASID-based IOTLB invalidation (DID, PASID; `pages` 0 = the whole PASID) to every
   * nested HWPT built from that DID and PASID.
   */
  forward(did: number, pasid: number, addr: number, pages: number, leaf: boolean): void {
    for (const a of this.#bySid.values()) {
      for (const b of a.bindings.values()) {
        if (b.state !== 'nested' || b.did !== did || b.guestPasid !== pasid) continue;
        this.#invalidate(
          b,
          pages === 0 ? { addr: 0, npages: VTD_S1_ALL_PAGES } : { addr, npages: pages, flags: { leaf } },
        );
      }
    }
  }

  /** Forwards "everything" to every nested HWPT (a global IOTLB invalidation). */
  forwardAll(): void {
    for (const a of this.#bySid.values()) {
      for (const b of a.bindings.values())
        if (b.state === 'nested') this.#invalidate(b, { addr: 0, npages: VTD_S1_ALL_PAGES });
    }
  }

  /** Detaches and destroys everything (the unit is closing). */
  close(): void {
    for (const sid of [...this.#bySid.keys()]) {
      try {
        this.unassign(sid);
      } catch {
        // The fd may already be closed: its objects went with it.
      }
    }
  }

  #invalidate(b: Binding, entry: VtdS1Invalidation): void {
    try {
      this.#host.hwptInvalidate(b.hwptId, { dataType: 'vtd-s1', entries: [entry] });
      this.#stats.forwarded++;
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Brings one binding in line with the guest's configuration; `strict` lets host errors propagate. */
  #sync(a: Assignment, pasid: number, strict: boolean): void {
    this.#stats.syncs++;
    const want = this.#desired(a, pasid);
    const have = a.bindings.get(pasid);
    if (have !== undefined && have.key === want.key) return;
    if (want.key === UNSUPPORTED) this.#stats.unsupported++; // once per configuration, not per re-read
    const opts = pasid === RID ? undefined : { pasid };
    const host = this.#host;
    try {
      let next: Binding;
      if (want.state === 'blocked') {
        if (have !== undefined && have.state !== 'blocked') host.deviceDetach(a.devId, opts);
        next = { ...want, hwptId: 0 };
      } else {
        const target =
          want.state === 'parent'
            ? a.parentHwptId
            : host.hwptAlloc({
                devId: a.devId,
                ptId: a.parentHwptId,
                dataType: 'vtd-s1',
                data: want.data!,
                flags: { pasid: true },
              });
        try {
          if (have === undefined || have.state === 'blocked') host.deviceAttach(a.devId, target, opts);
          else host.deviceReplace(a.devId, target, opts);
        } catch (e) {
          if (want.state === 'nested') host.destroy(target);
          throw e;
        }
        this.#stats.hostAttaches++;
        next = { ...want, hwptId: want.state === 'nested' ? target : 0 };
      }
      if (have !== undefined && have.hwptId !== 0) host.destroy(have.hwptId);
      a.bindings.set(pasid, next);
    } catch (e) {
      if (strict) throw e;
      this.#fail(e);
    }
  }

  /** What the guest's configuration asks for, for (sid, pasid). */
  #desired(a: Assignment, pasid: number): Omit<Binding, 'hwptId'> & { data?: VtdS1Data } {
    const blocked = { state: 'blocked' as const, did: 0, guestPasid: 0, key: 'blocked' };
    if (!this.#translating()) return { state: 'parent', did: 0, guestPasid: 0, key: 'off' };
    const c = this.#cfg;
    if (this.#resolver.resolve(a.sid, pasid, Access.Read, RequestKind.Untranslated, c) !== VTD_RESOLVED) return blocked;
    if (c.type === PGTT.PassThrough) return { state: 'parent', did: c.did, guestPasid: c.pasid, key: 'pt' };
    if (c.type !== PGTT.FirstStage) return { ...blocked, key: UNSUPPORTED };
    const flags = {
      sre: (c.flags & CONFIG_FLAG.SRE) !== 0,
      wpe: (c.flags & CONFIG_FLAG.WPE) !== 0,
      eafe: (c.flags & CONFIG_FLAG.EAFE) !== 0,
    };
    const data: VtdS1Data = { pgtblAddr: c.fsptr, addrWidth: c.fsWidth, flags };
    const key = `fs:${c.did}:${c.pasid}:${c.fsptr}:${c.fsWidth}:${+flags.sre}${+flags.wpe}${+flags.eafe}`;
    return { state: 'nested', did: c.did, guestPasid: c.pasid, key, data };
  }

  #fail(e: unknown): void {
    this.#stats.errors++;
    this.lastError = e instanceof Error ? e.message : String(e);
    if (!(e instanceof IommufdError)) throw e;
  }
}
