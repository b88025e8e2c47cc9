/**
 * The smaller kernel families at ResNet-19 shapes (batch 16, T = 2, 32x32 input): elementwise add and
 * LeakyReLU, adaptive average pooling, expand/mean over time, cross-entropy and temperature KL, and
 * one AdamW update, each in GB/s of the bytes it must move. (conv2d, batch_norm, lif and linear have
 * their own bench files.)
 */
import { initGpu } from "../src/gpu/device.ts";
import { synchronize } from "../src/gpu/kernels.ts";
import { add, fill, leakyRelu } from "../src/ops/elementwise.ts";
import { crossEntropy, temperatureKl } from "../src/ops/loss.ts";
import { adaptiveAvgPool2d } from "../src/ops/pool.ts";
import { expandTime, meanOverTime } from "../src/ops/time.ts";
import { AdamW } from "../src/optim/adam.ts";
import { Scope } from "../src/tensor/scope.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

await initGpu();

const T = 2;
const B = 16;
const activation = [T * B, 128, 32, 32];
const n = activation.reduce((a, b) => a * b, 1);
const x = fill(activation, 0.5, "x");
const y = fill(activation, -0.25, "y");
const image = fill([B, 3, 32, 32], 1, "image");
const head = fill([T * B, 512, 4, 4], 1, "head");
const logits = Tensor.fromData(Float32Array.from({ length: B * 100 }, (_, i) => Math.sin(i)), [B, 100]);
const teacher = Tensor.fromData(Float32Array.from({ length: B * 100 }, (_, i) => Math.cos(i)), [B, 100]);
const labels = Tensor.fromData(Int32Array.from({ length: B }, (_, i) => i % 100), [B], { dtype: "i32" });
const weight = fill([512, 512, 3, 3], 0.01, "weight");
weight.requiresGrad = true;
weight.grad = fill([512, 512, 3, 3], 0.001, "grad");
const optimizer = new AdamW([weight], { lr: 1e-3, weightDecay: 0.02 });

function scoped(body: () => unknown): () => void {
  return () => {
    const scope = new Scope();
    scope.run(body);
    scope.dispose();
  };
}

const rows: Measurement[] = [];
const cases: [string, number, () => void][] = [
  ["add (32, 128, 32, 32)", 12 * n, scoped(() => add(x, y))],
  ["leaky_relu (32, 128, 32, 32)", 8 * n, scoped(() => leakyRelu(y))],
  [
    "adaptive_avg_pool 1x1 (32, 512, 4, 4)",
    4 * (head.size + T * B * 512),
    scoped(() => adaptiveAvgPool2d(head, 1)),
  ],
  [
    "adaptive_avg_pool 2x2 (32, 512, 4, 4)",
    4 * (head.size + T * B * 2048),
    scoped(() => adaptiveAvgPool2d(head, 2)),
  ],
  ["expand_time (16, 3, 32, 32) x2", 4 * 3 * image.size, scoped(() => expandTime(image, T))],
  ["mean_over_time (32, 128, 32, 32)", 4 * 1.5 * n, scoped(() => meanOverTime(x, T))],
  ["cross_entropy (16, 100)", 4 * logits.size, scoped(() => crossEntropy(logits, labels))],
  ["temperature_kl (16, 100)", 8 * logits.size, scoped(() => temperatureKl(logits, teacher, 3))],
  ["adamw step (512, 512, 3, 3)", 4 * 7 * weight.size, () => optimizer.step()],
];
for (const [label, bytes, run] of cases) {
  rows.push(await measure(label, { bytes }, run, 3));
  Deno.bench(label, { n: 3, warmup: 1 }, async () => {
    run();
    await synchronize();
  });
}
printTable("small kernel families, batch 16, T=2 (GPU time where timestamps exist)", rows);
