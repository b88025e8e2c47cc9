/**
 * Faults a training run must survive with its last good checkpoint untouched: non-finite numbers (a NaN
 * in one input batch, a huge learning rate, a poisoned BatchNorm running statistic), a lost GPU device,
 * running out of GPU memory, and a file system that refuses the checkpoint's bytes.
 *
 * Run as a script (`deno run -A tests/reliability/faults.test.ts device-lost <folder>`), this file is the
 * child process of the device-lost test: a destroyed device cannot be used again by later tests.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gpu, initGpu, throwIfGpuFailed } from "../../src/gpu/device.ts";
import { synchronize, writeBuffer } from "../../src/gpu/kernels.ts";
import { createTensorBuffer } from "../../src/gpu/pool.ts";
import { firstNonFinite, readCheckpoint } from "../../src/io/checkpoint.ts";
import { createModel, type SpikingModel } from "../../src/models/registry.ts";
import { createOptimizer } from "../../src/optim/registry.ts";
import { type FaultRecord, type MetricsRecord, RunFolder } from "../../src/pipeline/run_folder.ts";
import type { BatchSource } from "../../src/pipeline/stage.ts";
import { type LoopObserver, NonFiniteError, runTraining } from "../../src/pipeline/train_loop.ts";
import type { HostBatch } from "../../src/pipeline/train_step.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { setupGpu, TestRng, TINY_PLAIN } from "../helpers.ts";

const REPO = new URL("../../", import.meta.url).pathname;

function batches(count: number): HostBatch[] {
  const rng = new TestRng(7);
  return Array.from({ length: count }, () => ({
    data: rng.uniforms(4 * 12 * 12, 0, 1),
    shape: [4, 1, 12, 12],
    labels: rng.ints(4, 4),
  }));
}

/** One epoch of `data`; `before(i, model)` runs before batch i is handed out (to inject a fault). */
function sourceOf(
  data: HostBatch[],
  model: SpikingModel,
  before: (index: number, model: SpikingModel) => void,
): BatchSource {
  return {
    numClasses: TINY_PLAIN.numClasses,
    length: data.length * 4,
    batchesPerEpoch: data.length,
    async *epoch(_epoch: number, start = 0) {
      for (let i = start; i < data.length; i++) {
        before(i, model);
        yield data[i];
      }
    },
    close() {},
  };
}

/**
 * Trains the tiny model one epoch of `data` at `lr`, checkpointing and logging every step, into a new run
 * folder; returns the folder, the error the run stopped with, and the bytes of the last latest.ckpt it
 * wrote (read back as soon as it was written).
 */
async function tinyRun(
  data: HostBatch[],
  lr: number,
  before: (index: number, model: SpikingModel) => void = () => {},
): Promise<{ folder: string; error: unknown; lastWritten: Uint8Array | null }> {
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-fault-" });
  const model = createModel("plain", TINY_PLAIN);
  const optimizer = createOptimizer("adamw", model.parameters(), { lr, weightDecay: 0.02 });
  let lastWritten: Uint8Array | null = null;
  const observer: LoopObserver = {
    checkpoint(path) {
      if (path.endsWith("latest.ckpt")) lastWritten = Deno.readFileSync(path);
    },
  };
  let error: unknown = null;
  try {
    await runTraining({
      model,
      optimizer,
      train: sourceOf(data, model, before),
      test: null,
      folder: await RunFolder.create(folder),
      state: {
        modelName: "plain",
        modelOptions: TINY_PLAIN as unknown as Record<string, unknown>,
        model,
        optimizer,
        config: {},
        seed: 0,
      },
      start: { epoch: 0, step: 0, batchInEpoch: 0, bestAccuracy: -1 },
      observer,
      options: {
        epochs: 1,
        schedule: { kind: "none", baseLr: lr, epochs: 1 },
        loss: {},
        logEvery: 1,
        evalEvery: 1,
        checkpointEvery: 1,
      },
    });
  } catch (caught) {
    error = caught;
  } finally {
    optimizer.dispose();
    model.dispose();
  }
  return { folder, error, lastWritten };
}

/**
 * The run stopped with a NonFiniteError whose record is also diagnostic.json and the last line of
 * metrics.jsonl, and latest.ckpt is still the good one written at `goodStep`, byte for byte.
 */
async function assertStoppedCleanly(
  run: Awaited<ReturnType<typeof tinyRun>>,
  goodStep: number,
): Promise<FaultRecord> {
  assert.ok(run.error instanceof NonFiniteError, `expected a NonFiniteError, got ${run.error}`);
  const record = run.error.record;
  const diagnostic = JSON.parse(await Deno.readTextFile(join(run.folder, "diagnostic.json")));
  assert.deepEqual(diagnostic, record);
  const lines = (await Deno.readTextFile(join(run.folder, "metrics.jsonl"))).trim().split("\n");
  const logged = lines.map((line) => JSON.parse(line) as MetricsRecord);
  assert.deepEqual(logged.at(-1), record);
  const latest = join(run.folder, "checkpoints", "latest.ckpt");
  assert.equal(record.checkpoint, latest);
  assert.ok(run.lastWritten);
  assert.deepEqual(await Deno.readFile(latest), run.lastWritten, "latest.ckpt changed after the fault");
  const checkpoint = await readCheckpoint(latest);
  assert.equal(checkpoint.step, goodStep);
  assert.equal(firstNonFinite(checkpoint), null);
  return record;
}

Deno.test("faults: one NaN pixel stops the run at its step, naming the gradient, though the loss stays finite", async () => {
  await setupGpu();
  const data = batches(5);
  data[3] = { ...data[3], data: data[3].data.map((v, i) => (i === 5 ? NaN : v)) };
  const run = await tinyRun(data, 0.01);
  const record = await assertStoppedCleanly(run, 3);
  assert.equal(record.step, 4);
  // The spikes after the first LIF layer stay 0/1, so the loss is finite: only the gradient shows it.
  for (const part of ["loss", "hard", "soft"] as const) assert.equal(typeof record.loss[part], "number");
  assert.equal(record.parameter, "layers.0.0.weight");
  assert.equal(record.part, "gradient");
  assert.match(
    (run.error as Error).message,
    /the gradient of layers\.0\.0\.weight became NaN or infinite at step 4 .*last good checkpoint .*latest\.ckpt is left as it was; details in .*diagnostic\.json/,
  );
  await Deno.remove(run.folder, { recursive: true });
});

Deno.test("faults: a learning rate of 1e30 stops at the step whose loss and gradients overflow", async () => {
  await setupGpu();
  const run = await tinyRun(batches(3), 1e30);
  const record = await assertStoppedCleanly(run, 1);
  assert.equal(record.step, 2);
  assert.equal(record.loss.loss, "NaN");
  assert.equal(record.part, "gradient");
  assert.match((run.error as Error).message, /at step 2 \(loss NaN.*Try a lower --lr/);
  await Deno.remove(run.folder, { recursive: true });
});

Deno.test("faults: a NaN BatchNorm running mean (no gradient) is caught before it reaches a checkpoint", async () => {
  await setupGpu();
  const run = await tinyRun(batches(5), 0.01, (index, model) => {
    if (index !== 2) return;
    const entry = model.stateEntries().find((e) => e.name === "layers.0.1.running_mean")!;
    assert.ok(entry.kind === "buffer");
    writeBuffer(entry.tensor.buffer, new Float32Array(entry.tensor.size).fill(NaN));
  });
  const record = await assertStoppedCleanly(run, 2);
  assert.deepEqual([record.step, record.parameter, record.part], [3, "layers.0.1.running_mean", "value"]);
  assert.equal(typeof record.loss.loss, "number");
  await Deno.remove(run.folder, { recursive: true });
});

/** The child of the device-lost test: destroys the device before batch 3, after two checkpoints. */
async function deviceLostChild(folder: string): Promise<void> {
  await initGpu();
  const copy = join(folder, "good.ckpt");
  const model = createModel("plain", TINY_PLAIN);
  const optimizer = createOptimizer("adamw", model.parameters(), { lr: 0.01 });
  try {
    await runTraining({
      model,
      optimizer,
      train: sourceOf(batches(4), model, (index) => {
        if (index === 2) gpu().device.destroy();
      }),
      test: null,
      folder: await RunFolder.create(folder),
      state: { modelName: "plain", modelOptions: {}, model, optimizer, config: {}, seed: 0 },
      start: { epoch: 0, step: 0, batchInEpoch: 0, bestAccuracy: -1 },
      observer: { checkpoint: (path) => Deno.copyFileSync(path, copy) },
      options: {
        epochs: 1,
        schedule: { kind: "none", baseLr: 0.01, epochs: 1 },
        loss: {},
        logEvery: 1,
        evalEvery: 1,
        checkpointEvery: 1,
      },
    });
    console.log("finished without an error");
  } catch (error) {
    console.log(`stopped: ${(error as Error).message}`);
  }
  await synchronize().catch(() => {});
}

Deno.test("faults: a lost GPU device stops the run with a clear error and the last checkpoint intact", async () => {
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-lost-" });
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(import.meta.url).pathname, "device-lost", folder],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(120_000),
  }).output();
  const out = new TextDecoder().decode(child.stdout) + new TextDecoder().decode(child.stderr);
  assert.equal(child.code, 0, out);
  assert.match(out, /stopped: spikegpu: GPU device lost \(destroyed\).*restart it from the last checkpoint/);
  const latest = join(folder, "checkpoints", "latest.ckpt");
  assert.deepEqual(await Deno.readFile(latest), await Deno.readFile(join(folder, "good.ckpt")));
  assert.equal((await readCheckpoint(latest)).step, 2);
  await Deno.remove(folder, { recursive: true });
});

Deno.test("faults: out of GPU memory names the tensor and suggests a smaller --batch-size", async () => {
  await setupGpu();
  const { maxStorageBindingBytes, maxBufferBytes } = gpu();
  const elements = Math.floor(Math.min(maxStorageBindingBytes, maxBufferBytes) / 4) + 64;
  assert.throws(
    () => Tensor.empty([elements], { name: "conv1.out" }),
    new RegExp(`tensor conv1\\.out \\[${elements}\\] f32 needs .*try a smaller --batch-size`),
  );
  // The real device's out-of-memory scope is silent for an allocation that fits.
  Tensor.empty([1 << 20], { name: "fits" }).dispose();
  await synchronize();
  // The allocation failure itself, which a device reports only through its error scope.
  const device = {
    pushErrorScope() {},
    createBuffer: (descriptor: GPUBufferDescriptor) => ({ size: descriptor.size }),
    popErrorScope: () => Promise.resolve({ message: "Not enough memory left" }),
  } as unknown as GPUDevice;
  createTensorBuffer(device, 1 << 30, "layers.0 output [512, 64, 32, 32] f32");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.throws(
    () => throwIfGpuFailed(),
    /GPU out of memory creating tensor layers\.0 output \[512, 64, 32, 32\] f32 \(1073741824 bytes\): Not enough memory left; try a smaller --batch-size/,
  );
  assert.doesNotThrow(() => throwIfGpuFailed(), "reported once");
});

/** The Deno binary and src/io/atomic.ts a child runs: the checkout's own, or copies staged for nobody. */
interface ChildFiles {
  deno: string;
  atomic: string;
  /** The child's working directory. */
  cwd?: string;
}

const CHECKOUT_FILES: ChildFiles = {
  deno: Deno.execPath(),
  atomic: new URL("../../src/io/atomic.ts", import.meta.url).href,
};

/**
 * Runs writeFileAtomic(path, size bytes of 7) in a child shell after `setup`, prefixing the command with
 * `prefix`; returns its output.
 */
async function writeInChild(
  setup: string,
  path: string,
  size: number,
  prefix = "",
  files: ChildFiles = CHECKOUT_FILES,
): Promise<string> {
  const script = `import { writeFileAtomic } from "${files.atomic}";
    try {
      await writeFileAtomic(${JSON.stringify(path)}, new Uint8Array(${size}).fill(7));
      console.log("written");
    } catch (error) {
      console.log(error.message);
    }`;
  const { stdout, stderr } = await new Deno.Command("bash", {
    args: ["-c", `${setup}; exec ${prefix} "$0" eval --ext=ts "$1"`, files.deno, script],
    cwd: files.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
}

/**
 * Copies what the child run as user nobody needs into `dir` (mode 755), since nobody may not reach the
 * checkout or the Deno binary: a clone in /root or in a `mktemp -d` folder is mode 700. The binary is
 * hard-linked (copied across file systems); src/io/atomic.ts imports only node: modules, so it runs alone.
 */
async function stageForNobody(dir: string): Promise<ChildFiles> {
  await Deno.chmod(dir, 0o755);
  const deno = join(dir, "deno");
  try {
    await Deno.link(Deno.execPath(), deno);
  } catch {
    await Deno.copyFile(Deno.execPath(), deno);
    await Deno.chmod(deno, 0o755);
  }
  const atomic = join(dir, "atomic.ts");
  await Deno.copyFile(new URL("../../src/io/atomic.ts", import.meta.url), atomic);
  await Deno.chmod(atomic, 0o644);
  return { deno, atomic: pathToFileURL(atomic).href, cwd: dir };
}

async function filesIn(folder: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name).sort();
}

Deno.test("faults: a full disk while saving leaves the previous checkpoint intact and no temp file", async () => {
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-full-" });
  const path = join(folder, "latest.ckpt");
  const previous = new TextEncoder().encode("the previous checkpoint");
  await Deno.writeFile(path, previous);
  // A file-size limit makes the write fail part-way, like a full disk, even for root (EFBIG, not
  // ENOSPC: the same failed write). SIGXFSZ is ignored so the write returns the error.
  const out = await writeInChild("ulimit -f 512; trap '' XFSZ", path, 4 << 20);
  assert.match(out, /cannot write .*latest\.ckpt: File too large.*; any previous latest\.ckpt is untouched/);
  assert.deepEqual(await Deno.readFile(path), previous);
  assert.deepEqual(await filesIn(folder), ["latest.ckpt"]);
  await Deno.remove(folder, { recursive: true });
});

/** Root writes regardless of permissions, so as root the writer drops to user nobody with setpriv. */
const SETPRIV = "/usr/bin/setpriv";
const asRoot = Deno.uid() === 0;

Deno.test({
  name: "faults: a folder without write permission leaves the previous checkpoint intact",
  ignore: asRoot && !(await Deno.stat(SETPRIV).then(() => true, () => false)),
  async fn() {
    const folder = await Deno.makeTempDir({ prefix: "spikegpu-readonly-" });
    const denoDir = await Deno.makeTempDir({ prefix: "spikegpu-deno-dir-" });
    const staged = await Deno.makeTempDir({ prefix: "spikegpu-nobody-" });
    const path = join(folder, "latest.ckpt");
    const previous = new TextEncoder().encode("the previous checkpoint");
    await Deno.writeFile(path, previous);
    await Deno.chmod(folder, 0o555);
    await Deno.chmod(denoDir, 0o777);
    const prefix = asRoot
      ? `${SETPRIV} --reuid=65534 --regid=65534 --clear-groups env DENO_DIR=${denoDir}`
      : "";
    try {
      const files = asRoot ? await stageForNobody(staged) : CHECKOUT_FILES;
      const out = await writeInChild("true", path, 1024, prefix, files);
      assert.match(
        out,
        /cannot write .*latest\.ckpt: Permission denied.*any previous latest\.ckpt is untouched/,
      );
      assert.deepEqual(await Deno.readFile(path), previous);
      assert.deepEqual(await filesIn(folder), ["latest.ckpt"]);
    } finally {
      await Deno.chmod(folder, 0o755);
      await Deno.remove(folder, { recursive: true });
      await Deno.remove(denoDir, { recursive: true });
      await Deno.remove(staged, { recursive: true });
    }
  },
});

if (import.meta.main && Deno.args[0] === "device-lost") await deviceLostChild(Deno.args[1]);
