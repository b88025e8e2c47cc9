/**
 * ImageNet in the folder layout torchvision's ImageFolder reads: `train/<wnid>/*.JPEG`,
 * `val/<wnid>/*.JPEG`, class index = position of the wnid in sorted order (taken from train/ when it
 * exists, so both splits agree). Train: RandomResizedCrop(224, scale 0.08-1, ratio 3/4-4/3) + flip;
 * evaluation: resize shorter side to 256 (PIL bilinear) + center crop 224. Normalised CHW floats.
 */
import { join } from "node:path";
import { centerCrop, flipHorizontal } from "./augment/geometry.ts";
import { normalize } from "./augment/normalize.ts";
import { randomResizedCropBox, resizedCrop, resizeShorterSide } from "./augment/resize.ts";
import { type AugmentFlags, augmentFlags } from "./augment/settings.ts";
import {
  type Dataset,
  type DatasetOptions,
  type DatasetSpec,
  filesIn,
  isDirectory,
  requireDirectory,
  type Sample,
  subdirectories,
} from "./dataset.ts";
import type { Rng } from "./rng.ts";

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];
const CROP = 224;
const RESIZE = 256;

/**
 * The JPEG decoders (two npm packages, a wasm module and a global ImageData shim) load on the first
 * image read, not when spikegpu is imported.
 */
let decoder: Promise<typeof import("./jpeg.ts").decodeJpeg> | undefined;
function jpegDecoder() {
  decoder ??= import("./jpeg.ts").then((module) => module.decodeJpeg);
  return decoder;
}

const isJpegName = (name: string) => /\.(jpe?g)$/i.test(name);

export class ImageNetDataset implements Dataset {
  readonly name = "imagenet";
  readonly length: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly sampleShape = [3, CROP, CROP] as const;
  readonly spec: DatasetSpec;
  private readonly paths: string[] = [];
  private readonly labels: Int32Array;
  private readonly flags: Required<AugmentFlags>;
  private readonly stopOnDecodeError: boolean;
  private skippedCount = 0;

  constructor(options: DatasetOptions) {
    if (!options.dataDir) {
      throw new Error("imagenet: options.dataDir is required (the folder holding train/ and val/)");
    }
    requireDirectory(options.dataDir, "imagenet");
    const splitDir = join(options.dataDir, (options.split ?? "train") === "train" ? "train" : "val");
    requireDirectory(splitDir, "imagenet");
    const trainDir = join(options.dataDir, "train");
    this.classNames = subdirectories(isDirectory(trainDir) ? trainDir : splitDir);
    if (this.classNames.length === 0) {
      throw new Error(`imagenet: ${splitDir} has no class folders; expected <wnid>/ folders of .JPEG files`);
    }
    const classIndex = new Map(this.classNames.map((wnid, i) => [wnid, i]));
    const labels: number[] = [];
    for (const wnid of subdirectories(splitDir)) {
      const label = classIndex.get(wnid);
      if (label === undefined) {
        throw new Error(
          `imagenet: ${join(splitDir, wnid)} is a class folder that ${trainDir} does not have`,
        );
      }
      for (const file of filesIn(join(splitDir, wnid), isJpegName)) {
        this.paths.push(join(splitDir, wnid, file));
        labels.push(label);
      }
    }
    if (this.paths.length === 0) {
      throw new Error(
        `imagenet: ${splitDir} holds no .JPEG files in its class folders; expected at least one image`,
      );
    }
    this.labels = Int32Array.from(labels);
    this.length = this.paths.length;
    this.numClasses = this.classNames.length;
    this.flags = augmentFlags(options.augment ?? "standard");
    this.stopOnDecodeError = options.onDecodeError === "stop";
    this.spec = { name: "imagenet", options: { ...options } };
  }

  get skipped(): number {
    return this.skippedCount;
  }

  path(index: number): string {
    return this.paths[index];
  }

  async get(index: number, rng: Rng, train: boolean): Promise<Sample | null> {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new Error(`imagenet: index ${index} is outside 0..${this.length - 1}`);
    }
    const path = this.paths[index];
    let image;
    try {
      image = await (await jpegDecoder())(await Deno.readFile(path), path);
    } catch (error) {
      const message = error instanceof Deno.errors.NotFound
        ? `imagenet: ${path} does not exist`
        : (error as Error).message;
      if (this.stopOnDecodeError) throw new Error(message);
      this.skippedCount++;
      console.warn(`${message}; skipped (${this.skippedCount} so far)`);
      return null;
    }
    if (train && this.flags.crop) {
      image = resizedCrop(image, randomResizedCropBox(image.width, image.height, rng), CROP);
    } else {
      image = centerCrop(resizeShorterSide(image, RESIZE), CROP, CROP);
    }
    if (train && this.flags.flip && rng.chance(0.5)) image = flipHorizontal(image);
    return { data: normalize(image, IMAGENET_MEAN, IMAGENET_STD), label: this.labels[index] };
  }
}
