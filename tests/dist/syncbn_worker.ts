/**
 * One rank of the --sync-bn check in sync_bn.test.ts, run under `mpirun -np 2`: one SGD step of a tiny
 * spiking ResNet with batch norms synchronised over the ranks, rank r on samples [rB, (r+1)B). Rank 0
 * also takes the same step in one process on all 2B samples, and checks that this case is
 * well-conditioned: the single-process forward gives bit-identical logits with the threshold moved by
 * +-MARGIN, so no membrane lies within MARGIN of it and rounding differences far below MARGIN (the ranks
 * sum their statistics in another order) flip no spike. Writes `<out>/rank<r>.json`.
 */
import { Rng } from "../../src/data/rng.ts";
import { DataParallel } from "../../src/dist/data_parallel.ts";
import { startCommunicator } from "../../src/dist/communicator.ts";
import { initGpu } from "../../src/gpu/device.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { createModel, type SpikingModel } from "../../src/models/registry.ts";
import { createOptimizer } from "../../src/optim/registry.ts";
import { MetricsAccumulator } from "../../src/pipeline/metrics.ts";
import { type HostBatch, trainStep, trainStepReduced, upload } from "../../src/pipeline/train_step.ts";
import { Scope } from "../../src/tensor/scope.ts";

/** Samples per rank. */
export const BATCH = 3;
/** The distance from the threshold every membrane of the single-process forward keeps (checked). */
export const MARGIN = 1e-5;
const SIDE = 8;

function build(threshold = 1) {
  const model = createModel("resnet18", {
    numClasses: 4,
    T: 2,
    inChannels: 1,
    width: 4,
    seed: 5,
    lif: { threshold },
  });
  return { model, optimizer: createOptimizer("sgd", model.parameters(), { lr: 0.2, momentum: 0.9 }) };
}

/** Samples [from, from + count) of a fixed random data set. */
function samples(from: number, count: number): HostBatch {
  const pixels = SIDE * SIDE;
  const data = new Float32Array(count * pixels);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const rng = Rng.seeded(21, 0, from + i);
    for (let p = 0; p < pixels; p++) data[i * pixels + p] = rng.float() * 2 - 0.5;
    labels[i] = rng.int(4);
  }
  return { data, shape: [count, 1, SIDE, SIDE], labels };
}

async function state(model: SpikingModel): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const entry of model.stateEntries()) {
    if (entry.kind !== "counter") out[entry.name] = Array.from(await entry.tensor.readFloat());
  }
  return out;
}

/** The training-mode forward's logits on `batch` of a fresh model with this threshold. */
async function logits(threshold: number, batch: HostBatch): Promise<number[]> {
  const { model, optimizer } = build(threshold);
  model.train();
  const scope = new Scope();
  try {
    const out = scope.run(() => model.forward(upload(batch).input).logits);
    return Array.from(await out.readFloat());
  } finally {
    scope.dispose();
    optimizer.dispose();
    model.dispose();
  }
}

async function main(out: string): Promise<void> {
  const communicator = startCommunicator(true)!;
  const { rank, size } = communicator;
  await initGpu();
  const loss = {};
  const result: Record<string, unknown> = { rank, size };
  if (rank === 0) {
    const whole = samples(0, size * BATCH);
    const reference = build();
    const metrics = new MetricsAccumulator(1);
    trainStep({ model: reference.model, optimizer: reference.optimizer, loss, metrics }, whole);
    result.reference = await state(reference.model);
    metrics.dispose();
    reference.optimizer.dispose();
    reference.model.dispose();
    const at = await logits(1, whole);
    result.logits = at;
    result.sameSpikesBelow = JSON.stringify(await logits(1 - MARGIN, whole)) === JSON.stringify(at);
    result.sameSpikesAbove = JSON.stringify(await logits(1 + MARGIN, whole)) === JSON.stringify(at);
  }
  const { model, optimizer } = build();
  const parallel = new DataParallel(communicator, model, optimizer.params, undefined, true);
  const metrics = new MetricsAccumulator(1, parallel.sum);
  await trainStepReduced(
    { model, optimizer, loss, metrics },
    samples(rank * BATCH, BATCH),
    () => parallel.gradients.run(),
    parallel.batchNorm,
  );
  result.samples = (await metrics.read()).samples;
  result.state = await state(model);
  await Deno.writeTextFile(`${out}/rank${rank}.json`, JSON.stringify(result));
  await synchronize();
  communicator.finalize();
}

if (import.meta.main) await main(Deno.args[0]);
