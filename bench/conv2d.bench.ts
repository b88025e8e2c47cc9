/**
 * conv2d throughput at the ResNet-19 CIFAR shapes (batch 16, T = 2, so N = 32): forward, input gradient
 * and weight gradient with the tilings the op uses on this adapter. With CONV2D_SWEEP=1 it also sweeps
 * tile sizes on two shapes (how the defaults in kernels/conv2d.ts were chosen). CONV2D_RUNS sets the timed
 * runs per figure (default 3).
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/conv2d.bench.ts
 */
import {
  conv2dForwardKernel,
  conv2dGradInputKernels,
  conv2dGradWeightKernel,
  convFlops,
  type ConvGeometry,
  type ConvKernel,
  defaultConvTilings,
  type DirectTile,
  type DirectWeightTile,
  type GemmTile,
  outputSize,
} from "../kernels/conv2d.ts";
import { describeAdapter, initGpu } from "../src/gpu/device.ts";
import { dispatch, synchronize } from "../src/gpu/kernels.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

const BATCH = 32;

function shape(cin: number, cout: number, size: number, kernel: number, stride: number): ConvGeometry {
  return { batch: BATCH, cin, cout, height: size, width: size, kernel, stride, pad: kernel === 3 ? 1 : 0 };
}

const SHAPES: ConvGeometry[] = [
  shape(64, 128, 32, 3, 1),
  shape(128, 128, 32, 3, 1),
  shape(128, 256, 32, 3, 2),
  shape(256, 256, 16, 3, 1),
  shape(256, 512, 16, 3, 2),
  shape(512, 512, 8, 3, 1),
  shape(128, 256, 32, 1, 2),
];

function label(g: ConvGeometry): string {
  return `${g.cin}->${g.cout} ${g.height}x${g.width} k${g.kernel} s${g.stride}`;
}

function randomTensor(shape: readonly number[], name: string): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = Math.random() * 2 - 1;
  return Tensor.fromData(data, shape, { name });
}

type PixelTiling = GemmTile | DirectTile;
type WeightTiling = GemmTile | DirectWeightTile;
type Pass = "forward" | "grad input" | "grad weight";
const PASSES: Pass[] = ["forward", "grad input", "grad weight"];

/** Tensors of one shape, and functions that record one pass with a given tiling. */
function workload(g: ConvGeometry) {
  const x = randomTensor([g.batch, g.cin, g.height, g.width], "x");
  const weight = randomTensor([g.cout, g.cin, g.kernel, g.kernel], "weight");
  const gradOut = randomTensor([g.batch, g.cout, ...outputSize(g)], "gradOut");
  const out = Tensor.empty(gradOut.shape, { name: "out" });
  const gradIn = Tensor.empty(x.shape, { name: "gradIn" });
  const gradWeight = Tensor.empty(weight.shape, { name: "gradWeight" });
  const recorder = (kernels: ConvKernel[], buffers: GPUBuffer[]) => () => {
    for (const kernel of kernels) dispatch(kernel, buffers, kernel.workgroups);
  };
  return {
    forward: (t: PixelTiling) => recorder([conv2dForwardKernel(g, t)], [x.buffer, weight.buffer, out.buffer]),
    gradInput: (t: PixelTiling) =>
      recorder(conv2dGradInputKernels(g, t), [gradOut.buffer, weight.buffer, gradIn.buffer]),
    gradWeight: (t: WeightTiling) =>
      recorder([conv2dGradWeightKernel(g, t)], [gradOut.buffer, x.buffer, gradWeight.buffer]),
    dispose() {
      for (const t of [x, weight, gradOut, out, gradIn, gradWeight]) t.dispose();
    },
  };
}

function defaultRuns(g: ConvGeometry, cpu: boolean) {
  const tilings = defaultConvTilings(g, cpu);
  const w = workload(g);
  const passes: Record<Pass, () => void> = {
    forward: w.forward(tilings.forward),
    "grad input": w.gradInput(tilings.gradInput),
    "grad weight": w.gradWeight(tilings.gradWeight),
  };
  return { passes, dispose: w.dispose };
}

function tilingLabel(t: PixelTiling | WeightTiling): string {
  if (t.kind === "gemm") return `gemm ${t.tileM}x${t.tileN}x${t.tileK} thread ${t.threadM}x${t.threadN}`;
  const channels = "channels" in t ? `${t.channels} ch` : `${t.outChannels}x${t.inChannels} ch`;
  return `direct ${channels} ${t.rows}x${t.cols} px wg ${t.workgroup}`;
}

const gpu = await initGpu();
const cpu = gpu.adapter.isFallbackAdapter;
const runs = Number(Deno.env.get("CONV2D_RUNS") ?? 3);
console.log(`conv2d on ${describeAdapter(gpu.adapter)}; tilings for a ${cpu ? "CPU" : "GPU"} adapter`);

const rows: Measurement[] = [];
for (const g of SHAPES) {
  const run = defaultRuns(g, cpu);
  for (const pass of PASSES) {
    rows.push(
      await measure(`${pass.padEnd(11)} ${label(g)}`, { flops: convFlops(g) }, run.passes[pass], runs),
    );
  }
  run.dispose();
}
printTable(`conv2d, N=${BATCH}, default tilings`, rows);

if (Deno.env.get("CONV2D_SWEEP")) {
  const pixelTilings: PixelTiling[] = cpu
    ? [
      { kind: "direct", channels: 8, rows: 4, cols: 8, workgroup: 64 },
      { kind: "direct", channels: 8, rows: 4, cols: 8, workgroup: 16 },
      { kind: "direct", channels: 4, rows: 8, cols: 8, workgroup: 64 },
      { kind: "direct", channels: 16, rows: 4, cols: 4, workgroup: 64 },
      { kind: "direct", channels: 8, rows: 4, cols: 4, workgroup: 64 },
    ]
    : [
      { kind: "gemm", tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 },
      { kind: "gemm", tileM: 64, tileN: 64, tileK: 8, threadM: 4, threadN: 4 },
      { kind: "gemm", tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 4 },
      { kind: "gemm", tileM: 128, tileN: 128, tileK: 8, threadM: 8, threadN: 8 },
      { kind: "gemm", tileM: 32, tileN: 32, tileK: 16, threadM: 4, threadN: 4 },
    ];
  const weightTilings: WeightTiling[] = cpu
    ? [
      { kind: "direct", outChannels: 8, inChannels: 4, rows: 2, cols: 4, workgroup: 16 },
      { kind: "direct", outChannels: 8, inChannels: 4, rows: 2, cols: 4, workgroup: 64 },
      { kind: "direct", outChannels: 8, inChannels: 8, rows: 2, cols: 2, workgroup: 16 },
      { kind: "direct", outChannels: 4, inChannels: 4, rows: 4, cols: 4, workgroup: 16 },
    ]
    : pixelTilings as GemmTile[];
  for (const g of [SHAPES[1], SHAPES[4]]) {
    const w = workload(g);
    const flops = { flops: convFlops(g) };
    const forward: Measurement[] = [];
    const gradInput: Measurement[] = [];
    const gradWeight: Measurement[] = [];
    for (const t of pixelTilings) {
      forward.push(await measure(tilingLabel(t), flops, w.forward(t), runs));
      gradInput.push(await measure(tilingLabel(t), flops, w.gradInput(t), runs));
    }
    for (const t of weightTilings) {
      gradWeight.push(await measure(tilingLabel(t), flops, w.gradWeight(t), runs));
    }
    printTable(`tile sweep: forward ${label(g)}`, forward);
    printTable(`tile sweep: grad input ${label(g)}`, gradInput);
    printTable(`tile sweep: grad weight ${label(g)}`, gradWeight);
    w.dispose();
  }
}

// One registered bench per kernel, at the 128->128 32x32 shape, so `deno bench` lists them.
const benchShape = SHAPES[1];
const benchRuns = defaultRuns(benchShape, cpu);
for (const pass of PASSES) {
  Deno.bench({
    name: `conv2d ${pass} ${label(benchShape)} N=${BATCH}`,
    n: 2,
    warmup: 1,
    async fn() {
      benchRuns.passes[pass]();
      await synchronize();
    },
  });
}
