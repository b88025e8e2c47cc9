import assert from "node:assert/strict";
import { MATMUL_TILES, matmulKernel } from "../kernels/matmul.ts";
import { dispatch } from "../src/gpu/kernels.ts";
import { linear } from "../src/ops/linear.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertClose, assertTensorClose, Fixture, FORWARD, GRADIENT, setupGpu } from "./helpers.ts";

for (const label of ["odd", "batch1", "nobias"]) {
  Deno.test(`linear ${label}: output and gradients of x, W, b match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`linear_${label}`);
    const withBias = f.arrays.has("bias");
    const x = f.tensor("x", { requiresGrad: true });
    const weight = f.tensor("weight", { requiresGrad: true });
    const bias = withBias ? f.tensor("bias", { requiresGrad: true }) : undefined;
    const up = f.tensor("up");
    const tape = new Tape();
    const out = tape.run(() => linear(x, weight, bias));
    await assertTensorClose(out, f, "out", FORWARD);
    tape.backward(out, up);
    await assertTensorClose(x.grad, f, "grad_x", GRADIENT);
    await assertTensorClose(weight.grad, f, "grad_weight", GRADIENT);
    if (bias) await assertTensorClose(bias.grad, f, "grad_bias", GRADIENT);
    tape.dispose();
    for (const t of [x, weight, bias, up]) t?.dispose();
  });
}

Deno.test("linear: only the inputs that require grad get gradients", async () => {
  await setupGpu();
  const f = await Fixture.load("linear_odd");
  const x = f.tensor("x");
  const weight = f.tensor("weight", { requiresGrad: true });
  const bias = f.tensor("bias");
  const up = f.tensor("up");
  const tape = new Tape();
  const out = tape.run(() => linear(x, weight, bias));
  tape.backward(out, up);
  assert.equal(x.grad, null);
  assert.equal(bias.grad, null);
  await assertTensorClose(weight.grad, f, "grad_weight", GRADIENT);
  tape.dispose();
  for (const t of [x, weight, bias, up]) t.dispose();
});

Deno.test("linear: mismatched shapes throw naming the tensors", async () => {
  await setupGpu();
  const x = Tensor.empty([4, 6], { name: "features" });
  const weight = Tensor.empty([3, 5], { name: "fc.weight" });
  const bias = Tensor.empty([4], { name: "fc.bias" });
  assert.throws(() => linear(x, weight), /fc\.weight \[3, 5\].*features \[4, 6\]/);
  const goodWeight = Tensor.empty([3, 6], { name: "fc.weight" });
  assert.throws(() => linear(x, goodWeight, bias), /fc\.bias \[4\] must be \(3\)/);
  assert.throws(() => linear(Tensor.empty([2, 3, 6], { name: "map" }), goodWeight), /map \[2, 3, 6\].*2-D/);
  for (const t of [x, weight, bias, goodWeight]) t.dispose();
});

/** Deterministic values in [-1, 1) without a fixture: the GEMM itself is checked against float64 sums. */
function pseudoRandom(n: number, seed: number): Float32Array {
  const values = new Float32Array(n);
  let state = seed;
  for (let i = 0; i < n; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    values[i] = state / 1073741824 - 1;
  }
  return values;
}

Deno.test("matmulKernel: every tile and transpose combination matches a float64 product past one tile", async () => {
  await setupGpu();
  // Larger than the biggest tile in M and N, and a K that is no multiple of any blockK.
  const [M, N, K] = [131, 130, 37];
  const a = pseudoRandom(M * K, 1);
  const b = pseudoRandom(K * N, 2);
  const bias = pseudoRandom(N, 3);
  const expected = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = bias[n];
      for (let k = 0; k < K; k++) sum += a[m * K + k] * b[k * N + n];
      expected[m * N + n] = sum;
    }
  }
  // The same matrices stored transposed, for transA / transB.
  const aT = new Float32Array(M * K);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) aT[k * M + m] = a[m * K + k];
  const bT = new Float32Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) bT[n * K + k] = b[k * N + n];
  const inputs = {
    a: Tensor.fromData(a, [M, K]),
    aT: Tensor.fromData(aT, [K, M]),
    b: Tensor.fromData(b, [K, N]),
    bT: Tensor.fromData(bT, [N, K]),
    bias: Tensor.fromData(bias, [N]),
  };
  const out = Tensor.empty([M, N]);
  for (const tile of MATMUL_TILES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const kernel = matmulKernel({ M, N, K, transA, transB, bias: true, tile });
        const left = transA ? inputs.aT : inputs.a;
        const right = transB ? inputs.bT : inputs.b;
        dispatch(kernel, [left.buffer, right.buffer, inputs.bias.buffer, out.buffer], kernel.workgroups);
        assertClose(await out.readFloat(), expected, FORWARD, kernel.key);
      }
    }
  }
  for (const t of [...Object.values(inputs), out]) t.dispose();
});
