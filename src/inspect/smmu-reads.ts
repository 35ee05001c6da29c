/*
 * Records an SMMUv3 configuration fetch as it happens: the reader and the stage-2 translator an
 * SmmuResolver is given, which append a step per L1STD, STE, L1CD and CD read (in the resolver's
 * order, so each read's size and place say what it is) and per stage-2 entry of a nested CD fetch.
 */
import { Access, type WalkFault } from '../pgtable/types.js';
import type { Stage2Translator } from '../vendor/smmuv3/resolve-stage2.js';
import { Cd, decodeCd, decodeL1Cd, L1Cd } from '../vendor/smmuv3/structures-cd.js';
import { decodeL1Std, decodeSte, L1Std, Ste } from '../vendor/smmuv3/structures.js';
import type { QwordReader } from '../vendor/vtd/resolve-reader.js';
import { locate, rawQwords, RecordingReader } from './memory.js';
import { fieldsOf } from './result.js';
import type { Fields, StructureKind } from './types.js';
import type { TraceSink } from './walk-step.js';
import { traceArmStage2 } from './walk-arm.js';

function fields(kind: StructureKind, w: Int32Array): Fields {
  switch (kind) {
    case 'l1-std':
      return fieldsOf(decodeL1Std(w, 0, new L1Std()));
    case 'ste':
      return fieldsOf(decodeSte(w, 0, new Ste()));
    case 'l1-cd':
      return fieldsOf(decodeL1Cd(w, 0, new L1Cd()));
    default:
      return fieldsOf(decodeCd(w, 0, new Cd()));
  }
}

/** The reader and stage-2 translator that record one SMMUv3 configuration fetch into a sink. */
export class SmmuConfigRecorder {
  /** The reader to give the resolver. */
  readonly reader: QwordReader;
  /** The stage-2 translator to give the resolver (nested CD fetches). */
  readonly stage2: Stage2Translator;
  /** The IPA of each physical address a nested CD-table translation gave. */
  readonly #ipaOf = new Map<number, number>();
  #steSeen: boolean;

  /**
   * Records into `sink`. `steInMemory` false: the fetch starts at the STE the caller holds
   * (SmmuResolver.resolveSte), so 1-qword reads are L1CDs and 8-qword reads CDs from the start.
   */
  constructor(sink: TraceSink, steInMemory = true) {
    this.#steSeen = !steInMemory;
    const space = sink.space;
    this.reader = new RecordingReader(space.i32, (read) => {
      let kind: StructureKind;
      if (read.count === 8 && !this.#steSeen) {
        kind = 'ste';
        this.#steSeen = true;
      } else if (read.count === 8) kind = 'cd';
      else kind = this.#steSeen ? 'l1-cd' : 'l1-std';
      const ipa = this.#ipaOf.get(read.addr);
      sink.steps.push({
        structure: kind,
        stage: 'config',
        ...(ipa === undefined ? {} : { ipa }),
        ...locate(space, read.addr),
        raw: read.words === undefined ? [] : rawQwords(read.words),
        fields: read.words === undefined ? {} : fields(kind, read.words),
        outcome: read.words === undefined ? 'fault' : 'read',
      });
    });
    this.stage2 = {
      translate: (root: number, cfg: number, ipa: number, fault: WalkFault): number => {
        const pa = traceArmStage2(sink, root, cfg, ipa, Access.Read, fault, { purpose: 'cd', input: ipa });
        if (pa >= 0) this.#ipaOf.set(pa, ipa);
        else sink.faultStage = 'stage2';
        return pa;
      },
    };
  }
}
