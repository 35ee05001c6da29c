// The trace line parser on hand-written lines: every argument format, the raw `PID@` form, and
// malformed lines, which come back as a status (the replay counts them), never as an exception.
import { describe, expect, it } from 'vitest';
import { Ev, EVENT_SPECS } from '../../src/replay/events.js';
import { eventId, LineStatus, parseLine, parseTraceLine, TraceEvent } from '../../src/replay/line-parser.js';

function parsed(line: string): { status: number; e: TraceEvent } {
  const e = new TraceEvent();
  return { status: parseLine(line, e), e };
}

describe('event table', () => {
  it('indexes every event by its id and finds it by name', () => {
    EVENT_SPECS.forEach((spec, i) => {
      expect(spec.ev).toBe(i);
      expect(eventId(spec.name)).toBe(i);
    });
    expect(new Set(EVENT_SPECS.map((s) => s.name)).size).toBe(EVENT_SPECS.length);
  });
});

describe('well-formed lines', () => {
  it('a VT-d raw descriptor keeps both 64-bit words exact, high first', () => {
    const { status, e } = parsed(
      '1795268835.140036:vtd_inv_desc invalidate desc type wait high 0xfedcba9876543210 low 0x200000025',
    );
    expect(status).toBe(Ev.VtdInvDesc);
    expect(e.str(0)).toBe('wait');
    expect([e.hi[0], e.lo[0]]).toEqual([0xfedcba98, 0x76543210]);
    expect([e.hi[1], e.lo[1]]).toEqual([0x2, 0x25]);
    expect(e.nums[1]).toBe(0x200000025);
  });

  it('a decimal argument, a bare-hex PCI address and a 0x number', () => {
    const tail = parsed('1.5:vtd_inv_qi_tail write tail 254');
    expect(tail.status).toBe(Ev.VtdInvQiTail);
    expect(tail.e.nums[0]).toBe(254);
    const x = parsed('1795268835.1:vtd_dmar_translate dev 00:1f.03 iova 0xffff8000 -> gpa 0x1052000 mask 0xfff');
    expect(x.status).toBe(Ev.VtdDmarTranslate);
    expect(Array.from(x.e.nums.subarray(0, 6))).toEqual([0, 0x1f, 3, 0xffff8000, 0x1052000, 0xfff]);
  });

  it('an SMMU range line, with a negative ASID (TLBI_NH_VAA) and the trailing blank QEMU prints', () => {
    const { status, e } = parsed(
      '9.000001:smmuv3_s1_range_inval vmid=0 asid=-1 addr=0xffa40000 tg=1 num_pages=0x20 ttl=3 leaf=1 ',
    );
    expect(status).toBe(Ev.Smmuv3S1RangeInval);
    expect(Array.from(e.nums.subarray(0, 7))).toEqual([0, -1, 0xffa40000, 1, 0x20, 3, 1]);
  });

  it('a consume_out line with its trailing blank, and a CRLF line', () => {
    expect(parsed('1.0:smmuv3_cmdq_consume_out prod:2, cons:2, prod_wrap:0, cons_wrap:0 ').status).toBe(
      Ev.Smmuv3CmdqConsumeOut,
    );
    expect(parsed('1.0:smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC\r').status).toBe(Ev.Smmuv3CmdqOpcode);
  });

  it('an event without arguments, with or without the space QEMU leaves after the name', () => {
    expect(parsed('1795268852.521709:vtd_inv_qi_fetch ').status).toBe(Ev.VtdInvQiFetch);
    expect(parsed('1795268852.521709:vtd_inv_qi_fetch').status).toBe(Ev.VtdInvQiFetch);
  });

  it('free text (the guest console) matches whatever it holds', () => {
    const { status } = parsed('1.0:guest_console @@MARK phase=seq-read start dd if=/dev/vda bs=4k: 100%');
    expect(status).toBe(Ev.GuestConsole);
  });

  it('the raw log form with its PID@ prefix', () => {
    expect(parsed('12345@1795268835.140032:vtd_inv_qi_head read head 7').status).toBe(Ev.VtdInvQiHead);
  });

  it('parses from the middle of a buffer without reading past the end given', () => {
    const buf = Buffer.from('xx1.0:smmuv3_cmdq_tlbi_nh_asid asid=12\n1.0:garbage');
    const e = new TraceEvent();
    expect(parseTraceLine(buf, 2, buf.indexOf(10), e)).toBe(Ev.Smmuv3CmdqTlbiNhAsid);
    expect(e.nums[0]).toBe(12);
  });
});

describe('lines that are not well-formed come back as a status', () => {
  const cases: [string, string, number][] = [
    ['an empty line', '', LineStatus.Blank],
    ['blanks only', '  \t\r', LineStatus.Blank],
    ['no timestamp', 'vtd_inv_qi_tail write tail 2', LineStatus.NoEvent],
    ['a timestamp without fraction', '17952:vtd_inv_qi_tail write tail 2', LineStatus.NoEvent],
    ['no colon', '1795268835.140032 vtd_inv_qi_tail write tail 2', LineStatus.NoEvent],
    ['an empty event name', '1.0: write tail 2', LineStatus.NoEvent],
    ['an unknown event', '1.0:vtd_something_new a=1', LineStatus.UnknownEvent],
    ['a missing argument', '1.0:vtd_inv_qi_tail write tail', LineStatus.Malformed],
    ['a non-number', '1.0:vtd_inv_qi_tail write tail two', LineStatus.Malformed],
    ['a hex number without 0x', '1.0:smmuv3_cmdq_cfgi_ste streamid= 8', LineStatus.Malformed],
    ['0x without digits', '1.0:smmuv3_cmdq_cfgi_ste streamid= 0x', LineStatus.Malformed],
    ['more than 64 bits', '1.0:smmuv3_cmdq_cfgi_ste streamid= 0x10000000000000000', LineStatus.Malformed],
    ['an extra argument', '1.0:vtd_inv_qi_tail write tail 2 3', LineStatus.Malformed],
    ['a truncated line', '1.0:vtd_inv_desc invalidate desc type iotlb high 0xffff8000 lo', LineStatus.Malformed],
    ['a literal that differs', '1.0:smmu_iotlb_inv_all IOTLB invalidate some', LineStatus.Malformed],
    ['arguments on an event that has none', '1.0:vtd_inv_qi_fetch now', LineStatus.Malformed],
  ];
  for (const [what, line, status] of cases) {
    it(`${what} is ${Object.entries(LineStatus).find(([, v]) => v === status)![0]}`, () => {
      expect(() => parsed(line)).not.toThrow();
      expect(parsed(line).status).toBe(status);
    });
  }

  it('a malformed line still names its event, and an unknown one its name', () => {
    const bad = parsed('1.0:vtd_inv_qi_tail write tail x');
    expect(bad.e.ev).toBe(Ev.VtdInvQiTail);
    const unknown = parsed('1.0:vtd_something_new a=1');
    expect(unknown.e.name()).toBe('vtd_something_new');
  });
});
