/**
 * Parameter initialisation from a small seeded generator. The generator is specified exactly (below)
 * so that tests/oracle/init_rng.py reproduces the same weights in Python without storing them.
 *
 * splitmix32 stream: state += 0x9e3779b9; z = state; z = (z ^ z>>>16) * 0x85ebca6b; z = (z ^ z>>>13) *
 * 0xc2b2ae35; z ^= z>>>16. Uniform u = (z >>> 8 + 0.5) / 2^24 in (0, 1). Normal by Box-Muller from two
 * uniforms: sqrt(-2 ln u1) * cos(2 pi u2). Each tensor seeds its own stream from (seed, name) with FNV-1a.
 */

/** The seeded splitmix32 generator: one stream per (seed, tensor name), reproduced by tests/oracle/init_rng.py. */
export class InitRng {
  #state: number;

  /** Seeds the stream from `seed` and the tensor's `name` (FNV-1a). */
  constructor(seed: number, name = "") {
    let hash = 0x811c9dc5 ^ (seed >>> 0);
    for (const byte of new TextEncoder().encode(name)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    this.#state = hash >>> 0;
  }

  /** The next 32-bit output of the stream. */
  nextUint32(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in (0, 1), 24-bit resolution. */
  uniform(): number {
    return ((this.nextUint32() >>> 8) + 0.5) / 16777216;
  }

  /** Standard normal (mean 0, variance 1), Box-Muller from two uniforms. */
  normal(): number {
    const u1 = this.uniform();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

/** Kaiming normal, fan_out, gain sqrt(2): std = sqrt(2 / (cout * k * k)) (SPEC §3). */
export function kaimingNormalFanOut(rng: InitRng, shape: readonly number[]): Float32Array {
  const [cout, , kh = 1, kw = 1] = shape;
  const std = Math.sqrt(2 / (cout * kh * kw));
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * std);
}

/** PyTorch's Linear default: weight and bias uniform in ±1/sqrt(in). */
export function uniformFanIn(rng: InitRng, count: number, fanIn: number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: count }, () => (2 * rng.uniform() - 1) * bound);
}

export function constant(count: number, value: number): Float32Array {
  return new Float32Array(count).fill(value);
}
