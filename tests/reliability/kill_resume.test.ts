/**
 * Runs survive being killed: the real `train` command, checkpointing every step, is SIGKILLed at random
 * (seeded) moments and resumed from checkpoints/latest.ckpt each time; its exported weights equal an
 * uninterrupted run's bit for bit, and two uninterrupted runs in separate processes agree bit for bit too.
 * A writer killed in the middle of a large atomic write leaves the previous file intact, and its temp file
 * is removed by the next write.
 *
 * `deno task test` kills 3 times; `deno task soak` sets SPIKEGPU_SOAK_KILLS=10 (and trains longer).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Rng } from "../../src/data/rng.ts";
import { writeFileAtomic } from "../../src/io/atomic.ts";
import { readCheckpoint } from "../../src/io/checkpoint.ts";
import { TINY } from "./helpers.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const TRAIN = new URL("../../src/cli/train.ts", import.meta.url).pathname;
const KILLS = Number(Deno.env.get("SPIKEGPU_SOAK_KILLS") ?? 3);
/** The longest a kill waits after a process's first step: about two steps with their checkpoints. */
const MAX_KILL_DELAY_MS = 2500;

/** The tiny CLI run, two epochs of KILLS steps each, a checkpoint every step. */
const RUN = [
  ...TINY,
  "--train-limit",
  String(8 * Math.max(2, KILLS)),
  "--epochs",
  "2",
  "--checkpoint-every",
  "1",
  "--seed",
  "11",
];

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A `train` child process whose output is collected as it comes. */
class TrainProcess {
  out = "";
  readonly #child: Deno.ChildProcess;
  readonly #drained: Promise<void[]>;

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", TRAIN, ...args],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#drained = Promise.all([this.#collect(this.#child.stdout), this.#collect(this.#child.stderr)]);
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** True once the output matches `pattern`; false if the process ends first. */
  async waitFor(pattern: RegExp): Promise<boolean> {
    while (!pattern.test(this.out)) {
      if (await this.exitsWithin(20)) return pattern.test(this.out);
    }
    return true;
  }

  /** Whether the process ends within `ms`. */
  async exitsWithin(ms: number): Promise<boolean> {
    return await Promise.race([this.#child.status.then(() => true), delay(ms).then(() => false)]);
  }

  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // It has just exited by itself; finish() tells.
    }
  }

  async finish(): Promise<{ code: number; signal: Deno.Signal | null; out: string }> {
    const { code, signal } = await this.#child.status;
    await this.#drained;
    return { code, signal, out: this.out };
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) this.out += text;
  }
}

async function tempFiles(folder: string): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name);
  return names.filter((name) => name.endsWith(".tmp"));
}

/** An uninterrupted run into a new folder; returns the exported weights' bytes. */
async function uninterrupted(): Promise<Uint8Array> {
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-straight-" });
  try {
    const weights = join(folder, "weights.safetensors");
    const run = await new TrainProcess([...RUN, "--output-dir", folder, "--export-weights", weights])
      .finish();
    assert.equal(run.code, 0, run.out);
    return await Deno.readFile(weights);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}

let reference: Promise<Uint8Array> | undefined;

Deno.test("determinism: the same seed and flags give identical weights in two separate processes", async () => {
  reference ??= uninterrupted();
  const [first, second] = await Promise.all([reference, uninterrupted()]);
  assert.ok(first.byteLength > 1000);
  assert.deepEqual(second, first);
});

Deno.test(`kill -9 at ${KILLS} random moments, each resumed from latest.ckpt, ends with the uninterrupted weights`, async () => {
  reference ??= uninterrupted();
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-killed-" });
  const checkpoints = join(folder, "checkpoints");
  const latest = join(checkpoints, "latest.ckpt");
  const weights = join(folder, "weights.safetensors");
  const rng = Rng.seeded(20240611);
  const moments: string[] = [];
  try {
    let kills = 0;
    for (let attempt = 0;; attempt++) {
      assert.ok(attempt < 4 * KILLS + 8, `no finish after ${attempt} attempts:\n${moments.join("\n")}`);
      const resume = await Deno.stat(latest).then(() => ["--resume", latest], () => []);
      const child = new TrainProcess([
        ...RUN,
        ...resume,
        "--output-dir",
        folder,
        "--export-weights",
        weights,
      ]);
      if (kills < KILLS) {
        const killAfter = Math.floor(rng.float() * MAX_KILL_DELAY_MS);
        // Random moments of training (steps, checkpoints, evaluation, plots, export), counted from the end
        // of the process's first step: before it, start-up and kernel compilation take most of the time.
        if (await child.waitFor(/ step \d+ \(/) && !(await child.exitsWithin(killAfter))) {
          const writing = (await tempFiles(checkpoints)).length > 0;
          child.kill();
          const { signal, out } = await child.finish();
          // Otherwise it exited on its own just before the signal: a finished run, below.
          if (signal === "SIGKILL") {
            kills++;
            const lastLine = out.trim().split("\n").at(-1)?.trim();
            moments.push(
              `kill ${kills} (pid ${child.pid}): ${killAfter} ms after its first step` +
                `${writing ? ", while a checkpoint was being written" : ""}; last output: ${lastLine}`,
            );
            continue;
          }
        }
      }
      const { code, out } = await child.finish();
      assert.equal(code, 0, out);
      if (kills >= KILLS) break;
      // Finished before every kill landed: the remaining kills need a run to land in, so start over.
      moments.push(`run finished after ${kills} kills; starting over`);
      await Deno.remove(folder, { recursive: true });
      await Deno.mkdir(folder);
    }
    console.log(moments.join("\n"));
    assert.deepEqual(
      await Deno.readFile(weights),
      await reference,
      "weights differ from the uninterrupted run",
    );
    assert.equal((await readCheckpoint(latest)).step, 2 * Math.max(2, KILLS));
    assert.deepEqual(await tempFiles(checkpoints), [], "a killed writer's temp file was left behind");
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("atomic write: SIGKILL mid-write keeps the previous file; the next write removes the temp file", async () => {
  const folder = await Deno.makeTempDir({ prefix: "spikegpu-atomic-" });
  const path = join(folder, "latest.ckpt");
  const previous = new TextEncoder().encode("the previous checkpoint");
  await Deno.writeFile(path, previous);
  const atomic = new URL("../../src/io/atomic.ts", import.meta.url).href;
  const writer = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { writeFileAtomic } from "${atomic}";
       await writeFileAtomic(${JSON.stringify(path)}, new Uint8Array(256 << 20).fill(7));`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // A live writer's temp file must survive other writers: a sleeping process stands in for one.
  const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
  const liveTemp = join(folder, `.latest.ckpt.${sleeper.pid}.1.tmp`);
  try {
    let temp: string | undefined;
    for (let polls = 0; !temp; polls++) {
      assert.ok(polls < 3000, "the writer never started its temp file");
      await delay(10);
      const name = (await tempFiles(folder))[0];
      if (name && (await Deno.stat(join(folder, name))).size > 0) temp = name;
    }
    writer.kill("SIGKILL");
    assert.equal((await writer.status).signal, "SIGKILL");
    const size = (await Deno.stat(join(folder, temp))).size;
    assert.ok(size < 256 << 20, `killed after the write finished (${size} bytes)`);
    assert.deepEqual(await Deno.readFile(path), previous);
    assert.match(temp, /^\.latest\.ckpt\.\d+\.\d+\.tmp$/);

    await Deno.writeFile(liveTemp, new Uint8Array(4));
    const next = new TextEncoder().encode("the next checkpoint");
    await writeFileAtomic(path, next);
    assert.deepEqual(await Deno.readFile(path), next);
    assert.deepEqual(await tempFiles(folder), [`.latest.ckpt.${sleeper.pid}.1.tmp`]);
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    await Deno.remove(folder, { recursive: true });
  }
});
