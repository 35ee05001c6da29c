import { IommufdError } from '../util/errors.js';
import type { FaultInjector } from '../util/fail-nth.js';
import type { IommufdObject, ObjectType } from './objects.js';

/** Largest id (the kernel's xarray is limited to 31 bits). */
const MAX_ID = 2 ** 31 - 1;

/**
 * The one id table that every object kind shares (`iommufd_ctx.objects`). Ids are the lowest free
 * integer from 1. Creation is two-phase as in the kernel: `reserve` takes an id that lookups do
 * not see, `finalize` publishes the object, `abort` gives the id back.
 */
export class ObjectTable {
  readonly #slots: (IommufdObject | null | undefined)[] = [undefined];
  /** Free ids below the high-water mark, ascending. */
  readonly #free: number[] = [];
  readonly #faults: FaultInjector;

  /** Creates an empty table. */
  constructor(faults: FaultInjector) {
    this.#faults = faults;
  }

  /** Reserves the lowest free id. */
  reserve(): number {
    this.#faults.step('object id allocation');
    let id = this.#free.shift();
    if (id === undefined) {
      if (this.#slots.length > MAX_ID) throw new IommufdError('ENOSPC', 'object ids exhausted');
      id = this.#slots.length;
      this.#slots.push(null);
    } else {
      this.#slots[id] = null;
    }
    return id;
  }

  /** Publishes a reserved id's object. */
  finalize(obj: IommufdObject): void {
    this.#slots[obj.id] = obj;
  }

  /** Releases an id (reserved or published). */
  remove(id: number): void {
    if (this.#slots[id] === undefined) return;
    this.#slots[id] = undefined;
    let lo = 0;
    let hi = this.#free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#free[mid]! < id) lo = mid + 1;
      else hi = mid;
    }
    this.#free.splice(lo, 0, id);
  }

  /**
   * Unpublishes an object but keeps its id taken (the kernel's XA_ZERO_ENTRY): lookups and
   * destroy see ENOENT, the id is not handed out again, and the table is not empty, until the fd
   * closes. Used for a vDEVICE destroyed by its device's unbind.
   */
  tombstone(id: number): void {
    if (this.#slots[id] !== undefined) this.#slots[id] = null;
  }

  /** Looks up a published object, of `type` if given. ENOENT for an unknown id or a wrong type. */
  get<T extends ObjectType>(id: number, type?: T): Extract<IommufdObject, { type: T }> {
    const obj = Number.isInteger(id) && id > 0 ? this.#slots[id] : undefined;
    if (obj === undefined || obj === null || (type !== undefined && obj.type !== type)) {
      throw new IommufdError('ENOENT', `no ${type ?? 'object'} with id ${String(id)}`);
    }
    return obj as Extract<IommufdObject, { type: T }>;
  }

  /** Like {@link get} but returns undefined instead of throwing. */
  find(id: number): IommufdObject | undefined {
    const obj = Number.isInteger(id) && id > 0 ? this.#slots[id] : undefined;
    return obj ?? undefined;
  }

  /** Published objects, in id order. */
  all(): IommufdObject[] {
    return this.#slots.filter((o): o is IommufdObject => o !== undefined && o !== null);
  }

  /** Whether no object exists (reserved ids included). */
  get empty(): boolean {
    return this.#free.length === this.#slots.length - 1;
  }
}
