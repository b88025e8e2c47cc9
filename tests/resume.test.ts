/**
 * Resuming is exact: N steps, a checkpoint (encoded and decoded), a fresh process's worth of objects,
 * M more steps equals N+M uninterrupted steps bit for bit. A checkpoint also resumes at another T.
 */
import assert from "node:assert/strict";
import { Rng } from "../src/data/rng.ts";
import { decodeCheckpoint, encodeCheckpoint } from "../src/io/checkpoint.ts";
import { createModel, type ModelOptions } from "../src/models/registry.ts";
import { createOptimizer } from "../src/optim/registry.ts";
import { MetricsAccumulator } from "../src/pipeline/metrics.ts";
import { captureCheckpoint, restoreCheckpoint, type StateSources } from "../src/pipeline/training_state.ts";
import { type HostBatch, trainStep } from "../src/pipeline/train_step.ts";
import { synchronize } from "../src/gpu/kernels.ts";
import { setupGpu } from "./helpers.ts";

const OPTIONS: ModelOptions = {
  numClasses: 4,
  T: 2,
  inChannels: 1,
  widths: [4, 4, 8],
  seed: 5,
  modules: { positions: [1, 1], kernels: [[3]], width: 8 },
};

function batches(count: number): HostBatch[] {
  const rng = Rng.seeded(99);
  return Array.from({ length: count }, () => ({
    data: Float32Array.from({ length: 4 * 12 * 12 }, () => rng.float() * 2 - 0.5),
    shape: [4, 1, 12, 12],
    labels: Int32Array.from({ length: 4 }, () => rng.int(4)),
  }));
}

function build(options: ModelOptions): StateSources {
  const model = createModel("plain", options);
  const optimizer = createOptimizer("adamw", model.parameters(), { lr: 0.01, weightDecay: 0.02 });
  return {
    modelName: "plain",
    modelOptions: options as unknown as Record<string, unknown>,
    model,
    optimizer,
    config: {},
    seed: 0,
  };
}

function train(sources: StateSources, data: HostBatch[]): void {
  const metrics = new MetricsAccumulator(3);
  const model = sources.model as ReturnType<typeof createModel>;
  for (const batch of data) trainStep({ model, optimizer: sources.optimizer, loss: {}, metrics }, batch);
  metrics.dispose();
}

async function weights(sources: StateSources): Promise<Float32Array[]> {
  return await Promise.all(
    sources.model.stateEntries().flatMap((e) => e.kind === "counter" ? [] : [e.tensor.readFloat()]),
  );
}

function dispose(sources: StateSources): void {
  sources.optimizer.dispose();
  sources.model.dispose();
}

Deno.test("resume: 3 steps + checkpoint + 2 steps equals 5 uninterrupted steps bit for bit", async () => {
  await setupGpu();
  const data = batches(5);
  const straight = build(OPTIONS);
  train(straight, data);
  const expected = await weights(straight);
  dispose(straight);

  const first = build(OPTIONS);
  train(first, data.slice(0, 3));
  const bytes = encodeCheckpoint(
    await captureCheckpoint(first, { epoch: 0, step: 3, batchInEpoch: 3, bestAccuracy: -1 }),
  );
  dispose(first);
  const second = build(OPTIONS);
  const progress = await restoreCheckpoint(decodeCheckpoint(bytes, "memory"), second, "memory");
  assert.deepEqual(progress, { epoch: 0, step: 3, batchInEpoch: 3, bestAccuracy: -1 });
  train(second, data.slice(3));
  const actual = await weights(second);
  dispose(second);
  assert.equal(actual.length, expected.length);
  actual.forEach((values, i) => assert.deepEqual(values, expected[i], `state entry ${i} differs`));
});

Deno.test("resume: a checkpoint trained at T=2 continues at T=4 (staged T); other shapes are refused", async () => {
  await setupGpu();
  const first = build(OPTIONS);
  train(first, batches(1));
  const checkpoint = await captureCheckpoint(first, { epoch: 1, step: 1, batchInEpoch: 0, bestAccuracy: 10 });
  dispose(first);
  const staged = build({ ...OPTIONS, T: 4 });
  await restoreCheckpoint(checkpoint, staged, "stage1.ckpt");
  train(staged, batches(1));
  dispose(staged);
  const wider = build({ ...OPTIONS, widths: [8, 8, 8] });
  await assert.rejects(() => restoreCheckpoint(checkpoint, wider, "stage1.ckpt"), /model option widths/);
  dispose(wider);
  // Leave no GPU work running at exit (wgpu panics if the process ends while a submission runs).
  await synchronize();
});
