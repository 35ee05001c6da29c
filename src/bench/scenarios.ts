/**
 * The named workloads of `ioasid bench --scenario`, one table row each: how its units and
 * devices are built and what one operation does. Every scenario runs on either vendor through
 * the same guest calls (bench-guest.ts).
 */
import type { Prng } from './prng.js';
import type { BenchOptions, ScenarioName } from './types.js';
import type { Workload } from './workload.js';

/** One scenario. */
export interface ScenarioSpec {
  readonly name: ScenarioName;
  /** One line for `--help`. */
  readonly summary: string;
  /** The guest drivers' invalidation policy. */
  readonly policy: 'strict' | 'lazy';
  /** `--live-entries` when not given. */
  readonly defaultLiveEntries: number;
  /** The largest mapping, pages. */
  readonly maxPages: number;
  /** Devices per unit, each with a domain of its own. */
  readonly devicesPerUnit: number;
  /** Whether device `k` of a unit has ATS (its translations are cached in its ATC too). */
  readonly ats: (k: number) => boolean;
  /** The scenario runs `--guests` units (else one). */
  readonly multiUnit: boolean;
  /** Guest RAM per unit, MiB (page tables and the buffers mappings point into). */
  readonly guestRamMib: number;
  /** The command mix, for reports (reference/perf-anchors.md §5.3.4). */
  describe(o: BenchOptions): string;
  /** Pages of a new mapping. */
  pages(rng: Prng): number;
  /** One measured operation; `i` counts operations from the first warm-up one. */
  op(w: Workload, i: number): void;
}

/** Range scenario: 1 to 4096 pages, log-uniform, so every power-of-two size class is as frequent. */
function rangePages(rng: Prng): number {
  return Math.min(4096, Math.floor(2 ** (rng.float() * 12.01)));
}

const onePage = (): number => 1;
const noAts = (): boolean => false;

const live = (o: BenchOptions): string => `${o.liveEntries} live mappings`;

/** The vendor's words for what the guest drivers queue. */
function terms(o: BenchOptions): {
  page: string;
  range: string;
  domain: string;
  global: string;
  barrier: string;
  atc: string;
} {
  return o.vendor === 'vtd'
    ? {
        page: 'page-selective IOTLB invalidation',
        range: 'page-selective IOTLB invalidation with a power-of-two mask',
        domain: 'domain-selective IOTLB invalidation',
        global: 'global IOTLB invalidation',
        barrier: 'wait descriptor',
        atc: 'device-TLB invalidations',
      }
    : {
        page: 'TLBI_NH_VA',
        range: 'range TLBI_NH_VA (RIL)',
        domain: 'TLBI_NH_ASID',
        global: 'TLBI_NH_ALL',
        barrier: 'CMD_SYNC',
        atc: 'ATC_INVs',
      };
}

/** Every scenario by name. */
export const SCENARIO_SPECS: Readonly<Record<ScenarioName, ScenarioSpec>> = {
  strict: {
    name: 'strict',
    summary: 'strict policy: each unmap is one invalidation and its barrier on one doorbell',
    policy: 'strict',
    defaultLiveEntries: 1024,
    maxPages: 1,
    devicesPerUnit: 1,
    ats: noAts,
    multiUnit: false,
    guestRamMib: 32,
    describe: (o) =>
      `strict: per op, unmap 1 page with a ${terms(o).page} and a ${terms(o).barrier} on one doorbell, ` +
      `then map 1 page; ${live(o)} on 1 device`,
    pages: onePage,
    op: (w) => w.replace(w.devices[0]!, 1),
  },
  lazy: {
    name: 'lazy',
    summary: 'lazy policy: unmaps wait in the flush queue, one domain-wide invalidation per --batch',
    policy: 'lazy',
    defaultLiveEntries: 1024,
    maxPages: 1,
    devicesPerUnit: 1,
    ats: noAts,
    multiUnit: false,
    guestRamMib: 32,
    describe: (o) =>
      `lazy: per op, unmap 1 page into the flush queue and map 1 page; every ${o.batch} unmaps one ` +
      `${terms(o).domain} and a ${terms(o).barrier}; ${live(o)} on 1 device`,
    pages: onePage,
    op: (w) => w.replace(w.devices[0]!, 1),
  },
  range: {
    name: 'range',
    summary: 'strict policy, unmaps of 1 to 4096 pages: range invalidations',
    policy: 'strict',
    defaultLiveEntries: 64,
    maxPages: 4096,
    devicesPerUnit: 1,
    ats: noAts,
    multiUnit: false,
    guestRamMib: 64,
    describe: (o) =>
      `range: per op, unmap a mapping of 1–4096 pages (log-uniform) with a ${terms(o).range} and a ` +
      `${terms(o).barrier}, then map another; ${live(o)} on 1 device`,
    pages: rangePages,
    op: (w) => w.replace(w.devices[0]!, rangePages(w.rng)),
  },
  'asid-churn': {
    name: 'asid-churn',
    summary: 'domains torn down and rebuilt: ASID/DID-wide invalidations, ASIDs reused',
    policy: 'strict',
    defaultLiveEntries: 256,
    maxPages: 1,
    devicesPerUnit: 8,
    ats: noAts,
    multiUnit: false,
    guestRamMib: 32,
    describe: (o) =>
      `asid-churn: per op, one of 8 devices' domain torn down and rebuilt with ${Math.ceil(o.liveEntries / 8)} ` +
      `1-page mappings (` +
      (o.vendor === 'smmu'
        ? `detach: abort STE, TLBI_NH_ASID, the ASID freed; attach: the ASID reused, CD and STE written with their CFGIs`
        : `the domain window unmapped with one domain-selective IOTLB invalidation; the DID is kept, as the driver model has no detach`) +
      `); ${live(o)}`,
    pages: onePage,
    op: (w, i) => w.rebuild(w.devices[i % w.devices.length]!, onePage),
  },
  mixed: {
    name: 'mixed',
    summary: '80% page-range replaces, 15% domain rebuilds, 5% global invalidations; ATS devices',
    policy: 'strict',
    defaultLiveEntries: 256,
    maxPages: 16,
    devicesPerUnit: 8,
    ats: (k) => k % 2 === 1,
    multiUnit: false,
    guestRamMib: 32,
    describe: (o) =>
      `mixed (T1's mix): per op, 80 % replace a mapping of 1–16 pages (${terms(o).range} + ${terms(o).barrier}), ` +
      `15 % rebuild a domain (${terms(o).domain}), 5 % ${terms(o).global}; 8 devices, 4 with ATS ` +
      `(${terms(o).atc} too); ${live(o)}`,
    pages: (rng) => 1 + rng.below(16),
    op: (w) => {
      const r = w.rng.below(100);
      const dev = w.devices[w.rng.below(w.devices.length)]!;
      if (r < 80) w.replace(dev, 1 + w.rng.below(16));
      else if (r < 95) w.rebuild(dev, () => 1 + w.rng.below(16));
      else dev.guest.invalidateAll();
    },
  },
  'multi-guest': {
    name: 'multi-guest',
    summary: 'several units (--guests), each a guest with its own queue, strict replaces round-robin',
    policy: 'strict',
    defaultLiveEntries: 1024,
    maxPages: 1,
    devicesPerUnit: 1,
    ats: noAts,
    multiUnit: true,
    guestRamMib: 32,
    describe: (o) =>
      `multi-guest: ${o.guests} units sharing the IOTLB, each a guest with its own queue and device; per op, ` +
      `the next unit in turn unmaps 1 page (${terms(o).page} + ${terms(o).barrier}) and maps 1 page; ${live(o)} in all`,
    pages: onePage,
    op: (w, i) => w.replace(w.devices[i % w.devices.length]!, 1),
  },
  faults: {
    name: 'faults',
    summary: 'recoverable I/O page faults through iommufd: fault, demand-paging handler, response, retry',
    policy: 'strict',
    defaultLiveEntries: 64,
    maxPages: 1,
    devicesPerUnit: 1,
    ats: noAts,
    multiUnit: false,
    guestRamMib: 8,
    describe: (o) =>
      `faults: per op, a 64-byte DMA into an unmapped page of an IOPF-capable domain (${o.vendor === 'vtd' ? 'a PRI page request group' : 'an SMMUv3 stalled transaction'}), ${o.liveEntries} in flight; ` +
      "the VMM's handler maps the page and answers SUCCESS, the DMA retries and lands, then the page is unmapped again",
    pages: onePage,
    // Its own runner (faults.ts): a DMA engine keeps the writes in flight, and each completes later.
    op: () => {
      throw new RangeError('the faults scenario runs on its own runner');
    },
  },
};
