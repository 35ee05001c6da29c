/**
 * The replay's public types: its options, its progress reports and its result, whose top-level
 * fields are the ones `ioasid replay --json` prints (issue 7, item 3).
 */
import type { QemuSmmuStats, QemuVtdStats } from '../baseline/index.js';
import type { ReplayTarget } from './units.js';

/** The unit a trace drives. */
export type TraceVendor = 'vtd' | 'smmuv3';

/** Where a replay is: for a progress bar. */
export interface ReplayProgress {
  /** Lines processed so far. */
  readonly lines: number;
  /** Bytes of the input read so far (of the compressed file for `.xz`). */
  readonly bytesRead: number;
  /** Size of the input in the same unit; 0 when unknown (a stream without `totalBytes`). */
  readonly totalBytes: number;
}

/** Options of a replay. */
export interface ReplayOptions {
  /** The unit to replay on; default: the vendor of the trace's first VT-d or SMMUv3 event. */
  vendor?: TraceVendor;
  /**
   * VT-d: scalable-mode root and context tables (and 256-bit descriptors); default: what the
   * trace's `vtd_reg_dmar_root … scalable N` line says (legacy when it has none).
   */
  vtdScalable?: boolean;
  /** Called every `progressEveryLines` lines and once at the end. */
  onProgress?: (p: ReplayProgress) => void;
  /** Lines between progress reports; default 65536. */
  progressEveryLines?: number;
  /** Size of a stream input in bytes, for progress (files report their own). */
  totalBytes?: number;
  /** Guest RAM of the emulated unit in bytes (a multiple of 4 KiB, at least 16 MiB); default 64 MiB. */
  guestRamBytes?: number;
  /** Stops the replay (it rejects with EIO) at the next chunk of input. */
  signal?: AbortSignal;
  /**
   * The units to replay on: this project's ('ioasid', the default) or the QEMU-style baseline
   * ('qemu', src/baseline), with the same guest and the same input.
   */
  target?: ReplayTarget;
}

/** Counts by kind. Keys are stable strings; a key absent means 0. */
export interface ReplayByKind {
  /**
   * Commands replayed, by the vendor's name for them: VT-d descriptor types ('iotlb', 'wait',
   * 'iec', 'context-cache', 'device-tlb', …), SMMUv3 commands ('TLBI_NH_VA', 'CMD_SYNC', …).
   */
  readonly commands: Readonly<Record<string, number>>;
  /**
   * Lines interpreted and deliberately not replayed, as `reason:event`: `qemu-internal`
   * (QEMU's own cache flushes and bookkeeping), `decoded` (a line that restates a command or
   * doorbell replayed from other lines: QEMU's decoding of a raw VT-d descriptor, the CMDQ_PROD
   * write printed after the commands it rang), `device` and `console` (device and guest
   * console events), `setup` (register programming that the replay's own bring-up does),
   * `empty-doorbell` (a doorbell with nothing to fetch), `untraced-slot` (a VT-d queue slot whose
   * descriptor QEMU 7.2 does not trace), `trace-error` (errors QEMU itself reported), `blank`.
   */
  readonly skipped: Readonly<Record<string, number>>;
  /**
   * Lines that could not be interpreted, as `kind:event` (`kind:COMMAND` for `unencodable`
   * SMMUv3 commands): `malformed` (a known event whose arguments do not parse),
   * `unknown-event`, `no-event` (no `SEC.USEC:event` prefix), `orphan` (a line that belongs to
   * a command or doorbell that is not there), `unencodable` (a command the trace does not give
   * the fields of, or whose fields no single command holds; a VT-d translation in scalable
   * mode, which this replay does not set up), `inconsistent` (a line that contradicts the ones
   * it completes, or another vendor's event).
   */
  readonly uninterpreted: Readonly<Record<string, number>>;
}

/** The DMA translations of a `-xlate` trace. */
export interface ReplayTranslations {
  /** Translation lines replayed. */
  readonly total: number;
  /** Mappings created by a first translation. */
  readonly mapped: number;
  /** Mappings removed by the invalidation that covered them. */
  readonly unmapped: number;
  /** Translations that faulted on the emulated unit (a correct replay has none). */
  readonly faults: number;
  /** Translations that reached another address than the mapping's (a correct replay has none). */
  readonly mismatches: number;
}

/** A device of the trace and the domain the replay attached it to. */
export interface ReplayDevice {
  /** Source id (VT-d) or StreamID (SMMUv3). */
  readonly sid: number;
  /** VT-d: the guest domain id. */
  readonly did?: number;
  /** SMMUv3: the domain's ASID. */
  readonly asid?: number;
  /**
   * How the domain was learnt: 'attach' (the trace's attach commands: CFGI_STE then
   * TLBI_NH_ASID), 'invalidation' (the first invalidation that covered one of its translations),
   * 'first-translation' (no evidence: a domain of its own, Linux's next ASID / an unused DID).
   */
  readonly learnt: 'attach' | 'invalidation' | 'first-translation';
}

/** The setup the replay recreated. */
export interface ReplaySetup {
  /** VT-d: scalable-mode tables. */
  readonly scalable: boolean;
  /** Devices attached, in the order they were. */
  readonly devices: readonly ReplayDevice[];
  /** Domain tags the trace's invalidations name: VT-d DIDs, SMMUv3 ASIDs. */
  readonly domainTags: readonly number[];
  /** Commands the replay issued itself (not the trace's): the re-attach of a device whose domain it learnt late. */
  readonly setupCommands: number;
}

/** How fast it went. */
export interface ReplayThroughput {
  /** Wall time from the first byte read to the last line, ms. */
  readonly wallMs: number;
  /** Part of `wallMs` spent building the unit and bringing the guest up, ms. */
  readonly setupMs: number;
  /** Commands replayed per second of wall time. */
  readonly commandsPerSecond: number;
  /** Doorbells per second of wall time. */
  readonly doorbellsPerSecond: number;
  /** Trace lines per second of wall time. */
  readonly linesPerSecond: number;
}

/** What a replay did. */
export interface ReplayResult {
  /** The input's file name ('stream' for a stream). */
  readonly file: string;
  readonly vendor: TraceVendor;
  /** Lines read (blank ones included). */
  readonly lines: number;
  /** Bytes of the input read (of the compressed file for `.xz`). */
  readonly bytes: number;
  /** Trace commands replayed (VT-d descriptors, SMMUv3 commands), barriers included. */
  readonly commands: number;
  /** Doorbells rung (IQT writes, CMDQ_PROD writes) that carried trace commands. */
  readonly doorbells: number;
  /** Barriers replayed and completed (wait descriptors, CMD_SYNCs). */
  readonly barriers: number;
  /** Lines that could not be interpreted (see `byKind.uninterpreted`). */
  readonly uninterpreted: number;
  /** Trace commands the emulated unit rejected (IQE, CMDQ errors), and barriers that did not complete. */
  readonly commandErrors: number;
  readonly byKind: ReplayByKind;
  /** The translations of a `-xlate` trace (all 0 for a trace without translation lines). */
  readonly translations: ReplayTranslations;
  readonly setup: ReplaySetup;
  readonly throughput: ReplayThroughput;
  /** The units it ran on. */
  readonly target: ReplayTarget;
  /** Target 'qemu': the baseline unit's counters (IOTLB hits, capacity flushes, scans, …). */
  readonly baseline?: QemuVtdStats | QemuSmmuStats;
}
