/**
 * A small seeded PRNG (sfc32, seeded through splitmix32): the same seed gives the same command
 * stream on every machine, which is what makes `ioasid bench --seed` runs comparable.
 */

/** sfc32: 128 bits of state, period about 2^127, a few integer operations per number. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** A generator whose whole sequence follows from `seed` (any 32-bit integer). */
  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = splitmix();
    this.#b = splitmix();
    this.#c = splitmix();
    this.#d = splitmix();
    // The first outputs of sfc32 are correlated with the seed: discard them.
    for (let i = 0; i < 12; i++) this.next();
  }

  /** The next 32-bit unsigned integer. */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** A uniform integer in [0, n) for 1 ≤ n ≤ 2^32 (the modulo bias is below 2^-20 for n ≤ 4096). */
  below(n: number): number {
    return this.next() % n;
  }

  /** A uniform number in [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }
}
