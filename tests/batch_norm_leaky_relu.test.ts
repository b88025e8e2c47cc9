/**
 * The fused batch norm + LeakyReLU of the surrogate modules against the two separate ops it replaces,
 * which the batch-norm and elementwise tests check against PyTorch: bit for bit the same output, running
 * statistics and gradients (LeakyReLU's gradient reads the sign of its output instead of its input).
 */
import assert from "node:assert/strict";
import { batchNorm, batchNormLeakyRelu, type BatchNormState } from "../src/ops/batch_norm.ts";
import { leakyRelu } from "../src/ops/elementwise.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { setupGpu, TestRng } from "./helpers.ts";

const CASES = [
  { label: "BatchNorm2d, training", shape: [4, 3, 5, 6], training: true },
  { label: "BatchNorm1d, training", shape: [16, 7], training: true },
  { label: "BatchNorm2d, evaluation", shape: [3, 5, 4, 4], training: false },
];

async function run(shape: number[], training: boolean, fused: boolean) {
  const rng = new TestRng(5, shape.length);
  const size = shape.reduce((a, b) => a * b);
  const channels = shape[1];
  const x = Tensor.fromData(rng.uniforms(size, -2, 3), shape, { name: "x", requiresGrad: true });
  const up = Tensor.fromData(rng.uniforms(size, -1, 1), shape, { name: "up" });
  const make = (name: string, low: number, high: number, requiresGrad = false) =>
    Tensor.fromData(rng.uniforms(channels, low, high), [channels], { name, requiresGrad });
  const bn: BatchNormState = {
    weight: make("weight", 0.5, 1.5, true),
    bias: make("bias", -0.5, 0.5, true),
    runningMean: make("running_mean", -0.5, 0.5),
    runningVar: make("running_var", 0.5, 2),
  };
  const options = { training, momentum: 0.1, eps: 1e-5 };
  const tape = new Tape();
  const y = tape.run(() =>
    fused ? batchNormLeakyRelu(x, bn, options, 0.01) : leakyRelu(batchNorm(x, bn, options), 0.01)
  );
  tape.backward(y, up);
  const result = {
    y: await y.readFloat(),
    runningMean: await bn.runningMean.readFloat(),
    runningVar: await bn.runningVar.readFloat(),
    gradX: await x.grad!.readFloat(),
    gradWeight: await bn.weight.grad!.readFloat(),
    gradBias: await bn.bias.grad!.readFloat(),
  };
  tape.dispose();
  for (const t of [x, up, ...Object.values(bn)]) t.dispose();
  return result;
}

for (const { label, shape, training } of CASES) {
  Deno.test(`batchNormLeakyRelu ${label}: bit for bit the separate ops`, async () => {
    await setupGpu();
    const separate = await run(shape, training, false);
    const fused = await run(shape, training, true);
    const negative = separate.y.filter((v) => v < 0).length / separate.y.length;
    assert.ok(negative > 0.1 && negative < 0.9, `both slopes should be exercised (${negative} negative)`);
    assert.deepEqual(fused, separate);
  });
}

Deno.test("batchNormLeakyRelu: a slope that is not positive is refused", async () => {
  await setupGpu();
  const x = Tensor.fromData(new Float32Array(8), [4, 2], { name: "x" });
  const bn = Object.fromEntries(
    ["weight", "bias", "runningMean", "runningVar"].map((
      k,
    ) => [k, Tensor.fromData(new Float32Array(2), [2])]),
  ) as unknown as BatchNormState;
  assert.throws(() => batchNormLeakyRelu(x, bn, { training: false }, 0), /slope is 0; it must be > 0/);
  for (const t of [x, ...Object.values(bn)]) t.dispose();
});
