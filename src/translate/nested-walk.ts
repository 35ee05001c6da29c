import type { ShadowWalker } from '../cache/shadow.js';
import { Access, CFG, FaultReason, TranslateFault, VTD_FR, WalkFault, x86NestedWalk } from '../pgtable/index.js';
import { ArmNestedTranslator } from './arm-nested.js';
import { ContextTables, DomainFormat } from './tables.js';

/**
 * The hardware-nested VT-d walk of descriptor `domain` (DomainFormat.VtdNested): the guest's
 * first stage, every fetch and the output through the parent's second stage (the parent
 * outlives its nested domains). A supervisor request without SRE is refused first.
 */
export function vtdNestedWalk(
  i32: Int32Array,
  ctx: ContextTables,
  domain: number,
  iova: number,
  access: number,
  fault: WalkFault,
): number {
  const parent = ctx.domainParent(domain);
  const cfg = ctx.domainConfig(domain);
  if ((access & Access.Priv) !== 0 && (cfg & CFG.SRE) === 0)
    return fault.set(TranslateFault.Permission, 0, FaultReason.UserDenied, iova, VTD_FR.SM_SRE_CLEAR);
  // The first-stage root is a guest-physical address (up to 52 bits), walked through stage 2.
  return x86NestedWalk(
    i32,
    ctx.domainRootFull(domain),
    cfg,
    ctx.domainRoot(parent),
    ctx.domainConfig(parent),
    iova,
    access,
    fault,
  );
}

/**
 * Re-walks nested domains for the shards' shadow syncs (software nesting): the same walks as
 * a translation's, over the shared context tables and physical memory, so a worker can run it.
 * Allocation-free.
 */
export class NestedShadowWalker implements ShadowWalker {
  /** The fault record of the last walk. */
  readonly fault = new WalkFault();
  readonly #i32: Int32Array;
  readonly #tables: ContextTables;
  readonly #arm: ArmNestedTranslator;

  /** A walker over physical memory `i32` (PhysMemory.i32) and the descriptors of `tables`. */
  constructor(i32: Int32Array, tables: ContextTables) {
    this.#i32 = i32;
    this.#tables = tables;
    this.#arm = new ArmNestedTranslator(i32, tables);
  }

  /** Walks `iova` for a request with `pasid` whose IOTLB tag word was `tag` (a fault if its configuration now gives another). */
  walk(tag: number, pasid: number, iova: number, access: number): number {
    const domain = tag & 0xfff;
    const f = this.fault;
    switch (this.#tables.domainFormat(domain)) {
      case DomainFormat.VtdNested:
        return vtdNestedWalk(this.#i32, this.#tables, domain, iova, access, f);
      case DomainFormat.ArmNested: {
        const now = this.#arm.configure(domain, pasid, iova, f);
        if (now < 0) return now;
        if (now !== tag) return f.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
        return this.#arm.walk(iova, access, f);
      }
      default:
        return f.set(TranslateFault.NoDomain, 0, FaultReason.NoDomain, iova);
    }
  }

  /** VT-d nested descriptors name one stage-1 table, so any page of one can be walked before it is asked for. */
  canPrefetch(domain: number): boolean {
    return this.#tables.domainFormat(domain) === DomainFormat.VtdNested;
  }

  /** The nest parent of `domain`. */
  parentOf(domain: number): number {
    return this.#tables.domainParent(domain);
  }
}
