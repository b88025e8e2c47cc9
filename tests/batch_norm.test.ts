import assert from "node:assert/strict";
import { runDeferred } from "../src/gpu/kernels.ts";
import { batchNorm, type BatchNormOptions, type BatchNormState } from "../src/ops/batch_norm.ts";
import { type BatchNormReduction, withBatchNormReduction } from "../src/ops/batch_norm_reduction.ts";
import { Tape } from "../src/tensor/tape.ts";
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

/** The fixture names of batchNorm's inputs: the tensor, the affine parameters and the running statistics. */
const BN_INPUTS = {
  x: "x",
  weight: "weight",
  bias: "bias",
  runningMean: "running_mean",
  runningVar: "running_var",
};

for (const label of CASES) {
  Deno.test(`batch_norm ${label}: output, running statistics and gradients match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`batch_norm_${label}`);
    await checkOp(f, {
      inputs: BN_INPUTS,
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
    inputs: BN_INPUTS,
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

/**
 * Rank 0 of a simulated two-rank job: the first half of the fixture's batch on the GPU, the second half's
 * contributions (its moments, then its gradient sums) supplied by the host as the other rank would send
 * them. Rank 0's output and input gradient must be the first half of PyTorch's full-batch ones, its
 * running statistics the full batch's, and its weight and bias gradients plus the other half's PyTorch's.
 */
Deno.test("batch_norm: synchronised over a simulated second rank equals PyTorch on the whole batch", async () => {
  await setupGpu();
  const f = await Fixture.load("batch_norm_2d_train");
  const [N, C, H, W] = f.shape("x");
  const S = H * W;
  const half = (N / 2) * C * S;
  const xs = f.floats("x");
  const ups = f.floats("up");
  const channel = (from: number, c: number) =>
    Array.from({ length: (N / 2) * S }, (_, j) => from + Math.floor(j / S) * C * S + c * S + (j % S));
  const other = channel.bind(null, half);
  const mean = (c: number) => [...channel(0, c), ...other(c)].reduce((a, i) => a + xs[i], 0) / (N * S);
  let gathers = 0;
  let sums = 0;
  const reduction: BatchNormReduction = {
    gather: (values) => {
      gathers++;
      const theirs = new Float32Array(values.length);
      for (let c = 0; c < C; c++) {
        const shift = xs[other(c)[0]];
        theirs[c] = other(c).reduce((a, i) => a + (xs[i] - shift), 0);
        theirs[C + c] = other(c).reduce((a, i) => a + (xs[i] - shift) ** 2, 0);
        theirs[2 * C + c] = shift;
      }
      theirs[3 * C] = (N / 2) * S;
      return Float32Array.from([...values, ...theirs]);
    },
    sum: (values) => {
      sums++;
      for (let c = 0; c < C; c++) {
        values[c] += other(c).reduce((a, i) => a + ups[i], 0);
        values[C + c] += other(c).reduce((a, i) => a + ups[i] * (xs[i] - mean(c)), 0);
      }
      values[2 * C] += (N / 2) * S;
    },
  };
  const x = Tensor.fromData(xs.slice(0, half), [N / 2, C, H, W], { name: "x", requiresGrad: true });
  const up = Tensor.fromData(ups.slice(0, half), [N / 2, C, H, W], { name: "up" });
  const state = stateFrom(f);
  const tape = new Tape();
  const y = await runDeferred(() =>
    withBatchNormReduction(reduction, () => {
      const y = tape.run(() => batchNorm(x, state, optionsFrom(f)));
      tape.backward(y, up);
      return y;
    })
  );
  assert.deepEqual([gathers, sums], [1, 1]);
  const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string) => {
    const scale = Math.max(...Array.from(expected, Math.abs), rtol);
    const worst = Math.max(...Array.from(actual, (v, i) => Math.abs(v - expected[i])));
    assert.ok(worst <= rtol * scale, `${what}: max error ${worst} against ${scale}`);
  };
  close(await y.readFloat(), f.floats("y").subarray(0, half), 1e-4, "y");
  close(await x.grad!.readFloat(), f.floats("grad_x").subarray(0, half), 1e-3, "grad_x");
  close(await state.runningMean.readFloat(), f.floats("running_mean_after"), 1e-4, "running_mean");
  close(await state.runningVar.readFloat(), f.floats("running_var_after"), 1e-4, "running_var");
  // The other rank's share of the parameter gradients: its dL/dy times 1 and times x_hat.
  const invStd = Array.from({ length: C }, (_, c) => {
    const m = mean(c);
    const all = [...channel(0, c), ...other(c)];
    const variance = all.reduce((a, i) => a + (xs[i] - m) ** 2, 0) / all.length;
    return 1 / Math.sqrt(variance + optionsFrom(f).eps!);
  });
  const theirBias = Array.from({ length: C }, (_, c) => other(c).reduce((a, i) => a + ups[i], 0));
  const theirWeight = Array.from(
    { length: C },
    (_, c) => other(c).reduce((a, i) => a + ups[i] * (xs[i] - mean(c)) * invStd[c], 0),
  );
  const gradWeight = await state.weight.grad!.readFloat();
  const gradBias = await state.bias.grad!.readFloat();
  close(gradWeight.map((v, c) => v + theirWeight[c]), f.floats("grad_weight"), 1e-3, "grad_weight");
  close(gradBias.map((v, c) => v + theirBias[c]), f.floats("grad_bias"), 1e-3, "grad_bias");
  tape.dispose();
  disposeState(state);
  for (const t of [x, up, y]) t.dispose();
});
