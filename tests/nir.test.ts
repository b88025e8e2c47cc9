/**
 * Export to NIR (docs/nir.md), checked against snnTorch. tests/oracle/nir_models.ts trained three small
 * models and exported them (tests/fixtures/nir_<name>.ckpt, .nir); tests/oracle/nir_oracle.py read each
 * .nir with the reference `nir` package, ran it in snnTorch (import_from_nir) for T steps and stored the
 * inputs, snnTorch's logits averaged over T and the spike trains of the first two LIF layers. Here the
 * checkpoints are exported again (the file must be the one snnTorch ran) and our own forward must give
 * snnTorch's logits to 1e-4 and the same spikes; the oracle chose inputs with no membrane near the
 * threshold and recorded the margin, so no spike may differ.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportNirCommand, loadCheckpointModel, parseExportArgs } from "../src/cli/export_nir.ts";
import { decodeCheckpoint, encodeCheckpoint } from "../src/io/checkpoint.ts";
import { exportNir, nirGraph } from "../src/io/nir.ts";
import { type NirGraph, poolWindow } from "../src/io/nir_graph.ts";
import { decodeNir, encodeNir } from "../src/io/nir_hdf5.ts";
import { importNir } from "../src/io/nir_import.ts";
import { createModel, type SpikingModel } from "../src/models/registry.ts";
import type { PlainSpikingCnn } from "../src/models/plain_cnn.ts";
import { SpikingResNet } from "../src/models/spiking_resnet.ts";
import { expandTime } from "../src/ops/time.ts";
import { Scope } from "../src/tensor/scope.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { FIXTURES, setupGpu } from "./helpers.ts";

interface ConsumerRun {
  commits: Record<string, string>;
  T: number;
  input_shape: number[];
  inputs: number[][];
  logits: number[][];
  layers: { node: string; shape: number[]; spikes: string[] }[];
  min_margin: number;
  near_threshold: number;
  firing_rates: Record<string, number>;
}

async function readNir(path: string): Promise<NirGraph> {
  return (await decodeNir(await Deno.readFile(path), path)).graph;
}

function assertSameGraph(actual: NirGraph, expected: NirGraph, what: string): void {
  assert.deepEqual(actual.edges.toSorted(), expected.edges.toSorted(), `${what}: edges`);
  assert.deepEqual(actual.metadata, expected.metadata, `${what}: metadata`);
  assert.deepEqual([...actual.nodes.keys()].sort(), [...expected.nodes.keys()].sort(), `${what}: nodes`);
  for (const [name, node] of expected.nodes) {
    const other = actual.nodes.get(name)!;
    assert.deepEqual(Object.keys(other).sort(), Object.keys(node).sort(), `${what}: ${name} fields`);
    for (const [field, value] of Object.entries(node)) {
      const mine = other[field];
      if (typeof value === "string" || typeof mine === "string") {
        assert.equal(mine, value, `${what}: ${name}.${field}`);
        continue;
      }
      assert.equal(mine.dtype, value.dtype, `${what}: ${name}.${field} dtype`);
      assert.deepEqual(mine.shape, value.shape, `${what}: ${name}.${field} shape`);
      // Bit-exact: the same weights folded by the same code.
      assert.deepEqual(mine.data, value.data, `${what}: ${name}.${field} values`);
    }
  }
}

/** Our spikes of the first two LIF layers (the ones the oracle recorded), time-major (T*B, ...). */
function firstLayerSpikes(model: SpikingModel, input: Tensor): Tensor[] {
  const T = model.T;
  const x = expandTime(input, T);
  if (model instanceof SpikingResNet) {
    const stem = model.lif1.afterBatchNorm(model.bn1, model.conv1.forward(x), T);
    const block = model.blocks[0];
    return [stem, block.lif1.afterBatchNorm(block.bn1, block.conv1.forward(stem), T)];
  }
  const [first, second] = (model as PlainSpikingCnn).layers.items;
  const s0 = first.forward(x, T);
  return [s0, second.forward(s0, T)];
}

for (const name of ["resnet18", "resnet19", "plain"]) {
  Deno.test(`nir: ${name} exports the file snnTorch ran, and runs as snnTorch runs it`, async () => {
    await setupGpu();
    const consumer: ConsumerRun = JSON.parse(await Deno.readTextFile(`${FIXTURES}nir_${name}_snntorch.json`));
    const { model } = await loadCheckpointModel(`${FIXTURES}nir_${name}.ckpt`);
    const dir = await Deno.makeTempDir();
    const scope = new Scope();
    try {
      const path = join(dir, `${name}.nir`);
      const summary = await exportNir(model, path, { inputShape: consumer.input_shape });
      assertSameGraph(await readNir(path), await readNir(`${FIXTURES}nir_${name}.nir`), name);
      assert.equal(summary.bytes, (await Deno.stat(path)).size);

      const B = consumer.inputs.length;
      const [logits, spikes] = scope.run(() => {
        const input = Tensor.fromData(
          Float32Array.from(consumer.inputs.flat()),
          [B, ...consumer.input_shape],
          {
            name: "input",
          },
        );
        return [model.forward(input).logits, firstLayerSpikes(model, input)] as const;
      });
      const ours = await logits.readFloat();
      const theirs = consumer.logits.flat();
      const scale = Math.max(...theirs.map(Math.abs));
      const error = Math.max(...theirs.map((v, i) => Math.abs(ours[i] - v))) / scale;
      assert.ok(error <= 1e-4, `${name}: logits differ from snnTorch's by ${error} (relative to ${scale})`);

      let compared = 0;
      let mismatched = 0;
      for (const [l, layer] of consumer.layers.entries()) {
        const values = await spikes[l].readFloat();
        const perStep = layer.shape.reduce((a, b) => a * b, 1);
        for (let b = 0; b < B; b++) {
          for (let t = 0; t < consumer.T; t++) {
            for (let i = 0; i < perStep; i++) {
              const mine = values[(t * B + b) * perStep + i];
              const their = layer.spikes[b][t * perStep + i] === "1" ? 1 : 0;
              compared++;
              if (mine !== their) mismatched++;
            }
          }
        }
      }
      // The inputs keep every membrane at least min_margin from the threshold: no spike may differ.
      assert.equal(
        consumer.near_threshold,
        0,
        `${name}: the oracle kept inputs with membranes at the threshold`,
      );
      assert.equal(mismatched, 0, `${name}: ${mismatched} of ${compared} spikes differ from snnTorch's`);
      const spiking = Object.values(consumer.firing_rates).filter((r) => r > 0).length;
      console.log(
        `nir ${name}: max logit error ${error.toExponential(2)} (rel.), ${compared} spikes of ` +
          `${consumer.layers.map((l) => l.node).join(", ")} equal, min membrane margin ` +
          `${consumer.min_margin.toExponential(2)}, ${spiking}/${
            Object.keys(consumer.firing_rates).length
          } ` +
          `LIF layers spiking, ${summary.bytes} bytes`,
      );
    } finally {
      scope.dispose();
      model.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("nir: the graph maps BN-folded convolutions, LIF parameters, residual edges and drops modules", async () => {
  await setupGpu();
  const model = createModel("resnet18", {
    numClasses: 3,
    T: 2,
    width: 2,
    modules: { positions: [2], kernels: [[3]], width: 4 },
    lif: { tau: 0.25, threshold: 0.75 },
  });
  try {
    model.eval();
    const graph = await nirGraph(model, { inputShape: [3, 8, 8], dt: 1e-3 });
    assert.ok(![...graph.nodes.keys()].some((n) => n.startsWith("sb")), "surrogate modules are not exported");
    const incoming = (node: string) =>
      graph.edges.filter(([, to]) => to === node).map(([from]) => from).sort();
    assert.deepEqual(incoming("layer1.0.lif2"), ["layer1.0.conv2", "lif1"], "identity shortcut: two edges");
    assert.deepEqual(incoming("layer2.0.lif2"), ["layer2.0.conv2", "layer2.0.downsample"]);
    const lif = graph.nodes.get("layer2.0.lif1")!;
    assert.equal(lif.type, "LIF");
    const value = (field: string) => {
      const array = lif[field];
      assert.ok(typeof array !== "string" && array.dtype === "f64");
      assert.deepEqual(array.shape, [4, 4, 4]);
      return array.data[0] as number;
    };
    // decay 0.25 at dt 1e-3: tau = dt / 0.75, r = 1 / 0.75, so dt/tau = 0.75 = 1 - decay and r*dt/tau = 1.
    assert.ok(Math.abs(1 - 1e-3 / value("tau") - 0.25) < 1e-15);
    assert.ok(Math.abs(value("r") * 1e-3 / value("tau") - 1) < 1e-15);
    assert.equal(value("v_leak"), 0);
    assert.equal(value("v_threshold"), 0.75);
    assert.equal(value("v_reset"), 0);
    assert.deepEqual(graph.nodes.get("avgpool")!.kernel_size, {
      dtype: "i64",
      shape: [2],
      data: BigInt64Array.of(1n, 1n),
    });
    assert.equal(graph.metadata.T, 2);
    assert.equal(graph.metadata.dt, 1e-3);
  } finally {
    model.dispose();
  }
});

Deno.test("nir: adaptive pooling is AvgPool2d where its bins share one size and spacing", () => {
  assert.deepEqual(poolWindow(4, 1), { kernel: 4, stride: 4 });
  assert.deepEqual(poolWindow(8, 2), { kernel: 4, stride: 4 });
  // PyTorch's bins of 7 -> 2 are 0..4 and 3..7.
  assert.deepEqual(poolWindow(7, 2), { kernel: 4, stride: 3 });
  assert.deepEqual(poolWindow(9, 3), { kernel: 3, stride: 3 });
  // 5 -> 3: bins 0..2, 1..4, 3..5 differ in size.
  assert.equal(poolWindow(5, 3), null);
});

Deno.test("nir: a neuron without leak is NIR's IF", async () => {
  await setupGpu();
  const model = createModel("plain", { numClasses: 2, T: 2, widths: [2, 2, 2], lif: { tau: 1 } });
  try {
    const graph = await nirGraph(model, { inputShape: [3, 8, 8] });
    const node = graph.nodes.get("layers.0.lif")!;
    assert.equal(node.type, "IF");
    assert.deepEqual(Object.keys(node).sort(), ["r", "type", "v_reset", "v_threshold"]);
  } finally {
    model.dispose();
  }
});

Deno.test("nir: what NIR cannot express is refused, and nothing is written", async () => {
  await setupGpu();
  const dir = await Deno.makeTempDir();
  const path = join(dir, "model.nir");
  await Deno.writeTextFile(path, "previous");
  const cases: [string, SpikingModel, number[], RegExp][] = [
    [
      "a decay above 1",
      createModel("plain", { numClasses: 2, T: 1, widths: [2, 2, 2], lif: { tau: 1.5 } }),
      [3, 8, 8],
      /decay \(tau\) 1.5/,
    ],
    [
      "a zero threshold",
      createModel("plain", { numClasses: 2, T: 1, widths: [2, 2, 2], lif: { threshold: 0 } }),
      [3, 8, 8],
      /threshold 0; NIR fires when v > v_threshold/,
    ],
    [
      "an input with the wrong channel count",
      createModel("resnet19", { numClasses: 2, T: 1, width: 2 }),
      [1, 8, 8],
      /has 1 channels, the model's stem expects 3/,
    ],
  ];
  try {
    for (const [what, model, inputShape, message] of cases) {
      try {
        await assert.rejects(exportNir(model, path, { inputShape }), message, what);
      } finally {
        model.dispose();
      }
      assert.equal(await Deno.readTextFile(path), "previous", `${what}: the previous file is untouched`);
    }
    const model = createModel("plain", { numClasses: 2, T: 1, widths: [2, 2, 2] });
    try {
      const missing = join(dir, "no", "such", "folder", "model.nir");
      await assert.rejects(exportNir(model, missing, { inputShape: [3, 8, 8] }), /cannot write .*model\.nir/);
    } finally {
      model.dispose();
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["model.nir"], "no temp file is left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nir: export-nir writes the checkpoint's model and names bad flags and checkpoints", async () => {
  await setupGpu();
  const dir = await Deno.makeTempDir();
  const checkpoint = `${FIXTURES}nir_plain.ckpt`;
  try {
    const out = join(dir, "plain.nir");
    // The checkpoint's run trained on mnist: export-nir takes its 1x28x28 sample shape.
    const args = parseExportArgs(["--resume", checkpoint, "--out", out])!;
    const summary = await exportNirCommand(args);
    assert.equal(summary.nodes, 15);
    assertSameGraph(await readNir(out), await readNir(`${FIXTURES}nir_plain.nir`), "export-nir");

    assert.equal(parseExportArgs(["--help"]), null);
    assert.throws(() => parseExportArgs(["--resume", checkpoint]), /--out: required/);
    assert.throws(() => parseExportArgs(["--out", out]), /--resume: required/);
    assert.throws(
      () => parseExportArgs(["--resume", "a", "--out", "b", "--input-shape", "3,16"]),
      /--input-shape/,
    );
    assert.throws(() => parseExportArgs(["--resume", "a", "--out", "b", "--dt", "-1"]), /--dt/);
    assert.throws(() => parseExportArgs(["--resume", "a", "--out", "b", "--bogus"]), /export-nir: .*bogus/);

    const bad = join(dir, "bad.nir");
    const run = (extra: string[], resume = checkpoint) =>
      exportNirCommand(parseExportArgs(["--resume", resume, "--out", bad, ...extra])!);
    await assert.rejects(
      run([], `${FIXTURES}nir_resnet18.ckpt`),
      /--input-shape: required: .*nir_resnet18\.ckpt was trained on ""/,
    );
    await assert.rejects(
      run(["--input-shape", "1,28,28", "--model", "resnet18"]),
      /holds a plain model, not/,
    );
    await assert.rejects(
      run(["--input-shape", "1,28,28"], out),
      /--resume: checkpoint: .* cannot be decoded/,
    );
    // A checkpoint whose weights belong to another model than it claims.
    const decoded = decodeCheckpoint(await Deno.readFile(checkpoint), checkpoint);
    decoded.model.options = { ...decoded.model.options, widths: [2, 2, 4] };
    const other = join(dir, "other.ckpt");
    await Deno.writeFile(other, encodeCheckpoint(decoded));
    await assert.rejects(
      run(["--input-shape", "1,28,28"], other),
      /--resume: weights: .*other\.ckpt: layers\.0\.0\.weight has shape \[4, 1, 3, 3\], the model expects \[2, 1, 3, 3\]/,
    );
    decoded.model = { name: "resnet19", options: { numClasses: 4, T: 3, width: 2 } };
    await Deno.writeFile(other, encodeCheckpoint(decoded));
    await assert.rejects(
      run(["--input-shape", "1,28,28"], other),
      /--resume: weights: .* does not match the model/,
    );
    assert.ok(!(await Deno.stat(bad).then(() => true, () => false)), "no file is written on error");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nir: importNir rebuilds an exported model that runs as snnTorch runs it, and refuses other graphs", async () => {
  await setupGpu();
  const consumer: ConsumerRun = JSON.parse(await Deno.readTextFile(`${FIXTURES}nir_resnet19_snntorch.json`));
  const file = `${FIXTURES}nir_resnet19.nir`;
  const model = await importNir(file);
  const dir = await Deno.makeTempDir();
  const scope = new Scope();
  try {
    // Decay 0.75 and threshold 0.5 come back from tau, r and v_threshold.
    assert.deepEqual((model as SpikingResNet).config.lif, { tau: 0.75, threshold: 0.5 });
    const logits = scope.run(() => {
      const input = Tensor.fromData(Float32Array.from(consumer.inputs.flat()), [
        consumer.inputs.length,
        ...consumer.input_shape,
      ], { name: "input" });
      return model.forward(input).logits;
    });
    const ours = await logits.readFloat();
    const theirs = consumer.logits.flat();
    const error = Math.max(...theirs.map((v, i) => Math.abs(ours[i] - v))) /
      Math.max(...theirs.map(Math.abs));
    assert.ok(error <= 1e-4, `imported resnet19: logits differ from snnTorch's by ${error}`);
    console.log(`nir import resnet19: max logit error ${error.toExponential(2)} (rel.) against snnTorch`);

    const { graph } = await decodeNir(await Deno.readFile(file), file);
    const write = async (name: string, changed: NirGraph) => {
      const path = join(dir, name);
      await Deno.writeFile(path, await encodeNir(changed, "1.0.7"));
      return path;
    };
    const { spikegpu_model: _, ...anonymous } = graph.metadata;
    await assert.rejects(
      importNir(await write("anon.nir", { ...graph, metadata: anonymous })),
      /no spikegpu_model/,
    );
    const nodes = new Map(graph.nodes);
    const lif = { ...nodes.get("lif1")! };
    lif.r = { ...(lif.r as { dtype: "f64"; shape: number[]; data: Float64Array }) };
    lif.r.data = (lif.r.data as Float64Array).map(() => 1);
    nodes.set("lif1", lif);
    await assert.rejects(
      importNir(await write("r.nir", { ...graph, nodes })),
      /lif1 scales its input by r\*dt\/tau/,
    );
    // Without the identity shortcut of the second block.
    const cut = {
      ...graph,
      edges: graph.edges.filter(([a, b]) => !(a === "layer1.0.lif2" && b === "layer1.1.lif2")),
    };
    await assert.rejects(
      importNir(await write("edges.nir", cut)),
      /edges differ at layer1\.0\.lif2 -> layer1\.1\.lif2/,
    );
    await assert.rejects(
      importNir(file, { model: { name: "resnet18", options: { numClasses: 4, T: 3, width: 2 } } }),
      /as resnet18: nodes differ/,
    );
    await assert.rejects(importNir(join(dir, "none.nir")), /nir: cannot read .*none\.nir/);
  } finally {
    scope.dispose();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
