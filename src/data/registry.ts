/** Data sets by name: createDataset("cifar10", { dataDir, split: "train" }). */
import { Cifar10DvsDataset } from "./cifar10_dvs.ts";
import { CifarDataset } from "./cifar.ts";
import type { Dataset, DatasetName, DatasetOptions } from "./dataset.ts";
import { EsImageNetDataset } from "./es_imagenet.ts";
import { ImageNetDataset } from "./imagenet.ts";
import { MnistDataset } from "./mnist.ts";

/** Every data set `createDataset` opens. */
export const DATASET_NAMES: readonly DatasetName[] = [
  "mnist",
  "cifar10",
  "cifar100",
  "imagenet",
  "es-imagenet",
  "cifar10-dvs",
];

/** Opens the named data set; every data set also records how to reopen itself (its `spec`) for workers. */
export async function createDataset(name: DatasetName, options: DatasetOptions = {}): Promise<Dataset> {
  if (options.split !== undefined && options.split !== "train" && options.split !== "test") {
    throw new Error(`createDataset: split must be "train" or "test", got ${JSON.stringify(options.split)}`);
  }
  switch (name) {
    case "mnist":
      return await MnistDataset.open(options);
    case "cifar10":
    case "cifar100":
      return new CifarDataset(name, options);
    case "imagenet":
      return new ImageNetDataset(options);
    case "es-imagenet":
      return new EsImageNetDataset(options);
    case "cifar10-dvs":
      return new Cifar10DvsDataset(options);
    default:
      throw new Error(
        `createDataset: unknown data set ${JSON.stringify(name)}; known: ${DATASET_NAMES.join(", ")}`,
      );
  }
}
