/** Page-table formats: builders and walkers over physical memory. */
export {
  Access,
  Prot,
  TranslateFault,
  FaultReason,
  FAULT_REASON_NAMES,
  WalkFault,
  type TranslateFaultCode,
  type DomainGeometry,
} from './types.js';
export {
  MockPageTable,
  mockWalk,
  MOCK_PAGE_SIZE,
  MOCK_PAGE_SHIFT,
  MOCK_BLOCK_SIZE,
  MOCK_BLOCK_SHIFT,
  MOCK_APERTURE_START,
  MOCK_APERTURE_LAST,
  MOCK_DESC,
  MOCK_GEOMETRY,
  type PaSource,
} from './mock.js';
