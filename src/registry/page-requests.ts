/**
 * What a device needs to wait for its page requests: the group indices it has outstanding (PCIe
 * PRI's 9-bit Page Request Group Index, or the SMMUv3 stall model's 16-bit STAG, one per stalled
 * transaction), and who gets the answer to each. A FAULT object's queue hands every answer (a
 * write or an auto-response) to {@link RequestTags.answer}, which gives the tag back and wakes its
 * owner. Typed arrays per device: taking and answering a tag allocates nothing.
 */

/** The two recoverable-fault models: PRI page-request groups, or one stalled transaction per fault (SMMUv3 stall). */
export type IopfModel = 'pri' | 'stall';

/** PRG indices are 9 bits; stall tags 16. */
const TAG_BITS: Record<IopfModel, number> = { pri: 9, stall: 16 };

/** Who waits on an outstanding tag: told the PAGE_RESPONSE code once the group is answered (the tag is free again by then). */
export interface TagWaiter {
  /** Group `tag` of device `devId` was answered with `code`. */
  answered(devId: number, tag: number, code: number): void;
}

/** Someone with requests to send once device `devId` has a free tag again (see {@link RequestTags.waitForTag}). */
export interface TagStallWaiter {
  /** A tag of device `devId` came back. */
  tagFreed(devId: number): void;
}

/** A waiter that only gives the tag back (a page request nothing waits on, such as `translate`'s). */
export const NO_WAITER: TagWaiter = { answered: () => undefined };

/** One device's tags: the owner of each outstanding one, and the PASID its request named. */
class DeviceTags {
  readonly size: number;
  readonly pasid: Int32Array;
  readonly waiters: (TagWaiter | undefined)[];
  /** Who waits for any tag to come back (every tag was outstanding when they needed one). */
  stalled: TagStallWaiter[] = [];
  count = 0;
  next = 0;

  constructor(size: number) {
    this.size = size;
    this.pasid = new Int32Array(size);
    this.waiters = new Array<TagWaiter | undefined>(size).fill(undefined);
  }
}

/**
 * The outstanding request tags of each device: a device may not reuse a PRG index (or a stall
 * tag) before its response arrives.
 */
export class RequestTags {
  readonly #devices: (DeviceTags | undefined)[] = [];

  /**
   * A free tag of `model`'s width for device `devId`, taken for a request on `pasid` (or -1 for
   * none) that `waiter` waits on; -1 when every tag is outstanding.
   */
  take(devId: number, model: IopfModel, pasid: number, waiter: TagWaiter): number {
    let d = this.#devices[devId];
    if (d === undefined) this.#devices[devId] = d = new DeviceTags(1 << TAG_BITS[model]);
    const size = Math.min(d.size, 1 << TAG_BITS[model]);
    if (d.count >= size) return -1;
    let t = d.next % size;
    while (d.waiters[t] !== undefined) t = t + 1 === size ? 0 : t + 1;
    d.waiters[t] = waiter;
    d.pasid[t] = pasid;
    d.count++;
    d.next = t + 1;
    return t;
  }

  /** Gives tag `tag` of device `devId` back without an answer (a request that was never sent). */
  give(devId: number, tag: number): void {
    const d = this.#devices[devId];
    if (d === undefined || tag < 0 || tag >= d.size || d.waiters[tag] === undefined) return;
    d.waiters[tag] = undefined;
    d.count--;
    if (d.stalled.length > 0) this.#freed(devId, d);
  }

  /**
   * `w` is told (once) when a tag of device `devId` comes back: for a sender that found every tag
   * outstanding, whoever holds them (another engine, `translate`'s requests, `dma`).
   */
  waitForTag(devId: number, w: TagStallWaiter): void {
    let d = this.#devices[devId];
    if (d === undefined) this.#devices[devId] = d = new DeviceTags(1 << TAG_BITS.stall);
    if (!d.stalled.includes(w)) d.stalled.push(w);
  }

  #freed(devId: number, d: DeviceTags): void {
    const waiting = d.stalled;
    d.stalled = [];
    for (const w of waiting) w.tagFreed(devId);
  }

  /**
   * Group (`devId`, `pasid`, `grpid`) was answered with `code`: if the device holds that tag for
   * a request on that PASID, the tag comes back and its waiter learns the code. Answers to groups
   * no tag names (the selftest's `triggerIopf`) change nothing.
   */
  answer(devId: number, pasid: number, grpid: number, code: number): void {
    const d = this.#devices[devId];
    if (d === undefined || grpid < 0 || grpid >= d.size) return;
    const w = d.waiters[grpid];
    if (w === undefined || d.pasid[grpid] !== pasid) return;
    d.waiters[grpid] = undefined;
    d.count--;
    w.answered(devId, grpid, code);
    if (d.stalled.length > 0) this.#freed(devId, d);
  }

  /** Whether device `devId` has a tag of `model`'s width free (what {@link take} would give). */
  hasFree(devId: number, model: IopfModel): boolean {
    const d = this.#devices[devId];
    return d === undefined || d.count < Math.min(d.size, 1 << TAG_BITS[model]);
  }
}
