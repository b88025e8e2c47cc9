/**
 * ES-ImageNet (SPEC §9), both distributions:
 * - "events": `train/…/*.npz` and `val/*.npz` holding uint8 `pos`/`neg` [N, 3] = (row, col, t), label
 *   files `trainlabel.txt` / `vallabel.txt` with lines `<relpath>.npz <label> <a> <b>`. Encoded as the
 *   official loader does: offsets dx = (254 - a) // 2, dy = (254 - b) // 2, binary frames [2, 8, 256, 256]
 *   with frame[0, t-1, row+dx, col+dy] = 1 for pos (channel 1 for neg), cropped to [16:240, 16:240].
 * - "frames": one int8 [2, 8, 224, 224] array `arr_0` per .npz, labels in a csv (`path,class`).
 * Samples are (T, 2, 224, 224) floats, not normalised. T divides 8: with T < 8, each output frame is the
 * union (logical or) of 8 / T consecutive bins. Training augmentation: random horizontal flip.
 */
import { join } from "node:path";
import { flipPlanes } from "./augment/event_frames.ts";
import { augmentFlags } from "./augment/settings.ts";
import {
  type Dataset,
  type DatasetOptions,
  type DatasetSpec,
  isFile,
  readFileOrThrow,
  requireDirectory,
  type Sample,
} from "./dataset.ts";
import { type NpyArray, readNpz } from "./npz.ts";
import type { Rng } from "./rng.ts";

const BINS = 8;
const FULL = 256;
const SIDE = 224;
const OFFSET = 16;
const RESIZED = 254;

interface Entry {
  path: string;
  label: number;
  /** Resized height and width of the source image (events format only). */
  a: number;
  b: number;
}

/** Label files each format may use, per split. */
const LABEL_FILES = {
  events: { train: ["trainlabel.txt"], test: ["vallabel.txt"] },
  frames: {
    train: ["train.csv", "trainlabel.csv", "train_label.csv"],
    test: ["val.csv", "vallabel.csv", "val_label.csv"],
  },
};

export class EsImageNetDataset implements Dataset {
  readonly name = "es-imagenet";
  readonly length: number;
  readonly numClasses: number;
  readonly sampleShape: readonly number[];
  readonly spec: DatasetSpec;
  readonly format: "events" | "frames";
  private readonly entries: Entry[];
  private readonly T: number;
  private readonly flip: boolean;

  constructor(options: DatasetOptions) {
    if (!options.dataDir) {
      throw new Error("es-imagenet: options.dataDir is required (the ES-imagenet-0.18/ folder)");
    }
    requireDirectory(options.dataDir, "es-imagenet");
    const split = options.split ?? "train";
    this.T = options.T ?? BINS;
    if (!Number.isInteger(this.T) || this.T < 1 || BINS % this.T !== 0) {
      throw new Error(`es-imagenet: T = ${options.T} must divide the 8 time bins of the data (1, 2, 4 or 8)`);
    }
    this.numClasses = options.numClasses ?? 1000;
    const candidates = (format: "events" | "frames") =>
      LABEL_FILES[format][split].map((f) => join(options.dataDir!, f));
    let format = options.format;
    if (!format) {
      if (candidates("events").some(isFile)) format = "events";
      else if (candidates("frames").some(isFile)) format = "frames";
      else {
        throw new Error(
          `es-imagenet: ${options.dataDir} has no label file: looked for ${
            [...candidates("events"), ...candidates("frames")].join(", ")
          }`,
        );
      }
    }
    this.format = format;
    const labelPath = candidates(format).find(isFile) ?? candidates(format)[0];
    const text = new TextDecoder().decode(readFileOrThrow(labelPath, "es-imagenet"));
    const entries = format === "events"
      ? this.parseEventLabels(text, labelPath)
      : this.parseCsvLabels(text, labelPath);
    if (entries.length === 0) {
      throw new Error(`es-imagenet: ${labelPath} lists no samples; expected one line per sample`);
    }
    // Paths in the label file are relative to the split folder (official loader) or to the root.
    const splitDir = join(options.dataDir, split === "train" ? "train" : "val");
    const first = entries[0].path;
    const base = isFile(join(splitDir, first))
      ? splitDir
      : isFile(join(options.dataDir, first))
      ? options.dataDir
      : null;
    if (base === null) {
      throw new Error(
        `es-imagenet: ${labelPath} line 1 names ${first}, found neither at ${join(splitDir, first)} ` +
          `nor at ${join(options.dataDir, first)}`,
      );
    }
    this.entries = entries.map((e) => ({ ...e, path: join(base, e.path) }));
    this.length = this.entries.length;
    this.sampleShape = [this.T, 2, SIDE, SIDE];
    this.flip = augmentFlags(options.augment ?? "standard").flip;
    this.spec = { name: "es-imagenet", options: { ...options } };
  }

  private checkLabel(label: number, labelPath: string, lineNumber: number): void {
    if (label < 0 || label >= this.numClasses) {
      throw new Error(
        `es-imagenet: ${labelPath} line ${lineNumber} has label ${label}, outside 0..${
          this.numClasses - 1
        } ` +
          "(set options.numClasses if the data set has more classes)",
      );
    }
  }

  private parseEventLabels(text: string, labelPath: string): Entry[] {
    const entries: Entry[] = [];
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim().length === 0) return;
      const fields = line.trim().split(/\s+/);
      const numbers = fields.slice(1).map(Number);
      if (fields.length !== 4 || !numbers.every(Number.isInteger)) {
        throw new Error(
          `es-imagenet: ${labelPath} line ${i + 1} does not parse: expected "<path>.npz <label> <a> <b>" ` +
            `(four whitespace-separated fields, the last three integers), got ${JSON.stringify(line)}`,
        );
      }
      const [label, a, b] = numbers;
      this.checkLabel(label, labelPath, i + 1);
      if (a < 1 || b < 1 || a > FULL || b > FULL) {
        throw new Error(
          `es-imagenet: ${labelPath} line ${i + 1}: sizes a = ${a}, b = ${b} are outside 1..${FULL}`,
        );
      }
      entries.push({ path: fields[0], label, a, b });
    });
    return entries;
  }

  private parseCsvLabels(text: string, labelPath: string): Entry[] {
    const entries: Entry[] = [];
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim().length === 0) return;
      const fields = line.split(",").map((f) => f.trim());
      const label = Number(fields[1]);
      if (i === 0 && fields.length === 2 && !Number.isInteger(label) && !fields[0].endsWith(".npz")) return; // header
      if (fields.length !== 2 || fields[1] === "" || !Number.isInteger(label)) {
        throw new Error(
          `es-imagenet: ${labelPath} line ${i + 1} does not parse: expected "<path>,<class>", got ${
            JSON.stringify(line)
          }`,
        );
      }
      this.checkLabel(label, labelPath, i + 1);
      entries.push({ path: fields[0], label, a: 0, b: 0 });
    });
    return entries;
  }

  path(index: number): string {
    return this.entries[index].path;
  }

  async get(index: number, rng: Rng, train: boolean): Promise<Sample> {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new Error(`es-imagenet: index ${index} is outside 0..${this.length - 1}`);
    }
    const entry = this.entries[index];
    const data = this.format === "events"
      ? encodeEventFrames(await readNpz(entry.path, ["pos", "neg"]), entry.a, entry.b, this.T, entry.path)
      : framesFromArray((await readNpz(entry.path, ["arr_0"])).get("arr_0")!, this.T, entry.path);
    if (train && this.flip && rng.chance(0.5)) flipPlanes(data, this.T * 2, SIDE, SIDE);
    return { data, label: entry.label };
  }
}

/**
 * The official event-frame encoding (see the file comment), written straight into the cropped
 * (T, 2, 224, 224) output. Events whose shifted position falls outside the 256x256 canvas, or whose
 * t is outside 1..8, are an error (the reference would fail on them too).
 */
export function encodeEventFrames(
  arrays: Map<string, NpyArray>,
  a: number,
  b: number,
  T: number,
  source: string,
): Float32Array {
  const dx = Math.floor((RESIZED - a) / 2);
  const dy = Math.floor((RESIZED - b) / 2);
  const out = new Float32Array(T * 2 * SIDE * SIDE);
  const binsPerFrame = BINS / T;
  ["pos", "neg"].forEach((key, channel) => {
    const array = arrays.get(key)!;
    if (array.dtype !== "uint8" || array.shape.length !== 2 || array.shape[1] !== 3) {
      throw new Error(
        `es-imagenet: ${source}: '${key}' is ${array.dtype} [${
          array.shape.join(", ")
        }], expected uint8 [N, 3] (row, col, t)`,
      );
    }
    const events = array.data as Uint8Array;
    for (let e = 0; e < array.shape[0]; e++) {
      const row = events[e * 3] + dx;
      const col = events[e * 3 + 1] + dy;
      const t = events[e * 3 + 2];
      if (t < 1 || t > BINS || row < 0 || row >= FULL || col < 0 || col >= FULL) {
        throw new Error(
          `es-imagenet: ${source}: ${key} event ${e} (row ${events[e * 3]}, col ${
            events[e * 3 + 1]
          }, t ${t}) lands at ` +
            `(${row}, ${col}) with offsets (${dx}, ${dy}), outside the ${FULL}x${FULL} frame or t outside 1..${BINS}`,
        );
      }
      if (row < OFFSET || row >= OFFSET + SIDE || col < OFFSET || col >= OFFSET + SIDE) continue;
      const frame = Math.floor((t - 1) / binsPerFrame);
      out[((frame * 2 + channel) * SIDE + row - OFFSET) * SIDE + col - OFFSET] = 1;
    }
  });
  return out;
}

/** The pre-framed int8 [2, 8, 224, 224] (C, T, H, W) array as (T, 2, 224, 224) floats. */
export function framesFromArray(array: NpyArray, T: number, source: string): Float32Array {
  const expected = [2, BINS, SIDE, SIDE];
  if (array.shape.length !== 4 || array.shape.some((d, i) => d !== expected[i])) {
    throw new Error(
      `es-imagenet: ${source}: arr_0 has shape [${array.shape.join(", ")}], expected [2, 8, 224, 224]`,
    );
  }
  if (array.dtype !== "int8" && array.dtype !== "uint8" && array.dtype !== "bool") {
    throw new Error(`es-imagenet: ${source}: arr_0 is ${array.dtype}, expected int8`);
  }
  const plane = SIDE * SIDE;
  const out = new Float32Array(T * 2 * plane);
  const binsPerFrame = BINS / T;
  const data = array.data as Int8Array | Uint8Array;
  for (let c = 0; c < 2; c++) {
    for (let bin = 0; bin < BINS; bin++) {
      const from = (c * BINS + bin) * plane;
      const to = (Math.floor(bin / binsPerFrame) * 2 + c) * plane;
      for (let i = 0; i < plane; i++) {
        const v = data[from + i];
        if (binsPerFrame === 1) out[to + i] = v;
        else if (v !== 0) out[to + i] = 1;
      }
    }
  }
  return out;
}
