/**
 * A device thread for the walk-versus-unmap test (a piscina task that lasts the whole run):
 * translates random IOVAs of the stable and churn regions of every device until the main thread
 * raises the stop flag, judging each result with {@link judge}, and returns a {@link WalkerReport}. With `epoch: false` its translator has no
 * reader slot (the negative control: nothing holds back the reclamation of tables it walks).
 */
import { SystemMemory } from '../../src/memory/index.js';
import { Access } from '../../src/pgtable/index.js';
import { attachTranslator, ContextTables, NO_PASID, Translator } from '../../src/translate/index.js';
import { CONTROL, judge, Verdict, type WalkerConfig, type WalkerReport } from './check.js';

function translatorFor(c: WalkerConfig): { translator: Translator; release: () => void } {
  if (c.epoch) return attachTranslator(c.dataPlane);
  const memory = new SystemMemory(0, c.dataPlane.memory);
  const tables = new ContextTables(memory.phys, undefined, c.dataPlane.tables);
  return { translator: new Translator(memory.phys, tables, memory.reclaimer, -1), release: () => {} };
}

/** Walks until the stop flag is raised (a piscina task that runs for the whole test). */
export default function walkUntilStopped(cfg: WalkerConfig): WalkerReport {
  const control = new Int32Array(cfg.control);
  const { translator, release } = translatorFor(cfg);
  try {
    return walkLoop(cfg, control, translator);
  } finally {
    release();
  }
}

function walkLoop(cfg: WalkerConfig, control: Int32Array, translator: Translator): WalkerReport {
  const report: WalkerReport = {
    walks: 0,
    stableOk: 0,
    churnHits: 0,
    churnMisses: 0,
    stableMismatches: 0,
    churnIllegal: 0,
    forbiddenFaults: 0,
    exceptions: 0,
    faultCodes: {},
    samples: [],
  };
  let rng = cfg.seed | 0 || 1;
  const random = (): number => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return rng >>> 0;
  };
  const sample = (kind: string, iova: number, result: number | string, expected: number, stable: boolean): void => {
    if (report.samples.length < 10) report.samples.push({ kind, iova, result, expected, stable });
  };
  const walk = (slot: number, iova: number, access: number): number | string => {
    try {
      return translator.translate(slot, iova, access, NO_PASID);
    } catch (e) {
      return String(e);
    }
  };
  const devices = cfg.devices;
  const churnPages = cfg.churnPa.length;
  Atomics.add(control, CONTROL.Ready, 1);

  for (let round = 0; Atomics.load(control, CONTROL.Stop) === 0; round++) {
    for (let k = 0; k < 1024; k++) {
      const dev = devices[(round + k) % devices.length]!;
      const r = random();
      const access = (r & 1) === 0 ? Access.Read : Access.Write;
      const offset = (r >>> 1) & 0xff8;
      const stable = ((r >>> 13) & 3) === 0;
      let iova: number;
      let expected: number;
      if (stable) {
        const page = random() % dev.stablePa.length;
        iova = dev.stableBase + page * 4096 + offset;
        expected = dev.stablePa[page]! + offset;
      } else {
        const page = random() % churnPages;
        iova = dev.windows[(r >>> 15) % dev.windows.length]! + page * 4096 + offset;
        expected = cfg.churnPa[page]! + offset;
      }
      const result = walk(dev.slot, iova, access);
      report.walks++;
      if (typeof result === 'string') {
        report.exceptions++;
        sample(dev.kind, iova, result, expected, stable);
        continue;
      }
      const verdict = judge(stable, result, expected);
      if (result < 0 && verdict !== Verdict.Miss) {
        report.faultCodes[result] = (report.faultCodes[result] ?? 0) + 1;
      }
      switch (verdict) {
        case Verdict.Ok:
          if (stable) report.stableOk++;
          else report.churnHits++;
          break;
        case Verdict.Miss:
          report.churnMisses++;
          break;
        case Verdict.StableMismatch:
          report.stableMismatches++;
          sample(dev.kind, iova, result, expected, stable);
          break;
        case Verdict.ChurnIllegal:
          report.churnIllegal++;
          sample(dev.kind, iova, result, expected, stable);
          break;
        case Verdict.ForbiddenFault:
          report.forbiddenFaults++;
          sample(dev.kind, iova, result, expected, stable);
          break;
      }
    }
    const at = CONTROL.Walkers + CONTROL.PerWalker * cfg.id;
    Atomics.store(control, at, report.walks);
    Atomics.store(control, at + 1, report.forbiddenFaults + report.exceptions);
  }
  return report;
}
