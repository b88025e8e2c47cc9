/** Data sets by name: createDataset("cifar10", { dataDir, split: "train" }). */
import { Cifar10DvsDataset } from "./cifar10_dvs.ts";
import { CifarDataset } from "./cifar.ts";
import { type Dataset, DATASET_NAMES, type DatasetName, type DatasetOptions } from "./dataset.ts";
import { EsImageNetDataset } from "./es_imagenet.ts";
import { ImageNetDataset } from "./imagenet.ts";
import { MnistDataset } from "./mnist.ts";

export { DATASET_NAMES };

interface Entry {
  open(options: DatasetOptions): Dataset | Promise<Dataset>;
  /** Event data: samples are (T, C, H, W) frames, and DatasetOptions.T sets how many. */
  events: boolean;
}

const DATASETS: Record<DatasetName, Entry> = {
  "mnist": { open: (options) => MnistDataset.open(options), events: false },
  "cifar10": { open: (options) => new CifarDataset("cifar10", options), events: false },
  "cifar100": { open: (options) => new CifarDataset("cifar100", options), events: false },
  "imagenet": { open: (options) => new ImageNetDataset(options), events: false },
  "es-imagenet": { open: (options) => new EsImageNetDataset(options), events: true },
  "cifar10-dvs": { open: (options) => new Cifar10DvsDataset(options), events: true },
};

/** Whether the named data set yields event frames over time (its T is a data option). */
export function isEventDataset(name: DatasetName): boolean {
  return DATASETS[name].events;
}

/** Opens the named data set; every data set also records how to reopen itself (its `spec`) for workers. */
export async function createDataset(name: DatasetName, options: DatasetOptions = {}): Promise<Dataset> {
  if (options.split !== undefined && options.split !== "train" && options.split !== "test") {
    throw new Error(`createDataset: split must be "train" or "test", got ${JSON.stringify(options.split)}`);
  }
  if (!Object.hasOwn(DATASETS, name)) {
    throw new Error(
      `createDataset: unknown data set ${JSON.stringify(name)}; known: ${DATASET_NAMES.join(", ")}`,
    );
  }
  return await DATASETS[name].open(options);
}
