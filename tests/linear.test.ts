import assert from "node:assert/strict";
import {
  columnSumKernel,
  defaultMatmulTile,
  type DirectMatmulTile,
  MATMUL_TILES,
  matmulKernel,
  type MatmulTile,
} from "../kernels/matmul.ts";
import { gpu } from "../src/gpu/device.ts";
import { dispatch } from "../src/gpu/kernels.ts";
import { linear } from "../src/ops/linear.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertClose, checkOp, Fixture, FORWARD, setupGpu, TestRng } from "./helpers.ts";

for (const label of ["odd", "batch1", "nobias"]) {
  Deno.test(`linear ${label}: output and gradients of x, W, b match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`linear_${label}`);
    const withBias = f.arrays.has("bias");
    await checkOp(f, {
      inputs: withBias ? ["x", "weight", "bias"] : ["x", "weight"],
      grads: { x: "grad_x", weight: "grad_weight", ...withBias ? { bias: "grad_bias" } : {} },
      up: "up",
      run: ({ x, weight, bias }) => ({ out: linear(x, weight, bias) }),
    });
  });
}

Deno.test("linear: only the inputs that require grad get gradients", async () => {
  await setupGpu();
  const f = await Fixture.load("linear_odd");
  await checkOp(f, {
    inputs: ["x", "weight", "bias"],
    grads: { weight: "grad_weight" },
    up: "up",
    run: ({ x, weight, bias }) => ({ out: linear(x, weight, bias) }),
  });
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

/** Values in [-1, 1) without a fixture: the GEMM itself is checked against float64 sums. */
function pseudoRandom(n: number, seed: number): Float32Array<ArrayBuffer> {
  return new TestRng(seed).uniforms(n);
}

/** A, B (and both stored transposed) and bias on the GPU, with the float64 products of every combination. */
function gemmCase(M: number, N: number, K: number) {
  const a = pseudoRandom(M * K, 1);
  const b = pseudoRandom(K * N, 2);
  const bias = pseudoRandom(N, 3);
  const aT = new Float32Array(M * K);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) aT[k * M + m] = a[m * K + k];
  const bT = new Float32Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) bT[n * K + k] = b[k * N + n];
  const product = (withBias: boolean) => {
    const expected = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let sum = withBias ? bias[n] : 0;
        for (let k = 0; k < K; k++) sum += a[m * K + k] * b[k * N + n];
        expected[m * N + n] = sum;
      }
    }
    return expected;
  };
  const tensors = {
    a: Tensor.fromData(a, [M, K]),
    aT: Tensor.fromData(aT, [K, M]),
    b: Tensor.fromData(b, [K, N]),
    bT: Tensor.fromData(bT, [N, K]),
    bias: Tensor.fromData(bias, [N]),
    out: Tensor.empty([M, N]),
  };
  // Copies the direct kernel may bind as uniforms (whatever usage the tensor pool gives its buffers).
  const uniforms = { a: uniformBuffer(a), aT: uniformBuffer(aT), b: uniformBuffer(b), bT: uniformBuffer(bT) };
  return {
    expected: { bias: product(true), plain: product(false) },
    /** Runs the GEMM with `tile` in every transpose combination and checks each against float64. */
    async check(tile: MatmulTile, withBias: boolean[] = [false, true]) {
      const uniformA = tile.kind === "direct" && !!tile.uniformA;
      const uniformB = tile.kind === "direct" && !!tile.uniformB;
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const bias of withBias) {
            const kernel = matmulKernel({ M, N, K, transA, transB, bias, tile });
            const a = transA ? "aT" : "a";
            const b = transB ? "bT" : "b";
            const left = uniformA ? uniforms[a] : tensors[a].buffer;
            const right = uniformB ? uniforms[b] : tensors[b].buffer;
            const buffers = bias
              ? [left, right, tensors.bias.buffer, tensors.out.buffer]
              : [left, right, tensors.out.buffer];
            dispatch(kernel, buffers, kernel.workgroups);
            const expected = bias ? this.expected.bias : this.expected.plain;
            assertClose(await tensors.out.readFloat(), expected, FORWARD, kernel.key);
          }
        }
      }
    },
    dispose() {
      for (const t of Object.values(tensors)) t.dispose();
      for (const buffer of Object.values(uniforms)) buffer.destroy();
    },
  };
}

/** A buffer holding `values` that can be bound as a uniform or as storage. */
function uniformBuffer(values: Float32Array<ArrayBuffer>): GPUBuffer {
  const { device } = gpu();
  const buffer = device.createBuffer({
    size: Math.ceil(values.byteLength / 16) * 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, values);
  return buffer;
}

function direct(
  threadM: number,
  threadN: number,
  workgroup: number,
  uniforms: Partial<Pick<DirectMatmulTile, "uniformA" | "uniformB">> = {},
): DirectMatmulTile {
  return { kind: "direct", threadM, threadN, workgroup, ...uniforms };
}

Deno.test("matmulKernel: every shared tile and transpose combination matches float64 past one tile", async () => {
  await setupGpu();
  // Larger than the biggest tile in M and N, and a K that is no multiple of any blockK.
  const gemm = gemmCase(131, 130, 37);
  for (const tile of MATMUL_TILES) await gemm.check(tile, [true]);
  gemm.dispose();
});

Deno.test("matmulKernel direct: edge blocks of odd sizes match float64 in every transpose combination", async () => {
  await setupGpu();
  // 7 x 13 x 5: no side divides by a block, so 3x5 blocks overhang both sides of C and 8x14 is larger
  // than the whole of it. Workgroups of 2 and 4 leave idle threads past the last block.
  const gemm = gemmCase(7, 13, 5);
  for (const tile of [direct(1, 1, 1), direct(3, 5, 2)]) await gemm.check(tile);
  await gemm.check(direct(8, 14, 4), [true]);
  gemm.dispose();
});

Deno.test("matmulKernel direct: operands read through uniforms match float64 at odd sizes", async () => {
  await setupGpu();
  // Uniform arrays hold vec4s: scalars are read by component, so odd sizes exercise every component.
  const gemm = gemmCase(7, 13, 5);
  await gemm.check(direct(3, 5, 2, { uniformA: true, uniformB: true }));
  await gemm.check(direct(2, 3, 4, { uniformA: true }), [true]);
  await gemm.check(direct(2, 3, 4, { uniformB: true }), [true]);
  gemm.dispose();
  // Sides divisible by 4: A transposed and B plain are read as uniform vec4s.
  const vectors = gemmCase(12, 20, 6);
  await vectors.check(direct(8, 8, 8, { uniformA: true, uniformB: true }), [true]);
  vectors.dispose();
});

Deno.test("matmulKernel direct: vec4 loads and stores with overhanging blocks match float64", async () => {
  await setupGpu();
  // Sides divisible by 4 read A (transposed) and B (plain) and write C four lines at a time; 8x8 blocks
  // overhang 12 rows and 20 columns, so the last vec4 groups are clamped on load and skipped on store.
  const gemm = gemmCase(12, 20, 6);
  await gemm.check(direct(8, 8, 8));
  gemm.dispose();
});

Deno.test("defaultMatmulTile: shared tiles on GPUs, direct blocks sized for the CPU threads", () => {
  assert.equal(defaultMatmulTile({ M: 32, N: 512, K: 64 }).kind, "shared");
  const cpu = (threads: number) => ({ threads });
  // Enough outputs: the largest block within the accumulator limit, whole SIMD groups per workgroup.
  assert.deepEqual(
    defaultMatmulTile({ M: 512, N: 64, K: 32 }, cpu(2)),
    direct(16, 16, 8, { uniformA: false, uniformB: false }),
  );
  // A 32 x 10 classifier output: few blocks, each reducing all 512 k, but at least one per CPU thread.
  const lanes = (tile: DirectMatmulTile, M: number, N: number) =>
    Math.ceil(M / tile.threadM) * Math.ceil(N / tile.threadN);
  const narrow = defaultMatmulTile({ M: 32, N: 10, K: 512 }, cpu(2)) as DirectMatmulTile;
  const { workgroups } = matmulKernel({ M: 32, N: 10, K: 512, tile: narrow });
  assert.ok(workgroups[0] * workgroups[1] >= 2 && lanes(narrow, 32, 10) <= 8, JSON.stringify(narrow));
  // More threads get smaller blocks.
  const wide = defaultMatmulTile({ M: 32, N: 10, K: 512 }, cpu(16)) as DirectMatmulTile;
  assert.ok(lanes(wide, 32, 10) > lanes(narrow, 32, 10), JSON.stringify(wide));
  // Only very large products may spend the compile time of bigger blocks; tiny ones keep small blocks.
  const large = defaultMatmulTile({ M: 1600, N: 4096, K: 4096 }, cpu(2)) as DirectMatmulTile;
  assert.ok(large.threadM * large.threadN > 256, JSON.stringify(large));
  const tiny = defaultMatmulTile({ M: 7, N: 13, K: 5 }, cpu(2)) as DirectMatmulTile;
  assert.ok(tiny.threadM * tiny.threadN <= 16, JSON.stringify(tiny));
  // Operands are read through uniforms where the caller allows it and they fit 64 KiB: here A (32 x 64)
  // does and B (512 x 64) does not, which makes tall blocks that share each B load among more rows pay.
  const forward = { M: 32, N: 512, K: 64, transB: true };
  const mixed = defaultMatmulTile(forward, {
    threads: 2,
    uniformA: true,
    uniformB: true,
  }) as DirectMatmulTile;
  assert.equal(mixed.uniformA, true);
  assert.equal(mixed.uniformB, false);
  assert.ok(mixed.threadM > mixed.threadN, JSON.stringify(mixed));
});

Deno.test("matmulKernel: rejects bad sizes and tiles", () => {
  assert.throws(() => matmulKernel({ M: 0, N: 4, K: 4 }), /M must be a positive integer/);
  assert.throws(() => matmulKernel({ M: 4, N: 4, K: 4, tile: direct(2, 2, 512) }), /direct tile/);
  assert.throws(() => matmulKernel({ M: 4, N: 4, K: 4, tile: direct(0, 2, 8) }), /direct tile/);
  assert.throws(
    () => matmulKernel({ M: 128, N: 4, K: 129, tile: direct(4, 4, 8, { uniformA: true }) }),
    /A \(16512 floats\) is too large for a uniform binding/,
  );
});

Deno.test("columnSumKernel: shared and direct sums match float64 with and without vec4 columns", async () => {
  await setupGpu();
  for (const [rows, cols] of [[7, 13], [5, 12], [33, 4]]) {
    const values = pseudoRandom(rows * cols, 4);
    const expected = new Float64Array(cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) expected[c] += values[r * cols + c];
    const src = Tensor.fromData(values, [rows, cols]);
    const out = Tensor.empty([cols]);
    for (const cpuThreads of [undefined, 1, 2]) {
      const kernel = columnSumKernel(rows, cols, cpuThreads);
      dispatch(kernel, [src.buffer, out.buffer], kernel.workgroups);
      assertClose(await out.readFloat(), expected, FORWARD, kernel.key);
    }
    src.dispose();
    out.dispose();
  }
});
