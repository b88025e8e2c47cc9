/**
 * Data-parallel training under `mpirun -np 2` on the software adapter (LP_NUM_THREADS=1 per rank):
 * averaged gradients and rank 0's running statistics, bit-identical weights on every rank, distributed
 * evaluation equal to a single process's, a configuration mismatch stopped before any step, and a rank
 * killed with SIGKILL ending the job, whose checkpoint then resumes on 2 ranks and on 1.
 *
 * Skipped only where `mpirun` is not installed (CI installs MPICH, so they run there).
 */
import assert from "node:assert/strict";
import { mpirunInstalled } from "./mpirun.ts";
import { readCheckpoint } from "../../src/io/checkpoint.ts";
import { TINY_CLI } from "../helpers.ts";
import { BATCH, STEPS, TEST_SAMPLES } from "./ddp_worker.ts";

const MPIRUN = mpirunInstalled("tests/dist/data_parallel.test.ts");

const DENO = Deno.execPath();
const TRAIN = new URL("../../src/cli/train.ts", import.meta.url).pathname;
const WORKER = new URL("./ddp_worker.ts", import.meta.url).pathname;
/** One llvmpipe thread per rank: the CI machine has 2 cores. */
const ENV = { LP_NUM_THREADS: "1" };

interface Ran {
  code: number;
  text: string;
  seconds: number;
}

async function run(command: string, args: string[]): Promise<Ran> {
  const start = performance.now();
  const output = await new Deno.Command(command, { args, env: ENV, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, text, seconds: (performance.now() - start) / 1000 };
}

Deno.test({
  name:
    "2 ranks: averaged gradients, rank 0's BN statistics, bit-identical weights, exact distributed evaluation",
  ignore: !MPIRUN,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const ran = await run("mpirun", ["-np", "2", DENO, "run", "-A", WORKER, dir]);
    assert.equal(ran.code, 0, ran.text);
    const [r0, r1] = await Promise.all(
      [0, 1].map(async (r) => JSON.parse(await Deno.readTextFile(`${dir}/rank${r}.json`))),
    );
    // 21 samples, padded to 22, 11 per rank: batches of 4, 4, 3 on each rank, all of them counted.
    assert.equal(r0.steps, STEPS);
    assert.equal(r1.steps, STEPS);
    assert.equal(r0.samplesSeen, 2 * BATCH * STEPS - 2);
    assert.ok(r0.buckets > 1, `${r0.buckets} staging buckets`);
    // The two f32 gradients summed, times f32(1 / 2): what a single process computes from the two shards.
    assert.deepEqual(r0.meanGradient, r0.referenceMeanGradient);
    assert.deepEqual(r1.meanGradient, r0.referenceMeanGradient);
    // Running statistics: every rank holds rank 0's, the ones a forward on rank 0's batch alone gives.
    assert.deepEqual(r0.statisticsAfterFirstStep, r0.referenceStatistics);
    assert.deepEqual(r1.statisticsAfterFirstStep, r0.referenceStatistics);
    assert.deepEqual(r1.weights, r0.weights);
    assert.deepEqual(r1.statistics, r0.statistics);
    // The weights moved (the steps did something) and are finite.
    assert.ok(r0.weights.flat().every(Number.isFinite));
    // 13 test samples as 7 + 6: top-1/top-5 counts equal the single process's exactly.
    for (const result of [r0, r1]) {
      const { top1, top5, loss } = result.distributedEval;
      const counts = (percents: number[]) => percents.map((v) => Math.round(v * TEST_SAMPLES / 100));
      assert.deepEqual(counts(top1), counts(r0.singleEval.top1));
      assert.deepEqual(top1, r0.singleEval.top1);
      assert.deepEqual(top5, r0.singleEval.top5);
      assert.ok(Math.abs(loss - r0.singleEval.loss) <= 1e-5 * Math.abs(r0.singleEval.loss), `${loss}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "2 ranks started with different flags: both stop before any step, naming the rank and the flag",
  ignore: !MPIRUN,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const common = [DENO, "run", "-A", TRAIN, ...TINY_CLI, "--output-dir", `${dir}/run`];
    const ran = await run("mpirun", [
      "-np",
      "1",
      ...common,
      "--batch-size",
      "8",
      ":",
      "-np",
      "1",
      ...common,
      "--batch-size",
      "4",
    ]);
    assert.notEqual(ran.code, 0, ran.text);
    assert.match(
      ran.text,
      /the configuration of rank 1 differs from rank 0's in config\.batchSize \(rank 0: 8, rank 1: 4\)/,
    );
    // Each rank's error names the rank; MPI_Abort ends the job.
    assert.match(ran.text, /error: rank [01] of 2: distributed run: the configuration of rank 1/);
    assert.doesNotMatch(ran.text, /step 1 /);
    assert.equal(await Deno.stat(`${dir}/run/metrics.jsonl`).then(() => true, () => false), false);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "a non-finite gradient stops every rank at the same step: the error names the rank, rank 0 writes the diagnostic",
  ignore: !MPIRUN,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const ran = await run("mpirun", [
      "-np",
      "2",
      DENO,
      "run",
      "-A",
      TRAIN,
      ...TINY_CLI,
      "--train-limit",
      "32",
      "--batch-size",
      "4",
      "--optimizer",
      "sgd",
      "--lr",
      "1e30",
      "--output-dir",
      `${dir}/run`,
    ]);
    assert.notEqual(ran.code, 0, ran.text);
    assert.match(
      ran.text,
      /error: rank [01] of 2: training: (the (gradient|value) of .*|the loss) became (NaN or infinite|non-finite) (at|by) step \d+/,
    );
    const diagnostic = JSON.parse(await Deno.readTextFile(`${dir}/run/diagnostic.json`));
    assert.equal(diagnostic.kind, "non-finite");
    assert.ok(ran.seconds < 120, `${ran.seconds} s`);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "kill -9 of one rank ends the job in bounded time; its checkpoint resumes on 2 ranks and on 1",
  ignore: !MPIRUN,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const flags = [...TINY_CLI, "--train-limit", "64", "--batch-size", "4", "--epochs", "3"];
    const child = new Deno.Command("mpirun", {
      args: [
        "-np",
        "2",
        DENO,
        "run",
        "-A",
        TRAIN,
        ...flags,
        "--checkpoint-every",
        "1",
        "--output-dir",
        `${dir}/a`,
      ],
      env: ENV,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    let text = "";
    let victim = 0;
    const latest = `${dir}/a/checkpoints/latest.ckpt`;
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    // Rank 1's pid from its adapter line; kill it once rank 0 has written a checkpoint.
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      victim ||= Number(/rank 1 of 2, pid (\d+)/.exec(text)?.[1] ?? 0);
      if (victim && /checkpoint .*latest\.ckpt/.test(text)) break;
    }
    assert.ok(victim > 0, text);
    const killedAt = performance.now();
    Deno.kill(victim, "SIGKILL");
    const drain = (async () => {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
    })();
    const status = await child.status;
    const seconds = (performance.now() - killedAt) / 1000;
    await drain;
    text += await stderr;
    assert.notEqual(status.code, 0, text);
    assert.ok(seconds < 30, `the job took ${seconds.toFixed(1)} s to end after the kill`);
    // hydra names the dead process's PID, which rank 0's start-up line maps to rank 1.
    assert.match(text, new RegExp(`BAD TERMINATION[^]*PID ${victim} RUNNING AT[^]*Killed \\(signal 9\\)`));
    assert.match(text, new RegExp(`distributed: 2 ranks, .*rank 1: pid ${victim} on `));

    const saved = await readCheckpoint(latest);
    assert.ok(saved.step >= 1);
    for (const [ranks, out] of [[2, "b"], [1, "c"]] as const) {
      const args = [...flags, "--resume", latest, "--output-dir", `${dir}/${out}`];
      const resumed = ranks === 2
        ? await run("mpirun", ["-np", "2", DENO, "run", "-A", TRAIN, ...args])
        : await run(DENO, ["run", "-A", TRAIN, ...args]);
      assert.equal(resumed.code, 0, resumed.text);
      assert.match(resumed.text, new RegExp(`resumed .*: epoch ${saved.epoch + 1}, step ${saved.step}`));
      // 64 samples of batch 4: 8 steps an epoch on 2 ranks, 16 on 1, where the interrupted epoch
      // continues at the same share of its batches.
      const perEpoch = 64 / (4 * ranks);
      const batchInEpoch = (saved.rng as { batchInEpoch: number }).batchInEpoch * 2 / ranks;
      const expected = saved.step + (perEpoch - batchInEpoch) + (3 - saved.epoch - 1) * perEpoch;
      assert.match(resumed.text, new RegExp(`done: 3 epochs, ${expected} steps`));
    }
    await Deno.remove(dir, { recursive: true });
  },
});
