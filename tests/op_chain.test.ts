/**
 * End-to-end op chain against PyTorch (tests/oracle/op_chain.py): a miniature spiking residual block
 * with a classifier head, built from the ops directly, so the ops' composition on one tape (a tensor
 * used by two branches, gradients crossing BN batch statistics and LIF time loops) is checked as a whole.
 */
import assert from "node:assert/strict";
import { synchronize } from "../src/gpu/kernels.ts";
import { batchNorm, type BatchNormState } from "../src/ops/batch_norm.ts";
import { conv2d } from "../src/ops/conv2d.ts";
import { add, flatten } from "../src/ops/elementwise.ts";
import { lif } from "../src/ops/lif.ts";
import { linear } from "../src/ops/linear.ts";
import { crossEntropy } from "../src/ops/loss.ts";
import { adaptiveAvgPool2d } from "../src/ops/pool.ts";
import { meanOverTime } from "../src/ops/time.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertMargins, assertTensorClose, Fixture, FORWARD, GRADIENT, setupGpu } from "./helpers.ts";

const T = 2;
const BATCH_NORMS = ["bn1", "bn2", "bn_shortcut"] as const;
const WEIGHTS = ["conv1.weight", "conv2.weight", "shortcut.weight", "linear.weight", "linear.bias"] as const;
type BatchNormName = (typeof BATCH_NORMS)[number];
type WeightName = (typeof WEIGHTS)[number];

Deno.test("op chain conv-BN-LIF-residual-pool-linear-CE: loss, logits, running statistics and every gradient match PyTorch", async () => {
  await setupGpu();
  const f = await Fixture.load("op_chain_t2");
  // No membrane within 1e-4 of the threshold or the Dspike region's edges (tests/oracle/op_chain.py).
  assertMargins(f, 1e-4);
  const x = f.tensor("x", { requiresGrad: true });
  const labels = Tensor.fromData(f.ints("labels"), f.shape("labels"), { name: "labels" });
  const weights = Object.fromEntries(
    WEIGHTS.map((key) => [key, f.tensor(key, { requiresGrad: true })]),
  ) as Record<WeightName, Tensor>;
  const norms = Object.fromEntries(BATCH_NORMS.map((name) => [name, {
    weight: f.tensor(`${name}.weight`, { requiresGrad: true }),
    bias: f.tensor(`${name}.bias`, { requiresGrad: true }),
    runningMean: f.tensor(`${name}.running_mean_before`),
    runningVar: f.tensor(`${name}.running_var_before`),
  }])) as Record<BatchNormName, BatchNormState>;
  const norm = (name: BatchNormName, input: Tensor) => batchNorm(input, norms[name], { training: true });

  const tape = new Tape();
  const { logits, loss } = tape.run(() => {
    const spikes1 = lif(norm("bn1", conv2d(x, weights["conv1.weight"], { stride: 1, padding: 1 })), { T });
    const main = norm("bn2", conv2d(spikes1, weights["conv2.weight"], { stride: 2, padding: 1 }));
    const shortcut = norm(
      "bn_shortcut",
      conv2d(spikes1, weights["shortcut.weight"], { stride: 2, padding: 0 }),
    );
    const spikes2 = lif(add(main, shortcut), { T });
    const features = flatten(adaptiveAvgPool2d(spikes2, 1));
    const logits = meanOverTime(linear(features, weights["linear.weight"], weights["linear.bias"]), T);
    return { logits, loss: crossEntropy(logits, labels) };
  });
  assert.deepEqual([...logits.shape], f.shape("logits"));
  await assertTensorClose(logits, f, "logits", FORWARD);
  await assertTensorClose(loss, f, "loss", FORWARD);
  for (const [name, state] of Object.entries(norms)) {
    await assertTensorClose(state.runningMean, f, `${name}.running_mean_after`, FORWARD);
    await assertTensorClose(state.runningVar, f, `${name}.running_var_after`, FORWARD);
  }

  tape.backward(loss);
  await assertTensorClose(x.grad, f, "grad_x", GRADIENT);
  for (const [key, tensor] of Object.entries(weights)) {
    await assertTensorClose(tensor.grad, f, `grad_${key}`, GRADIENT);
  }
  for (const [name, state] of Object.entries(norms)) {
    await assertTensorClose(state.weight.grad, f, `grad_${name}.weight`, GRADIENT);
    await assertTensorClose(state.bias.grad, f, `grad_${name}.bias`, GRADIENT);
  }

  tape.dispose();
  for (const tensor of [x, labels, ...Object.values(weights)]) tensor.dispose();
  for (const state of Object.values(norms)) for (const tensor of Object.values(state)) tensor.dispose();
  await synchronize();
});
