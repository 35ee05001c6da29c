import { describe, expect, it } from 'vitest';
import {
  VtdRegisters,
  type VtdInterrupt,
  type VtdRegisterHooks,
  type VtdRegisterInvalidation,
  type VtdRootTable,
} from '../../src/vendor/vtd/regs.js';
import type { VtdRegisterOptions } from '../../src/vendor/vtd/regs-caps.js';
import {
  CAP,
  ECAP,
  EVENT_CTL,
  FRCD_W2,
  FRCD_W3,
  FSTS,
  GCMD,
  GSTS,
  ICS,
  IQEI,
  PRS,
  VTD_REG as R,
} from '../../src/vendor/vtd/regs-defs.js';

/** A register block plus every interrupt it sent and every hook call it made. */
function unit(options: VtdRegisterOptions = {}) {
  const calls: [keyof VtdRegisterHooks, unknown][] = [];
  const record =
    (name: keyof VtdRegisterHooks) =>
    (arg: unknown): void => {
      calls.push([name, arg]);
    };
  const hooks: Required<VtdRegisterHooks> = {
    doorbell: record('doorbell'),
    rootTableSet: record('rootTableSet'),
    translationEnable: record('translationEnable'),
    queueEnable: record('queueEnable'),
    pageRequestHead: record('pageRequestHead'),
    registerInvalidation: record('registerInvalidation'),
    interruptRemapTableSet: record('interruptRemapTableSet'),
    interruptRemapEnable: record('interruptRemapEnable'),
  };
  const regs = new VtdRegisters(options, hooks);
  const irqs: VtdInterrupt[] = [];
  regs.interrupts$.subscribe((i) => irqs.push(i));
  const rd = (off: number) => regs.mmioRead(off, 4);
  const wr = (off: number, v: number) => regs.mmioWrite(off, v, 4);
  const rd64 = (off: number) => regs.mmioRead(off, 8);
  const wr64 = (off: number, v: bigint) => regs.mmioWrite(off, v, 8);
  const hookCalls = (name: keyof VtdRegisterHooks) => calls.filter(([n]) => n === name).map(([, a]) => a);
  /** Linux's idiom: GCMD = GSTS's persistent bits | one command. */
  const command = (cmd: number) => wr(R.GCMD, (rd(R.GSTS) & (GCMD.TE | GCMD.QIE | GCMD.IRE | GCMD.CFI)) | cmd);
  return { regs, irqs, calls, hookCalls, rd, wr, rd64, wr64, command };
}

const field = (v: bigint, shift: bigint, bits: bigint) => Number((v >> shift) & ((1n << bits) - 1n));
const CCMD_ICC = 0x80000000 | 0;
const PAGE_REQUESTS: VtdRegisterOptions = { scalableMode: true, pasidWidth: 20, pageRequests: true };

/** Enables QI on a queue at 0x10000 with QS = `qs`. */
function enableQueue(u: ReturnType<typeof unit>, qs = 0, wide = false) {
  u.wr64(R.IQA, 0x10000n | BigInt(qs) | (wide ? 1n << 11n : 0n));
  u.command(GCMD.QIE);
}

describe('reset values', () => {
  it('VER is 1.0 and CAP matches QEMU vtd_cap_init for a 48-bit unit', () => {
    const { regs, rd, rd64 } = unit();
    expect(rd(R.VER)).toBe(0x10);
    const cap = rd64(R.CAP);
    expect(cap).toBe(regs.cap);
    expect(field(cap, CAP.NdShift, 3n)).toBe(6); // 16-bit domain ids
    expect(field(cap, CAP.SagawShift, 5n)).toBe(0b0110); // 39 and 48 bits
    expect(field(cap, CAP.MgawShift, 6n)).toBe(47);
    expect(field(cap, CAP.FroShift, 10n) * 16).toBe(R.FRCD);
    expect(field(cap, CAP.NfrShift, 8n)).toBe(0); // one record, as QEMU
    expect(field(cap, CAP.MamvShift, 6n)).toBe(18);
    expect(field(cap, CAP.SllpsShift, 4n)).toBe(0b11);
    expect(cap & CAP.PSI).toBe(CAP.PSI);
    expect(cap & (CAP.DWD | CAP.DRD)).toBe(CAP.DWD | CAP.DRD);
    expect(cap & CAP.CM).toBe(0n);
  });

  it('CAP follows the options: caching mode, 57-bit width, fault records, MAMV, first-stage pages', () => {
    const { rd64 } = unit({
      cachingMode: true,
      addressWidth: 57,
      faultRecords: 8,
      mamv: 9,
      scalableMode: true,
      firstStage: true,
    });
    const cap = rd64(R.CAP);
    expect(cap & CAP.CM).toBe(CAP.CM);
    expect(field(cap, CAP.SagawShift, 5n)).toBe(0b1110);
    expect(field(cap, CAP.MgawShift, 6n)).toBe(56);
    expect(field(cap, CAP.NfrShift, 8n)).toBe(7);
    expect(field(cap, CAP.MamvShift, 6n)).toBe(9);
    expect(cap & (CAP.FS1GP | CAP.FS5LP)).toBe(CAP.FS1GP | CAP.FS5LP);
  });

  it('ECAP of a legacy unit: QI, IRO at 0xf0, PT; no scalable-mode bits', () => {
    const { rd64 } = unit();
    const ecap = rd64(R.ECAP);
    expect(ecap & (ECAP.QI | ECAP.PT)).toBe(ECAP.QI | ECAP.PT);
    expect(field(ecap, ECAP.IroShift, 10n) * 16).toBe(R.IVA);
    expect(ecap & (ECAP.SMTS | ECAP.PASID | ECAP.PRS | ECAP.DT | ECAP.IR | ECAP.NEST)).toBe(0n);
  });

  it('ECAP of a scalable unit: SMTS, both stages, NEST, DT, PASID with PSS = width - 1, PRS and PDS', () => {
    const { rd64 } = unit({ ...PAGE_REQUESTS, firstStage: true, nesting: true, deviceTlb: true });
    const ecap = rd64(R.ECAP);
    const want = ECAP.SMTS | ECAP.FLTS | ECAP.SLTS | ECAP.NEST | ECAP.DT | ECAP.PASID | ECAP.PRS | ECAP.PDS;
    expect(ecap & want).toBe(want);
    expect(field(ecap, ECAP.PssShift, 5n)).toBe(19);
  });

  it('status and pointer registers reset to 0; event controls reset masked (IM = 1)', () => {
    const { rd, rd64 } = unit(PAGE_REQUESTS);
    for (const off of [R.GSTS, R.FSTS, R.ICS, R.PRS, R.FEDATA, R.FEADDR]) expect(rd(off)).toBe(0);
    for (const off of [R.RTADDR, R.IQH, R.IQT, R.IQA, R.IQER, R.PQH, R.PQT, R.PQA]) expect(rd64(off)).toBe(0n);
    for (const off of [R.FECTL, R.IECTL, R.PECTL]) expect(rd(off)).toBe(EVENT_CTL.IM);
  });

  it('reset() returns a programmed unit to its reset values', () => {
    const u = unit();
    u.wr64(R.RTADDR, 0x5000n);
    u.command(GCMD.SRTP);
    u.command(GCMD.TE);
    u.wr(R.FECTL, 0);
    u.regs.reset();
    expect(u.rd(R.GSTS)).toBe(0);
    expect(u.rd64(R.RTADDR)).toBe(0n);
    expect(u.rd(R.FECTL)).toBe(EVENT_CTL.IM);
    expect(u.regs.rootTable.address).toBe(0n);
  });

  it('rejects option combinations a VMM could not build', () => {
    expect(() => new VtdRegisters({ pasidWidth: 20 })).toThrow(/scalable mode/);
    expect(() => new VtdRegisters({ scalableMode: true, nesting: true })).toThrow(/nesting/);
    expect(() => new VtdRegisters({ scalableMode: true, pageRequests: true })).toThrow(/pageRequests/);
    expect(() => new VtdRegisters({ addressWidth: 40 as 48 })).toThrow(/addressWidth/);
    expect(() => new VtdRegisters({ faultRecords: 0 })).toThrow(/faultRecords/);
    expect(() => new VtdRegisters({ wideDescriptors: true })).toThrow(/256-bit/);
  });
});

describe('write masks', () => {
  it('read-only registers ignore writes: VER, CAP, ECAP, GSTS, IQH, IQER', () => {
    const { regs, rd, wr, rd64, wr64 } = unit();
    const cap = rd64(R.CAP);
    const ecap = rd64(R.ECAP);
    wr(R.VER, 0xff);
    wr64(R.CAP, 0n);
    wr(R.CAP + 4, 0);
    wr64(R.ECAP, ~ecap & 0xffffffffffffffffn);
    wr(R.GSTS, -1);
    wr64(R.IQH, 0x70n);
    wr64(R.IQER, 0xffffn);
    expect(rd(R.VER)).toBe(0x10);
    expect(rd64(R.CAP)).toBe(cap);
    expect(rd64(R.ECAP)).toBe(ecap);
    expect(rd(R.GSTS)).toBe(0);
    expect(rd64(R.IQH)).toBe(0n);
    expect(rd64(R.IQER)).toBe(0n);
    expect(regs.translationEnabled).toBe(false);
  });

  it('GCMD and IVA are write-only: they read 0', () => {
    const { rd, wr, rd64, wr64 } = unit();
    wr(R.GCMD, GCMD.SRTP);
    wr64(R.IVA, 0x1234_5000n);
    expect(rd(R.GCMD)).toBe(0);
    expect(rd64(R.IVA)).toBe(0n);
  });

  it('address registers keep only bits below the host address width and their defined low fields', () => {
    const { rd64, wr64 } = unit({ addressWidth: 39 });
    wr64(R.RTADDR, 0xffffffffffffffffn);
    wr64(R.IQA, 0xffffffffffffffffn);
    expect(rd64(R.RTADDR)).toBe(0x7f_ffff_fc00n); // RTA 38:12 and TTM 11:10
    expect(rd64(R.IQA)).toBe(0x7f_ffff_f007n); // IQA 38:12 and QS; DW reserved without SMTS
  });

  it('IQT keeps the offset bits 18:4 only', () => {
    const { rd64, wr64 } = unit();
    wr64(R.IQT, 0xffffffffffffffffn);
    expect(rd64(R.IQT)).toBe(0x7fff0n);
  });

  it('event data keeps bits 15:0 and upper address is reserved without EIM; both widen with interrupt remapping', () => {
    const legacy = unit();
    legacy.wr(R.FEDATA, -1);
    legacy.wr(R.FEUADDR, -1);
    legacy.wr(R.IEADDR, -1);
    expect(legacy.rd(R.FEDATA)).toBe(0xffff);
    expect(legacy.rd(R.FEUADDR)).toBe(0);
    expect(legacy.rd(R.IEADDR)).toBe(0xfffffffc);
    const eim = unit({ interruptRemapping: true });
    eim.wr(R.FEDATA, -1);
    eim.wr(R.FEUADDR, -1);
    expect(eim.rd(R.FEDATA)).toBe(0xffffffff);
    expect(eim.rd(R.FEUADDR)).toBe(0xffffffff);
  });

  it('event control registers: only IM is writable; IP is read-only', () => {
    const { rd, wr } = unit();
    wr(R.FECTL, EVENT_CTL.IP);
    expect(rd(R.FECTL)).toBe(0);
    wr(R.FECTL, -1);
    expect(rd(R.FECTL)).toBe(EVENT_CTL.IM);
  });

  it('CCMD.CAIG and IOTLB.IAIG are read-only to the guest', () => {
    const { rd, wr } = unit();
    wr(R.CCMD + 4, 0x3 << 27);
    wr(R.IOTLB + 4, 0x3 << 25);
    expect(rd(R.CCMD + 4)).toBe(0);
    expect(rd(R.IOTLB + 4)).toBe(0);
  });
});

describe('W1C semantics', () => {
  it('FSTS: writing 1 clears PFO/IQE/ICE/ITE, writing 0 keeps them, PPF and FRI cannot be written', () => {
    const { regs, rd, wr } = unit();
    regs.reportQueueError(IQEI.InvalidType);
    regs.reportInvTimeout(0x10);
    regs.recordFault({ sid: 1, address: 0x1000, reason: 5, type: 'write' });
    const set = FSTS.IQE | FSTS.ITE | FSTS.PPF;
    expect(rd(R.FSTS)).toBe(set);
    wr(R.FSTS, 0);
    expect(rd(R.FSTS)).toBe(set);
    wr(R.FSTS, FSTS.PPF | (0xff << FSTS.FriShift));
    expect(rd(R.FSTS)).toBe(set);
    wr(R.FSTS, FSTS.IQE);
    expect(rd(R.FSTS)).toBe(FSTS.ITE | FSTS.PPF);
    wr(R.FSTS, FSTS.W1C);
    expect(rd(R.FSTS)).toBe(FSTS.PPF);
  });

  it('ICS.IWC clears on writing 1 only', () => {
    const { regs, rd, wr } = unit();
    regs.completeWait(true);
    wr(R.ICS, 0);
    expect(rd(R.ICS)).toBe(ICS.IWC);
    wr(R.ICS, ICS.IWC);
    expect(rd(R.ICS)).toBe(0);
  });

  it('FRCD.F clears on writing 1 to bit 127, by a 32-bit write or an 8-byte write of the high half, and PPF follows', () => {
    const { regs, rd, wr, rd64, wr64 } = unit({ faultRecords: 2 });
    regs.recordFault({ sid: 1, address: 0x1000, reason: 5, type: 'write' });
    regs.recordFault({ sid: 2, address: 0x2000, reason: 5, type: 'write' });
    wr(R.FRCD + 12, FRCD_W3.FrMask); // not the F bit: nothing changes
    expect(rd(R.FRCD + 12) & FRCD_W3.F).not.toBe(0);
    wr(R.FRCD + 12, FRCD_W3.F);
    expect(rd(R.FRCD + 12) & FRCD_W3.F).toBe(0);
    expect(rd(R.FSTS) & FSTS.PPF).toBe(FSTS.PPF); // record 1 still pending
    wr64(R.FRCD + 16 + 8, 1n << 63n);
    expect(rd64(R.FRCD + 16 + 8) >> 63n).toBe(0n);
    expect(rd(R.FSTS) & FSTS.PPF).toBe(0);
  });

  it('PRS: PPR and PRO clear on writing 1', () => {
    const { regs, rd, wr } = unit(PAGE_REQUESTS);
    regs.setPrs({ ppr: true, pro: true });
    wr(R.PRS, PRS.PRO);
    expect(rd(R.PRS)).toBe(PRS.PPR);
    wr(R.PRS, PRS.PPR);
    expect(rd(R.PRS)).toBe(0);
  });
});

describe('32-bit halves of 64-bit registers', () => {
  it('a quad written as two halves reads back whole, and a quad write reads back as two halves', () => {
    const { rd, wr, rd64, wr64 } = unit();
    wr(R.IQA, 0x12345000 | 2);
    wr(R.IQA + 4, 0xab);
    expect(rd64(R.IQA)).toBe(0xab_1234_5002n);
    wr64(R.RTADDR, 0x00cd_8765_4000n);
    expect(rd(R.RTADDR)).toBe(0x87654000);
    expect(rd(R.RTADDR + 4)).toBe(0xcd);
  });

  it('CAP and ECAP read as halves match the quad', () => {
    const { regs, rd } = unit({ scalableMode: true, pasidWidth: 20 });
    expect((BigInt(rd(R.CAP + 4)) << 32n) | BigInt(rd(R.CAP))).toBe(regs.cap);
    expect((BigInt(rd(R.ECAP + 4)) << 32n) | BigInt(rd(R.ECAP))).toBe(regs.ecap);
  });

  it('SRTP latches an RTADDR written as halves', () => {
    const { regs, wr, command } = unit();
    wr(R.RTADDR, 0x9000);
    wr(R.RTADDR + 4, 0x1);
    command(GCMD.SRTP);
    expect(regs.rootTable.address).toBe(0x1_0000_9000n);
  });

  it('CCMD fires on its high half (ICC), not on the low half', () => {
    const { rd, wr, hookCalls } = unit();
    wr(R.CCMD, (0x0108 << 16) | 7); // SID 01:01.0, DID 7
    expect(hookCalls('registerInvalidation')).toEqual([]);
    wr(R.CCMD + 4, CCMD_ICC | (3 << 29) | 1); // device-selective, FM 1
    expect(hookCalls('registerInvalidation')).toEqual([
      { kind: 'context', granularity: 'device', did: 7, sid: 0x0108, functionMask: 1 },
    ]);
    expect(rd(R.CCMD + 4) >>> 0).toBe((3 << 29) | (3 << 27) | 1); // ICC cleared, CAIG = device
  });

  it('IQT rings on its low half only', () => {
    const u = unit();
    enableQueue(u);
    u.wr(R.IQT + 4, 0);
    expect(u.hookCalls('doorbell')).toEqual([]);
    u.wr(R.IQT, 0x20);
    expect(u.hookCalls('doorbell')).toEqual([0x20]);
  });

  it('an 8-byte write accepts a safe integer number as well as a bigint', () => {
    const { regs, rd64 } = unit();
    regs.mmioWrite(R.IQA, 0x1_0000_3000 + 1, 8);
    expect(rd64(R.IQA)).toBe(0x1_0000_3001n);
    expect(() => regs.mmioWrite(R.IQA, -1, 8)).toThrow(RangeError);
    expect(() => regs.mmioWrite(R.IQA, 1n, 4)).toThrow(RangeError);
  });
});

describe('unknown and reserved offsets', () => {
  it('read 0 and ignore writes: holes, unmodelled registers, past the last record, misaligned', () => {
    const { regs, rd, wr, rd64, wr64 } = unit();
    for (const off of [0x30, 0x48, 0x58, 0x64, 0x100, 0x218, regs.mmioSize, 0x10000]) {
      wr(off, -1);
      expect(rd(off)).toBe(0);
    }
    const aflog = 0x58; // advanced fault logging: CAP.AFL = 0
    wr64(aflog, 0xffffn);
    expect(rd64(aflog)).toBe(0n);
    expect(rd64(regs.mmioSize)).toBe(0n);
    // Misaligned: a 4-byte write at 0x1a would straddle GCMD; an 8-byte access at 0x94 is not 8-aligned.
    wr(0x1a, -1);
    wr64(R.IQA + 4, 0xffffn);
    expect(rd(R.GSTS)).toBe(0);
    expect(rd64(R.IQA)).toBe(0n);
    expect(rd(0x1a)).toBe(0);
    expect(rd64(R.IQA + 4)).toBe(0n);
  });

  it('page request registers are absent without ECAP.PRS', () => {
    const { rd, wr, rd64, wr64, hookCalls } = unit();
    wr64(R.PQA, 0x5000n);
    wr64(R.PQH, 0x20n);
    wr(R.PECTL, 0);
    expect(rd64(R.PQA)).toBe(0n);
    expect(rd64(R.PQH)).toBe(0n);
    expect(rd(R.PECTL)).toBe(0);
    expect(hookCalls('pageRequestHead')).toEqual([]);
  });

  it('sizes other than 4 and 8 are a programming error', () => {
    const { regs } = unit();
    expect(() => regs.mmioRead(R.VER, 2 as 4)).toThrow(RangeError);
  });
});

describe('GCMD / GSTS handshakes', () => {
  it('TE sets and clears TES and tells the device model once per change', () => {
    const { regs, rd, command, wr, hookCalls } = unit();
    command(GCMD.TE);
    expect(rd(R.GSTS)).toBe(GSTS.TES);
    expect(regs.translationEnabled).toBe(true);
    command(0); // TE still set: no change
    wr(R.GCMD, 0);
    expect(rd(R.GSTS)).toBe(0);
    expect(hookCalls('translationEnable')).toEqual([true, false]);
  });

  it('SRTP latches RTADDR in legacy mode and sets RTPS; later RTADDR writes wait for the next SRTP', () => {
    const { regs, rd, wr64, command, hookCalls } = unit();
    wr64(R.RTADDR, 0x0012_3456_7000n);
    command(GCMD.SRTP);
    expect(rd(R.GSTS)).toBe(GSTS.RTPS);
    const root: VtdRootTable = { address: 0x0012_3456_7000n, mode: 'legacy', ttm: 0 };
    expect(regs.rootTable).toEqual(root);
    expect(regs.scalableMode).toBe(false);
    wr64(R.RTADDR, 0x9000n);
    expect(regs.rootTable.address).toBe(0x0012_3456_7000n);
    command(GCMD.SRTP);
    expect(hookCalls('rootTableSet')).toEqual([root, { address: 0x9000n, mode: 'legacy', ttm: 0 }]);
    expect(rd(R.GSTS)).toBe(GSTS.RTPS);
  });

  it('SRTP with TTM = 01b selects scalable mode only when ECAP.SMTS is advertised', () => {
    const scalable = unit({ scalableMode: true });
    scalable.wr64(R.RTADDR, 0x8000n | (1n << 10n));
    scalable.command(GCMD.SRTP);
    expect(scalable.regs.rootTable).toEqual({ address: 0x8000n, mode: 'scalable', ttm: 1 });
    expect(scalable.regs.scalableMode).toBe(true);
    const legacy = unit();
    legacy.wr64(R.RTADDR, 0x8000n | (1n << 10n));
    legacy.command(GCMD.SRTP);
    expect(legacy.regs.rootTable.mode).toBe('invalid');
    legacy.wr64(R.RTADDR, 0x8000n | (3n << 10n));
    legacy.command(GCMD.SRTP);
    expect(legacy.regs.rootTable).toEqual({ address: 0x8000n, mode: 'invalid', ttm: 3 });
  });

  it('QIE latches the queue base, size and width and resets IQH', () => {
    const u = unit({ scalableMode: true });
    enableQueue(u, 2, true);
    expect(u.rd(R.GSTS)).toBe(GSTS.QIES);
    expect(u.regs.queueEnabled).toBe(true);
    expect(u.regs.queueBase).toBe(0x10000n);
    expect(u.regs.descriptorWidth).toBe(256);
    expect(u.regs.queueSizeEntries).toBe(512); // 4 pages of 32-byte descriptors
    expect(u.hookCalls('queueEnable')).toEqual([true]);
    const narrow = unit();
    enableQueue(narrow, 2);
    expect(narrow.regs.descriptorWidth).toBe(128);
    expect(narrow.regs.queueSizeEntries).toBe(1024);
  });

  it('QIE enable with IQT already moved processes the queue at once (QEMU, for Windows)', () => {
    const u = unit();
    u.wr64(R.IQT, 0x30n);
    enableQueue(u);
    expect(u.hookCalls('doorbell')).toEqual([0x30]);
  });

  it('QIE disable is refused while descriptors are outstanding, accepted when IQH = IQT, and resets IQH', () => {
    const u = unit();
    enableQueue(u);
    u.wr64(R.IQT, 0x40n);
    u.regs.setQueueHead(0x20);
    u.wr(R.GCMD, 0);
    expect(u.rd(R.GSTS)).toBe(GSTS.QIES);
    u.regs.setQueueHead(0x40);
    u.wr(R.GCMD, 0);
    expect(u.rd(R.GSTS)).toBe(0);
    expect(u.rd64(R.IQH)).toBe(0n);
    expect(u.hookCalls('queueEnable')).toEqual([true, false]);
  });

  it('SIRTP latches IRTA and sets IRTPS; IRE needs interrupt remapping advertised', () => {
    const u = unit({ interruptRemapping: true });
    u.wr64(R.IRTA, 0xa000n | (1n << 11n) | 0xfn);
    u.command(GCMD.SIRTP);
    expect(u.rd(R.GSTS)).toBe(GSTS.IRTPS);
    expect(u.hookCalls('interruptRemapTableSet')).toEqual([{ address: 0xa000n, entries: 65536, x2apic: true }]);
    u.command(GCMD.IRE);
    expect(u.rd(R.GSTS)).toBe(GSTS.IRTPS | GSTS.IRES);
    expect(u.regs.interruptRemapEnabled).toBe(true);
    expect(u.hookCalls('interruptRemapEnable')).toEqual([true]);
    const without = unit();
    without.command(GCMD.IRE);
    expect(without.rd(R.GSTS)).toBe(0);
  });

  it('a Linux-style bring-up (SRTP, QIE, TE, one command per write) ends with every status bit set', () => {
    const u = unit();
    u.wr64(R.RTADDR, 0x4000n);
    u.command(GCMD.SRTP);
    enableQueue(u);
    u.command(GCMD.TE);
    expect(u.rd(R.GSTS) >>> 0).toBe((GSTS.TES | GSTS.RTPS | GSTS.QIES) >>> 0);
    expect(u.calls.map(([n]) => n)).toEqual(['rootTableSet', 'queueEnable', 'translationEnable']);
  });
});

describe('register-based invalidation', () => {
  it('a global context invalidation completes at once: ICC clears, CAIG = global', () => {
    const { rd, wr64, hookCalls } = unit();
    wr64(R.CCMD, (1n << 63n) | (1n << 61n));
    expect(hookCalls('registerInvalidation')).toEqual([
      { kind: 'context', granularity: 'global', did: 0, sid: 0, functionMask: 0 },
    ]);
    expect(rd(R.CCMD + 4) >>> 0).toBe((1 << 29) | (1 << 27)); // ICC cleared, CAIG = global
  });

  it('is refused while QI is enabled: ICC stays set and nothing is invalidated (QEMU)', () => {
    const u = unit();
    enableQueue(u);
    u.wr64(R.CCMD, (1n << 63n) | (1n << 61n));
    u.wr64(R.IOTLB, (1n << 63n) | (1n << 60n));
    expect(u.hookCalls('registerInvalidation')).toEqual([]);
    expect(u.rd(R.CCMD + 4) >>> 0).toBe((CCMD_ICC | (1 << 29)) >>> 0);
    expect(u.rd(R.IOTLB + 4) >>> 0).toBe((0x80000000 | (1 << 28)) >>> 0);
  });

  it('a page-selective IOTLB invalidation reads IVA; AM above MAMV is not performed (IAIG 0)', () => {
    const { rd, wr64, hookCalls } = unit({ mamv: 9 });
    const psi = (did: bigint) => (1n << 63n) | (3n << 60n) | (1n << 49n) | (did << 32n);
    wr64(R.IVA, 0x1_2345_6000n | (1n << 6n) | 3n);
    wr64(R.IOTLB, psi(5n));
    const request: VtdRegisterInvalidation = {
      kind: 'iotlb',
      granularity: 'page',
      did: 5,
      address: 0x1_2345_6000n,
      addressMask: 3,
      leafOnly: true,
      drainReads: true,
      drainWrites: false,
    };
    expect(hookCalls('registerInvalidation')).toEqual([request]);
    const iaig = () => (rd(R.IOTLB + 4) >>> 25) & 0x3;
    expect(rd(R.IOTLB + 4) >>> 31).toBe(0); // IVT cleared
    expect(iaig()).toBe(3); // page-selective
    wr64(R.IVA, 0x1000n | 10n);
    wr64(R.IOTLB, psi(5n));
    expect(hookCalls('registerInvalidation')).toHaveLength(1);
    expect(iaig()).toBe(0);
  });
});

describe('invalidation queue', () => {
  it('IQT rings the doorbell only while QIE is enabled', () => {
    const u = unit();
    u.wr64(R.IQT, 0x10n);
    expect(u.hookCalls('doorbell')).toEqual([]);
    enableQueue(u);
    u.wr64(R.IQT, 0x20n);
    expect(u.hookCalls('doorbell')).toEqual([0x10, 0x20]); // the first from QIE enable with IQT moved
    expect(u.regs.queueTail).toBe(0x20);
  });

  it('IQT with bit 4 set in 256-bit mode raises IQE (IQEI 6) and a fault event, not the doorbell', () => {
    const u = unit({ scalableMode: true });
    u.wr(R.FECTL, 0);
    u.wr(R.FEADDR, 0xfee00000);
    u.wr(R.FEDATA, 0x41);
    enableQueue(u, 0, true);
    u.wr64(R.IQT, 0x30n);
    expect(u.rd(R.FSTS)).toBe(FSTS.IQE);
    expect(u.rd64(R.IQER)).toBe(BigInt(IQEI.TailMisaligned));
    expect(u.regs.queueErrorPending).toBe(true);
    expect(u.hookCalls('doorbell')).toEqual([]);
    expect(u.irqs).toEqual([{ kind: 'fault', address: 0xfee00000n, data: 0x41 }]);
  });

  it('while IQE is set IQT writes do not fetch; clearing IQE resumes from IQH', () => {
    const u = unit();
    enableQueue(u);
    u.wr64(R.IQT, 0x40n);
    u.regs.setQueueHead(0x20);
    u.regs.reportQueueError(IQEI.ReservedField);
    expect(u.regs.queueHead).toBe(0x20);
    u.wr64(R.IQT, 0x50n);
    expect(u.hookCalls('doorbell')).toEqual([0x40]);
    u.wr(R.FSTS, FSTS.IQE);
    expect(u.rd64(R.IQER)).toBe(0n);
    expect(u.hookCalls('doorbell')).toEqual([0x40, 0x50]);
  });

  it('an IQT beyond the queue raises IQE with IQEI 1', () => {
    const u = unit();
    enableQueue(u); // 256 entries of 16 bytes
    u.wr64(R.IQT, 0x1000n);
    expect(u.rd(R.FSTS)).toBe(FSTS.IQE);
    expect(u.rd(R.IQER)).toBe(IQEI.InvalidTail);
    expect(u.hookCalls('doorbell')).toEqual([]);
  });

  it('IQA.DW = 1 without 256-bit support stays 0 and raises IQE with IQEI 5', () => {
    const u = unit();
    u.wr64(R.IQA, 0x10000n | (1n << 11n));
    expect(u.rd64(R.IQA)).toBe(0x10000n);
    expect(u.rd(R.IQER)).toBe(IQEI.InvalidWidth);
    u.wr(R.FSTS, FSTS.IQE);
    u.command(GCMD.QIE);
    expect(u.regs.descriptorWidth).toBe(128);
  });

  it('setQueueHead moves IQH and rejects offsets outside the queue or not on a descriptor', () => {
    const u = unit({ scalableMode: true });
    enableQueue(u, 0, true);
    u.regs.setQueueHead(0x40);
    expect(u.rd64(R.IQH)).toBe(0x40n);
    expect(() => u.regs.setQueueHead(0x50)).toThrow(RangeError);
    expect(() => u.regs.setQueueHead(0x1000)).toThrow(RangeError);
  });

  it('ITE and ICE record their source ids in IQER; ITE halts fetching like IQE', () => {
    const u = unit();
    enableQueue(u);
    u.regs.reportInvTimeout(0x0310);
    u.regs.reportInvCompletionError(0x0420);
    expect(u.rd(R.FSTS)).toBe(FSTS.ITE | FSTS.ICE);
    expect(u.rd64(R.IQER)).toBe((0x0420n << 48n) | (0x0310n << 32n));
    expect(u.regs.queueErrorPending).toBe(true);
    u.wr64(R.IQT, 0x10n);
    expect(u.hookCalls('doorbell')).toEqual([]);
    u.wr(R.FSTS, FSTS.ITE);
    expect(u.rd64(R.IQER)).toBe(0x0420n << 48n);
    expect(u.hookCalls('doorbell')).toEqual([0x10]);
  });

  it('completeWait(true) sets IWC and sends the completion MSI; a second one while IWC is set sends nothing', () => {
    const u = unit();
    u.wr(R.IECTL, 0);
    u.wr(R.IEADDR, 0xfee01000);
    u.wr(R.IEDATA, 0x22);
    u.regs.completeWait(false);
    expect(u.rd(R.ICS)).toBe(0);
    u.regs.completeWait(true);
    u.regs.completeWait(true);
    expect(u.rd(R.ICS)).toBe(ICS.IWC);
    expect(u.irqs).toEqual([{ kind: 'inv-completion', address: 0xfee01000n, data: 0x22 }]);
    u.wr(R.ICS, ICS.IWC);
    u.regs.completeWait(true);
    expect(u.irqs).toHaveLength(2);
  });
});

describe('fault recording', () => {
  it('fills FI, SID, reason, type, PASID, EXE and PRIV, sets F, PPF and FRI, and raises the fault event', () => {
    const u = unit({ scalableMode: true, pasidWidth: 20 });
    u.wr(R.FECTL, 0);
    const outcome = u.regs.recordFault({
      sid: 0x0208,
      pasid: 0x12345,
      address: 0x1_2345_6789n,
      reason: 0x85,
      type: 'read',
      exec: true,
      priv: true,
    });
    expect(outcome).toBe('recorded');
    expect(u.rd64(R.FRCD)).toBe(0x1_2345_6000n);
    expect(u.rd(R.FRCD + 8) >>> 0).toBe((0x0208 | FRCD_W2.PRIV | FRCD_W2.EXE | FRCD_W2.PP) >>> 0);
    expect(u.rd(R.FRCD + 12) >>> 0).toBe((0x85 | (0x12345 << 8) | FRCD_W3.T1 | FRCD_W3.F) >>> 0);
    expect(u.rd(R.FSTS)).toBe(FSTS.PPF);
    expect(u.irqs.map((i) => i.kind)).toEqual(['fault']);
  });

  it('encodes the request type in T2:T1 (write 00, read 01, page request 10, atomic 11)', () => {
    const types = ['write', 'read', 'page-request', 'atomic'] as const;
    const got = types.map((type) => {
      const u = unit();
      u.regs.recordFault({ sid: 1, address: 0, reason: 1, type });
      return [(u.rd(R.FRCD + 8) & FRCD_W2.T2) !== 0, (u.rd(R.FRCD + 12) & FRCD_W3.T1) !== 0];
    });
    expect(got).toEqual([
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ]);
  });

  it('with one record (QEMU), a second fault sets PFO and later ones are dropped until PFO is cleared', () => {
    const u = unit();
    u.wr(R.FECTL, 0);
    expect(u.regs.recordFault({ sid: 1, address: 0x1000, reason: 2, type: 'write' })).toBe('recorded');
    expect(u.regs.recordFault({ sid: 2, address: 0x2000, reason: 2, type: 'write' })).toBe('overflow');
    expect(u.rd(R.FSTS)).toBe(FSTS.PFO | FSTS.PPF);
    u.wr(R.FRCD + 12, FRCD_W3.F);
    expect(u.rd(R.FSTS)).toBe(FSTS.PFO);
    expect(u.regs.recordFault({ sid: 3, address: 0x3000, reason: 2, type: 'write' })).toBe('dropped');
    u.wr(R.FSTS, FSTS.PFO);
    expect(u.regs.recordFault({ sid: 3, address: 0x3000, reason: 2, type: 'write' })).toBe('recorded');
    expect(u.rd64(R.FRCD)).toBe(0x3000n);
    expect(u.irqs.map((i) => i.kind)).toEqual(['fault', 'fault']);
  });

  it('a fault from a SID with a pending record is collapsed (QEMU), unless collapsing is off', () => {
    const on = unit({ faultRecords: 4 });
    on.regs.recordFault({ sid: 7, address: 0x1000, reason: 5, type: 'write' });
    expect(on.regs.recordFault({ sid: 7, address: 0x2000, reason: 6, type: 'read' })).toBe('collapsed');
    expect(on.rd(R.FRCD + 16 + 12)).toBe(0);
    const off = unit({ faultRecords: 4, collapseFaults: false });
    off.regs.recordFault({ sid: 7, address: 0x1000, reason: 5, type: 'write' });
    expect(off.regs.recordFault({ sid: 7, address: 0x2000, reason: 6, type: 'read' })).toBe('recorded');
  });

  it('with several records, FRI names the first pending one, the index wraps, and a busy next record overflows', () => {
    const u = unit({ faultRecords: 3 });
    u.wr(R.FECTL, 0);
    for (const sid of [1, 2, 3]) u.regs.recordFault({ sid, address: sid * 0x1000, reason: 1, type: 'read' });
    expect((u.rd(R.FSTS) >> FSTS.FriShift) & FSTS.FriMask).toBe(0);
    expect(u.irqs).toHaveLength(1); // PPF was already set for the second and third
    u.wr(R.FRCD + 12, FRCD_W3.F); // software handles record 0
    expect(u.regs.recordFault({ sid: 4, address: 0x4000, reason: 1, type: 'read' })).toBe('recorded');
    expect(u.rd64(R.FRCD)).toBe(0x4000n); // wrapped to record 0
    expect(u.regs.recordFault({ sid: 5, address: 0x5000, reason: 1, type: 'read' })).toBe('overflow');
  });

  it('FRI is set when PPF goes 0 → 1, and disabling translation restarts recording at record 0 (QEMU)', () => {
    const u = unit({ faultRecords: 4 });
    u.command(GCMD.TE);
    u.regs.recordFault({ sid: 1, address: 0x1000, reason: 1, type: 'read' });
    u.regs.recordFault({ sid: 2, address: 0x2000, reason: 1, type: 'read' });
    for (const i of [0, 1]) u.wr(R.FRCD + 16 * i + 12, FRCD_W3.F);
    u.regs.recordFault({ sid: 3, address: 0x3000, reason: 1, type: 'read' });
    expect((u.rd(R.FSTS) >> FSTS.FriShift) & FSTS.FriMask).toBe(2);
    u.wr(R.FRCD + 2 * 16 + 12, FRCD_W3.F);
    u.wr(R.GCMD, 0); // TE off
    u.regs.recordFault({ sid: 4, address: 0x4000, reason: 1, type: 'read' });
    expect(u.rd64(R.FRCD)).toBe(0x4000n);
    expect((u.rd(R.FSTS) >> FSTS.FriShift) & FSTS.FriMask).toBe(0);
  });
});

describe('interrupt masking (IM / IP)', () => {
  it('a masked fault event sets IP; clearing IM sends it once with FEADDR/FEUADDR/FEDATA', () => {
    const u = unit({ interruptRemapping: true });
    u.wr(R.FEADDR, 0xfee00000);
    u.wr(R.FEUADDR, 0x1);
    u.wr(R.FEDATA, 0x1234_0041);
    u.regs.recordFault({ sid: 1, address: 0x1000, reason: 1, type: 'read' });
    expect(u.irqs).toEqual([]);
    expect(u.rd(R.FECTL) >>> 0).toBe((EVENT_CTL.IM | EVENT_CTL.IP) >>> 0);
    u.wr(R.FECTL, 0);
    expect(u.irqs).toEqual([{ kind: 'fault', address: 0x1_fee0_0000n, data: 0x1234_0041 }]);
    expect(u.rd(R.FECTL)).toBe(0);
    u.wr(R.FECTL, 0);
    expect(u.irqs).toHaveLength(1);
  });

  it('no new fault event while a fault condition is pending (PPF, PFO, IQE, ICE, ITE)', () => {
    const u = unit({ faultRecords: 2 });
    u.wr(R.FECTL, 0);
    u.regs.reportQueueError(IQEI.InvalidType);
    u.regs.recordFault({ sid: 1, address: 0x1000, reason: 1, type: 'read' });
    u.regs.reportInvTimeout(3);
    expect(u.irqs).toHaveLength(1);
    u.wr(R.FSTS, FSTS.W1C);
    u.wr(R.FRCD + 12, FRCD_W3.F);
    u.regs.reportInvCompletionError(4);
    expect(u.irqs).toHaveLength(2);
  });

  it('once software clears every fault status, a held fault interrupt is dropped (IP clears)', () => {
    const u = unit();
    u.regs.reportQueueError(IQEI.InvalidType);
    expect(u.rd(R.FECTL) & EVENT_CTL.IP).toBe(EVENT_CTL.IP);
    u.wr(R.FSTS, FSTS.IQE);
    expect(u.rd(R.FECTL) >>> 0).toBe(EVENT_CTL.IM >>> 0);
    u.wr(R.FECTL, 0);
    expect(u.irqs).toEqual([]);
  });

  it('a masked completion event is held in IECTL.IP and dropped when IWC is cleared', () => {
    const u = unit();
    u.regs.completeWait(true);
    expect(u.rd(R.IECTL) >>> 0).toBe((EVENT_CTL.IM | EVENT_CTL.IP) >>> 0);
    u.wr(R.ICS, ICS.IWC);
    u.wr(R.IECTL, 0);
    expect(u.irqs).toEqual([]);
    u.regs.completeWait(true);
    expect(u.irqs.map((i) => i.kind)).toEqual(['inv-completion']);
  });

  it('page request events fire on the first of PPR/PRO only, and wait for IM to clear', () => {
    const u = unit(PAGE_REQUESTS);
    u.wr(R.PEADDR, 0xfee02000);
    u.wr(R.PEDATA, 0x33);
    u.regs.setPrs({ ppr: true });
    expect(u.irqs).toEqual([]);
    u.wr(R.PECTL, 0);
    expect(u.irqs).toEqual([{ kind: 'page-request', address: 0xfee02000n, data: 0x33 }]);
    u.regs.setPrs({ ppr: true });
    u.regs.setPrs({ pro: true });
    expect(u.irqs).toHaveLength(1);
    u.wr(R.PRS, PRS.PPR | PRS.PRO);
    u.regs.setPrs({ pro: true });
    expect(u.irqs).toHaveLength(2);
  });
});

describe('page request queue registers', () => {
  it('PQA gives base and size; PQH writes reach the device model; PQT moves by setPageRequestTail', () => {
    const u = unit(PAGE_REQUESTS);
    u.wr64(R.PQA, 0x7_0000n | 1n);
    expect(u.regs.prqBase).toBe(0x7_0000n);
    expect(u.regs.prqSizeEntries).toBe(256);
    u.regs.setPageRequestTail(0x40);
    expect(u.rd64(R.PQT)).toBe(0x40n);
    u.wr64(R.PQH, 0x40n);
    expect(u.hookCalls('pageRequestHead')).toEqual([0x40]);
    expect(u.regs.prqHead).toBe(0x40);
    expect(() => u.regs.setPageRequestTail(0x30)).toThrow(RangeError);
    expect(() => u.regs.setPageRequestTail(256 * 32)).toThrow(RangeError);
  });

  it('prqFull is true when one more descriptor would reach PQH', () => {
    const u = unit(PAGE_REQUESTS);
    u.wr64(R.PQA, 0x7_0000n); // 128 entries
    u.wr64(R.PQH, 0x20n);
    expect(u.regs.prqFull).toBe(true);
    u.wr64(R.PQH, 0x40n);
    expect(u.regs.prqFull).toBe(false);
  });

  it('setPrs and setPageRequestTail need a page request queue', () => {
    const { regs } = unit();
    expect(() => regs.setPrs({ ppr: true })).toThrow(/page request queue/);
    expect(() => regs.setPageRequestTail(0)).toThrow(/page request queue/);
    expect(regs.prqSizeEntries).toBe(0);
  });
});
