/**
 * First half of the NIR fixtures (the second is nir_oracle.py): trains three small models for a few SGD
 * steps, so that weights and BatchNorm running statistics are far from their initialisation, and writes
 * for each its checkpoint (tests/fixtures/nir_<name>.ckpt) and its NIR export (nir_<name>.nir).
 * Regenerate everything with the command in tests/oracle/nir_oracle.py.
 */
import { fileURLToPath } from "node:url";
import { Rng } from "../../src/data/rng.ts";
import { initGpu } from "../../src/gpu/device.ts";
import { writeCheckpoint } from "../../src/io/checkpoint.ts";
import { exportNir } from "../../src/io/nir.ts";
import { createModel, type ModelOptions } from "../../src/models/registry.ts";
import { createOptimizer } from "../../src/optim/registry.ts";
import { MetricsAccumulator } from "../../src/pipeline/metrics.ts";
import { captureCheckpoint } from "../../src/pipeline/training_state.ts";
import { type HostBatch, trainStep } from "../../src/pipeline/train_step.ts";

/** The models the NIR test exports: narrow; `plain` has a surrogate module (dropped by the export). */
export const NIR_CASES: {
  name: string;
  model: string;
  options: ModelOptions;
  inputShape: number[];
  /** The data set the checkpoint's run configuration names (export-nir takes its sample shape). */
  dataset?: string;
}[] = [
  {
    name: "resnet18",
    model: "resnet18",
    inputShape: [3, 16, 16],
    options: {
      numClasses: 4,
      T: 3,
      inChannels: 3,
      width: 2,
      seed: 11,
    },
  },
  {
    name: "resnet19",
    model: "resnet19",
    inputShape: [3, 16, 16],
    options: {
      numClasses: 4,
      T: 3,
      inChannels: 3,
      width: 2,
      seed: 12,
      // A non-default neuron, so that tau, r and v_threshold are checked beyond the defaults, and a
      // threshold the narrow classifier's LIF layer reaches.
      lif: { tau: 0.75, threshold: 0.5 },
    },
  },
  {
    name: "plain",
    model: "plain",
    // MNIST's shape: the last 7x7 map pools to 2x2 through overlapping windows (kernel 4, stride 3).
    inputShape: [1, 28, 28],
    dataset: "mnist",
    options: {
      numClasses: 4,
      T: 3,
      inChannels: 1,
      widths: [4, 4, 8],
      depth: 2,
      seed: 13,
      modules: { positions: [2], kernels: [[3]], width: 8 },
    },
  },
];

const STEPS = 30;
const BATCH = 8;

function batch(rng: Rng, inputShape: number[]): HostBatch {
  const size = BATCH * inputShape.reduce((a, b) => a * b, 1);
  return {
    data: Float32Array.from({ length: size }, () => rng.float() * 4 - 1),
    shape: [BATCH, ...inputShape],
    labels: Int32Array.from({ length: BATCH }, () => rng.int(4)),
  };
}

if (import.meta.main) {
  await initGpu();
  const fixtures = fileURLToPath(new URL("../fixtures/", import.meta.url));
  for (const { name, model: modelName, options, inputShape, dataset } of NIR_CASES) {
    const model = createModel(modelName, options);
    const optimizer = createOptimizer("sgd", model.parameters(), { lr: 0.05 });
    const metrics = new MetricsAccumulator(1 + model.surrogates.length);
    const rng = Rng.seeded(100 + options.seed!);
    for (let step = 0; step < STEPS; step++) {
      trainStep({ model, optimizer, loss: {}, metrics }, batch(rng, inputShape));
    }
    metrics.dispose();
    const checkpoint = await captureCheckpoint({
      modelName,
      modelOptions: options as unknown as Record<string, unknown>,
      model,
      optimizer,
      config: { model: modelName, ...(dataset ? { dataset } : {}), note: "tests/oracle/nir_models.ts" },
      seed: options.seed!,
    }, { epoch: 0, step: STEPS, batchInEpoch: STEPS, bestAccuracy: 0 });
    await writeCheckpoint(`${fixtures}nir_${name}.ckpt`, checkpoint);
    model.eval();
    const summary = await exportNir(model, `${fixtures}nir_${name}.nir`, { inputShape });
    console.log(`${name}: ${summary.nodes} nodes, ${summary.edges} edges, ${summary.bytes} bytes`);
    model.dispose();
  }
}
