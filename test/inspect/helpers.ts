/**
 * Shared helpers of the inspection tests: a seeded generator (every run is reproducible from its
 * seed), the comparison of an inspected result with what translate returned, and the read-only
 * check (memory bytes and counters before and after).
 */
import { expect } from 'vitest';
import type { WalkTrace } from '../../src/inspect/index.js';

/** mulberry32: a small seeded generator of floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, n) from `r`. */
export function below(r: () => number, n: number): number {
  return Math.floor(r() * n);
}

/** What translate gave: the address, or the fault code and the vendor code (lastFaultReason, lastEvent, lastFault().vendorCode). */
export interface Translated {
  pa: number;
  vendorCode: number;
  /** iommufd only: lastFault().level and .reason. */
  level?: number;
  reason?: string;
}

/** Asserts that the inspected result is what translate gave (`what` names the case in the failure). */
export function expectSameResult(trace: WalkTrace, t: Translated, what: string): void {
  const r = trace.result;
  if (t.pa >= 0) {
    expect(r.ok ? r.hpa : r.fault, what).toBe(t.pa);
    return;
  }
  expect(r.ok ? `ok 0x${r.hpa.toString(16)}` : r.fault.code, what).toBe(t.pa);
  if (r.ok) return;
  expect(r.fault.vendorCode, `${what}: vendor code`).toBe(t.vendorCode);
  if (t.level !== undefined) expect(r.fault.level, `${what}: level`).toBe(t.level);
  if (t.reason !== undefined) expect(r.fault.reason, `${what}: reason`).toBe(t.reason);
}

/** A copy of `bytes`, to compare with later. */
export function snapshot(bytes: Uint8Array): Uint8Array {
  return bytes.slice();
}

/** Asserts that `bytes` are what `before` copied (compares without a per-byte expectation). */
export function expectUnchanged(bytes: Uint8Array, before: Uint8Array, what: string): void {
  expect(Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), before), what).toBe(0);
}
