import assert from "node:assert/strict";
import {
  conv2dForwardKernel,
  conv2dGradInputKernels,
  conv2dGradWeightKernel,
  type ConvGeometry,
  type DirectTile,
  type DirectWeightTile,
  type GemmTile,
  outputSize,
} from "../kernels/conv2d.ts";
import { dispatch } from "../src/gpu/kernels.ts";
import { conv2d } from "../src/ops/conv2d.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertTensorClose, Fixture, FORWARD, GRADIENT, setupGpu } from "./helpers.ts";

const CASES = [
  "k1",
  "k1_s2",
  "k3_p0",
  "k3_p1",
  "k3_s2",
  "k3_s2_even",
  "k3_s3_p2",
  "k5_s2",
  "k5_p3",
  "k7_s2",
  "large_s1",
  "large_s2",
];

function optionsOf(f: Fixture) {
  const [stride, padding] = f.ints("config");
  return { stride, padding };
}

for (const name of CASES) {
  Deno.test(`conv2d ${name}: output, input gradient and weight gradient match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`conv2d_${name}`);
    const x = f.tensor("x", { requiresGrad: true });
    const weight = f.tensor("weight", { requiresGrad: true });
    const up = f.tensor("up");
    const tape = new Tape();
    const out = tape.run(() => conv2d(x, weight, optionsOf(f)));
    assert.deepEqual([...out.shape], f.shape("out"));
    await assertTensorClose(out, f, "out", FORWARD);
    tape.backward(out, up);
    await assertTensorClose(x.grad, f, "grad_x", GRADIENT);
    await assertTensorClose(weight.grad, f, "grad_weight", GRADIENT);
    tape.dispose();
    for (const t of [x, weight, up]) t.dispose();
  });
}

Deno.test("conv2d: only the inputs that require grad get a gradient", async () => {
  await setupGpu();
  const f = await Fixture.load("conv2d_k3_s2");
  for (const which of ["x", "weight"] as const) {
    const x = f.tensor("x", { requiresGrad: which === "x" });
    const weight = f.tensor("weight", { requiresGrad: which === "weight" });
    const up = f.tensor("up");
    const tape = new Tape();
    const out = tape.run(() => conv2d(x, weight, optionsOf(f)));
    tape.backward(out, up);
    if (which === "x") {
      await assertTensorClose(x.grad, f, "grad_x", GRADIENT);
      assert.equal(weight.grad, null);
    } else {
      await assertTensorClose(weight.grad, f, "grad_weight", GRADIENT);
      assert.equal(x.grad, null);
    }
    tape.dispose();
    for (const t of [x, weight, up]) t.dispose();
  }
});

interface TilingCase {
  pixels: GemmTile | DirectTile;
  weights: GemmTile | DirectWeightTile;
}

/**
 * The op runs one default tiling per adapter, which exceeds some GEMM dimensions of the fixtures. These
 * tilings are small enough that every GEMM of the large fixtures spans several tiles in M, N and K, they
 * cover each GEMM loader layout (invocations fewer than, equal to, and more than the tile width; a tileK
 * that is not a multiple of the loader's row step; non-square register blocks), and direct blocks that
 * overhang the image edge and the channel count.
 */
const TILINGS: TilingCase[] = [
  { kind: "gemm", tileM: 8, tileN: 8, tileK: 4, threadM: 2, threadN: 2 },
  { kind: "gemm", tileM: 16, tileN: 8, tileK: 3, threadM: 1, threadN: 2 },
  { kind: "gemm", tileM: 8, tileN: 32, tileK: 8, threadM: 4, threadN: 2 },
  { kind: "gemm", tileM: 32, tileN: 16, tileK: 5, threadM: 8, threadN: 4 },
].map((tile) => ({ pixels: tile as GemmTile, weights: tile as GemmTile }));
TILINGS.push(
  {
    pixels: { kind: "direct", channels: 3, rows: 2, cols: 3, workgroup: 8 },
    weights: { kind: "direct", outChannels: 5, inChannels: 3, rows: 3, cols: 2, workgroup: 4 },
  },
  {
    pixels: { kind: "direct", channels: 5, rows: 4, cols: 1, workgroup: 16 },
    weights: { kind: "direct", outChannels: 2, inChannels: 7, rows: 1, cols: 5, workgroup: 8 },
  },
);

// Stride 3 (nine phases) under the GEMM tiling; the op tests cover it under the default direct tiling.
const KERNEL_CASES: [string, TilingCase[]][] = [
  ["large_s1", TILINGS],
  ["large_s2", TILINGS],
  ["k1_s2", TILINGS],
  ["k3_s3_p2", TILINGS.slice(0, 1)],
];

for (const [name, tilings] of KERNEL_CASES) {
  Deno.test(`conv2d kernels ${name}: each test tiling matches PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`conv2d_${name}`);
    const [batch, cin, height, width] = f.shape("x");
    const [cout, , kernel] = f.shape("weight");
    const { stride, padding } = optionsOf(f);
    const geometry: ConvGeometry = { batch, cin, cout, height, width, kernel, stride, pad: padding };
    const x = f.tensor("x");
    const weight = f.tensor("weight");
    const up = f.tensor("up");
    for (const { pixels, weights } of tilings) {
      const what = `${name} with tiles ${JSON.stringify(pixels)} ${JSON.stringify(weights)}`;
      const out = Tensor.empty([batch, cout, ...outputSize(geometry)], { name: `out ${what}` });
      const forward = conv2dForwardKernel(geometry, pixels);
      dispatch(forward, [x.buffer, weight.buffer, out.buffer], forward.workgroups);
      await assertTensorClose(out, f, "out", FORWARD);
      const gradX = Tensor.empty(x.shape, { name: `grad_x ${what}` });
      for (const k of conv2dGradInputKernels(geometry, pixels)) {
        dispatch(k, [up.buffer, weight.buffer, gradX.buffer], k.workgroups);
      }
      await assertTensorClose(gradX, f, "grad_x", GRADIENT);
      const gradWeight = Tensor.empty(weight.shape, { name: `grad_weight ${what}` });
      const gradWeightKernel = conv2dGradWeightKernel(geometry, weights);
      dispatch(gradWeightKernel, [up.buffer, x.buffer, gradWeight.buffer], gradWeightKernel.workgroups);
      await assertTensorClose(gradWeight, f, "grad_weight", GRADIENT);
      for (const t of [out, gradX, gradWeight]) t.dispose();
    }
    for (const t of [x, weight, up]) t.dispose();
  });
}

Deno.test("conv2d: mismatched channels and non-4-D inputs are errors naming both shapes", async () => {
  await setupGpu();
  const x = Tensor.empty([2, 3, 5, 5], { name: "x" });
  const weight = Tensor.empty([4, 2, 3, 3], { name: "w" });
  const flat = Tensor.empty([2, 75], { name: "flat" });
  assert.throws(() => conv2d(x, weight), /input has 3 channels.*x \[2, 3, 5, 5\].*w \[4, 2, 3, 3\]/);
  assert.throws(() => conv2d(flat, weight), /4-D.*flat \[2, 75\].*w \[4, 2, 3, 3\]/);
  const wide = Tensor.empty([4, 3, 7, 7], { name: "w7" });
  assert.throws(() => conv2d(x, wide), /larger than the padded input/);
  for (const t of [x, weight, flat, wide]) t.dispose();
});
