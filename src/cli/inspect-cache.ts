/**
 * `ioasid inspect --cache`: the IOTLB and ATC entries of one device of a bench run. An emulated
 * unit keeps its map from guest domain ids (DID, VMID) and StreamIDs to cache tags private
 * (src/vendor/unit-tags.ts), so the device's tag is found by content: of the tags whose live
 * entries mostly translate as the guest maps the device (its reference model), the one with the
 * most agreeing entries beyond disagreeing ones. Entries of that tag that disagree are kept and
 * counted: they are what a failed correctness check is about.
 */
import type { BenchDeviceState, BenchUnit } from '../bench/index.js';
import type { Iommufd } from '../iommufd.js';
import { dumpCache, type CacheDump, type CacheEntry } from '../inspect/index.js';

const PAGE = 4096;

/** One table's entries for the device, and how its tag was found. */
export interface DeviceCacheDump {
  /** The dump of the device's tag (no entries when none was found). */
  dump: CacheDump;
  /** The tag, or undefined when no tag has an entry that agrees with the device's mappings. */
  tag?: number;
  /** Entries of that tag that agree with the device's mappings, and that do not (stale or wrong). */
  agreeing: number;
  disagreeing: number;
  /** Other tags whose entries mostly agree too (another device that maps pages alike). */
  alsoMatching: number[];
  /** How the tag was found, in one line. */
  note: string;
}

/** The device's IOTLB dump and, for a device with ATS, its ATC dump. */
export interface DeviceCaches {
  iotlb: DeviceCacheDump;
  atc?: DeviceCacheDump;
}

/** The host-physical address the device's mappings give `iova` (its whole entry), or -1. */
function expectedPa(unit: BenchUnit, dev: BenchDeviceState, e: CacheEntry): number {
  for (const m of dev.mappings) {
    const end = m.iova + m.pages * PAGE;
    if (e.iova >= m.iova && e.iova + e.size <= end) return unit.unit.ram.gpaToPa(m.gpa + (e.iova - m.iova));
  }
  return -1;
}

/** The entries of table `which` whose tag belongs to `dev`, found by content. */
function deviceDump(fd: Iommufd, unit: BenchUnit, dev: BenchDeviceState, which: 'iotlb' | 'atc'): DeviceCacheDump {
  const all = dumpCache(fd, { table: which });
  const byTag = new Map<number, CacheEntry[]>();
  for (const e of all.entries) {
    const list = byTag.get(e.tag);
    if (list === undefined) byTag.set(e.tag, [e]);
    else list.push(e);
  }
  const scored: { tag: number; agree: number; disagree: number }[] = [];
  for (const [tag, entries] of byTag) {
    const agree = entries.filter((e) => expectedPa(unit, dev, e) === e.pa).length;
    // Another device's tag may agree on a few pages that both map alike; its other entries do not.
    if (agree > entries.length - agree) scored.push({ tag, agree, disagree: entries.length - agree });
  }
  scored.sort((a, b) => b.agree - b.disagree - (a.agree - a.disagree) || a.tag - b.tag);
  const best = scored[0];
  const name = which === 'iotlb' ? 'IOTLB' : 'ATC';
  if (best === undefined) {
    return {
      dump: { ...all, entries: [] },
      agreeing: 0,
      disagreeing: 0,
      alsoMatching: [],
      note: `no ${name} entry translates as this device's mappings: nothing of it is cached`,
    };
  }
  const also = scored.slice(1);
  const hex = (t: number): string => `0x${t.toString(16)}`;
  return {
    dump: { ...all, tag: best.tag, entries: byTag.get(best.tag)! },
    tag: best.tag,
    agreeing: best.agree,
    disagreeing: best.disagree,
    alsoMatching: also.map((m) => m.tag),
    note:
      `${name} tag ${hex(best.tag)}: ${best.agree} live entr${best.agree === 1 ? 'y translates' : 'ies translate'} ` +
      `as this device's mappings` +
      (best.disagree > 0 ? `, ${best.disagree} do NOT (stale or wrong: the run's check fails)` : '') +
      ' (the unit keeps its tag map private: the tag is found by content)' +
      (also.length > 0
        ? `; also mostly agreeing: ${also.map((m) => `${hex(m.tag)} (${m.agree} of ${m.agree + m.disagree})`).join(', ')}`
        : ''),
  };
}

/** The cache entries of device `dev` of `unit`: IOTLB, and ATC when it has ATS. */
export function deviceCaches(fd: Iommufd, unit: BenchUnit, dev: BenchDeviceState): DeviceCaches {
  const iotlb = deviceDump(fd, unit, dev, 'iotlb');
  return dev.ats ? { iotlb, atc: deviceDump(fd, unit, dev, 'atc') } : { iotlb };
}
