/**
 * Data-parallel scaling on this machine: images/s of 1 process against `mpirun -np 2` (LP_NUM_THREADS=1
 * per rank on a software adapter), and the time per step each rank spends in gradient staging (GPU copy
 * and readback), MPI_Allreduce and upload. Not a `deno bench` file: it launches MPI jobs.
 *
 *   deno run -A bench/dist_scaling.ts                              # the default model, MNIST
 *   deno run -A bench/dist_scaling.ts --synthetic 3,32,32 --model resnet19 --width 64 --T 2 \
 *     --batch-size 4 --warmup 1 --steps 2                          # the headline ResNet-19, random data
 *
 * Flags other than --warmup, --steps, --synthetic and --ranks are `deno task train` flags.
 */
import { parseConfig } from "../src/cli/config.ts";
import { modelOptionsFor } from "../src/pipeline/stages.ts";
import { DataParallel } from "../src/dist/data_parallel.ts";
import { joinJob } from "../src/dist/job.ts";
import { describeAdapter, initGpu } from "../src/gpu/device.ts";
import { synchronize } from "../src/gpu/kernels.ts";
import { createModel } from "../src/models/registry.ts";
import { createOptimizer } from "../src/optim/registry.ts";
import { MetricsAccumulator } from "../src/pipeline/metrics.ts";
import { openSources } from "../src/pipeline/sources.ts";
import { type HostBatch, trainStep, trainStepReduced } from "../src/pipeline/train_step.ts";
import { Rng } from "../src/data/rng.ts";

interface Options {
  warmup: number;
  steps: number;
  synthetic: number[] | null;
  ranks: number;
  train: string[];
}

function options(args: string[]): Options {
  const own: Options = { warmup: 2, steps: 10, synthetic: null, ranks: 2, train: [] };
  for (let i = 0; i < args.length; i++) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === "--warmup") own.warmup = Number(value), i++;
    else if (flag === "--steps") own.steps = Number(value), i++;
    else if (flag === "--ranks") own.ranks = Number(value), i++;
    else if (flag === "--synthetic") own.synthetic = value.split(",").map(Number), i++;
    else own.train.push(args[i]);
  }
  return own;
}

interface WorkerResult {
  ranks: number;
  imagesPerSecond: number;
  stepMs: number;
  /** Waiting at a barrier for the slowest rank (load imbalance, not communication). */
  waitMs: number;
  stagingMs: number;
  allreduceMs: number;
  uploadMs: number;
  bytes: number;
  adapter: string;
}

/** One rank (or the single process): warm-up steps, then timed steps; rank 0 prints a JSON line. */
async function worker(own: Options): Promise<void> {
  const { config } = parseConfig(own.train);
  const job = joinJob(false);
  const comm = job?.communicator;
  const gpu = await initGpu();
  const ranks = comm ? { rank: comm.rank, size: comm.size } : undefined;
  const { train, inChannels } = own.synthetic
    ? { train: null, inChannels: own.synthetic[0] }
    : await openSources(config, ranks);
  const numClasses = train?.numClasses ?? 10;
  const model = createModel(config.model, modelOptionsFor(config, numClasses, inChannels));
  const optimizer = createOptimizer(config.optimizer, model.parameters(), {
    lr: config.lr,
    momentum: config.momentum,
    weightDecay: config.weightDecay,
  });
  const parallel = comm ? new DataParallel(comm, model, optimizer.params) : undefined;
  const metrics = new MetricsAccumulator(1 + model.surrogates.length, parallel?.sum);
  const total = own.warmup + own.steps;
  const batches: HostBatch[] = [];
  if (own.synthetic) {
    const rng = Rng.seeded(config.seed, comm?.rank ?? 0, 0);
    const size = own.synthetic.reduce((a, b) => a * b, 1);
    const B = config.batchSize;
    batches.push({
      data: Float32Array.from({ length: B * size }, () => rng.float()),
      shape: [B, ...own.synthetic],
      labels: Int32Array.from({ length: B }, () => rng.int(numClasses)),
    });
  } else {
    for await (const batch of train!.epoch(0)) {
      if (batch.labels.length === config.batchSize) batches.push(batch);
      if (batches.length === total) break;
    }
  }
  const spent = { wait: 0, staging: 0, allreduce: 0, upload: 0 };
  let start = 0;
  for (let step = 0; step < total; step++) {
    if (step === own.warmup) {
      await synchronize();
      start = performance.now();
      spent.wait =
        spent.staging =
        spent.allreduce =
        spent.upload =
          0;
    }
    const batch = batches[step % batches.length];
    const context = { model, optimizer, loss: {}, metrics };
    if (!parallel) {
      trainStep(context, batch);
      continue;
    }
    await trainStepReduced(context, batch, async () => {
      // Wait for backward, then for the slowest rank, so that staging and allreduce are timed alone.
      await synchronize();
      const arrived = performance.now();
      comm!.barrier();
      spent.wait += performance.now() - arrived;
      await parallel.gradients.run();
      const { readback, allreduce, upload } = parallel.gradients.timing;
      spent.staging += readback;
      spent.allreduce += allreduce;
      spent.upload += upload;
    });
  }
  await synchronize();
  const seconds = (performance.now() - start) / 1000;
  const world = comm?.size ?? 1;
  const result: WorkerResult = {
    ranks: world,
    imagesPerSecond: own.steps * config.batchSize * world / seconds,
    stepMs: 1000 * seconds / own.steps,
    waitMs: spent.wait / own.steps,
    stagingMs: spent.staging / own.steps,
    allreduceMs: spent.allreduce / own.steps,
    uploadMs: spent.upload / own.steps,
    bytes: parallel?.gradients.timing.bytes ?? 0,
    adapter: describeAdapter(gpu.adapter),
  };
  if (!comm || comm.rank === 0) console.log(JSON.stringify(result));
  metrics.dispose();
  comm?.finalize();
}

async function launch(own: Options, args: string[]): Promise<WorkerResult> {
  const self = new URL(import.meta.url).pathname;
  const command = [Deno.execPath(), "run", "-A", self, "--worker", ...args];
  const [program, ...rest] = own.ranks > 1 ? ["mpirun", "-np", String(own.ranks), ...command] : command;
  const output = await new Deno.Command(program, {
    args: rest,
    env: { LP_NUM_THREADS: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const line = text.split("\n").find((l) => l.startsWith("{"));
  if (!output.success || !line) throw new Error(`${program} failed (${output.code}):\n${text}`);
  return JSON.parse(line) as WorkerResult;
}

if (import.meta.main) {
  const args = Deno.args.filter((a) => a !== "--worker");
  const own = options(args);
  if (Deno.args.includes("--worker")) {
    await worker(own);
  } else {
    const single = await launch({ ...own, ranks: 1 }, args);
    const several = await launch(own, args);
    const mib = (several.bytes / 2 ** 20).toFixed(2);
    console.log(`adapter: ${single.adapter}; ${own.steps} timed steps after ${own.warmup} warm-up steps`);
    console.log(
      `1 process:  ${single.imagesPerSecond.toFixed(2)} images/s, ${single.stepMs.toFixed(0)} ms/step`,
    );
    console.log(
      `${several.ranks} ranks:    ${several.imagesPerSecond.toFixed(2)} images/s, ` +
        `${several.stepMs.toFixed(0)} ms/step; per step: waiting for the slowest rank ` +
        `${several.waitMs.toFixed(1)} ms, staging ${several.stagingMs.toFixed(1)} ms ` +
        `+ allreduce ${several.allreduceMs.toFixed(1)} ms + upload ${several.uploadMs.toFixed(1)} ms ` +
        `for ${mib} MiB; speed-up ${(several.imagesPerSecond / single.imagesPerSecond).toFixed(2)}x`,
    );
  }
}
