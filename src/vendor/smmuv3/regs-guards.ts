import { CR0, CR1, IRQ_CTRL, SMMU_REG } from './regs-defs.js';

/** Every bit of a word. */
export const GUARD_ALL_BITS = 0xffffffff;

/**
 * A Guarded field: while any `cr0` bit is set in CR0 or CR0ACK (or any `irq` bit in IRQ_CTRL or
 * IRQ_CTRLACK), `bits` of each word in `regs` are read-only.
 */
interface Guard {
  readonly regs: readonly number[];
  readonly cr0?: number;
  readonly irq?: number;
  readonly bits: number;
}

/**
 * The Guarded registers (IHI0070 §6.2, §6.3): a field may change only while the enable that guards
 * it is 0, and from SMMUv3.2 on a write made while the guard is set is IGNORED. One row per guard
 * (keep in register order).
 */
const GUARDS: readonly Guard[] = [
  { regs: [SMMU_REG.CR1], cr0: CR0.SMMUEN, bits: CR1.TableMask },
  { regs: [SMMU_REG.CR1], cr0: CR0.CMDQEN | CR0.EVTQEN | CR0.PRIQEN, bits: CR1.QueueMask },
  { regs: [SMMU_REG.CR2], cr0: CR0.SMMUEN, bits: GUARD_ALL_BITS },
  {
    regs: [SMMU_REG.GERROR_IRQ_CFG0, SMMU_REG.GERROR_IRQ_CFG0 + 4, SMMU_REG.GERROR_IRQ_CFG1, SMMU_REG.GERROR_IRQ_CFG2],
    irq: IRQ_CTRL.GERROR_IRQEN,
    bits: GUARD_ALL_BITS,
  },
  {
    regs: [SMMU_REG.STRTAB_BASE, SMMU_REG.STRTAB_BASE + 4, SMMU_REG.STRTAB_BASE_CFG],
    cr0: CR0.SMMUEN,
    bits: GUARD_ALL_BITS,
  },
  { regs: [SMMU_REG.CMDQ_BASE, SMMU_REG.CMDQ_BASE + 4, SMMU_REG.CMDQ_CONS], cr0: CR0.CMDQEN, bits: GUARD_ALL_BITS },
  { regs: [SMMU_REG.EVTQ_BASE, SMMU_REG.EVTQ_BASE + 4, SMMU_REG.EVTQ_PROD], cr0: CR0.EVTQEN, bits: GUARD_ALL_BITS },
  {
    regs: [SMMU_REG.EVTQ_IRQ_CFG0, SMMU_REG.EVTQ_IRQ_CFG0 + 4, SMMU_REG.EVTQ_IRQ_CFG1, SMMU_REG.EVTQ_IRQ_CFG2],
    irq: IRQ_CTRL.EVTQ_IRQEN,
    bits: GUARD_ALL_BITS,
  },
  // PRIQ_* are Guarded by the written PRIQEN, not its effective value (IHI0070 §6.3.9.5).
  { regs: [SMMU_REG.PRIQ_BASE, SMMU_REG.PRIQ_BASE + 4, SMMU_REG.PRIQ_PROD], cr0: CR0.PRIQEN, bits: GUARD_ALL_BITS },
  {
    regs: [SMMU_REG.PRIQ_IRQ_CFG0, SMMU_REG.PRIQ_IRQ_CFG0 + 4, SMMU_REG.PRIQ_IRQ_CFG1, SMMU_REG.PRIQ_IRQ_CFG2],
    irq: IRQ_CTRL.PRIQ_IRQEN,
    bits: GUARD_ALL_BITS,
  },
];

/** GUARDS indexed by word offset. */
const GUARDS_BY_WORD: ReadonlyMap<number, readonly Guard[]> = (() => {
  const m = new Map<number, Guard[]>();
  for (const g of GUARDS) for (const r of g.regs) m.set(r, [...(m.get(r) ?? []), g]);
  return m;
})();

/**
 * The bits of the page-0 word at `reg` that are read-only right now, given `cr0` (CR0 | CR0ACK)
 * and `irq` (IRQ_CTRL | IRQ_CTRLACK); GUARD_ALL_BITS means the whole word ignores writes.
 */
export function guardedBits(reg: number, cr0: number, irq: number): number {
  const guards = GUARDS_BY_WORD.get(reg);
  if (guards === undefined) return 0;
  let locked = 0;
  for (const g of guards) {
    if (((g.cr0 ?? 0) & cr0) !== 0 || ((g.irq ?? 0) & irq) !== 0) locked |= g.bits;
  }
  return locked >>> 0;
}
