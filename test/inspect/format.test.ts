// The human formatter and the JSON output: every result object survives JSON unchanged (the
// `--json` output is the object), and the text shows one table per descriptor read with hex
// addresses, a nested walk's stage-2 walks under the fetch that needed them, and the result line.
import { afterEach, describe, expect, it } from 'vitest';
import { VtdGuestDriver } from '../../src/guest/vtd/index.js';
import {
  dumpCache,
  formatRanges,
  formatTrace,
  inspectIommufd,
  inspectVtd,
  iommufdRanges,
  smmuRegisterState,
  vtdRanges,
  vtdRegisterState,
} from '../../src/inspect/index.js';
import { Access, Iommufd } from '../../src/index.js';
import { Rig, slotIova, tableGpa } from '../property/nesting-rig.js';

const MIB = 2 ** 20;
const PAGE = 4096;

const open: Iommufd[] = [];
afterEach(async () => {
  for (const fd of open.splice(0)) await fd.close();
});

function scalableFirstStage() {
  const fd = Iommufd.open({ memoryBytes: 64 * MIB });
  open.push(fd);
  const unit = fd.vtdCreate({ guestRamBytes: 16 * MIB, scalableMode: true, firstStage: true });
  const drv = new VtdGuestDriver(unit, { mode: 'scalable' });
  drv.probe();
  drv.attach(0x10, { did: 9 });
  const gpa = drv.frames.alloc() * PAGE;
  drv.map(0x10, 0x1234_5000, gpa, PAGE, 1);
  drv.map(0x10, 0x1234_6000, drv.frames.allocContiguous(4) * PAGE, 4 * PAGE, 3);
  return { fd, unit, gpa };
}

describe('output', () => {
  it('every result object is JSON-safe: it survives stringify and parse unchanged', () => {
    const { fd, unit } = scalableFirstStage();
    unit.translate({ sid: 0x10 }, 0x1234_6000, Access.Read);
    for (const o of [
      inspectVtd(unit, { sid: 0x10 }, 0x1234_5678, Access.Write),
      inspectVtd(unit, { sid: 0x10 }, 0x1234_6678, Access.Read),
      vtdRanges(unit, { sid: 0x10 }),
      dumpCache(fd),
      vtdRegisterState(unit),
      smmuRegisterState(fd.smmuCreate({ guestRamBytes: 4 * MIB })),
    ]) {
      expect(JSON.parse(JSON.stringify(o))).toEqual(o);
    }
  });

  it('a walk: one table per level with GPA and HPA in hex, the fields, the outcome, then the result', () => {
    const { unit } = scalableFirstStage();
    const text = formatTrace(inspectVtd(unit, { sid: 0x10 }, 0x1234_5678, Access.Write));
    const lines = text.split('\n');
    expect(lines[0]).toBe('vtd SID 0x0010 (00:02.0)  IOVA 0x12345678  write user');
    expect(lines[1]).toBe('translation: first-stage');
    for (const title of [
      '[1] config: sm-root-entry, index 0x0',
      '[4] config: pasid-entry, index 0x0',
      '[5] stage1: x86-first-stage entry, PML4 (level 0), index 0x0',
      '[8] stage1: x86-first-stage entry, PT (level 3), index 0x145',
    ])
      expect(lines).toContain(`  ${title}`);
    expect(text).toMatch(/^ {4}at {7}GPA 0x[0-9a-f]{12} {2}HPA 0x[0-9a-f]{12}$/m);
    expect(text).toMatch(/^ {4}fields {3}kind=leaf P=1 RW=0 US=1 /m);
    expect(text).toMatch(/^ {4}outcome {2}next table 0x[0-9a-f]+$/m);
    expect(lines).toContain('result: FAULT permission (write-denied) at stage1 level 3, 0x85 SM_WRITE, recorded');
  });

  it('a nested walk: each stage-2 walk is announced and indented under the stage-1 fetch it serves', () => {
    const rig = new Rig({ vendor: 'vtd', mode: 'hardware' });
    open.push(rig.fd);
    rig.setLeaf(0, 3, { page: 2, write: true, dirty: true, af: true });
    const t = inspectIommufd(rig.fd, { devId: rig.dev }, slotIova(3), Access.Read);
    const text = formatTrace(t);
    expect(text).toContain(`  stage-2 walk of IPA 0x${tableGpa(0, 0).toString(16)} for the stage-1 table fetch:`);
    expect(text).toContain(`  stage-2 walk of IPA 0x${(0x40000 + 2 * PAGE).toString(16)} for the output:`);
    expect(text).toMatch(/^ {6}\[\d+\] stage2: vtd-second-stage entry, PT \(level 3\)/m);
    expect(text).toMatch(/^ {8}at {7}HPA 0x/m);
    expect(text).toMatch(/^ {4}at {7}IPA 0x[0-9a-f]{12} {2}HPA 0x/m);
    expect(text).toMatch(/^result: IPA 0x42000 → HPA 0x[0-9a-f]+ {2}\(4 KiB page\)$/m);
  });

  it('a range dump: a header with the totals, then one row per run', () => {
    const { unit } = scalableFirstStage();
    const text = formatRanges(vtdRanges(unit, { sid: 0x10 }));
    expect(text.split('\n')[0]).toBe(
      'x86-first-stage: root 0x5000, outputs guest-physical; 20 KiB mapped in 2 runs (4 table pages read)',
    );
    expect(text).toMatch(/^ {2}0x000012345000 {2}0x000012345fff {2}0x[0-9a-f]{12} {3}4 KiB {2}4 KiB {2}r-xu$/m);
    expect(text).toMatch(/^ {2}0x000012346000 {2}0x000012349fff {2}0x[0-9a-f]{12} {2}16 KiB {2}4 KiB {2}rwxu$/m);
    const fd = Iommufd.open({ memoryBytes: 16 * MIB });
    open.push(fd);
    const dev = fd.deviceBind({ iommu: 'mock' });
    expect(formatRanges(iommufdRanges(fd, { devId: dev }))).toBe(
      '(no table): root 0x0, outputs host-physical; 0 B mapped in 0 runs (0 table pages read)\nnote: nothing is attached',
    );
  });
});
