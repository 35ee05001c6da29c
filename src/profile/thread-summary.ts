/**
 * A thread's profile at a glance: its name (main, or the worker and its entry script), how long
 * it was profiled, and the functions with the most self time. Read from a source-mapped profile,
 * so the functions point at `.ts` lines.
 */
import { sampleWeights, type CpuProfile } from './cpuprofile.js';

/** A function and its share of the thread's profiled time. */
export interface HotFunction {
  name: string;
  /** The script as reports show it (see `displayPath`), and the 1-based line of the function. */
  file: string;
  line: number;
  /** Self time, percent of the thread's sampled time. */
  percent: number;
}

/** What a thread's profile says in brief. */
export interface ThreadSummary {
  /** 'main', or 'worker N'. */
  name: string;
  /** Node's thread id: 0 for the main thread. */
  threadId: number;
  /** A worker's entry script (`workers/translate.ts`), when its frames name one. */
  entry?: string;
  /** Samples taken, and the time they cover, ms. */
  samples: number;
  sampledMs: number;
  /** The functions with the most self time, `(idle)` left out. */
  hottest: HotFunction[];
}

/** Hot functions listed. */
const HOTTEST = 3;
/** A worker entry's script, as the built layout and the sources name it. */
const WORKER_ENTRY = /(?:^|\/)(workers\/[\w-]+\.(?:ts|js))$/;

/** Summarizes thread `threadId`'s profile `p`; `file` shows a script URL as reports do. */
export function summarizeThread(threadId: number, p: CpuProfile, file: (url: string) => string): ThreadSummary {
  const weights = sampleWeights(p);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, HotFunction & { us: number }>();
  let total = 0;
  (p.samples ?? []).forEach((id, i) => {
    const w = weights[i]!;
    total += w;
    const f = byId.get(id)?.callFrame;
    if (f === undefined || f.functionName === '(idle)' || f.functionName === '(root)') return;
    const key = `${f.functionName}\0${f.url}\0${f.lineNumber}`;
    const hot = self.get(key);
    if (hot !== undefined) hot.us += w;
    else
      self.set(key, {
        name: f.functionName === '' ? '(anonymous)' : f.functionName,
        file: f.url === '' ? '' : file(f.url),
        line: f.lineNumber + 1,
        percent: 0,
        us: w,
      });
  });
  const hottest = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, HOTTEST)
    .map(({ us, ...h }) => ({ ...h, percent: total > 0 ? (100 * us) / total : 0 }));
  let entry: string | undefined;
  if (threadId !== 0) {
    for (const n of p.nodes) {
      const m = WORKER_ENTRY.exec(n.callFrame.url);
      if (m !== null) {
        entry = m[1]!;
        break;
      }
    }
  }
  return {
    name: threadId === 0 ? 'main' : `worker ${threadId}`,
    threadId,
    ...(entry !== undefined ? { entry } : {}),
    samples: p.samples?.length ?? 0,
    sampledMs: total / 1000,
    hottest,
  };
}
