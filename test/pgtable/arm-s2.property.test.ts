// Arm VMSAv8-64 stage 2, 4 KiB granule (reference/config-formats.md §1.4, §1.7): the radix builder
// with armS2Codec, including concatenated start tables, walked by armS2Walk.
import { armS2Codec, armS2Config, armS2Walk, packWalkConfig } from '../../src/pgtable/index.js';
import { formatSuite, GIB, type Format } from './ref-model.js';

const NUM_RUNS = Number(process.env['PGTABLE_PROPERTY_RUNS'] ?? 25);

// SL0 → start level 2 − SL0; N = 2^(inputsize − shift(start − 1)) concatenated tables (§1.7).
function s2(s2t0sz: number, sl0: number, tables: number, base: number, size: number): Format {
  const cfg = armS2Config(s2t0sz, sl0);
  const startLevel = 2 - sl0;
  return {
    name: `Arm S2 S2T0SZ ${s2t0sz} SL0 ${sl0} (${64 - s2t0sz}-bit, start L${startLevel}, ${tables} table(s))`,
    codec: () => armS2Codec(cfg),
    walk: armS2Walk,
    cfg: packWalkConfig(cfg.startLevel, cfg.inputSize, cfg.outputSize),
    inputBits: 64 - s2t0sz,
    startLevel,
    startEntries: tables * 512,
    rootFrames: tables,
    // S2AP has separate read and write bits.
    readGated: true,
    base,
    size,
  };
}

formatSuite(
  [
    s2(16, 2, 1, 511 * GIB, 3 * GIB),
    // 40-bit at L1: 2 concatenated tables; the window crosses from table 0 to table 1 at 512 GiB.
    s2(24, 1, 2, 511 * GIB, 3 * GIB),
    // 41-bit at L1: 4 tables; crosses from table 1 to table 2.
    s2(23, 1, 4, 1023 * GIB, 3 * GIB),
    // 42-bit at L1: 8 tables; the window ends at the top of the last one.
    s2(22, 1, 8, 2 ** 42 - 3 * GIB, 3 * GIB),
    // 34-bit at L2: 16 tables of 1 GiB each; the window spans tables 7, 8 and 9.
    s2(30, 0, 16, 7 * GIB, 3 * GIB),
  ],
  NUM_RUNS,
);
