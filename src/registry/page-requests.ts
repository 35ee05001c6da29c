/**
 * What a device needs to wait for its page requests: the group indices it has outstanding (PCIe
 * PRI's 9-bit Page Request Group Index, or the SMMUv3 stall model's 16-bit STAG, one per stalled
 * transaction), and the answer to a group on its FAULT object's queue.
 */
import type { FaultQueue } from './fault.js';

/** The two recoverable-fault models: PRI page-request groups, or one stalled transaction per fault (SMMUv3 stall). */
export type IopfModel = 'pri' | 'stall';

/** PRG indices are 9 bits; stall tags 16. */
const TAG_BITS: Record<IopfModel, number> = { pri: 9, stall: 16 };

/**
 * The outstanding request tags of each device: a device may not reuse a PRG index (or a stall
 * tag) before its response arrives.
 */
export class RequestTags {
  readonly #out = new Map<number, Set<number>>();
  readonly #next = new Map<number, number>();

  /** A free tag of `model`'s width for device `devId`, taken; -1 when every one is outstanding. */
  take(devId: number, model: IopfModel): number {
    const size = 1 << TAG_BITS[model];
    let out = this.#out.get(devId);
    if (out === undefined) this.#out.set(devId, (out = new Set()));
    if (out.size >= size) return -1;
    let t = this.#next.get(devId) ?? 0;
    while (out.has(t % size)) t++;
    t %= size;
    out.add(t);
    this.#next.set(devId, t + 1);
    return t;
  }

  /** Gives tag `tag` of device `devId` back. */
  give(devId: number, tag: number): void {
    this.#out.get(devId)?.delete(tag);
  }

  /** Tags device `devId` has outstanding. */
  outstanding(devId: number): number {
    return this.#out.get(devId)?.size ?? 0;
  }
}

/**
 * The answer to group (`devId`, `pasid`, `grpid`) on `queue`: its PAGE_RESPONSE code, by a write
 * or an auto-response. A queue destroyed first counts as INVALID. Subscribe before the group can
 * be answered (the report and this call in the same tick).
 */
export function awaitAnswer(queue: FaultQueue, devId: number, pasid: number, grpid: number): Promise<number> {
  return new Promise<number>((resolve) => queue.onAnswer(devId, pasid, grpid, resolve));
}
