/**
 * The bad-input matrix, in process: every data-format corruption of src/data, damaged checkpoints, a
 * checkpoint at another T or channel count, and a bad value for every flag. Each case checks the error
 * names the file or flag and says what was expected, is a plain Error (no raw RangeError or TypeError),
 * and leaves every file around it as it was. The CLI cases (exit codes, run folders) are in
 * bad_input_cli.test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FLAGS, parseConfig } from "../../src/cli/config.ts";
import { modelOptionsFor } from "../../src/pipeline/stages.ts";
import { createDataset } from "../../src/data/registry.ts";
import type { DatasetName, DatasetOptions } from "../../src/data/dataset.ts";
import { DataLoader } from "../../src/data/loader.ts";
import { Rng } from "../../src/data/rng.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import {
  type Checkpoint,
  CHECKPOINT_FORMAT_VERSION,
  encodeCheckpoint,
  readCheckpoint,
  storeArray,
} from "../../src/io/checkpoint.ts";
import { stateDict } from "../../src/io/state_dict.ts";
import { createModel } from "../../src/models/registry.ts";
import { createOptimizer } from "../../src/optim/registry.ts";
import {
  captureCheckpoint,
  restoreCheckpoint,
  type StateSources,
} from "../../src/pipeline/training_state.ts";
import { FIXTURES, setupGpu } from "../helpers.ts";
import {
  cifarPixels,
  cifarRecords,
  npyBytes,
  npzBytes,
  type WritableArray,
  writeFile,
  zipBytes,
} from "../data/writers.ts";
import { assertMessage, expectRejection, note, TINY, withTempDir } from "./helpers.ts";

/** Opens the data set and reads its first sample, where a per-file error shows. */
async function firstSample(name: DatasetName, options: DatasetOptions): Promise<unknown> {
  const dataset = await createDataset(name, { augment: "none", ...options });
  return await dataset.get(0, Rng.seeded(1), false);
}

interface DataCase {
  label: string;
  input: string;
  /** Writes the bad data under `dir`; returns the path the message must name and how to read it. */
  build(dir: string): { subject: string; attempt: () => Promise<unknown> };
  expected: RegExp;
}

function writeCifar10(dir: string, replace: Record<string, Uint8Array> = {}): string {
  const root = `${dir}/cifar-10-batches-bin`;
  const files = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`).concat("test_batch.bin");
  files.forEach((file, i) => {
    const records = [0, 1].map((r) => ({ labels: [(i + r) % 10], pixels: cifarPixels(i * 2 + r) }));
    writeFile(`${root}/${file}`, replace[file] ?? cifarRecords(records));
  });
  return root;
}

const goodRecord = (labels: number[]) => cifarRecords([{ labels, pixels: cifarPixels(3) }]);

const rgbJpeg = () => Deno.readFileSync(`${FIXTURES}data/jpeg/rgb.jpg`);

function writeEsEvents(
  dir: string,
  sample: Record<string, [WritableArray, number[]]> | Uint8Array,
  labels = "c/s.npz 1 100 254\n",
): string {
  const path = `${dir}/train/c/s.npz`;
  writeFile(path, sample instanceof Uint8Array ? sample : npzBytes(sample));
  writeFile(`${dir}/trainlabel.txt`, labels);
  return path;
}

const esEvents = (): Record<string, [WritableArray, number[]]> => ({
  pos: [Uint8Array.from([20, 30, 1, 40, 50, 2]), [2, 3]],
  neg: [new Uint8Array(0), [0, 3]],
});

function writeEsFrames(dir: string, frames: [WritableArray, number[]], labels = "path,class\na/x.npz,4\n") {
  const path = `${dir}/train/a/x.npz`;
  writeFile(path, npzBytes({ arr_0: frames }));
  writeFile(`${dir}/train.csv`, labels);
  return path;
}

const EVENTS = 20;
const dvsEvents = (): Record<string, [WritableArray, number[]]> => ({
  t: [BigInt64Array.from({ length: EVENTS }, (_, i) => BigInt(i)), [EVENTS]],
  x: [Int32Array.from({ length: EVENTS }, (_, i) => (i * 37) % 128), [EVENTS]],
  y: [Int32Array.from({ length: EVENTS }, (_, i) => (i * 11) % 128), [EVENTS]],
  p: [Int32Array.from({ length: EVENTS }, (_, i) => i % 2), [EVENTS]],
});

/** One CIFAR10-DVS sample `cat/a.npz` (plus a good `dog/b.npz`); reading the cat sample is the attempt. */
function dvsCase(dir: string, sample: Uint8Array): { subject: string; attempt: () => Promise<unknown> } {
  const path = `${dir}/cat/a.npz`;
  writeFile(path, sample);
  writeFile(`${dir}/dog/b.npz`, npzBytes(dvsEvents()));
  return { subject: path, attempt: () => firstSample("cifar10-dvs", { dataDir: dir, trainRatio: 1, T: 2 }) };
}

const DATA_CASES: DataCase[] = [
  {
    label: "cifar10: truncated batch file",
    input: "data_batch_3.bin = 1 record + 2000 bytes",
    build(dir) {
      const file = new Uint8Array(3073 + 2000);
      file.set(goodRecord([1]));
      const root = writeCifar10(dir, { "data_batch_3.bin": file });
      return { subject: `${root}/data_batch_3.bin`, attempt: () => firstSample("cifar10", { dataDir: dir }) };
    },
    expected: /is 5073 bytes, not a multiple of 3073 \(one record = 1 label byte\(s\) \+ 3072 pixel bytes\)/,
  },
  {
    label: "cifar10: empty batch file (wrong size)",
    input: "test_batch.bin of 0 bytes",
    build(dir) {
      const root = writeCifar10(dir, { "test_batch.bin": new Uint8Array(0) });
      return {
        subject: `${root}/test_batch.bin`,
        attempt: () => firstSample("cifar10", { dataDir: dir, split: "test" }),
      };
    },
    expected: /is empty; expected records of 3073 bytes/,
  },
  {
    label: "cifar10: label out of range",
    input: "data_batch_2.bin record 1 has label 10",
    build(dir) {
      const bytes = cifarRecords([
        { labels: [3], pixels: cifarPixels(0) },
        { labels: [10], pixels: cifarPixels(1) },
      ]);
      const root = writeCifar10(dir, { "data_batch_2.bin": bytes });
      return { subject: `${root}/data_batch_2.bin`, attempt: () => firstSample("cifar10", { dataDir: dir }) };
    },
    expected: /record 1 has label 10 at byte 0, outside 0\.\.9/,
  },
  {
    label: "cifar10: missing batch file",
    input: "data_batch_5.bin removed",
    build(dir) {
      const root = writeCifar10(dir);
      Deno.removeSync(`${root}/data_batch_5.bin`);
      return { subject: `${root}/data_batch_5.bin`, attempt: () => firstSample("cifar10", { dataDir: dir }) };
    },
    expected: /cifar10: file \S+ does not exist/,
  },
  {
    label: "cifar10: data folder is a file",
    input: "dataDir = test_batch.bin",
    build(dir) {
      const root = writeCifar10(dir);
      const path = `${root}/test_batch.bin`;
      return { subject: path, attempt: () => firstSample("cifar10", { dataDir: path }) };
    },
    expected: /is not a directory/,
  },
  {
    label: "cifar100: coarse label out of range",
    input: "train.bin record 0 coarse label 20",
    build(dir) {
      const path = `${dir}/cifar-100-binary/train.bin`;
      writeFile(path, goodRecord([20, 5]));
      return { subject: path, attempt: () => firstSample("cifar100", { dataDir: dir }) };
    },
    expected: /record 0 has label 20 at byte 0, outside 0\.\.19/,
  },
  {
    label: "cifar100: fine label out of range",
    input: "train.bin record 0 fine label 100",
    build(dir) {
      const path = `${dir}/cifar-100-binary/train.bin`;
      writeFile(path, goodRecord([2, 100]));
      return { subject: path, attempt: () => firstSample("cifar100", { dataDir: dir }) };
    },
    expected: /record 0 has label 100 at byte 1, outside 0\.\.99/,
  },
  {
    label: "imagenet: bad JPEG (not an image)",
    input: "train/n01/a.JPEG = 600 bytes of junk, onDecodeError stop",
    build(dir) {
      const path = `${dir}/train/n01/a.JPEG`;
      writeFile(path, new Uint8Array(600).fill(0x5a));
      return {
        subject: path,
        attempt: () => firstSample("imagenet", { dataDir: dir, onDecodeError: "stop" }),
      };
    },
    expected: /does not decode .*expected a baseline or progressive JPEG/,
  },
  {
    label: "imagenet: truncated JPEG",
    input: "train/n01/a.JPEG = first 300 bytes of a JPEG, onDecodeError stop",
    build(dir) {
      const path = `${dir}/train/n01/a.JPEG`;
      writeFile(path, rgbJpeg().subarray(0, 300));
      return {
        subject: path,
        attempt: () => firstSample("imagenet", { dataDir: dir, onDecodeError: "stop" }),
      };
    },
    expected: /does not decode .*expected a baseline or progressive JPEG/,
  },
  {
    label: "imagenet: empty JPEG file",
    input: "train/n01/a.JPEG of 0 bytes, onDecodeError stop",
    build(dir) {
      const path = `${dir}/train/n01/a.JPEG`;
      writeFile(path, new Uint8Array(0));
      return {
        subject: path,
        attempt: () => firstSample("imagenet", { dataDir: dir, onDecodeError: "stop" }),
      };
    },
    expected: /does not decode .*expected a baseline or progressive JPEG/,
  },
  {
    label: "imagenet: empty data set",
    input: "train/n01/ and train/n02/ hold only a .txt",
    build(dir) {
      writeFile(`${dir}/train/n01/notes.txt`, "no images");
      Deno.mkdirSync(`${dir}/train/n02`);
      return { subject: `${dir}/train`, attempt: () => firstSample("imagenet", { dataDir: dir }) };
    },
    expected: /holds no \.JPEG files in its class folders; expected at least one image/,
  },
  {
    label: "imagenet: no class folders",
    input: "train/ holds a JPEG but no <wnid>/ folder",
    build(dir) {
      writeFile(`${dir}/train/a.JPEG`, rgbJpeg());
      return { subject: `${dir}/train`, attempt: () => firstSample("imagenet", { dataDir: dir }) };
    },
    expected: /has no class folders; expected <wnid>\/ folders of \.JPEG files/,
  },
  {
    label: "imagenet: validation class missing from train",
    input: "val/n09/ with train/ holding only n01/",
    build(dir) {
      writeFile(`${dir}/train/n01/a.JPEG`, rgbJpeg());
      writeFile(`${dir}/val/n09/b.JPEG`, rgbJpeg());
      return {
        subject: `${dir}/val/n09`,
        attempt: () => firstSample("imagenet", { dataDir: dir, split: "test" }),
      };
    },
    expected: /is a class folder that \S+\/train does not have/,
  },
  {
    label: "es-imagenet: truncated .npz",
    input: "train/c/s.npz cut 30 bytes short",
    build(dir) {
      const bytes = npzBytes(esEvents());
      const path = writeEsEvents(dir, bytes.subarray(0, bytes.length - 30));
      return { subject: path, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /has no zip end-of-central-directory record: the file is truncated/,
  },
  {
    label: "es-imagenet: bad zip (not a zip)",
    input: "train/c/s.npz = text",
    build(dir) {
      const path = writeEsEvents(
        dir,
        new TextEncoder().encode("these are not the events you are looking for"),
      );
      return { subject: path, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /it is not a zip archive \(an \.npz is one\)/,
  },
  {
    label: "es-imagenet: bad npy dtype",
    input: "pos as float32 [2, 3]",
    build(dir) {
      const path = writeEsEvents(dir, { ...esEvents(), pos: [new Float32Array(6), [2, 3]] });
      return { subject: path, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /'pos' is float32 \[2, 3\], expected uint8 \[N, 3\]/,
  },
  {
    label: "es-imagenet: bad npy shape",
    input: "pos as uint8 [3, 2]",
    build(dir) {
      const path = writeEsEvents(dir, { ...esEvents(), pos: [new Uint8Array(6), [3, 2]] });
      return { subject: path, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /'pos' is uint8 \[3, 2\], expected uint8 \[N, 3\]/,
  },
  {
    label: "es-imagenet: missing member",
    input: "train/c/s.npz without neg",
    build(dir) {
      const path = writeEsEvents(dir, { pos: esEvents().pos });
      return { subject: path, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /has no array 'neg'; it has pos/,
  },
  {
    label: "es-imagenet: bad npy header",
    input: "pos.npy without the \\x93NUMPY magic",
    build(dir) {
      const pos = npyBytes(esEvents().pos[0], [2, 3]);
      pos.set(new TextEncoder().encode("NOTNPY"));
      const neg = npyBytes(new Uint8Array(0), [0, 3]);
      const path = writeEsEvents(dir, zipBytes({ "pos.npy": pos, "neg.npy": neg }));
      return { subject: `${path}:pos.npy`, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /does not start with the \\x93NUMPY magic: not an \.npy array/,
  },
  {
    label: "es-imagenet: event label out of range",
    input: "trainlabel.txt label 1000",
    build(dir) {
      writeEsEvents(dir, esEvents(), "c/s.npz 1000 100 254\n");
      return {
        subject: `${dir}/trainlabel.txt`,
        attempt: () => firstSample("es-imagenet", { dataDir: dir }),
      };
    },
    expected: /line 1 has label 1000, outside 0\.\.999/,
  },
  {
    label: "es-imagenet: label line does not parse",
    input: 'trainlabel.txt line "c/s.npz one 100 254"',
    build(dir) {
      writeEsEvents(dir, esEvents(), "c/s.npz one 100 254\n");
      return {
        subject: `${dir}/trainlabel.txt`,
        attempt: () => firstSample("es-imagenet", { dataDir: dir }),
      };
    },
    expected: /line 1 does not parse: expected "<path>\.npz <label> <a> <b>"/,
  },
  {
    label: "es-imagenet: empty data set",
    input: "trainlabel.txt with no lines",
    build(dir) {
      writeEsEvents(dir, esEvents(), "\n");
      return {
        subject: `${dir}/trainlabel.txt`,
        attempt: () => firstSample("es-imagenet", { dataDir: dir }),
      };
    },
    expected: /lists no samples; expected one line per sample/,
  },
  {
    label: "es-imagenet: T that does not divide the 8 bins",
    input: "T = 3",
    build(dir) {
      writeEsEvents(dir, esEvents());
      return { subject: "T = 3", attempt: () => firstSample("es-imagenet", { dataDir: dir, T: 3 }) };
    },
    expected: /must divide the 8 time bins of the data \(1, 2, 4 or 8\)/,
  },
  {
    label: "es-imagenet frames: bad npy shape",
    input: "arr_0 int8 [2, 8, 4, 4]",
    build(dir) {
      const path = writeEsFrames(dir, [new Int8Array(2 * 8 * 16), [2, 8, 4, 4]]);
      return { subject: path, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /arr_0 has shape \[2, 8, 4, 4\], expected \[2, 8, 224, 224\]/,
  },
  {
    label: "es-imagenet frames: bad npy dtype",
    input: "arr_0 float32 [2, 8, 224, 224]",
    build(dir) {
      const path = writeEsFrames(dir, [new Float32Array(2 * 8 * 224 * 224), [2, 8, 224, 224]]);
      return { subject: path, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /arr_0 is float32, expected int8/,
  },
  {
    label: "es-imagenet frames: label out of range",
    input: "train.csv class -3",
    build(dir) {
      writeEsFrames(dir, [new Int8Array(2 * 8 * 16), [2, 8, 4, 4]], "path,class\na/x.npz,-3\n");
      return { subject: `${dir}/train.csv`, attempt: () => firstSample("es-imagenet", { dataDir: dir }) };
    },
    expected: /line 2 has label -3, outside 0\.\.999/,
  },
  {
    label: "cifar10-dvs: empty data set",
    input: "class folders cat/, dog/ without .npz files",
    build(dir) {
      Deno.mkdirSync(`${dir}/cat`);
      Deno.mkdirSync(`${dir}/dog`);
      return { subject: dir, attempt: () => firstSample("cifar10-dvs", { dataDir: dir }) };
    },
    expected: /holds no \.npz files in its class folders \(cat, dog\); expected one \.npz of events/,
  },
  {
    label: "cifar10-dvs: no class folders",
    input: "a.npz directly in the data folder",
    build(dir) {
      writeFile(`${dir}/a.npz`, npzBytes(dvsEvents()));
      return { subject: dir, attempt: () => firstSample("cifar10-dvs", { dataDir: dir }) };
    },
    expected: /has no class folders; expected one folder of \.npz files per class/,
  },
  {
    label: "cifar10-dvs: truncated .npz",
    input: "cat/a.npz cut to 200 bytes",
    build: (dir) => dvsCase(dir, npzBytes(dvsEvents()).subarray(0, 200)),
    expected: /has no zip end-of-central-directory record: the file is truncated/,
  },
  {
    label: "cifar10-dvs: bad zip (damaged header)",
    input: "cat/a.npz with its first local zip header zeroed",
    build(dir) {
      const bytes = npzBytes(dvsEvents());
      bytes.fill(0, 0, 4);
      return dvsCase(dir, bytes);
    },
    expected: /member t\.npy has no local zip header at offset 0: the file is corrupt/,
  },
  {
    label: "cifar10-dvs: bad npy dtype",
    input: "x.npy with dtype '<c8'",
    build(dir) {
      const events = dvsEvents();
      const members = Object.fromEntries(
        Object.entries(events).map(([k, [data, shape]]) => [`${k}.npy`, npyBytes(data, shape)]),
      );
      members["x.npy"] = npyBytes(events.x[0], [EVENTS / 2], "<c8");
      return dvsCase(dir, zipBytes(members));
    },
    expected: /x\.npy has dtype '<c8', which is not supported \(supported: bool, uint8/,
  },
  {
    label: "cifar10-dvs: npy data shorter than its shape",
    input: "y.npy header says (40,), holds 20 int32",
    build(dir) {
      const events = dvsEvents();
      const members = Object.fromEntries(
        Object.entries(events).map(([k, [data, shape]]) => [`${k}.npy`, npyBytes(data, shape)]),
      );
      members["y.npy"] = npyBytes(events.y[0], [2 * EVENTS]);
      return dvsCase(dir, zipBytes(members));
    },
    expected: /y\.npy is truncated: shape \(40\) of <i4 needs 160 bytes, the file has 80/,
  },
  {
    label: "cifar10-dvs: bad npy shape",
    input: "x as int32 [20, 2]",
    build: (dir) => dvsCase(dir, npzBytes({ ...dvsEvents(), x: [new Int32Array(2 * EVENTS), [EVENTS, 2]] })),
    expected: /t, x, y, p have lengths 20, 40, 20, 20; expected equal/,
  },
  {
    label: "cifar10-dvs: missing member",
    input: "cat/a.npz without p",
    build(dir) {
      const { t, x, y } = dvsEvents();
      return dvsCase(dir, npzBytes({ t, x, y }));
    },
    expected: /has no array 'p'; it has t, x, y/,
  },
  {
    label: "cifar10-dvs: event outside the sensor",
    input: "x = 200 on the 128x128 sensor",
    build(dir) {
      const events = dvsEvents();
      (events.x[0] as Int32Array)[5] = 200;
      return dvsCase(dir, npzBytes(events));
    },
    expected: /event 5 at \(x 200, y 55\) is outside the 128x128 sensor/,
  },
];

for (const dataCase of DATA_CASES) {
  Deno.test(`bad input, data: ${dataCase.label}`, async () => {
    await withTempDir(async (dir) => {
      const { subject, attempt } = dataCase.build(dir);
      await expectRejection({ ...dataCase, root: dir, attempt, subject });
    });
  });
}

Deno.test("bad input, data: mnist is embedded; a bad split is refused", async () => {
  await withTempDir(async (dir) => {
    await expectRejection({
      label: "mnist: bad split",
      input: 'split "val"',
      root: dir,
      attempt: () => createDataset("mnist", { split: "val" as "test" }),
      subject: "split",
      expected: /must be "train" or "test", got "val"/,
    });
  });
});

Deno.test("bad input, data: an epoch whose every JPEG is unreadable stops instead of training on nothing", async () => {
  await withTempDir(async (dir) => {
    writeFile(`${dir}/train/n01/a.JPEG`, new Uint8Array(700).fill(1));
    writeFile(`${dir}/train/n02/b.JPEG`, rgbJpeg().subarray(0, 250));
    const dataset = await createDataset("imagenet", { dataDir: dir });
    const loader = new DataLoader(dataset, { batchSize: 1 });
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (message: string) => warnings.push(message);
    try {
      await expectRejection({
        label: "imagenet: every sample skipped (skip mode)",
        input: "two undecodable JPEGs, onDecodeError skip",
        root: dir,
        attempt: async () => {
          for await (const _ of loader.epoch(0)) assert.fail("a batch came out of unreadable files");
        },
        subject: "imagenet",
        expected:
          /all 2 samples of epoch 1 were skipped as unreadable .*expected at least one readable sample/,
      });
    } finally {
      console.warn = warn;
      loader.close();
    }
    for (const file of ["n01/a.JPEG", "n02/b.JPEG"]) {
      assert.ok(warnings.some((w) => w.includes(`${dir}/train/${file}`)), `no warning names ${file}`);
    }
  });
});

/** A valid, minimal checkpoint of the TINY run's shape (no GPU needed to decode it). */
function plainCheckpoint(): Checkpoint {
  return {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    model: { name: "plain", options: { numClasses: 10, T: 1 } },
    weights: { "linear.bias": storeArray(new Float32Array(10)) },
    optimizer: {
      kind: "adamw",
      step: 0,
      lr: 0.01,
      hyper: {},
      slots: { exp_avg: [storeArray(new Float32Array(10))] },
    },
    schedule: {},
    epoch: 1,
    step: 3,
    rng: { seed: 0, epoch: 1, batchInEpoch: 0 },
    bestAccuracy: 10,
    config: {},
  };
}

const DAMAGED_CHECKPOINTS: [string, string, (c: Record<string, unknown>) => void, RegExp][] = [
  [
    "a weight that is not an array",
    'weights["linear.bias"] = "garbage"',
    (c) => ((c.weights as Record<string, unknown>)["linear.bias"] = "garbage"),
    /weights\["linear\.bias"\] is garbage; expected \{dtype: f32\|i32\|u32\|i64, shape, bytes\}/,
  ],
  [
    "a weight with an unknown dtype",
    'weights["linear.bias"].dtype = "f16"',
    (c) => ((c.weights as Record<string, Record<string, unknown>>)["linear.bias"].dtype = "f16"),
    /weights\["linear\.bias"\] is an object with keys \[dtype, shape, bytes\]; expected \{dtype: f32/,
  ],
  [
    "no model options",
    "model = { name }",
    (c) => (c.model = { name: "plain" }),
    /model\.options is undefined; expected an object of model options/,
  ],
  [
    "a negative epoch",
    "epoch = -1",
    (c) => (c.epoch = -1),
    /epoch is -1; expected a whole number >= 0/,
  ],
  [
    "optimizer slots that are not arrays",
    'optimizer.slots.exp_avg = {"a": 1}',
    (c) => ((c.optimizer as { slots: Record<string, unknown> }).slots.exp_avg = { a: 1 }),
    /optimizer\.slots\["exp_avg"\] is an object with keys \[a\]; expected a list of \{dtype, shape, bytes\}/,
  ],
  [
    "no format version",
    "formatVersion removed",
    (c) => delete c.formatVersion,
    /is not a spikegpu checkpoint \(no format version\)/,
  ],
];

for (const [label, input, damage, expected] of DAMAGED_CHECKPOINTS) {
  Deno.test(`bad input, checkpoint: ${label}`, async () => {
    await withTempDir(async (dir) => {
      const checkpoint = plainCheckpoint() as unknown as Record<string, unknown>;
      damage(checkpoint);
      const path = join(dir, "latest.ckpt");
      await Deno.writeFile(path, encodeCheckpoint(checkpoint as unknown as Checkpoint));
      await expectRejection({
        label: `checkpoint: ${label}`,
        input,
        root: dir,
        attempt: () => readCheckpoint(path),
        subject: path,
        expected,
      });
    });
  });
}

function tinySources(extra: string[], inChannels: number): StateSources {
  const { config } = parseConfig([...TINY, ...extra]);
  const modelOptions = modelOptionsFor(config, 10, inChannels);
  const model = createModel(config.model, modelOptions);
  return {
    modelName: config.model,
    modelOptions: modelOptions as unknown as Record<string, unknown>,
    model,
    optimizer: createOptimizer(config.optimizer, model.parameters(), { lr: config.lr }),
    config: config as unknown as Record<string, unknown>,
    seed: 0,
  };
}

function dispose(sources: StateSources): void {
  sources.optimizer.dispose();
  sources.model.dispose();
}

Deno.test("bad input, checkpoint: T may change on resume; input channels may not", async () => {
  await setupGpu();
  await withTempDir(async (dir) => {
    const saved = tinySources([], 1);
    const path = join(dir, "latest.ckpt");
    await Deno.writeFile(
      path,
      encodeCheckpoint(
        await captureCheckpoint(saved, { epoch: 1, step: 3, batchInEpoch: 0, bestAccuracy: 5 }),
      ),
    );
    const weights = await stateDict(saved.model);
    dispose(saved);
    // T only sets how many steps the same weights run: a staged-T run resumes at T = 3.
    const staged = tinySources(["--T", "3"], 1);
    const progress = await restoreCheckpoint(await readCheckpoint(path), staged, path);
    assert.deepEqual(progress, { epoch: 1, step: 3, batchInEpoch: 0, bestAccuracy: 5 });
    const restored = await stateDict(staged.model);
    for (const [name, array] of weights) assert.deepEqual(restored.get(name)!.data, array.data, name);
    dispose(staged);
    await note(
      "checkpoint: T changed on resume (T=1 -> T=3)",
      "restoreCheckpoint at --T 3",
      "accepted",
      "pass (legal)",
    );

    const rgb = tinySources([], 3);
    await expectRejection({
      label: "checkpoint: input channels differ (1 -> 3)",
      input: "a 1-channel checkpoint restored into a 3-channel model",
      root: dir,
      attempt: async () => restoreCheckpoint(await readCheckpoint(path), rgb, path),
      subject: `--resume: ${path}`,
      expected: /model option inChannels=1, this run asks for 3; expected the checkpoint's --dataset/,
    });
    dispose(rgb);
  });
  await synchronize();
});

/** A bad value for every validated flag, with what the message must say it expected. */
const BAD_FLAG_VALUES: Record<string, [string, RegExp]> = {
  "preset": ["cifar11", /expected one of mnist/],
  "dataset": ["svhn", /expected one of mnist, cifar10, cifar100, imagenet, es-imagenet, cifar10-dvs/],
  "model": ["vgg16", /expected one of resnet18, resnet34, resnet19, plain/],
  "width": ["0", /expected a whole number >= 1/],
  "depth": ["-1", /expected a whole number >= 0/],
  "T": ["1.5", /expected a whole number >= 1/],
  "batch-size": ["0", /expected a whole number >= 1/],
  "epochs": ["ten", /expected a whole number >= 1/],
  "lr": ["0", /expected a number > 0/],
  "optimizer": ["rmsprop", /expected one of sgd, adam, adamw/],
  "momentum": ["1.5", /expected a number in \[0, 1\]/],
  "weight-decay": ["-0.1", /expected a number >= 0/],
  "schedule": ["step", /expected one of cosine, none/],
  "cos-T-max": ["-1", /expected a whole number >= 0/],
  "warmup-epochs": ["x", /expected a whole number >= 0/],
  "sb-places": ["3,0", /expected comma-separated whole numbers >= 1/],
  "sb-kernels": ["9", /expected comma-separated groups of the digits 7, 5, 3, 1/],
  "sb-width": ["0", /expected a whole number >= 1/],
  "temperature": ["0", /expected a number > 0/],
  "alpha": ["-1", /expected a number >= 0/],
  "lambda": ["1.5", /expected a number in \[0, 1\]/],
  "surrogate": ["relu", /expected one of dspike, sigmoid, atan/],
  "augment": ["blur", /expected one of none, standard, autoaugment, cutout/],
  "workers": ["-1", /expected a whole number >= 0/],
  "prefetch": ["1.5", /expected a whole number >= 0/],
  "seed": ["-3", /expected a whole number >= 0/],
  "eval-every": ["0", /expected a whole number >= 1/],
  "log-every": ["0", /expected a whole number >= 1/],
  "checkpoint-every": ["-1", /expected a whole number >= 0/],
  "max-steps": ["1e400", /expected a whole number >= 0/],
  "train-limit": ["-5", /expected a whole number >= 0/],
  "test-limit": ["NaN", /expected a whole number >= 0/],
};

/** String flags whose value is a path, checked when it is used (see bad_input_cli.test.ts). */
const PATH_FLAGS = ["data-dir", "output-dir", "resume", "init-weights", "export-weights"];

function parseError(args: string[]): string {
  try {
    parseConfig(args);
  } catch (error) {
    assert.equal((error as Error).constructor, Error);
    return (error as Error).message;
  }
  assert.fail(`${args.join(" ")} was accepted`);
}

Deno.test("bad input, flags: every flag with a bad value is refused, naming the flag and what it expected", async () => {
  for (const [flag, spec] of Object.entries(FLAGS)) {
    if (spec.type === "boolean") {
      const message = parseError([`--${flag}=yes`]);
      assertMessage(message, `--${flag}`, /does not take an argument/, `--${flag}=yes`);
      await note(`flag --${flag} given a value`, `--${flag}=yes`, message);
      continue;
    }
    if (PATH_FLAGS.includes(flag)) continue;
    assert.ok(flag in BAD_FLAG_VALUES, `--${flag} has no bad-value case`);
    const [value, expected] = BAD_FLAG_VALUES[flag];
    const message = parseError([`--${flag}=${value}`]);
    assertMessage(message, `--${flag}: got "${value}"`, expected, `--${flag} ${value}`);
    await note(`flag --${flag} bad value`, `--${flag} ${value}`, message);
  }
  // Blank, non-numeric and infinite text for every numeric flag.
  for (const [flag, [, expected]] of Object.entries(BAD_FLAG_VALUES)) {
    if (!/whole number|a number/.test(expected.source)) continue;
    for (const value of ["", " ", "abc", "Infinity"]) {
      const message = parseError([`--${flag}=${value}`]);
      assertMessage(message, `--${flag}: got ${JSON.stringify(value)}`, expected, `--${flag} "${value}"`);
    }
  }
});

const BAD_COMBINATIONS: [string, string[], string, RegExp][] = [
  ["a flag without its value", ["--T"], "--T", /argument missing; see --help/],
  ["an unknown flag", ["--learning-rate", "0.1"], "--learning-rate", /Unknown option .*see --help/],
  ["a positional argument", ["extra"], "'extra'", /does not take positional arguments/],
  [
    "a data set without --data-dir",
    ["--dataset", "cifar10"],
    "--data-dir",
    /cifar10 data set needs its folder/,
  ],
  [
    "warm-up as long as training",
    ["--warmup-epochs", "4", "--epochs", "4"],
    "--warmup-epochs",
    /got 4, expected fewer than --epochs \(4\)/,
  ],
  ["--test-only without weights", ["--test-only"], "--test-only", /needs weights to evaluate: give --resume/],
  [
    "--resume with --init-weights",
    ["--resume", "a.ckpt", "--init-weights", "b.safetensors"],
    "--init-weights",
    /cannot be combined with --resume/,
  ],
  [
    "kernel groups not matching the modules",
    ["--sb-places", "2,2", "--sb-kernels", "753,53,3"],
    "--sb-kernels",
    /expected one group or 2 \(one per --sb-places entry\)/,
  ],
  [
    "es-imagenet T not dividing its 8 bins",
    ["--dataset", "es-imagenet", "--data-dir", "es", "--T", "3"],
    "--T: got 3",
    /expected 1, 2, 4 or 8 for es-imagenet/,
  ],
];

for (const [label, args, subject, expected] of BAD_COMBINATIONS) {
  Deno.test(`bad input, flags: ${label}`, async () => {
    const message = parseError(args);
    assertMessage(message, subject, expected, label);
    await note(`flags: ${label}`, args.join(" "), message);
  });
}
