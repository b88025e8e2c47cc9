/**
 * Weight and checkpoint IO: safetensors against a PyTorch-written state_dict (tests/oracle/state_dict.py),
 * our exported files checked byte-level without Python, load errors, and msgpack checkpoints.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createModel, type SpikingModel } from "../src/models/registry.ts";
import {
  encodeSafetensors,
  type NamedArray,
  parseSafetensors,
  readSafetensors,
} from "../src/io/safetensors.ts";
import { loadSafetensors, loadStateDict, saveSafetensors, stateDict } from "../src/io/state_dict.ts";
import {
  type Checkpoint,
  CHECKPOINT_FORMAT_VERSION,
  decodeCheckpoint,
  encodeCheckpoint,
  readCheckpoint,
  restoreArray,
  storeArray,
  writeCheckpoint,
} from "../src/io/checkpoint.ts";
import { FIXTURES, setupGpu } from "./helpers.ts";

const TORCH_FILE = `${FIXTURES}state_dict_resnet19_w2.safetensors`;

/** The model tests/oracle/state_dict.py wrote: ResNet-19 width 2, modules of width 4 after blocks 3, 6. */
function torchModel(seed = 0, surrogates = true): SpikingModel {
  return createModel("resnet19", {
    numClasses: 10,
    T: 2,
    width: 2,
    seed,
    modules: surrogates ? { positions: [3, 3], width: 4 } : undefined,
  });
}

function bytesOf(array: NamedArray): Uint8Array {
  return new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
}

/** Same keys in the same order, dtypes, shapes and bit-identical data. */
function assertSameArrays(
  actual: Map<string, NamedArray>,
  expected: Map<string, NamedArray>,
  what: string,
): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: key sets differ`);
  for (const [key, e] of expected) {
    const a = actual.get(key)!;
    assert.equal(a.dtype, e.dtype, `${what}: ${key} dtype`);
    assert.deepEqual(a.shape, e.shape, `${what}: ${key} shape`);
    assert.deepEqual(bytesOf(a), bytesOf(e), `${what}: ${key} data`);
  }
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spikegpu_io_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("io: a PyTorch-written state dict loads with every key, value and int64 counter intact", async () => {
  await setupGpu();
  const torch = await readSafetensors(TORCH_FILE);
  const model = torchModel();
  try {
    assert.deepEqual([...torch.keys()].sort(), model.stateEntries().map((e) => e.name).sort());
    await loadSafetensors(TORCH_FILE, model);
    const loaded = await stateDict(model);
    assertSameArrays(loaded, torch, "state dict after load");
    // The oracle made one counter exceed 2^32: the high word must survive.
    const counters = model.stateEntries().flatMap((e) => e.kind === "counter" ? [e.counter.value] : []);
    assert.equal(counters.at(-1), 2 ** 33 + 12345);
    assert.equal(new Set(counters).size, counters.length);
  } finally {
    model.dispose();
  }
});

/**
 * Checks a safetensors file by hand: 8-byte little-endian header length, a JSON object header, tensors
 * laid out contiguously from offset 0 in the order given, the data section 8-byte aligned, no trailing
 * bytes. Returns the header.
 */
function assertValidSafetensors(bytes: Uint8Array, order: string[]): Record<string, unknown> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  assert.ok(8 + headerLength <= bytes.byteLength, "header length within the file");
  assert.equal((8 + headerLength) % 8, 0, "data section 8-byte aligned");
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  const header = JSON.parse(text) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: number[] }
  >;
  assert.equal(typeof header, "object");
  assert.deepEqual(Object.keys(header), order, "header lists the tensors in state_dict order");
  const width: Record<string, number> = { F32: 4, I64: 8 };
  let offset = 0;
  for (const key of order) {
    const { dtype, shape, data_offsets } = header[key];
    assert.ok(dtype in width, `${key}: dtype ${dtype}`);
    const count = shape.reduce((a, b) => a * b, 1);
    assert.deepEqual(data_offsets, [offset, offset + count * width[dtype]], `${key}: data offsets`);
    offset += count * width[dtype];
  }
  assert.equal(8 + headerLength + offset, bytes.byteLength, "data section ends at the end of the file");
  return header;
}

Deno.test("io: exported safetensors are valid, parse back to the PyTorch tensors, and reload", async () => {
  await setupGpu();
  const torch = await readSafetensors(TORCH_FILE);
  const model = torchModel();
  const fresh = torchModel(99);
  try {
    await loadSafetensors(TORCH_FILE, model);
    await withTempDir(async (dir) => {
      const path = join(dir, "weights.safetensors");
      await saveSafetensors(path, model);
      const bytes = await Deno.readFile(path);
      const order = model.stateEntries().map((e) => e.name);
      const header = assertValidSafetensors(bytes, order);
      assert.deepEqual((header["bn1.num_batches_tracked"] as { shape: number[] }).shape, []);
      assertSameArrays(parseSafetensors(bytes, path), torch, "exported file");
      assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), [
        "weights.safetensors",
      ]);

      await loadSafetensors(path, fresh);
      assertSameArrays(await stateDict(fresh), torch, "reloaded model");
    });
  } finally {
    model.dispose();
    fresh.dispose();
  }
});

Deno.test("io: export without surrogate modules drops sb_layers.* and loads into a model without them", async () => {
  await setupGpu();
  const torch = await readSafetensors(TORCH_FILE);
  const model = torchModel();
  const backboneOnly = torchModel(1, false);
  const withModules = torchModel(2);
  try {
    await loadSafetensors(TORCH_FILE, model);
    await withTempDir(async (dir) => {
      const path = join(dir, "backbone.safetensors");
      await saveSafetensors(path, model, { surrogates: false });
      const exported = await readSafetensors(path);
      const backboneKeys = [...torch.keys()].filter((k) => !k.startsWith("sb_layers."));
      assert.ok(backboneKeys.length < torch.size);
      assert.deepEqual([...exported.keys()].sort(), backboneKeys.sort());
      assertValidSafetensors(
        await Deno.readFile(path),
        model.stateEntries().map((e) => e.name).filter((k) => !k.startsWith("sb_layers.")),
      );

      await loadSafetensors(path, backboneOnly);
      assertSameArrays(await stateDict(backboneOnly), exported, "backbone-only model");
      await assert.rejects(loadSafetensors(path, withModules), /missing sb_layers\.0\.convs\.0\.0\.weight/);
      const modulesBefore = await stateDict(withModules);
      await loadSafetensors(path, withModules, { allowMissingSurrogates: true });
      const after = await stateDict(withModules);
      for (const key of backboneKeys) {
        assert.deepEqual(bytesOf(after.get(key)!), bytesOf(exported.get(key)!), key);
      }
      for (const [key, value] of modulesBefore) {
        if (key.startsWith("sb_layers.")) assert.deepEqual(bytesOf(after.get(key)!), bytesOf(value), key);
      }
    });
  } finally {
    model.dispose();
    backboneOnly.dispose();
    withModules.dispose();
  }
});

/** A copy of the PyTorch arrays with `edit` applied, in the file's order. */
async function editedTorchArrays(
  edit: (arrays: Map<string, NamedArray>) => void,
): Promise<Map<string, NamedArray>> {
  const arrays = await readSafetensors(TORCH_FILE);
  edit(arrays);
  return arrays;
}

/** The last F32 key of the state dict, so a loader that wrote as it validated would have changed much. */
const LAST_WEIGHT = "sb_layers.1.prediction.5.bias";

const BAD_FILES: [string, (arrays: Map<string, NamedArray>) => void, RegExp][] = [
  ["a missing key", (a) => a.delete(LAST_WEIGHT), /missing sb_layers\.1\.prediction\.5\.bias/],
  [
    "an extra key",
    (a) => a.set("sb_layers.2.convs.0.0.weight", { dtype: "F32", shape: [1], data: new Float32Array(1) }),
    /unexpected sb_layers\.2\.convs\.0\.0\.weight/,
  ],
  [
    "a wrong shape",
    (a) => a.set(LAST_WEIGHT, { dtype: "F32", shape: [2, 5], data: new Float32Array(10) }),
    /sb_layers\.1\.prediction\.5\.bias has shape \[2, 5\], the model expects \[10\]/,
  ],
  [
    "a wrong dtype",
    (a) => a.set(LAST_WEIGHT, { dtype: "F64", shape: [10], data: new Float64Array(10) }),
    /sb_layers\.1\.prediction\.5\.bias is F64, expected F32/,
  ],
  [
    "a counter with a float dtype",
    (a) =>
      a.set("sb_layers.1.prediction.3.num_batches_tracked", {
        dtype: "F32",
        shape: [],
        data: new Float32Array(1),
      }),
    /sb_layers\.1\.prediction\.3\.num_batches_tracked should be a scalar I64/,
  ],
];

for (const [label, edit, message] of BAD_FILES) {
  Deno.test(`io: loading a file with ${label} names the file and key and leaves the model untouched`, async () => {
    await setupGpu();
    const model = torchModel(5);
    try {
      const before = await stateDict(model);
      await withTempDir(async (dir) => {
        const path = join(dir, `bad_${label.replaceAll(" ", "_")}.safetensors`);
        await Deno.writeFile(path, encodeSafetensors(await editedTorchArrays(edit)));
        const error = await loadSafetensors(path, model).then(() => null, (e: Error) => e);
        assert.ok(error, `${label}: the load succeeded`);
        assert.match(error.message, message);
        assert.ok(error.message.includes(path), `${label}: "${error.message}" does not name ${path}`);
      });
      assertSameArrays(await stateDict(model), before, `model after a rejected ${label}`);
    } finally {
      model.dispose();
    }
  });
}

/** Encodes the PyTorch file's arrays and lets `corrupt` damage the bytes. */
async function corruptedFile(
  dir: string,
  name: string,
  corrupt: (bytes: Uint8Array) => Uint8Array,
): Promise<string> {
  const path = join(dir, name);
  await Deno.writeFile(path, corrupt(await Deno.readFile(TORCH_FILE)));
  return path;
}

Deno.test("io: a damaged safetensors header is an error naming the file; the model is untouched", async () => {
  await setupGpu();
  const model = torchModel(6);
  try {
    const before = await stateDict(model);
    await withTempDir(async (dir) => {
      const pastEnd = await corruptedFile(dir, "past_end.safetensors", (bytes) => {
        new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.byteLength), true);
        return bytes;
      });
      await assert.rejects(
        loadSafetensors(pastEnd, model),
        (e: Error) => e.message.includes(pastEnd) && /header length \d+ runs past the end/.test(e.message),
      );

      const notJson = await corruptedFile(dir, "not_json.safetensors", (bytes) => {
        bytes.set(new TextEncoder().encode("{not json"), 8);
        return bytes;
      });
      await assert.rejects(
        loadSafetensors(notJson, model),
        (e: Error) => e.message.includes(notJson) && /the header is not valid JSON/.test(e.message),
      );

      const truncated = await corruptedFile(
        dir,
        "truncated.safetensors",
        (bytes) => bytes.subarray(0, bytes.length - 4),
      );
      await assert.rejects(
        loadSafetensors(truncated, model),
        (e: Error) =>
          e.message.includes(truncated) && /tensor \S+ runs past the end of the file/.test(e.message),
      );

      const tiny = await corruptedFile(dir, "tiny.safetensors", (bytes) => bytes.subarray(0, 5));
      await assert.rejects(
        loadSafetensors(tiny, model),
        (e: Error) => e.message.includes(tiny) && /too short/.test(e.message),
      );

      const missing = join(dir, "absent.safetensors");
      await assert.rejects(loadSafetensors(missing, model), (e: Error) => e.message.includes(missing));
    });
    assertSameArrays(await stateDict(model), before, "model after rejected files");
  } finally {
    model.dispose();
  }
});

Deno.test("io: loadStateDict names its source and accepts a map built in memory", async () => {
  await setupGpu();
  const model = torchModel(7);
  try {
    const arrays = await readSafetensors(TORCH_FILE);
    arrays.delete("linear2.bias");
    assert.throws(
      () => loadStateDict(model, arrays, { source: "my weights" }),
      /my weights does not match.*linear2\.bias/,
    );
  } finally {
    model.dispose();
  }
});

/** Float edge cases whose bits must survive: -0, subnormal, infinities, a NaN with payload. */
function edgeFloats(): Float32Array {
  const values = new Float32Array([1.5, -0, 1e-45, Infinity, -Infinity, 3.4028234663852886e38, 0.1]);
  const withNaN = new Float32Array(values.length + 1);
  withNaN.set(values);
  new DataView(withNaN.buffer).setUint32(values.length * 4, 0x7fc0_1234, true);
  return withNaN;
}

function sampleCheckpoint(): Checkpoint {
  return {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    model: { name: "resnet19", options: { numClasses: 10, T: 2, modules: { positions: [3, 3] } } },
    weights: {
      "conv1.weight": storeArray(edgeFloats(), [2, 4]),
      "bn1.num_batches_tracked": storeArray(BigInt64Array.of(2n ** 62n + 7n), []),
      // A view into part of a larger buffer must store only its own bytes.
      "linear.bias": storeArray(new Float32Array([9, 8, 7, 6, 5]).subarray(1, 4)),
    },
    optimizer: {
      kind: "adamw",
      step: 12,
      lr: 0.01,
      hyper: { beta1: 0.9, beta2: 0.999, decoupled: true },
      slots: {
        "conv1.weight": [storeArray(new Float32Array(8).fill(0.25)), storeArray(BigInt64Array.of(-1n, 5n))],
      },
    },
    schedule: { kind: "cosine", epochs: 300 },
    epoch: 3,
    step: 1234,
    rng: { order: [3, 1, 2], state: 0xdeadbeef },
    bestAccuracy: 0.5123,
    config: { lr: 0.01, batch: 256, dataset: "cifar10" },
  };
}

function assertSameCheckpoint(actual: Checkpoint, expected: Checkpoint): void {
  // msgpackr hands binary back as a Uint8Array subclass (Buffer), so bytes compare as plain arrays.
  const plain = (value: unknown): unknown =>
    value instanceof Uint8Array
      ? [...value]
      : Array.isArray(value)
      ? value.map(plain)
      : value && typeof value === "object"
      ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
      : value;
  assert.deepEqual(plain(actual), plain(expected));
  for (const [key, stored] of Object.entries(expected.weights)) {
    const restored = restoreArray(actual.weights[key], key);
    const original = restoreArray(stored, key);
    assert.equal(restored.constructor, original.constructor, key);
    assert.deepEqual(new Uint8Array(restored.buffer), new Uint8Array(original.buffer), `${key} bits`);
  }
}

Deno.test("checkpoint: encode/decode round trip keeps f32 and i64 arrays bit-exact", () => {
  const checkpoint = sampleCheckpoint();
  const decoded = decodeCheckpoint(encodeCheckpoint(checkpoint), "memory");
  assertSameCheckpoint(decoded, checkpoint);
  const bias = restoreArray(decoded.weights["linear.bias"], "linear.bias");
  assert.deepEqual([...bias], [8, 7, 6]);
  const counter = restoreArray(decoded.weights["bn1.num_batches_tracked"], "counter") as BigInt64Array;
  assert.equal(counter[0], 2n ** 62n + 7n);
  const nan = new DataView(restoreArray(decoded.weights["conv1.weight"], "w").buffer).getUint32(7 * 4, true);
  assert.equal(nan, 0x7fc0_1234);
});

Deno.test("checkpoint: truncated bytes, a future format version and a mis-sized array are clear errors", () => {
  const bytes = encodeCheckpoint(sampleCheckpoint());
  for (let length = 0; length < bytes.length; length++) {
    assert.throws(
      () => decodeCheckpoint(bytes.subarray(0, length), "run/last.ckpt"),
      /checkpoint: run\/last\.ckpt (cannot be decoded|is not a spikegpu checkpoint|lacks)/,
      `truncated to ${length} of ${bytes.length} bytes`,
    );
  }
  const future = encodeCheckpoint({ ...sampleCheckpoint(), formatVersion: CHECKPOINT_FORMAT_VERSION + 1 });
  assert.throws(
    () => decodeCheckpoint(future, "new.ckpt"),
    new RegExp(`new\\.ckpt has format version ${CHECKPOINT_FORMAT_VERSION + 1}; this spikegpu reads version`),
  );
  const stored = storeArray(new Float32Array(6), [2, 3]);
  assert.throws(
    () => restoreArray({ ...stored, shape: [2, 4] }, "conv1.weight"),
    /conv1\.weight has 24 bytes/,
  );
});

Deno.test("checkpoint: writeCheckpoint replaces atomically; a failed write leaves the earlier file and no temp file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "last.ckpt");
    const first = sampleCheckpoint();
    await writeCheckpoint(path, first);
    const second = { ...sampleCheckpoint(), epoch: 4, step: 1700 };
    await writeCheckpoint(path, second);
    assertSameCheckpoint(await readCheckpoint(path), second);
    const listing = async () => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(await listing(), ["last.ckpt"]);
    const good = await Deno.readFile(path);

    // The rename fails: the destination is a non-empty directory. The temp file sits next to it.
    const blocked = join(dir, "blocked.ckpt");
    await Deno.mkdir(blocked);
    await Deno.writeTextFile(join(blocked, "keep"), "x");
    await assert.rejects(
      writeCheckpoint(blocked, first),
      (e: Error) => e.message.includes(`cannot write ${blocked}`),
    );
    assert.deepEqual(await listing(), ["blocked.ckpt", "last.ckpt"]);

    // The directory does not exist: nothing can be created.
    const nowhere = join(dir, "missing", "last.ckpt");
    await assert.rejects(
      writeCheckpoint(nowhere, first),
      (e: Error) => e.message.includes(`cannot write ${nowhere}`),
    );
    assert.deepEqual(await listing(), ["blocked.ckpt", "last.ckpt"]);

    assert.deepEqual(await Deno.readFile(path), good);
    assertSameCheckpoint(await readCheckpoint(path), second);
    await assert.rejects(readCheckpoint(join(dir, "absent.ckpt")), /checkpoint: cannot read .*absent\.ckpt/);
  });
});
