/**
 * The source stage a configuration builds: the configured data set's train and test splits behind
 * DataLoaders (shuffled from the seed, augmentation in workers), optionally limited to their first samples.
 */
import type { RunConfig } from "./config.ts";
import type { Dataset, DatasetOptions } from "../data/dataset.ts";
import { DataLoader, type Shard } from "../data/loader.ts";
import { createDataset, isEventDataset } from "../data/registry.ts";
import type { Rng } from "../data/rng.ts";
import type { BatchSource } from "./stage.ts";

/** What a source stage yields: the batches to train and evaluate on. */
export interface Sources {
  /** Training batches (shuffled per epoch). */
  train: BatchSource;
  /** Evaluation batches, or none. */
  test: BatchSource | null;
  /** Channels of one input frame: 1 (MNIST), 3 (images) or 2 (event polarities). */
  inChannels: number;
}

/** A process's place in a data-parallel job: rank `rank` of `size`. */
export type Ranks = Omit<Shard, "pad">;

/**
 * The first `limit` samples of a data set (for smoke runs). It keeps the data set's spec: a worker reopens
 * the whole set and is only ever asked for indices below `limit`.
 */
function firstSamples(dataset: Dataset, limit: number): Dataset {
  if (limit <= 0 || limit >= dataset.length) return dataset;
  return {
    name: dataset.name,
    length: limit,
    numClasses: dataset.numClasses,
    classNames: dataset.classNames,
    sampleShape: dataset.sampleShape,
    spec: dataset.spec,
    get: (index: number, rng: Rng, train: boolean) => dataset.get(index, rng, train),
  };
}

/**
 * The configured data set's splits as batch sources (the source stage a configuration describes).
 * `ranks`: this process's place in a data-parallel job; training takes its padded shard of each epoch,
 * evaluation its unpadded one (every test sample counted once over all ranks).
 */
export async function openSources(config: RunConfig, ranks?: Ranks): Promise<Sources> {
  const options: DatasetOptions = {
    dataDir: config.dataDir || undefined,
    augment: config.augment,
  };
  if (isEventDataset(config.dataset)) options.T = config.T;
  const trainSet = firstSamples(
    await createDataset(config.dataset, { ...options, split: "train" }),
    config.trainLimit,
  );
  const testSet = firstSamples(
    await createDataset(config.dataset, { ...options, split: "test" }),
    config.testLimit,
  );
  const train = new DataLoader(trainSet, {
    batchSize: config.batchSize,
    seed: config.seed,
    train: true,
    dropLast: config.dropLast,
    workers: config.workers,
    prefetch: config.prefetch,
    shard: ranks && { ...ranks, pad: true },
  });
  const test = testSet.length > 0
    ? new DataLoader(testSet, {
      batchSize: config.batchSize,
      seed: config.seed,
      train: false,
      workers: config.workers,
      prefetch: config.prefetch,
      shard: ranks && { ...ranks, pad: false },
    })
    : null;
  const shape = trainSet.sampleShape;
  return { train, test, inChannels: shape.length === 4 ? shape[1] : shape[0] };
}
