/*
 * A domain's mapped ranges: every leaf of a page table, found by walking all of it (read-only),
 * with its effective permissions (hierarchical bits combined as the walker combines them), then
 * coalesced into runs that are contiguous in input and output with the same permissions and
 * page size. Entries the walker would fault on (reserved bits, addresses beyond the output size,
 * tables it cannot reach) map nothing and are counted. A nested domain's leaves are its stage-1
 * leaves composed with its stage 2 (composeLeaves).
 */
import { ARM_HI, ARM_LO } from '../pgtable/arm/desc.js';
import {
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  MOCK_BLOCK_SIZE,
  MOCK_DESC,
  MOCK_PAGE_SIZE,
} from '../pgtable/mock.js';
import { CFG, cfgInputSize, cfgOutputSize, cfgStartLevel } from '../pgtable/walk-config.js';
import { SL_HI, SL_LO, X86_HI, X86_LO } from '../pgtable/x86/desc.js';
import { readQword, type TraceSpace } from './memory.js';
import type { MappedRange, PteFormat, RangeDump, RangePerms } from './types.js';

/** One leaf: [iova, iova + size) onto [output, output + size). */
export interface Leaf {
  iova: number;
  size: number;
  output: number;
  perms: RangePerms;
}

/** The leaves of one table, and what the walk over it met. */
export interface TableLeaves {
  leaves: Leaf[];
  /** Table pages read. */
  tablesRead: number;
  /** Present entries the walker would fault on. */
  invalid: number;
  notes: string[];
}

/**
 * Where a table address (as an entry holds it) lies in the space, or -1 when the walker cannot
 * reach it: identity for a table in physical memory, stage 2 for a nested stage-1 table.
 */
export type TableLocator = (addr: number) => number;

// Bytes one entry maps at levels -1..3 (index level + 1).
const SIZE = [2 ** 48, 2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const;
const X86_LARGE_RSVD = [0, 0, 0x3fffe000, 0x1fe000, 0] as const;
const SL_LARGE_RSVD = [0, 0, 0x3ffff000, 0x1ff000, 0] as const;

const levelSize = (level: number): number => SIZE[level + 1]!;

/**
 * Walks every entry of the table of `format` at `root` (walker space, already located) with the
 * packed walk configuration `cfg` (ignored for 'mock'); `locate` finds the next tables.
 */
export function tableLeaves(
  space: TraceSpace,
  format: PteFormat,
  root: number,
  cfg: number,
  locate: TableLocator = (a) => a,
): TableLeaves {
  const out: TableLeaves = { leaves: [], tablesRead: 0, invalid: 0, notes: [] };
  const memBytes = space.i32.length * 4;
  const reachable = (pa: number, bytes: number): boolean => pa >= 0 && pa + bytes <= memBytes;
  if (format === 'mock') {
    mockLeaves(space, root, out, reachable);
    return out;
  }
  const start = cfgStartLevel(cfg);
  const inputBits = cfgInputSize(cfg);
  const limit = 2 ** cfgOutputSize(cfg);
  // x86 first stage: only the canonical lower half is reachable by a (non-negative) DMA address.
  const inputLimit = format === 'x86-first-stage' ? 2 ** (inputBits - 1) : 2 ** inputBits;
  const startEntries = Math.max(1, Math.min(2 ** inputBits / levelSize(start), 16 * 512));
  if (!reachable(root, startEntries * 8)) {
    out.notes.push('the root table is outside memory');
    return out;
  }
  const hadOff = (cfg & CFG.HAD) !== 0;
  const affd = (cfg & CFG.AFFD) !== 0;

  const visit = (level: number, table: number, entries: number, base: number, acc: Acc): void => {
    out.tablesRead += Math.max(1, entries / 512);
    const size = levelSize(level);
    for (let i = 0; i < entries; i++) {
      const iova = base + i * size;
      if (iova >= inputLimit) break;
      const [lo, hi] = readQword(space, table + i * 8);
      const e = decode(format, level, lo, hi, limit);
      if (e === undefined) continue;
      if (e === INVALID) {
        out.invalid++;
        continue;
      }
      const next = combine(format, acc, lo, hi, e.leaf, hadOff);
      if (e.leaf) {
        const output = e.addr - (e.addr % Math.min(size, 2 ** 32));
        out.leaves.push({ iova, size, output, perms: permsOf(format, next, lo, hi, affd) });
        continue;
      }
      const pa = locate(e.addr);
      if (!reachable(pa, 4096)) {
        out.invalid++;
        out.notes.push(
          `the level-${level + 1} table at 0x${e.addr.toString(16)} (IOVA 0x${iova.toString(16)}) is unreachable`,
        );
        continue;
      }
      visit(level + 1, pa, 512, iova, next);
    }
  };
  visit(start, root, startEntries, 0, { write: true, user: true, noExec: false, tableBits: 0, read: true });
  return out;
}

/** Permission bits combined over the levels so far. */
interface Acc {
  read: boolean;
  write: boolean;
  user: boolean;
  noExec: boolean;
  /** Arm stage 1: the table descriptors' hierarchical bits (63:59), ORed. */
  tableBits: number;
}

const INVALID = 'invalid' as const;

/** A present entry: a leaf or a table, and its address; INVALID when the walker faults on it; undefined when not present. */
function decode(
  format: PteFormat,
  level: number,
  lo: number,
  hi: number,
  limit: number,
): { leaf: boolean; addr: number } | typeof INVALID | undefined {
  switch (format) {
    case 'x86-first-stage': {
      if ((lo & X86_LO.P) === 0) return undefined;
      const ps = (lo & X86_LO.PS) !== 0;
      const addr = (hi & X86_HI.AddrMask) * 2 ** 32 + ((lo & X86_LO.AddrMask) >>> 0);
      if ((ps && level <= 0) || addr >= limit || (ps && (lo & X86_LARGE_RSVD[level + 1]!) !== 0)) return INVALID;
      return { leaf: level === 3 || ps, addr };
    }
    case 'vtd-second-stage': {
      if ((lo & (SL_LO.R | SL_LO.W)) === 0) return undefined;
      const ps = (lo & SL_LO.PS) !== 0;
      const addr = (hi & SL_HI.AddrMask) * 2 ** 32 + ((lo & SL_LO.AddrMask) >>> 0);
      if ((ps && level <= 0) || addr >= limit || (ps && (lo & SL_LARGE_RSVD[level + 1]!) !== 0)) return INVALID;
      return { leaf: level === 3 || ps, addr };
    }
    default: {
      if ((lo & ARM_LO.Valid) === 0) return undefined;
      const tableOrPage = (lo & ARM_LO.TableOrPage) !== 0;
      const addr = (hi & ARM_HI.AddrMask) * 2 ** 32 + ((lo & ARM_LO.AddrMask) >>> 0);
      if (level < 3 && tableOrPage) return addr >= limit ? INVALID : { leaf: false, addr };
      if (level === 0 || (level === 3 && !tableOrPage)) return INVALID;
      const size = levelSize(level);
      if (addr - (addr % Math.min(size, 2 ** 32)) >= limit) return INVALID;
      return { leaf: true, addr };
    }
  }
}

/** The permission state after an entry (a table's hierarchical bits, or the leaf's own). */
function combine(format: PteFormat, acc: Acc, lo: number, hi: number, leaf: boolean, hadOff: boolean): Acc {
  switch (format) {
    case 'x86-first-stage':
      return {
        ...acc,
        write: acc.write && (lo & X86_LO.RW) !== 0,
        user: acc.user && (lo & X86_LO.US) !== 0,
        noExec: acc.noExec || (hi & X86_HI.XD) !== 0,
      };
    case 'vtd-second-stage':
      return { ...acc, read: acc.read && (lo & SL_LO.R) !== 0, write: acc.write && (lo & SL_LO.W) !== 0 };
    case 'arm-stage1':
      return leaf || hadOff ? acc : { ...acc, tableBits: acc.tableBits | hi };
    default:
      return acc;
  }
}

/** The effective permissions of the leaf (`lo`, `hi`) whose combined state is `acc`. */
function permsOf(format: PteFormat, acc: Acc, lo: number, hi: number, affd: boolean): RangePerms {
  switch (format) {
    case 'x86-first-stage':
      return { read: true, write: acc.write, exec: !acc.noExec, user: acc.user };
    case 'vtd-second-stage':
      return { read: acc.read, write: acc.write, exec: acc.read };
    case 'arm-stage1': {
      const t = acc.tableBits;
      return {
        read: true,
        write: (lo & ARM_LO.AP2) === 0 && (t & ARM_HI.APTableNoWrite) === 0,
        exec: ((hi | t) & (ARM_HI.UXN | ARM_HI.UXNTable)) === 0,
        user: (lo & ARM_LO.AP1) !== 0 && (t & ARM_HI.APTableNoUser) === 0,
        accessFlag: (lo & ARM_LO.AF) !== 0 || affd,
      };
    }
    default:
      return {
        read: (lo & ARM_LO.S2AP_R) !== 0,
        write: (lo & ARM_LO.S2AP_W) !== 0,
        exec: (lo & ARM_LO.S2AP_R) !== 0 && (hi & ARM_HI.UXN) === 0,
        accessFlag: (lo & ARM_LO.AF) !== 0 || affd,
      };
  }
}

/** The mock format: 4 root entries (IOVA 30:29), then 1 MiB blocks or tables of 2 KiB pages, inside the aperture. */
function mockLeaves(
  space: TraceSpace,
  root: number,
  out: TableLeaves,
  reachable: (pa: number, n: number) => boolean,
): void {
  const mask = 0xfffff800 | 0;
  out.tablesRead++;
  for (let i2 = 0; i2 < 4; i2++) {
    const [l2] = readQword(space, root + i2 * 8);
    if ((l2 & MOCK_DESC.Valid) === 0) continue;
    const t1 = (l2 & mask) >>> 0;
    if (!reachable(t1, 4096)) {
      out.invalid++;
      continue;
    }
    out.tablesRead++;
    for (let i1 = 0; i1 < 512; i1++) {
      const [l1] = readQword(space, t1 + i1 * 8);
      if ((l1 & MOCK_DESC.Valid) === 0) continue;
      const base = i2 * 2 ** 29 + i1 * MOCK_BLOCK_SIZE;
      if ((l1 & MOCK_DESC.Table) === 0) {
        if (base >= MOCK_APERTURE_START && base <= MOCK_APERTURE_LAST)
          out.leaves.push({
            iova: base,
            size: MOCK_BLOCK_SIZE,
            output: (l1 & mask & ~(MOCK_BLOCK_SIZE - 1)) >>> 0,
            perms: mockPerms(l1),
          });
        continue;
      }
      const t0 = (l1 & mask) >>> 0;
      if (!reachable(t0, 4096)) {
        out.invalid++;
        continue;
      }
      out.tablesRead++;
      for (let i0 = 0; i0 < 512; i0++) {
        const [l0] = readQword(space, t0 + i0 * 8);
        if ((l0 & MOCK_DESC.Valid) === 0) continue;
        const iova = base + i0 * MOCK_PAGE_SIZE;
        if (iova >= MOCK_APERTURE_START && iova <= MOCK_APERTURE_LAST)
          out.leaves.push({ iova, size: MOCK_PAGE_SIZE, output: (l0 & mask) >>> 0, perms: mockPerms(l0) });
      }
    }
  }
}

function mockPerms(lo: number): RangePerms {
  const read = (lo & MOCK_DESC.Read) !== 0;
  return { read, write: (lo & MOCK_DESC.Write) !== 0, exec: read };
}

/** Permissions of an access that needs both stages. */
function bothStages(s1: RangePerms, s2: RangePerms): RangePerms {
  const p: RangePerms = { read: s1.read && s2.read, write: s1.write && s2.write, exec: s1.exec && s2.exec };
  if (s1.user !== undefined) p.user = s1.user;
  if (s1.accessFlag !== undefined || s2.accessFlag !== undefined)
    p.accessFlag = (s1.accessFlag ?? true) && (s2.accessFlag ?? true);
  return p;
}

/**
 * A nested domain's leaves: each stage-1 leaf (input → intermediate address) cut where stage 2
 * (`s2`, sorted by input, not overlapping) maps its intermediate range, onto stage 2's outputs;
 * page sizes are the smaller stage's, permissions those of both.
 */
export function composeLeaves(s1: readonly Leaf[], s2: readonly Leaf[]): Leaf[] {
  const out: Leaf[] = [];
  for (const l of s1) {
    const end = l.output + l.size;
    // The first stage-2 leaf that ends after l.output.
    let lo = 0;
    let hi = s2.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s2[mid]!.iova + s2[mid]!.size <= l.output) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < s2.length && s2[k]!.iova < end; k++) {
      const m = s2[k]!;
      const from = Math.max(l.output, m.iova);
      const to = Math.min(end, m.iova + m.size);
      const size = Math.min(l.size, m.size);
      for (let at = from; at < to; at += size) {
        const n = Math.min(size, to - at);
        out.push({
          iova: l.iova + (at - l.output),
          size: n,
          output: m.output + (at - m.iova),
          perms: bothStages(l.perms, m.perms),
        });
      }
    }
  }
  return out;
}

function samePerms(a: RangePerms, b: RangePerms): boolean {
  return (
    a.read === b.read && a.write === b.write && a.exec === b.exec && a.user === b.user && a.accessFlag === b.accessFlag
  );
}

/** Runs of leaves contiguous in input and output, with the same permissions and page size. */
export function coalesce(leaves: readonly Leaf[]): MappedRange[] {
  const sorted = [...leaves].sort((a, b) => a.iova - b.iova);
  const out: MappedRange[] = [];
  for (const l of sorted) {
    const last = out[out.length - 1];
    if (
      last !== undefined &&
      last.iova + last.size === l.iova &&
      last.output + last.size === l.output &&
      last.pageSize === l.size &&
      samePerms(last.perms, l.perms)
    ) {
      last.size += l.size;
      continue;
    }
    out.push({ iova: l.iova, size: l.size, output: l.output, pageSize: l.size, perms: { ...l.perms } });
  }
  return out;
}

/** The dump of `leaves`. */
export function rangeDump(
  format: string,
  outputSpace: RangeDump['outputSpace'],
  root: number,
  leaves: readonly Leaf[],
  walked: Omit<TableLeaves, 'leaves'>,
): RangeDump {
  const ranges = coalesce(leaves);
  return {
    format,
    outputSpace,
    root,
    ranges,
    mappedBytes: ranges.reduce((n, r) => n + r.size, 0),
    tablesRead: walked.tablesRead,
    invalidEntries: walked.invalid,
    notes: walked.notes,
  };
}
