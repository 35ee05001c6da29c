import { describe, expect, it } from 'vitest';
import {
  SmmuRegisters,
  type SmmuInterrupt,
  type SmmuOutQueueKind,
  type SmmuRegisterHooks,
  type SmmuStreamTable,
} from '../../src/vendor/smmuv3/regs.js';
import type { SmmuRegisterOptions } from '../../src/vendor/smmuv3/regs-caps.js';
import {
  CERROR,
  CR0,
  CR1,
  CR2,
  GBPA,
  GERROR,
  IDR0,
  IDR1,
  IDR3,
  IDR5,
  IRQ_CFG,
  IRQ_CTRL,
  Q_INDEX,
  SMMU_PAGE1_REG as P1,
  SMMU_REG as R,
} from '../../src/vendor/smmuv3/regs-defs.js';
import { queueEmpty, queueFull, queueIncrement, queueSlot } from '../../src/vendor/smmuv3/regs-queue.js';
import {
  decodeEvent,
  decodePriRequest,
  encodeEvent,
  encodePriRequest,
  EVT_CLASS,
  EVT_ID,
  SmmuOutQueue,
  type SmmuGuestWrite,
} from '../../src/vendor/smmuv3/queues.js';

type HookName = keyof SmmuRegisterHooks;

/** A register block plus every interrupt it sent and every hook call it made. */
function unit(options: SmmuRegisterOptions = {}) {
  const calls: [HookName, unknown[]][] = [];
  const msis: [number, number][] = [];
  const state = { msiOk: true };
  const hooks: Required<SmmuRegisterHooks> = {
    cmdqDoorbell: (...a) => void calls.push(['cmdqDoorbell', a]),
    controlChanged: (...a) => void calls.push(['controlChanged', a]),
    streamTableChanged: (...a) => void calls.push(['streamTableChanged', a]),
    bypassChanged: (...a) => void calls.push(['bypassChanged', a]),
    outQueueUpdated: (...a) => void calls.push(['outQueueUpdated', a]),
    msiWrite: (addr, data) => {
      msis.push([addr, data]);
      return state.msiOk;
    },
  };
  const regs = new SmmuRegisters(options, hooks);
  const irqs: SmmuInterrupt[] = [];
  regs.interrupts$.subscribe((i) => irqs.push(i));
  const rd = (off: number) => regs.mmioRead(off, 4);
  const wr = (off: number, v: number) => regs.mmioWrite(off, v, 4);
  const rd64 = (off: number) => regs.mmioRead(off, 8);
  const wr64 = (off: number, v: bigint | number) => regs.mmioWrite(off, v, 8);
  const hookCalls = (name: HookName) => calls.filter(([n]) => n === name).map(([, a]) => a);
  /** Linux's idiom: read-modify-write CR0. */
  const setCr0 = (bits: number, on = true) => wr(R.CR0, on ? rd(R.CR0) | bits : rd(R.CR0) & ~bits);
  return { regs, irqs, calls, msis, state, hookCalls, rd, wr, rd64, wr64, setCr0 };
}

type Unit = ReturnType<typeof unit>;

/** Guest memory for the output queues: a word array, a log of record addresses, and addresses that abort. */
function guestMemory(bytes = 1 << 20) {
  const mem = new Int32Array(bytes / 4);
  const aborts = new Set<number>();
  const writes: number[] = [];
  const write: SmmuGuestWrite = (addr, words) => {
    if (aborts.has(addr)) return false;
    writes.push(addr);
    mem.set(words, addr / 4);
    return true;
  };
  const at = (addr: number, words: number) => mem.slice(addr / 4, addr / 4 + words);
  return { mem, aborts, writes, write, at };
}

const EVTQ_BASE = 0x4000;
const PRIQ_BASE = 0x8000;

/** Programs the event queue (base, size, PROD = CONS = 0) and enables it. */
function enableEvtq(u: Unit, log2Size = 2) {
  u.wr64(R.EVTQ_BASE, BigInt(EVTQ_BASE | log2Size));
  u.wr(P1.EVTQ_PROD, 0);
  u.wr(P1.EVTQ_CONS, 0);
  u.setCr0(CR0.EVTQEN);
}

/** Programs the PRI queue and enables it (PRIQEN is effective only with SMMUEN). */
function enablePriq(u: Unit, log2Size = 2) {
  u.wr64(R.PRIQ_BASE, BigInt(PRIQ_BASE | log2Size));
  u.setCr0(CR0.PRIQEN | CR0.SMMUEN);
}

/** Programs the command queue at 0x10000 with 2^log2Size entries and enables it. */
function enableCmdq(u: Unit, log2Size = 4) {
  u.wr64(R.CMDQ_BASE, BigInt(0x10000 | log2Size));
  u.wr(R.CMDQ_PROD, 0);
  u.wr(R.CMDQ_CONS, 0);
  u.setCr0(CR0.CMDQEN);
}

const field = (v: number, shift: number, mask: number) => (v >>> shift) & mask;

/** A translation fault event with every field set. */
const FAULT = {
  type: EVT_ID.F_TRANSLATION,
  sid: 0x1234,
  ssid: 0x5,
  read: true,
  privileged: true,
  stage2: true,
  class: EVT_CLASS.IN,
  inputAddress: 0x12_3456_7000,
  address2: 0x9_8765_4abc,
} as const;

describe('reset values', () => {
  it('every page-0 word reads its reset value; IDRs as documented for the default (nesting, ATS/PRI, MSI) unit', () => {
    const { rd } = unit();
    const expected = new Map<number, number>([
      [R.IDR0, 0x0d4d361b],
      [R.IDR1, 0x02739d10],
      [R.IDR3, 0x404],
      [R.IDR5, 0x55],
      [R.AIDR, 0x02],
      [R.GBPA, GBPA.Reset],
    ]);
    for (let off = 0; off < 0x100; off += 4) expect([off, rd(off)]).toEqual([off, expected.get(off) ?? 0]);
    for (const off of Object.values(P1)) expect(rd(off)).toBe(0);
  });

  it('a QEMU-like option set reproduces QEMU smmuv3_init_regs: stage 1 only, no ATS/MSI/SSIDs, OAS 44', () => {
    const { rd } = unit({ stage2: false, ats: false, msi: false, ssidBits: 0, oas: 44 });
    expect(rd(R.IDR0)).toBe(0x0d40101a);
    expect(rd(R.IDR1)).toBe(0x02730010);
    expect(rd(R.IDR3)).toBe(0x404);
    expect(rd(R.IDR5)).toBe(0x54);
  });

  it('IIDR, AIDR and GBPA.ABORT follow the options', () => {
    const { rd } = unit({ iidr: 0x43b, archMinorRevision: 1, gbpaAbort: true });
    expect(rd(R.IIDR)).toBe(0x43b);
    expect(rd(R.AIDR)).toBe(0x01);
    expect(rd(R.GBPA)).toBe(GBPA.Reset | GBPA.ABORT);
  });

  it('reset() returns a programmed unit to its reset values and forgets latched state', () => {
    const u = unit();
    u.wr64(R.STRTAB_BASE, 0x8000n);
    u.wr(R.STRTAB_BASE_CFG, 8);
    enableCmdq(u);
    u.wr(R.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN);
    u.regs.raiseGerror(GERROR.CMDQ_ERR);
    u.regs.reset();
    for (const off of [R.CR0, R.CR0ACK, R.IRQ_CTRL, R.IRQ_CTRLACK, R.GERROR, R.STRTAB_BASE_CFG, R.CMDQ_PROD])
      expect(u.rd(off)).toBe(0);
    expect(u.rd64(R.CMDQ_BASE)).toBe(0n);
    expect(u.regs.cmdqBase).toBe(0);
    expect(u.regs.streamTable).toEqual({ address: 0, format: 'linear', log2Size: 0, split: 6 });
  });
});

describe('ID registers follow the options', () => {
  const idr = (o: SmmuRegisterOptions) => {
    const r = new SmmuRegisters(o);
    return { idr0: r.idr0, idr1: r.idr1, idr3: r.idr3, idr5: r.idr5 };
  };
  const base = idr({});

  it.each([
    ['stage1', { stage1: false }, 'idr0', IDR0.S1P | IDR0.ASID16 | IDR0.HYP],
    ['stage2', { stage2: false }, 'idr0', IDR0.S2P | IDR0.VMID16 | IDR0.HYP],
    ['ats (and pri with it)', { ats: false }, 'idr0', IDR0.ATS | IDR0.PRI],
    ['pri', { pri: false }, 'idr0', IDR0.PRI],
    ['twoLevelCdTable', { twoLevelCdTable: false }, 'idr0', IDR0.CD2L],
    ['msi', { msi: false }, 'idr0', IDR0.MSI],
    ['coherent', { coherent: false }, 'idr0', IDR0.COHACC],
    ['hyp', { hyp: false }, 'idr0', IDR0.HYP],
    ['vmid16', { vmid16: false }, 'idr0', IDR0.VMID16],
    ['asid16', { asid16: false }, 'idr0', IDR0.ASID16],
    ['ril', { ril: false }, 'idr3', IDR3.RIL],
    ['had', { had: false }, 'idr3', IDR3.HAD],
    ['granule4k', { granule4k: false }, 'idr5', IDR5.GRAN4K],
    ['granule64k', { granule64k: false }, 'idr5', IDR5.GRAN64K],
  ] as const)('turning off %s clears exactly its bits', (_name, o, reg, bits) => {
    const got = idr(o);
    expect(got[reg]).toBe((base[reg] & ~bits) >>> 0);
    for (const other of ['idr0', 'idr3', 'idr5'] as const) if (other !== reg) expect(got[other]).toBe(base[other]);
  });

  it('turning off the 2-level stream table clears ST_LEVEL (needs SIDSIZE ≤ 6)', () => {
    const { idr0, idr1 } = idr({ twoLevelStreamTable: false, sidBits: 6 });
    expect(field(idr0, IDR0.StLevelShift, 3)).toBe(0);
    expect(field(idr1, IDR1.SidsizeShift, IDR1.SidsizeMask)).toBe(6);
  });

  it('turning off PRI reports PRIQS 0; SSIDs off reports SSIDSIZE 0 and drops CD2L', () => {
    expect(field(idr({ pri: false }).idr1, IDR1.PriqsShift, 0x1f)).toBe(0);
    const { idr0, idr1 } = idr({ ssidBits: 0 });
    expect(field(idr1, IDR1.SsidsizeShift, 0x1f)).toBe(0);
    expect(idr0 & IDR0.CD2L).toBe(0);
  });

  it('fields with values: stall models, TTF, TTENDIAN, HTTU, TERM_MODEL, SEV', () => {
    const stallModel = (o: SmmuRegisterOptions) => field(idr(o).idr0, IDR0.StallModelShift, 3);
    expect(stallModel({})).toBe(1);
    expect(stallModel({ stall: true })).toBe(0);
    expect(stallModel({ stall: true, stallForce: true })).toBe(2);
    expect(field(idr({ ttf: 'aarch32+aarch64' }).idr0, IDR0.TtfShift, 3)).toBe(3);
    expect(field(idr({ ttEndian: 'mixed' }).idr0, IDR0.TtendianShift, 3)).toBe(0);
    expect(field(idr({ ttEndian: 'big' }).idr0, IDR0.TtendianShift, 3)).toBe(3);
    expect(field(idr({ httu: 'access-dirty' }).idr0, IDR0.HttuShift, 3)).toBe(2);
    expect(idr({ terminateRazWi: true }).idr0 & IDR0.TERM_MODEL).toBe(0);
    expect(idr({ sev: true }).idr0 & IDR0.SEV).toBe(IDR0.SEV);
  });

  it('IDR1 and IDR5 values: widths, queue limits, OAS, STALL_MAX, 16K granule', () => {
    const { idr1, idr5 } = idr({
      sidBits: 32,
      ssidBits: 8,
      cmdqMaxLog2: 8,
      evtqMaxLog2: 7,
      priqMaxLog2: 6,
      oas: 52,
      stall: true,
      stallMax: 32,
      granule16k: true,
    });
    expect(field(idr1, IDR1.SidsizeShift, IDR1.SidsizeMask)).toBe(32);
    expect(field(idr1, IDR1.SsidsizeShift, 0x1f)).toBe(8);
    expect(field(idr1, IDR1.CmdqsShift, 0x1f)).toBe(8);
    expect(field(idr1, IDR1.EvtqsShift, 0x1f)).toBe(7);
    expect(field(idr1, IDR1.PriqsShift, 0x1f)).toBe(6);
    expect(idr5 & IDR5.OasMask).toBe(6);
    expect(field(idr5, IDR5.StallMaxShift, IDR5.StallMaxMask)).toBe(32);
    expect(idr5 & IDR5.GRAN16K).toBe(IDR5.GRAN16K);
    expect(idr({}).idr5 >>> IDR5.StallMaxShift).toBe(0); // no STALL_MAX without stall
  });

  it('resolved options expose nesting = both stages', () => {
    expect(new SmmuRegisters().options.nesting).toBe(true);
    expect(new SmmuRegisters({ stage2: false }).options.nesting).toBe(false);
  });

  it('rejects option combinations the architecture does not allow', () => {
    expect(() => new SmmuRegisters({ stage1: false, stage2: false })).toThrow(/stage1 or stage2/);
    expect(() => new SmmuRegisters({ ats: false, pri: true })).toThrow(/pri needs ats/);
    expect(() => new SmmuRegisters({ stallForce: true })).toThrow(/stallForce needs stall/);
    expect(() => new SmmuRegisters({ stage2: false, hyp: true })).toThrow(/hyp needs/);
    expect(() => new SmmuRegisters({ ssidBits: 0, twoLevelCdTable: true })).toThrow(/ssidBits > 0/);
    expect(() => new SmmuRegisters({ twoLevelStreamTable: false })).toThrow(/sidBits >= 7/);
    expect(() => new SmmuRegisters({ granule4k: false, granule64k: false })).toThrow(/granule/);
    expect(() => new SmmuRegisters({ ssidBits: 21 })).toThrow(/ssidBits/);
    expect(() => new SmmuRegisters({ sidBits: 33 })).toThrow(/sidBits/);
    expect(() => new SmmuRegisters({ cmdqMaxLog2: 20 })).toThrow(/cmdqMaxLog2/);
    expect(() => new SmmuRegisters({ oas: 46 as 48 })).toThrow(/oas/);
    expect(() => new SmmuRegisters({ ttf: 'aarch32' as 'aarch64' })).toThrow(/ttf/);
  });
});

describe('write masks', () => {
  it('read-only registers ignore writes', () => {
    const { rd, wr } = unit();
    const ro = [
      R.IDR0,
      R.IDR1,
      R.IDR2,
      R.IDR3,
      R.IDR4,
      R.IDR5,
      R.IIDR,
      R.AIDR,
      R.CR0ACK,
      R.STATUSR,
      R.IRQ_CTRLACK,
      R.GERROR,
    ];
    const before = ro.map(rd);
    for (const off of ro) wr(off, 0xffffffff);
    expect(ro.map(rd)).toEqual(before);
  });

  it('reserved bits read as zero in every writeable register (default unit)', () => {
    const { rd, wr, rd64, wr64 } = unit();
    const all = 0xffffffff;
    const writeRead = (off: number) => {
      wr(off, all);
      return rd(off);
    };
    const writeRead64 = (off: number) => {
      wr64(off, 0xffffffffffffffffn);
      return rd64(off);
    };
    expect(writeRead(R.CR1)).toBe(0xfff);
    expect(writeRead(R.CR2)).toBe(CR2.E2H | CR2.RECINVSID);
    expect(writeRead(R.IRQ_CTRL)).toBe(0x7);
    wr(R.IRQ_CTRL, 0); // the IRQ_CFG registers are Guarded by the enables
    expect(writeRead(R.GERRORN)).toBe(0x1fd);
    expect(writeRead(R.STRTAB_BASE_CFG)).toBe(0x307ff);
    expect(writeRead64(R.STRTAB_BASE)).toBe(0x4000ffffffffffc0n); // RA, ADDR[47:6] at OAS 48
    for (const q of [R.CMDQ_BASE, R.EVTQ_BASE, R.PRIQ_BASE]) expect(writeRead64(q)).toBe(0x4000ffffffffffffn);
    expect(writeRead(R.CMDQ_PROD)).toBe(0xfffff);
    expect(writeRead(R.CMDQ_CONS)).toBe(0xfffff); // ERR is the SMMU's
    for (const off of [R.EVTQ_PROD, R.EVTQ_CONS, R.PRIQ_PROD, R.PRIQ_CONS]) expect(writeRead(off)).toBe(0x800fffff);
    for (const cfg0 of [R.GERROR_IRQ_CFG0, R.EVTQ_IRQ_CFG0, R.PRIQ_IRQ_CFG0])
      expect(writeRead64(cfg0)).toBe(0x0000fffffffffffcn);
    for (const cfg1 of [R.GERROR_IRQ_CFG1, R.EVTQ_IRQ_CFG1, R.PRIQ_IRQ_CFG1]) expect(writeRead(cfg1)).toBe(all);
    expect(writeRead(R.GERROR_IRQ_CFG2)).toBe(0x3f);
    expect(writeRead(R.EVTQ_IRQ_CFG2)).toBe(0x3f);
    expect(writeRead(R.PRIQ_IRQ_CFG2)).toBe((IRQ_CFG.LO | 0x3f) >>> 0);
    expect(writeRead(R.CR0)).toBe(0x1f); // last: it enables everything
  });

  it('bits of features turned off are reserved: CR0, CR2, IRQ_CTRL, GERRORN, STRTAB_BASE_CFG, MSI registers', () => {
    const { rd, wr, rd64, wr64 } = unit({
      ats: false,
      msi: false,
      hyp: false,
      twoLevelStreamTable: false,
      sidBits: 6,
      oas: 32,
    });
    wr(R.CR2, 0xffffffff);
    expect(rd(R.CR2)).toBe(CR2.RECINVSID);
    wr(R.IRQ_CTRL, 0xffffffff);
    expect(rd(R.IRQ_CTRL)).toBe(IRQ_CTRL.GERROR_IRQEN | IRQ_CTRL.EVTQ_IRQEN);
    wr(R.IRQ_CTRL, 0);
    wr(R.GERRORN, 0xffffffff);
    expect(rd(R.GERRORN)).toBe(GERROR.CMDQ_ERR | GERROR.EVTQ_ABT_ERR | GERROR.SFM_ERR);
    wr(R.STRTAB_BASE_CFG, 0xffffffff);
    expect(rd(R.STRTAB_BASE_CFG)).toBe(0x3f);
    wr64(R.STRTAB_BASE, 0xffffffffffffffffn);
    expect(rd64(R.STRTAB_BASE)).toBe(0x40000000ffffffc0n); // OAS 32: only RA above bit 31
    for (const off of [R.GERROR_IRQ_CFG0, R.GERROR_IRQ_CFG1, R.EVTQ_IRQ_CFG1, R.PRIQ_IRQ_CFG2, R.PRIQ_BASE]) {
      wr(off, 0xffffffff);
      expect(rd(off)).toBe(0);
    }
    for (const off of [R.PRIQ_PROD, P1.PRIQ_PROD, P1.PRIQ_CONS]) {
      wr(off, 0xffffffff);
      expect(rd(off)).toBe(0);
    }
    wr(R.CR0, 0xffffffff);
    expect(rd(R.CR0)).toBe(CR0.SMMUEN | CR0.EVTQEN | CR0.CMDQEN);
  });

  it('PRIQ_IRQ_CFG2.LO exists with PRI even without MSIs', () => {
    const { rd, wr } = unit({ msi: false });
    wr(R.PRIQ_IRQ_CFG2, 0xffffffff);
    expect(rd(R.PRIQ_IRQ_CFG2)).toBe(IRQ_CFG.LO >>> 0);
  });

  it('PROD/CONS keep index bits up to the largest queue wrap bit only', () => {
    const { rd, wr } = unit({ cmdqMaxLog2: 8, evtqMaxLog2: 5 });
    wr(R.CMDQ_PROD, 0xffffffff);
    expect(rd(R.CMDQ_PROD)).toBe(0x1ff);
    wr(P1.EVTQ_CONS, 0xffffffff);
    expect(rd(P1.EVTQ_CONS)).toBe((Q_INDEX.OVF | 0x3f) >>> 0);
  });

  it('offsets without a register read 0 and ignore writes; misaligned and unsized accesses are refused', () => {
    const { regs, rd, wr } = unit();
    for (const off of [0x30, 0x48, 0x58, 0xe0, 0xfc, 0x100, 0xfd0, 0x10000, 0x10020, 0x100a0, 0x1fffc]) {
      wr(off, 0xffffffff);
      expect([off, rd(off)]).toEqual([off, 0]);
    }
    wr(R.CR1 + 1, 0xff);
    expect(rd(R.CR1)).toBe(0);
    expect(rd(R.CR1 + 2)).toBe(0);
    expect(rd(0x20000)).toBe(0);
    expect(() => regs.mmioRead(R.CR0, 2 as 4)).toThrow(/size/);
    expect(() => regs.mmioWrite(R.CR0, 2 ** 32, 4)).toThrow(/4-byte/);
    expect(() => regs.mmioWrite(R.STRTAB_BASE, -1n, 8)).toThrow(/8-byte/);
  });
});

describe('64-bit registers', () => {
  it('two 32-bit halves and one 64-bit access reach the same register', () => {
    const { rd, wr, rd64, wr64 } = unit();
    wr(R.STRTAB_BASE, 0x12345640);
    wr(R.STRTAB_BASE + 4, 0x9abc);
    expect(rd64(R.STRTAB_BASE)).toBe(0x9abc12345640n);
    wr64(R.CMDQ_BASE, 0x4000123456789a05n);
    expect(rd(R.CMDQ_BASE)).toBe(0x56789a05);
    expect(rd(R.CMDQ_BASE + 4)).toBe(0x40001234);
    wr64(R.EVTQ_IRQ_CFG0, 0xabcd_1234_5678); // an 8-byte write may carry a safe integer number
    expect(rd64(R.EVTQ_IRQ_CFG0)).toBe(0xabcd12345678n);
  });

  it('an 8-byte access to a pair of 32-bit registers or a misaligned offset is RAZ/WI', () => {
    const { rd, rd64, wr64 } = unit();
    wr64(R.CMDQ_PROD, 0x0000000500000007n);
    expect(rd(R.CMDQ_PROD)).toBe(0);
    expect(rd(R.CMDQ_CONS)).toBe(0);
    wr64(R.STRTAB_BASE + 4, 0x1000n);
    expect(rd64(R.STRTAB_BASE)).toBe(0n);
    expect(rd64(R.CR0)).toBe(0n);
    expect(rd64(R.IDR0)).toBe(0n);
  });

  it('writing the high half latches the queue base too (QEMU latches on either half)', () => {
    const { regs, wr } = unit();
    wr(R.CMDQ_BASE, 0x20004);
    wr(R.CMDQ_BASE + 4, 0x1);
    expect(regs.cmdqBase).toBe(0x1_0002_0000);
    expect(regs.cmdqLog2Size).toBe(4);
  });
});

describe('page 1', () => {
  it('EVTQ_PROD/CONS and PRIQ_PROD/CONS live in page 1 and alias their page-0 offsets', () => {
    const { rd, wr } = unit();
    wr(P1.EVTQ_CONS, 3);
    expect(rd(R.EVTQ_CONS)).toBe(3);
    wr(R.PRIQ_CONS, 5);
    expect(rd(P1.PRIQ_CONS)).toBe(5);
    wr(P1.EVTQ_PROD, 2);
    expect(rd(R.EVTQ_PROD)).toBe(2);
  });
});

describe('CR0 / CR0ACK', () => {
  it('CR0 writes are acknowledged in CR0ACK at once, and the change is reported', () => {
    const u = unit();
    u.wr(R.CR0, CR0.SMMUEN | CR0.CMDQEN | CR0.ATSCHK);
    expect(u.rd(R.CR0ACK)).toBe(CR0.SMMUEN | CR0.CMDQEN | CR0.ATSCHK);
    expect(u.regs.smmuEnabled).toBe(true);
    expect(u.regs.atsCheck).toBe(true);
    expect(u.regs.cmdqEnabled).toBe(true);
    u.wr(R.CR0, CR0.SMMUEN | CR0.CMDQEN | CR0.ATSCHK);
    u.wr(R.CR0, CR0.CMDQEN);
    expect(u.rd(R.CR0ACK)).toBe(CR0.CMDQEN);
    expect(u.hookCalls('controlChanged')).toEqual([
      [CR0.SMMUEN | CR0.CMDQEN | CR0.ATSCHK, CR0.SMMUEN | CR0.CMDQEN | CR0.ATSCHK],
      [CR0.CMDQEN, CR0.SMMUEN | CR0.ATSCHK],
    ]);
  });

  it('PRIQEN is effective only while SMMUEN is set', () => {
    const u = unit();
    u.setCr0(CR0.PRIQEN);
    expect(u.regs.priq.enabled).toBe(false);
    u.setCr0(CR0.SMMUEN);
    expect(u.regs.priq.enabled).toBe(true);
    expect(u.hookCalls('outQueueUpdated')).toEqual([['priq']]);
  });
});

describe('IRQ_CTRL / IRQ_CTRLACK', () => {
  it('IRQ_CTRL writes are acknowledged in IRQ_CTRLACK at once', () => {
    const { regs, rd, wr } = unit();
    wr(R.IRQ_CTRL, IRQ_CTRL.EVTQ_IRQEN | IRQ_CTRL.GERROR_IRQEN);
    expect(rd(R.IRQ_CTRLACK)).toBe(IRQ_CTRL.EVTQ_IRQEN | IRQ_CTRL.GERROR_IRQEN);
    expect(regs.irqCtrl).toBe(IRQ_CTRL.EVTQ_IRQEN | IRQ_CTRL.GERROR_IRQEN);
    wr(R.IRQ_CTRL, 0);
    expect(rd(R.IRQ_CTRLACK)).toBe(0);
  });
});

describe('GERROR / GERRORN', () => {
  it('an error toggles GERROR once; software acknowledges it by toggling GERRORN to match', () => {
    const { regs, rd, wr } = unit();
    expect(regs.raiseGerror(GERROR.CMDQ_ERR)).toBe(true);
    expect(rd(R.GERROR)).toBe(GERROR.CMDQ_ERR);
    expect(regs.cmdqErrorPending).toBe(true);
    expect(regs.raiseGerror(GERROR.CMDQ_ERR)).toBe(false); // already active: not toggled again
    expect(rd(R.GERROR)).toBe(GERROR.CMDQ_ERR);
    wr(R.GERRORN, rd(R.GERROR));
    expect(regs.gerrorActive).toBe(0);
    expect(regs.raiseGerror(GERROR.CMDQ_ERR | GERROR.EVTQ_ABT_ERR)).toBe(true);
    expect(rd(R.GERROR)).toBe(GERROR.EVTQ_ABT_ERR); // CMDQ_ERR toggled back to 0, still differs from GERRORN
    expect(regs.gerrorActive).toBe(GERROR.CMDQ_ERR | GERROR.EVTQ_ABT_ERR);
    wr(R.GERRORN, rd(R.GERRORN) ^ GERROR.CMDQ_ERR); // ack one of the two
    expect(regs.gerrorActive).toBe(GERROR.EVTQ_ABT_ERR);
  });

  it('the GERROR interrupt fires only when enabled, and only for newly active errors', () => {
    const u = unit();
    u.regs.raiseGerror(GERROR.SFM_ERR);
    expect(u.irqs).toEqual([]);
    u.wr(R.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN);
    expect(u.irqs).toEqual([]); // an occurrence while disabled is not delivered later
    u.regs.raiseGerror(GERROR.SFM_ERR);
    expect(u.irqs).toEqual([]);
    u.regs.raiseGerror(GERROR.CMDQ_ERR);
    expect(u.irqs).toEqual([{ kind: 'gerror' }]); // wired: GERROR_IRQ_CFG0.ADDR is 0
  });

  it('with GERROR_IRQ_CFG0/1 programmed the interrupt is an MSI, written through the hook', () => {
    const u = unit();
    u.wr64(R.GERROR_IRQ_CFG0, 0x8000_0040n);
    u.wr(R.GERROR_IRQ_CFG1, 0x2a);
    u.wr(R.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN);
    u.regs.raiseGerror(GERROR.CMDQ_ERR);
    expect(u.irqs).toEqual([{ kind: 'gerror', msi: { addr: 0x8000_0040, data: 0x2a } }]);
    expect(u.msis).toEqual([[0x8000_0040, 0x2a]]);
  });

  it('an aborted GERROR MSI activates MSI_GERROR_ABT_ERR, whose own MSI abort stops there', () => {
    const u = unit();
    u.wr64(R.GERROR_IRQ_CFG0, 0x9000n);
    u.wr(R.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN);
    u.state.msiOk = false;
    u.regs.raiseGerror(GERROR.CMDQ_ERR);
    expect(u.regs.gerrorActive).toBe(GERROR.CMDQ_ERR | GERROR.MSI_GERROR_ABT_ERR);
    expect(u.irqs.map((i) => i.kind)).toEqual(['gerror', 'gerror']);
  });

  it('toggling an inactive GERRORN bit makes it read active (QEMU stores it), without an interrupt', () => {
    const u = unit();
    u.wr(R.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN);
    u.wr(R.GERRORN, GERROR.EVTQ_ABT_ERR);
    expect(u.rd(R.GERRORN)).toBe(GERROR.EVTQ_ABT_ERR);
    expect(u.regs.gerrorActive).toBe(GERROR.EVTQ_ABT_ERR);
    expect(u.irqs).toEqual([]);
  });

  it('raiseGerror refuses bits the unit does not implement', () => {
    expect(() => new SmmuRegisters({ pri: false }).raiseGerror(GERROR.PRIQ_ABT_ERR)).toThrow(/not all implemented/);
    expect(() => new SmmuRegisters({ msi: false }).raiseGerror(GERROR.MSI_CMDQ_ABT_ERR)).toThrow(/GERROR/);
    expect(() => new SmmuRegisters().raiseGerror(1 << 1)).toThrow(/GERROR/);
  });
});

describe('Guarded registers', () => {
  it('STRTAB_BASE, STRTAB_BASE_CFG and CR2 are read-only while SMMUEN is set', () => {
    const u = unit();
    u.wr64(R.STRTAB_BASE, 0x1000n);
    u.wr(R.STRTAB_BASE_CFG, 5);
    u.wr(R.CR2, CR2.RECINVSID);
    u.setCr0(CR0.SMMUEN);
    u.wr64(R.STRTAB_BASE, 0x2000n);
    u.wr(R.STRTAB_BASE + 4, 1);
    u.wr(R.STRTAB_BASE_CFG, 7);
    u.wr(R.CR2, 0);
    expect(u.rd64(R.STRTAB_BASE)).toBe(0x1000n);
    expect(u.rd(R.STRTAB_BASE_CFG)).toBe(5);
    expect(u.regs.recordInvalidSid).toBe(true);
    expect(u.hookCalls('streamTableChanged')).toHaveLength(2);
    u.setCr0(CR0.SMMUEN, false);
    u.wr(R.STRTAB_BASE_CFG, 7);
    expect(u.rd(R.STRTAB_BASE_CFG)).toBe(7);
  });

  it('CMDQ_BASE and CMDQ_CONS are read-only while CMDQEN is set; CMDQ_PROD is not', () => {
    const u = unit();
    enableCmdq(u, 4);
    u.wr64(R.CMDQ_BASE, 0x20008n);
    u.wr(R.CMDQ_CONS, 3);
    u.wr(R.CMDQ_PROD, 3);
    expect(u.rd64(R.CMDQ_BASE)).toBe(0x10004n);
    expect(u.regs.cmdqBase).toBe(0x10000);
    expect(u.rd(R.CMDQ_CONS)).toBe(0);
    expect(u.rd(R.CMDQ_PROD)).toBe(3);
  });

  it('EVTQ_BASE and EVTQ_PROD are read-only while EVTQEN is set; EVTQ_CONS is not', () => {
    const u = unit();
    enableEvtq(u, 2);
    u.wr64(R.EVTQ_BASE, 0x9003n);
    u.wr(P1.EVTQ_PROD, 2);
    u.wr(P1.EVTQ_CONS, 1);
    expect(u.rd64(R.EVTQ_BASE)).toBe(BigInt(EVTQ_BASE | 2));
    expect(u.rd(P1.EVTQ_PROD)).toBe(0);
    expect(u.rd(P1.EVTQ_CONS)).toBe(1);
  });

  it('PRIQ_BASE and PRIQ_PROD are Guarded by the written PRIQEN, not the effective one', () => {
    const u = unit();
    u.setCr0(CR0.PRIQEN); // SMMUEN = 0: effective PRIQEN is 0, but the guard holds
    u.wr64(R.PRIQ_BASE, 0x8002n);
    u.wr(P1.PRIQ_PROD, 1);
    expect(u.rd64(R.PRIQ_BASE)).toBe(0n);
    expect(u.rd(P1.PRIQ_PROD)).toBe(0);
  });

  it('the *_IRQ_CFG registers are read-only while their interrupt is enabled', () => {
    const u = unit();
    u.wr(R.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN | IRQ_CTRL.EVTQ_IRQEN | IRQ_CTRL.PRIQ_IRQEN);
    for (const off of [R.GERROR_IRQ_CFG1, R.EVTQ_IRQ_CFG1, R.PRIQ_IRQ_CFG1, R.PRIQ_IRQ_CFG2]) {
      u.wr(off, 0x1);
      expect(u.rd(off)).toBe(0);
    }
    u.wr64(R.EVTQ_IRQ_CFG0, 0x1000n);
    expect(u.rd64(R.EVTQ_IRQ_CFG0)).toBe(0n);
    u.wr(R.IRQ_CTRL, IRQ_CTRL.GERROR_IRQEN);
    u.wr64(R.EVTQ_IRQ_CFG0, 0x1000n);
    expect(u.rd64(R.EVTQ_IRQ_CFG0)).toBe(0x1000n);
  });

  it('CR1 table attributes are Guarded by SMMUEN, queue attributes by the queue enables', () => {
    const u = unit();
    u.setCr0(CR0.SMMUEN);
    u.wr(R.CR1, 0xfff);
    expect(u.rd(R.CR1)).toBe(CR1.QueueMask);
    u.wr(R.CR0, CR0.EVTQEN);
    u.wr(R.CR1, 0);
    expect(u.rd(R.CR1)).toBe(CR1.QueueMask);
    u.wr(R.CR0, 0);
    u.wr(R.CR1, 0xfff);
    expect(u.rd(R.CR1)).toBe(0xfff);
  });

  it('GBPA takes a write only together with Update, which completes at once and reads 0', () => {
    const u = unit();
    u.wr(R.GBPA, GBPA.ABORT);
    expect(u.rd(R.GBPA)).toBe(GBPA.Reset);
    u.wr(R.GBPA, (GBPA.UPDATE | GBPA.ABORT | 0xffff_ffff) >>> 0);
    expect(u.rd(R.GBPA)).toBe(GBPA.FieldsMask);
    expect(u.regs.bypassAbort).toBe(true);
    expect(u.hookCalls('bypassChanged')).toEqual([[GBPA.FieldsMask]]);
  });
});

describe('queue base latching', () => {
  it('log2size is clamped to the IDR1 maximum; the register reads back what was written', () => {
    const u = unit({ evtqMaxLog2: 5 });
    u.wr64(R.CMDQ_BASE, 0x1_2345_6000n | 25n);
    expect(u.rd(R.CMDQ_BASE) & 0x1f).toBe(25);
    expect(u.regs.cmdqLog2Size).toBe(19);
    expect(u.regs.cmdqBase).toBe(0x1_2300_0000); // aligned to 16 << 19 bytes
    u.wr64(R.EVTQ_BASE, 0x4000n | 10n);
    expect(u.regs.evtq.log2Size).toBe(5);
    expect(u.regs.evtq.entries).toBe(32);
  });

  it('the base is aligned to the queue size (at least 32 bytes) and bits above OAS are dropped', () => {
    const u = unit({ oas: 40 });
    u.wr64(R.EVTQ_BASE, 0xffff_ff12_3456_7842n);
    expect(u.regs.evtq.base).toBe(0x12_3456_7800); // ADDR[39:5], aligned to 4 entries × 32 bytes
    u.wr64(R.PRIQ_BASE, 0x60n);
    expect(u.regs.priq.base).toBe(0x60); // one 16-byte entry: 32-byte alignment
  });

  it('entry addresses wrap with the index', () => {
    const u = unit();
    enableEvtq(u, 2);
    expect(u.regs.evtq.entryAddress(0)).toBe(EVTQ_BASE);
    expect(u.regs.evtq.entryAddress(3)).toBe(EVTQ_BASE + 96);
    expect(u.regs.evtq.entryAddress(4)).toBe(EVTQ_BASE); // wrap bit set, slot 0
  });
});

describe('PROD / CONS index arithmetic', () => {
  it('incrementing wraps the index and toggles the wrap bit', () => {
    expect(queueIncrement(0b011, 2)).toBe(0b100);
    expect(queueIncrement(0b111, 2)).toBe(0b000);
    expect(queueIncrement(0, 0)).toBe(1); // one-entry queue: only the wrap bit
    expect(queueIncrement(1, 0)).toBe(0);
    expect(queueSlot(0b110, 2)).toBe(0b10);
  });

  it('empty means index and wrap equal; full means index equal and wrap different', () => {
    expect(queueEmpty(0b101, 0b101, 2)).toBe(true);
    expect(queueFull(0b101, 0b001, 2)).toBe(true);
    expect(queueFull(0b101, 0b101, 2)).toBe(false);
    expect(queueEmpty(0x80000000 | 0b101, 0b101, 2)).toBe(true); // flags are not index bits
  });

  it('setCmdqCons moves RD and keeps ERR unless given a new code', () => {
    const u = unit();
    enableCmdq(u, 4);
    u.regs.setCmdqCons(0x13, CERROR.ILL);
    expect(u.rd(R.CMDQ_CONS)).toBe(0x13 | (CERROR.ILL << 24));
    expect(u.regs.cmdqCons).toBe(0x13);
    expect(u.regs.cmdqError).toBe(CERROR.ILL);
    u.regs.setCmdqCons(0x14);
    expect(u.rd(R.CMDQ_CONS)).toBe(0x14 | (CERROR.ILL << 24));
    u.regs.setCmdqCons(0x15, CERROR.NONE);
    expect(u.rd(R.CMDQ_CONS)).toBe(0x15);
    expect(() => u.regs.setCmdqCons(0x20)).toThrow(/CMDQ_CONS/); // beyond index + wrap of 16 entries
    expect(() => u.regs.setCmdqCons(0, 128)).toThrow(/ERR/);
  });

  it('cmdqProd masks PROD to the configured queue size', () => {
    const u = unit();
    enableCmdq(u, 2);
    u.wr(R.CMDQ_PROD, 0x1d);
    expect(u.rd(R.CMDQ_PROD)).toBe(0x1d);
    expect(u.regs.cmdqProd).toBe(0x5);
  });
});

describe('command queue doorbell', () => {
  it('a CMDQ_PROD write rings only while CMDQEN is set', () => {
    const u = unit();
    u.wr64(R.CMDQ_BASE, 0x10004n);
    u.wr(R.CMDQ_PROD, 1);
    expect(u.hookCalls('cmdqDoorbell')).toEqual([]);
    u.setCr0(CR0.CMDQEN); // enabling with a command waiting considers the queue
    u.wr(R.CMDQ_PROD, 2);
    expect(u.hookCalls('cmdqDoorbell')).toEqual([[1], [2]]);
  });

  it('no doorbell while CMDQ_ERR is active; acknowledging it resumes a non-empty queue', () => {
    const u = unit();
    enableCmdq(u, 4);
    u.regs.setCmdqCons(0, CERROR.ILL);
    u.regs.raiseGerror(GERROR.CMDQ_ERR);
    u.wr(R.CMDQ_PROD, 2);
    expect(u.hookCalls('cmdqDoorbell')).toEqual([]);
    u.wr(R.GERRORN, u.rd(R.GERROR));
    expect(u.hookCalls('cmdqDoorbell')).toEqual([[2]]);
    u.wr(R.CMDQ_PROD, 3);
    expect(u.hookCalls('cmdqDoorbell')).toEqual([[2], [3]]);
  });

  it('acknowledging an error with an empty queue, or another error, does not ring', () => {
    const u = unit();
    enableCmdq(u, 4);
    u.regs.raiseGerror(GERROR.CMDQ_ERR | GERROR.EVTQ_ABT_ERR);
    u.wr(R.GERRORN, u.rd(R.GERROR));
    expect(u.hookCalls('cmdqDoorbell')).toEqual([]);
    expect(u.hookCalls('outQueueUpdated')).toEqual([['evtq']]);
  });

  it('the doorbell may consume at once and move CONS from inside the hook', () => {
    const regs: SmmuRegisters = new SmmuRegisters(
      {},
      {
        cmdqDoorbell: (prod) => {
          regs.setCmdqCons(prod);
        },
      },
    );
    regs.mmioWrite(R.CMDQ_BASE, 0x10004, 4);
    regs.mmioWrite(R.CR0, CR0.CMDQEN, 4);
    regs.mmioWrite(R.CMDQ_PROD, 5, 4);
    expect(regs.mmioRead(R.CMDQ_CONS, 4)).toBe(5);
  });
});

describe('stream table registers', () => {
  it('a linear table: effective LOG2SIZE capped at SIDSIZE, address aligned to the table', () => {
    const u = unit({ sidBits: 8 });
    u.wr64(R.STRTAB_BASE, 0x12_3456_78c0n);
    u.wr(R.STRTAB_BASE_CFG, 10);
    const want: SmmuStreamTable = { address: 0x12_3456_4000, format: 'linear', log2Size: 8, split: 6 }; // 256 × 64 B
    expect(u.regs.streamTable).toEqual(want);
    expect(u.hookCalls('streamTableChanged').at(-1)).toEqual([want]);
  });

  it('a 2-level table: FMT, SPLIT (reserved values as 6), level-1 alignment', () => {
    const u = unit();
    u.wr64(R.STRTAB_BASE, 0x10_0040n);
    u.wr(R.STRTAB_BASE_CFG, (1 << 16) | (8 << 6) | 16);
    expect(u.regs.streamTable).toEqual({ address: 0x10_0000, format: '2-level', log2Size: 16, split: 8 });
    u.wr(R.STRTAB_BASE_CFG, (1 << 16) | (7 << 6) | 16);
    expect(u.regs.streamTable.split).toBe(6);
    u.wr(R.STRTAB_BASE_CFG, (2 << 16) | 16); // reserved FMT behaves as linear
    expect(u.regs.streamTable.format).toBe('linear');
  });
});

describe('CMD_SYNC interrupts', () => {
  it('without an MSI address the CMD_SYNC interrupt is wired; with one, the MSI is written', () => {
    const u = unit();
    expect(u.regs.signalCmdSync()).toBe(true);
    expect(u.regs.signalCmdSync(0x1_0000_1000, 7)).toBe(true);
    expect(u.irqs).toEqual([{ kind: 'cmd-sync' }, { kind: 'cmd-sync', msi: { addr: 0x1_0000_1000, data: 7 } }]);
    expect(u.msis).toEqual([[0x1_0000_1000, 7]]);
  });

  it('a unit without MSIs ignores the command MSI address', () => {
    const u = unit({ msi: false });
    u.regs.signalCmdSync(0x1000, 1);
    expect(u.irqs).toEqual([{ kind: 'cmd-sync' }]);
    expect(u.msis).toEqual([]);
  });

  it('an aborted CMD_SYNC MSI activates GERROR.MSI_CMDQ_ABT_ERR', () => {
    const u = unit();
    u.state.msiOk = false;
    expect(u.regs.signalCmdSync(0x1000, 1)).toBe(false);
    expect(u.regs.gerrorActive).toBe(GERROR.MSI_CMDQ_ABT_ERR);
  });
});

describe('event and PRI records', () => {
  it('event numbers are the architected ones (QEMU SMMUEventType)', () => {
    expect(EVT_ID).toMatchObject({
      C_BAD_STREAMID: 0x02,
      F_STE_FETCH: 0x03,
      C_BAD_STE: 0x04,
      F_STREAM_DISABLED: 0x06,
      C_BAD_SUBSTREAMID: 0x08,
      F_CD_FETCH: 0x09,
      C_BAD_CD: 0x0a,
      F_WALK_EABT: 0x0b,
      F_TRANSLATION: 0x10,
      F_ADDR_SIZE: 0x11,
      F_ACCESS: 0x12,
      F_PERMISSION: 0x13,
    });
  });

  it('a translation fault lands with every field in its architected position', () => {
    const w = encodeEvent(new Int32Array(8), { ...FAULT, stag: 0x77 });
    expect(w[0]! >>> 0).toBe(0x10 | (1 << 11) | (0x5 << 12));
    expect(w[1]).toBe(0x1234);
    expect(w[2]! >>> 0).toBe((0x80000000 | 0x77) >>> 0); // Stall, STAG
    expect(w[3]).toBe((1 << 1) | (1 << 3) | (1 << 7) | (EVT_CLASS.IN << 8)); // PnU, RnW, S2, CLASS
    expect([w[4]! >>> 0, w[5]]).toEqual([0x3456_7000, 0x12]);
    expect([w[6]! >>> 0, w[7]]).toEqual([0x8765_4000, 0x9]); // IPA[55:12]
    expect(decodeEvent(w)).toMatchObject({ ...FAULT, ssv: true, stall: true, stag: 0x77, address2: 0x9_8765_4000 });
  });

  it.each([EVT_ID.F_ADDR_SIZE, EVT_ID.F_ACCESS, EVT_ID.F_PERMISSION])(
    'fault 0x%s has the F_TRANSLATION layout',
    (type) => {
      const w = encodeEvent(new Int32Array(8), { ...FAULT, type });
      const t = encodeEvent(new Int32Array(8), FAULT);
      expect(w.slice(1)).toEqual(t.slice(1));
      expect(w[0]! & 0xff).toBe(type);
    },
  );

  it('F_PERMISSION reports TTRnW; other types do not', () => {
    const perm = encodeEvent(new Int32Array(8), {
      ...FAULT,
      type: EVT_ID.F_PERMISSION,
      class: EVT_CLASS.TT,
      tableRead: true,
    });
    expect(decodeEvent(perm)).toMatchObject({ class: EVT_CLASS.TT, tableRead: true });
    expect(decodeEvent(encodeEvent(new Int32Array(8), { ...FAULT, tableRead: true })).tableRead).toBe(false);
  });

  it('fetch aborts put FetchAddr[55:3] in dword 3 (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT)', () => {
    const ste = encodeEvent(new Int32Array(8), { type: EVT_ID.F_STE_FETCH, sid: 9, address2: 0x1_0000_0047 });
    expect([ste[6], ste[7]]).toEqual([0x40, 1]);
    expect([ste[2], ste[3], ste[4], ste[5]]).toEqual([0, 0, 0, 0]);
    const cd = encodeEvent(new Int32Array(8), { type: EVT_ID.F_CD_FETCH, sid: 9, ssid: 3, address2: 0x2008 });
    expect(decodeEvent(cd)).toMatchObject({ type: EVT_ID.F_CD_FETCH, ssv: true, ssid: 3, address2: 0x2008 });
    const walk = encodeEvent(new Int32Array(8), {
      type: EVT_ID.F_WALK_EABT,
      sid: 9,
      read: true,
      class: EVT_CLASS.TT,
      inputAddress: 0x5000,
      address2: 0x3ff9,
    });
    expect(decodeEvent(walk)).toMatchObject({
      read: true,
      class: EVT_CLASS.TT,
      inputAddress: 0x5000,
      address2: 0x3ff8,
    });
  });

  it.each([
    ['C_BAD_STREAMID', EVT_ID.C_BAD_STREAMID, true],
    ['C_BAD_STE', EVT_ID.C_BAD_STE, true],
    ['C_BAD_SUBSTREAMID', EVT_ID.C_BAD_SUBSTREAMID, true],
    ['C_BAD_CD', EVT_ID.C_BAD_CD, true],
    ['F_STREAM_DISABLED', EVT_ID.F_STREAM_DISABLED, false],
  ] as const)('%s carries type, StreamID and (if defined) SubstreamID, nothing else', (_n, type, hasSsid) => {
    const w = encodeEvent(new Int32Array(8).fill(-1), { ...FAULT, type, stag: 1 });
    expect(w[0]! >>> 0).toBe(hasSsid ? type | (1 << 11) | (5 << 12) : type);
    expect(w[1]).toBe(0x1234);
    expect(Array.from(w.slice(2))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('a 64-bit input address above 2^53 is carried as a bigint', () => {
    const w = encodeEvent(new Int32Array(8), { ...FAULT, inputAddress: 0xffff_8000_1234_5000n });
    expect([w[4]! >>> 0, w[5]! >>> 0]).toEqual([0x1234_5000, 0xffff_8000]);
    expect(decodeEvent(w).inputAddress).toBe(0xffff_8000_1234_5000n);
  });

  it('a PRI request lands with SID, SSID, permissions, Last, PRG index and address in place', () => {
    const req = {
      sid: 0x42,
      ssid: 0x3,
      read: true,
      write: true,
      exec: false,
      privileged: true,
      last: true,
      prgIndex: 0x1a5,
      address: 0x12_3456_7fff,
    };
    const w = encodePriRequest(new Int32Array(4), req);
    expect(w[0]).toBe(0x42);
    expect(w[1]! >>> 0).toBe((0x80000000 | (1 << 30) | (1 << 29) | (1 << 28) | (1 << 26) | 3) >>> 0);
    expect(w[2]! >>> 0).toBe(0x3456_7000 | 0x1a5);
    expect(w[3]).toBe(0x12);
    expect(decodePriRequest(w)).toEqual({ ...req, ssv: true, address: 0x12_3456_7000 });
    expect(decodePriRequest(encodePriRequest(new Int32Array(4), { sid: 1, prgIndex: 0, address: 0 }))).toMatchObject({
      ssv: false,
      last: false,
    });
  });
});

describe('event queue writer', () => {
  function evtq(log2Size = 2, options: SmmuRegisterOptions = {}) {
    const u = unit(options);
    const mem = guestMemory();
    enableEvtq(u, log2Size);
    const q = new SmmuOutQueue(u.regs, 'evtq', mem.write);
    const push = (sid: number, stag?: number) => {
      encodeEvent(q.record, { ...FAULT, sid, stag });
      return q.push();
    };
    return { ...u, mem, q, push };
  }

  it('records land at BASE + PROD × 32 with the encoded bits, and PROD advances', () => {
    const t = evtq();
    expect(t.push(1)).toBe('written');
    expect(t.push(2)).toBe('written');
    expect(t.mem.writes).toEqual([EVTQ_BASE, EVTQ_BASE + 32]);
    expect(decodeEvent(t.mem.at(EVTQ_BASE + 32, 8))).toMatchObject({ type: EVT_ID.F_TRANSLATION, sid: 2, ssid: 5 });
    expect(t.rd(P1.EVTQ_PROD)).toBe(2);
  });

  it('PROD wraps: after 2^n records the wrap bit toggles and slot 0 is reused', () => {
    const t = evtq(2);
    for (let i = 0; i < 4; i++) {
      expect(t.push(i)).toBe('written');
      t.wr(P1.EVTQ_CONS, t.rd(P1.EVTQ_PROD)); // the guest consumes as it goes
    }
    expect(t.rd(P1.EVTQ_PROD)).toBe(0b100);
    expect(t.push(4)).toBe('written');
    expect(t.mem.writes.at(-1)).toBe(EVTQ_BASE);
    expect(t.rd(P1.EVTQ_PROD)).toBe(0b101);
  });

  it('a full queue drops the record and toggles OVFLG once; acknowledging re-arms it', () => {
    const t = evtq(1);
    expect([t.push(1), t.push(2)]).toEqual(['written', 'written']);
    expect(t.push(3)).toBe('overflow');
    expect(t.rd(P1.EVTQ_PROD) >>> 0).toBe((Q_INDEX.OVF | 0b10) >>> 0);
    expect(t.mem.writes).toHaveLength(2);
    expect(t.push(4)).toBe('overflow'); // condition already present: OVFLG not toggled again
    expect(t.rd(P1.EVTQ_PROD) >>> 0).toBe((Q_INDEX.OVF | 0b10) >>> 0);
    // Unacknowledged overflow does not stop an event queue once there is room.
    t.wr(P1.EVTQ_CONS, 0b01);
    expect(t.push(5)).toBe('written');
    // The guest consumes everything and acknowledges (OVACKFLG = OVFLG).
    t.wr(P1.EVTQ_CONS, (Q_INDEX.OVF | (t.rd(P1.EVTQ_PROD) & 0xfffff)) >>> 0);
    expect([t.push(6), t.push(7), t.push(8)]).toEqual(['written', 'written', 'overflow']);
    expect(t.rd(P1.EVTQ_PROD) & Q_INDEX.OVF).toBe(0); // toggled back: a new overflow condition
  });

  it('a stall event is never discarded: a full or disabled queue returns retry, without overflow', () => {
    const t = evtq(0);
    expect(t.push(1)).toBe('written');
    expect(t.push(2, 0x10)).toBe('retry');
    expect(t.rd(P1.EVTQ_PROD) & Q_INDEX.OVF).toBe(0);
    t.setCr0(CR0.EVTQEN, false);
    expect(t.push(3, 0x11)).toBe('retry');
    expect(t.push(4)).toBe('disabled');
  });

  it('a disabled queue writes nothing, moves nothing and raises nothing', () => {
    const t = evtq();
    t.wr(R.IRQ_CTRL, IRQ_CTRL.EVTQ_IRQEN);
    t.setCr0(CR0.EVTQEN, false);
    expect(t.push(1)).toBe('disabled');
    expect(t.mem.writes).toEqual([]);
    expect(t.rd(P1.EVTQ_PROD)).toBe(0);
    expect(t.irqs).toEqual([]);
  });

  it('the interrupt fires when the queue goes from empty to non-empty, if enabled', () => {
    const t = evtq();
    t.push(1);
    expect(t.irqs).toEqual([]); // EVTQ_IRQEN = 0
    t.wr(P1.EVTQ_CONS, 1);
    t.wr(R.IRQ_CTRL, IRQ_CTRL.EVTQ_IRQEN);
    t.push(2);
    t.push(3);
    expect(t.irqs).toEqual([{ kind: 'evtq' }]);
  });

  it('the interrupt is an MSI when EVTQ_IRQ_CFG0 is set', () => {
    const t = evtq();
    t.wr64(R.EVTQ_IRQ_CFG0, 0x7000_0000n);
    t.wr(R.EVTQ_IRQ_CFG1, 0x99);
    t.wr(R.IRQ_CTRL, IRQ_CTRL.EVTQ_IRQEN);
    t.push(1);
    expect(t.irqs).toEqual([{ kind: 'evtq', msi: { addr: 0x7000_0000, data: 0x99 } }]);
    expect(t.msis).toEqual([[0x7000_0000, 0x99]]);
  });

  it('an aborted write activates EVTQ_ABT_ERR, leaves PROD, and makes the queue unwritable until acked', () => {
    const t = evtq();
    t.mem.aborts.add(EVTQ_BASE);
    expect(t.push(1)).toBe('abort');
    expect(t.rd(P1.EVTQ_PROD)).toBe(0);
    expect(t.regs.gerrorActive).toBe(GERROR.EVTQ_ABT_ERR);
    t.mem.aborts.clear();
    expect(t.push(2)).toBe('discarded');
    expect(t.push(3, 0x5)).toBe('retry');
    t.wr(R.GERRORN, t.rd(R.GERROR));
    expect(t.hookCalls('outQueueUpdated')).toContainEqual(['evtq']);
    expect(t.push(4)).toBe('written');
  });

  it('a CONS write tells the device model the queue may be writable again', () => {
    const t = evtq();
    const before = t.hookCalls('outQueueUpdated').length;
    t.wr(P1.EVTQ_CONS, 0);
    expect(t.hookCalls('outQueueUpdated').slice(before)).toEqual([['evtq']]);
  });
});

describe('PRI queue writer', () => {
  function priq(log2Size = 1, options: SmmuRegisterOptions = {}) {
    const u = unit(options);
    const mem = guestMemory();
    enablePriq(u, log2Size);
    const q = new SmmuOutQueue(u.regs, 'priq', mem.write);
    const push = (prgIndex: number, last = false) => {
      encodePriRequest(q.record, { sid: 7, prgIndex, last, read: true, address: 0x1000 * prgIndex });
      return q.push();
    };
    return { ...u, mem, q, push };
  }

  it('requests land at BASE + PROD × 16', () => {
    const t = priq();
    expect([t.push(1), t.push(2, true)]).toEqual(['written', 'written']);
    expect(t.mem.writes).toEqual([PRIQ_BASE, PRIQ_BASE + 16]);
    expect(decodePriRequest(t.mem.at(PRIQ_BASE + 16, 4))).toMatchObject({ sid: 7, prgIndex: 2, last: true });
  });

  it('an unacknowledged overflow inhibits every new request, even with room (unlike the event queue)', () => {
    const t = priq(1);
    t.push(1);
    t.push(2);
    expect(t.push(3)).toBe('overflow');
    t.wr(P1.PRIQ_CONS, 0b10); // consumed both, overflow not acknowledged
    expect(t.push(4)).toBe('overflow');
    expect(t.mem.writes).toHaveLength(2);
    t.wr(P1.PRIQ_CONS, (Q_INDEX.OVF | 0b10) >>> 0);
    expect(t.push(5)).toBe('written');
  });

  it('with LO = 0 the interrupt fires on empty → non-empty; with LO = 1 on Last, written or lost to overflow', () => {
    const t = priq(1);
    t.wr(R.IRQ_CTRL, IRQ_CTRL.PRIQ_IRQEN);
    t.push(1);
    t.push(2, true);
    expect(t.irqs).toEqual([{ kind: 'priq' }]);
    t.wr(R.IRQ_CTRL, 0);
    t.wr(R.PRIQ_IRQ_CFG2, IRQ_CFG.LO);
    t.wr(R.IRQ_CTRL, IRQ_CTRL.PRIQ_IRQEN);
    t.wr(P1.PRIQ_CONS, 0b10);
    t.push(3);
    expect(t.irqs).toHaveLength(1);
    t.push(4, true);
    expect(t.irqs).toHaveLength(2);
    expect(t.push(5, true)).toBe('overflow');
    expect(t.irqs).toHaveLength(3);
    expect(t.push(6, false)).toBe('overflow');
    expect(t.irqs).toHaveLength(3);
  });

  it('nothing is written without SMMUEN, or on a unit without PRI', () => {
    const t = priq();
    t.setCr0(CR0.SMMUEN, false);
    expect(t.push(1)).toBe('disabled');
    const u = unit({ pri: false });
    const q = new SmmuOutQueue(u.regs, 'priq', guestMemory().write);
    u.wr(R.CR0, 0xffffffff);
    expect(q.push()).toBe('disabled');
  });

  it('an aborted write activates PRIQ_ABT_ERR; later requests are discarded until it is acknowledged', () => {
    const t = priq();
    t.mem.aborts.add(PRIQ_BASE);
    expect(t.push(1, true)).toBe('abort');
    expect(t.regs.gerrorActive).toBe(GERROR.PRIQ_ABT_ERR);
    expect(t.push(2, true)).toBe('discarded');
    t.wr(R.GERRORN, t.rd(R.GERROR));
    expect(t.hookCalls('outQueueUpdated').at(-1)).toEqual(['priq']);
  });
});

describe('output queue kinds', () => {
  it.each(['evtq', 'priq'] as const)('%s: the record buffer has the queue entry size', (kind: SmmuOutQueueKind) => {
    const q = new SmmuOutQueue(new SmmuRegisters(), kind, () => true);
    expect(q.record.length * 4).toBe(kind === 'evtq' ? 32 : 16);
    expect(q.kind).toBe(kind);
  });
});
