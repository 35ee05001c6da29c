/*
 * A tracing copy of the mock format's walker (src/pgtable/mock.ts mockWalk): root entry by IOVA
 * bits 30:29, then a table or a 1 MiB block, then a 2 KiB page; the same checks and fault records.
 */
import {
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  MOCK_BLOCK_SHIFT,
  MOCK_BLOCK_SIZE,
  MOCK_DESC,
  MOCK_PAGE_SHIFT,
  MOCK_PAGE_SIZE,
} from '../pgtable/mock.js';
import { Access, FaultReason, TranslateFault, type WalkFault } from '../pgtable/types.js';
import { readEntry, type TraceSink } from './walk-step.js';

const ADDR_MASK = 0xfffff800 | 0;

/** Traces a mock-format walk from the root table at `rootPa`. */
export function traceMock(sink: TraceSink, rootPa: number, iova: number, access: number, fault: WalkFault): number {
  if (iova < MOCK_APERTURE_START || iova > MOCK_APERTURE_LAST)
    return fault.set(TranslateFault.NotMapped, 2, FaultReason.Aperture, iova);
  const memBytes = sink.space.i32.length * 4;
  const entry = (level: number, table: number, index: number) =>
    readEntry(sink, { format: 'mock', stage: 'stage1', level, table, index });
  let e = entry(2, rootPa, (iova >>> 29) & 3);
  if ((e.lo & MOCK_DESC.Valid) === 0) {
    e.step.outcome = 'fault';
    return fault.set(TranslateFault.NotMapped, 2, FaultReason.NotPresent, iova);
  }
  e.step.outcome = 'table';
  let table = (e.lo & ADDR_MASK) >>> 0;
  let index = (iova >>> 20) & 511;
  if (table + index * 8 >= memBytes) return fault.set(TranslateFault.WalkAbort, 1, FaultReason.WalkAbort, iova);
  e = entry(1, table, index);
  if ((e.lo & MOCK_DESC.Valid) === 0) {
    e.step.outcome = 'fault';
    return fault.set(TranslateFault.NotMapped, 1, FaultReason.NotPresent, iova);
  }
  let level = 1;
  let offsetMask = MOCK_BLOCK_SIZE - 1;
  if ((e.lo & MOCK_DESC.Table) !== 0) {
    e.step.outcome = 'table';
    table = (e.lo & ADDR_MASK) >>> 0;
    index = (iova >>> 11) & 511;
    if (table + index * 8 >= memBytes) return fault.set(TranslateFault.WalkAbort, 0, FaultReason.WalkAbort, iova);
    e = entry(0, table, index);
    level = 0;
    offsetMask = MOCK_PAGE_SIZE - 1;
    if ((e.lo & MOCK_DESC.Valid) === 0) {
      e.step.outcome = 'fault';
      return fault.set(TranslateFault.NotMapped, 0, FaultReason.NotPresent, iova);
    }
  }
  e.step.outcome = 'fault';
  if ((access & (Access.Read | Access.Exec)) !== 0 && (e.lo & MOCK_DESC.Read) === 0)
    return fault.set(TranslateFault.Permission, level, FaultReason.ReadDenied, iova);
  if ((access & Access.Write) !== 0 && (e.lo & MOCK_DESC.Write) === 0)
    return fault.set(TranslateFault.Permission, level, FaultReason.WriteDenied, iova);
  e.step.outcome = 'leaf';
  fault.leafShift = fault.unitShift = level === 0 ? MOCK_PAGE_SHIFT : MOCK_BLOCK_SHIFT;
  return ((e.lo & ADDR_MASK & ~offsetMask) >>> 0) + (iova & offsetMask);
}
