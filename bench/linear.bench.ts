/**
 * Linear throughput at the model's shapes: the ResNet head at T*B = 32 (512*4 -> 512, a surrogate-module
 * Linear), the classifier at 512 rows (512 -> 10), and a large 1600 x 4096 -> 4096 layer. Each kernel of
 * the forward and backward is timed alone, then the whole op with its tape (forward + backward). With
 * LINEAR_SWEEP=1 it also times every tile of MATMUL_TILES on each kernel. The large layer (54 GFLOP a pass)
 * takes minutes on a software adapter (llvmpipe runs these GEMMs at well under 1 GFLOP/s), so there it
 * runs only with LINEAR_LARGE=1.
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/linear.bench.ts
 */
import {
  chooseMatmulTile,
  columnSumKernel,
  MATMUL_TILES,
  matmulKernel,
  type MatmulTile,
} from "../kernels/matmul.ts";
import { type AdapterDescription, initGpu } from "../src/gpu/device.ts";
import { dispatch, synchronize } from "../src/gpu/kernels.ts";
import { linear } from "../src/ops/linear.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

interface LinearShape {
  rows: number;
  inFeatures: number;
  outFeatures: number;
}

const SMALL_SHAPES: LinearShape[] = [
  { rows: 32, inFeatures: 2048, outFeatures: 512 },
  { rows: 512, inFeatures: 512, outFeatures: 10 },
];
const LARGE_SHAPE: LinearShape = { rows: 1600, inFeatures: 4096, outFeatures: 4096 };

function isSoftware(adapter: AdapterDescription): boolean {
  return adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(adapter.name);
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

/** The tensors of one shape and the runs to time: each GEMM pass alone, and the whole op on a tape. */
function workload(s: LinearShape) {
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
  return {
    flops,
    pass(pass: Pass, tile?: MatmulTile): () => void {
      const [kernel, buffers] = {
        forward: () =>
          [
            matmulKernel({ M: rows, N: outFeatures, K: inFeatures, transB: true, bias: true, tile }),
            [x.buffer, weight.buffer, bias.buffer, out.buffer],
          ] as const,
        "grad x": () =>
          [
            matmulKernel({ M: rows, N: inFeatures, K: outFeatures, tile }),
            [gradOut.buffer, weight.buffer, gradX.buffer],
          ] as const,
        "grad W": () =>
          [
            matmulKernel({ M: outFeatures, N: inFeatures, K: rows, transA: true, tile }),
            [gradOut.buffer, x.buffer, gradWeight.buffer],
          ] as const,
      }[pass]();
      return () => dispatch(kernel, buffers, kernel.workgroups);
    },
    gradBias(): () => void {
      const kernel = columnSumKernel(rows, outFeatures);
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

function tileLabel(t: MatmulTile): string {
  return `${t.blockM}x${t.blockN}x${t.blockK} thread ${t.threadM}x${t.threadN}`;
}

function passTile(s: LinearShape, pass: Pass): MatmulTile {
  const [m, n] = pass === "forward"
    ? [s.rows, s.outFeatures]
    : pass === "grad x"
    ? [s.rows, s.inFeatures]
    : [s.outFeatures, s.inFeatures];
  return chooseMatmulTile(m, n);
}

const { adapter } = await initGpu();
const runLarge = Deno.env.get("LINEAR_LARGE") === "1" || !isSoftware(adapter);
if (!runLarge) {
  console.log(
    `skipping ${label(LARGE_SHAPE)} on the software adapter ${adapter.name}; LINEAR_LARGE=1 runs it`,
  );
}
const SHAPES = runLarge ? [...SMALL_SHAPES, LARGE_SHAPE] : SMALL_SHAPES;
const runs = Number(Deno.env.get("LINEAR_RUNS") ?? 3);

const rows: Measurement[] = [];
for (const s of SHAPES) {
  const w = workload(s);
  for (const pass of PASSES) {
    rows.push(
      await measure(
        `${pass.padEnd(8)} ${label(s)} [${tileLabel(passTile(s, pass))}]`,
        { flops: w.flops },
        w.pass(pass),
        runs,
      ),
    );
  }
  rows.push(
    await measure(`grad b   ${label(s)}`, { bytes: 4 * (s.rows + 1) * s.outFeatures }, w.gradBias(), runs),
  );
  rows.push(await measure(`op fwd+bwd ${label(s)}`, { flops: 3 * w.flops }, w.op(), runs));
  w.dispose();
}
printTable("linear, default tiles (GFLOP/s counts 2 flops per multiply-add)", rows);

if (Deno.env.get("LINEAR_SWEEP")) {
  for (const s of SHAPES) {
    const w = workload(s);
    for (const pass of PASSES) {
      const sweep: Measurement[] = [];
      for (const tile of MATMUL_TILES) {
        sweep.push(await measure(tileLabel(tile), { flops: w.flops }, w.pass(pass, tile), runs));
      }
      printTable(`tile sweep: ${pass} ${label(s)}`, sweep);
    }
    w.dispose();
  }
}

// Registered benches for `deno bench`: the whole op, forward and backward, at each shape.
for (const s of SHAPES) {
  const w = workload(s);
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
