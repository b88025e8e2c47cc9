/**
 * spikegpu imported by URL, as a user's script elsewhere would: this checkout is served over HTTP on
 * 127.0.0.1 and separate `deno run --no-config` processes with a fresh DENO_DIR (no import map, no
 * node_modules, npm packages fetched from the registry) import it. One runs a library script from a temp
 * folder: a model with SML modules, one training step, a msgpack checkpoint written and read back, a
 * safetensors export and the embedded MNIST data set. The same script run on the checkout by path must
 * print the same numbers. The other runs the `train` CLI by URL with a loader worker, which must load
 * from the URL too. Both run with the permissions the README gives, not --allow-all.
 */
import assert from "node:assert/strict";
import { extname, join, normalize, resolve } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO = fileURLToPath(new URL("../", import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
  ".mjs": "application/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
};

/** Serves the checkout's files read-only on 127.0.0.1 at a free port; `requested` collects the paths. */
function serveCheckout(requested: Set<string>): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = decodeURIComponent(new URL(request.url).pathname);
    requested.add(url);
    const path = normalize(join(REPO, url));
    if (!path.startsWith(REPO) || path.includes("/node_modules/")) return new Response(null, { status: 404 });
    try {
      const body = await Deno.readFile(path);
      const type = CONTENT_TYPES[extname(path)] ?? "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response(null, { status: 404 });
    }
  });
}

/**
 * The user's script. It prints one JSON line of the values the test checks; `spikegpu` is replaced by
 * the URL (or file URL) of mod.ts.
 */
const SCRIPT = `
import {
  AdamW, captureCheckpoint, createDataset, createModel, initGpu, readCheckpoint, readSafetensors,
  restoreCheckpoint, Rng, saveSafetensors, smlLoss, stateDict, synchronize, Tape, Tensor, VERSION,
  writeCheckpoint,
} from "spikegpu";

const dir = Deno.args[0];
await initGpu();
const train = await createDataset("mnist", { split: "train" });
const test = await createDataset("mnist", { split: "test" });
const samples = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => train.get(i, Rng.seeded(1), false)));
const input = Tensor.fromData(Float32Array.from(samples.flatMap((s) => [...s.data])), [8, 1, 28, 28]);
const labels = Tensor.fromData(Int32Array.from(samples, (s) => s.label), [8], { dtype: "i32" });

const options = {
  numClasses: 10, T: 1, inChannels: 1, widths: [4, 4, 8], seed: 3,
  modules: { positions: [1, 1], kernels: [[3]], width: 8 },
};
const build = () => {
  const model = createModel("plain", options);
  return { model, optimizer: new AdamW(model.parameters(), { lr: 0.01, weightDecay: 0.02 }) };
};
const { model, optimizer } = build();
model.train();
const tape = new Tape();
const { loss, hard, soft } = tape.run(() => {
  const { logits, moduleLogits } = model.forward(input);
  if (moduleLogits.length !== 2) throw new Error("expected two modules, got " + moduleLogits.length);
  return smlLoss(logits, moduleLogits, labels);
});
const parts = [(await loss.read())[0], (await hard.read())[0], (await soft.read())[0]];
tape.backward(loss);
optimizer.step();
optimizer.zeroGrad();
tape.dispose();

const sources = (m, o) => ({
  modelName: "plain", modelOptions: options, model: m, optimizer: o, config: {}, seed: 1,
});
const ckpt = dir + "/latest.ckpt";
await writeCheckpoint(ckpt, await captureCheckpoint(sources(model, optimizer), {
  epoch: 0, step: 1, batchInEpoch: 1, bestAccuracy: -1,
}));
const fresh = build();
const progress = await restoreCheckpoint(await readCheckpoint(ckpt), sources(fresh.model, fresh.optimizer), ckpt);

const weights = await stateDict(model);
const restored = await stateDict(fresh.model);
await saveSafetensors(dir + "/model.safetensors", model);
const exported = await readSafetensors(dir + "/model.safetensors");
const same = (a, b) => !!b && a.data.length === b.data.length && a.data.every((v, i) => v === b.data[i]);
let checksum = 0;
for (const [, array] of weights) for (const v of array.data) checksum += Number(v);
await synchronize();
console.log(JSON.stringify({
  version: VERSION,
  loss: parts,
  checksum,
  keys: weights.size,
  checkpointStep: progress.step,
  checkpointSame: [...weights].every(([k, a]) => same(a, restored.get(k))),
  safetensorsSame: exported.size === weights.size && [...weights].every(([k, a]) => same(a, exported.get(k))),
  mnist: { train: train.length, test: test.length, labels: samples.map((s) => s.label),
    pixelSum: samples[0].data.reduce((a, b) => a + b, 0) },
}));
`;

/**
 * The tiny network of tests/helpers.ts's TINY_CLI on the first 128 training and 64 test digits, batches
 * built by one worker (which must load from the URL): two steps of 64, one test batch.
 */
const CLI_ARGS = [
  ..."--model plain --width 4 --T 1 --sb-places 1,1 --sb-kernels 3 --sb-width 8".split(" "),
  ..."--batch-size 64 --log-every 1 --epochs 1 --max-steps 2 --workers 1".split(" "),
  ..."--train-limit 128 --test-limit 64".split(" "),
];

/** Environment of a new user's shell: no XDG_RUNTIME_DIR, colours off, the given DENO_DIR. */
function userEnv(denoDir?: string): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.XDG_RUNTIME_DIR;
  delete env.DENO_DIR;
  return { ...env, NO_COLOR: "1", ...(denoDir ? { DENO_DIR: denoDir } : {}) };
}

async function deno(args: string[], env: Record<string, string>, cwd: string) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  return { code, out, all: out + new TextDecoder().decode(stderr) };
}

Deno.test("url import: a script elsewhere and the train CLI run spikegpu from a URL with a fresh DENO_DIR", async () => {
  const requested = new Set<string>();
  const server = serveCheckout(requested);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const work = await Deno.makeTempDir({ prefix: "spikegpu-url-" });
  const denoDir = join(work, "deno_dir");
  const temp = resolve(tmpdir());
  try {
    const local = join(work, "local");
    const remote = join(work, "remote");
    await Deno.mkdir(local);
    await Deno.mkdir(remote);
    await Deno.writeTextFile(join(remote, "user.ts"), SCRIPT.replace('"spikegpu"', `"${base}/mod.ts"`));
    await Deno.writeTextFile(
      join(local, "user.ts"),
      SCRIPT.replace('"spikegpu"', `"${pathToFileURL(join(REPO, "mod.ts")).href}"`),
    );
    // The README's permissions for a script: read, write its own folder and the temp folder (the
    // private XDG runtime folder), environment (msgpackr's and the backend's variables), and imports
    // from the one host that serves spikegpu.
    const permissions = (folder: string) => [
      "--allow-read",
      `--allow-write=${folder},${temp}`,
      "--allow-env",
      `--allow-import=127.0.0.1:${server.addr.port}`,
    ];
    const byUrl = await deno(
      ["run", "--no-config", ...permissions(remote), "user.ts", remote],
      userEnv(denoDir),
      remote,
    );
    assert.equal(byUrl.code, 0, byUrl.all);
    assert.doesNotMatch(byUrl.all, /XDG_RUNTIME_DIR/);
    const byPath = await deno(
      ["run", "--no-config", ...permissions(local), "user.ts", local],
      userEnv(),
      local,
    );
    assert.equal(byPath.code, 0, byPath.all);

    const got = JSON.parse(byUrl.out.trim().split("\n").at(-1)!);
    const want = JSON.parse(byPath.out.trim().split("\n").at(-1)!);
    const config = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json")));
    assert.equal(got.version, config.version);
    assert.deepEqual(got.mnist.train, 8000, "the embedded MNIST train split");
    assert.deepEqual(got.mnist.test, 2000, "the embedded MNIST test split");
    assert.deepEqual(got.mnist.labels, Array(8).fill(0), "the first train digits are zeros");
    assert.ok(got.loss.every(Number.isFinite) && got.loss[1] > 0 && got.loss[2] >= 0, `loss ${got.loss}`);
    assert.ok(got.keys >= 10, `${got.keys} state-dict entries`);
    assert.equal(got.checkpointStep, 1);
    assert.ok(got.checkpointSame, "the msgpack checkpoint restores the trained weights bit for bit");
    assert.ok(got.safetensorsSame, "the safetensors export holds the trained weights bit for bit");
    // The same code by URL and by path: the same numbers.
    assert.deepEqual(got, want);

    // The CLI by URL, with one loader worker: the worker module loads from the URL as well.
    requested.clear();
    const run = join(work, "run");
    const cli = await deno(
      [
        "run",
        "--no-config",
        "--allow-read",
        `--allow-write=${run},${temp}`,
        "--allow-env",
        `--allow-import=127.0.0.1:${server.addr.port}`,
        `${base}/src/cli/train.ts`,
        ...CLI_ARGS,
        "--output-dir",
        run,
      ],
      userEnv(denoDir),
      work,
    );
    assert.equal(cli.code, 0, cli.all);
    assert.doesNotMatch(cli.all, /XDG_RUNTIME_DIR/);
    assert.ok(requested.has("/src/data/worker.ts"), "the loader's worker was loaded by URL");
    const steps = (await Deno.readTextFile(join(run, "metrics.jsonl"))).trim().split("\n")
      .map((line) => JSON.parse(line)).filter((r) => r.type === "step");
    assert.equal(steps.length, 2);
    assert.ok(steps.every((s) => Number.isFinite(s.loss)));
    await Deno.stat(join(run, "checkpoints", "latest.ckpt"));
  } finally {
    await server.shutdown();
    await Deno.remove(work, { recursive: true });
  }
});
