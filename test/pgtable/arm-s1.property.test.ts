// Arm VMSAv8-64 stage 1, 4 KiB granule (reference/config-formats.md §1.1–§1.3, §1.6): the radix
// builder with armS1Codec against the reference model, walked by armS1Walk.
import { armS1Codec, armS1Config, armS1Walk, packWalkConfig } from '../../src/pgtable/index.js';
import { formatSuite, GIB, type Format } from './ref-model.js';

const NUM_RUNS = Number(process.env['PGTABLE_PROPERTY_RUNS'] ?? 25);

// T0SZ → (start level, start-table entries) from the table in §1.6.
function s1(t0sz: number, startLevel: number, startEntries: number, base: number, size: number): Format {
  const cfg = armS1Config(t0sz);
  return {
    name: `Arm S1 T0SZ ${t0sz} (${64 - t0sz}-bit, start L${startLevel})`,
    codec: () => armS1Codec(cfg),
    walk: armS1Walk,
    cfg: packWalkConfig(cfg.startLevel, cfg.inputSize, cfg.outputSize),
    inputBits: 64 - t0sz,
    startLevel,
    startEntries,
    rootFrames: 1,
    // AP[2:1] can say read-only but not write-only: Linux maps write-only as RW.
    readGated: false,
    base,
    size,
  };
}

formatSuite(
  [
    // The window crosses the L0 boundary at 512 GiB.
    s1(16, 0, 512, 511 * GIB, 3 * GIB),
    // A 32-entry L0 table; the window ends at the top of the input range.
    s1(20, 0, 32, 2 ** 44 - 3 * GIB, 3 * GIB),
    s1(25, 1, 512, 2 ** 39 - 3 * GIB, 3 * GIB),
    // The whole 1 GiB input range.
    s1(34, 2, 512, 0, GIB),
    // 16-entry L2 start table: the whole 32 MiB input range.
    s1(39, 2, 16, 0, 2 ** 25),
  ],
  NUM_RUNS,
);
