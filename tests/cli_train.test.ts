/**
 * The real `train` command on a tiny configuration: a run folder with config, metrics, checkpoints and
 * plots; resume continues where it stopped; --test-only and --export-weights work from the checkpoint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { initGpu } from "../src/gpu/device.ts";
import { readCheckpoint } from "../src/io/checkpoint.ts";
import { readSafetensors } from "../src/io/safetensors.ts";
import { report } from "../src/cli/report.ts";
import type { EpochRecord, MetricsRecord, StepRecord } from "../src/pipeline/run_folder.ts";
import { TINY_CLI as TINY } from "./helpers.ts";

async function train(args: string[]): Promise<{ code: number; out: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../src/cli/train.ts", import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const { code, stdout, stderr } = await command.output();
  return { code, out: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
}

async function records(folder: string): Promise<MetricsRecord[]> {
  const text = await Deno.readTextFile(join(folder, "metrics.jsonl"));
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

Deno.test("train CLI: a tiny run writes the run folder, resumes, evaluates and exports", async () => {
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-run-" });
  try {
    const first = await train([...TINY, "--epochs", "2", "--max-steps", "4", "--output-dir", folder]);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /adapter: /);
    assert.match(first.out, /epoch 1 done/);
    const config = JSON.parse(await Deno.readTextFile(join(folder, "config.json")));
    assert.equal(config.model, "plain");
    let log = await records(folder);
    const steps = log.filter((r): r is StepRecord => r.type === "step");
    const epochs = log.filter((r): r is EpochRecord => r.type === "epoch");
    assert.equal(steps.length, 4);
    assert.equal(steps[0].top1.length, 3, "SNN and two modules");
    for (const key of ["loss", "hard", "soft", "lr", "imagesPerSecond"] as const) {
      assert.ok(Number.isFinite(steps[0][key]), key);
    }
    assert.ok(Object.keys(steps[0].firingRates).length >= 3, "a firing rate per LIF layer");
    for (const record of [steps[0], epochs[1]]) {
      const names = Object.keys(record.firingRates);
      assert.ok(names.every((name) => /^layers\.\d+\.2$/.test(name)), `module paths: ${names}`);
    }
    assert.equal(epochs.length, 2);
    assert.ok(epochs[1].test && epochs[1].test.top1.length === 3);
    assert.ok(epochs[1].synapticOps! > 0 && epochs[1].energyMicrojoules! > 0);
    for (const plot of ["loss.svg", "accuracy.svg", "firing_rates.svg"]) {
      assert.match(await Deno.readTextFile(join(folder, "plots", plot)), /^<svg/);
    }
    const latest = join(folder, "checkpoints", "latest.ckpt");
    const checkpoint = await readCheckpoint(latest);
    assert.equal(checkpoint.epoch, 1);
    assert.equal(checkpoint.step, 4);
    assert.equal(checkpoint.model.name, "plain");
    assert.ok(checkpoint.optimizer && checkpoint.optimizer.kind === "adamw");
    await Deno.stat(join(folder, "checkpoints", "best.ckpt"));

    const resumed = await train([...TINY, "--epochs", "2", "--resume", latest, "--output-dir", folder]);
    assert.equal(resumed.code, 0, resumed.out);
    assert.match(resumed.out, /resumed .*epoch 2, step 4/);
    log = await records(folder);
    const last = log.filter((r): r is EpochRecord => r.type === "epoch").at(-1)!;
    assert.equal(last.epoch, 1);
    assert.equal(last.step, 6, "the stopped epoch continues from its second batch: steps 5 and 6");

    const exported = join(folder, "weights.safetensors");
    const evaluation = await train([...TINY, "--test-only", "--resume", latest]);
    assert.equal(evaluation.code, 0, evaluation.out);
    assert.match(evaluation.out, /"top1"/);
    const exportRun = await train([
      ...TINY,
      "--epochs",
      "3",
      "--resume",
      latest,
      "--export-weights",
      exported,
      "--output-dir",
      folder,
    ]);
    assert.equal(exportRun.code, 0, exportRun.out);
    const weights = await readSafetensors(exported);
    assert.ok(weights.has("layers.0.0.weight") && weights.has("sb_layers.1.prediction.5.bias"));
    assert.equal(weights.get("layers.0.1.num_batches_tracked")!.dtype, "I64");

    await Deno.remove(join(folder, "plots", "loss.svg"));
    const table = await report(folder);
    assert.match(table, /3 epochs|4 epochs/);
    assert.match(await Deno.readTextFile(join(folder, "plots", "loss.svg")), /^<svg/);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("train CLI --f16: logs the loss scale, checkpoints the scaler and resumes bit for bit", async () => {
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-f16-" });
  try {
    if (!(await initGpu()).hasF16) {
      const refused = await train([...TINY, "--f16", "--output-dir", join(folder, "run")]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.out, /--f16: .*has no shader-f16/);
      return;
    }
    const whole = join(folder, "whole");
    const split = join(folder, "split");
    const exported = (run: string) => ["--export-weights", `${run}.safetensors`, "--output-dir", run];
    // Two epochs of three steps, at once and stopped after step 4 then resumed.
    const uninterrupted = await train([...TINY, "--f16", "--epochs", "2", ...exported(whole)]);
    assert.equal(uninterrupted.code, 0, uninterrupted.out);
    const steps = (await records(whole)).filter((r): r is StepRecord => r.type === "step");
    assert.equal(steps.length, 6);
    for (const step of steps) {
      assert.ok(Number.isFinite(step.loss));
      assert.equal(step.lossScale, 65536 / 2 ** step.skippedSteps!);
    }
    const scaler = (await readCheckpoint(join(whole, "checkpoints", "latest.ckpt"))).gradScaler!;
    assert.equal(scaler.scale, 65536 / 2 ** scaler.skippedSteps);
    assert.equal(scaler.growthTracker, 6 - scaler.skippedSteps, "no growth within 2000 steps");
    const first = await train([...TINY, "--f16", "--epochs", "2", "--max-steps", "4", "--output-dir", split]);
    assert.equal(first.code, 0, first.out);
    const latest = join(split, "checkpoints", "latest.ckpt");
    const resumed = await train([...TINY, "--f16", "--epochs", "2", "--resume", latest, ...exported(split)]);
    assert.equal(resumed.code, 0, resumed.out);
    assert.deepEqual(
      await Deno.readFile(`${split}.safetensors`),
      await Deno.readFile(`${whole}.safetensors`),
    );
    assert.deepEqual((await readCheckpoint(latest)).gradScaler, scaler);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("train CLI: bad input stops before any work with the flag named, exit code non-zero", async () => {
  const bad = await train(["--T", "0"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /--T: got "0"/);
  const past = await train([...TINY, "--sb-places", "3,1", "--epochs", "1"]);
  assert.notEqual(past.code, 0);
  assert.match(past.out, /past the last layer/);
  const missing = await train(["--resume", "/nonexistent/latest.ckpt"]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.out, /checkpoint: cannot read \/nonexistent\/latest.ckpt/);
});
