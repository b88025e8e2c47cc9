/** The run configuration read from a script's typed values, and pipelines re-composed without the CLI. */
import assert from "node:assert/strict";
import { cifar10ResNet19, mnistPlain, PIPELINES } from "../pipelines/presets.ts";
import { DEFAULTS, OPTIONS, resolveConfig } from "../src/pipeline/config.ts";
import { byName, withConfig, withStages } from "../src/pipeline/pipeline.ts";

Deno.test("run config: a script's typed values are read and checked like flags", () => {
  const config = resolveConfig(cifar10ResNet19.config, {
    dataDir: "/data",
    epochs: 1,
    sbPlaces: [3, 4],
    sbKernels: [[7, 5, 3], [3, 1]],
  });
  assert.equal(config.model, "resnet19");
  assert.equal(config.batchSize, 256);
  assert.equal(config.epochs, 1);
  assert.deepEqual(config.sbKernels, [[7, 5, 3], [3, 1]]);
  assert.throws(() => resolveConfig({ epochs: 0 }), /--epochs: got 0, expected a whole number >= 1/);
  assert.throws(() => resolveConfig({ lr: Number.NaN }), /--lr: got NaN, expected a number > 0/);
  assert.throws(() => resolveConfig({ sbKernels: [[9]] }), /--sb-kernels: .*7, 5, 3, 1/);
  assert.throws(
    () => resolveConfig({ epochs: 2, warmupEpochs: 2 }),
    /--warmup-epochs: .*fewer than --epochs/,
  );
  assert.throws(
    () => resolveConfig({ learningRate: 0.1 } as unknown as Parameters<typeof resolveConfig>[0]),
    /unknown option learningRate/,
  );
  // Resolving never changes the defaults a later run starts from.
  assert.deepEqual(resolveConfig({ sbPlaces: [1] }).sbPlaces, [1]);
  assert.deepEqual(DEFAULTS.sbPlaces, [3, 3]);
});

Deno.test("run config: every option has a distinct flag and a default its own check accepts", () => {
  const flags = Object.values(OPTIONS).map((option) => option.flag);
  assert.equal(new Set(flags).size, flags.length);
  for (const option of Object.values(OPTIONS)) {
    assert.deepEqual(option.kind.read(option.default), option.default, `--${option.flag}`);
  }
});

Deno.test("pipelines: each is listed under its own name; stages and values swap without touching the original", () => {
  for (const [name, pipeline] of Object.entries(PIPELINES)) assert.equal(pipeline.name, name);
  assert.throws(() => byName([mnistPlain, mnistPlain]), /mnist-plain is used twice/);
  const source = () => ({ train: null!, test: null, inChannels: 2 });
  const swapped = withStages(withConfig(mnistPlain, { T: 4 }), { source });
  assert.equal(swapped.stages.source, source);
  assert.equal(swapped.config.T, 4);
  assert.equal(swapped.config.model, "plain");
  assert.equal(mnistPlain.config.T, undefined);
  assert.deepEqual(mnistPlain.stages, {});
});
