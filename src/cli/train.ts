/**
 * `deno task train`: flags -> run configuration -> data sources, model, optimizer -> the training loop
 * (or evaluation, or the gradient probe). Every input problem stops with a message before any work.
 */
import { basename, dirname, join } from "node:path";
import { describeAdapter, initGpu } from "../gpu/device.ts";
import { synchronize } from "../gpu/kernels.ts";
import { readCheckpoint } from "../io/checkpoint.ts";
import { loadSafetensors, saveSafetensors } from "../io/state_dict.ts";
import { createModel, type ModelOptions, type SpikingModel } from "../models/registry.ts";
import { GradScaler } from "../optim/grad_scaler.ts";
import { createOptimizer } from "../optim/optimizer.ts";
import { RunFolder } from "../pipeline/run_folder.ts";
import { openSources } from "../pipeline/sources.ts";
import { evaluate, runTraining } from "../pipeline/train_loop.ts";
import { restoreCheckpoint, type StateSources } from "../pipeline/training_state.ts";
import { DataParallel, requireSameSettings, requireSameWeights } from "../dist/data_parallel.ts";
import { describeRanks, failJob, type Job, joinJob, rankName } from "../dist/job.ts";
import { runProbe } from "./probe.ts";
import { helpText, parseConfig, type RunConfig } from "./config.ts";
import { ProgressPrinter } from "./progress.ts";

/** The model options a configuration asks for, given the data's classes and channels. */
export function modelOptionsFor(config: RunConfig, numClasses: number, inChannels: number): ModelOptions {
  const options: ModelOptions = {
    numClasses,
    T: config.T,
    inChannels,
    seed: config.seed,
    lif: { surrogate: config.surrogate },
  };
  if (config.model === "plain") {
    options.depth = config.depth;
    options.widths = [config.width, config.width, 2 * config.width];
  } else {
    options.width = config.width;
  }
  if (!config.noSb) {
    options.modules = {
      positions: config.sbPlaces,
      kernels: config.sbKernels,
      width: config.sbWidth,
      local: config.sbLocal,
    };
  }
  return options;
}

/** Builds the model; surrogate positions past the last block are reported against the flag that set them. */
function buildModel(config: RunConfig, options: ModelOptions): SpikingModel {
  try {
    return createModel(config.model, options);
  } catch (error) {
    const message = (error as Error).message;
    if (!message.startsWith("surrogate modules: ")) throw error;
    throw new Error(
      `--sb-places: got ${config.sbPlaces.join(",")} for --model ${config.model}: ` +
        message.slice("surrogate modules: ".length),
    );
  }
}

/** Fails before any work, not after training, when the weights could not be exported to `path`. */
async function requireWritable(flag: string, path: string): Promise<void> {
  const probe = join(dirname(path), `.${basename(path)}.${Deno.pid}.probe`);
  try {
    if ((await Deno.stat(path).catch(() => null))?.isDirectory) throw new Error("it is a directory");
    await Deno.writeFile(probe, new Uint8Array());
    await Deno.remove(probe);
  } catch (error) {
    const reason = (error as Error).message;
    throw new Error(`--${flag}: cannot write ${path} (${reason}); expected a file path in a writable folder`);
  }
}

function defaultOutputDir(config: RunConfig): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  return join("runs", `${config.preset}-${config.model}${config.noSb ? "-nosb" : ""}-${stamp}`);
}

/** This process's data-parallel job, once joined; an error then stops every rank (see failJob). */
let job = null as Job | null;

export async function main(args: string[]): Promise<number> {
  const { config, explicit, help } = parseConfig(args);
  if (help) {
    console.log(helpText());
    return 0;
  }
  job = joinJob(config.distributed);
  const ranks = job ? { rank: job.communicator.rank, size: job.communicator.size } : undefined;
  // Rank 0 speaks for the job; the other ranks print their adapter and their errors only.
  const leader = !ranks || ranks.rank === 0;
  const log = (line: string) => leader && console.log(line);
  if (job && config.probe) {
    throw new Error("--probe: runs in one process; start it without mpirun/srun");
  }
  if (config.exportWeights && leader) await requireWritable("export-weights", config.exportWeights);
  const gpu = await initGpu({ requireF16: config.f16 }).catch((error: Error) => {
    throw config.f16 ? new Error(`--f16: ${error.message}`) : error;
  });
  if (job) {
    const table = describeRanks(job);
    log(`distributed: ${ranks!.size} ranks, ${job.communicator.description}; ${table}`);
    console.log(
      `adapter (${
        rankName(job)
      }, pid ${Deno.pid}, local rank ${job.communicator.localRank}, ${job.gpu.detail}): ` +
        describeAdapter(gpu.adapter),
    );
  } else {
    console.log(`adapter: ${describeAdapter(gpu.adapter)}`);
  }
  const checkpoint = config.resume ? await readCheckpoint(config.resume) : null;
  // The data order continues from the checkpoint's seed unless a new one is asked for.
  const savedSeed = (checkpoint?.rng as { seed?: number } | undefined)?.seed;
  if (savedSeed !== undefined && !explicit.has("seed")) config.seed = savedSeed;
  const { train, test, inChannels } = await openSources(config, ranks);
  try {
    const modelOptions = modelOptionsFor(config, train.numClasses, inChannels);
    const model = buildModel(config, modelOptions);
    const optimizer = createOptimizer(config.optimizer, model.parameters(), {
      lr: config.lr,
      momentum: config.momentum,
      weightDecay: config.weightDecay,
    });
    // torch.amp.GradScaler's defaults.
    const scaler = config.f16 ? new GradScaler() : undefined;
    const state: StateSources = {
      modelName: config.model,
      modelOptions: modelOptions as unknown as Record<string, unknown>,
      model,
      optimizer,
      config: config as unknown as Record<string, unknown>,
      seed: config.seed,
      scaler,
      world: ranks?.size,
    };
    let start = { epoch: 0, step: 0, batchInEpoch: 0, bestAccuracy: -1 };
    if (checkpoint) {
      start = await restoreCheckpoint(checkpoint, state, config.resume);
      log(`resumed ${config.resume}: epoch ${start.epoch + 1}, step ${start.step}, T=${config.T}`);
    }
    if (config.initWeights) {
      await loadSafetensors(config.initWeights, model, { allowMissingSurrogates: true });
      log(`weights from ${config.initWeights}`);
    }
    if (job) {
      // Before any step: the same flags, data and model on every rank, and rank 0's weights everywhere.
      const shapes = model.namedParameters().map(([name, p]) => `${name}:${p.shape.join("x")}`);
      requireSameSettings(job.communicator, "configuration", {
        config,
        modelOptions,
        data: { train: train.length, test: test?.length ?? 0, classes: train.numClasses },
        parameters: shapes,
      });
      await requireSameWeights(job.communicator, model);
    }
    const parameterCount = model.parameters().reduce((n, p) => n + p.size, 0);
    log(
      `model ${config.model} (${(parameterCount / 1e6).toFixed(2)} M parameters, T=${config.T}, ` +
        `${model.surrogates.length} surrogate modules); data ${config.dataset}: ${train.length} train, ` +
        `${test?.length ?? 0} test samples, ${train.numClasses} classes`,
    );
    const loss = { temperature: config.temperature, alpha: config.alpha, lambda: config.lambda };
    if (config.probe) {
      await runProbe(config, model, train);
      return 0;
    }
    if (config.testOnly) {
      if (!test) throw new Error(`--test-only: the ${config.dataset} data set has no test split here`);
      const parallel = job ? new DataParallel(job.communicator, model, []) : undefined;
      const { metrics, activity } = await evaluate(model, test, loss, config.f16, parallel);
      log(JSON.stringify({ test: metrics, ...activity }, null, 2));
      return 0;
    }
    const outputDir = config.outputDir || defaultOutputDir(config);
    const folder = leader ? await RunFolder.create(outputDir) : new RunFolder(outputDir);
    if (leader) await folder.writeConfig({ ...config, modelOptions });
    log(`run folder ${folder.path}`);
    const parallel = job ? new DataParallel(job.communicator, model, optimizer.params) : undefined;
    const summary = await runTraining({
      model,
      optimizer,
      train,
      test,
      folder,
      state,
      start,
      scaler,
      observer: leader ? new ProgressPrinter(config.epochs) : undefined,
      parallel,
      options: {
        epochs: config.epochs,
        schedule: {
          kind: config.schedule,
          baseLr: config.lr,
          epochs: config.cosTMax || config.epochs,
          warmupEpochs: config.warmupEpochs,
        },
        loss,
        logEvery: config.logEvery,
        evalEvery: config.evalEvery,
        checkpointEvery: config.checkpointEvery,
        maxSteps: config.maxSteps,
      },
    });
    if (config.exportWeights && leader) {
      await saveSafetensors(config.exportWeights, model);
      log(`weights exported to ${config.exportWeights}`);
    }
    const best = summary.bestAccuracy >= 0 ? `, best test top-1 ${summary.bestAccuracy.toFixed(2)}%` : "";
    log(`done: ${summary.epochs} epochs, ${summary.steps} steps${best}; run folder ${folder.path}`);
    return 0;
  } finally {
    train.close();
    test?.close();
  }
}

if (import.meta.main) {
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (error) {
    if (job && job.communicator.size > 1) await failJob(job, error);
    console.error(`error: ${(error as Error).message}`);
  }
  // Let recorded GPU work finish: wgpu aborts a process that exits while a submission still runs.
  await synchronize().catch(() => {});
  job?.communicator.finalize();
  Deno.exit(code);
}
