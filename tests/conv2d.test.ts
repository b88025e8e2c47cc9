import assert from "node:assert/strict";
import {
  conv2dForwardPlan,
  conv2dGradInputPlan,
  conv2dGradWeightPlan,
  type ConvGeometry,
  type ConvPlan,
  defaultConvTilings,
  type DirectTile,
  type DirectWeightTile,
  type GemmTile,
  outputSize,
} from "../kernels/conv2d/mod.ts";
import { conv2d, dispatchConvPlan } from "../src/ops/conv2d.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertPlansMatch } from "./conv_plan_check.ts";
import { assertClose, checkOp, Fixture, FORWARD, GRADIENT, setupGpu, TestRng } from "./helpers.ts";

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
    await checkOp(f, {
      inputs: ["x", "weight"],
      grads: { x: "grad_x", weight: "grad_weight" },
      up: "up",
      run: ({ x, weight }) => ({ out: conv2d(x, weight, optionsOf(f)) }),
    });
  });
}

Deno.test("conv2d: only the inputs that require grad get a gradient", async () => {
  await setupGpu();
  const f = await Fixture.load("conv2d_k3_s2");
  for (const which of ["x", "weight"] as const) {
    await checkOp(f, {
      inputs: ["x", "weight"],
      grads: { [which]: `grad_${which}` },
      up: "up",
      run: ({ x, weight }) => ({ out: conv2d(x, weight, optionsOf(f)) }),
    });
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
    pixels: { kind: "direct", channels: 3, rows: 2, cols: 3, workgroup: 8, windowBytes: 0 },
    weights: {
      kind: "direct",
      outChannels: 5,
      inChannels: 3,
      rows: 3,
      cols: 2,
      workgroup: 4,
      splits: 1,
      windowBytes: 0,
    },
  },
  {
    pixels: { kind: "direct", channels: 5, rows: 4, cols: 1, workgroup: 16, windowBytes: 0 },
    weights: {
      kind: "direct",
      outChannels: 2,
      inChannels: 7,
      rows: 1,
      cols: 5,
      workgroup: 8,
      splits: 1,
      windowBytes: 0,
    },
  },
);

// Direct blocks through uniform windows: in the large fixtures a sample of x (2,304 elements) fits a
// 16 KiB window but not an 8 KiB one, and the forward weights take three 8 KiB windows of output channels.
TILINGS.push(
  {
    pixels: { kind: "direct", channels: 5, rows: 2, cols: 3, workgroup: 8, windowBytes: 8192 },
    weights: {
      kind: "direct",
      outChannels: 5,
      inChannels: 3,
      rows: 3,
      cols: 2,
      workgroup: 8,
      splits: 3,
      windowBytes: 16384,
    },
  },
  {
    pixels: { kind: "direct", channels: 3, rows: 4, cols: 1, workgroup: 16, windowBytes: 16384 },
    weights: {
      kind: "direct",
      outChannels: 2,
      inChannels: 7,
      rows: 1,
      cols: 5,
      workgroup: 8,
      splits: 2,
      windowBytes: 8192,
    },
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
      await assertPlansMatch(f, geometry, [pixels, weights], { x, weight, up });
    }
    for (const t of [x, weight, up]) t.dispose();
  });
}

/** Values in [-1, 1). */
function values(count: number, seed: number): Float32Array {
  return new TestRng(seed).uniforms(count);
}

/** Output, input gradient and weight gradient for upstream gradient `up`, accumulated in f64. */
function referenceConv(g: ConvGeometry, x: Float32Array, weight: Float32Array, up: Float32Array) {
  const { batch, cin, cout, height, width, kernel, stride, pad } = g;
  const [outH, outW] = outputSize(g);
  const out = new Float64Array(batch * cout * outH * outW);
  const gradX = new Float64Array(x.length);
  const gradWeight = new Float64Array(weight.length);
  for (let n = 0; n < batch; n++) {
    for (let co = 0; co < cout; co++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          const o = ((n * cout + co) * outH + oy) * outW + ox;
          for (let ci = 0; ci < cin; ci++) {
            for (let ky = 0; ky < kernel; ky++) {
              for (let kx = 0; kx < kernel; kx++) {
                const iy = oy * stride - pad + ky;
                const ix = ox * stride - pad + kx;
                if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
                const xi = ((n * cin + ci) * height + iy) * width + ix;
                const wi = ((co * cin + ci) * kernel + ky) * kernel + kx;
                out[o] += weight[wi] * x[xi];
                gradX[xi] += weight[wi] * up[o];
                gradWeight[wi] += up[o] * x[xi];
              }
            }
          }
        }
      }
    }
  }
  return { out, gradX, gradWeight };
}

interface WindowCase {
  geometry: ConvGeometry;
  pixels: DirectTile;
  weights: DirectWeightTile;
}

function geometry(
  batch: number,
  cin: number,
  cout: number,
  [height, width]: [number, number],
  [kernel, stride, pad]: [number, number, number],
): ConvGeometry {
  return { batch, cin, cout, height, width, kernel, stride, pad };
}

function pixelTile(channels: number, rows: number, cols: number, windowBytes: number): DirectTile {
  return { kind: "direct", channels, rows, cols, workgroup: 8, windowBytes };
}

function weightTile(
  [outChannels, inChannels]: [number, number],
  [rows, cols]: [number, number],
  splits: number,
  windowBytes: number,
): DirectWeightTile {
  return { kind: "direct", outChannels, inChannels, rows, cols, workgroup: 8, splits, windowBytes };
}

/**
 * Windows far smaller than the 64 KiB default, so tiny tensors span many of them: samples and weight
 * rows that start off the 256-byte binding alignment, last windows moved back to end with the buffer,
 * weights larger than one window (forward: by output channel; input gradient: transposed, by input
 * channel), operands too large for a window read from storage, odd channel counts that overhang the
 * blocks, stride-2 phases (with and without kernel taps), and weight-gradient partial sums from several
 * sample groups and splits added through several windows or from storage.
 */
const WINDOW_CASES: WindowCase[] = [
  {
    geometry: geometry(5, 3, 7, [9, 7], [3, 1, 1]),
    pixels: pixelTile(3, 2, 4, 1024),
    weights: weightTile([3, 2], [2, 3], 3, 2048),
  },
  {
    geometry: geometry(5, 3, 7, [9, 7], [3, 1, 1]),
    pixels: { ...pixelTile(1, 4, 2, 512), workgroup: 16 },
    weights: weightTile([5, 3], [1, 4], 16, 512),
  },
  {
    geometry: geometry(4, 5, 3, [8, 9], [3, 2, 1]),
    pixels: pixelTile(2, 2, 3, 2048),
    weights: weightTile([2, 5], [2, 2], 2, 1024),
  },
  {
    geometry: geometry(3, 4, 6, [7, 7], [1, 2, 0]),
    pixels: pixelTile(4, 1, 2, 512),
    weights: weightTile([4, 4], [2, 2], 5, 512),
  },
  {
    geometry: geometry(2, 2, 3, [7, 8], [5, 2, 2]),
    pixels: pixelTile(3, 2, 2, 1024),
    weights: weightTile([3, 1], [2, 2], 4, 1024),
  },
  {
    // 8x8 planes (256 bytes): every channel range starts on a binding boundary, so a 1 KiB window holds
    // 4 whole channels.
    geometry: geometry(2, 8, 8, [8, 8], [3, 1, 1]),
    pixels: pixelTile(3, 4, 2, 1024),
    weights: weightTile([3, 2], [2, 2], 2, 1024),
  },
];

function runPlan(plan: ConvPlan, operands: Record<string, Tensor>, output: Tensor): Promise<Float32Array> {
  dispatchConvPlan(plan, Object.fromEntries(Object.entries(operands).map(([role, t]) => [role, t.buffer])));
  return output.readFloat();
}

for (const [index, { geometry: g, pixels, weights }] of WINDOW_CASES.entries()) {
  Deno.test(`conv2d direct kernels through uniform windows, case ${index}: match a CPU reference`, async () => {
    await setupGpu();
    const [outH, outW] = outputSize(g);
    const xData = values(g.batch * g.cin * g.height * g.width, 1 + index);
    const weightData = values(g.cout * g.cin * g.kernel * g.kernel, 100 + index);
    const upData = values(g.batch * g.cout * outH * outW, 200 + index);
    const expected = referenceConv(g, xData, weightData, upData);
    const x = Tensor.fromData(xData, [g.batch, g.cin, g.height, g.width], { name: "x" });
    const weight = Tensor.fromData(weightData, [g.cout, g.cin, g.kernel, g.kernel], { name: "weight" });
    const gradOut = Tensor.fromData(upData, [g.batch, g.cout, outH, outW], { name: "gradOut" });
    const out = Tensor.empty(gradOut.shape, { name: "out" });
    const gradIn = Tensor.empty(x.shape, { name: "gradIn" });
    const gradWeight = Tensor.empty(weight.shape, { name: "gradWeight" });
    const what = `${JSON.stringify(g)} with ${JSON.stringify(pixels)} ${JSON.stringify(weights)}`;
    assertClose(
      await runPlan(conv2dForwardPlan(g, pixels), { x, weight, out }, out),
      expected.out,
      FORWARD,
      `out ${what}`,
    );
    assertClose(
      await runPlan(conv2dGradInputPlan(g, pixels), { gradOut, weight, gradIn }, gradIn),
      expected.gradX,
      GRADIENT,
      `grad_x ${what}`,
    );
    assertClose(
      await runPlan(conv2dGradWeightPlan(g, weights), { gradOut, x, gradWeight }, gradWeight),
      expected.gradWeight,
      GRADIENT,
      `grad_weight ${what}`,
    );
    for (const t of [x, weight, gradOut, out, gradIn, gradWeight]) t.dispose();
  });
}

/** Per role of a plan's kernel: the byte ranges its dispatches bind, or "storage" for whole buffers. */
function bindings(plan: ConvPlan, kernel: number): Record<string, string[] | "storage"> {
  const { buffers, dispatches } = plan.kernels[kernel];
  return Object.fromEntries(buffers.map((role, i) => {
    const ranges = dispatches.map((d) => d.ranges[i]);
    return [
      role,
      ranges.every((r) => r === undefined)
        ? "storage"
        : ranges.map((r) => (r ? `${r.offset}+${r.size}` : "whole")),
    ];
  }));
}

Deno.test("conv2d direct plans: window placement of the first window case", () => {
  const { geometry: g, pixels, weights } = WINDOW_CASES[0];
  // x: one sample (189 floats) per 1 KiB window, each bound from the 256-byte boundary below it; the
  // weights (756 bytes) are one window; out is written through storage, one dispatch per sample.
  assert.deepEqual(bindings(conv2dForwardPlan(g, pixels), 0), {
    x: ["0+1024", "512+1024", "1280+1024", "2048+1024", "2816+1024"],
    weight: Array(5).fill("0+768"),
    out: "storage",
  });
  const gradWeight = conv2dGradWeightPlan(g, weights);
  // 3 splits x 5 sample groups = 15 partial sums per weight; the reduction reads 29 weights' partials per
  // window, and its last window is moved back to end with the 11,340-byte (11,520 pooled) buffer.
  assert.equal(gradWeight.scratch.partials, 15 * 189);
  const reduce = bindings(gradWeight, 1).partials as string[];
  assert.equal(reduce.length, 7);
  assert.equal(reduce.at(-1), "9472+2048");
  // Input gradient: a sample of gradOut (7 channels of 63 floats) does not fit a 1 KiB window (193 floats
  // from any start), 3 channels do: each dispatch reduces over channels 0-2, 3-5 or 6 of one sample and
  // adds to what the earlier ranges stored. The blocked, transposed weights hold 3 ranges of 3 input
  // channels x 3 output channels x 9 taps (243 floats, 1,024 bytes pooled): a range's are one window, the
  // last two moved back to end with the buffer.
  const gradInput = conv2dGradInputPlan(g, pixels);
  assert.equal(gradInput.scratch.weightBlocks, 243);
  assert.deepEqual(gradInput.kernels.map((k) => k.buffers), [["weight", "weightBlocks"], [
    "gradOut",
    "weightBlocks",
    "gradIn",
  ]]);
  const placement = bindings(gradInput, 1);
  assert.equal(placement.gradIn, "storage");
  assert.deepEqual(placement.weightBlocks, Array(5).fill(["0+768", "256+768", "256+768"]).flat());
  // Sample 0's ranges start at elements 0, 189, 378 (bytes 0, 756, 1512), sample 1's at 441 (1764).
  assert.deepEqual((placement.gradOut as string[]).slice(0, 4), [
    "0+1024",
    "512+1024",
    "1280+1024",
    "1536+1024",
  ]);
  const ranges = gradInput.kernels[1].dispatches.slice(0, 4).map((d) => d.params!.slice(5));
  assert.deepEqual(ranges, [[0, 3, 0], [3, 6, 1], [6, 7, 1], [0, 3, 0]], "coStart, coEnd, accumulate");
});

Deno.test("conv2d direct plans: weights larger than a window are split by channel ranges", () => {
  const { geometry: g, pixels } = WINDOW_CASES[1];
  // A 512-byte window holds one 63-float channel of x (65 floats from any start), so each sample's 3
  // channels take 3 passes. Each pass reads its input channel's weights from the blocked copy (per input
  // channel, 7 output channels x 9 taps): all 7 output channels in one window, where the unblocked
  // weights (27 floats per output channel) would take 4 windows per pass.
  const forwardPlan = conv2dForwardPlan(g, pixels);
  assert.deepEqual(forwardPlan.kernels.map((k) => k.buffers), [["weight", "weightBlocks"], [
    "x",
    "weightBlocks",
    "out",
  ]]);
  const forward = bindings(forwardPlan, 1);
  assert.deepEqual(forward.weightBlocks, Array(5).fill(["0+512", "0+512", "256+512"]).flat());
  assert.deepEqual((forward.x as string[]).slice(0, 4), ["0+512", "0+512", "256+512", "512+512"]);
  assert.equal(forward.out, "storage");
  // Blocked and transposed, 27 floats per output channel (3 input channels x 9 taps): one window per
  // channel of gradOut, 7 passes per sample.
  const gradInput = bindings(conv2dGradInputPlan(g, pixels), 1);
  assert.deepEqual(
    gradInput.weightBlocks,
    Array(5).fill(["0+512", "0+512", "0+512", "256+512", "256+512", "256+512", "256+512"]).flat(),
  );
  assert.equal((gradInput.gradOut as string[]).length, 35);
  // Weight gradient: one 63-float channel of gradOut and of x per dispatch (7 x 3 per sample), each
  // sample's sums added to the earlier samples' (accumulate 1 from sample 1 on); one partial sum per split.
  const gradWeight = conv2dGradWeightPlan(g, WINDOW_CASES[1].weights);
  assert.equal(gradWeight.kernels[0].dispatches.length, 105);
  assert.equal(gradWeight.scratch.partials, 16 * 189);
  assert.deepEqual(
    gradWeight.kernels[0].dispatches.slice(20, 22).map((d) => d.params!.slice(4)),
    [[6, 7, 2, 3, 1, 16, 0], [0, 1, 0, 1, 1, 16, 1]],
    "coStart, coEnd, ciStart, ciEnd, inBlocks, lanes, accumulate",
  );
});

Deno.test("conv2d direct plans: channel ranges on binding boundaries fill their windows", () => {
  const { geometry: g, pixels, weights } = WINDOW_CASES[5];
  // 8 channels of 64 floats per sample: 4 per 1 KiB window, where a window that may start off a boundary
  // holds 193 floats (3 channels). Each range is bound from its own first byte, 1,024 bytes long, once
  // per window of 3 output channels' blocked weights (4 x 9 floats each).
  const ranges = ["0+1024", "1024+1024", "2048+1024", "3072+1024"];
  const thrice = ranges.flatMap((r) => [r, r, r]);
  const forward = conv2dForwardPlan(g, pixels);
  assert.deepEqual(bindings(forward, 1).x, thrice);
  assert.deepEqual(
    forward.kernels[1].dispatches.slice(0, 6).map((d) => d.params!.slice(4)),
    [[0, 0, 4, 0], [3, 0, 4, 0], [6, 0, 4, 0], [0, 4, 8, 1], [3, 4, 8, 1], [6, 4, 8, 1]],
    "coBase, ciStart, ciEnd, accumulate",
  );
  assert.deepEqual(bindings(conv2dGradInputPlan(g, pixels), 1).gradOut, thrice);
  // Weight gradient: 2 x 2 pairs of 4-channel ranges of gradOut and x per sample.
  const gradWeight = conv2dGradWeightPlan(g, weights);
  const placement = bindings(gradWeight, 0);
  assert.deepEqual(placement.gradOut, ranges.flatMap((r) => [r, r]));
  assert.deepEqual(placement.x, [
    ranges[0],
    ranges[1],
    ranges[0],
    ranges[1],
    ranges[2],
    ranges[3],
    ranges[2],
    ranges[3],
  ]);
  assert.deepEqual(
    gradWeight.kernels[0].dispatches.slice(2, 5).map((d) => d.params!.slice(4, 8)),
    [[4, 8, 0, 4], [4, 8, 4, 8], [0, 4, 0, 4]],
    "coStart, coEnd, ciStart, ciEnd",
  );
});

Deno.test("conv2d CPU tilings: the default network's 28x28 convolution is windowed and keeps both threads busy", () => {
  const g = geometry(32, 8, 8, [28, 28], [3, 1, 1]);
  const tilings = defaultConvTilings(g, { threads: 2 });
  const plans = [
    conv2dForwardPlan(g, tilings.forward),
    conv2dGradInputPlan(g, tilings.gradInput),
    conv2dGradWeightPlan(g, tilings.gradWeight),
  ];
  // The main kernel of each pass (the input gradient's runs after the weight transposition).
  const main = [plans[0].kernels[0], plans[1].kernels[1], plans[2].kernels[0]];
  for (const [i, kernel] of main.entries()) {
    const [first, second] = Object.values(bindings(plans[i], plans[i].kernels.indexOf(kernel)));
    assert.ok(Array.isArray(first) && Array.isArray(second), `${kernel.key} reads from storage`);
    for (const { workgroups: [x, y, z] } of kernel.dispatches) {
      assert.ok(x * y * z >= 2, `${kernel.key} has a dispatch of ${x * y * z} workgroup(s)`);
    }
  }
});

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
