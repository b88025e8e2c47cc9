/**
 * Model construction: state-dict names, order, shapes and dtypes against the reference implementation's
 * (tests/fixtures/reference/*.tsv, the reference implementation's state_dict listings), surrogate-module
 * geometry and options, and construction errors.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createModel, type ModelOptions } from "../src/models/registry.ts";
import { SurrogateModule } from "../src/models/surrogate_module.ts";
import type { StateEntry } from "../src/nn/module.ts";
import { crossEntropy } from "../src/ops/loss.ts";
import { InitRng } from "../src/nn/init.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { setupGpu, TestRng } from "./helpers.ts";

const REFERENCE = fileURLToPath(new URL("./fixtures/reference/", import.meta.url));

/** `key<TAB>dtype<TAB>[shape]`, the reference TSV's format. */
function describeEntry(entry: StateEntry): string {
  if (entry.kind === "counter") return `${entry.name}\tint64\t[]`;
  const dtype = entry.tensor.dtype === "f32" ? "float32" : entry.tensor.dtype;
  return `${entry.name}\t${dtype}\t[${entry.tensor.shape.join(", ")}]`;
}

const REFERENCE_MODELS: [string, string, ModelOptions][] = [
  ["sb18", "resnet18", {
    numClasses: 10,
    T: 1,
    modules: { positions: [3, 3], kernels: [[7, 5, 3]], width: 256 },
  }],
  ["sb19", "resnet19", {
    numClasses: 10,
    T: 1,
    modules: { positions: [3, 3], kernels: [[7, 5, 3]], width: 256 },
  }],
  ["sb34", "resnet34", {
    numClasses: 1000,
    T: 1,
    imagenetStem: true,
    modules: { positions: [3, 4, 6], kernels: [[7, 5, 3]], width: 256 },
  }],
];

for (const [file, name, options] of REFERENCE_MODELS) {
  Deno.test(`models: ${name} state entries equal the reference state_dict (state_dict_keys_${file}.tsv)`, async () => {
    await setupGpu();
    const expected = (await Deno.readTextFile(`${REFERENCE}state_dict_keys_${file}.tsv`)).trim().split("\n");
    const model = createModel(name, options);
    try {
      const actual = model.stateEntries().map(describeEntry);
      assert.equal(
        actual.length,
        expected.length,
        `${name}: ${actual.length} entries, reference ${expected.length}`,
      );
      actual.forEach((row, i) => assert.equal(row, expected[i], `${name}: entry ${i}`));
    } finally {
      model.dispose();
    }
  });
}

/** Narrow networks: construction errors and geometry do not need the published widths. */
const TINY = { numClasses: 10, T: 1, width: 2 } as const;

Deno.test("models: surrogate positions past the last block are an error naming the block count", async () => {
  await setupGpu();
  assert.throws(
    () => createModel("resnet18", { ...TINY, modules: { positions: [3, 6] } }),
    /positions \[3, 6\] reach block 9, past the last block \(the model has 8\)/,
  );
  assert.throws(
    () => createModel("resnet34", { ...TINY, modules: { positions: [3, 4, 6, 4] } }),
    /reach block 17, past the last block \(the model has 16\)/,
  );
  assert.throws(
    () => createModel("resnet19", { ...TINY, modules: { positions: [0] } }),
    /position 0 is not a positive whole number of blocks/,
  );
  // The last block itself is a valid position.
  const model = createModel("resnet19", { ...TINY, modules: { positions: [8], width: 4 } });
  assert.equal(model.surrogates.length, 1);
  model.dispose();
});

Deno.test("models: a module kernel other than 7, 5, 3, 1 and a kernel-list count mismatch are errors", async () => {
  await setupGpu();
  assert.throws(
    () => createModel("resnet18", { ...TINY, modules: { positions: [3], kernels: [[7, 4, 3]] } }),
    /surrogate module: kernel 4 is not one of 7, 5, 3, 1/,
  );
  assert.throws(
    () => createModel("resnet18", { ...TINY, modules: { positions: [3, 3], kernels: [[7], [5], [3]] } }),
    /3 kernel lists for 2 positions/,
  );
  assert.throws(
    () =>
      new SurrogateModule({ inChannels: 4, numClasses: 10, kernels: [], seed: 0, prefix: "sb_layers.0." }),
    /kernel list is empty/,
  );
});

interface ConvRow {
  name: string;
  shape: readonly number[];
  stride: number;
  padding: number;
}

function moduleConvs(module: SurrogateModule): ConvRow[] {
  return module.convs.items.map((unit, c) => ({
    name: `convs.${c}.0.weight`,
    shape: unit.conv.weight.shape,
    stride: unit.conv.stride,
    padding: unit.conv.padding,
  }));
}

Deno.test("models: a module on C > k channels starts with a 1x1 conv C->k; otherwise the first kernel maps C->k", async () => {
  await setupGpu();
  const wide = new SurrogateModule({
    inChannels: 512,
    numClasses: 10,
    width: 256,
    seed: 0,
    prefix: "sb_layers.0.",
  });
  assert.deepEqual(moduleConvs(wide), [
    { name: "convs.0.0.weight", shape: [256, 512, 1, 1], stride: 1, padding: 0 },
    { name: "convs.1.0.weight", shape: [256, 256, 7, 7], stride: 2, padding: 3 },
    { name: "convs.2.0.weight", shape: [256, 256, 5, 5], stride: 2, padding: 2 },
    { name: "convs.3.0.weight", shape: [256, 256, 3, 3], stride: 1, padding: 1 },
  ]);
  assert.deepEqual(
    wide.stateEntries().filter((e) => e.name.startsWith("prediction.")).map(describeEntry).filter((r) =>
      r.includes("weight")
    ),
    [
      "prediction.2.weight\tfloat32\t[512, 1024]",
      "prediction.3.weight\tfloat32\t[512]",
      "prediction.5.weight\tfloat32\t[10, 512]",
    ],
  );
  wide.dispose();

  const equal = new SurrogateModule({ inChannels: 256, numClasses: 10, seed: 0, prefix: "sb_layers.0." });
  assert.deepEqual(moduleConvs(equal).map((c) => c.shape), [[256, 256, 7, 7], [256, 256, 5, 5], [
    256,
    256,
    3,
    3,
  ]]);
  equal.dispose();

  const narrow = new SurrogateModule({
    inChannels: 128,
    numClasses: 10,
    width: 256,
    kernels: [3, 1],
    seed: 0,
    prefix: "sb_layers.0.",
  });
  assert.deepEqual(moduleConvs(narrow), [
    { name: "convs.0.0.weight", shape: [256, 128, 3, 3], stride: 1, padding: 1 },
    { name: "convs.1.0.weight", shape: [256, 256, 1, 1], stride: 1, padding: 0 },
  ]);
  narrow.dispose();

  // In a model: after block 7 of a width-8 ResNet-18 (64 channels) a k = 16 module reduces 64 -> 16.
  const model = createModel("resnet18", {
    numClasses: 10,
    T: 1,
    width: 8,
    modules: { positions: [7], width: 16 },
  });
  const first = model.stateEntries().find((e) => e.name === "sb_layers.0.convs.0.0.weight")!;
  assert.equal(describeEntry(first), "sb_layers.0.convs.0.0.weight\tfloat32\t[16, 64, 1, 1]");
  model.dispose();
});

Deno.test("models: the module convs draw their weights from InitRng(seed, key), so names decide the init", async () => {
  await setupGpu();
  const module = new SurrogateModule({
    inChannels: 4,
    numClasses: 3,
    width: 4,
    seed: 5,
    prefix: "sb_layers.1.",
  });
  const weight = await module.convs.items[0].conv.weight.readFloat();
  const rng = new InitRng(5, "sb_layers.1.convs.0.0.weight");
  const std = Math.sqrt(2 / (4 * 7 * 7));
  assert.equal(weight[0], Math.fround(rng.normal() * std));
  assert.equal(weight[1], Math.fround(rng.normal() * std));
  module.dispose();
});

/** Values in [-scale, scale). */
function noise(count: number, seed: number, scale: number): Float32Array {
  return new TestRng(seed).uniforms(count, -scale, scale);
}

/**
 * Runs the module-0 cross-entropy backward of a tiny ResNet-18 with one module after block 3 and returns
 * the gradient presence of a backbone parameter before the attachment and of the module's parameters.
 */
async function moduleLossGradients(local: boolean) {
  const model = createModel("resnet18", {
    numClasses: 4,
    T: 2,
    width: 4,
    seed: 3,
    modules: { positions: [3], width: 4, local },
  });
  const input = Tensor.fromData(noise(4 * 3 * 16 * 16, 1, 3), [4, 3, 16, 16], { name: "input" });
  const labels = Tensor.fromData(new Int32Array([0, 1, 2, 3]), [4], { name: "labels" });
  const tape = new Tape();
  try {
    const { moduleLogits, logits } = tape.run(() => model.forward(input));
    const moduleValues = await moduleLogits[0].readFloat();
    const snnValues = await logits.readFloat();
    const loss = tape.run(() => crossEntropy(moduleLogits[0], labels));
    tape.backward(loss);
    const gradNorm = async (name: string) => {
      const grad = model.namedParameters().find(([n]) => n === name)![1].grad;
      return grad ? Math.hypot(...await grad.readFloat()) : null;
    };
    return {
      moduleValues,
      snnValues,
      stem: await gradNorm("conv1.weight"),
      block3: await gradNorm("layer2.0.conv2.weight"),
      afterAttachment: await gradNorm("layer3.0.conv1.weight"),
      module: await gradNorm("sb_layers.0.prediction.5.weight"),
      moduleConv: await gradNorm("sb_layers.0.convs.0.0.weight"),
    };
  } finally {
    tape.dispose();
    model.dispose();
    input.dispose();
    labels.dispose();
  }
}

Deno.test("models: a `local` module trains itself but sends no gradient into the backbone", async () => {
  await setupGpu();
  const shared = await moduleLossGradients(false);
  const local = await moduleLossGradients(true);
  // Detaching changes no forward value.
  assert.deepEqual(local.moduleValues, shared.moduleValues);
  assert.deepEqual(local.snnValues, shared.snnValues);
  // The module loss reaches the backbone up to the attachment point only without `local`.
  assert.ok(shared.stem! > 0 && shared.block3! > 0, `backbone gradients ${shared.stem}, ${shared.block3}`);
  assert.equal(shared.afterAttachment, null);
  assert.equal(local.stem, null);
  assert.equal(local.block3, null);
  assert.equal(local.afterAttachment, null);
  // The module itself is trained either way, with the same gradient.
  assert.ok(local.module! > 0 && local.moduleConv! > 0);
  assert.equal(local.module, shared.module);
  assert.equal(local.moduleConv, shared.moduleConv);
});

Deno.test("models: createModel with an unknown name lists the known ones", () => {
  assert.throws(
    () => createModel("resnet50", { numClasses: 10, T: 1 }),
    /model: unknown name "resnet50"; known: resnet18, resnet34, resnet19, plain/,
  );
});
