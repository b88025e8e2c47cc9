/**
 * conv2d throughput: forward, input gradient and weight gradient with the tilings the op uses on this
 * adapter, at the shapes of the default `npm run train` network (spiking ResNet-18 width 8 with its
 * surrogate modules, batch 32, 28x28 MNIST) and of ResNet-19 on CIFAR (batch 16, T = 2, so N = 32).
 * CONV2D_SHAPES=mnist|resnet19 limits it to one set; CONV2D_RUNS sets the timed runs per figure (default
 * 3). With CONV2D_SWEEP=1 it also sweeps tilings on three shapes (how the defaults were checked).
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/conv2d.bench.ts
 */
import {
  conv2dForwardPlan,
  conv2dGradInputPlan,
  conv2dGradWeightPlan,
  convFlops,
  type ConvGeometry,
  type ConvPlan,
  defaultConvTilings,
  type DirectTile,
  type DirectWeightTile,
  type GemmTile,
  outputSize,
} from "../kernels/conv2d/mod.ts";
import { type SoftwareTarget, UNIFORM_WINDOW_BYTES } from "../kernels/target.ts";
import { describeAdapter, initGpu } from "../src/gpu/device.ts";
import { synchronize } from "../src/gpu/kernels.ts";
import { dispatchConvPlan } from "../src/ops/conv2d.ts";
import { softwareTarget } from "../src/ops/target.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

const BATCH = 32;

function shape(
  cin: number,
  cout: number,
  size: number,
  kernel: number,
  stride: number,
  pad = Math.floor(kernel / 2),
): ConvGeometry {
  return { batch: BATCH, cin, cout, height: size, width: size, kernel, stride, pad };
}

const MNIST_SHAPES: ConvGeometry[] = [
  shape(1, 8, 28, 3, 1),
  shape(8, 8, 28, 3, 1),
  shape(8, 16, 28, 3, 2),
  shape(8, 16, 28, 1, 2),
  shape(16, 16, 14, 3, 1),
  shape(16, 32, 14, 3, 2),
  shape(32, 32, 7, 3, 1),
  shape(32, 64, 7, 3, 2),
  shape(64, 64, 4, 3, 1),
  shape(16, 16, 14, 7, 2),
];

const RESNET19_SHAPES: ConvGeometry[] = [
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
  const operands = {
    x: x.buffer,
    weight: weight.buffer,
    out: out.buffer,
    gradOut: gradOut.buffer,
    gradIn: gradIn.buffer,
    gradWeight: gradWeight.buffer,
  };
  const recorder = (plan: ConvPlan) => () => dispatchConvPlan(plan, operands);
  return {
    forward: (t: PixelTiling) => recorder(conv2dForwardPlan(g, t)),
    gradInput: (t: PixelTiling) => recorder(conv2dGradInputPlan(g, t)),
    gradWeight: (t: WeightTiling) => recorder(conv2dGradWeightPlan(g, t)),
    dispose() {
      for (const t of [x, weight, gradOut, out, gradIn, gradWeight]) t.dispose();
    },
  };
}

function defaultRuns(g: ConvGeometry, software: SoftwareTarget | undefined) {
  const tilings = defaultConvTilings(g, software);
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
  const splits = "splits" in t ? ` split ${t.splits}` : "";
  const windows = t.windowBytes ? `windows ${t.windowBytes / 1024} KiB` : "storage";
  return `direct ${channels} ${t.rows}x${t.cols} px wg ${t.workgroup}${splits} ${windows}`;
}

const gpu = await initGpu();
const software = softwareTarget();
const cpu = software !== undefined;
const runs = Number(Deno.env.get("CONV2D_RUNS") ?? 3);
const sets = Deno.env.get("CONV2D_SHAPES");
console.log(`conv2d on ${describeAdapter(gpu.adapter)}; tilings for a ${cpu ? "CPU" : "GPU"} adapter`);

for (const [name, shapes] of [["mnist", MNIST_SHAPES], ["resnet19", RESNET19_SHAPES]] as const) {
  if (sets && sets !== name) continue;
  const rows: Measurement[] = [];
  for (const g of shapes) {
    const run = defaultRuns(g, software);
    for (const pass of PASSES) {
      rows.push(
        await measure(`${pass.padEnd(11)} ${label(g)}`, { flops: convFlops(g) }, run.passes[pass], runs),
      );
    }
    run.dispose();
  }
  printTable(`conv2d ${name} shapes, N=${BATCH}, default tilings`, rows);
}

if (Deno.env.get("CONV2D_SWEEP")) {
  const windowed = (t: DirectTile): DirectTile[] => [t, { ...t, windowBytes: 0 }];
  const pixelTilings: PixelTiling[] = cpu
    ? [
      { kind: "direct", channels: 8, rows: 4, cols: 8, workgroup: 8, windowBytes: UNIFORM_WINDOW_BYTES },
      { kind: "direct", channels: 8, rows: 8, cols: 4, workgroup: 8, windowBytes: UNIFORM_WINDOW_BYTES },
      { kind: "direct", channels: 4, rows: 8, cols: 4, workgroup: 8, windowBytes: UNIFORM_WINDOW_BYTES },
      { kind: "direct", channels: 16, rows: 4, cols: 4, workgroup: 8, windowBytes: UNIFORM_WINDOW_BYTES },
      { kind: "direct", channels: 8, rows: 4, cols: 4, workgroup: 16, windowBytes: UNIFORM_WINDOW_BYTES },
    ].flatMap((t) => windowed(t as DirectTile))
    : [
      { kind: "gemm", tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 },
      { kind: "gemm", tileM: 64, tileN: 64, tileK: 8, threadM: 4, threadN: 4 },
      { kind: "gemm", tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 4 },
      { kind: "gemm", tileM: 128, tileN: 128, tileK: 8, threadM: 8, threadN: 8 },
      { kind: "gemm", tileM: 32, tileN: 32, tileK: 16, threadM: 4, threadN: 4 },
    ];
  const weightTile = (
    outChannels: number,
    inChannels: number,
    rows: number,
    cols: number,
    splits: number,
  ): DirectWeightTile => ({
    kind: "direct",
    outChannels,
    inChannels,
    rows,
    cols,
    workgroup: 8,
    splits,
    windowBytes: UNIFORM_WINDOW_BYTES,
  });
  const weightTilings: WeightTiling[] = cpu
    ? [
      weightTile(8, 4, 2, 4, 1),
      weightTile(8, 4, 2, 4, 4),
      weightTile(8, 4, 2, 4, 16),
      weightTile(8, 2, 4, 4, 4),
      weightTile(16, 2, 2, 2, 2),
      { ...weightTile(8, 4, 2, 4, 4), windowBytes: 0 },
    ]
    : pixelTilings as GemmTile[];
  for (const g of [MNIST_SHAPES[1], MNIST_SHAPES[8], RESNET19_SHAPES[1]]) {
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

// One registered bench per kernel, at the default network's most frequent shape, so `deno bench` lists them.
const benchShape = MNIST_SHAPES[1];
const benchRuns = defaultRuns(benchShape, software);
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
