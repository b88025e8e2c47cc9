/**
 * BatchNorm2d training forward + backward throughput in GB/s: the statistics reduction, the normalise,
 * the gradient sums and the input gradient, as the batchNorm op dispatches them. Counted bytes are the
 * full-size tensors each kernel reads or writes (per-channel values are negligible): forward reads x
 * twice and writes y, backward reads dL/dy and x twice and writes dL/dx.
 */
import {
  batchNormGradInputKernel,
  batchNormGradParamsKernel,
  batchNormGradSumsKernel,
  batchNormNormalizeKernel,
  type BatchNormShape,
  batchNormStatsKernel,
  batchNormTrainStatsKernel,
  reductionSplit,
} from "../kernels/batch_norm.ts";
import { initGpu } from "../src/gpu/device.ts";
import { dispatch, synchronize } from "../src/gpu/kernels.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

await initGpu();

function setup(n: number, c: number, h: number, w: number) {
  const shape: BatchNormShape = { batch: n, channels: c, spatial: h * w };
  const size = n * c * h * w;
  const { partitions } = reductionSplit(shape);
  const x = Tensor.fromData(Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.37)), [n, c, h, w]);
  const gradY = Tensor.fromData(Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.11)), [
    n,
    c,
    h,
    w,
  ]);
  const y = Tensor.empty([n, c, h, w]);
  const gradX = Tensor.empty([n, c, h, w]);
  const perChannel = () => Tensor.fromData(new Float32Array(c).fill(1), [c]);
  const [weight, bias, runningMean, runningVar, gradWeight, gradBias] = Array.from({ length: 6 }, perChannel);
  const stats = Tensor.empty([2, c]);
  const statPartials = Tensor.empty([c, partitions, 3]);
  const gradPartials = Tensor.empty([c, partitions, 2]);
  const kernels = {
    stats: batchNormStatsKernel(shape),
    trainStats: batchNormTrainStatsKernel(shape, 0.1, 1e-5),
    normalize: batchNormNormalizeKernel(shape),
    gradSums: batchNormGradSumsKernel(shape),
    gradParams: batchNormGradParamsKernel(shape),
    gradInput: batchNormGradInputKernel(shape, true),
  };
  const run = () => {
    dispatch(kernels.stats, [x.buffer, statPartials.buffer], kernels.stats.workgroups);
    dispatch(
      kernels.trainStats,
      [statPartials.buffer, stats.buffer, runningMean.buffer, runningVar.buffer],
      kernels.trainStats.workgroups,
    );
    dispatch(
      kernels.normalize,
      [x.buffer, stats.buffer, weight.buffer, bias.buffer, y.buffer],
      kernels.normalize.workgroups,
    );
    dispatch(
      kernels.gradSums,
      [gradY.buffer, x.buffer, stats.buffer, gradPartials.buffer],
      kernels.gradSums.workgroups,
    );
    dispatch(
      kernels.gradParams,
      [gradPartials.buffer, gradWeight.buffer, gradBias.buffer],
      kernels.gradParams.workgroups,
    );
    dispatch(
      kernels.gradInput,
      [gradY, x, stats, weight, gradWeight, gradBias, gradX].map((t) => t.buffer),
      kernels.gradInput.workgroups,
    );
  };
  // Forward: x (stats), x and y (normalise). Backward: dL/dy and x (sums), dL/dy, x and dL/dx (input).
  const bytes = 8 * 4 * size;
  return { label: `batch_norm2d train fwd+bwd (${n}, ${c}, ${h}, ${w})`, run, bytes };
}

const cases = [setup(32, 128, 32, 32), setup(32, 512, 8, 8)];
const rows: Measurement[] = [];
for (const { label, run, bytes } of cases) rows.push(await measure(label, { bytes }, run));
printTable("BatchNorm2d (kernels only)", rows);

for (const { label, run } of cases) {
  Deno.bench(label, async () => {
    run();
    await synchronize();
  });
}
