// Model-based test: random sequences of IOAS map/copy/unmap and device attach/replace/detach run
// against the real Iommufd (one mock device, two IOASes) and against ./model.ts. After every step the
// call's result or errno, the ids handed out, translate()/lastFault() on probe IOVAs, the bytes
// dmaRead() sees, the host memory after DMA writes, the pinned host pages and IOVA ranges must agree.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Access, Iommufd, IommufdError, TranslateFault } from '../../src/index.js';
import {
  APERTURE_START,
  HOST_PAGE,
  MOCK_PAGE,
  Model,
  READ,
  WRITE,
  type Area,
  type Fault,
  type Result,
} from './model.js';

// IOAS_PROPERTY_RUNS=5000 for a longer soak.
const NUM_RUNS = Number(process.env['IOAS_PROPERTY_RUNS'] ?? 150);
const BUF_BYTES = 16384; // 8 mock pages per host buffer
const NUM_BUFS = 3;
const WINDOW = APERTURE_START; // fixed IOVAs live in [WINDOW, WINDOW + WINDOW_PAGES * 2048)
const WINDOW_PAGES = 24;
const LOW = HOST_PAGE; // where automatic IOVAs land while an IOAS has no domain

const FAULT_CODE: Record<Fault, number> = {
  'no-domain': TranslateFault.NoDomain,
  'not-mapped': TranslateFault.NotMapped,
  permission: TranslateFault.Permission,
};

// ---------------------------------------------------------------- actions

type Prot = { readable: boolean; writeable: boolean };
type Action =
  | ({ kind: 'mapFixed'; ioas: number; buf: number; page: number; pages: number; slot: number } & Prot)
  | ({ kind: 'mapAuto'; ioas: number; buf: number; page: number; pages: number } & Prot)
  | { kind: 'mapNoProt'; ioas: number; buf: number; slot: number; fixed: boolean }
  | { kind: 'mapIovaNotFixed'; ioas: number; buf: number; slot: number }
  | ({
      kind: 'copy';
      src: number;
      dst: number;
      area: number;
      startPage: number;
      pages: number;
      fit: boolean;
      fixed: boolean;
      slot: number;
    } & Prot)
  | { kind: 'unmapArea'; ioas: number; area: number }
  | { kind: 'unmapSpan'; ioas: number; from: number; to: number; before: number; after: number }
  | { kind: 'unmapRange'; ioas: number; low: boolean; start: number; len: number }
  | { kind: 'unmapAll'; ioas: number }
  | { kind: 'attachIoas'; ioas: number }
  | { kind: 'attachHwpt'; pick: number }
  | { kind: 'attachId'; id: number }
  | { kind: 'replaceIoas'; ioas: number }
  | { kind: 'replaceHwpt'; pick: number }
  | { kind: 'replaceId'; id: number }
  | { kind: 'detach' }
  | { kind: 'hwptAlloc'; ioas: number }
  | { kind: 'hwptAllocId'; id: number }
  | { kind: 'destroy'; id: number }
  | { kind: 'destroyHwpt'; pick: number }
  | { kind: 'cpuWrite'; buf: number; off: number; len: number; seed: number }
  | { kind: 'dmaRead'; target: Target; area: number; page: number; off: number; len: number }
  | { kind: 'dmaWrite'; target: Target; area: number; page: number; off: number; len: number; seed: number };

// Where DMA actions aim: an area of the IOAS the device is attached to, or of a given IOAS.
type Target = 'attached' | 0 | 1;

const ioasIdx = fc.integer({ min: 0, max: 1 });
const bufIdx = fc.integer({ min: 0, max: NUM_BUFS - 1 });
const hostPage = fc.integer({ min: 0, max: BUF_BYTES / 2048 - 1 });
const npages = fc.integer({ min: 1, max: 4 });
const slot = fc.integer({ min: 0, max: WINDOW_PAGES - 1 });
const rawId = fc.integer({ min: 1, max: 8 });
const pick = fc.nat(7);
const target = fc.constantFrom<Target>('attached', 'attached', 'attached', 0, 1);
const prot = fc.constantFrom<Prot>(
  { readable: true, writeable: true },
  { readable: true, writeable: true },
  { readable: true, writeable: false },
  { readable: false, writeable: true },
);

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({ ioas: ioasIdx, buf: bufIdx, page: hostPage, pages: npages, slot, p: prot })
      .map(({ p, ...r }) => ({ kind: 'mapFixed' as const, ...r, ...p })),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ ioas: ioasIdx, buf: bufIdx, page: hostPage, pages: npages, p: prot })
      .map(({ p, ...r }) => ({ kind: 'mapAuto' as const, ...r, ...p })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ ioas: ioasIdx, buf: bufIdx, slot, fixed: fc.boolean() })
      .map((r) => ({ kind: 'mapNoProt' as const, ...r })),
  },
  {
    weight: 1,
    arbitrary: fc.record({ ioas: ioasIdx, buf: bufIdx, slot }).map((r) => ({ kind: 'mapIovaNotFixed' as const, ...r })),
  },
  {
    weight: 5,
    arbitrary: fc
      .record({
        src: ioasIdx,
        dst: ioasIdx,
        area: fc.nat(7),
        startPage: fc.nat(3),
        pages: fc.integer({ min: 1, max: 5 }),
        fit: fc.integer({ min: 0, max: 3 }).map((n) => n !== 0),
        fixed: fc.boolean(),
        slot,
        p: prot,
      })
      .map(({ p, ...r }) => ({ kind: 'copy' as const, ...r, ...p })),
  },
  {
    weight: 3,
    arbitrary: fc.record({ ioas: ioasIdx, area: fc.nat(7) }).map((r) => ({ kind: 'unmapArea' as const, ...r })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ ioas: ioasIdx, from: fc.nat(7), to: fc.nat(7), before: fc.nat(2), after: fc.nat(2) })
      .map((r) => ({ kind: 'unmapSpan' as const, ...r })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        ioas: ioasIdx,
        low: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
        start: fc.nat(2 * WINDOW_PAGES + 4),
        len: fc.integer({ min: 1, max: 40 }),
      })
      .map((r) => ({ kind: 'unmapRange' as const, ...r })),
  },
  { weight: 1, arbitrary: fc.record({ ioas: ioasIdx }).map((r) => ({ kind: 'unmapAll' as const, ...r })) },
  { weight: 3, arbitrary: fc.record({ ioas: ioasIdx }).map((r) => ({ kind: 'attachIoas' as const, ...r })) },
  { weight: 2, arbitrary: fc.record({ pick }).map((r) => ({ kind: 'attachHwpt' as const, ...r })) },
  { weight: 1, arbitrary: fc.record({ id: rawId }).map((r) => ({ kind: 'attachId' as const, ...r })) },
  { weight: 2, arbitrary: fc.record({ ioas: ioasIdx }).map((r) => ({ kind: 'replaceIoas' as const, ...r })) },
  { weight: 2, arbitrary: fc.record({ pick }).map((r) => ({ kind: 'replaceHwpt' as const, ...r })) },
  { weight: 1, arbitrary: fc.record({ id: rawId }).map((r) => ({ kind: 'replaceId' as const, ...r })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'detach' as const }) },
  { weight: 2, arbitrary: fc.record({ ioas: ioasIdx }).map((r) => ({ kind: 'hwptAlloc' as const, ...r })) },
  { weight: 1, arbitrary: fc.record({ id: rawId }).map((r) => ({ kind: 'hwptAllocId' as const, ...r })) },
  { weight: 2, arbitrary: fc.record({ id: rawId }).map((r) => ({ kind: 'destroy' as const, ...r })) },
  { weight: 1, arbitrary: fc.record({ pick }).map((r) => ({ kind: 'destroyHwpt' as const, ...r })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ buf: bufIdx, off: fc.nat(BUF_BYTES - 1), len: fc.integer({ min: 1, max: 64 }), seed: fc.nat(255) })
      .map((r) => ({ kind: 'cpuWrite' as const, ...r })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        target,
        area: fc.nat(7),
        page: fc.nat(3),
        off: fc.nat(2047),
        len: fc.integer({ min: 1, max: 6000 }),
      })
      .map((r) => ({ kind: 'dmaRead' as const, ...r })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        target,
        area: fc.nat(7),
        page: fc.nat(3),
        off: fc.nat(2047),
        len: fc.integer({ min: 1, max: 64 }),
        seed: fc.nat(255),
      })
      .map((r) => ({ kind: 'dmaWrite' as const, ...r })),
  },
);

// ---------------------------------------------------------------- helpers

function call<T>(f: () => T): Result<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof IommufdError) return { ok: false, errno: e.errno };
    throw e;
  }
}

const show = (x: unknown): string =>
  JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));

// Deep equality over the shapes compared here (primitives incl. bigint, arrays, typed arrays, plain objects).
function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b) || Array.isArray(a) || Array.isArray(b)) {
    const x = Array.from(a as ArrayLike<unknown>);
    const y = Array.from(b as ArrayLike<unknown>);
    return Array.isArray(a) === Array.isArray(b) && x.length === y.length && x.every((v, i) => equal(v, y[i]));
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return (
    ka.length === kb.length &&
    ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

const e2s = (e: IommufdError | undefined): string | undefined =>
  e === undefined ? undefined : `${e.errno}: ${e.message}`;

function pattern(buf: number): Uint8Array {
  const out = new Uint8Array(BUF_BYTES);
  for (let i = 0; i < BUF_BYTES; i++) out[i] = Math.imul(i + 1 + buf * 0x10000, 0x9e3779b1) >>> 24;
  return out;
}

function writeBytes(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (seed * 31 + i * 17 + 0x5a) & 0xff;
  return out;
}

// ---------------------------------------------------------------- the run

async function run(actions: Action[]): Promise<void> {
  const fd = Iommufd.open({ memoryBytes: 8 * 2 ** 20 });
  const m = new Model();
  try {
    const ioasIds = [fd.ioasAlloc(), fd.ioasAlloc()];
    expect(ioasIds).toEqual([m.ioasAlloc(), m.ioasAlloc()]);
    const dev = fd.deviceBind({ iommu: 'mock' });
    expect(dev).toBe(m.deviceBind());

    const bufs: bigint[] = [];
    for (let b = 0; b < NUM_BUFS; b++) {
      const va = fd.memory.mmap(BigInt(BUF_BYTES));
      fd.memory.write(va, pattern(b));
      m.addHostBuffer(va, pattern(b));
      bufs.push(va);
    }

    // host page VA -> PA page, and back: while pinned, a host page keeps its PA and no other page shares it.
    const paOf = new Map<bigint, number>();
    const vaOf = new Map<number, bigint>();

    const ioasOf = (k: number): number => ioasIds[k]!;
    const areaAt = (k: number, idx: number): Area | undefined => {
      const list = m.areas(ioasOf(k));
      return list.length === 0 ? undefined : list[idx % list.length];
    };
    const dmaArea = (t: Target, idx: number): Area | undefined => {
      const ioas = t === 'attached' ? m.attachedIoas(dev) : ioasOf(t);
      const list = ioas === undefined ? [] : m.areas(ioas);
      return list.length === 0 ? undefined : list[idx % list.length];
    };
    const userVa = (buf: number, page: number): bigint => bufs[buf]! + BigInt(page) * MOCK_PAGE;
    const clampPages = (page: number, pages: number): number => Math.min(pages, BUF_BYTES / 2048 - page);
    const hwptPick = (p: number): number | undefined => {
      const ids = m.hwptIds().sort((a, b) => a - b);
      return ids.length === 0 ? undefined : ids[p % ids.length];
    };
    const pickReal =
      (real: Result<bigint>) =>
      (choices: bigint[]): bigint =>
        real.ok && choices.includes(real.value) ? real.value : choices[0]!;

    // The hot checks compare cheaply and only go through expect() (for its diff) on a mismatch.
    const same = (got: unknown, exp: unknown, where: () => string): void => {
      if (!equal(got, exp)) expect(got, where()).toEqual(exp);
    };

    const checkTranslate = (ctx: string, iova: bigint, access: number): void => {
      const where = (): string => `${ctx}: translate(iova 0x${iova.toString(16)}, access ${access})`;
      const exp = m.translate(dev, iova, (access & Access.Read ? READ : 0) | (access & Access.Write ? WRITE : 0));
      const pa = fd.translate(dev, Number(iova), access);
      if ('fault' in exp) {
        same(pa, FAULT_CODE[exp.fault], where);
        const lf = fd.lastFault();
        same({ code: lf.code, iova: lf.iova }, { code: pa, iova: Number(iova) }, () => `${where()}: lastFault`);
        return;
      }
      same(pa >= 0, true, () => `${where()}: expected a PA, got ${pa}`);
      same(pa % 4096, Number(exp.hostVa % HOST_PAGE), () => `${where()}: page offset of the PA`);
      const vaPage = exp.hostVa - (exp.hostVa % HOST_PAGE);
      const paPage = pa - (pa % 4096);
      const known = paOf.get(vaPage);
      if (known === undefined) {
        same(vaOf.get(paPage), undefined, () => `${where()}: PA page 0x${paPage.toString(16)} backs two host pages`);
        paOf.set(vaPage, paPage);
        vaOf.set(paPage, vaPage);
      } else {
        same(paPage, known, () => `${where()}: the PA of host VA 0x${vaPage.toString(16)} changed`);
      }
    };

    const checkRead = (ctx: string, iova: bigint, len: number): void => {
      const where = (): string => `${ctx}: dmaRead(iova 0x${iova.toString(16)}, ${len})`;
      const exp = m.dmaRead(dev, iova, len);
      let got: Uint8Array | undefined;
      let error: IommufdError | undefined;
      try {
        got = fd.dmaRead(dev, Number(iova), len);
      } catch (e) {
        if (!(e instanceof IommufdError)) throw e;
        error = e;
      }
      if ('fault' in exp) {
        const e = error as (IommufdError & { fault?: { code: number } }) | undefined;
        same(
          { errno: e?.errno, code: e?.fault?.code },
          { errno: 'EFAULT', code: FAULT_CODE[exp.fault] },
          () => `${where()}: expected a ${exp.fault} fault`,
        );
      } else {
        same(e2s(error), undefined, where);
        same(got, exp.bytes, where);
      }
    };

    const checkState = (ctx: string): void => {
      for (let k = 0; k < 2; k++) {
        const r = fd.ioasIovaRanges(ioasOf(k));
        same(
          { ranges: r.ranges, alignment: r.alignment },
          m.iovaRanges(ioasOf(k)),
          () => `${ctx}: iovaRanges(ioas ${ioasOf(k)})`,
        );
      }

      const probes = new Set<bigint>();
      for (let p = 0; p < WINDOW_PAGES + 4; p++) probes.add(WINDOW + BigInt(p) * MOCK_PAGE + BigInt((p * 421) % 2048));
      for (let p = 0; p < 8; p++) probes.add(LOW + BigInt(p) * MOCK_PAGE + 3n);
      for (let k = 0; k < 2; k++) {
        for (const a of m.areas(ioasOf(k))) {
          probes.add(a.iova);
          probes.add(a.iova + a.length - 1n);
        }
      }
      for (const iova of probes) {
        for (const access of [Access.Read, Access.Write, Access.Read | Access.Write]) checkTranslate(ctx, iova, access);
        checkRead(ctx, iova, 8);
      }

      for (const va of bufs) {
        for (let off = 0n; off < BigInt(BUF_BYTES); off += HOST_PAGE) {
          // the PA of a host page is only pinned down while the page is pinned
          const pa = m.pinned(va + off) ? undefined : paOf.get(va + off);
          if (pa !== undefined) {
            paOf.delete(va + off);
            vaOf.delete(pa);
          }
          same(
            fd.memory.pinCount(va + off) > 0,
            m.pinned(va + off),
            () => `${ctx}: pinned(host VA 0x${(va + off).toString(16)})`,
          );
        }
      }
    };

    const checkMemory = (ctx: string): void => {
      m.hostBuffers().forEach((h, i) => {
        same(fd.memory.read(h.va, h.bytes.length), h.bytes, () => `${ctx}: host buffer ${i}`);
      });
    };

    checkState('initial');

    for (const [step, a] of actions.entries()) {
      const ctx = `step ${step} ${show(a)}`;
      switch (a.kind) {
        case 'mapFixed': {
          const ioas = ioasOf(a.ioas);
          const length = BigInt(clampPages(a.page, a.pages)) * MOCK_PAGE;
          const iova = WINDOW + BigInt(a.slot) * MOCK_PAGE;
          const va = userVa(a.buf, a.page);
          const flags = { fixedIova: true, readable: a.readable, writeable: a.writeable };
          const real = call(() => fd.ioasMap(ioas, { userVa: va, length, iova, flags }));
          const exp = m.ioasMap(ioas, { userVa: va, length, iova, fixed: true, ...flags }, pickReal(real));
          expect(real, ctx).toEqual(exp);
          break;
        }
        case 'mapAuto': {
          const ioas = ioasOf(a.ioas);
          const length = BigInt(clampPages(a.page, a.pages)) * MOCK_PAGE;
          const va = userVa(a.buf, a.page);
          const flags = { readable: a.readable, writeable: a.writeable };
          const real = call(() => fd.ioasMap(ioas, { userVa: va, length, flags }));
          const exp = m.ioasMap(ioas, { userVa: va, length, fixed: false, ...flags }, pickReal(real));
          expect(real, ctx).toEqual(exp);
          break;
        }
        case 'mapNoProt': {
          const ioas = ioasOf(a.ioas);
          const va = userVa(a.buf, 0);
          const iova = WINDOW + BigInt(a.slot) * MOCK_PAGE;
          const flags = { fixedIova: a.fixed, readable: false, writeable: false };
          const real = call(() =>
            a.fixed
              ? fd.ioasMap(ioas, { userVa: va, length: MOCK_PAGE, iova, flags })
              : fd.ioasMap(ioas, { userVa: va, length: MOCK_PAGE, flags }),
          );
          const exp = m.ioasMap(
            ioas,
            { userVa: va, length: MOCK_PAGE, iova, fixed: a.fixed, readable: false, writeable: false },
            pickReal(real),
          );
          expect(real, ctx).toEqual(exp);
          break;
        }
        case 'mapIovaNotFixed': {
          const ioas = ioasOf(a.ioas);
          const va = userVa(a.buf, 0);
          const iova = WINDOW + BigInt(a.slot) * MOCK_PAGE;
          const real = call(() => fd.ioasMap(ioas, { userVa: va, length: MOCK_PAGE, iova }));
          const exp = m.ioasMap(
            ioas,
            { userVa: va, length: MOCK_PAGE, iova, fixed: false, readable: true, writeable: true },
            pickReal(real),
          );
          expect(real, ctx).toEqual(exp);
          break;
        }
        case 'copy': {
          const src = ioasOf(a.src);
          const dst = ioasOf(a.dst);
          const area = areaAt(a.src, a.area);
          const srcIova =
            area === undefined
              ? WINDOW + BigInt(a.slot) * MOCK_PAGE
              : area.iova + ((BigInt(a.startPage) * MOCK_PAGE) % area.length);
          let length = BigInt(a.pages) * MOCK_PAGE;
          // usually stay inside the chosen area so that most copies can succeed
          if (a.fit && area !== undefined && srcIova + length > area.iova + area.length) {
            length = area.iova + area.length - srcIova;
          }
          const dstIova = WINDOW + BigInt(a.slot) * MOCK_PAGE;
          const prot = { readable: a.readable, writeable: a.writeable };
          const real = call(() =>
            a.fixed
              ? fd.ioasCopy({
                  dstIoasId: dst,
                  srcIoasId: src,
                  srcIova,
                  length,
                  dstIova,
                  flags: { fixedIova: true, ...prot },
                })
              : fd.ioasCopy({ dstIoasId: dst, srcIoasId: src, srcIova, length, flags: prot }),
          );
          const exp = m.ioasCopy(
            a.fixed
              ? { dst, src, srcIova, length, dstIova, fixed: true, ...prot }
              : { dst, src, srcIova, length, fixed: false, ...prot },
            pickReal(real),
          );
          expect(real, `${ctx} srcIova=0x${srcIova.toString(16)}`).toEqual(exp);
          break;
        }
        case 'unmapArea': {
          const ioas = ioasOf(a.ioas);
          const area = areaAt(a.ioas, a.area);
          const iova = area?.iova ?? WINDOW;
          const length = area?.length ?? MOCK_PAGE;
          const real = call(() => fd.ioasUnmap(ioas, iova, length));
          expect(real, `${ctx} iova=0x${iova.toString(16)} len=0x${length.toString(16)}`).toEqual(
            m.ioasUnmap(ioas, iova, length),
          );
          break;
        }
        case 'unmapSpan': {
          // from the start of one area to the end of another, widened by 0-2 KiB on each side
          const ioas = ioasOf(a.ioas);
          const first = areaAt(a.ioas, Math.min(a.from, a.to));
          const lastArea = areaAt(a.ioas, Math.max(a.from, a.to));
          if (first === undefined || lastArea === undefined) break;
          const iova = first.iova - BigInt(a.before) * 1024n;
          const end = lastArea.iova + lastArea.length + BigInt(a.after) * 1024n;
          if (end <= iova) break;
          const real = call(() => fd.ioasUnmap(ioas, iova, end - iova));
          expect(real, `${ctx} iova=0x${iova.toString(16)} len=0x${(end - iova).toString(16)}`).toEqual(
            m.ioasUnmap(ioas, iova, end - iova),
          );
          break;
        }
        case 'unmapRange': {
          const ioas = ioasOf(a.ioas);
          const iova = (a.low ? LOW : WINDOW) + BigInt(a.start) * 1024n;
          const length = BigInt(a.len) * 1024n;
          const real = call(() => fd.ioasUnmap(ioas, iova, length));
          expect(real, `${ctx} iova=0x${iova.toString(16)} len=0x${length.toString(16)}`).toEqual(
            m.ioasUnmap(ioas, iova, length),
          );
          break;
        }
        case 'unmapAll': {
          const ioas = ioasOf(a.ioas);
          const real = call(() => fd.ioasUnmap(ioas, 0n, 2n ** 64n - 1n));
          expect(real, ctx).toEqual(m.ioasUnmap(ioas, 0n, 2n ** 64n - 1n));
          break;
        }
        case 'attachIoas':
        case 'attachHwpt':
        case 'attachId': {
          const pt = a.kind === 'attachIoas' ? ioasOf(a.ioas) : a.kind === 'attachHwpt' ? hwptPick(a.pick) : a.id;
          if (pt === undefined) break;
          const real = call(() => fd.deviceAttach(dev, pt));
          expect(real, `${ctx} pt=${pt}`).toEqual(m.deviceAttach(dev, pt));
          break;
        }
        case 'replaceIoas':
        case 'replaceHwpt':
        case 'replaceId': {
          const pt = a.kind === 'replaceIoas' ? ioasOf(a.ioas) : a.kind === 'replaceHwpt' ? hwptPick(a.pick) : a.id;
          if (pt === undefined) break;
          const real = call(() => fd.deviceReplace(dev, pt));
          expect(real, `${ctx} pt=${pt}`).toEqual(m.deviceReplace(dev, pt));
          break;
        }
        case 'detach': {
          const real = call(() => {
            fd.deviceDetach(dev);
            return null;
          });
          expect(real, ctx).toEqual(m.deviceDetach(dev));
          break;
        }
        case 'hwptAlloc':
        case 'hwptAllocId': {
          const pt = a.kind === 'hwptAlloc' ? ioasOf(a.ioas) : a.id;
          if (m.kindOf(pt) === 'hwpt') break; // nested allocation is out of scope here
          const real = call(() => fd.hwptAlloc({ devId: dev, ptId: pt }));
          expect(real, `${ctx} pt=${pt}`).toEqual(m.hwptAlloc(dev, pt));
          break;
        }
        case 'destroy':
        case 'destroyHwpt': {
          const id = a.kind === 'destroy' ? a.id : hwptPick(a.pick);
          if (id === undefined) break;
          const k = ioasIds.indexOf(id);
          const real = call(() => {
            fd.destroy(id);
            return null;
          });
          const exp = m.destroy(id);
          expect(real, `${ctx} id=${id}`).toEqual(exp);
          if (exp.ok && k >= 0) {
            // keep two IOASes around; the new one must get the lowest free id
            const fresh = fd.ioasAlloc();
            expect(fresh, `${ctx}: re-allocated IOAS id`).toBe(m.ioasAlloc());
            ioasIds[k] = fresh;
          }
          break;
        }
        case 'dmaRead': {
          const area = dmaArea(a.target, a.area);
          const iova =
            (area === undefined ? WINDOW : area.iova + ((BigInt(a.page) * MOCK_PAGE) % area.length)) + BigInt(a.off);
          checkRead(ctx, iova, a.len);
          break;
        }
        case 'cpuWrite': {
          // the CPU writes host memory directly; later DMA reads must see it
          const h = m.hostBuffers()[a.buf]!;
          const bytes = writeBytes(Math.min(a.len, BUF_BYTES - a.off), a.seed);
          fd.memory.write(h.va + BigInt(a.off), bytes);
          h.bytes.set(bytes, a.off);
          checkMemory(ctx);
          break;
        }
        case 'dmaWrite': {
          const area = dmaArea(a.target, a.area);
          const iova =
            (area === undefined ? WINDOW : area.iova + ((BigInt(a.page) * MOCK_PAGE) % area.length)) + BigInt(a.off);
          // stay inside one 2 KiB IOVA page so a write either faults entirely or not at all
          const bytes = writeBytes(Math.min(a.len, 2048 - a.off), a.seed);
          const where = `${ctx}: dmaWrite(iova 0x${iova.toString(16)}, ${bytes.length})`;
          const exp = m.dmaWrite(dev, iova, bytes);
          const real = call(() => {
            fd.dmaWrite(dev, Number(iova), bytes);
            return null;
          });
          expect(real, where).toEqual('fault' in exp ? { ok: false, errno: 'EFAULT' } : { ok: true, value: null });
          checkMemory(ctx);
          break;
        }
      }
      checkState(ctx);
    }
    checkMemory('final');
  } finally {
    await fd.close();
  }
}

describe('IOAS map/copy/unmap/attach against a reference model', () => {
  it(
    'agrees with the model on errors, ids, translations, DMA bytes and pins',
    { timeout: 60_000 + NUM_RUNS * 100 },
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: 40, size: 'max' }), (actions) => run(actions)),
        { numRuns: NUM_RUNS },
      );
    },
  );
});
