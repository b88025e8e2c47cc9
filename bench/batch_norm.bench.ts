/**
 * Batch norm training forward + backward throughput in GB/s, through the batchNorm op (statistics
 * partials, per-channel finish, normalise; gradient partials, per-channel finish, input gradient).
 * Counted bytes are the full-size tensors the kernels read or write (per-channel values are negligible):
 * forward reads x twice and writes y, backward reads dL/dy and x twice and writes dL/dx.
 */
import { initGpu } from "../src/gpu/device.ts";
import { synchronize } from "../src/gpu/kernels.ts";
import { batchNorm } from "../src/ops/batch_norm.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

await initGpu();

function setup(shape: number[]) {
  const size = shape.reduce((a, b) => a * b, 1);
  const channels = shape[1];
  const x = Tensor.fromData(Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.37)), shape, {
    requiresGrad: true,
  });
  const gradY = Tensor.fromData(Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.11)), shape);
  const perChannel = (value: number) =>
    Tensor.fromData(new Float32Array(channels).fill(value), [channels], { requiresGrad: true });
  const state = {
    weight: perChannel(1),
    bias: perChannel(0),
    runningMean: perChannel(0),
    runningVar: perChannel(1),
  };
  const run = () => {
    const tape = new Tape();
    const y = tape.run(() => batchNorm(x, state, { training: true }));
    tape.backward(y, gradY);
    tape.dispose();
    for (const tensor of [x, state.weight, state.bias]) {
      tensor.grad?.dispose();
      tensor.grad = null;
    }
  };
  const bytes = 8 * 4 * size;
  return { label: `batch_norm train fwd+bwd (${shape.join(", ")})`, run, bytes };
}

const cases = [[32, 8, 28, 28], [32, 64, 4, 4], [32, 512], [32, 128, 32, 32], [32, 512, 8, 8]].map(setup);
const rows: Measurement[] = [];
for (const { label, run, bytes } of cases) rows.push(await measure(label, { bytes }, run));
printTable("BatchNorm (op, kernels only)", rows);

for (const { label, run } of cases) {
  Deno.bench(label, async () => {
    run();
    await synchronize();
  });
}
