/**
 * A trapped doorbell under QEMU's big lock: each ring runs `consume` once, and a ring from inside
 * it (an interrupt handler of a CMD_SYNC or a wait descriptor ringing again) is served when the
 * running one is done, as the BQL serialises the trap. Once stopped (the unit closed) rings do
 * nothing.
 */
export class BqlDoorbell {
  readonly #consume: () => void;
  #consuming = false;
  #rungAgain = false;
  #stopped = false;

  /** A doorbell whose rings run `consume`. */
  constructor(consume: () => void) {
    this.#consume = consume;
  }

  /** Whether {@link stop} was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Stops consuming for good. */
  stop(): void {
    this.#stopped = true;
  }

  /** The doorbell's write: consume now, or after the consumption already running. */
  ring(): void {
    if (this.#consuming) {
      this.#rungAgain = true;
      return;
    }
    this.#consuming = true;
    try {
      do {
        this.#rungAgain = false;
        if (!this.#stopped) this.#consume();
      } while (this.#rungAgain);
    } finally {
      this.#consuming = false;
    }
  }
}
