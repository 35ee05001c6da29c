import { IommufdError, type Errno } from './errors.js';

/**
 * The single fault-injection point, in the spirit of the kernel's `iommufd_fail_nth`
 * (reference/iommufd.md §5): every fallible step of the registry and the layers under it calls
 * {@link FaultInjector.step}. Arming with n makes the n-th step from now fail, once.
 */
export class FaultInjector {
  #remaining = 0;
  #fired = false;
  #steps = 0;

  /** Makes the `nth` fallible step from now (1-based) fail. */
  arm(nth: number): void {
    if (!Number.isInteger(nth) || nth < 1)
      throw new IommufdError('EINVAL', `nth must be an integer >= 1, got ${String(nth)}`);
    this.#remaining = nth;
    this.#fired = false;
  }

  /** Cancels an armed failure that has not fired. */
  disarm(): void {
    this.#remaining = 0;
  }

  /** Whether the armed failure has been consumed. */
  get fired(): boolean {
    return this.#fired;
  }

  /** How many fallible steps have run since the injector was created. */
  get steps(): number {
    return this.#steps;
  }

  /**
   * Declares a fallible step. Throws the step's errno (ENOMEM unless named) when it is the
   * armed one. `site` names the step in the error message.
   */
  step(site: string, errno: Errno = 'ENOMEM'): void {
    this.#steps++;
    if (this.#remaining === 0) return;
    if (--this.#remaining === 0) {
      this.#fired = true;
      throw new IommufdError(errno, `injected failure at ${site}`);
    }
  }
}
