import type { Iotlb } from '../cache/index.js';
import type { EpochReclaimer } from '../memory/reclaim.js';
import type { PhysMemory } from '../memory/phys.js';
import {
  Access,
  armS1Walk,
  CFG,
  armS2Walk,
  FaultReason,
  mockWalk,
  TranslateFault,
  vtdSecondStageWalk,
  WalkFault,
  VTD_FR,
  x86FirstStageWalk,
  x86NestedWalk,
} from '../pgtable/index.js';
import { ContextTables, DEV_ATS, DomainFormat } from './tables.js';

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
  /** IOTLB hits by this translator. */
  hits = 0;
  /** IOTLB misses by this translator (each followed by a walk). */
  misses = 0;
  /** ATC hits by this translator (requests without PASID from devices with ATS). */
  atcHits = 0;

  /**
   * Creates a translator over `mem` and `ctx`; `slot` is this thread's reader slot, or -1. With
   * an `iotlb`, a translation tries it first and fills it after a walk; with an `atc` (tagged by
   * device slot), a request without PASID from a device with ATS tries that before the IOTLB.
   */
  constructor(
    mem: PhysMemory,
    ctx: ContextTables,
    reclaimer: EpochReclaimer,
    slot: number,
    iotlb?: Iotlb,
    atc?: Iotlb,
  ) {
    this.#i32 = mem.i32;
    this.#ctx = ctx;
    this.#reclaimer = reclaimer;
    this.#slot = slot;
    this.#iotlb = iotlb;
    this.#atc = atc;
    // The owner id a fill takes shard owner words with: reader slot + 1, or 999 for the control
    // plane (ids from 1001 up are pipeline workers').
    this.#owner = slot >= 0 ? slot + 1 : 999;
  }

  /**
   * Translates `iova` for a request with `access` bits from device slot `dev` (and `pasid`, or
   * {@link NO_PASID}). Returns the physical address, or a negative TranslateFault.
   */
  translate(dev: number, iova: number, access: number, pasid: number): number {
    const slot = this.#slot;
    if (slot >= 0) this.#reclaimer.enter(slot);
    // What the caches keep per entry: R/W/X, and bit 3 "user" (the inverse of Access.Priv), so
    // that a grant to a privileged request never serves an unprivileged one.
    const want = (access & 7) | ((access & Access.Priv) === 0 ? 8 : 0);
    // The device's own ATC (PCIe ATS), tagged by (device, PASID) rather than by domain, so its
    // fill sequence and clock are read before the device's domain: a replace switches the domain
    // and then flushes the device's ATC tag, which outdates any fill from a walk that still saw
    // the old domain.
    const atc = (this.#ctx.deviceFlags(dev) & DEV_ATS) !== 0 ? this.#atc : undefined;
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
    const domain = pasid === NO_PASID ? this.#ctx.ridDomain(dev) : this.#ctx.pasidDomain(dev, pasid);
    let result: number;
    if (domain === 0) {
      result = this.fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
    } else {
      const tlb = this.#iotlb;
      let s0 = 0;
      let c0 = 0;
      if (tlb !== undefined) {
        const hit = tlb.lookup(domain, iova, want);
        if (hit >= 0) {
          this.hits++;
          if (atc !== undefined) atc.fill(atag, iova, hit, tlb.lastShift, want, a0, ac0, this.#owner);
          if (slot >= 0) this.#reclaimer.exit(slot);
          return hit;
        }
        this.misses++;
        s0 = tlb.fillSeq(domain, iova);
        c0 = tlb.fillClock();
      }
      const ctx = this.#ctx;
      const root = ctx.domainRoot(domain);
      switch (ctx.domainFormat(domain)) {
        case DomainFormat.Mock:
          result = mockWalk(this.#i32, root, iova, access, this.fault);
          break;
        case DomainFormat.ArmS1:
          result = armS1Walk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
          break;
        case DomainFormat.ArmS2:
          result = armS2Walk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
          break;
        case DomainFormat.VtdSecondStage:
          result = vtdSecondStageWalk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
          break;
        case DomainFormat.X86FirstStage:
          result = x86FirstStageWalk(this.#i32, root, ctx.domainConfig(domain), iova, access, this.fault);
          break;
        case DomainFormat.VtdNested: {
          // Hardware nesting: the guest's first stage, every fetch and the output through the
          // parent's second stage (the parent outlives its nested domains).
          const parent = ctx.domainParent(domain);
          const cfg = ctx.domainConfig(domain);
          result =
            (access & Access.Priv) !== 0 && (cfg & CFG.SRE) === 0
              ? this.fault.set(TranslateFault.Permission, 0, FaultReason.UserDenied, iova, VTD_FR.SM_SRE_CLEAR)
              : x86NestedWalk(
                  this.#i32,
                  root,
                  cfg,
                  ctx.domainRoot(parent),
                  ctx.domainConfig(parent),
                  iova,
                  access,
                  this.fault,
                );
          break;
        }
        default:
          result = this.fault.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
      }
      if (result >= 0) {
        if (tlb !== undefined) tlb.fill(domain, iova, result, this.fault.leafShift, want, s0, c0, this.#owner);
        if (atc !== undefined) atc.fill(atag, iova, result, this.fault.leafShift, want, a0, ac0, this.#owner);
      }
    }
    if (slot >= 0) this.#reclaimer.exit(slot);
    if (result < 0) this.fault.words[3] = pasid;
    return result;
  }
}
