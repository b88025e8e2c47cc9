/**
 * Firing rates are named by the layer's path in the module tree (the state dict's naming), in
 * ActivityRecorder reports, metrics.jsonl and `report`; the plot is a layer x epoch heatmap with a row
 * for every layer; run folders written before the names (`lif#<n>`) still report.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { report } from "../src/cli/report.ts";
import { createModel } from "../src/models/registry.ts";
import { ActivityRecorder } from "../src/nn/activity.ts";
import { Lif } from "../src/nn/layers.ts";
import { Module } from "../src/nn/module.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { Scope } from "../src/tensor/scope.ts";
import { heatmap } from "../src/pipeline/plots.ts";
import type { EpochRecord } from "../src/pipeline/run_folder.ts";
import { setupGpu } from "./helpers.ts";

/** The layer names a recorder reports for one forward of `run`. */
async function namesOf(model: Module | undefined, run: () => void, kind: "lif" | "synapse" = "lif") {
  const recorder = new ActivityRecorder(model);
  const scope = new Scope();
  try {
    scope.run(() => recorder.run(run));
    return (await recorder.report(1)).layers.filter((l) => l.kind === kind).map((l) => l.name);
  } finally {
    scope.dispose();
    recorder.dispose();
  }
}

function input(shape: number[]): Tensor {
  return Tensor.fromData(
    Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => i % 3),
    shape,
  );
}

Deno.test("activity names layers by their module path: ResNet-19 and the plain CNN", async () => {
  await setupGpu();
  const resnet = createModel("resnet19", { numClasses: 10, T: 1, width: 4, seed: 1 });
  const blocks = [3, 3, 2].flatMap((count, s) =>
    Array.from({ length: count }, (_, i) => [`layer${s + 1}.${i}.lif1`, `layer${s + 1}.${i}.lif2`]).flat()
  );
  const x = input([2, 3, 8, 8]);
  try {
    assert.deepEqual(await namesOf(resnet, () => resnet.forward(x)), ["lif1", ...blocks, "linear_lif"]);
    const synapses = await namesOf(resnet, () => resnet.forward(x), "synapse");
    for (const name of ["conv1", "layer1.0.conv1", "layer2.0.downsample.0", "linear", "linear2"]) {
      assert.ok(synapses.includes(name), `${name} in ${synapses}`);
    }
    const plain = createModel("plain", { numClasses: 10, T: 1, widths: [4, 4, 8], depth: 1, seed: 1 });
    assert.deepEqual(await namesOf(plain, () => plain.forward(x)), [
      "layers.0.2",
      "layers.1.2",
      "layers.2.2",
      "layers.3.2",
    ]);
    // No model given: kind and call order, as before the names.
    assert.deepEqual((await namesOf(undefined, () => plain.forward(x))).slice(0, 2), ["Lif#1", "Lif#3"]);
    plain.dispose();
  } finally {
    resnet.dispose();
    x.dispose();
  }
});

Deno.test("a layer called twice per forward gets #2 on its second call", async () => {
  await setupGpu();
  class Twice extends Module {
    readonly act = this.child("act", new Lif());
  }
  const model = new Twice();
  const x = input([1, 4]);
  assert.deepEqual(await namesOf(model, () => model.act.forward(model.act.forward(x, 1), 1)), [
    "act",
    "act#2",
  ]);
  x.dispose();
});

const svgRows = (svg: string) => [...svg.matchAll(/<g class="row" data-name="([^"]*)">/g)].map((m) => m[1]);

Deno.test("heatmap: one row per layer, one cell per epoch, missing values grey", () => {
  const layers = Array.from({ length: 18 }, (_, i) => `layer${i}.lif`);
  const values = layers.map((_, r) => [0.1, 0.2 + r / 100, r === 3 ? NaN : 0.05]);
  const svg = heatmap(layers, [1, 2, 3], values, { title: "t", xLabel: "epoch", valueLabel: "rate" });
  assert.deepEqual(svgRows(svg), layers);
  assert.equal(svg.match(/<rect x="[^"]*" y="[^"]*" width="[^"]*" height="16"/g)?.length, 18 * 3);
  assert.equal(svg.match(/fill="#e8e8e8"/g)?.length, 1, "the one missing value");
  assert.match(svg, /layer3\.lif, epoch 3: none/);
  assert.match(svg, /layer17\.lif, epoch 2: 0\.3700/);
  assert.match(
    heatmap([], [], [], { title: "t", xLabel: "epoch", valueLabel: "rate" }),
    /no values recorded/,
  );
});

function epochRecord(epoch: number, firingRates: Record<string, number>): EpochRecord {
  const head = { loss: 1, hard: 1, soft: 0, top1: [50], top5: [90] };
  return { type: "epoch", epoch, step: epoch + 1, lr: 0.1, seconds: 1, train: head, test: head, firingRates };
}

Deno.test("report: firing rates by layer name, and old runs' lif#<n> names still read", async () => {
  for (
    const names of [["lif1", "layer1.0.lif1", "layer1.0.lif2", "linear_lif"], ["lif#1", "lif#3", "lif#6"]]
  ) {
    const folder = await Deno.makeTempDir({ prefix: "spikegpu-rates-" });
    try {
      const records = [0, 1, 2].map((epoch) =>
        epochRecord(epoch, Object.fromEntries(names.map((name, i) => [name, 0.01 * (i + 1) * (epoch + 1)])))
      );
      await Deno.mkdir(join(folder, "plots"));
      await Deno.writeTextFile(
        join(folder, "metrics.jsonl"),
        records.map((r) => JSON.stringify(r)).join("\n"),
      );
      const text = await report(folder);
      assert.match(text, /test firing rate per LIF layer/);
      assert.match(text, new RegExp(`^${names[1]} +0\\.0200 +0\\.0400 +0\\.0600$`, "m"));
      const svg = await Deno.readTextFile(join(folder, "plots", "firing_rates.svg"));
      assert.deepEqual(svgRows(svg), names);
    } finally {
      await Deno.remove(folder, { recursive: true });
    }
  }
});
