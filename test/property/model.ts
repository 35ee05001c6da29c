// A deliberately naive reference model of the parts of iommufd exercised by ioas.property.test.ts.
// No caches, no page tables: each IOAS is a sorted list of areas, translation is a linear scan.
// Nothing here is imported from src/.

export const HOST_PAGE = 4096n;
export const MOCK_PAGE = 2048n;
export const APERTURE_START = 1n << 24n;
export const APERTURE_LAST = (1n << 31n) - 1n;
export const U64_MAX = (1n << 64n) - 1n;
const HUGE_CAP = 2n * 1024n * 1024n;

export const READ = 1;
export const WRITE = 2;

export type Fault = 'no-domain' | 'not-mapped' | 'permission';
export type Result<T> = { ok: true; value: T } | { ok: false; errno: string };

export interface Area {
  iova: bigint;
  length: bigint;
  hostVa: bigint; // host VA of the area's first byte
  readable: boolean;
  writeable: boolean;
  pagesWritable: boolean; // writeable flag of the MAP that pinned the backing pages (inherited by COPY)
}

export interface Hwpt {
  ioasId: number;
  auto: boolean;
}

type Obj =
  { kind: 'ioas'; areas: Area[] } | { kind: 'device'; attached: number | undefined } | { kind: 'hwpt'; hwpt: Hwpt };

const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const err = <T>(errno: string): Result<T> => ({ ok: false, errno });

const last = (a: Area): bigint => a.iova + a.length - 1n;
const intersects = (s1: bigint, l1: bigint, s2: bigint, l2: bigint): boolean => s1 <= l2 && s2 <= l1;

function roundupPow2(n: bigint): bigint {
  let p = 1n;
  while (p < n) p <<= 1n;
  return p;
}

function lowestSetBit(n: bigint): bigint {
  return n & -n;
}

export class Model {
  readonly objects = new Map<number, Obj>();
  private readonly host: { va: bigint; bytes: Uint8Array }[] = [];

  // ---- ids ----
  private newId(obj: Obj): number {
    let id = 1;
    while (this.objects.has(id)) id++;
    this.objects.set(id, obj);
    return id;
  }

  ioasAlloc(): number {
    return this.newId({ kind: 'ioas', areas: [] });
  }

  deviceBind(): number {
    return this.newId({ kind: 'device', attached: undefined });
  }

  kindOf(id: number): Obj['kind'] | undefined {
    return this.objects.get(id)?.kind;
  }

  areas(ioasId: number): Area[] {
    const o = this.objects.get(ioasId);
    if (o?.kind !== 'ioas') throw new Error(`model: ${ioasId} is not an IOAS`);
    return o.areas;
  }

  hwptIds(): number[] {
    return [...this.objects].filter(([, o]) => o.kind === 'hwpt').map(([id]) => id);
  }

  private hwpt(id: number): Hwpt {
    const o = this.objects.get(id);
    if (o?.kind !== 'hwpt') throw new Error(`model: ${id} is not a HWPT`);
    return o.hwpt;
  }

  private device(id: number): { kind: 'device'; attached: number | undefined } {
    const o = this.objects.get(id);
    if (o?.kind !== 'device') throw new Error(`model: ${id} is not a device`);
    return o;
  }

  attachedHwpt(devId: number): number | undefined {
    return this.device(devId).attached;
  }

  attachedIoas(devId: number): number | undefined {
    const h = this.device(devId).attached;
    return h === undefined ? undefined : this.hwpt(h).ioasId;
  }

  // An IOAS has a domain as soon as any HWPT (auto or manual) is built on it.
  hasDomain(ioasId: number): boolean {
    return [...this.objects.values()].some((o) => o.kind === 'hwpt' && o.hwpt.ioasId === ioasId);
  }

  alignment(ioasId: number): bigint {
    return this.hasDomain(ioasId) ? MOCK_PAGE : 1n;
  }

  reserved(ioasId: number): [bigint, bigint][] {
    return this.hasDomain(ioasId)
      ? [
          [0n, APERTURE_START - 1n],
          [APERTURE_LAST + 1n, U64_MAX],
        ]
      : [];
  }

  iovaRanges(ioasId: number): { ranges: { start: bigint; last: bigint }[]; alignment: bigint } {
    return this.hasDomain(ioasId)
      ? { ranges: [{ start: APERTURE_START, last: APERTURE_LAST }], alignment: MOCK_PAGE }
      : { ranges: [{ start: 0n, last: U64_MAX }], alignment: 1n };
  }

  private insert(ioasId: number, add: Area[]): void {
    const list = this.areas(ioasId);
    list.push(...add);
    list.sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  }

  // ---- IOVA allocation (first fit, kernel iopt_alloc_iova) ----
  // The cap on the alignment is HPAGE_SIZE with THP and PAGE_SIZE without; both are accepted.
  private allocIova(ioasId: number, addr: bigint, length: bigint, cap: bigint): Result<bigint> {
    if (length === 0n || length >= U64_MAX / 2n) return err('EOVERFLOW');
    let align = roundupPow2(length);
    if (addr !== 0n && lowestSetBit(addr) < align) align = lowestSetBit(addr);
    if (align >= cap) align = cap;
    if (align < this.alignment(ioasId)) return err('EINVAL');
    const pageOffset = addr % HOST_PAGE;
    const used: [bigint, bigint][] = [
      ...this.reserved(ioasId),
      ...this.areas(ioasId).map((a) => [a.iova, last(a)] as [bigint, bigint]),
    ];
    used.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const lo = HOST_PAGE;
    const hi = U64_MAX - HOST_PAGE;
    let cursor = lo;
    const holes: [bigint, bigint][] = [];
    for (const [s, l] of used) {
      if (l < cursor) continue;
      if (s > cursor) holes.push([cursor, s - 1n < hi ? s - 1n : hi]);
      cursor = l + 1n;
      if (cursor > hi) break;
    }
    if (cursor <= hi) holes.push([cursor, hi]);
    for (const [s, l] of holes) {
      if (s > l) continue;
      const cand = (((s + align - 1n) / align) * align) | pageOffset;
      if (cand >= l || l - cand < length - 1n) continue;
      return ok(cand);
    }
    return err('ENOSPC');
  }

  // The IOVA(s) the kernel could pick (one per alignment cap).
  private iovaChoices(ioasId: number, addr: bigint, length: bigint): Result<bigint[]> {
    const a = this.allocIova(ioasId, addr, length, HOST_PAGE);
    const b = this.allocIova(ioasId, addr, length, HUGE_CAP);
    const values = [a, b].flatMap((r) => (r.ok ? [r.value] : []));
    if (!a.ok && !b.ok) return err(a.errno);
    return ok([...new Set(values)]);
  }

  private checkFixed(ioasId: number, iova: bigint, length: bigint): Result<null> {
    if (iova % this.alignment(ioasId) !== 0n) return err('EINVAL');
    const l = iova + length - 1n;
    if (l > U64_MAX) return err('EOVERFLOW');
    if (this.reserved(ioasId).some(([s, e]) => intersects(iova, l, s, e))) return err('EINVAL');
    if (this.areas(ioasId).some((a) => intersects(iova, l, a.iova, last(a)))) return err('EEXIST');
    return ok(null);
  }

  // pick chooses among the equally valid automatic IOVAs (the test passes the one the implementation chose).
  ioasMap(
    ioasId: number,
    p: { userVa: bigint; length: bigint; iova?: bigint; fixed: boolean; readable: boolean; writeable: boolean },
    pick: (choices: bigint[]) => bigint,
  ): Result<bigint> {
    if (!p.readable && !p.writeable) return err('EINVAL');
    if (p.iova !== undefined && !p.fixed) return err('EINVAL');
    const align = this.alignment(ioasId);
    if (p.length === 0n || p.length % align !== 0n) return err('EINVAL');
    let iova: bigint;
    if (p.fixed) {
      if (p.iova === undefined) return err('EINVAL');
      const r = this.checkFixed(ioasId, p.iova, p.length);
      if (!r.ok) return err(r.errno);
      iova = p.iova;
    } else {
      const r = this.iovaChoices(ioasId, p.userVa, p.length);
      if (!r.ok) return err(r.errno);
      iova = pick(r.value);
    }
    if ((p.userVa % HOST_PAGE) % align !== 0n) return err('EINVAL');
    const area = { iova, length: p.length, hostVa: p.userVa, readable: p.readable, writeable: p.writeable };
    this.insert(ioasId, [{ ...area, pagesWritable: p.writeable }]);
    return ok(iova);
  }

  ioasCopy(
    p: {
      dst: number;
      src: number;
      srcIova: bigint;
      length: bigint;
      dstIova?: bigint;
      fixed: boolean;
      readable: boolean;
      writeable: boolean;
    },
    pick: (choices: bigint[]) => bigint,
  ): Result<bigint> {
    if (!p.readable && !p.writeable) return err('EINVAL');
    if (p.length === 0n) return err('EINVAL');
    // Source: contiguous areas covering [srcIova, srcIova+length); one piece per source area.
    const srcLast = p.srcIova + p.length - 1n;
    const pieces: { off: bigint; length: bigint; hostVa: bigint; pagesWritable: boolean }[] = [];
    let cur = p.srcIova;
    for (const a of this.areas(p.src)) {
      if (cur > srcLast) break;
      if (last(a) < cur) continue;
      if (a.iova > cur) break; // hole
      const end = last(a) < srcLast ? last(a) : srcLast;
      pieces.push({
        off: cur - p.srcIova,
        length: end - cur + 1n,
        hostVa: a.hostVa + (cur - a.iova),
        pagesWritable: a.pagesWritable,
      });
      cur = end + 1n;
    }
    if (cur <= srcLast) return err('ENOENT');
    const first = pieces[0];
    if (first === undefined) return err('ENOENT');
    if (p.length % this.alignment(p.dst) !== 0n) return err('EINVAL');
    let iova: bigint;
    if (p.fixed) {
      if (p.dstIova === undefined) return err('EINVAL');
      const r = this.checkFixed(p.dst, p.dstIova, p.length);
      if (!r.ok) return err(r.errno);
      iova = p.dstIova;
    } else {
      const r = this.iovaChoices(p.dst, first.hostVa, p.length);
      if (!r.ok) return err(r.errno);
      iova = pick(r.value);
    }
    if (p.writeable && pieces.some((x) => !x.pagesWritable)) return err('EPERM');
    this.insert(
      p.dst,
      pieces.map((x) => ({
        iova: iova + x.off,
        length: x.length,
        hostVa: x.hostVa,
        readable: p.readable,
        writeable: p.writeable,
        pagesWritable: x.pagesWritable,
      })),
    );
    return ok(iova);
  }

  // Whole-area rule, ascending, each removal committed before the next area is examined.
  ioasUnmap(ioasId: number, iova: bigint, length: bigint): Result<bigint> {
    const list = this.areas(ioasId);
    if (iova === 0n && length === U64_MAX) {
      const total = list.reduce((s, a) => s + a.length, 0n);
      list.length = 0;
      return ok(total);
    }
    if (length === 0n) return err('EINVAL');
    const l = iova + length - 1n;
    let removed = 0n;
    for (;;) {
      const idx = list.findIndex((a) => intersects(iova, l, a.iova, last(a)));
      if (idx < 0) break;
      const a = list[idx]!;
      if (a.iova < iova || last(a) > l) return err('ENOENT');
      list.splice(idx, 1);
      removed += a.length;
    }
    return removed === 0n ? err('ENOENT') : ok(removed);
  }

  private outsideAperture(ioasId: number): boolean {
    return this.areas(ioasId).some((a) => a.iova < APERTURE_START || last(a) > APERTURE_LAST);
  }

  hwptAlloc(devId: number, ptId: number): Result<number> {
    this.device(devId);
    const kind = this.kindOf(ptId);
    if (kind !== 'ioas') return err('EINVAL'); // missing pt_id or a device (HWPT pt_ids are not generated)
    if (this.outsideAperture(ptId)) return err('EADDRINUSE');
    return ok(this.newId({ kind: 'hwpt', hwpt: { ioasId: ptId, auto: false } }));
  }

  private release(hwptId: number | undefined): void {
    if (hwptId !== undefined && this.hwpt(hwptId).auto) this.objects.delete(hwptId);
  }

  private autoHwptOn(ioasId: number, devId: number): number | undefined {
    const cur = this.device(devId).attached;
    return cur !== undefined && this.hwpt(cur).auto && this.hwpt(cur).ioasId === ioasId ? cur : undefined;
  }

  deviceAttach(devId: number, ptId: number): Result<number> {
    const dev = this.device(devId);
    const kind = this.kindOf(ptId);
    if (kind === undefined) return err('ENOENT');
    if (kind === 'device') return err('EINVAL');
    // The device is already in the RID's device_array: EBUSY whatever the target ("use replace").
    // (EINVAL is for another device of the same group attached elsewhere; one device here.)
    // For an IOAS the attach of the new auto HWPT happens before it is filled, so this precedes EADDRINUSE.
    if (dev.attached !== undefined) return err('EBUSY');
    if (kind === 'hwpt') {
      dev.attached = ptId;
      return ok(ptId);
    }
    if (this.outsideAperture(ptId)) return err('EADDRINUSE');
    const id = this.newId({ kind: 'hwpt', hwpt: { ioasId: ptId, auto: true } });
    dev.attached = id;
    return ok(id);
  }

  deviceReplace(devId: number, ptId: number): Result<number> {
    const dev = this.device(devId);
    const kind = this.kindOf(ptId);
    if (kind === undefined) return err('ENOENT');
    if (kind === 'device') return err('EINVAL');
    if (kind === 'hwpt') {
      if (dev.attached === undefined) return err('EINVAL');
      if (dev.attached === ptId) return ok(ptId);
      const old = dev.attached;
      dev.attached = ptId;
      this.release(old);
      return ok(ptId);
    }
    const same = this.autoHwptOn(ptId, devId);
    if (same !== undefined) return ok(same);
    if (this.outsideAperture(ptId)) return err('EADDRINUSE'); // new auto HWPT is filled before the replace
    if (dev.attached === undefined) return err('EINVAL');
    const old = dev.attached;
    const id = this.newId({ kind: 'hwpt', hwpt: { ioasId: ptId, auto: true } });
    dev.attached = id;
    this.release(old);
    return ok(id);
  }

  deviceDetach(devId: number): Result<null> {
    const dev = this.device(devId);
    const old = dev.attached;
    dev.attached = undefined;
    this.release(old);
    return ok(null);
  }

  destroy(id: number): Result<null> {
    const o = this.objects.get(id);
    if (o === undefined) return err('ENOENT');
    if (o.kind === 'device') return err('EBUSY');
    if (o.kind === 'hwpt') {
      const users = [...this.objects.values()].some((d) => d.kind === 'device' && d.attached === id);
      if (users) return err('EBUSY');
    }
    if (o.kind === 'ioas' && this.hasDomain(id)) return err('EBUSY');
    this.objects.delete(id);
    return ok(null);
  }

  // ---- translation ----
  translate(devId: number, iova: bigint, access: number): { fault: Fault } | { hostVa: bigint } {
    const hwptId = this.device(devId).attached;
    if (hwptId === undefined) return { fault: 'no-domain' };
    const area = this.areas(this.hwpt(hwptId).ioasId).find((a) => a.iova <= iova && iova <= last(a));
    if (area === undefined) return { fault: 'not-mapped' };
    if ((access & READ && !area.readable) || (access & WRITE && !area.writeable)) return { fault: 'permission' };
    return { hostVa: area.hostVa + (iova - area.iova) };
  }

  // ---- host memory (the model's own copy of what each mmap'd buffer holds) ----
  addHostBuffer(va: bigint, bytes: Uint8Array): void {
    this.host.push({ va, bytes: bytes.slice() });
  }

  hostBuffers(): readonly { va: bigint; bytes: Uint8Array }[] {
    return this.host;
  }

  private hostByte(va: bigint): { buf: Uint8Array; off: number } {
    const b = this.host.find((h) => h.va <= va && va < h.va + BigInt(h.bytes.length));
    if (b === undefined) throw new Error(`model: VA ${va.toString(16)} is not in a host buffer`);
    return { buf: b.bytes, off: Number(va - b.va) };
  }

  dmaRead(devId: number, iova: bigint, length: number): { fault: Fault } | { bytes: Uint8Array } {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const t = this.translate(devId, iova + BigInt(i), READ);
      if ('fault' in t) return t;
      const { buf, off } = this.hostByte(t.hostVa);
      out[i] = buf[off]!;
    }
    return { bytes: out };
  }

  // All-or-nothing: every byte is translated before any is written.
  dmaWrite(devId: number, iova: bigint, bytes: Uint8Array): { fault: Fault } | { ok: true } {
    const targets: bigint[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const t = this.translate(devId, iova + BigInt(i), WRITE);
      if ('fault' in t) return t;
      targets.push(t.hostVa);
    }
    targets.forEach((va, i) => {
      const { buf, off } = this.hostByte(va);
      buf[off] = bytes[i]!;
    });
    return { ok: true };
  }

  // A host page is pinned while any IOAS that has a domain has an area over any byte of it.
  pinned(pageVa: bigint): boolean {
    const pageLast = pageVa + HOST_PAGE - 1n;
    return [...this.objects].some(
      ([id, o]) =>
        o.kind === 'ioas' &&
        this.hasDomain(id) &&
        o.areas.some((a) => intersects(pageVa, pageLast, a.hostVa, a.hostVa + a.length - 1n)),
    );
  }
}
