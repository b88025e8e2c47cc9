/**
 * The fused batch norm + LIF (+ residual) against the chain of separate ops it replaces, which the
 * batch-norm and LIF tests check against PyTorch: the same spikes, running statistics and gradients.
 */
import assert from "node:assert/strict";
import { batchNorm, type BatchNormOptions, type BatchNormState } from "../src/ops/batch_norm.ts";
import { MAX_RECOMPUTED_STEPS } from "../kernels/lif.ts";
import { poolStats, roundedSize } from "../src/gpu/pool.ts";
import { batchNormLif } from "../src/ops/batch_norm_lif.ts";
import { add } from "../src/ops/elementwise.ts";
import { lif, type LifOptions } from "../src/ops/lif.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertClose, GRADIENT, setupGpu, TestRng } from "./helpers.ts";

interface Case {
  label: string;
  shape: number[];
  T: number;
  residual: boolean;
  training: boolean;
}

const CASES: Case[] = [
  { label: "T=1, 2-D, training", shape: [6, 3, 4, 5], T: 1, residual: false, training: true },
  { label: "T=3, 2-D, training", shape: [6, 3, 4, 5], T: 3, residual: false, training: true },
  { label: "T=2, 2-D, residual, training", shape: [8, 4, 3, 3], T: 2, residual: true, training: true },
  { label: "T=3, BatchNorm1d, residual, evaluation", shape: [6, 5], T: 3, residual: true, training: false },
  // Past MAX_RECOMPUTED_STEPS the forward saves the membrane instead of the backward recomputing it.
  { label: "T=17, 2-D, residual, training", shape: [34, 3, 2, 3], T: 17, residual: true, training: true },
];

/** Fresh parameters and running statistics, the same for both paths. */
function state(rng: TestRng, channels: number): BatchNormState {
  const make = (name: string, data: Float32Array, requiresGrad = false) =>
    Tensor.fromData(data, [channels], { name, requiresGrad });
  const r = new TestRng(rng.key());
  return {
    weight: make("weight", r.uniforms(channels, 0.5, 1.5), true),
    bias: make("bias", r.uniforms(channels, 0.2, 1.2), true),
    runningMean: make("running_mean", r.uniforms(channels, -0.5, 0.5)),
    runningVar: make("running_var", r.uniforms(channels, 0.5, 2)),
  };
}

async function run(c: Case, fused: boolean) {
  const rng = new TestRng(11, c.shape.length, c.T);
  const size = c.shape.reduce((a, b) => a * b);
  const x = Tensor.fromData(rng.uniforms(size, -2, 3), c.shape, { name: "x", requiresGrad: true });
  const residual = c.residual
    ? Tensor.fromData(rng.uniforms(size, -0.5, 1), c.shape, { name: "residual", requiresGrad: true })
    : undefined;
  const up = Tensor.fromData(rng.uniforms(size, -1, 1), c.shape, { name: "up" });
  const bn = state(rng, c.shape[1]);
  const bnOptions: BatchNormOptions = { training: c.training, momentum: 0.1, eps: 1e-5 };
  const lifOptions: LifOptions = { T: c.T, tau: 0.5, threshold: 1, surrogate: "dspike" };
  const tape = new Tape();
  const before = poolStats().bytesInUse;
  const spikes = tape.run(() => {
    if (fused) return batchNormLif(x, bn, bnOptions, lifOptions, residual);
    const y = batchNorm(x, bn, bnOptions);
    return lif(residual ? add(y, residual) : y, lifOptions);
  });
  const forwardBytes = poolStats().bytesInUse - before;
  tape.backward(spikes, up);
  const read = (t: Tensor | null) => t!.readFloat();
  const result = {
    forwardBytes,
    spikes: await spikes.readFloat(),
    runningMean: await read(bn.runningMean),
    runningVar: await read(bn.runningVar),
    gradX: await read(x.grad),
    gradWeight: await read(bn.weight.grad),
    gradBias: await read(bn.bias.grad),
    gradResidual: residual ? await read(residual.grad) : new Float32Array(),
  };
  tape.dispose();
  for (const t of [x, residual, up, ...Object.values(bn)]) t?.dispose();
  return result;
}

for (const c of CASES) {
  Deno.test(`batchNormLif ${c.label}: the same spikes, statistics and gradients as the separate ops`, async () => {
    await setupGpu();
    const separate = await run(c, false);
    const fused = await run(c, true);
    const rate = separate.spikes.reduce((a, b) => a + b, 0) / separate.spikes.length;
    assert.ok(rate > 0.1 && rate < 0.9, `inputs should make some neurons fire and some not (rate ${rate})`);
    // The fused kernel computes each neuron's input with the separate kernels' expressions.
    assert.deepEqual(fused.spikes, separate.spikes);
    assert.deepEqual(fused.runningMean, separate.runningMean);
    assert.deepEqual(fused.runningVar, separate.runningVar);
    for (const key of ["gradX", "gradWeight", "gradBias", "gradResidual"] as const) {
      assertClose(fused[key], separate[key], GRADIENT, key);
    }
    assert.ok(separate.gradX.some((v) => v !== 0), "the surrogate passes some gradient");
    // Between forward and backward the fused op keeps the spikes and small per-channel statistics, plus
    // the membrane (as large as the spikes) only when T is too long for the backward to recompute it.
    const tensorBytes = roundedSize(4 * c.shape.reduce((a, b) => a * b));
    const statisticsBytes = roundedSize(4 * 4 * c.shape[1]);
    const kept = (c.T > MAX_RECOMPUTED_STEPS ? 2 : 1) * tensorBytes + statisticsBytes;
    assert.equal(fused.forwardBytes, kept, "bytes the forward keeps for the backward");
  });
}

Deno.test("batchNormLif: a residual of another shape is refused with both shapes named", async () => {
  await setupGpu();
  const x = Tensor.fromData(new Float32Array(2 * 3 * 4), [2, 3, 4], { name: "conv_out" });
  const residual = Tensor.fromData(new Float32Array(2 * 3 * 2), [2, 3, 2], { name: "shortcut" });
  const bn = state(new TestRng(1), 3);
  assert.throws(
    () => batchNormLif(x, bn, { training: false }, { T: 1 }, residual),
    /residual shortcut is f32 \[2, 3, 2\], expected f32 \[2, 3, 4\] like conv_out/,
  );
  for (const t of [x, residual, ...Object.values(bn)]) t.dispose();
});
