// Model-based test of the DMA engine (src/registry/dma-engine.ts) with demand paging: random
// sequences of transfers (1..200 bytes into K pages, possibly across a page boundary, writes and
// reads), fault-handler steps (read whole groups into a buffer of a random size; per group, back
// the pages and answer SUCCESS, answer INVALID, or now and then answer SUCCESS without backing
// them), pumps, and unmaps of backed pages, run
// against the real engine on a PRI device (vtd) and a stall device (smmuv3 without PRI), with
// automatic or manual pumping, and against a small reference model of what the engine promises:
//
// - a transfer's pages that do not translate become page requests: one group (LAST_PAGE on its
//   last record) for PRI, one single-record group per page for stall, queued in order;
// - once every group of a round is answered the transfer is retried (by the next pump): it
//   completes Ok if every page translates then, fails Invalid if any answer of the round was
//   INVALID, sends the pages still missing as a new round otherwise, and fails RetriesExhausted
//   instead of sending round maxRetries + 1;
// - a completed write's bytes are in memory; a completed read returns the memory's bytes.
//
// After every step: the completions (order, transfer, status, read data), the queue's contents,
// the engine's in-flight count and the backed pages' host memory agree with the model. At the end
// (after answering everything): each transfer completed exactly once, nothing is pending or
// awaiting (so no request tag is outstanding), and the engine's and queue's totals add up.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Access,
  DMA_STATUS,
  Iommufd,
  PAGE_RESPONSE,
  PGFAULT_FLAG,
  PGFAULT_PERM,
  type DmaEngine,
  type FaultQueue,
} from '../../src/index.js';

// DMA_ENGINE_PROPERTY_RUNS=2000 for a longer soak.
const NUM_RUNS = Number(process.env['DMA_ENGINE_PROPERTY_RUNS'] ?? 50);
const PAGE = 4096;
const BASE = 0x100_0000;
/** The pages transfers go to: [BASE, BASE + K pages). */
const K = 4;
const REC_WORDS = 10;

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---------------------------------------------------------------- steps

/** Back the group's pages and answer SUCCESS; answer INVALID; answer SUCCESS without backing them. */
type Answer = 'map' | 'invalid' | 'bare';

type Op =
  | { t: 'submit'; page: number; off: number; len: number; write: boolean; seed: number }
  /** Read groups into a buffer of `max` records; answer group i as `answers[i % length]` ('map' when empty). */
  | { t: 'handle'; max: number; answers: Answer[] }
  | { t: 'pump' }
  | { t: 'unmap'; page: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('submit' as const),
      page: fc.integer({ min: 0, max: K - 1 }),
      // Often near the end of the page, so that many transfers cross into the next one.
      off: fc.oneof(fc.integer({ min: 0, max: PAGE - 1 }), fc.integer({ min: PAGE - 200, max: PAGE - 1 })),
      len: fc.integer({ min: 1, max: 200 }),
      write: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      seed: fc.nat(255),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('handle' as const),
      max: fc.oneof(fc.constant(64), fc.integer({ min: 1, max: 3 })),
      answers: fc.array(
        fc.oneof(
          { weight: 6, arbitrary: fc.constant<Answer>('map') },
          { weight: 2, arbitrary: fc.constant<Answer>('invalid') },
          { weight: 1, arbitrary: fc.constant<Answer>('bare') },
        ),
        { maxLength: 8 },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ t: 'pump' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('unmap' as const), page: fc.integer({ min: 0, max: K - 1 }) }) },
);

// ---------------------------------------------------------------- the model

interface Tx {
  /** Submission index. */
  sub: number;
  iova: number;
  write: boolean;
  data: Uint8Array;
  /** Groups of the current round not yet answered. */
  wait: number;
  /** An INVALID answer reached it. */
  invalid: boolean;
  /** Rounds of page requests sent. */
  rounds: number;
  status: number | undefined;
}

interface ModelGroup {
  tx: Tx;
  /** Page indices (0..K-1), in order. */
  pages: number[];
}

interface Completion {
  sub: number;
  status: number;
  /** What a completed read returned (the model's bytes, or the engine's buffer). */
  bytes: Uint8Array | undefined;
}

class Model {
  /** Backed pages and their bytes. */
  readonly mapped = new Map<number, Uint8Array>();
  /** Groups queued and not read. */
  readonly queue: ModelGroup[] = [];
  /** Transfers whose round is answered, in the order their last answer came. */
  readonly resume: Tx[] = [];
  readonly completions: Completion[] = [];
  readonly txs: Tx[] = [];
  requests = 0;
  retries = 0;
  inFlight = 0;

  constructor(
    readonly pri: boolean,
    readonly maxRetries: number,
  ) {}

  submit(iova: number, write: boolean, data: Uint8Array): Tx {
    const tx: Tx = { sub: this.txs.length, iova, write, data, wait: 0, invalid: false, rounds: 0, status: undefined };
    this.txs.push(tx);
    this.inFlight++;
    this.#attempt(tx);
    return tx;
  }

  /** Answers the next queued group (the handler read it). */
  answer(g: ModelGroup, answer: Answer): void {
    if (answer === 'invalid') g.tx.invalid = true;
    else if (answer === 'map')
      for (const p of g.pages) if (!this.mapped.has(p)) this.mapped.set(p, new Uint8Array(PAGE));
    if (--g.tx.wait === 0) this.resume.push(g.tx);
  }

  pump(): void {
    for (let tx = this.resume.shift(); tx !== undefined; tx = this.resume.shift()) {
      if (tx.invalid) this.#complete(tx, DMA_STATUS.Invalid);
      else {
        this.retries++;
        this.#attempt(tx);
      }
    }
  }

  #attempt(tx: Tx): void {
    const first = Math.floor((tx.iova - BASE) / PAGE);
    const last = Math.floor((tx.iova + tx.data.length - 1 - BASE) / PAGE);
    const want: number[] = [];
    for (let p = first; p <= last; p++) if (!this.mapped.has(p)) want.push(p);
    if (want.length === 0) {
      this.#complete(tx, DMA_STATUS.Ok);
      return;
    }
    if (tx.rounds >= this.maxRetries) {
      this.#complete(tx, DMA_STATUS.RetriesExhausted);
      return;
    }
    const groups = this.pri ? [want] : want.map((p) => [p]);
    for (const pages of groups) this.queue.push({ tx, pages });
    tx.wait = groups.length;
    tx.rounds++;
    this.requests += want.length;
  }

  #complete(tx: Tx, status: number): void {
    tx.status = status;
    this.inFlight--;
    let bytes: Uint8Array | undefined = undefined;
    if (status === DMA_STATUS.Ok) {
      const out = tx.write ? undefined : new Uint8Array(tx.data.length);
      for (let i = 0; i < tx.data.length; i++) {
        const at = tx.iova - BASE + i;
        const page = this.mapped.get(Math.floor(at / PAGE))!;
        if (out === undefined) page[at % PAGE] = tx.data[i]!;
        else out[i] = page[at % PAGE]!;
      }
      bytes = out;
    }
    this.completions.push({ sub: tx.sub, status, bytes });
  }
}

// ---------------------------------------------------------------- the real side

interface RealGroup {
  cookie: number;
  grpid: number;
  flags: number[];
  perms: number[];
  addrs: number[];
}

function groupsOf(words: Uint32Array, n: number): RealGroup[] {
  const out: RealGroup[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * REC_WORDS;
    const cookie = words[o + 9]!;
    let g = out.at(-1);
    if (g === undefined || g.cookie !== cookie || (g.flags.at(-1)! & PGFAULT_FLAG.LastPage) !== 0) {
      g = { cookie, grpid: words[o + 3]!, flags: [], perms: [], addrs: [] };
      out.push(g);
    }
    expect(words[o + 3]).toBe(g.grpid); // a group's records share its index
    g.flags.push(words[o]!);
    g.perms.push(words[o + 4]!);
    g.addrs.push(words[o + 6]! + words[o + 7]! * 2 ** 32);
  }
  return out;
}

class Rig {
  readonly fd = Iommufd.open({ memoryBytes: 8 * 2 ** 20 });
  readonly ioas = this.fd.ioasAlloc();
  readonly dev: number;
  readonly queue: FaultQueue;
  readonly engine: DmaEngine;
  /** Host VA backing each backed page. */
  readonly backing = new Map<number, bigint>();
  readonly completions: Completion[] = [];
  /** Engine id → submission index, for transfers in flight. */
  readonly live = new Map<number, number>();
  /** Each submission's buffer, and whether it is a write. */
  readonly data: Uint8Array[] = [];
  readonly writes: boolean[] = [];
  submitting = -1;
  seen = 0;

  constructor(
    kind: 'vtd' | 'smmuv3',
    pri: boolean,
    readonly autoPump: boolean,
    maxRetries: number,
  ) {
    this.dev = this.fd.deviceBind({ iommu: kind, pri });
    const { faultId, queue } = this.fd.faultQueueAlloc();
    this.queue = queue;
    this.fd.deviceAttach(this.dev, this.fd.hwptAlloc({ devId: this.dev, ptId: this.ioas, faultId }));
    this.engine = this.fd.dmaEngine(this.dev, {
      autoPump,
      maxRetries,
      onComplete: (tx, status) => {
        const sub = this.live.get(tx) ?? this.submitting;
        expect(sub).toBeGreaterThanOrEqual(0);
        this.live.delete(tx);
        const d = this.data[sub]!;
        this.completions.push({ sub, status, bytes: status === 0 && !this.writes[sub]! ? d.slice() : undefined });
      },
    });
  }

  back(page: number): void {
    if (this.backing.has(page)) return;
    const va = this.fd.memory.mmap(BigInt(PAGE));
    this.fd.ioasMap(this.ioas, {
      userVa: va,
      length: BigInt(PAGE),
      iova: BigInt(BASE + page * PAGE),
      flags: { fixedIova: true },
    });
    this.backing.set(page, va);
  }

  unback(page: number): void {
    const va = this.backing.get(page);
    if (va === undefined) return;
    expect(this.fd.ioasUnmap(this.ioas, BigInt(BASE + page * PAGE), BigInt(PAGE))).toBe(BigInt(PAGE));
    this.fd.memory.munmap(va, BigInt(PAGE));
    this.backing.delete(page);
  }
}

/** One step on both sides, then the checks. */
async function step(op: Op, m: Model, r: Rig): Promise<void> {
  switch (op.t) {
    case 'submit': {
      const iova = BASE + Math.min(op.page * PAGE + op.off, K * PAGE - op.len);
      const data = op.write
        ? new Uint8Array(op.len).map((_, i) => (op.seed + i * 13 + 1) & 0xff)
        : new Uint8Array(op.len);
      const sub = m.txs.length;
      r.data.push(data);
      r.writes.push(op.write);
      m.submit(iova, op.write, data.slice());
      r.submitting = sub;
      const id = r.engine.submit(iova, op.write ? Access.Write : Access.Read, data);
      r.submitting = -1;
      expect(id).toBeGreaterThanOrEqual(0);
      if (m.txs[sub]!.status === undefined) {
        expect(r.live.has(id)).toBe(false); // ids are unique among transfers in flight
        r.live.set(id, sub);
      }
      break;
    }
    case 'handle': {
      const words = new Uint32Array(REC_WORDS * op.max);
      const n = r.queue.readInto(words);
      const got = groupsOf(words, n);
      // The model's groups that fit, whole, in `max` records.
      const want: ModelGroup[] = [];
      let records = 0;
      while (m.queue.length > 0 && records + m.queue[0]!.pages.length <= op.max) {
        records += m.queue[0]!.pages.length;
        want.push(m.queue.shift()!);
      }
      expect(n).toBe(records);
      expect(got.map((g) => g.addrs)).toEqual(want.map((g) => g.pages.map((p) => BASE + p * PAGE)));
      for (let i = 0; i < got.length; i++) {
        const g = got[i]!;
        expect(g.flags).toEqual(g.addrs.map((_, k) => (k === g.addrs.length - 1 ? PGFAULT_FLAG.LastPage : 0)));
        const perm = want[i]!.tx.write ? PGFAULT_PERM.Write : PGFAULT_PERM.Read;
        expect(g.perms).toEqual(g.addrs.map(() => perm));
      }
      // Groups read together are all outstanding: distinct cookies and distinct request tags.
      expect(new Set(got.map((g) => g.cookie)).size).toBe(got.length);
      expect(new Set(got.map((g) => g.grpid)).size).toBe(got.length);
      const resp = new Uint32Array(2 * got.length);
      got.forEach((g, i) => {
        const answer = op.answers.length > 0 ? op.answers[i % op.answers.length]! : 'map';
        if (answer === 'map') for (const a of g.addrs) r.back((a - BASE) / PAGE);
        resp[2 * i] = g.cookie;
        resp[2 * i + 1] = answer === 'invalid' ? PAGE_RESPONSE.Invalid : PAGE_RESPONSE.Success;
        m.answer(want[i]!, answer);
      });
      if (got.length > 0) expect(r.queue.respondWords(resp, got.length)).toBe(got.length);
      if (r.autoPump) {
        // Nothing is retried inside the answer; the automatic pump runs in a microtask.
        expect(r.completions.length).toBe(r.seen);
        await settle();
        m.pump();
      }
      break;
    }
    case 'pump': {
      const before = m.completions.length;
      if (r.autoPump) await settle();
      else {
        m.pump();
        expect(r.engine.pump()).toBe(m.completions.length - before);
      }
      break;
    }
    case 'unmap': {
      if (m.mapped.delete(op.page)) r.unback(op.page);
      else expect(r.backing.has(op.page)).toBe(false);
      break;
    }
  }
  check(m, r);
}

function check(m: Model, r: Rig): void {
  expect(r.completions.slice(r.seen)).toEqual(m.completions.slice(r.seen));
  r.seen = m.completions.length;
  expect(r.engine.inFlight).toBe(m.inFlight);
  expect(r.queue.pending).toBe(m.queue.length);
  expect(r.queue.awaiting).toBe(0);
  expect([...r.backing.keys()].sort()).toEqual([...m.mapped.keys()].sort());
  for (const [page, bytes] of m.mapped)
    expect(firstDiff(r.fd.memory.read(r.backing.get(page)!, PAGE), bytes), `page ${page}`).toBe(-1);
}

/** The first index where `a` and `b` differ, or -1 (a fast toEqual for pages). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function run(kind: 'vtd' | 'smmuv3', pri: boolean, autoPump: boolean, maxRetries: number, ops: Op[]) {
  const m = new Model(pri, maxRetries);
  const r = new Rig(kind, pri, autoPump, maxRetries);
  try {
    for (const op of ops) await step(op, m, r);
    // Answer everything (SUCCESS, backing the pages) and pump until nothing is in flight.
    for (let i = 0; i <= maxRetries + 1 && m.inFlight > 0; i++) {
      await step({ t: 'handle', max: 64, answers: [] }, m, r);
      await step({ t: 'pump' }, m, r);
    }
    expect(m.inFlight).toBe(0);
    expect(r.engine.inFlight).toBe(0);
    await r.engine.idle();
    // Every transfer completed exactly once, with the status its history allows.
    const subs = r.completions.map((c) => c.sub).sort((a, b) => a - b);
    expect(subs).toEqual(m.txs.map((t) => t.sub));
    for (const tx of m.txs) {
      if (tx.status === DMA_STATUS.Ok) expect(tx.invalid).toBe(false);
      if (tx.invalid) expect(tx.status).toBe(DMA_STATUS.Invalid);
      if (tx.status === DMA_STATUS.RetriesExhausted) expect(tx.rounds).toBe(maxRetries);
      expect([DMA_STATUS.Ok, DMA_STATUS.Invalid, DMA_STATUS.RetriesExhausted]).toContain(tx.status);
    }
    // Completed writes landed (where their pages are still backed, the bytes are the model's).
    for (const [page, bytes] of m.mapped)
      expect(firstDiff(r.fd.dmaRead(r.dev, BASE + page * PAGE, PAGE), bytes), `page ${page}`).toBe(-1);
    // Nothing pending or awaiting: no request tag is outstanding.
    expect(r.queue.pending + r.queue.awaiting).toBe(0);
    const ok = m.txs.filter((t) => t.status === DMA_STATUS.Ok).length;
    expect(r.engine.stats).toEqual({
      submitted: m.txs.length,
      completed: ok,
      failed: m.txs.length - ok,
      requests: m.requests,
      retries: m.retries,
      tagStalls: 0,
    });
    const groups = r.queue.stats.queued;
    expect(r.queue.stats).toEqual({ queued: groups, read: groups, answered: groups, autoAnswered: 0 });
  } finally {
    await r.fd.close();
  }
}

describe.each([
  { kind: 'vtd' as const, pri: true, model: 'PRI' },
  { kind: 'smmuv3' as const, pri: false, model: 'stall' },
])('DmaEngine against the model ($kind, $model)', ({ kind, pri }) => {
  it.each([false, true])('autoPump %s', async (autoPump) => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }),
        async (maxRetries, ops) => run(kind, pri, autoPump, maxRetries, ops),
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
