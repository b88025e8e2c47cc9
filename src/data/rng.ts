/**
 * A small, fast, seedable PRNG for data augmentation and shuffling: xoshiro128** (Blackman & Vigna),
 * 32-bit state words so it runs on plain integer arithmetic, seeded through splitmix32 so that nearby
 * seeds give unrelated streams. Its whole state is four uint32 words, which checkpoints save and restore.
 */

/** The serialisable state of an Rng: four uint32 words, never all zero. */
export type RngState = [number, number, number, number];

/** One splitmix32 step: a bijective 32-bit mixer, used to expand seeds into state words. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * A seeded xoshiro128** generator; its state can be saved and restored, so data order and augmentation
 * continue exactly on resume.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  private constructor(state: RngState) {
    [this.s0, this.s1, this.s2, this.s3] = state.map((word) => word >>> 0);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) {
      throw new Error("rng: an all-zero xoshiro128** state never leaves zero; seed it with Rng.seeded");
    }
  }

  /** A generator seeded from any list of integers (e.g. seed, epoch, sample index): equal keys, equal streams. */
  static seeded(...keys: number[]): Rng {
    let h = 0x2545f491;
    for (const key of keys) {
      if (!Number.isSafeInteger(key)) throw new Error(`rng: seed key ${key} is not a safe integer`);
      // Fold both 32-bit halves so keys above 2^32 still change the stream.
      h = splitmix32(h ^ (key >>> 0));
      h = splitmix32(h ^ Math.floor(key / 0x100000000));
    }
    const state: RngState = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) {
      h = splitmix32(h);
      state[i] = h;
    }
    if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1;
    return new Rng(state);
  }

  /** Restores a generator saved with `state()`. */
  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new Error(`rng: a saved state is four uint32 words, got ${JSON.stringify(state)}`);
    }
    return new Rng([state[0], state[1], state[2], state[3]]);
  }

  /** The current state, to save in a checkpoint. */
  state(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** The next uniformly distributed uint32. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 32 random bits. */
  float(): number {
    return this.nextUint32() / 0x100000000;
  }

  /** A uniform float in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.float();
  }

  /** A uniform integer in [0, n), unbiased (rejection of the short last bucket). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
      throw new Error(`rng: int(n) needs 1 <= n <= 2^32, got ${n}`);
    }
    const limit = 0x100000000 - (0x100000000 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** A uniform integer in [low, high] (both ends included). */
  intInclusive(low: number, high: number): number {
    return low + this.int(high - low + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}

/** The identity permutation 0..n-1 shuffled by `rng`. */
export function permutation(n: number, rng: Rng): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return rng.shuffle(order);
}
