/*
 * How the tracing walkers record a page-table read: one WalkStep per entry, with its location in
 * the walker's space and in host memory, the raw qword and the decoded fields.
 */
import { locate, rawQwords, readQword, type TraceSpace } from './memory.js';
import { pteFields } from './pte-fields.js';
import type { PteFormat, Stage2Purpose, WalkStage, WalkStep } from './types.js';

/** Where a tracing walker reads and records. */
export interface TraceSink {
  /** The space it reads. */
  readonly space: TraceSpace;
  /** The steps so far; walkers append. */
  readonly steps: WalkStep[];
  /** Set by a nested walker when a stage-2 translation faulted (the fault record does not say, for VT-d). */
  faultStage?: WalkStage;
}

/** Why a stage-2 walk runs, when it runs for a nested walk or a nested configuration fetch. */
export interface Stage2Context {
  purpose: Stage2Purpose;
  /** The intermediate address it translates. */
  input: number;
}

/** A page-table entry to read: its table (walker space), its index, and its place in the walk. */
export interface EntryAt {
  format: PteFormat;
  stage: WalkStage;
  level: number;
  /** Its table's address in the walker's space. */
  table: number;
  index: number;
  /** A nested stage-1 table's intermediate address (before stage 2). */
  tableIpa?: number;
  s2?: Stage2Context;
}

/** Reads the entry, appends its step (outcome 'read' until the walker decides) and returns it with the words. */
export function readEntry(sink: TraceSink, e: EntryAt): { step: WalkStep; lo: number; hi: number } {
  const addr = e.table + e.index * 8;
  const [lo, hi] = readQword(sink.space, addr);
  const step: WalkStep = {
    structure: 'pte',
    stage: e.stage,
    format: e.format,
    level: e.level,
    index: e.index,
    ...(e.s2 === undefined ? {} : { s2: { purpose: e.s2.purpose, input: e.s2.input } }),
    ...(e.tableIpa === undefined ? {} : { ipa: e.tableIpa + e.index * 8 }),
    ...locate(sink.space, addr),
    raw: rawQwords([lo, hi]),
    fields: pteFields(e.format, e.level, lo, hi),
    outcome: 'read',
  };
  sink.steps.push(step);
  return { step, lo, hi };
}
