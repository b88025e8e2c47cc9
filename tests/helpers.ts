/** Shared test plumbing: the GPU, oracle fixtures, and tolerance checks. */
import { AssertionError } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/data/rng.ts";
import { initGpu } from "../src/gpu/device.ts";
import { type NamedArray, readSafetensors } from "../src/io/safetensors.ts";
import type { ModelOptions } from "../src/models/model.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";

/**
 * A tiny real `train` run: a 3-layer plain CNN of width 4 with two modules, 24 training and 8 test digits,
 * batch 8, a metrics line every step. CLI tests add their own flags after it (the last occurrence wins).
 */
export const TINY_CLI = [
  "--model",
  "plain",
  "--width",
  "4",
  "--T",
  "1",
  "--sb-places",
  "1,1",
  "--sb-kernels",
  "3",
  "--sb-width",
  "8",
  "--train-limit",
  "24",
  "--test-limit",
  "8",
  "--batch-size",
  "8",
  "--log-every",
  "1",
];

/**
 * A tiny plain CNN (widths 4, 4, 8) with two one-layer surrogate modules, on 1-channel inputs of 4
 * classes: the model of the tests that train a few real steps in-process.
 */
export const TINY_PLAIN: ModelOptions = {
  numClasses: 4,
  T: 1,
  inChannels: 1,
  widths: [4, 4, 8],
  seed: 3,
  modules: { positions: [1, 1], kernels: [[3]], width: 8 },
};

/**
 * The one generator of test data: the library's seeded xoshiro128** (src/data/rng.ts) with array helpers,
 * so every test's values are reproducible from its seed keys and no test carries a generator of its own.
 */
export class TestRng {
  readonly #rng: Rng;

  /** Equal keys give equal streams (e.g. `new TestRng(11, shape.length, T)`). */
  constructor(...keys: number[]) {
    this.#rng = Rng.seeded(...keys);
  }

  /** A uniform number in [low, high). */
  uniform(low = 0, high = 1): number {
    return this.#rng.uniform(low, high);
  }

  /** `count` uniform float32 values in [low, high). */
  uniforms(count: number, low = -1, high = 1): Float32Array<ArrayBuffer> {
    return Float32Array.from({ length: count }, () => this.#rng.uniform(low, high));
  }

  /** `count` normal float32 values (Box-Muller) of the given mean and standard deviation. */
  normals(count: number, mean = 0, std = 1): Float32Array<ArrayBuffer> {
    return Float32Array.from({ length: count }, () => {
      // 1 - float() lies in (0, 1], so the logarithm stays finite.
      const radius = Math.sqrt(-2 * Math.log(1 - this.#rng.float()));
      return mean + std * radius * Math.cos(2 * Math.PI * this.#rng.float());
    });
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return this.#rng.int(n);
  }

  /** `count` uniform integers in [0, n), e.g. class labels. */
  ints(count: number, n: number): Int32Array<ArrayBuffer> {
    return Int32Array.from({ length: count }, () => this.#rng.int(n));
  }

  /** A fresh 32-bit seed key, to derive an independent generator. */
  key(): number {
    return this.#rng.nextUint32();
  }
}

export const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));

/** Every GPU test awaits this first. */
export function setupGpu() {
  return initGpu();
}

export class Fixture {
  constructor(readonly name: string, readonly arrays: Map<string, NamedArray>) {}

  static async load(name: string): Promise<Fixture> {
    return new Fixture(name, await readSafetensors(`${FIXTURES}${name}.safetensors`));
  }

  get(key: string): NamedArray {
    const array = this.arrays.get(key);
    if (!array) {
      throw new Error(`fixture ${this.name} has no ${key}; it has ${[...this.arrays.keys()].join(", ")}`);
    }
    return array;
  }

  floats(key: string): Float32Array {
    const { data } = this.get(key);
    if (data instanceof Float32Array) return data;
    if (data instanceof BigInt64Array) return Float32Array.from(data, Number);
    return Float32Array.from(data as ArrayLike<number>);
  }

  shape(key: string): number[] {
    return this.get(key).shape;
  }

  /** Uploads an f32 fixture array as a tensor. */
  tensor(key: string, options: { requiresGrad?: boolean; shape?: number[] } = {}): Tensor {
    return Tensor.fromData(this.floats(key), options.shape ?? this.shape(key), {
      name: key,
      requiresGrad: options.requiresGrad,
    });
  }

  ints(key: string): Int32Array {
    const { data } = this.get(key);
    return Int32Array.from(data as ArrayLike<number | bigint>, Number);
  }
}

export interface Tolerance {
  /** Relative tolerance per element. */
  rtol: number;
  /**
   * Absolute floor, as a fraction of the expected tensor's root-mean-square: elements near zero are
   * judged against the tensor's scale instead of their own (otherwise cancellation noise fails them).
   */
  scaleFloor?: number;
}

export const FORWARD: Tolerance = { rtol: 1e-4, scaleFloor: 1e-4 };
export const GRADIENT: Tolerance = { rtol: 1e-3, scaleFloor: 1e-3 };

/** Worst |a - e| / (rtol |e| + floor) over elements; <= 1 passes. Also reports the max relative error. */
export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: Tolerance) {
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `length ${actual.length} != expected ${expected.length}` });
  }
  let sumSquares = 0;
  for (let i = 0; i < expected.length; i++) sumSquares += expected[i] * expected[i];
  const rms = Math.sqrt(sumSquares / Math.max(1, expected.length));
  const floor = (tolerance.scaleFloor ?? tolerance.rtol) * rms + 1e-12;
  let worst = 0;
  let worstIndex = -1;
  let maxRelative = 0;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff === diff)) return { ratio: Infinity, index: i, maxRelative: Infinity };
    const ratio = diff / (tolerance.rtol * Math.abs(expected[i]) + floor);
    if (ratio > worst) {
      worst = ratio;
      worstIndex = i;
    }
    maxRelative = Math.max(maxRelative, diff / Math.max(Math.abs(expected[i]), rms));
  }
  return { ratio: worst, index: worstIndex, maxRelative };
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: Tolerance,
  what: string,
): void {
  const { ratio, index } = compare(actual, expected, tolerance);
  if (ratio > 1) {
    throw new AssertionError({
      message: `${what}: element ${index} is ${actual[index]}, expected ${expected[index]} ` +
        `(${ratio.toFixed(2)}x over tolerance rtol=${tolerance.rtol})`,
    });
  }
}

/** Reads a tensor and compares it with a fixture array. */
export async function assertTensorClose(
  tensor: Tensor | null,
  fixture: Fixture,
  key: string,
  tolerance: Tolerance,
): Promise<void> {
  if (!tensor) {
    throw new AssertionError({ message: `${fixture.name}/${key}: tensor is missing (no gradient?)` });
  }
  const expectedShape = fixture.shape(key);
  if (tensor.size !== expectedShape.reduce((a, b) => a * b, 1)) {
    throw new AssertionError({
      message: `${fixture.name}/${key}: shape [${tensor.shape.join(", ")}] vs expected [${
        expectedShape.join(", ")
      }]`,
    });
  }
  assertClose(await tensor.readFloat(), fixture.floats(key), tolerance, `${fixture.name}/${key}`);
}

/** What `checkOp` runs and compares; keys name fixture arrays. */
export interface OpCheck {
  /**
   * The op's inputs: a name -> fixture key map (or a list of keys used as their own names). Each is
   * uploaded as a tensor (integer arrays as i32).
   */
  inputs: Record<string, string> | string[];
  /** Inputs whose gradient is checked: input name -> fixture key of the expected gradient. */
  grads?: Record<string, string>;
  /** Inputs that require grad but must receive none (e.g. a teacher behind a stop-gradient). */
  noGrads?: string[];
  /** The op on the uploaded inputs; returns what to compare, by fixture key, each checked forward. */
  run: (inputs: Record<string, Tensor>) => Record<string, Tensor>;
  /** Which output to back-propagate (default: the first). */
  backward?: string;
  /** Fixture key of the upstream gradient; without it the back-propagated output is seeded with ones. */
  up?: string;
}

/**
 * "This op matches PyTorch's fixture" in one call (after tinygrad's test_ops helper): uploads the fixture
 * inputs, runs the op on a tape, checks every output's shape and values (FORWARD), back-propagates and
 * checks the gradient of each input in `grads` (GRADIENT) and that inputs in `noGrads`, and any input
 * without an expected gradient, got none. Frees what it made.
 */
export async function checkOp(f: Fixture, check: OpCheck): Promise<void> {
  const keys = Array.isArray(check.inputs)
    ? Object.fromEntries(check.inputs.map((k) => [k, k]))
    : check.inputs;
  const grads = check.grads ?? {};
  const inputs: Record<string, Tensor> = {};
  for (const [name, key] of Object.entries(keys)) {
    const requiresGrad = name in grads || (check.noGrads ?? []).includes(name);
    inputs[name] = f.get(key).dtype.startsWith("I")
      ? Tensor.fromData(f.ints(key), f.shape(key), { name: key, dtype: "i32" })
      : f.tensor(key, { requiresGrad });
  }
  const up = check.up ? f.tensor(check.up) : undefined;
  const tape = new Tape();
  try {
    const outputs = tape.run(() => check.run(inputs));
    for (const [key, tensor] of Object.entries(outputs)) {
      if (tensor.shape.join() !== f.shape(key).join()) {
        throw new AssertionError({
          message: `${f.name}/${key}: shape [${tensor.shape.join(", ")}] vs expected [${
            f.shape(key).join(", ")
          }]`,
        });
      }
      await assertTensorClose(tensor, f, key, FORWARD);
    }
    if (Object.keys(grads).length === 0) return;
    tape.backward(outputs[check.backward ?? Object.keys(outputs)[0]], up);
    for (const [name, tensor] of Object.entries(inputs)) {
      if (name in grads) await assertTensorClose(tensor.grad, f, grads[name], GRADIENT);
      else if (tensor.grad) throw new AssertionError({ message: `${f.name}: ${name} got a gradient` });
    }
  } finally {
    tape.dispose();
    for (const tensor of [...Object.values(inputs), up]) tensor?.dispose();
  }
}

/**
 * Checks a deep-SNN fixture's record of why it holds on any adapter (tests/oracle/margins.py): no float64
 * membrane potential lies within `margin.required` (at least `least`, the margin this test states) of
 * the threshold or of the surrogate region's edges, and float32 replays with every stored value moved by
 * up to 2 ulps fired the same spikes and stayed within the FORWARD and GRADIENT tolerances.
 */
export function assertMargins(f: Fixture, least: number): void {
  const value = (key: string) => f.floats(`margin.${key}`)[0];
  const required = value("required");
  const at = `${f.name}: margin`;
  if (!(required >= Math.fround(least))) {
    throw new AssertionError({ message: `${at}.required ${required} is below the stated ${least}` });
  }
  for (const edge of ["threshold", "region"]) {
    if (!(value(edge) >= required)) {
      throw new AssertionError({ message: `${at}.${edge} ${value(edge)} is within ${required}` });
    }
  }
  if (value("replay_flips") !== 0) {
    throw new AssertionError({
      message: `${at}: its float32 replays flipped ${value("replay_flips")} spikes`,
    });
  }
  for (const ratio of ["replay_ratio_forward", "replay_ratio_gradient"]) {
    if (!(value(ratio) <= 1)) {
      throw new AssertionError({ message: `${at}.${ratio} ${value(ratio)}: a replay misses the tolerance` });
    }
  }
}
