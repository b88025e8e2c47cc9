/**
 * The tilings every GPU runs (conv2d's tiled implicit GEMM, the shared-memory matmul) over one whole SML
 * training step against the software adapter's direct, uniform-window tilings, both forced
 * (`setTiling`) so that either adapter runs both: forward logits of the network
 * and its surrogate modules, the SML loss, every parameter gradient, the parameters after an SGD step and
 * the BN statistics after the step, for a small ResNet-19 and the plain CNN, both with surrogate modules.
 *
 * Spiking networks are chaotic: a membrane within float rounding of the threshold flips a spike when the
 * two tilings sum in another order. So each case asserts a margin: the forward gives bit-identical logits
 * with the threshold moved by MARGIN either way, so no membrane lies within MARGIN of it. The LIF uses the
 * atan surrogate, which has no region edge where the gradient jumps (Dspike's |u - theta| = r). The kernel
 * cache checks its rule (equal keys, equal WGSL) on every dispatch meanwhile.
 */
import assert from "node:assert/strict";
import { Rng } from "../src/data/rng.ts";
import { setTiling, type TilingChoice } from "../src/gpu/device.ts";
import { checkKernelKeys } from "../src/gpu/kernels.ts";
import { createModel, type ModelOptions, type SpikingModel } from "../src/models/registry.ts";
import { createOptimizer } from "../src/optim/registry.ts";
import { smlLoss } from "../src/sml/loss.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertClose, FORWARD, GRADIENT, setupGpu } from "./helpers.ts";

const CLASSES = 10;
const THRESHOLD = 1;
/** No membrane of the forward lies within this of the threshold (asserted per case). */
const MARGIN = 1e-5;
const LOSS_OPTIONS = { temperature: 3, alpha: 0.5, lambda: 0.9 };
/** Linear layers feeding a training-mode BN: the exact bias gradient is zero (BN removes the mean). */
const ZERO_GRADIENT_SUFFIX = "prediction.2.bias";

interface Case {
  name: string;
  arch: string;
  options: ModelOptions;
  /** Input images (B, C, H, W). */
  shape: [number, number, number, number];
  seed: number;
}

const CASES: Case[] = [
  {
    name: "ResNet-19 (width 4, T = 2) with two surrogate modules",
    arch: "resnet19",
    options: { numClasses: CLASSES, T: 2, width: 4, modules: { positions: [3, 3], width: 8 } },
    shape: [4, 3, 8, 8],
    seed: 1,
  },
  {
    name: "plain CNN (widths 8, 8, 16, T = 2) with a surrogate module",
    arch: "plain",
    options: {
      numClasses: CLASSES,
      T: 2,
      widths: [8, 8, 16],
      modules: { positions: [1], kernels: [[3]], width: 8 },
    },
    shape: [4, 3, 8, 8],
    seed: 1,
  },
];

function modelFor(c: Case, threshold = THRESHOLD): SpikingModel {
  return createModel(c.arch, { ...c.options, seed: 7, lif: { surrogate: "atan", threshold } });
}

function inputsFor(c: Case): { input: Tensor; labels: Tensor } {
  const rng = Rng.seeded(c.seed, 16);
  const [batch] = c.shape;
  const images = Float32Array.from({ length: c.shape.reduce((a, b) => a * b) }, () => rng.uniform(0, 1));
  const labels = Int32Array.from({ length: batch }, () => rng.int(CLASSES));
  return {
    input: Tensor.fromData(images, c.shape, { name: "input" }),
    labels: Tensor.fromData(labels, [batch], { name: "labels", dtype: "i32" }),
  };
}

/** The network's and every module's logits of a training-mode forward without a tape. */
async function forwardLogits(model: SpikingModel, input: Tensor): Promise<Float32Array[]> {
  const out = model.forward(input);
  const all = [out.logits, ...out.moduleLogits];
  const values = await Promise.all(all.map((t) => t.readFloat()));
  for (const t of all) t.dispose();
  return values;
}

interface StepResult {
  logits: Float32Array[];
  loss: Float32Array;
  gradients: Map<string, Float32Array>;
  /** Every parameter and BN statistic after the optimizer step. */
  after: Map<string, Float32Array>;
}

/** One SML training step (forward, loss, backward, SGD step) of a fresh model under `tiling`. */
async function trainStep(c: Case, tiling: TilingChoice): Promise<StepResult> {
  setTiling(tiling);
  const model = modelFor(c);
  const { input, labels } = inputsFor(c);
  const optimizer = createOptimizer("sgd", model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
  const tape = new Tape();
  try {
    const { out, loss } = tape.run(() => {
      const out = model.forward(input);
      return { out, loss: smlLoss(out.logits, out.moduleLogits, labels, LOSS_OPTIONS).loss };
    });
    const logits = await Promise.all([out.logits, ...out.moduleLogits].map((t) => t.readFloat()));
    const lossValue = await loss.readFloat();
    tape.backward(loss);
    const gradients = new Map<string, Float32Array>();
    for (const [name, parameter] of model.namedParameters()) {
      assert.ok(parameter.grad, `${name} has no gradient`);
      gradients.set(name, await parameter.grad.readFloat());
    }
    optimizer.step();
    const after = new Map<string, Float32Array>();
    for (const entry of model.stateEntries()) {
      if (entry.kind !== "counter") after.set(entry.name, await entry.tensor.readFloat());
    }
    return { logits, loss: lossValue, gradients, after };
  } finally {
    setTiling("auto");
    optimizer.zeroGrad();
    tape.dispose();
    input.dispose();
    labels.dispose();
    model.dispose();
  }
}

function norm(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum);
}

for (const c of CASES) {
  Deno.test(`GPU tilings on this adapter: one SML training step of a ${c.name} matches the software adapter's tilings`, async () => {
    await setupGpu();
    // The margin: moving the threshold by MARGIN either way changes no spike, so no logit.
    const { input } = inputsFor(c);
    try {
      const logitsAt = async (threshold: number) => {
        const model = modelFor(c, threshold);
        try {
          return await forwardLogits(model, input);
        } finally {
          model.dispose();
        }
      };
      const atThreshold = await logitsAt(THRESHOLD);
      for (const moved of [THRESHOLD - MARGIN, THRESHOLD + MARGIN]) {
        assert.deepEqual(
          await logitsAt(moved),
          atThreshold,
          `a membrane lies within ${MARGIN} of the threshold`,
        );
      }
    } finally {
      input.dispose();
    }

    checkKernelKeys(true);
    let gpu: StepResult, fallback: StepResult;
    try {
      [gpu, fallback] = [await trainStep(c, "gpu"), await trainStep(c, "software")];
    } finally {
      checkKernelKeys(false);
    }
    gpu.logits.forEach((l, i) => assertClose(l, fallback.logits[i], FORWARD, `logits ${i}`));
    assertClose(gpu.loss, fallback.loss, FORWARD, "loss");
    assert.deepEqual([...gpu.gradients.keys()], [...fallback.gradients.keys()]);
    for (const [name, expected] of fallback.gradients) {
      if (name.endsWith(ZERO_GRADIENT_SUFFIX)) {
        // Exactly zero in exact arithmetic: both are rounding noise, small against the weight's gradient.
        const weight = fallback.gradients.get(name.replace(/bias$/, "weight"))!;
        for (const g of [gpu.gradients.get(name)!, expected]) {
          assert.ok(norm(g) <= 1e-4 * norm(weight), `${name}: gradient norm ${norm(g)} vs ${norm(weight)}`);
        }
        continue;
      }
      assertClose(gpu.gradients.get(name)!, expected, GRADIENT, `gradient of ${name}`);
    }
    for (const [name, expected] of fallback.after) {
      assertClose(gpu.after.get(name)!, expected, FORWARD, `${name} after the step`);
    }
  });
}
