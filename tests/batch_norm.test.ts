import assert from "node:assert/strict";
import { batchNorm, type BatchNormOptions, type BatchNormState } from "../src/ops/batch_norm.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertTensorClose, checkOp, Fixture, FORWARD, setupGpu } from "./helpers.ts";

/** The fixture's parameters and running statistics as fresh tensors (weight and bias need grads). */
function stateFrom(f: Fixture): BatchNormState {
  return {
    weight: f.tensor("weight", { requiresGrad: true }),
    bias: f.tensor("bias", { requiresGrad: true }),
    runningMean: f.tensor("running_mean"),
    runningVar: f.tensor("running_var"),
  };
}

function optionsFrom(f: Fixture): BatchNormOptions {
  const [training, momentum, eps] = f.floats("params");
  return { training: training === 1, momentum, eps };
}

function disposeState(state: BatchNormState): void {
  for (const t of Object.values(state)) t.dispose();
}

const CASES = [
  "2d_train",
  "2d_train_batch1",
  "2d_train_chunks",
  "2d_train_momentum",
  "1d_train",
  "2d_eval",
  "1d_eval",
];

for (const label of CASES) {
  Deno.test(`batch_norm ${label}: output, running statistics and gradients match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`batch_norm_${label}`);
    await checkOp(f, {
      inputs: {
        x: "x",
        weight: "weight",
        bias: "bias",
        runningMean: "running_mean",
        runningVar: "running_var",
      },
      grads: { x: "grad_x", weight: "grad_weight", bias: "grad_bias" },
      up: "up",
      // The running statistics are updated in place by the forward.
      run: ({ x, weight, bias, runningMean, runningVar }) => ({
        y: batchNorm(x, { weight, bias, runningMean, runningVar }, optionsFrom(f)),
        running_mean_after: runningMean,
        running_var_after: runningVar,
      }),
    });
  });
}

Deno.test("batch_norm: without a tape it records nothing but still updates the running statistics", async () => {
  await setupGpu();
  const f = await Fixture.load("batch_norm_2d_train");
  const x = f.tensor("x", { requiresGrad: true });
  const state = stateFrom(f);
  const y = batchNorm(x, state, optionsFrom(f));
  assert.equal(y.requiresGrad, false);
  await assertTensorClose(y, f, "y", FORWARD);
  await assertTensorClose(state.runningMean, f, "running_mean_after", FORWARD);
  await assertTensorClose(state.runningVar, f, "running_var_after", FORWARD);
  disposeState(state);
  for (const t of [x, y]) t.dispose();
});

Deno.test("batch_norm: an input that needs no gradient still gives the weight and bias theirs", async () => {
  await setupGpu();
  const f = await Fixture.load("batch_norm_2d_train_chunks");
  await checkOp(f, {
    inputs: {
      x: "x",
      weight: "weight",
      bias: "bias",
      runningMean: "running_mean",
      runningVar: "running_var",
    },
    grads: { weight: "grad_weight", bias: "grad_bias" },
    up: "up",
    run: ({ x, weight, bias, runningMean, runningVar }) => ({
      y: batchNorm(x, { weight, bias, runningMean, runningVar }, optionsFrom(f)),
    }),
  });
});

Deno.test("batch_norm: one value per channel in training and mismatched state are rejected", async () => {
  await setupGpu();
  const state = {
    weight: Tensor.fromData([1, 1, 1], [3], { name: "bn.weight" }),
    bias: Tensor.fromData([0, 0, 0], [3], { name: "bn.bias" }),
    runningMean: Tensor.fromData([0, 0, 0], [3], { name: "bn.running_mean" }),
    runningVar: Tensor.fromData([1, 1, 1], [3], { name: "bn.running_var" }),
  };
  const single = Tensor.fromData([1, 2, 3], [1, 3], { name: "features" });
  assert.throws(
    () => batchNorm(single, state, { training: true }),
    /features \[1, 3\] has 1 value per channel/,
  );
  const wide = Tensor.fromData(new Float32Array(8), [2, 4], { name: "wide" });
  assert.throws(
    () => batchNorm(wide, state, { training: false }),
    /weight bn.weight .*\[3\].*expected f32 \[4\]/,
  );
  disposeState(state);
  for (const t of [single, wide]) t.dispose();
});
