/** The Dataset contract every loader implements, the options the registry accepts, and file helpers. */
import type { AugmentSetting } from "./augment/settings.ts";
import type { Rng } from "./rng.ts";

/** One sample: CHW floats for images, (T, C, H, W) floats for event frames. */
export interface Sample {
  /** The sample's values, row-major. */
  data: Float32Array;
  /** Class index in [0, numClasses). */
  label: number;
}

/** The data sets createDataset opens by name (registry.ts holds how each opens). */
export const DATASET_NAMES = [
  "mnist",
  "cifar10",
  "cifar100",
  "imagenet",
  "es-imagenet",
  "cifar10-dvs",
] as const;
/** One of DATASET_NAMES. */
export type DatasetName = typeof DATASET_NAMES[number];
/** Which part of a data set to open. */
export type Split = "train" | "test";

/** Options for createDataset. Fields a data set does not use are ignored. Plain data, so workers can rebuild it. */
export interface DatasetOptions {
  /** Root folder of the data set (unused by "mnist", which is embedded). */
  dataDir?: string;
  /** "test" selects the test / validation split. Default "train". */
  split?: Split;
  /** Training augmentation (applied only when a sample is drawn with train = true). */
  augment?: AugmentSetting;
  /** Frames per sample for event data: ES-ImageNet (default 8, must divide 8), CIFAR10-DVS (default 10). */
  T?: number;
  /** MNIST: zero-pad 28x28 to 32x32. */
  pad32?: boolean;
  /** CIFAR-100: which label is the class; default "fine". */
  labels?: "fine" | "coarse";
  /** ImageNet: what to do with a JPEG that does not decode; default "skip" (warn and count). */
  onDecodeError?: "skip" | "stop";
  /** ES-ImageNet: "events" (event lists, .npz with pos/neg) or "frames" (pre-framed arr_0); default: detected. */
  format?: "events" | "frames";
  /** ES-ImageNet: number of classes labels must fall in; default 1000. */
  numClasses?: number;
  /** CIFAR10-DVS: seed of the per-class 9:1 train/test split; default 0. */
  splitSeed?: number;
  /** CIFAR10-DVS: fraction of each class in the training split; default 0.9. */
  trainRatio?: number;
}

/** How to rebuild a data set in another thread: its registry name and options (plain data). */
export interface DatasetSpec {
  /** Registry name. */
  name: DatasetName;
  /** The options it was opened with. */
  options: DatasetOptions;
}

/** A data set: indexed samples with labels, augmented on request. */
export interface Dataset {
  /** Registry name, for messages. */
  readonly name: string;
  /** Number of samples. */
  readonly length: number;
  /** Number of classes. */
  readonly numClasses: number;
  /** Class names by index, when known. */
  readonly classNames?: readonly string[];
  /** [C, H, W] for images; [T, C, H, W] for event frames (batched time-major as (T, B, C, H, W)). */
  readonly sampleShape: readonly number[];
  /** How to rebuild this data set inside a worker; data sets without one load in-process only. */
  readonly spec?: DatasetSpec;
  /** Samples dropped because their file was unreadable (see DatasetOptions.onDecodeError). */
  readonly skipped?: number;
  /**
   * The sample at `index`, augmented with draws from `rng` when `train` is true; null when the sample
   * was skipped (an undecodable file under onDecodeError "skip").
   */
  get(index: number, rng: Rng, train: boolean): Sample | null | Promise<Sample | null>;
}

/** Throws a clear error unless `path` is a directory. */
export function requireDirectory(path: string, what: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    throw new Error(`${what}: directory ${path} does not exist`);
  }
  if (!info.isDirectory) throw new Error(`${what}: ${path} is not a directory`);
}

export function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Reads a whole file, with an error naming it when it is missing or unreadable. */
export function readFileOrThrow(path: string, what: string): Uint8Array {
  try {
    return Deno.readFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`${what}: file ${path} does not exist`);
    throw new Error(`${what}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Sorted names of the subdirectories of `path`. */
export function subdirectories(path: string): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(path)) if (entry.isDirectory) names.push(entry.name);
  return names.sort();
}

/** Sorted names of the files in `path` whose name passes `accept`. */
export function filesIn(path: string, accept: (name: string) => boolean): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(path)) if (entry.isFile && accept(entry.name)) names.push(entry.name);
  return names.sort();
}
