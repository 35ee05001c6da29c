import { cacheAccess, type Iotlb } from '../cache/index.js';
import type { ShadowTable } from '../cache/shadow.js';
import type { EpochReclaimer } from '../memory/reclaim.js';
import type { PhysMemory } from '../memory/phys.js';
import {
  armS1Walk,
  armS2Walk,
  FaultReason,
  mockWalk,
  TranslateFault,
  vtdSecondStageWalk,
  WalkFault,
  x86FirstStageWalk,
  x86NestedWalkLeaf,
  Access,
  CFG,
} from '../pgtable/index.js';
import { PdeCache } from './pde-cache.js';
import { ArmNestedTranslator } from './arm-nested.js';
import { vtdNestedWalk } from './nested-walk.js';
import { ContextTables, DEV_ATS, DOMAIN_IOPF, DOMAIN_SHADOW, DomainFormat } from './tables.js';

/** The PASID value that means "no PASID": the request is translated by the RID's domain. */
export const NO_PASID = -1;

/**
 * The DMA translation hot path: device context → domain descriptor → page-table walk. It reads
 * only shared memory, so a worker can run one over the same buffers. Allocation-free: faults are
 * recorded in the preallocated {@link WalkFault}.
 *
 * A translator whose thread also runs reclamation (the control-plane thread) passes slot -1: that
 * thread cannot be in a walk while it reclaims. Any other thread owns a reader slot and publishes
 * its epoch around each walk.
 */
export class Translator {
  /** Details of the last fault. */
  readonly fault = new WalkFault();
  readonly #i32: Int32Array;
  readonly #ctx: ContextTables;
  readonly #reclaimer: EpochReclaimer;
  readonly #slot: number;
  readonly #iotlb: Iotlb | undefined;
  readonly #atc: Iotlb | undefined;
  readonly #owner: number;
  readonly #arm: ArmNestedTranslator;
  /** IOTLB hits by this translator. */
  hits = 0;
  /** IOTLB misses by this translator (each followed by a walk). */
  misses = 0;
  /** ATC hits by this translator (requests without PASID from devices with ATS). */
  atcHits = 0;
  /** Shadow hits by this translator (software-nested domains, after an IOTLB miss). */
  shadowHits = 0;
  /** Shadow misses by this translator (each followed by a nested walk and a fill). */
  shadowMisses = 0;
  readonly #shadow: ShadowTable | undefined;
  /** This thread's paging-structure cache for VT-d hardware-nested walks (with an IOTLB, whose invalidations it follows). */
  readonly pde: PdeCache | undefined;

  /**
   * Creates a translator over `mem` and `ctx`; `slot` is this thread's reader slot, or -1. With
   * an `iotlb`, a translation tries it first and fills it after a walk; with an `atc` (tagged by
   * device slot), a request without PASID from a device with ATS tries that before the IOTLB;
   * with a `shadow` (over `iotlb`), software-nested domains translate through it.
   */
  constructor(
    mem: PhysMemory,
    ctx: ContextTables,
    reclaimer: EpochReclaimer,
    slot: number,
    iotlb?: Iotlb,
    atc?: Iotlb,
    shadow?: ShadowTable,
  ) {
    this.#shadow = iotlb === undefined ? undefined : shadow;
    this.#i32 = mem.i32;
    this.#ctx = ctx;
    this.#reclaimer = reclaimer;
    this.#slot = slot;
    this.#iotlb = iotlb;
    this.#atc = atc;
    // The owner id a fill takes shard owner words with: reader slot + 1, or 999 for the control
    // plane (ids from 1001 up are pipeline workers').
    this.#owner = slot >= 0 ? slot + 1 : 999;
    this.#arm = new ArmNestedTranslator(mem.i32, ctx);
    this.pde = iotlb === undefined ? undefined : new PdeCache();
  }

  /**
   * Translates `iova` for a request with `access` bits from device slot `dev` (and `pasid`, or
   * {@link NO_PASID}). Returns the physical address, or a negative TranslateFault.
   */
  translate(dev: number, iova: number, access: number, pasid: number): number {
    const slot = this.#slot;
    if (slot >= 0) this.#reclaimer.enter(slot);
    // What the caches keep per entry: R/W/X and the privilege level the walk checked.
    const want = cacheAccess(access);
    // The device's own ATC (PCIe ATS), tagged by (device, PASID) rather than by domain, so its
    // fill sequence and clock are read before the device's domain: a replace switches the domain
    // and then flushes the device's ATC tag, which outdates any fill from a walk that still saw
    // the old domain.
    // PASID 0 cannot be attached (iommufd PASIDs start at 1), and its tag word would be the RID's.
    const atc = (this.#ctx.deviceFlags(dev) & DEV_ATS) !== 0 && pasid !== 0 ? this.#atc : undefined;
    const atag = dev | ((pasid === NO_PASID ? 0 : pasid) << 12);
    let a0 = 0;
    let ac0 = 0;
    if (atc !== undefined) {
      a0 = atc.fillSeq(atag, iova);
      ac0 = atc.fillClock();
      const hit = atc.lookup(atag, iova, want);
      if (hit >= 0) {
        this.atcHits++;
        if (slot >= 0) this.#reclaimer.exit(slot);
        return hit;
      }
    }
    let domain = pasid === NO_PASID ? this.#ctx.ridDomain(dev) : this.#ctx.pasidDomain(dev, pasid);
    // SMMUv3 nesting: the RID's vSTE holds the CD table, and the PASID is the SubstreamID that
    // selects the CD (no PASID can be attached beside a vSTE HWPT, which is not PASID-compatible).
    if (domain === 0 && pasid !== NO_PASID) {
      const rid = this.#ctx.ridDomain(dev);
      if (rid !== 0 && this.#ctx.domainFormat(rid) === DomainFormat.ArmNested) domain = rid;
    }
    let result: number;
    if (domain === 0) {
      result = this.fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
    } else {
      const ctx = this.#ctx;
      const format = ctx.domainFormat(domain);
      const tlb = this.#iotlb;
      let s0 = 0;
      let c0 = 0;
      let tag = domain;
      let atcFill = atc;
      if (format === DomainFormat.ArmNested) {
        // The tag's ASID comes from the CD, so the configuration is fetched before the lookup,
        // and the fill protocol's sequence and clock are read before that fetch (a parent unmap
        // racing it then defeats the fill). The shard depends on the descriptor alone.
        if (tlb !== undefined) {
          s0 = tlb.fillSeq(domain, iova);
          c0 = tlb.fillClock();
        }
        tag = this.#arm.configure(domain, pasid, iova, this.fault);
        if (!this.#arm.ats) atcFill = undefined;
      }
      if (tag < 0) {
        result = tag;
      } else {
        if (tlb !== undefined) {
          const hit = tlb.lookup(tag, iova, want);
          if (hit >= 0) {
            this.hits++;
            if (atcFill !== undefined)
              atcFill.fill(atag, iova, hit, tlb.lastShift, want, a0, ac0, this.#owner, tlb.unitShiftOf(tag));
            if (slot >= 0) this.#reclaimer.exit(slot);
            return hit;
          }
          this.misses++;
          if (format !== DomainFormat.ArmNested) {
            s0 = tlb.fillSeq(domain, iova);
            c0 = tlb.fillClock();
          }
        }
        const sh = this.#shadow;
        if (sh !== undefined && (ctx.domainFlags(domain) & DOMAIN_SHADOW) !== 0) {
          // Software nesting: the shadow stands in for the nested walk; a miss walks and fills
          // both tables at 4 KiB under one owner word (the sequence and clock read above).
          const hit = sh.lookup(tag, iova, want);
          if (hit >= 0) {
            this.shadowHits++;
            const unit = tlb!.unitShiftOf(tag);
            tlb!.fill(tag, iova, hit, 12, want, s0, c0, this.#owner, unit);
            if (atcFill !== undefined) atcFill.fill(atag, iova, hit, 12, want, a0, ac0, this.#owner, unit);
            if (slot >= 0) this.#reclaimer.exit(slot);
            return hit;
          }
          this.shadowMisses++;
          result = this.#walk(domain, format, iova, access, s0);
          if (result >= 0) {
            sh.fill(tag, pasid, iova, result, want, this.fault, s0, c0, this.#owner, true);
            if (atcFill !== undefined)
              atcFill.fill(atag, iova, result, 12, want, a0, ac0, this.#owner, this.fault.unitShift);
          }
        } else {
          result = this.#walk(domain, format, iova, access, s0);
          if (result >= 0) {
            const f = this.fault;
            if (tlb !== undefined) tlb.fill(tag, iova, result, f.leafShift, want, s0, c0, this.#owner, f.unitShift);
            if (atcFill !== undefined)
              atcFill.fill(atag, iova, result, f.leafShift, want, a0, ac0, this.#owner, f.unitShift);
          }
        }
      }
    }
    if (slot >= 0) this.#reclaimer.exit(slot);
    if (result < 0) {
      this.fault.words[3] = pasid;
      // An IOPF-capable domain: what a page request can resolve waits for one instead.
      if (
        domain !== 0 &&
        result >= TranslateFault.AccessFlag &&
        result <= TranslateFault.NotMapped &&
        (this.#ctx.domainFlags(domain) & DOMAIN_IOPF) !== 0
      )
        result = this.fault.words[0] = TranslateFault.Pending;
    }
    return result;
  }

  /**
   * Walks `iova` in `domain`, of `format` (an ArmNested one after its configuration fetch); `s0`
   * is the IOTLB shard sequence read before the walk.
   */
  #walk(domain: number, format: number, iova: number, access: number, s0: number): number {
    const ctx = this.#ctx;
    const root = ctx.domainRoot(domain);
    switch (format) {
      case DomainFormat.Mock:
        return mockWalk(this.#i32, root, iova, access, this.fault);
      case DomainFormat.ArmS1:
        return armS1Walk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
      case DomainFormat.ArmS2:
        return armS2Walk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
      case DomainFormat.VtdSecondStage:
        return vtdSecondStageWalk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
      case DomainFormat.X86FirstStage:
        return x86FirstStageWalk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
      case DomainFormat.VtdNested:
        return this.pde === undefined
          ? vtdNestedWalk(this.#i32, ctx, domain, iova, access, this.fault)
          : this.#nestedWalk(this.pde, domain, iova, access, s0);
      case DomainFormat.ArmNested:
        return this.#arm.walk(iova, access, this.fault);
      default:
        return this.fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
    }
  }

  /**
   * A VT-d hardware-nested walk through the PDE cache: resumed at the stage-1 leaf table when
   * the cache holds the region under the sequence `s0` and the tag's current epoch floor (both
   * read before the walk), else walked in full and recorded.
   */
  #nestedWalk(pde: PdeCache, domain: number, iova: number, access: number, s0: number): number {
    const ctx = this.#ctx;
    const cfg = ctx.domainConfig(domain);
    const f = this.fault;
    if ((access & Access.Priv) === 0 || (cfg & CFG.SRE) !== 0) {
      const floor = this.#iotlb!.floorOf(domain);
      const e = pde.find(domain, iova, s0, floor, access, cfg, f);
      if (e >= 0) {
        const parent = ctx.domainParent(domain);
        return x86NestedWalkLeaf(
          this.#i32,
          pde.tablePa(e),
          pde.xd(e),
          pde.tables(e),
          cfg,
          ctx.domainRoot(parent),
          ctx.domainConfig(parent),
          iova,
          access,
          f,
        );
      }
      const r = vtdNestedWalk(this.#i32, ctx, domain, iova, access, f);
      pde.record(domain, iova, s0, floor, f);
      return r;
    }
    return vtdNestedWalk(this.#i32, ctx, domain, iova, access, f);
  }
}
