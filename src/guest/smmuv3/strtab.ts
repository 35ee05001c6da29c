/**
 * The guest's SMMUv3 stream table, as Linux 6.1 builds it (`arm_smmu_init_strtab_linear`,
 * `arm_smmu_init_strtab_2lvl`, `arm_smmu_init_l2_strtab`; reference/config-formats.md §3.1,
 * §3.2): a linear array of 2^SIDSIZE STEs, or a level-1 array of descriptors with SPLIT = 8 whose
 * 256-STE level-2 tables are allocated when a device is added. Every STE starts as a valid abort
 * entry (Linux `disable_bypass`, the default): a stream no driver claimed is terminated.
 */
import type { FrameAllocator, PhysMemory } from '../../memory/index.js';
import { STRTAB_BASE, STRTAB_FMT } from '../../vendor/smmuv3/regs-defs.js';
import {
  encodeL1Std,
  encodeSte,
  encodeStrtabBaseCfg,
  L1Std,
  L1STD,
  Ste,
  STE,
  STE_CONFIG,
  StrtabBaseCfg,
} from '../../vendor/smmuv3/structures.js';
import { allocCoherent } from './coherent.js';
import { DRIVER_ERRORS } from './errors.js';

/** Linux `STRTAB_SPLIT`: StreamID bits a level-2 table indexes. */
export const STRTAB_SPLIT = 8;
/** Linux `STRTAB_L1_SZ_SHIFT` less the descriptor size: at most 2^17 level-1 descriptors. */
const STRTAB_L1_MAX_SHIFT = 17;
/** Linux `STRTAB_STE_1_SHCFG_INCOMING`. */
export const SHCFG_INCOMING = 1;

/** Linux's abort STE (`arm_smmu_write_strtab_ent` for a stream without a domain): V, Config abort, SHCFG incoming. */
export function abortSte(): Ste {
  return Object.assign(new Ste(), { valid: true, config: STE_CONFIG.Abort, shCfg: SHCFG_INCOMING });
}

/** A stream table in guest memory. */
export class StreamTable {
  /** Linear, or 2-level with SPLIT = 8. */
  readonly format: 'linear' | '2-level';
  /** Guest-physical address of the linear table or of the level-1 array. */
  readonly base: number;
  /** STRTAB_BASE_CFG.LOG2SIZE: the table covers 2^log2Size StreamIDs. */
  readonly log2Size: number;
  /** Level-2 tables allocated so far (2-level only). */
  l2Tables = 0;
  readonly #i32: Int32Array;
  readonly #frames: FrameAllocator;
  readonly #ste = new Int32Array(STE.WORDS);
  readonly #l1 = new Int32Array(L1STD.WORDS);
  /** Level-2 table address by level-1 index (2-level only). */
  readonly #l2 = new Map<number, number>();

  /**
   * Allocates the table for `sidBits` StreamID bits: 2-level when the unit supports it and
   * `sidBits` exceeds SPLIT (Linux falls back to linear for small SID spaces), else linear with
   * every STE set to abort.
   */
  constructor(guest: PhysMemory, frames: FrameAllocator, sidBits: number, twoLevel: boolean) {
    this.#i32 = guest.i32;
    this.#frames = frames;
    if (twoLevel && sidBits > STRTAB_SPLIT) {
      this.format = '2-level';
      const l1Shift = Math.min(STRTAB_L1_MAX_SHIFT, sidBits - STRTAB_SPLIT);
      this.log2Size = l1Shift + STRTAB_SPLIT;
      this.base = allocCoherent(frames, 2 ** l1Shift * L1STD.BYTES);
    } else {
      this.format = 'linear';
      this.log2Size = sidBits;
      this.base = allocCoherent(frames, 2 ** sidBits * STE.BYTES);
      this.#initAbortStes(this.base, 2 ** sidBits);
    }
  }

  /** STRTAB_BASE as Linux writes it: the address and RA. */
  get baseRegister(): bigint {
    return (BigInt(STRTAB_BASE.RA_HI) << 32n) | BigInt(this.base);
  }

  /** STRTAB_BASE_CFG as Linux writes it. */
  get baseCfgRegister(): number {
    const cfg = new StrtabBaseCfg();
    cfg.log2size = this.log2Size;
    if (this.format === '2-level') {
      cfg.fmt = STRTAB_FMT.TwoLevel;
      cfg.split = STRTAB_SPLIT;
    }
    return encodeStrtabBaseCfg(cfg);
  }

  /** StreamIDs below this have an STE (`arm_smmu_sid_in_range`). */
  get sidLimit(): number {
    return 2 ** this.log2Size;
  }

  /**
   * `arm_smmu_init_sid_strtab` / `arm_smmu_init_l2_strtab`: in a 2-level table, the level-2 table
   * of `sid` is allocated (16 KiB, aligned), filled with abort STEs and linked by its level-1
   * descriptor (SPAN = SPLIT + 1) if it is not there yet. Linux issues no invalidation for it: the
   * descriptor was invalid, and an invalid descriptor is not cached.
   */
  ensure(sid: number): void {
    if (this.format === 'linear') return;
    const l1 = Math.floor(sid / 2 ** STRTAB_SPLIT);
    if (this.#l2.has(l1)) return;
    const ptr = allocCoherent(this.#frames, 2 ** STRTAB_SPLIT * STE.BYTES);
    this.#initAbortStes(ptr, 2 ** STRTAB_SPLIT);
    const desc = Object.assign(new L1Std(), { span: STRTAB_SPLIT + 1, l2Ptr: ptr });
    encodeL1Std(desc, this.#l1);
    const at = (this.base + l1 * L1STD.BYTES) / 4;
    this.#i32[at + 1] = this.#l1[1]!;
    this.#i32[at] = this.#l1[0]!; // SPAN last
    this.#l2.set(l1, ptr);
    this.l2Tables++;
  }

  /** Guest-physical address of the STE of `sid`; ENODEV when its level-2 table was never allocated. */
  steAddress(sid: number): number {
    if (this.format === 'linear') return this.base + sid * STE.BYTES;
    const l2 = this.#l2.get(Math.floor(sid / 2 ** STRTAB_SPLIT));
    if (l2 === undefined) throw DRIVER_ERRORS.noL2(sid);
    return l2 + (sid % 2 ** STRTAB_SPLIT) * STE.BYTES;
  }

  /**
   * Writes words [from, to) of `ste`, encoded, into the STE of `sid`, the highest word first so
   * that word 0 (V and Config) goes last.
   */
  writeSte(sid: number, ste: Ste, from: number, to: number): void {
    encodeSte(ste, this.#ste);
    const at = this.steAddress(sid) / 4;
    for (let w = to - 1; w >= from; w--) this.#i32[at + w] = this.#ste[w]!;
  }

  /** `arm_smmu_init_bypass_stes(…, force = false)` with `disable_bypass`: `count` abort STEs at `gpa`. */
  #initAbortStes(gpa: number, count: number): void {
    encodeSte(abortSte(), this.#ste);
    for (let i = 0; i < count; i++) {
      const at = gpa / 4 + i * STE.WORDS;
      for (let w = 0; w < STE.WORDS; w++) this.#i32[at + w] = this.#ste[w]!;
    }
  }
}
