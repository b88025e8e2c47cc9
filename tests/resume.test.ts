/**
 * Resuming is exact: N steps, a checkpoint (encoded and decoded), a fresh process's worth of objects,
 * M more steps equals N+M uninterrupted steps bit for bit. A checkpoint also resumes at another T.
 */
import assert from "node:assert/strict";
import { decodeCheckpoint, encodeCheckpoint } from "../src/io/checkpoint.ts";
import { createModel, type ModelOptions, type SpikingModel } from "../src/models/registry.ts";
import { createOptimizer } from "../src/optim/registry.ts";
import { MetricsAccumulator, type MetricsSnapshot } from "../src/pipeline/metrics.ts";
import { captureCheckpoint, restoreCheckpoint, type StateSources } from "../src/pipeline/training_state.ts";
import { type HostBatch, trainStep, upload } from "../src/pipeline/train_step.ts";
import { synchronize } from "../src/gpu/kernels.ts";
import type { Checkpoint } from "../src/io/checkpoint.ts";
import { smlLoss } from "../src/sml/loss.ts";
import { Scope } from "../src/tensor/scope.ts";
import { assertClose, FORWARD, setupGpu, TestRng, TINY_PLAIN } from "./helpers.ts";

const OPTIONS: ModelOptions = { ...TINY_PLAIN, T: 2, seed: 5 };

function batches(count: number): HostBatch[] {
  const rng = new TestRng(99);
  return Array.from({ length: count }, () => ({
    data: rng.uniforms(4 * 12 * 12, -0.5, 1.5),
    shape: [4, 1, 12, 12],
    labels: rng.ints(4, 4),
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

/** Trains on `data`; returns the steps' mean loss parts. */
async function train(sources: StateSources, data: HostBatch[]): Promise<MetricsSnapshot> {
  const metrics = new MetricsAccumulator(3);
  const model = sources.model as SpikingModel;
  for (const batch of data) trainStep({ model, optimizer: sources.optimizer, loss: {}, metrics }, batch);
  const snapshot = await metrics.read();
  metrics.dispose();
  return snapshot;
}

/** The SML loss of a training-mode forward of `batch`, on a fresh model restored from `checkpoint`, no tape. */
async function forwardLoss(options: ModelOptions, checkpoint: Checkpoint, batch: HostBatch): Promise<number> {
  const sources = build(options);
  await restoreCheckpoint(checkpoint, sources, "probe.ckpt");
  const model = sources.model as SpikingModel;
  model.train();
  const scope = new Scope();
  const loss = scope.run(() => {
    const { input, labels } = upload(batch);
    const out = model.forward(input);
    return smlLoss(out.logits, out.moduleLogits, labels, {}).loss;
  });
  const [value] = await loss.readFloat();
  scope.dispose();
  dispose(sources);
  return value;
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
  await train(straight, data);
  const expected = await weights(straight);
  dispose(straight);

  const first = build(OPTIONS);
  await train(first, data.slice(0, 3));
  const bytes = encodeCheckpoint(
    await captureCheckpoint(first, { epoch: 0, step: 3, batchInEpoch: 3, bestAccuracy: -1 }),
  );
  dispose(first);
  const second = build(OPTIONS);
  const progress = await restoreCheckpoint(decodeCheckpoint(bytes, "memory"), second, "memory");
  assert.deepEqual(progress, { epoch: 0, step: 3, batchInEpoch: 3, bestAccuracy: -1 });
  await train(second, data.slice(3));
  const actual = await weights(second);
  dispose(second);
  assert.equal(actual.length, expected.length);
  actual.forEach((values, i) => assert.deepEqual(values, expected[i], `state entry ${i} differs`));
});

Deno.test("resume: a checkpoint trained at T=2 continues at T=4 (staged T) from its weights, optimizer state and step; other shapes are refused", async () => {
  await setupGpu();
  const [trained, next] = batches(2);
  const first = build(OPTIONS);
  await train(first, [trained]);
  const progress = { epoch: 1, step: 1, batchInEpoch: 0, bestAccuracy: 10 };
  const checkpoint = await captureCheckpoint(first, progress);
  dispose(first);
  assert.equal(checkpoint.optimizer?.step, 1);
  assert.ok(Object.values(checkpoint.optimizer?.slots ?? {}).length > 0, "AdamW saved no moments");

  const staged = build({ ...OPTIONS, T: 4 });
  assert.deepEqual(await restoreCheckpoint(checkpoint, staged, "stage1.ckpt"), progress);
  // Weights, BN statistics, counters, the optimizer's moments and its step count: the checkpoint's, bit for bit.
  const restored = await captureCheckpoint(staged, progress);
  assert.deepEqual(restored.weights, checkpoint.weights);
  assert.deepEqual(restored.optimizer, checkpoint.optimizer);

  // The first step at T=4 reports the loss of an independent T=4 forward of the checkpoint's weights,
  // which differs from the T=2 loss of the same batch (the new T is in effect).
  const expected = await forwardLoss({ ...OPTIONS, T: 4 }, checkpoint, next);
  const atT2 = await forwardLoss(OPTIONS, checkpoint, next);
  assert.ok(Number.isFinite(expected) && expected !== atT2, `loss ${expected} at T=4, ${atT2} at T=2`);
  const { loss } = await train(staged, [next]);
  assertClose([loss], [expected], FORWARD, "loss of the first step at T=4");
  const after = await captureCheckpoint(staged, { ...progress, step: 2 });
  assert.equal(after.optimizer?.step, 2, "the optimizer's step count continues");
  assert.notDeepEqual(after.weights, checkpoint.weights);
  dispose(staged);
  const wider = build({ ...OPTIONS, widths: [8, 8, 8] });
  await assert.rejects(() => restoreCheckpoint(checkpoint, wider, "stage1.ckpt"), /model option widths/);
  dispose(wider);
  // Leave no GPU work running at exit (wgpu panics if the process ends while a submission runs).
  await synchronize();
});
