// x86-64 first stage (4- and 5-level) and the VT-d second stage (AW 39, 48, 57)
// (reference/config-formats.md §2): the radix builder with their codecs, walked by
// x86FirstStageWalk and vtdSecondStageWalk.
import {
  packWalkConfig,
  vtdSecondStageCodec,
  vtdSecondStageWalk,
  x86FirstStageCodec,
  x86FirstStageWalk,
} from '../../src/pgtable/index.js';
import { formatSuite, GIB, type Format } from './ref-model.js';

const NUM_RUNS = Number(process.env['PGTABLE_PROPERTY_RUNS'] ?? 25);

// Start level (Arm numbering): 39 bits → PDPT = 1, 48 → PML4 = 0, 57 → PML5 = -1.
const START = { 39: 1, 48: 0, 57: -1 } as const;

function firstStage(width: 48 | 57, base: number): Format {
  const codec = x86FirstStageCodec(width);
  return {
    name: `x86-64 first stage ${width}-bit`,
    codec: () => x86FirstStageCodec(width),
    walk: x86FirstStageWalk,
    cfg: packWalkConfig(codec.startLevel, width, 48),
    inputBits: width,
    startLevel: START[width],
    startEntries: 512,
    rootFrames: 1,
    // R/W can say read-only; there is no read bit, so write-only is mapped RW.
    readGated: false,
    base,
    size: 3 * GIB,
  };
}

function secondStage(width: 39 | 48 | 57, base: number): Format {
  const codec = vtdSecondStageCodec(width);
  return {
    name: `VT-d second stage ${width}-bit`,
    codec: () => vtdSecondStageCodec(width),
    walk: vtdSecondStageWalk,
    cfg: packWalkConfig(codec.startLevel, width, 48),
    inputBits: width,
    startLevel: START[width],
    startEntries: 512,
    rootFrames: 1,
    // R and W are separate bits: write-only is expressible.
    readGated: true,
    base,
    size: 3 * GIB,
  };
}

formatSuite(
  [
    // Lower canonical half; the window crosses the PML4 boundary at 512 GiB.
    firstStage(48, 511 * GIB),
    // Crosses the PML5 boundary at 2^48.
    firstStage(57, 2 ** 48 - GIB),
    // Ends at the top of the 39-bit range.
    secondStage(39, 2 ** 39 - 3 * GIB),
    // Ends at the top of the 48-bit range.
    secondStage(48, 2 ** 48 - 3 * GIB),
    secondStage(57, 2 ** 48 - GIB),
  ],
  NUM_RUNS,
);
