/**
 * CIFAR10-DVS as SpikingJelly extracts it: one .npz per sample holding event arrays t, x, y, p
 * (128x128 sensor), in one folder per class (class index = sorted folder name; `dataDir` may be the
 * folder of class folders or its parent holding `events_np/`).
 *
 * Frames follow SpikingJelly's integrate_events_by_fixed_frames_number(split_by="number"): with N events
 * and T frames, di = N // T, frame j integrates events [j*di, j*di + di) (the last frame runs to N), and
 * each frame counts events per pixel and polarity (channel 0 for p == 0, channel 1 otherwise). The
 * [T, 2, 128, 128] counts are resized to 48x48 as torch F.interpolate(mode="bilinear",
 * align_corners=False, antialias=False) does, like the reference code. Training augmentation, as the
 * reference: flip the width axis with probability 1/2, then torch.roll by (dy, dx), each uniform in -5..5.
 * Train/test: per class, the files (sorted by name) are shuffled with `splitSeed`; the first
 * ceil(0.9 n) are train (SpikingJelly's split_to_train_test_set rounding), the rest test.
 */
import { join } from "node:path";
import { flipPlanes, interpolateBilinear, rollPlanes } from "./augment/event_frames.ts";
import { augmentFlags } from "./augment/settings.ts";
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
import { readNpz, toNumbers } from "./npz.ts";
import { permutation, Rng } from "./rng.ts";

export const DVS_SENSOR = 128;
export const DVS_SIZE = 48;
const MAX_ROLL = 5;

export class Cifar10DvsDataset implements Dataset {
  readonly name = "cifar10-dvs";
  readonly length: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly sampleShape: readonly number[];
  readonly spec: DatasetSpec;
  private readonly paths: string[] = [];
  private readonly labels: number[] = [];
  private readonly T: number;
  private readonly flags: { flip: boolean; crop: boolean };

  constructor(options: DatasetOptions) {
    if (!options.dataDir) {
      throw new Error("cifar10-dvs: options.dataDir is required (the folder of class folders of .npz files)");
    }
    requireDirectory(options.dataDir, "cifar10-dvs");
    const root = isDirectory(join(options.dataDir, "events_np"))
      ? join(options.dataDir, "events_np")
      : options.dataDir;
    this.classNames = subdirectories(root);
    if (this.classNames.length === 0) {
      throw new Error(
        `cifar10-dvs: ${root} has no class folders; expected one folder of .npz files per class`,
      );
    }
    this.T = options.T ?? 10;
    if (!Number.isInteger(this.T) || this.T < 1) {
      throw new Error(`cifar10-dvs: T = ${options.T} must be a positive integer`);
    }
    const ratio = options.trainRatio ?? 0.9;
    const seed = options.splitSeed ?? 0;
    const train = (options.split ?? "train") === "train";
    let fileCount = 0;
    this.classNames.forEach((className, label) => {
      const folder = join(root, className);
      const files = filesIn(folder, (name) => name.endsWith(".npz"));
      fileCount += files.length;
      const order = permutation(files.length, Rng.seeded(seed, label));
      const cut = Math.ceil(files.length * ratio);
      const chosen = train ? order.subarray(0, cut) : order.subarray(cut);
      for (const i of chosen) {
        this.paths.push(join(folder, files[i]));
        this.labels.push(label);
      }
    });
    if (fileCount === 0) {
      throw new Error(
        `cifar10-dvs: ${root} holds no .npz files in its class folders (${this.classNames.join(", ")}); ` +
          "expected one .npz of events (t, x, y, p) per sample",
      );
    }
    this.length = this.paths.length;
    this.numClasses = this.classNames.length;
    this.sampleShape = [this.T, 2, DVS_SIZE, DVS_SIZE];
    const flags = augmentFlags(options.augment ?? "standard");
    this.flags = { flip: flags.flip, crop: flags.crop };
    this.spec = { name: "cifar10-dvs", options: { ...options } };
  }

  path(index: number): string {
    return this.paths[index];
  }

  async get(index: number, rng: Rng, train: boolean): Promise<Sample> {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new Error(`cifar10-dvs: index ${index} is outside 0..${this.length - 1}`);
    }
    const path = this.paths[index];
    const arrays = await readNpz(path, ["t", "x", "y", "p"]);
    const [t, x, y, p] = ["t", "x", "y", "p"].map((key) => toNumbers(arrays.get(key)!, `${path}:${key}`));
    const frames = integrateFrames(x, y, p, t.length, this.T, DVS_SENSOR, DVS_SENSOR, path);
    let data = interpolateBilinear(frames, this.T * 2, DVS_SENSOR, DVS_SENSOR, DVS_SIZE, DVS_SIZE);
    if (train) {
      if (this.flags.flip && rng.chance(0.5)) flipPlanes(data, this.T * 2, DVS_SIZE, DVS_SIZE);
      if (this.flags.crop) {
        const dy = rng.intInclusive(-MAX_ROLL, MAX_ROLL);
        const dx = rng.intInclusive(-MAX_ROLL, MAX_ROLL);
        data = rollPlanes(data, this.T * 2, DVS_SIZE, DVS_SIZE, dy, dx);
      }
    }
    return { data, label: this.labels[index] };
  }
}

/** Event coordinates or polarities: any array of numbers (a typed array from the .npz, or a plain one). */
export type Numbers = ArrayLike<number>;

/**
 * SpikingJelly's fixed-frame-number integration split by event count (see the file comment):
 * returns [T, 2, height, width] event counts.
 */
export function integrateFrames(
  x: Numbers,
  y: Numbers,
  p: Numbers,
  count: number,
  T: number,
  height: number,
  width: number,
  source: string,
): Float32Array {
  if (x.length !== count || y.length !== count || p.length !== count) {
    throw new Error(
      `cifar10-dvs: ${source}: t, x, y, p have lengths ${count}, ${x.length}, ${y.length}, ${p.length}; expected equal`,
    );
  }
  const frames = new Float32Array(T * 2 * height * width);
  const di = Math.floor(count / T);
  for (let frame = 0; frame < T; frame++) {
    const start = frame * di;
    const end = frame === T - 1 ? count : start + di;
    for (let e = start; e < end; e++) {
      const ex = x[e];
      const ey = y[e];
      if (
        !(ex >= 0 && ex < width && ey >= 0 && ey < height && Number.isInteger(ex) && Number.isInteger(ey))
      ) {
        throw new Error(
          `cifar10-dvs: ${source}: event ${e} at (x ${ex}, y ${ey}) is outside the ${width}x${height} sensor`,
        );
      }
      const channel = p[e] === 0 ? 0 : 1;
      frames[((frame * 2 + channel) * height + ey) * width + ex] += 1;
    }
  }
  return frames;
}
