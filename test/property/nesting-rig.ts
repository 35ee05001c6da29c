/**
 * A rig for comparing hardware and software nesting (DESIGN.md "Nesting, shadow updates and
 * replace"): one guest — its stage-1 tables in guest RAM, its data pages, its invalidations, the
 * VMM's stage-2 changes — driven on one fd per nesting mode, and a reference model of what every
 * translation must give, computed from the guest's tables and stage 2 alone.
 *
 * Guest-physical layout (guest RAM is GUEST_PAGES 4 KiB pages at GPA 0, one IOAS area per page,
 * so the VMM can unmap any page; SPARE_PAGES host pages beyond it, mapped at SPARE_GPA, give a
 * stage-2 remap another host page):
 * - CDTAB (SMMUv3): the CD table, CD 0 (ASID 1) and CD 1 (ASID 2);
 * - TABLES + ctx * 0x8000: the stage-1 tables of context `ctx` (VT-d: the RID's nested HWPT and
 *   PASID 1's; SMMUv3: CD 0, used without PASID (S1DSS = substream 0), and CD 1, PASID 1),
 *   TABLES_PER_CTX pages: L0, L1, L2 (1 GiB at IOVA 0x4000_0000), L2' (1 GiB at 0x8000_0000),
 *   and the L3 tables of the three 2 MiB regions the slots live in;
 * - DATA + p * 0x1000, p < DATA_PAGES: the pages stage 1 maps.
 *
 * IOVA slots: 0..7 the last 8 pages of the 2 MiB region below 0x4020_0000, 8..15 the first 8 of
 * the next one (a range across the boundary spans two IOTLB shards), 16..23 at 0x8000_0000.
 */
import { expect } from 'vitest';
import { Access, Iommufd, type ArmSmmuv3Command } from '../../src/index.js';
import { ARM_LO, ATTRIDX_WB, SH_INNER, X86_LO } from '../../src/pgtable/index.js';
import { encodeCommand, Opcode, type CommandFields } from '../../src/vendor/smmuv3/commands.js';
import { Cd, encodeCd, TG0 } from '../../src/vendor/smmuv3/structures-cd.js';

export type Vendor = 'vtd' | 'smmuv3';
export type Mode = 'hardware' | 'software';

export const GUEST_PAGES = 128;
export const GUEST_BYTES = GUEST_PAGES * 4096;
export const SPARE_PAGES = 4;
export const SPARE_GPA = GUEST_BYTES;
export const CDTAB = 0x1000;
export const TABLES = 0x10000;
export const TABLES_PER_CTX = 7;
export const DATA = 0x40000;
export const DATA_PAGES = 16;
export const SLOTS = 24;
export const CTXS = 2;
export const VSID = 7;
export const SID = 0x42;

/** The IOVA of slot `s`. */
export function slotIova(s: number): number {
  if (s < 8) return 0x4020_0000 - (8 - s) * 0x1000;
  if (s < 16) return 0x4020_0000 + (s - 8) * 0x1000;
  return 0x8000_0000 + (s - 16) * 0x1000;
}

/** Table page `t` (0 L0, 1 L1, 2 L2 low, 3 L2 high, 4..6 L3 of regions A, B, C) of context `ctx`. */
export function tableGpa(ctx: number, t: number): number {
  return TABLES + ctx * 0x8000 + t * 0x1000;
}

/** The 2 MiB region (0: A, 1: B, 2: C) slot `s` lies in. */
export function slotRegion(s: number): number {
  return s < 8 ? 0 : s < 16 ? 1 : 2;
}

/** The first IOVA of region `region` (see {@link slotRegion}). */
export function regionIova(region: number): number {
  return region === 2 ? 0x8000_0000 : 0x4000_0000 + region * 0x20_0000;
}

/** The guest-physical address of region `region`'s L2 entry in context `ctx` (its L3 table, or a block). */
export function regionEntryGpa(ctx: number, region: number): number {
  return region === 2 ? tableGpa(ctx, 3) : tableGpa(ctx, 2) + region * 8;
}

/** The tables a walk of slot `s` reads, root first (indices for {@link tableGpa}). */
export function slotPath(s: number): number[] {
  return s < 8 ? [0, 1, 2, 4] : s < 16 ? [0, 1, 2, 5] : [0, 1, 3, 6];
}

export function dataGpa(p: number): number {
  return DATA + p * 0x1000;
}

const idx = (iova: number, level: number): number => Math.floor(iova / 2 ** (39 - 9 * level)) % 512;

/** A raw SMMUv3 command, as the guest's CMDQ holds it. */
export function smmuCmd(opcode: number, fields: CommandFields = {}): ArmSmmuv3Command {
  const w = encodeCommand(opcode, fields);
  return [BigInt(w[0]!) | (BigInt(w[1]!) << 32n), BigInt(w[2]!) | (BigInt(w[3]!) << 32n)];
}

/**
 * TLBI_NH_VA commands for `pages` pages from `iova` in ASID `asid`, as Linux's
 * arm_smmu_tlb_inv_range_cmd issues them: `ril` with range invalidation (SCALE/NUM chunks),
 * else one command per page.
 */
export function tlbiNhVa(asid: number, iova: number, pages: number, ril: boolean): ArmSmmuv3Command[] {
  const out: ArmSmmuv3Command[] = [];
  if (!ril) {
    for (let p = 0; p < pages; p++) out.push(smmuCmd(Opcode.TlbiNhVa, { asid, addr: iova + p * 4096, leaf: 1 }));
    return out;
  }
  let left = pages;
  let addr = iova;
  while (left > 0) {
    let scale = 0;
    while (((left >> scale) & 1) === 0) scale++;
    const num = (left >> scale) & 31;
    // TTL 3 (the last level) makes a one-page range legal with TG set.
    out.push(smmuCmd(Opcode.TlbiNhVa, { asid, addr, tg: 1, scale, num: num - 1, ttl: 3, leaf: 1 }));
    addr += (num << scale) * 4096;
    left -= num << scale;
  }
  return out;
}

/** A guest stage-1 leaf. */
export interface Leaf {
  page: number;
  write: boolean;
  /** VT-d: A and D set at map time (as Linux's first-stage map does for a writable page). */
  dirty: boolean;
  /** SMMUv3: AF set (Linux always sets it; clear, the walk takes an Access flag fault). */
  af: boolean;
}

/** A 2 MiB stage-1 block onto guest-physical 0 (a region's L2 entry), with a leaf's permissions. */
export type Block = Omit<Leaf, 'page'>;

/** What a translation gave: the host page's name (`r<gpa page>` or `s<spare>`) and offset, or a fault. */
export type Outcome =
  | { ok: true; page: string; off: number }
  | { ok: false; code: number; vendorCode: number; reason: string; level: number; pasid: number };

export interface RigOptions {
  vendor: Vendor;
  mode: Mode;
  /** SMMUv3: software nesting chosen on the vIOMMU (default) or on the nest parent. */
  smmuModeOn?: 'viommu' | 'parent';
  ats?: boolean;
  iotlb?: { entries: number; shards: number };
  shadowEntries?: number;
  /** The pipeline's workers, and the routed ops from which an asynchronous invalidate's batch runs on them. */
  shadowThreads?: number;
  inlineThreshold?: number;
}

/** One fd running the guest in one nesting mode. */
export class Rig {
  readonly fd: Iommufd;
  readonly o: RigOptions;
  readonly ioas: number;
  readonly va: bigint;
  readonly spareVa: bigint;
  readonly dev: number;
  readonly probe: number;
  readonly parent: number;
  readonly viommu: number = 0;
  /** The nested HWPT of each context (VT-d), or the vSTE HWPT (SMMUv3, both entries). */
  readonly nested: number[] = [];
  /** Host page number → name, from the probe (a device on the nest parent: stage 2 only). */
  readonly #names = new Map<number, string>();

  constructor(o: RigOptions) {
    this.o = o;
    const fd = Iommufd.open({
      memoryBytes: 8 * 2 ** 20,
      ...(o.iotlb === undefined ? {} : { iotlb: o.iotlb }),
      shadow: {
        ...(o.shadowEntries === undefined ? {} : { entries: o.shadowEntries }),
        ...(o.shadowThreads === undefined ? {} : { threads: o.shadowThreads }),
        ...(o.inlineThreshold === undefined ? {} : { inlineThreshold: o.inlineThreshold }),
      },
    });
    this.fd = fd;
    this.ioas = fd.ioasAlloc();
    this.va = fd.memory.mmap(BigInt(GUEST_BYTES));
    this.spareVa = fd.memory.mmap(BigInt(SPARE_PAGES * 4096));
    const ats = o.ats === true;
    this.dev =
      o.vendor === 'vtd'
        ? fd.deviceBind({ iommu: 'vtd', pasidBits: 8, ats })
        : fd.deviceBind({ iommu: 'smmuv3', sid: SID, pasidBits: 8, ats });
    this.probe = fd.deviceBind({ iommu: o.vendor });
    for (let g = 0; g < GUEST_PAGES; g++) this.s2Map(g, `r${g}`, true);
    for (let k = 0; k < SPARE_PAGES; k++) this.#ioasMap(SPARE_GPA + k * 4096, this.spareVa + BigInt(k * 4096), true);
    const parentSoftware = o.mode === 'software' && (o.vendor === 'vtd' || o.smmuModeOn === 'parent');
    this.parent = fd.hwptAlloc({
      devId: this.dev,
      ptId: this.ioas,
      flags: { nestParent: true },
      nesting: parentSoftware ? 'software' : 'hardware',
    });
    fd.deviceAttach(this.probe, this.parent);
    for (let g = 0; g < GUEST_PAGES + SPARE_PAGES; g++) {
      const pa = fd.translate(this.probe, g * 4096, Access.Read);
      expect(pa).toBeGreaterThanOrEqual(0);
      this.#names.set(Math.floor(pa / 4096), g < GUEST_PAGES ? `r${g}` : `s${g - GUEST_PAGES}`);
    }
    // The stage-1 tables of both contexts, with every intermediate entry present.
    for (let c = 0; c < CTXS; c++) {
      for (let s = 0; s < SLOTS; s++) {
        const path = slotPath(s);
        for (let l = 0; l < 3; l++)
          this.write64(tableGpa(c, path[l]!) + idx(slotIova(s), l) * 8, this.tableEntry(tableGpa(c, path[l + 1]!)));
      }
    }
    if (o.vendor === 'vtd') {
      for (let c = 0; c < CTXS; c++) {
        this.nested.push(
          fd.hwptAlloc({
            devId: this.dev,
            ptId: this.parent,
            dataType: 'vtd-s1',
            data: { pgtblAddr: tableGpa(c, 0), addrWidth: 48 },
            flags: { pasid: true },
          }),
        );
      }
      fd.deviceAttach(this.dev, this.nested[0]!);
      fd.deviceAttach(this.dev, this.nested[1]!, { pasid: 1 });
    } else {
      this.viommu = fd.viommuAlloc({
        devId: this.dev,
        hwptId: this.parent,
        type: 'arm-smmuv3',
        nesting: o.mode === 'software' && o.smmuModeOn !== 'parent' ? 'software' : 'hardware',
      });
      fd.vdeviceAlloc({ viommuId: this.viommu, devId: this.dev, virtId: VSID });
      for (let c = 0; c < CTXS; c++) this.cd(CDTAB + c * 64, { asid: c + 1, ttb0: tableGpa(c, 0) });
      // S1_TRANS vSTE: CD table at CDTAB, S1CDMax = 1, S1DSS = substream 0, EATS with ATS.
      const ste: [bigint, bigint] = [1n | (5n << 1n) | BigInt(CDTAB) | (1n << 59n), 2n | (ats ? 1n << 28n : 0n)];
      const n = fd.hwptAlloc({ devId: this.dev, ptId: this.viommu, dataType: 'arm-smmuv3', data: { ste } });
      this.nested.push(n, n);
      fd.deviceAttach(this.dev, n);
    }
  }

  #ioasMap(gpa: number, va: bigint, writeable: boolean): void {
    this.fd.ioasMap(this.ioas, {
      userVa: va,
      length: 4096n,
      iova: BigInt(gpa),
      flags: { fixedIova: true, readable: true, writeable },
    });
  }

  /** Stage 2 maps guest page `g` to host page `name` (`r<g'>` a guest RAM page's, `s<k>` a spare one). */
  s2Map(g: number, name: string, writeable: boolean): void {
    const k = Number(name.slice(1));
    this.#ioasMap(g * 4096, (name[0] === 'r' ? this.va : this.spareVa) + BigInt(k * 4096), writeable);
  }

  /** Stage 2 unmaps guest pages [g, g + n). */
  s2Unmap(g: number, n = 1): void {
    expect(this.fd.ioasUnmap(this.ioas, BigInt(g * 4096), BigInt(n * 4096))).toBe(BigInt(n * 4096));
  }

  write64(gpa: number, v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.fd.memory.write(this.va + BigInt(gpa), b);
  }

  read64(gpa: number): bigint {
    return new DataView(this.fd.memory.read(this.va + BigInt(gpa), 8).buffer).getBigUint64(0, true);
  }

  tableEntry(next: number): bigint {
    return this.o.vendor === 'vtd' ? BigInt(next | X86_LO.P | X86_LO.RW | X86_LO.US) : BigInt(next) | 3n;
  }

  leafEntry(l: Leaf | null): bigint {
    if (l === null) return 0n;
    const gpa = BigInt(dataGpa(l.page));
    if (this.o.vendor === 'vtd') {
      const ad = l.dirty ? X86_LO.A | (l.write ? X86_LO.D : 0) : 0;
      return gpa | BigInt(X86_LO.P | X86_LO.US | (l.write ? X86_LO.RW : 0) | ad);
    }
    const bits =
      ARM_LO.Valid |
      ARM_LO.TableOrPage |
      (l.af ? ARM_LO.AF : 0) |
      ARM_LO.AP1 |
      (SH_INNER << ARM_LO.SHShift) |
      (ATTRIDX_WB << ARM_LO.AttrIndxShift) |
      (l.write ? 0 : ARM_LO.AP2);
    return gpa | BigInt(bits >>> 0);
  }

  /** A 2 MiB block entry onto guest-physical 0 (VT-d: PS; Arm: a level-2 block descriptor). */
  blockEntry(b: Block): bigint {
    if (this.o.vendor === 'vtd') {
      const ad = b.dirty ? X86_LO.A | (b.write ? X86_LO.D : 0) : 0;
      return BigInt(X86_LO.P | X86_LO.US | X86_LO.PS | (b.write ? X86_LO.RW : 0) | ad);
    }
    const bits =
      ARM_LO.Valid |
      (b.af ? ARM_LO.AF : 0) |
      ARM_LO.AP1 |
      (SH_INNER << ARM_LO.SHShift) |
      (ATTRIDX_WB << ARM_LO.AttrIndxShift) |
      (b.write ? 0 : ARM_LO.AP2);
    return BigInt(bits >>> 0);
  }

  /** The guest makes region `region` of context `ctx` a block (or, with null, points it at its L3 table again); no invalidation. */
  setBlock(ctx: number, region: number, b: Block | null): void {
    this.write64(
      regionEntryGpa(ctx, region),
      b === null ? this.tableEntry(tableGpa(ctx, 4 + region)) : this.blockEntry(b),
    );
  }

  /** The guest-physical address of slot `s`'s leaf entry in context `ctx`. */
  leafGpa(ctx: number, s: number): number {
    return tableGpa(ctx, slotPath(s)[3]!) + idx(slotIova(s), 3) * 8;
  }

  /** The guest writes slot `s`'s leaf (no invalidation). */
  setLeaf(ctx: number, s: number, l: Leaf | null): void {
    this.write64(this.leafGpa(ctx, s), this.leafEntry(l));
  }

  /** Writes a CD (4 KiB granule, 48-bit TTB0, TTB1 disabled) at guest-physical `at`. */
  cd(at: number, c: Partial<Cd>): void {
    const base = { valid: true, aa64: true, t0sz: 16, tg0: TG0.K4, epd1: true, ips: 5, a: true, r: true };
    const words = encodeCd(Object.assign(new Cd(), base, c));
    this.fd.memory.write(this.va + BigInt(at), new Uint8Array(words.buffer));
  }

  /**
   * The guest's stage-1 invalidation of `ranges` ([iova, pages] pairs) in context `ctx`: VT-d one
   * hwptInvalidate with an entry per range; SMMUv3 TLBI_NH_VA commands (RIL chunks or per page),
   * and ATC_INV with ATS (the SMMUv3 guest invalidates the ATC itself).
   */
  invalidate(ctx: number, ranges: readonly (readonly [number, number])[], ril = true): void {
    if (this.o.vendor === 'vtd') {
      const entries = ranges.map(([addr, npages]) => ({ addr, npages }));
      expect(this.fd.hwptInvalidate(this.nested[ctx]!, { dataType: 'vtd-s1', entries })).toBe(entries.length);
      return;
    }
    const cmds: ArmSmmuv3Command[] = [];
    for (const [addr, pages] of ranges) cmds.push(...tlbiNhVa(ctx + 1, addr, pages, ril));
    if (this.o.ats === true) {
      for (const [addr, pages] of ranges) {
        const ssid = { sid: VSID, ssv: ctx === 0 ? 0 : 1, ssid: ctx };
        if (pages > 8) cmds.push(smmuCmd(Opcode.AtcInv, { ...ssid, size: 52 }));
        else for (let p = 0; p < pages; p++) cmds.push(smmuCmd(Opcode.AtcInv, { ...ssid, addr: addr + p * 4096 }));
      }
    }
    // (No CMD_SYNC: the host's own queue handles it, and iommufd refuses it with EIO.)
    expect(this.fd.viommuInvalidate(this.viommu, { dataType: 'arm-smmuv3', cmds })).toBe(cmds.length);
  }

  /** {@link invalidate} through the asynchronous calls (`hwptInvalidateAsync`, `viommuInvalidateAsync`). */
  async invalidateAsync(ctx: number, ranges: readonly (readonly [number, number])[], ril = true): Promise<void> {
    if (this.o.vendor === 'vtd') {
      const entries = ranges.map(([addr, npages]) => ({ addr, npages }));
      expect(await this.fd.hwptInvalidateAsync(this.nested[ctx]!, { dataType: 'vtd-s1', entries })).toBe(
        entries.length,
      );
      return;
    }
    const cmds: ArmSmmuv3Command[] = [];
    for (const [addr, pages] of ranges) cmds.push(...tlbiNhVa(ctx + 1, addr, pages, ril));
    expect(await this.fd.viommuInvalidateAsync(this.viommu, { dataType: 'arm-smmuv3', cmds })).toBe(cmds.length);
  }

  /** Translates `iova` in context `ctx` for `access`, named by host page. */
  translate(ctx: number, iova: number, access: number): Outcome {
    const pa = this.fd.translate(this.dev, iova, access, ctx === 0 ? undefined : ctx);
    if (pa < 0) {
      const f = this.fd.lastFault();
      return { ok: false, code: f.code, vendorCode: f.vendorCode, reason: f.reason, level: f.level, pasid: f.pasid };
    }
    const name = this.#names.get(Math.floor(pa / 4096));
    return { ok: true, page: name ?? `?0x${pa.toString(16)}`, off: pa % 4096 };
  }

  close(): void {
    void this.fd.close();
  }
}

/** Where stage 2 maps a guest page in the model: a host page's name and write permission, or nothing. */
export interface S2Entry {
  name: string;
  writeable: boolean;
}

/** The reference model: the guest's stage-1 leaves and stage 2, and what a translation must give. */
export class Model {
  readonly vendor: Vendor;
  readonly leaves: (Leaf | null)[][] = [];
  /** Per context, per region: the block that replaces its L3 table, or null. */
  readonly blocks: (Block | null)[][] = [];
  readonly s2: (S2Entry | null)[] = [];

  constructor(vendor: Vendor) {
    this.vendor = vendor;
    for (let c = 0; c < CTXS; c++) this.leaves.push(new Array<Leaf | null>(SLOTS).fill(null));
    for (let c = 0; c < CTXS; c++) this.blocks.push([null, null, null]);
    for (let g = 0; g < GUEST_PAGES; g++) this.s2.push({ name: `r${g}`, writeable: true });
  }

  /**
   * The translation of slot `s` in context `ctx` for `access`: a host page and offset, or the
   * TranslateFault code (walk order: the CD (SMMUv3), the tables, the leaf, stage 1's permission,
   * then stage 2 of the output).
   */
  expect(ctx: number, s: number, off: number, access: number): { page: string; off: number } | number {
    const NOT_MAPPED = -2;
    const PERMISSION = -3;
    const ACCESS_FLAG = -4;
    const write = (access & Access.Write) !== 0;
    if (this.vendor === 'smmuv3' && this.s2[CDTAB / 4096] === null) return NOT_MAPPED;
    const block = this.blocks[ctx]![slotRegion(s)]!;
    const path = block === null ? slotPath(s) : slotPath(s).slice(0, 3);
    for (const t of path) if (this.s2[tableGpa(ctx, t) / 4096] === null) return NOT_MAPPED;
    if (block !== null) {
      // The block maps the region onto guest-physical 0: slot pages of regions B and C land on
      // guest pages 0–7, region A's (the last 8 pages of its region) beyond guest RAM.
      if (this.vendor === 'smmuv3' && !block.af) return ACCESS_FLAG;
      if (write && !block.write) return PERMISSION;
      const g = (slotIova(s) - regionIova(slotRegion(s))) / 4096;
      const e = g < GUEST_PAGES ? this.s2[g]! : null;
      if (e === null) return NOT_MAPPED;
      if (write && !e.writeable) return PERMISSION;
      return { page: e.name, off };
    }
    const l = this.leaves[ctx]![s]!;
    if (l === null) return NOT_MAPPED;
    if (this.vendor === 'smmuv3' && !l.af) return ACCESS_FLAG;
    if (write && !l.write) return PERMISSION;
    const e = this.s2[dataGpa(l.page) / 4096]!;
    if (e === null) return NOT_MAPPED;
    if (write && !e.writeable) return PERMISSION;
    return { page: e.name, off };
  }
}
