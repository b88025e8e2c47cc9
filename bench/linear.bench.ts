/**
 * Linear throughput at the model's shapes: the default training step's surrogate-module Linear
 * (32 rows, 64 -> 512) and classifier (32 rows, 512 -> 10), and the 4096 -> 4096 Linear of the LIF-heavy
 * compare config (bench/compare/step.ts "lif", 1600 rows; LINEAR_ROWS sets the rows, 160 by default on a
 * software adapter, where a 1600-row pass takes minutes). Each GEMM of the forward and backward is timed
 * alone with the tiling linear() picks, then the bias gradient and the whole op on a tape (forward +
 * backward). On a software adapter the GPU's shared-memory tiling is timed too, for comparison (on the
 * large layer only with LINEAR_SHARED=1: it runs there at about 0.2 GFLOP/s). LINEAR_SWEEP=1 also times
 * a range of tiles on each GEMM: direct blocks on a software adapter, MATMUL_TILES on a GPU.
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/linear.bench.ts
 */
import {
  columnSumKernel,
  defaultMatmulTile,
  MATMUL_TILES,
  matmulKernel,
  type MatmulShape,
  type MatmulTile,
} from "../kernels/matmul.ts";
import { UNIFORM_WINDOW_BYTES } from "../kernels/target.ts";
import { initGpu } from "../src/gpu/device.ts";
import { dispatch, synchronize } from "../src/gpu/kernels.ts";
import { linear } from "../src/ops/linear.ts";
import { softwareTarget } from "../src/ops/target.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

interface LinearShape {
  rows: number;
  inFeatures: number;
  outFeatures: number;
}

function label({ rows, inFeatures, outFeatures }: LinearShape): string {
  return `N=${rows} ${inFeatures}->${outFeatures}`;
}

function randomTensor(shape: readonly number[], name: string, requiresGrad = false): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = Math.random() * 2 - 1;
  return Tensor.fromData(data, shape, { name, requiresGrad });
}

type Pass = "forward" | "grad x" | "grad W";
const PASSES: Pass[] = ["forward", "grad x", "grad W"];

/** The GEMM of one pass of Linear (see src/ops/linear.ts). */
function passShape({ rows, inFeatures, outFeatures }: LinearShape, pass: Pass): MatmulShape {
  return {
    forward: { M: rows, N: outFeatures, K: inFeatures, transB: true, bias: true },
    "grad x": { M: rows, N: inFeatures, K: outFeatures },
    "grad W": { M: outFeatures, N: inFeatures, K: rows, transA: true },
  }[pass];
}

function tileLabel(t: MatmulTile): string {
  if (t.kind === "shared") {
    return `shared ${t.blockM}x${t.blockN}x${t.blockK} thread ${t.threadM}x${t.threadN}`;
  }
  const uniforms = `${t.uniformA ? "A" : ""}${t.uniformB ? "B" : ""}`;
  return `direct ${t.threadM}x${t.threadN} wg ${t.workgroup}${uniforms ? ` uniform ${uniforms}` : ""}`;
}

/** The tensors of one shape and the runs to time: each GEMM pass alone, and the whole op on a tape. */
function workload(s: LinearShape, cpuThreads: number | undefined) {
  const { rows, inFeatures, outFeatures } = s;
  const x = randomTensor([rows, inFeatures], "x", true);
  const weight = randomTensor([outFeatures, inFeatures], "weight", true);
  const bias = randomTensor([outFeatures], "bias", true);
  const gradOut = randomTensor([rows, outFeatures], "gradOut");
  const out = Tensor.empty([rows, outFeatures], { name: "out" });
  const gradX = Tensor.empty(x.shape, { name: "gradX" });
  const gradWeight = Tensor.empty(weight.shape, { name: "gradWeight" });
  const gradBias = Tensor.empty(bias.shape, { name: "gradBias" });
  const flops = 2 * rows * inFeatures * outFeatures;
  const buffers: Record<Pass, GPUBuffer[]> = {
    forward: [x.buffer, weight.buffer, bias.buffer, out.buffer],
    "grad x": [gradOut.buffer, weight.buffer, gradX.buffer],
    "grad W": [gradOut.buffer, x.buffer, gradWeight.buffer],
  };
  const uniformReadable = (buffer: GPUBuffer) =>
    (buffer.usage & GPUBufferUsage.UNIFORM) !== 0 && buffer.size <= UNIFORM_WINDOW_BYTES;
  return {
    flops,
    /** The tiling linear() picks for `pass` (see src/ops/linear.ts). */
    defaultTile(pass: Pass): MatmulTile {
      const [a, b] = buffers[pass];
      const cpu = cpuThreads === undefined
        ? undefined
        : { threads: cpuThreads, uniformA: uniformReadable(a), uniformB: uniformReadable(b) };
      return defaultMatmulTile(passShape(s, pass), cpu);
    },
    pass(pass: Pass, tile: MatmulTile): () => void {
      const kernel = matmulKernel({ ...passShape(s, pass), tile });
      return () => dispatch(kernel, buffers[pass], kernel.workgroups);
    },
    gradBias(): () => void {
      const kernel = columnSumKernel(rows, outFeatures, cpuThreads);
      return () => dispatch(kernel, [gradOut.buffer, gradBias.buffer], kernel.workgroups);
    },
    /** The op as training uses it: forward on a tape, backward into the leaves' accumulated grads. */
    op(): () => void {
      return () => {
        const tape = new Tape();
        const y = tape.run(() => linear(x, weight, bias));
        tape.backward(y, gradOut);
        tape.dispose();
      };
    },
    dispose() {
      for (const t of [x, weight, bias, gradOut, out, gradX, gradWeight, gradBias]) t.dispose();
    },
  };
}

/** Direct blocks for LINEAR_SWEEP on a software adapter: square and flat, small to large. */
const SWEEP_DIRECT: MatmulTile[] = [
  [4, 4],
  [8, 8],
  [8, 16],
  [16, 8],
  [16, 16],
  [16, 32],
  [32, 16],
].map(([threadM, threadN]) => ({ kind: "direct", threadM, threadN, workgroup: 8 }));

await initGpu();
const software = softwareTarget() !== undefined;
const cpuThreads = software ? navigator.hardwareConcurrency : undefined;
const largeRows = Number(Deno.env.get("LINEAR_ROWS") ?? (software ? 160 : 1600));
const SHAPES: LinearShape[] = [
  { rows: 32, inFeatures: 64, outFeatures: 512 },
  { rows: 32, inFeatures: 512, outFeatures: 10 },
  { rows: largeRows, inFeatures: 4096, outFeatures: 4096 },
];
const isLarge = (s: LinearShape) => s.inFeatures === 4096;
const compareShared = (s: LinearShape) => software && (!isLarge(s) || Deno.env.get("LINEAR_SHARED") === "1");
const runs = Number(Deno.env.get("LINEAR_RUNS") ?? 3);

const defaults: Measurement[] = [];
const shared: Measurement[] = [];
for (const s of SHAPES) {
  const w = workload(s, cpuThreads);
  // A large pass takes seconds on a software adapter: one timed run (after the warm-up) is enough.
  const passRuns = isLarge(s) && software ? 1 : runs;
  for (const pass of PASSES) {
    const tile = w.defaultTile(pass);
    const name = `${pass.padEnd(8)} ${label(s)}`;
    defaults.push(
      await measure(`${name} [${tileLabel(tile)}]`, { flops: w.flops }, w.pass(pass, tile), passRuns),
    );
    if (compareShared(s)) {
      const sharedTile = defaultMatmulTile(passShape(s, pass));
      shared.push(
        await measure(
          `${name} [${tileLabel(sharedTile)}]`,
          { flops: w.flops },
          w.pass(pass, sharedTile),
          passRuns,
        ),
      );
    }
  }
  defaults.push(
    await measure(`grad b   ${label(s)}`, { bytes: 4 * (s.rows + 1) * s.outFeatures }, w.gradBias(), runs),
  );
  defaults.push(await measure(`op fwd+bwd ${label(s)}`, { flops: 3 * w.flops }, w.op(), passRuns));
  w.dispose();
}
printTable("linear, default tiling (GFLOP/s counts 2 flops per multiply-add)", defaults);
if (shared.length) printTable("linear, the GPU's shared-memory tiling on this software adapter", shared);

if (Deno.env.get("LINEAR_SWEEP")) {
  for (const s of SHAPES) {
    const w = workload(s, cpuThreads);
    for (const pass of PASSES) {
      const sweep: Measurement[] = [];
      for (const tile of software ? SWEEP_DIRECT : MATMUL_TILES) {
        sweep.push(await measure(tileLabel(tile), { flops: w.flops }, w.pass(pass, tile), runs));
      }
      printTable(`tile sweep: ${pass} ${label(s)}`, sweep);
    }
    w.dispose();
  }
}

// Registered benches for `deno bench`: the whole op, forward and backward, at each shape.
for (const s of SHAPES) {
  const w = workload(s, cpuThreads);
  const run = w.op();
  Deno.bench({
    name: `linear fwd+bwd ${label(s)}`,
    n: 3,
    warmup: 1,
    async fn() {
      run();
      await synchronize();
    },
  });
}
