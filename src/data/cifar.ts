/**
 * CIFAR-10 and CIFAR-100 in their binary distributions (SPEC §9). Records are held in memory
 * (150 MB for CIFAR-10 train) and turned into normalised CHW samples with the reference augmentation:
 * RandomCrop(32, padding 4) -> RandomHorizontalFlip -> [AutoAugment CIFAR-10] -> Normalize -> [Cutout 16].
 */
import { join } from "node:path";
import { autoAugmentCifar10 } from "./augment/autoaugment.ts";
import { flipHorizontal, randomCropWithPadding } from "./augment/geometry.ts";
import type { Image } from "./augment/image.ts";
import { cutout, normalize } from "./augment/normalize.ts";
import { type AugmentFlags, augmentFlags } from "./augment/settings.ts";
import {
  type Dataset,
  type DatasetOptions,
  type DatasetSpec,
  isDirectory,
  isFile,
  readFileOrThrow,
  requireDirectory,
  type Sample,
  type Split,
} from "./dataset.ts";
import type { Rng } from "./rng.ts";

export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.2023, 0.1994, 0.201];
export const CIFAR100_MEAN = [0.5071, 0.4867, 0.4408];
export const CIFAR100_STD = [0.2675, 0.2565, 0.2761];

const PIXELS = 32 * 32;
const IMAGE_BYTES = 3 * PIXELS;

interface Layout {
  what: string;
  folder: string;
  files: Record<Split, string[]>;
  /** Bytes of labels before the pixels. */
  labelBytes: number;
  /** Which label byte is the class, and how many classes it has. */
  labelIndex: number;
  numClasses: number;
  namesFile: string;
  mean: number[];
  std: number[];
}

function layout(name: "cifar10" | "cifar100", labels: "fine" | "coarse"): Layout {
  if (name === "cifar10") {
    return {
      what: "cifar10",
      folder: "cifar-10-batches-bin",
      files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ["test_batch.bin"] },
      labelBytes: 1,
      labelIndex: 0,
      numClasses: 10,
      namesFile: "batches.meta.txt",
      mean: CIFAR10_MEAN,
      std: CIFAR10_STD,
    };
  }
  return {
    what: "cifar100",
    folder: "cifar-100-binary",
    files: { train: ["train.bin"], test: ["test.bin"] },
    labelBytes: 2,
    labelIndex: labels === "coarse" ? 0 : 1,
    numClasses: labels === "coarse" ? 20 : 100,
    namesFile: labels === "coarse" ? "coarse_label_names.txt" : "fine_label_names.txt",
    mean: CIFAR100_MEAN,
    std: CIFAR100_STD,
  };
}

export class CifarDataset implements Dataset {
  readonly length: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  readonly sampleShape = [3, 32, 32] as const;
  readonly spec: DatasetSpec;
  private readonly records: Uint8Array;
  private readonly recordBytes: number;
  private readonly labelIndex: number;
  private readonly flags: Required<AugmentFlags>;
  private readonly mean: number[];
  private readonly std: number[];

  constructor(readonly name: "cifar10" | "cifar100", options: DatasetOptions) {
    const split = options.split ?? "train";
    const spec = layout(name, options.labels ?? "fine");
    if (!options.dataDir) {
      throw new Error(`${spec.what}: options.dataDir is required (the folder holding ${spec.folder}/)`);
    }
    requireDirectory(options.dataDir, spec.what);
    // Accept either the extracted folder itself or the folder that holds it.
    const folder = isDirectory(join(options.dataDir, spec.folder))
      ? join(options.dataDir, spec.folder)
      : options.dataDir;
    this.recordBytes = spec.labelBytes + IMAGE_BYTES;
    const parts: Uint8Array[] = [];
    for (const file of spec.files[split]) {
      const path = join(folder, file);
      const bytes = readFileOrThrow(path, spec.what);
      if (bytes.byteLength === 0) {
        throw new Error(
          `${spec.what}: ${path} is empty; expected records of ${this.recordBytes} bytes ` +
            `(${spec.labelBytes} label byte(s) + 3072 pixel bytes): re-extract the binary archive`,
        );
      }
      if (bytes.byteLength % this.recordBytes !== 0) {
        throw new Error(
          `${spec.what}: ${path} is ${bytes.byteLength} bytes, not a multiple of ${this.recordBytes} ` +
            `(one record = ${spec.labelBytes} label byte(s) + 3072 pixel bytes): the file is truncated or corrupt; ` +
            "re-extract the binary archive",
        );
      }
      for (let r = 0; r < bytes.byteLength / this.recordBytes; r++) {
        for (let l = 0; l < spec.labelBytes; l++) {
          const label = bytes[r * this.recordBytes + l];
          const limit = spec.labelBytes === 2 && l === 0 ? 20 : spec.labelBytes === 2 ? 100 : 10;
          if (label >= limit) {
            throw new Error(
              `${spec.what}: ${path} record ${r} has label ${label} at byte ${l}, outside 0..${
                limit - 1
              }: the file is corrupt`,
            );
          }
        }
      }
      parts.push(bytes);
    }
    const total = parts.reduce((n, p) => n + p.byteLength, 0);
    this.records = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
      this.records.set(part, offset);
      offset += part.byteLength;
    }
    this.length = total / this.recordBytes;
    this.labelIndex = spec.labelIndex;
    this.numClasses = spec.numClasses;
    this.mean = spec.mean;
    this.std = spec.std;
    this.flags = augmentFlags(options.augment ?? "standard");
    this.spec = { name, options: { ...options } };
    const namesPath = join(folder, spec.namesFile);
    if (isFile(namesPath)) {
      const names = new TextDecoder().decode(Deno.readFileSync(namesPath)).split(/\r?\n/).map((s) => s.trim())
        .filter((s) => s.length > 0);
      if (names.length === this.numClasses) this.classNames = names;
    }
  }

  /** Label of record `index`. */
  label(index: number): number {
    return this.records[index * this.recordBytes + this.labelIndex];
  }

  /** Record `index` as an RGB HWC image. */
  image(index: number): Image {
    const base = index * this.recordBytes + this.recordBytes - IMAGE_BYTES;
    const data = new Uint8Array(IMAGE_BYTES);
    for (let p = 0; p < PIXELS; p++) {
      data[p * 3] = this.records[base + p];
      data[p * 3 + 1] = this.records[base + PIXELS + p];
      data[p * 3 + 2] = this.records[base + 2 * PIXELS + p];
    }
    return { width: 32, height: 32, channels: 3, data };
  }

  get(index: number, rng: Rng, train: boolean): Sample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new Error(`${this.name}: index ${index} is outside 0..${this.length - 1}`);
    }
    let image = this.image(index);
    const flags = train ? this.flags : undefined;
    if (flags?.crop) image = randomCropWithPadding(image, 32, 4, rng);
    if (flags?.flip && rng.chance(0.5)) image = flipHorizontal(image);
    if (flags?.autoAugment) image = autoAugmentCifar10(image, rng);
    const data = normalize(image, this.mean, this.std);
    if (flags?.cutout) cutout(data, 3, 32, 32, 16, rng);
    return { data, label: this.label(index) };
  }
}
