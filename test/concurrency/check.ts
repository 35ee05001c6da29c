/**
 * What a walk may return while the control plane maps and unmaps, shared by the walker worker and
 * the tests (the issue: "a walker never sees a torn descriptor, and never reads a freed table").
 */
import { TranslateFault } from '../../src/pgtable/index.js';
import type { DataPlaneHandles } from '../../src/translate/index.js';

/**
 * The pattern freed frames are filled with. Read as a 64-bit descriptor (0x0BADF003_0BADF003) it is
 * valid in every format and points far outside physical memory (64 MiB in these tests):
 * - mock: VALID|TABLE, next table or output address 0x0BADF003 << 11: the walk indexes past the
 *   end of memory and throws a RangeError, or returns that address;
 * - Arm VMSAv8-64: a table at 0xF003_0BADF000 (WalkAbort), or a page with AF = 0 (AccessFlag);
 * - VT-d second stage: R|W with an address >= 2^48 (Reserved).
 */
export const POISON = 0x0badf003;

/** How a walk's result is judged. */
export const Verdict = {
  /** The expected physical address. */
  Ok: 0,
  /** A churn IOVA that is not mapped at the moment: NotMapped. */
  Miss: 1,
  /** The stable region returned another address, or NotMapped. */
  StableMismatch: 2,
  /** The churn region returned an address that the IOVA is never mapped to. */
  ChurnIllegal: 3,
  /** A fault other than NotMapped (WalkAbort, Reserved, AddressSize, AccessFlag, ...). */
  ForbiddenFault: 4,
} as const;

/** One of the {@link Verdict} values. */
export type VerdictCode = (typeof Verdict)[keyof typeof Verdict];

/**
 * Judges one walk. Each IOVA of the churn region is only ever mapped to one host page, so its
 * result must be `expected` or NotMapped; the stable region must always give `expected`.
 */
export function judge(stable: boolean, result: number, expected: number): VerdictCode {
  if (result === expected) return Verdict.Ok;
  if (result === TranslateFault.NotMapped) return stable ? Verdict.StableMismatch : Verdict.Miss;
  if (result < 0) return Verdict.ForbiddenFault;
  return stable ? Verdict.StableMismatch : Verdict.ChurnIllegal;
}

/** Where one device's regions are, and what its stable region translates to. */
export interface DeviceLayout {
  /** 'mock', 'smmuv3' or 'vtd'. */
  kind: string;
  /** The device's data-plane slot. */
  slot: number;
  /** First IOVA of the stable region. */
  stableBase: number;
  /** Physical address of each 4 KiB page of the stable region. */
  stablePa: number[];
  /** First IOVA of each churn window. */
  windows: number[];
}

/** Words of the walkers' control buffer (Int32). */
export const CONTROL = {
  /** Set by the main thread to stop the walkers. */
  Stop: 0,
  /** Walkers that have started walking. */
  Ready: 1,
  /** From here, {@link CONTROL.PerWalker} words per walker, updated every 1024 walks. */
  Walkers: 2,
  /** Words per walker: [walks, forbidden faults + exceptions]. */
  PerWalker: 2,
} as const;

/** What the walker worker is given. */
export interface WalkerConfig {
  /** `fd.dataPlane()`. */
  dataPlane: DataPlaneHandles;
  /** Int32 words, at the {@link CONTROL} indexes. */
  control: SharedArrayBuffer;
  /** This walker's index. */
  id: number;
  /** PRNG seed. */
  seed: number;
  /** Whether the translator publishes its epoch (false: the negative control, slot -1). */
  epoch: boolean;
  /** The devices. */
  devices: DeviceLayout[];
  /** Physical address of each 4 KiB page of a churn window (the same host pages for all). */
  churnPa: number[];
}

/** A walk that was judged wrong. */
export interface Anomaly {
  kind: string;
  iova: number;
  result: number | string;
  expected: number;
  stable: boolean;
}

/** What a walker reports when it stops. */
export interface WalkerReport {
  walks: number;
  stableOk: number;
  churnHits: number;
  churnMisses: number;
  stableMismatches: number;
  churnIllegal: number;
  forbiddenFaults: number;
  exceptions: number;
  /** Count per negative result code other than NotMapped. */
  faultCodes: Record<string, number>;
  /** The first few anomalies. */
  samples: Anomaly[];
}
