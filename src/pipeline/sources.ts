/**
 * The source stage for the CLI: the configured data set's train and test splits behind DataLoaders
 * (shuffled from the seed, augmentation in workers), optionally limited to their first samples.
 */
import type { RunConfig } from "../cli/config.ts";
import type { AugmentSetting } from "../data/augment.ts";
import type { Dataset, DatasetOptions } from "../data/dataset.ts";
import { DataLoader } from "../data/loader.ts";
import { createDataset } from "../data/registry.ts";
import type { Rng } from "../data/rng.ts";

export interface Sources {
  train: DataLoader;
  test: DataLoader | null;
  /** Channels of one input frame: 1 (MNIST), 3 (images) or 2 (event polarities). */
  inChannels: number;
}

function augmentSetting(augment: readonly string[]): AugmentSetting {
  if (augment.includes("none")) return "none";
  return {
    crop: augment.includes("standard"),
    flip: augment.includes("standard"),
    autoAugment: augment.includes("autoaugment"),
    cutout: augment.includes("cutout"),
  };
}

/** The first `limit` samples of a data set (for smoke runs); loads in-process. */
function firstSamples(dataset: Dataset, limit: number): Dataset {
  if (limit <= 0 || limit >= dataset.length) return dataset;
  return {
    name: dataset.name,
    length: limit,
    numClasses: dataset.numClasses,
    classNames: dataset.classNames,
    sampleShape: dataset.sampleShape,
    get: (index: number, rng: Rng, train: boolean) => dataset.get(index, rng, train),
  };
}

/**
 * `ranks`: this process's place in a data-parallel job; training takes its padded shard of each epoch,
 * evaluation its unpadded one (every test sample counted once over all ranks).
 */
export async function openSources(
  config: RunConfig,
  ranks?: { rank: number; size: number },
): Promise<Sources> {
  const options: DatasetOptions = {
    dataDir: config.dataDir || undefined,
    augment: augmentSetting(config.augment),
  };
  if (config.dataset === "es-imagenet" || config.dataset === "cifar10-dvs") options.T = config.T;
  const trainSet = firstSamples(
    await createDataset(config.dataset, { ...options, split: "train" }),
    config.trainLimit,
  );
  const testSet = firstSamples(
    await createDataset(config.dataset, { ...options, split: "test" }),
    config.testLimit,
  );
  const limited = trainSet.spec === undefined || testSet.spec === undefined;
  const workers = limited ? 0 : config.workers;
  const train = new DataLoader(trainSet, {
    batchSize: config.batchSize,
    seed: config.seed,
    train: true,
    dropLast: config.dropLast,
    workers,
    prefetch: config.prefetch,
    shard: ranks && { ...ranks, pad: true },
  });
  const test = testSet.length > 0
    ? new DataLoader(testSet, {
      batchSize: config.batchSize,
      seed: config.seed,
      train: false,
      workers,
      prefetch: config.prefetch,
      shard: ranks && { ...ranks, pad: false },
    })
    : null;
  const shape = trainSet.sampleShape;
  return { train, test, inChannels: shape.length === 4 ? shape[1] : shape[0] };
}
