/**
 * The kernel cache's rule: equal keys mean equal WGSL (src/gpu/kernels.ts compiles a key once). Keys are
 * `kernelKey(family, spec)`; here every kernel family generates WGSL for specifications that differ in
 * one constant at a time, and keys must be equal exactly when the WGSL is. The exceptions: keys also name
 * the constants that only size a kernel's grid (GRID_ONLY), and conv2d's keys name their dispatches too
 * (per-dispatch parameters are cached by key), so there equal WGSL may come under several keys. At run time `checkKernelKeys` makes the
 * cache compare a hit's WGSL with the code compiled under its key.
 */
import assert from "node:assert/strict";
import { kernelKey } from "../kernels/common.ts";
import {
  conv2dForwardPlan,
  conv2dGradInputPlan,
  conv2dGradWeightPlan,
  type ConvGeometry,
  defaultConvTilings,
} from "../kernels/conv2d/mod.ts";
import { accumulateKernel, fillKernel, mapKernel, packHalfKernel } from "../kernels/elementwise.ts";
import { finiteCheckKernel } from "../kernels/finite_check.ts";
import { unscaleKernel, updateScaleKernel } from "../kernels/grad_scaler.ts";
import {
  batchNormEvalStatsKernel,
  batchNormGradInputKernel,
  batchNormGradParamsKernel,
  batchNormGradSumsKernel,
  batchNormNormalizeKernel,
  batchNormStatsKernel,
  batchNormTrainStatsKernel,
} from "../kernels/batch_norm.ts";
import {
  lifBackwardKernel,
  lifForwardKernel,
  lifNormalizedBackwardKernel,
  lifNormalizedForwardKernel,
  type LifSpec,
} from "../kernels/lif.ts";
import {
  crossEntropyBackwardKernel,
  crossEntropyForwardKernel,
  stridedMeanKernel,
  temperatureKlBackwardKernel,
  temperatureKlForwardKernel,
  weightedSumKernel,
} from "../kernels/loss.ts";
import { columnSumKernel, defaultMatmulTile, MATMUL_TILES, matmulKernel } from "../kernels/matmul.ts";
import { activityKernel, addConstantKernel, addScalarKernel, topkCountKernel } from "../kernels/metrics.ts";
import { adamKernel, sgdKernel } from "../kernels/optim.ts";
import { adaptiveAvgPoolBackwardKernel, adaptiveAvgPoolForwardKernel } from "../kernels/pool.ts";
import { surrogateSpec } from "../kernels/surrogates.ts";
import { repeatOverTimeKernel, sumOverTimeKernel } from "../kernels/time.ts";
import { checkKernelKeys, dispatch, type Kernel, synchronize } from "../src/gpu/kernels.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { setupGpu } from "./helpers.ts";

function lifSpecs(): LifSpec[] {
  const base = { neurons: 64, steps: 2, tau: 0.5, threshold: 1, surrogate: surrogateSpec("dspike", {}) };
  return [
    base,
    { ...base, neurons: 65 },
    { ...base, steps: 3 },
    { ...base, tau: 0.25 },
    { ...base, threshold: 0.5 },
    { ...base, surrogate: surrogateSpec("dspike", { gamma: 3 }) },
    { ...base, surrogate: surrogateSpec("dspike", { region: 0.5 }) },
    { ...base, surrogate: surrogateSpec("sigmoid", {}) },
    { ...base, surrogate: surrogateSpec("sigmoid", { alpha: 2 }) },
    { ...base, surrogate: surrogateSpec("atan", {}) },
    { ...base, surrogate: surrogateSpec("sigmoid", {}), smoothForward: true },
  ];
}

/** Kernels of every family except conv2d, for specifications that each change one constant. */
function familyKernels(): Kernel[] {
  const bn = { batch: 8, channels: 4, spatial: 9 };
  const bnShapes = [bn, { ...bn, batch: 9 }, { ...bn, channels: 5 }, { ...bn, spatial: 1 }];
  const pool = { planes: 6, height: 7, width: 7, outHeight: 2, outWidth: 2 };
  const pools = [pool, { ...pool, planes: 7 }, { ...pool, height: 8 }, { ...pool, outWidth: 1 }];
  const sgd = { n: 100, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 5e-4, guarded: false };
  const adam = {
    n: 100,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0.02,
    decoupled: true,
    guarded: false,
  };
  const matmulShapes = [
    { M: 32, N: 10, K: 64 },
    { M: 32, N: 10, K: 64, transA: true },
    { M: 32, N: 10, K: 64, transB: true },
    { M: 32, N: 10, K: 64, bias: true },
    { M: 33, N: 10, K: 64 },
    { M: 32, N: 12, K: 64 },
    { M: 32, N: 10, K: 65 },
  ];
  const normalized = [
    { channels: 4, spatial: 16, residual: false },
    { channels: 4, spatial: 16, residual: true },
    { channels: 8, spatial: 8, residual: false },
  ];
  return [
    ...[[16, 1, "a"], [16, 1, "a * 2.0"], [17, 1, "a"], [16, 2, "a + b"], [16, 2, "a * b"]].map(
      ([n, inputs, expr]) => mapKernel(n as number, inputs as number, expr as string),
    ),
    accumulateKernel(16),
    accumulateKernel(16, 0.5),
    accumulateKernel(17),
    fillKernel(16, 0),
    fillKernel(16, 1),
    fillKernel(16, 1, "i32"),
    fillKernel(17, 0),
    packHalfKernel(16),
    packHalfKernel(17),
    finiteCheckKernel(100),
    finiteCheckKernel(100, { gradients: false }),
    finiteCheckKernel(101),
    unscaleKernel(100),
    unscaleKernel(101),
    updateScaleKernel(2, 0.5, 2000),
    updateScaleKernel(2, 0.5, 1000),
    updateScaleKernel(3, 0.5, 2000),
    updateScaleKernel(2, 0.25, 2000),
    ...[[4, 10], [5, 10], [4, 11]].flatMap(([b, c]) => [
      crossEntropyForwardKernel(b, c),
      crossEntropyBackwardKernel(b, c),
      temperatureKlForwardKernel(b, c, 3),
      temperatureKlBackwardKernel(b, c, 3),
      topkCountKernel(b, c, 0),
    ]),
    temperatureKlForwardKernel(4, 10, 2),
    temperatureKlBackwardKernel(4, 10, 2),
    topkCountKernel(4, 10, 1),
    stridedMeanKernel(8, 1),
    stridedMeanKernel(8, 2),
    stridedMeanKernel(9, 1),
    weightedSumKernel([1, 0.5], false),
    weightedSumKernel([1, 0.5], true),
    weightedSumKernel([1, 0.25], false),
    weightedSumKernel([1, 0.5, 0.5], false),
    addConstantKernel(0, 1),
    addConstantKernel(1, 1),
    addConstantKernel(0, 2),
    addScalarKernel(0, 1),
    addScalarKernel(1, 1),
    addScalarKernel(0, 0.5),
    activityKernel(),
    ...pools.flatMap((s) => [adaptiveAvgPoolForwardKernel(s), adaptiveAvgPoolBackwardKernel(s)]),
    ...[[100, 2, 1], [101, 2, 1], [100, 3, 1], [100, 2, 2]].flatMap(([n, steps, divisor]) => [
      repeatOverTimeKernel(n, steps, divisor),
      sumOverTimeKernel(n, steps, divisor),
    ]),
    sgdKernel(sgd),
    sgdKernel({ ...sgd, n: 101 }),
    sgdKernel({ ...sgd, momentum: 0 }),
    sgdKernel({ ...sgd, momentum: 0.8 }),
    sgdKernel({ ...sgd, dampening: 0.1 }),
    sgdKernel({ ...sgd, nesterov: true }),
    sgdKernel({ ...sgd, weightDecay: 0 }),
    sgdKernel({ ...sgd, guarded: true }),
    adamKernel(adam),
    adamKernel({ ...adam, n: 101 }),
    adamKernel({ ...adam, beta1: 0.8 }),
    adamKernel({ ...adam, beta2: 0.99 }),
    adamKernel({ ...adam, eps: 1e-6 }),
    adamKernel({ ...adam, decoupled: false }),
    adamKernel({ ...adam, decoupled: false, weightDecay: 0 }),
    adamKernel({ ...adam, guarded: true }),
    ...bnShapes.flatMap((s) => [
      batchNormStatsKernel(s),
      batchNormTrainStatsKernel(s, 0.1, 1e-5),
      batchNormNormalizeKernel(s),
      batchNormNormalizeKernel(s, 0.01),
      batchNormGradSumsKernel(s),
      batchNormGradParamsKernel(s),
      batchNormGradInputKernel(s, true),
      batchNormGradInputKernel(s, false),
    ]),
    batchNormTrainStatsKernel(bn, 0.2, 1e-5),
    batchNormTrainStatsKernel(bn, 0.1, 1e-3),
    batchNormNormalizeKernel(bn, 0.1),
    batchNormEvalStatsKernel(4, 1e-5),
    batchNormEvalStatsKernel(5, 1e-5),
    batchNormEvalStatsKernel(4, 1e-3),
    ...lifSpecs().flatMap((spec) => [
      lifForwardKernel(spec, true),
      lifForwardKernel(spec, false),
      lifBackwardKernel(spec),
    ]),
    ...lifSpecs().slice(0, 10).flatMap((spec) =>
      normalized.flatMap((input) => [
        lifNormalizedForwardKernel({ ...spec, neurons: input.channels * input.spatial }, input, false),
        lifNormalizedForwardKernel({ ...spec, neurons: input.channels * input.spatial }, input, true),
        lifNormalizedBackwardKernel({ ...spec, neurons: input.channels * input.spatial }, input),
      ])
    ),
    ...matmulShapes.flatMap((shape) => [
      ...MATMUL_TILES.map((tile) => matmulKernel({ ...shape, tile })),
      matmulKernel({ ...shape, tile: defaultMatmulTile(shape, { threads: 2 }) }),
      matmulKernel({
        ...shape,
        tile: defaultMatmulTile(shape, { threads: 2, uniformA: true, uniformB: true }),
      }),
      matmulKernel({ ...shape, tile: { kind: "direct", threadM: 4, threadN: 2, workgroup: 8 } }),
    ]),
    ...[[32, 10], [32, 12], [33, 10]].flatMap(([rows, cols]) => [
      columnSumKernel(rows, cols),
      columnSumKernel(rows, cols, 2),
      columnSumKernel(rows, cols, 16),
    ]),
  ];
}

/** Every kernel (with its dispatches) of conv2d's three passes, direct and GEMM, at a few geometries. */
function convKernels() {
  const base: ConvGeometry = {
    batch: 4,
    cin: 8,
    cout: 8,
    height: 12,
    width: 12,
    kernel: 3,
    stride: 1,
    pad: 1,
  };
  const geometries: ConvGeometry[] = [
    base,
    { ...base, batch: 5 },
    { ...base, cin: 4 },
    { ...base, cout: 16 },
    { ...base, height: 14, width: 14 },
    { ...base, stride: 2 },
    { ...base, kernel: 1, pad: 0, stride: 2 },
    { ...base, halfOperands: true },
    { ...base, batch: 32, cin: 64, cout: 64, height: 16, width: 16 },
  ];
  return geometries.flatMap((g) =>
    [defaultConvTilings(g, { threads: 2 }), defaultConvTilings(g, { threads: 16 }), defaultConvTilings(g)]
      .flatMap((t) => [
        conv2dForwardPlan(g, t.forward),
        conv2dGradInputPlan(g, t.gradInput),
        conv2dGradWeightPlan(g, t.gradWeight),
      ])
      .flatMap((plan) => plan.kernels)
  );
}

/** Families whose WGSL leaves the batch to the grid it is dispatched on (the kernel's `workgroups`). */
const GRID_ONLY = new Set(["cross_entropy_forward", "temperature_kl_forward"]);

/** Groups `kernels` by key and by WGSL. */
function groups(kernels: readonly Kernel[]) {
  const codeOfKey = new Map<string, Set<string>>();
  const keysOfCode = new Map<string, Set<string>>();
  for (const kernel of kernels) {
    const code = kernel.wgsl();
    if (!codeOfKey.has(kernel.key)) codeOfKey.set(kernel.key, new Set());
    codeOfKey.get(kernel.key)!.add(code);
    if (!keysOfCode.has(code)) keysOfCode.set(code, new Set());
    keysOfCode.get(code)!.add(kernel.key);
  }
  return { codeOfKey, keysOfCode };
}

Deno.test("kernel keys: every family's keys are equal exactly when its WGSL is", () => {
  const kernels = familyKernels();
  const { codeOfKey, keysOfCode } = groups(kernels);
  for (const [key, codes] of codeOfKey) {
    assert.equal(codes.size, 1, `key ${key} names ${codes.size} WGSL sources`);
  }
  for (const keys of keysOfCode.values()) {
    const families = new Set([...keys].map((key) => key.slice(0, key.indexOf("{"))));
    if (keys.size > 1 && [...families].every((family) => GRID_ONLY.has(family))) continue;
    assert.equal(keys.size, 1, `one WGSL source under ${keys.size} keys: ${[...keys].join(" and ")}`);
  }
  // Each specification above changes one constant that shows in the WGSL.
  assert.ok(keysOfCode.size > 150, `${keysOfCode.size} distinct kernels`);
});

Deno.test("kernel keys: conv2d keys name one WGSL source and one list of dispatches", () => {
  const kernels = convKernels();
  const dispatchesOfKey = new Map<string, string>();
  for (const kernel of kernels) {
    const dispatches = JSON.stringify([kernel.buffers, kernel.dispatches]);
    const known = dispatchesOfKey.get(kernel.key);
    assert.ok(known === undefined || known === dispatches, `key ${kernel.key} names two dispatch lists`);
    dispatchesOfKey.set(kernel.key, dispatches);
  }
  const { codeOfKey } = groups(kernels);
  for (const [key, codes] of codeOfKey) {
    assert.equal(codes.size, 1, `key ${key} names ${codes.size} WGSL sources`);
  }
  assert.ok(codeOfKey.size > 100, `${codeOfKey.size} distinct conv2d kernels`);
});

Deno.test("kernelKey: field order does not matter, undefined fields are left out, -0 is not 0", () => {
  assert.equal(
    kernelKey("f", { a: 1, b: { c: [1, 2], d: "x" } }),
    kernelKey("f", { b: { d: "x", c: [1, 2] }, a: 1 }),
  );
  assert.equal(kernelKey("f", { a: 1, b: undefined }), kernelKey("f", { a: 1 }));
  assert.notEqual(kernelKey("f", { a: 0 }), kernelKey("f", { a: -0 }));
  assert.notEqual(kernelKey("f", { a: [1, 2] }), kernelKey("f", { a: [12] }));
  assert.notEqual(kernelKey("f", { a: "1" }), kernelKey("f", { a: 1 }));
  assert.notEqual(kernelKey("f", { a: 1 }), kernelKey("g", { a: 1 }));
  assert.throws(() => kernelKey("f", { a: () => 1 }), /kernel specification f\.a holds a function/);
});

Deno.test("checkKernelKeys: a key reused for other WGSL is an error at dispatch", async () => {
  await setupGpu();
  checkKernelKeys(true);
  const out = Tensor.empty([16], { name: "out" });
  try {
    const fill = fillKernel(16, 1);
    dispatch(fill, [out.buffer], fill.workgroups);
    dispatch(fillKernel(16, 1), [out.buffer], fill.workgroups);
    const forged = { ...fillKernel(16, 2), key: fill.key };
    assert.throws(
      () => dispatch(forged, [out.buffer], forged.workgroups),
      /names two different WGSL sources/,
    );
    await synchronize();
    assert.deepEqual([...await out.readFloat()], Array(16).fill(1));
  } finally {
    checkKernelKeys(false);
    out.dispose();
  }
});
