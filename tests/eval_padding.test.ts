/**
 * Evaluation pads a short last batch to the full batch size (so it reuses the full batch's compiled
 * kernels); only the real samples may count: loss, top-1/top-5 and layer activity must equal an
 * unpadded evaluation of the same samples.
 */
import assert from "node:assert/strict";
import { createModel } from "../src/models/registry.ts";
import { ActivityRecorder } from "../src/nn/activity.ts";
import { MetricsAccumulator } from "../src/pipeline/metrics.ts";
import { evalStep, type HostBatch } from "../src/pipeline/train_step.ts";
import { assertClose, FORWARD, setupGpu, TestRng } from "./helpers.ts";

const T = 2;

function batch(shape: number[], seed: number): HostBatch {
  const rng = new TestRng(seed);
  const size = shape.reduce((a, b) => a * b);
  const samples = shape.length === 5 ? shape[1] : shape[0];
  return {
    data: rng.uniforms(size, 0, 1),
    shape,
    labels: rng.ints(samples, 10),
  };
}

for (const [label, shape] of [["images", [3, 1, 12, 12]], ["event frames", [T, 3, 1, 12, 12]]] as const) {
  Deno.test(`evalStep on ${label}: a batch padded to 8 samples counts only its 3 real ones`, async () => {
    await setupGpu();
    const model = createModel("plain", {
      numClasses: 10,
      T,
      inChannels: 1,
      width: 4,
      depth: 1,
      seed: 3,
      modules: { positions: [1, 1], kernels: [[3]], width: 8 },
    });
    const heads = 1 + model.surrogates.length;
    const host = batch([...shape], 5);
    const run = async (padTo: number) => {
      const metrics = new MetricsAccumulator(heads);
      const activity = new ActivityRecorder();
      evalStep({ model, loss: {}, metrics, activity, padTo }, host);
      const result = { metrics: await metrics.read(), activity: await activity.report(T) };
      metrics.dispose();
      activity.dispose();
      return result;
    };
    const plain = await run(0);
    const padded = await run(8);
    assert.equal(padded.metrics.samples, 3);
    for (const key of ["loss", "hard", "soft"] as const) {
      assertClose([padded.metrics[key]], [plain.metrics[key]], FORWARD, key);
    }
    assert.deepEqual(padded.metrics.top1, plain.metrics.top1);
    assert.deepEqual(padded.metrics.top5, plain.metrics.top5);
    const rates = (r: typeof plain) => r.activity.layers.map((layer) => layer.rate);
    assert.ok(rates(plain).some((rate) => rate > 0), "some layer fires");
    assertClose(rates(padded), rates(plain), FORWARD, "layer rates");
    assertClose([padded.activity.synapticOps], [plain.activity.synapticOps], FORWARD, "synaptic operations");
    model.dispose();
  });
}
