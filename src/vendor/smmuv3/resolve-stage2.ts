import { armS2Walk } from '../../pgtable/arm/walk.js';
import { Access, type WalkFault } from '../../pgtable/types.js';

/*
 * How a nested configuration fetch reaches guest memory (reference/config-formats.md
 * conventions): under STE.Config = nested, S1ContextPtr, the L1CD's L2Ptr and so the CD
 * addresses are IPAs, and each is translated by the STE's own stage 2 before the read. The
 * resolver hands the translator the stage 2 it decoded from the STE (S2TTB and the packed
 * armS2Walk configuration), so the translator keeps no per-stream state, and then reads the
 * physical address it gets through its ordinary QwordReader.
 */

/** Translates the IPAs of a nested configuration fetch through stage 2. */
export interface Stage2Translator {
  /**
   * The physical address of `ipa` for a read, under the stage-2 table at `root` walked with the
   * packed armS2Walk configuration `cfg`. On a stage-2 fault, returns a negative TranslateFault
   * and fills `fault`, whose vendor word (`words[4]`) holds the SMMU event type (F_TRANSLATION,
   * F_ADDR_SIZE, F_ACCESS, F_PERMISSION, or F_WALK_EABT). Must not allocate.
   */
  translate(root: number, cfg: number, ipa: number, fault: WalkFault): number;
}

/** Walks stage 2 with armS2Walk over physical memory, for a read. */
export class ArmStage2Translator implements Stage2Translator {
  readonly #i32: Int32Array;

  /** Walks the stage-2 tables in `i32` (PhysMemory.i32: word n holds bytes 4n..4n+3). */
  constructor(i32: Int32Array) {
    this.#i32 = i32;
  }

  /** See {@link Stage2Translator.translate}. */
  translate(root: number, cfg: number, ipa: number, fault: WalkFault): number {
    return armS2Walk(this.#i32, root, cfg, ipa, Access.Read, fault);
  }
}
