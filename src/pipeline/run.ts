/**
 * Running a pipeline: resolve its configuration, build its stages (source, model, loss, optimizer,
 * schedule, observers), restore a checkpoint or initial weights, then train into a run folder or, with
 * `testOnly`, evaluate. The CLI runs its presets through here too: one code path. Every input problem
 * stops with a message before any work.
 */
import { basename, dirname, join } from "node:path";
import { describeAdapter, initGpu } from "../gpu/device.ts";
import { type Checkpoint, readCheckpoint } from "../io/checkpoint.ts";
import { loadSafetensors, saveSafetensors } from "../io/state_dict.ts";
import type { SpikingModel } from "../models/model.ts";
import type { ActivityReport } from "../nn/activity.ts";
import { GradScaler } from "../optim/grad_scaler.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { Module } from "../nn/module.ts";
import { resolveConfig, type RunConfig } from "./config.ts";
import type { BuiltModel, Pipeline, Stages } from "./pipeline.ts";
import type { HeadMetrics } from "./run_folder.ts";
import { RunFolder } from "./run_folder.ts";
import { CONFIGURED_STAGES } from "./stages.ts";
import { DataParallel, requireSameSettings, requireSameWeights } from "../dist/data_parallel.ts";
import { describeRanks, type Job, rankName } from "../dist/job.ts";
import type { BatchSource } from "./stage.ts";
import { evaluate, type LoopObserver, type RunSummary, runTraining } from "./train_loop.ts";
import type { LossStage } from "./train_step.ts";
import { type Progress, restoreCheckpoint, type StateSources } from "./training_state.ts";

/** How a run reports, besides its run folder. */
export interface RunOptions {
  /** Where progress lines go (the adapter, the model, the run folder, the result); default console.log. */
  log?: (line: string) => void;
  /** Observers added to the pipeline's own (the CLI's progress bar). */
  observers?: LoopObserver[];
  /**
   * The data-parallel job this process is a rank of (`joinJob` of src/dist/job.ts, called before
   * anything touches WebGPU); default: a single process. Rank 0 alone logs and writes.
   */
  job?: Job | null;
}

/** A run with its stages built and its starting point restored, before training or evaluation. */
export interface PreparedRun {
  /** The resolved configuration (a resumed run's seed included). */
  config: RunConfig;
  /** The stages in use: the pipeline's own, the rest from the configuration. */
  stages: Stages;
  /** The network, restored when resuming. */
  model: SpikingModel;
  /** The network with its name and options, as checkpoints record them. */
  built: BuiltModel;
  /** The optimizer, restored when resuming. */
  optimizer: Optimizer;
  /** The loss stage. */
  loss: LossStage;
  /** Training batches. */
  train: BatchSource;
  /** Evaluation batches, or none. */
  test: BatchSource | null;
  /** The loss scaler of a mixed-precision (`f16`) run. */
  scaler?: GradScaler;
  /** What a checkpoint captures. */
  state: StateSources;
  /** Where training starts (a resumed run: the checkpoint's position). */
  start: Progress;
  /** This rank's place in a data-parallel job (gradients, metrics, writes), or none. */
  parallel?: DataParallel;
  /** Whether this process logs and writes: a single process, or rank 0 of a job. */
  leader: boolean;
  /** Stops the sources' workers (the model stays with the caller). */
  close(): void;
}

/** What a run ends with: the trained model and its summary, or the evaluation of `testOnly`. */
export type RunResult =
  | { kind: "train"; config: RunConfig; model: SpikingModel; folder: string; summary: RunSummary }
  | { kind: "test"; config: RunConfig; model: SpikingModel; test: HeadMetrics; activity: ActivityReport };

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

/** One observer that tells each of `observers` in turn. */
function allOf(observers: LoopObserver[]): LoopObserver {
  return {
    epochStart: (...args) => observers.forEach((o) => o.epochStart?.(...args)),
    step: (...args) => observers.forEach((o) => o.step?.(...args)),
    epochEnd: (...args) => observers.forEach((o) => o.epochEnd?.(...args)),
    checkpoint: (...args) => observers.forEach((o) => o.checkpoint?.(...args)),
  };
}

/**
 * Resolves the configuration (defaults, the pipeline's values, then `overrides`), opens the GPU and the
 * source, builds the model and optimizer and restores `resume` or `initWeights`. A resumed run continues
 * the checkpoint's data order unless `overrides` sets a seed.
 */
export async function prepareRun(
  pipeline: Pipeline,
  overrides: Partial<RunConfig> = {},
  options: RunOptions = {},
): Promise<PreparedRun> {
  const { job } = options;
  const ranks = job ? { rank: job.communicator.rank, size: job.communicator.size } : undefined;
  const leader = !ranks || ranks.rank === 0;
  // Rank 0 speaks for the job; the other ranks print their adapter and their errors only.
  const log = leader ? options.log ?? console.log : () => {};
  const config = resolveConfig(pipeline.config, { preset: pipeline.name }, overrides);
  const stages: Stages = { ...CONFIGURED_STAGES, ...pipeline.stages };
  if (job && config.probe) throw new Error("--probe: runs in one process; start it without mpirun/srun");
  if (config.exportWeights && leader) await requireWritable("export-weights", config.exportWeights);
  const gpu = await initGpu({ requireF16: config.f16 }).catch((error: Error) => {
    throw config.f16 ? new Error(`--f16: ${error.message}`) : error;
  });
  if (job) {
    log(`distributed: ${ranks!.size} ranks, ${job.communicator.description}; ${describeRanks(job)}`);
    const where = `${
      rankName(job)
    }, pid ${Deno.pid}, local rank ${job.communicator.localRank}, ${job.gpu.detail}`;
    console.log(`adapter (${where}): ${describeAdapter(gpu.adapter)}`);
  } else {
    log(`adapter: ${describeAdapter(gpu.adapter)}`);
  }
  const checkpoint: Checkpoint | null = config.resume ? await readCheckpoint(config.resume) : null;
  const savedSeed = (checkpoint?.rng as { seed?: number } | undefined)?.seed;
  if (savedSeed !== undefined && overrides.seed === undefined) config.seed = savedSeed;
  const { train, test, inChannels } = await stages.source(config, ranks);
  try {
    const made = stages.model(config, { numClasses: train.numClasses, inChannels });
    const built: BuiltModel = made instanceof Module
      ? { model: made, name: config.model, options: {} }
      : made;
    const { model } = built;
    const optimizer = stages.optimizer(config, model.parameters());
    // torch.amp.GradScaler's defaults.
    const scaler = config.f16 ? new GradScaler() : undefined;
    const state: StateSources = {
      modelName: built.name,
      modelOptions: built.options as Record<string, unknown>,
      model,
      optimizer,
      config: config as unknown as Record<string, unknown>,
      seed: config.seed,
      scaler,
      world: ranks?.size,
    };
    let start: Progress = { epoch: 0, step: 0, batchInEpoch: 0, bestAccuracy: -1 };
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
        modelOptions: built.options,
        data: { train: train.length, test: test?.length ?? 0, classes: train.numClasses },
        parameters: shapes,
      });
      await requireSameWeights(job.communicator, model);
    }
    const parameterCount = model.parameters().reduce((n, p) => n + p.size, 0);
    const data = pipeline.stages.source ? "own source" : config.dataset;
    log(
      `model ${built.name} (${(parameterCount / 1e6).toFixed(2)} M parameters, T=${config.T}, ` +
        `${model.surrogates.length} surrogate modules); data ${data}: ${train.length} train, ` +
        `${test?.length ?? 0} test samples, ${train.numClasses} classes`,
    );
    return {
      config,
      stages,
      model,
      built,
      optimizer,
      loss: stages.loss(config),
      train,
      test,
      scaler,
      state,
      start,
      parallel: job
        ? new DataParallel(job.communicator, model, optimizer.params, undefined, config.syncBn)
        : undefined,
      leader,
      close() {
        train.close();
        test?.close();
      },
    };
  } catch (error) {
    train.close();
    test?.close();
    throw error;
  }
}

/**
 * Runs `pipeline` in a line: `await run(cifar10ResNet19, { dataDir, epochs: 1 })`. Trains into a run
 * folder (config, metrics.jsonl, checkpoints, plots) and exports weights when asked; with `testOnly`,
 * evaluates the restored weights instead.
 */
export async function run(
  pipeline: Pipeline,
  overrides: Partial<RunConfig> = {},
  options: RunOptions = {},
): Promise<RunResult> {
  const prepared = await prepareRun(pipeline, overrides, options);
  const { config, model, test, parallel, leader } = prepared;
  const log = leader ? options.log ?? console.log : () => {};
  try {
    if (config.testOnly) {
      if (!test) throw new Error(`--test-only: the ${config.dataset} data set has no test split here`);
      const { metrics, activity } = await evaluate(model, test, prepared.loss, config.f16, parallel);
      log(JSON.stringify({ test: metrics, ...activity }, null, 2));
      return { kind: "test", config, model, test: metrics, activity };
    }
    const outputDir = config.outputDir || defaultOutputDir(config);
    const folder = leader ? await RunFolder.create(outputDir) : new RunFolder(outputDir);
    if (leader) await folder.writeConfig({ ...config, modelOptions: prepared.built.options });
    log(`run folder ${folder.path}`);
    const summary = await runTraining({
      model,
      optimizer: prepared.optimizer,
      train: prepared.train,
      test,
      folder,
      state: prepared.state,
      start: prepared.start,
      scaler: prepared.scaler,
      observer: leader
        ? allOf([...prepared.stages.observers(config), ...options.observers ?? []])
        : undefined,
      parallel,
      options: {
        epochs: config.epochs,
        schedule: prepared.stages.schedule(config),
        loss: prepared.loss,
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
    return { kind: "train", config, model, folder: folder.path, summary };
  } finally {
    prepared.close();
  }
}
