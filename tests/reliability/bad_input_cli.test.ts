/**
 * The bad-input matrix through the real `train` command: corrupt weights, checkpoints and data, paths
 * that cannot be written, and flags the model or adapter refuses. Every case must exit non-zero with an
 * `error:` line naming the file or flag and what was expected, write no run folder or temp file, and
 * leave every existing checkpoint, export and data file byte-identical. All of them fail before a
 * training step, so none compiles a kernel.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../../src/cli/config.ts";
import { modelOptionsFor } from "../../src/pipeline/stages.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { type Checkpoint, encodeCheckpoint, restoreArray, storeArray } from "../../src/io/checkpoint.ts";
import { encodeSafetensors, type NamedArray } from "../../src/io/safetensors.ts";
import { createModel } from "../../src/models/registry.ts";
import { createOptimizer } from "../../src/optim/registry.ts";
import { captureCheckpoint } from "../../src/pipeline/training_state.ts";
import { setupGpu } from "../helpers.ts";
import { cifarPixels, cifarRecords, npzBytes, writeFile } from "../data/writers.ts";
import {
  assertTreeUnchanged,
  expectCliFailure,
  note,
  readOnlyFolder,
  runTrain,
  snapshot,
  TINY,
  withTempDir,
} from "./helpers.ts";

/** A checkpoint of the TINY run (or of `extra` flags on top of it), as the CLI would have written it. */
async function tinyCheckpoint(extra: string[]): Promise<Checkpoint> {
  const { config } = parseConfig([...TINY, ...extra]);
  const modelOptions = modelOptionsFor(config, 10, 1);
  const model = createModel(config.model, modelOptions);
  const optimizer = createOptimizer(config.optimizer, model.parameters(), { lr: config.lr });
  const checkpoint = await captureCheckpoint({
    modelName: config.model,
    modelOptions: modelOptions as unknown as Record<string, unknown>,
    model,
    optimizer,
    config: config as unknown as Record<string, unknown>,
    seed: 0,
  }, { epoch: 1, step: 3, batchInEpoch: 0, bestAccuracy: 10 });
  optimizer.dispose();
  model.dispose();
  return checkpoint;
}

/** The checkpoint's weights as the safetensors export of the same model holds them. */
function exportedWeights(checkpoint: Checkpoint): Map<string, NamedArray> {
  return new Map(
    Object.entries(checkpoint.weights).map(([name, stored]): [string, NamedArray] => [name, {
      dtype: stored.dtype === "i64" ? "I64" : "F32",
      shape: stored.shape,
      data: restoreArray(stored, name) as Float32Array | BigInt64Array,
    }]),
  );
}

/** The files every case runs against: a finished run folder, an earlier export, checkpoints, data. */
async function writeInputs(root: string): Promise<void> {
  await setupGpu();
  const good = await tinyCheckpoint([]);
  const goodBytes = encodeCheckpoint(good);
  writeFile(`${root}/run/checkpoints/latest.ckpt`, goodBytes);
  writeFile(`${root}/run/config.json`, "{}\n");
  const weights = exportedWeights(good);
  writeFile(`${root}/export.safetensors`, encodeSafetensors(weights));
  writeFile(`${root}/ckpt/truncated.ckpt`, goodBytes.subarray(0, 1000));
  writeFile(`${root}/ckpt/future.ckpt`, encodeCheckpoint({ ...good, formatVersion: 99 }));
  writeFile(`${root}/ckpt/resnet18.ckpt`, encodeCheckpoint(await tinyCheckpoint(["--model", "resnet18"])));
  writeFile(`${root}/ckpt/sgd.ckpt`, encodeCheckpoint(await tinyCheckpoint(["--optimizer", "sgd"])));
  const damaged = structuredClone(good) as unknown as { weights: Record<string, unknown> };
  damaged.weights["layers.0.0.weight"] = "garbage";
  writeFile(`${root}/ckpt/damaged.ckpt`, encodeCheckpoint(damaged as unknown as Checkpoint));
  const missized = structuredClone(good);
  missized.weights["layers.0.0.weight"] = storeArray(new Float32Array(5), [4, 1, 3, 3]);
  writeFile(`${root}/ckpt/missized.ckpt`, encodeCheckpoint(missized));
  await Deno.mkdir(`${root}/ckpt/folder.ckpt`);

  const edited = (edit: (arrays: Map<string, NamedArray>) => void) => {
    const copy = new Map(weights);
    edit(copy);
    return encodeSafetensors(copy);
  };
  const stem = weights.get("layers.0.0.weight")!;
  assert.deepEqual(stem.shape, [4, 1, 3, 3]);
  writeFile(`${root}/weights/missing_key.safetensors`, edited((a) => a.delete("layers.0.0.weight")));
  writeFile(
    `${root}/weights/extra_key.safetensors`,
    edited((a) => a.set("layers.9.weight", { dtype: "F32", shape: [2], data: new Float32Array(2) })),
  );
  writeFile(
    `${root}/weights/wrong_shape.safetensors`,
    edited((a) =>
      a.set("layers.0.0.weight", { dtype: "F32", shape: [4, 3, 3, 3], data: new Float32Array(108) })
    ),
  );
  writeFile(
    `${root}/weights/wrong_dtype.safetensors`,
    edited((a) =>
      a.set("layers.0.0.weight", { dtype: "F64", shape: [4, 1, 3, 3], data: new Float64Array(36) })
    ),
  );
  const bytes = encodeSafetensors(weights);
  const pastEnd = bytes.slice();
  new DataView(pastEnd.buffer).setBigUint64(0, BigInt(bytes.length), true);
  writeFile(`${root}/weights/header_past_end.safetensors`, pastEnd);
  const notJson = bytes.slice();
  notJson.set(new TextEncoder().encode("{not json"), 8);
  writeFile(`${root}/weights/not_json.safetensors`, notJson);
  writeFile(`${root}/weights/truncated.safetensors`, bytes.subarray(0, bytes.length - 6));

  const cifar = `${root}/cifar/cifar-10-batches-bin`;
  for (
    const [i, file] of [1, 2, 3, 4, 5].map((n) => `data_batch_${n}.bin`).concat("test_batch.bin").entries()
  ) {
    writeFile(`${cifar}/${file}`, cifarRecords([{ labels: [i], pixels: cifarPixels(i) }]));
  }
  writeFile(`${root}/cifar100/train.bin`, cifarRecords([{ labels: [1, 42], pixels: cifarPixels(1) }]));
  writeFile(`${root}/cifar100/test.bin`, cifarRecords([{ labels: [2, 7], pixels: cifarPixels(2) }]));
  writeFile(
    `${root}/cifar_truncated/data_batch_1.bin`,
    cifarRecords([{ labels: [1], pixels: cifarPixels(1) }]),
  );
  for (const file of [2, 3, 4, 5].map((n) => `data_batch_${n}.bin`).concat("test_batch.bin")) {
    writeFile(`${root}/cifar_truncated/${file}`, new Uint8Array(3073 * 2 - 1));
  }
  writeFile(`${root}/cifar_label/data_batch_1.bin`, cifarRecords([{ labels: [11], pixels: cifarPixels(1) }]));
  for (const file of [2, 3, 4, 5].map((n) => `data_batch_${n}.bin`).concat("test_batch.bin")) {
    writeFile(`${root}/cifar_label/${file}`, cifarRecords([{ labels: [1], pixels: cifarPixels(1) }]));
  }
  writeFile(`${root}/imagenet/train/n01/a.JPEG`, new Uint8Array(400).fill(9));
  writeFile(`${root}/imagenet/train/n02/b.JPEG`, new Uint8Array(400).fill(8));
  writeFile(`${root}/imagenet/val/n01/c.JPEG`, new Uint8Array(400).fill(7));
  const events = (n: number, xOffset: number) =>
    npzBytes({
      t: [BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [n]],
      x: [Int32Array.from({ length: n }, (_, i) => (i * 37) % 128 + xOffset), [n]],
      y: [Int32Array.from({ length: n }, (_, i) => (i * 11) % 128), [n]],
      p: [Int32Array.from({ length: n }, (_, i) => i % 2), [n]],
    });
  // Every training sample of class "cat" is out of the sensor: the first batch fails whatever the order.
  writeFile(`${root}/dvs/cat/a.npz`, events(30, 200));
  writeFile(`${root}/dvs/dog/b.npz`, events(30, 200));
  Deno.mkdirSync(`${root}/dvs_empty/cat`, { recursive: true });
  writeFile(
    `${root}/es/train/c/s.npz`,
    npzBytes({ pos: [new Uint8Array(3), [1, 3]], neg: [new Uint8Array(0), [0, 3]] }),
  );
  writeFile(`${root}/es/trainlabel.txt`, "c/s.npz 1200 100 254\n");
  writeFile(`${root}/not_a_folder`, "a regular file\n");
  await synchronize();
}

interface CliCase {
  label: string;
  input: string;
  args: (root: string) => string[];
  /** What the error line must name (a path under the root, or a flag). */
  subject: (root: string) => string;
  expected: RegExp;
  /** Paths a case may create: the run folder of an error found while reading batches. */
  added?: string[];
}

/** Fails before training whatever else the run would do: each flag sits on top of this. */
const RUN = ["--epochs", "1", "--output-dir", "out", "--export-weights", "export.safetensors"];

const CASES: CliCase[] = [
  {
    label: "flag: --T 0 (parse error, no run folder)",
    input: "--T 0 --output-dir out",
    args: () => ["--T", "0", "--output-dir", "out"],
    subject: () => "--T",
    expected: /got "0", expected a whole number >= 1/,
  },
  {
    label: "flag: unknown flag, default run folder not created",
    input: "--learning-rate 0.1",
    args: () => ["--learning-rate", "0.1"],
    subject: () => "--learning-rate",
    expected: /Unknown option .*see --help for the flags/,
  },
  {
    label: "flag: module position past the last layer (plain)",
    input: "--model plain --sb-places 3,1",
    args: () => [...TINY, ...RUN, "--sb-places", "3,1"],
    subject: () => "--sb-places: got 3,1 for --model plain",
    expected: /positions \[3, 1\] reach layer 4, past the last layer \(the model has 3\)/,
  },
  {
    label: "flag: module position past the last block (resnet18)",
    input: "--model resnet18 --width 4 --sb-places 5,4",
    args: () => [...TINY, ...RUN, "--model", "resnet18", "--sb-places", "5,4"],
    subject: () => "--sb-places: got 5,4 for --model resnet18",
    expected: /reach block 9, past the last block \(the model has 8\)/,
  },
  {
    label: "flag: es-imagenet with a T that does not divide its 8 bins",
    input: "--dataset es-imagenet --T 3",
    args: (root) => [...RUN, "--dataset", "es-imagenet", "--data-dir", `${root}/es`, "--T", "3"],
    subject: () => "--T: got 3",
    expected: /expected 1, 2, 4 or 8 for es-imagenet/,
  },
  {
    label: "output: --output-dir under a regular file",
    input: "--output-dir not_a_folder/run",
    args: (root) => [...TINY, "--epochs", "1", "--output-dir", `${root}/not_a_folder/run`],
    subject: (root) => `--output-dir: cannot write the run folder ${root}/not_a_folder/run`,
    expected: /Not a directory.*expected a folder path this process can create and write/,
  },
  {
    label: "output: --export-weights under a regular file",
    input: "--export-weights not_a_folder/w.safetensors",
    args: (root) => [...TINY, "--epochs", "1", "--export-weights", `${root}/not_a_folder/w.safetensors`],
    subject: (root) => `--export-weights: cannot write ${root}/not_a_folder/w.safetensors`,
    expected: /Not a directory.*expected a file path in a writable folder/,
  },
  {
    label: "output: --export-weights is a folder",
    input: "--export-weights run",
    args: (root) => [...TINY, "--epochs", "1", "--export-weights", `${root}/run`],
    subject: (root) => `--export-weights: cannot write ${root}/run`,
    expected: /it is a directory.*expected a file path in a writable folder/,
  },
  {
    label: "checkpoint: --resume of a missing file",
    input: "--resume ckpt/absent.ckpt",
    args: (root) => [...TINY, ...RUN, "--resume", `${root}/ckpt/absent.ckpt`],
    subject: (root) => `${root}/ckpt/absent.ckpt`,
    expected: /checkpoint: cannot read .*No such file or directory/,
  },
  {
    label: "checkpoint: --resume of a folder",
    input: "--resume ckpt/folder.ckpt/",
    args: (root) => [...TINY, ...RUN, "--resume", `${root}/ckpt/folder.ckpt`],
    subject: (root) => `${root}/ckpt/folder.ckpt`,
    expected: /checkpoint: cannot read .*Is a directory/,
  },
  {
    label: "checkpoint: truncated (--resume)",
    input: "first 1000 bytes of a checkpoint",
    args: (root) => [...TINY, ...RUN, "--resume", `${root}/ckpt/truncated.ckpt`],
    subject: (root) => `${root}/ckpt/truncated.ckpt`,
    expected: /cannot be decoded \(.*\): truncated or not a spikegpu checkpoint/,
  },
  {
    label: "checkpoint: from another model (--resume)",
    input: "a resnet18 checkpoint resumed as --model plain",
    args: (root) => [...TINY, ...RUN, "--resume", `${root}/ckpt/resnet18.ckpt`],
    subject: (root) => `--resume: ${root}/ckpt/resnet18.ckpt`,
    expected: /holds a resnet18 model, this run builds plain; expected --model resnet18/,
  },
  {
    label: "checkpoint: future format version (--test-only)",
    input: "formatVersion 99, --test-only",
    args: (root) => [...TINY, "--test-only", "--resume", `${root}/ckpt/future.ckpt`],
    subject: (root) => `${root}/ckpt/future.ckpt`,
    expected: /has format version 99; this spikegpu reads version 1/,
  },
  {
    label: "checkpoint: from another optimizer (--resume)",
    input: "an sgd checkpoint resumed with --optimizer adamw",
    args: (root) => [...TINY, ...RUN, "--resume", `${root}/ckpt/sgd.ckpt`],
    subject: (root) => `--resume: ${root}/ckpt/sgd.ckpt`,
    expected: /holds sgd optimizer state .*; expected --optimizer sgd/,
  },
  {
    label: "checkpoint: a safetensors file given to --resume",
    input: "--resume export.safetensors",
    args: (root) => [...TINY, ...RUN, "--resume", `${root}/export.safetensors`],
    subject: (root) => `${root}/export.safetensors`,
    expected: /cannot be decoded .*: truncated or not a spikegpu checkpoint/,
  },
  {
    label: "checkpoint: damaged weight entry (--test-only)",
    input: 'weights["layers.0.0.weight"] = "garbage"',
    args: (root) => [...TINY, "--test-only", "--resume", `${root}/ckpt/damaged.ckpt`],
    subject: (root) => `${root}/ckpt/damaged.ckpt`,
    expected: /weights\["layers\.0\.0\.weight"\] is garbage; expected \{dtype/,
  },
  {
    label: "checkpoint: weight bytes not matching its shape (--resume)",
    input: "layers.0.0.weight: 5 floats for shape [4, 1, 3, 3]",
    args: (root) => [...TINY, ...RUN, "--resume", `${root}/ckpt/missized.ckpt`],
    subject: (root) => `${root}/ckpt/missized.ckpt: layers.0.0.weight`,
    expected: /has 20 bytes, shape \[4,1,3,3\] needs 144/,
  },
  {
    label: "checkpoint: input channels differ (--resume on cifar10)",
    input: "a 1-channel MNIST checkpoint resumed on 3-channel CIFAR-10",
    args: (root) => [
      ...TINY,
      ...RUN,
      "--resume",
      `${root}/run/checkpoints/latest.ckpt`,
      "--dataset",
      "cifar10",
      "--data-dir",
      `${root}/cifar`,
    ],
    subject: (root) => `--resume: ${root}/run/checkpoints/latest.ckpt`,
    expected: /model option inChannels=1, this run asks for 3; expected the checkpoint's --dataset/,
  },
  {
    label: "checkpoint: class count differs (--test-only on cifar100)",
    input: "a 10-class checkpoint evaluated on CIFAR-100",
    args: (root) => [
      ...TINY,
      "--test-only",
      "--resume",
      `${root}/run/checkpoints/latest.ckpt`,
      "--dataset",
      "cifar100",
      "--data-dir",
      `${root}/cifar100`,
    ],
    subject: (root) => `--resume: ${root}/run/checkpoints/latest.ckpt`,
    expected: /model option numClasses=10, this run asks for 100; expected the checkpoint's --dataset/,
  },
  ...(
    [
      ["missing key", "missing_key", /does not match the model: missing layers\.0\.0\.weight/],
      ["extra key", "extra_key", /does not match the model: unexpected layers\.9\.weight/],
      [
        "wrong shape",
        "wrong_shape",
        /layers\.0\.0\.weight has shape \[4, 3, 3, 3\], the model expects \[4, 1, 3, 3\]/,
      ],
      ["wrong dtype", "wrong_dtype", /layers\.0\.0\.weight is F64, expected F32/],
      [
        "header length past the file end",
        "header_past_end",
        /header length \d+ runs past the end of the \d+-byte file \(truncated or not a safetensors file\)/,
      ],
      ["non-JSON header", "not_json", /the header is not valid JSON/],
      ["truncated data", "truncated", /tensor \S+ runs past the end of the file \(truncated\)/],
    ] as [string, string, RegExp][]
  ).map(([what, file, expected]): CliCase => ({
    label: `safetensors: ${what} (--init-weights)`,
    input: `--init-weights weights/${file}.safetensors`,
    args: (root) => [...TINY, ...RUN, "--init-weights", `${root}/weights/${file}.safetensors`],
    subject: (root) => `${root}/weights/${file}.safetensors`,
    expected,
  })),
  {
    label: "safetensors: a checkpoint given to --init-weights",
    input: "--init-weights run/checkpoints/latest.ckpt",
    args: (root) => [...TINY, ...RUN, "--init-weights", `${root}/run/checkpoints/latest.ckpt`],
    subject: (root) => `${root}/run/checkpoints/latest.ckpt`,
    expected: /runs past the end of the \d+-byte file \(truncated or not a safetensors file\)/,
  },
  {
    label: "safetensors: --init-weights of a missing file",
    input: "--init-weights weights/absent.safetensors",
    args: (root) => [...TINY, ...RUN, "--init-weights", `${root}/weights/absent.safetensors`],
    subject: (root) => `${root}/weights/absent.safetensors`,
    expected: /safetensors: cannot read .*No such file or directory/,
  },
  {
    label: "data: --data-dir that does not exist",
    input: "--dataset cifar10 --data-dir nowhere",
    args: (root) => [...TINY, ...RUN, "--dataset", "cifar10", "--data-dir", `${root}/nowhere`],
    subject: (root) => `${root}/nowhere`,
    expected: /cifar10: directory \S+ does not exist/,
  },
  {
    label: "data: cifar10 truncated batch file",
    input: "data_batch_2.bin of 6145 bytes",
    args: (root) => [...TINY, ...RUN, "--dataset", "cifar10", "--data-dir", `${root}/cifar_truncated`],
    subject: (root) => `${root}/cifar_truncated/data_batch_2.bin`,
    expected: /is 6145 bytes, not a multiple of 3073/,
  },
  {
    label: "data: cifar10 label out of range",
    input: "data_batch_1.bin label 11",
    args: (root) => [...TINY, ...RUN, "--dataset", "cifar10", "--data-dir", `${root}/cifar_label`],
    subject: (root) => `${root}/cifar_label/data_batch_1.bin`,
    expected: /record 0 has label 11 at byte 0, outside 0\.\.9/,
  },
  {
    label: "data: es-imagenet label out of range",
    input: "trainlabel.txt label 1200",
    args: (root) => [...TINY, ...RUN, "--dataset", "es-imagenet", "--data-dir", `${root}/es`],
    subject: (root) => `${root}/es/trainlabel.txt`,
    expected: /line 1 has label 1200, outside 0\.\.999/,
  },
  {
    label: "data: cifar10-dvs empty data set",
    input: "class folder cat/ without .npz files",
    args: (root) => [...TINY, ...RUN, "--dataset", "cifar10-dvs", "--data-dir", `${root}/dvs_empty`],
    subject: (root) => `${root}/dvs_empty`,
    expected: /holds no \.npz files in its class folders \(cat\); expected one \.npz of events/,
  },
  {
    label: "data: cifar10-dvs events outside the sensor, read by a worker",
    input: "every sample's x = 200..327 on a 128x128 sensor, --workers 1",
    args: (
      root,
    ) => [...TINY, ...RUN, "--dataset", "cifar10-dvs", "--data-dir", `${root}/dvs`, "--workers", "1"],
    subject: (root) => `${root}/dvs/`,
    expected: /\.npz: event 0 at \(x 200, y 0\) is outside the 128x128 sensor/,
    added: ["out/", "out/checkpoints/", "out/plots/", "out/config.json"],
  },
  {
    label: "data: imagenet where every JPEG is undecodable",
    input: "three JPEGs of junk bytes (skip mode)",
    args: (root) => [...TINY, ...RUN, "--dataset", "imagenet", "--data-dir", `${root}/imagenet`],
    subject: () => "imagenet",
    expected: /all 2 samples of epoch 1 were skipped as unreadable .*expected at least one readable sample/,
    added: ["out/", "out/checkpoints/", "out/plots/", "out/config.json"],
  },
];

Deno.test("bad input, CLI: each case exits non-zero, names the file or flag, and writes nothing", async (t) => {
  await withTempDir(async (root) => {
    await writeInputs(root);
    for (const cliCase of CASES) {
      await t.step(cliCase.label, async () => {
        const out = await expectCliFailure({
          label: cliCase.label,
          cwd: root,
          args: cliCase.args(root),
          input: cliCase.input,
          subject: cliCase.subject(root),
          expected: cliCase.expected,
          added: cliCase.added,
        });
        if (cliCase.label.startsWith("data: imagenet")) {
          for (const file of ["train/n01/a.JPEG", "train/n02/b.JPEG"]) {
            assert.ok(out.includes(`${root}/imagenet/${file} does not decode`), `no warning names ${file}`);
          }
        }
        await Deno.remove(join(root, "out"), { recursive: true }).catch(() => {});
      });
    }

    await t.step("output: --output-dir in a read-only folder", async () => {
      const folder = await readOnlyFolder(root);
      if (!folder) {
        // Permission bits do not stop root; the regular-file case above covers it.
        await note(
          "output: --output-dir in a read-only folder",
          "--output-dir read-only/run (chmod 555)",
          "not run: permission bits do not block root",
          "skipped (root)",
        );
        return;
      }
      await expectCliFailure({
        label: "output: --output-dir in a read-only folder",
        cwd: root,
        args: [...TINY, "--epochs", "1", "--output-dir", `${folder}/run`],
        input: "--output-dir read-only/run (chmod 555)",
        subject: `--output-dir: cannot write the run folder ${folder}/run`,
        expected: /expected a folder path this process can create and write/,
      });
    });

    await t.step("flag: --f16", async () => {
      const before = await snapshot(root);
      const args = [...TINY, "--f16", "--epochs", "1", "--max-steps", "1", "--output-dir", "f16"];
      const { code, out } = await runTrain(args, root);
      if (code === 0) {
        // The adapter has shader-f16: a run must then really happen.
        assert.match(out, /done: /);
        await Deno.stat(join(root, "f16", "checkpoints", "latest.ckpt"));
        await Deno.remove(join(root, "f16"), { recursive: true });
        await note("flag: --f16", "--f16 on an adapter with shader-f16", "trained");
        return;
      }
      const error = out.split("\n").find((line) => line.startsWith("error: ")) ?? "";
      assert.match(error, /--f16: .*has no shader-f16/, out);
      await assertTreeUnchanged(root, before, "--f16");
      await note("flag: --f16", "--f16", `${error} (exit ${code})`);
    });
  });
});
