/**
 * One rank of the data-parallel checks in data_parallel.test.ts, run under `mpirun -np 2`. Writes what it
 * saw to `<out>/rank<r>.json`; the test asserts on the files. On rank 0 it first computes single-process
 * references from a fresh model with the same seed: each shard's gradient alone, their mean, the
 * running statistics after a forward on rank 0's batch, and a full (unsharded) evaluation.
 */
import { DataLoader } from "../../src/data/loader.ts";
import type { Dataset } from "../../src/data/dataset.ts";
import { Rng } from "../../src/data/rng.ts";
import { DataParallel } from "../../src/dist/data_parallel.ts";
import { startCommunicator } from "../../src/dist/communicator.ts";
import { initGpu } from "../../src/gpu/device.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { createModel, type SpikingModel } from "../../src/models/registry.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import { createOptimizer } from "../../src/optim/registry.ts";
import { MetricsAccumulator } from "../../src/pipeline/metrics.ts";
import { evaluate } from "../../src/pipeline/train_loop.ts";
import { type HostBatch, trainStepReduced } from "../../src/pipeline/train_step.ts";
import { TINY_PLAIN } from "../helpers.ts";

export const STEPS = 3;
export const BATCH = 4;
/** Test samples: odd, so the ranks' shards differ in length and the last batch is padded. */
export const TEST_SAMPLES = 13;

/** Random 12x12 images with labels: a data set the loaders can shard. */
function dataset(name: string, length: number, seed: number): Dataset {
  return {
    name,
    length,
    numClasses: 4,
    sampleShape: [1, 12, 12],
    get: (index: number) => {
      const rng = Rng.seeded(seed, 0, index);
      return { data: Float32Array.from({ length: 144 }, () => rng.float() * 2 - 0.5), label: rng.int(4) };
    },
  };
}

function build(): { model: SpikingModel; optimizer: ReturnType<typeof createOptimizer> } {
  const model = createModel("plain", TINY_PLAIN);
  return { model, optimizer: createOptimizer("sgd", model.parameters(), { lr: 0.05, momentum: 0.9 }) };
}

async function readAll(tensors: readonly { readFloat(): Promise<Float32Array> }[]): Promise<number[][]> {
  return (await Promise.all(tensors.map((t) => t.readFloat()))).map((a) => Array.from(a));
}

function buffers(model: SpikingModel) {
  return model.stateEntries().flatMap((e) => e.kind === "buffer" ? [e.tensor] : []);
}

async function batchesOf(loader: DataLoader, epoch: number): Promise<HostBatch[]> {
  const out: HostBatch[] = [];
  for await (const batch of loader.epoch(epoch)) out.push(batch);
  return out;
}

async function main(out: string): Promise<void> {
  const communicator = startCommunicator(true)!;
  const { rank, size } = communicator;
  await initGpu();
  const train = dataset("train", 2 * BATCH * STEPS - 3, 11);
  const test = dataset("test", TEST_SAMPLES, 12);
  const loss = {};
  const result: Record<string, unknown> = { rank, size };

  if (rank === 0) {
    // Single-process references, on a model built exactly as every rank builds its own.
    const reference = build();
    const grads: number[][][] = [];
    for (let r = 0; r < size; r++) {
      const shard = new DataLoader(train, { batchSize: BATCH, seed: 1, shard: { rank: r, size, pad: true } });
      const [first] = await batchesOf(shard, 0);
      const metrics = new MetricsAccumulator(3);
      const params = reference.optimizer.params;
      // An optimizer that leaves the weights: the gradients are read before zeroGrad frees them.
      const capture: Optimizer = {
        params,
        lr: 0,
        step: () => {},
        zeroGrad: () => reference.optimizer.zeroGrad(),
        exportState: () => reference.optimizer.exportState(),
        importState: (state) => reference.optimizer.importState(state),
        dispose: () => {},
      };
      await trainStepReduced(
        { model: reference.model, optimizer: capture, loss, metrics },
        first,
        async () => {
          grads.push(await readAll(params.map((p) => p.grad!)));
          if (r === 0) result.referenceStatistics = await readAll(buffers(reference.model));
        },
      );
      metrics.dispose();
    }
    result.referenceMeanGradient = grads[0].map((g, i) =>
      Array.from(
        Float32Array.from(g, (v, j) => {
          let sum = Math.fround(v);
          for (let r = 1; r < size; r++) sum = Math.fround(sum + grads[r][i][j]);
          return sum * Math.fround(1 / size);
        }),
      )
    );
    const fresh = build();
    const whole = new DataLoader(test, { batchSize: BATCH, train: false });
    const single = await evaluate(fresh.model, whole, loss);
    result.singleEval = single.metrics;
    fresh.model.dispose();
    reference.model.dispose();
  }

  const { model, optimizer } = build();
  // Small buckets: the 173 KB of gradients and statistics go through several readbacks.
  const parallel = new DataParallel(communicator, model, optimizer.params, 16 * 1024);
  result.buckets = parallel.gradients.bucketCount;
  const loader = new DataLoader(train, { batchSize: BATCH, seed: 1, shard: { rank, size, pad: true } });
  const metrics = new MetricsAccumulator(3, parallel.sum);
  let step = 0;
  for (const batch of await batchesOf(loader, 0)) {
    await trainStepReduced({ model, optimizer, loss, metrics }, batch, async () => {
      await parallel.gradients.run();
      if (step === 0) result.meanGradient = await readAll(optimizer.params.map((p) => p.grad!));
    });
    if (step === 0) result.statisticsAfterFirstStep = await readAll(buffers(model));
    step++;
  }
  result.steps = step;
  result.samplesSeen = (await metrics.read()).samples;
  result.weights = await readAll(optimizer.params);
  result.statistics = await readAll(buffers(model));
  const shard = new DataLoader(test, { batchSize: BATCH, train: false, shard: { rank, size, pad: false } });
  // Evaluation of the initial weights, to compare with the reference's single-process evaluation.
  const initial = build();
  result.distributedEval = (await evaluate(initial.model, shard, loss, false, parallel)).metrics;
  result.timing = parallel.gradients.timing;
  await Deno.writeTextFile(`${out}/rank${rank}.json`, JSON.stringify(result));
  await synchronize();
  communicator.finalize();
}

if (import.meta.main) await main(Deno.args[0]);
