/**
 * The training loop: epochs of train steps from a BatchSource, metrics read back once per log interval,
 * evaluation, checkpoints (latest each epoch and every `checkpointEvery` steps, best by SNN top-1) and
 * learning curves. Composed from the stages in stage.ts; every stage can be replaced by the caller.
 *
 * Faults stop the run with the last good checkpoint untouched: NaN or infinity in the loss, in any
 * gradient or in any weight (flagged on the GPU every step, read back with the metrics and before each
 * checkpoint; see NonFiniteError), and a lost GPU device (reported as such, not as the failed call).
 */
import { explainGpuError, throwIfGpuFailed } from "../gpu/device.ts";
import type { SpikingModel } from "../models/registry.ts";
import { ActivityRecorder, type ActivityReport } from "../nn/activity.ts";
import { FiniteWatch } from "../optim/finite_check.ts";
import type { GradScaler } from "../optim/grad_scaler.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { learningRateAt, type ScheduleOptions } from "../optim/schedule.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { firstNonFinite, writeCheckpoint } from "../io/checkpoint.ts";
import { MetricsAccumulator, type MetricsSnapshot } from "./metrics.ts";
import type { EpochRecord, FaultRecord, HeadMetrics, RunFolder, StepRecord } from "./run_folder.ts";
import type { BatchSource } from "./stage.ts";
import { captureCheckpoint, type Progress, type StateSources } from "./training_state.ts";
import { evalStep, type LossStage, trainStep, trainStepReduced } from "./train_step.ts";
import type { DataParallel } from "../dist/data_parallel.ts";

/** How the loop trains, logs, evaluates and checkpoints. */
export interface LoopOptions {
  /** Epochs in total. */
  epochs: number;
  /** Learning-rate schedule. */
  schedule: ScheduleOptions;
  /** The loss stage: the SML loss weights or the caller's own loss function. */
  loss: LossStage;
  /** Read metrics and log every this many steps. */
  logEvery: number;
  /** Evaluate every this many epochs (and after the last). */
  evalEvery: number;
  /** Also write the latest checkpoint every this many steps; 0: only at epoch ends. */
  checkpointEvery: number;
  /** Stop after this many steps in total (for tests and smoke runs); 0: no limit. */
  maxSteps?: number;
}

/** What the loop reports as it goes; the CLI renders it as a progress bar or plain lines. */
export interface LoopObserver {
  /** An epoch starts with `batches` batches at learning rate `lr`. */
  epochStart?(epoch: number, batches: number, lr: number): void;
  /** A logged step. */
  step?(record: StepRecord, batchInEpoch: number, batches: number): void;
  /** An epoch ended (with the evaluation's activity, when it ran). */
  epochEnd?(record: EpochRecord, activity: ActivityReport | null): void;
  /** A checkpoint was written to `path`. */
  checkpoint?(path: string): void;
}

/** Everything a training run needs. */
export interface TrainingRun {
  /** The model to train. */
  model: SpikingModel;
  /** Its optimizer. */
  optimizer: Optimizer;
  /** Training batches. */
  train: BatchSource;
  /** Test batches, or null for no evaluation. */
  test: BatchSource | null;
  /** Where metrics and checkpoints go. */
  folder: RunFolder;
  /** What checkpoints hold. */
  state: StateSources;
  /** Loop settings. */
  options: LoopOptions;
  /** Where to start (a fresh run: epoch 0, step 0). */
  start: Progress;
  /** Mixed precision (f16 convolutions) with this loss scaler; also in `state`, for checkpoints. */
  scaler?: GradScaler;
  /** Progress reports. */
  observer?: LoopObserver;
  /**
   * One rank of a data-parallel job: gradients averaged over ranks each step, metrics summed and
   * activity averaged over ranks, and only rank 0 writes the run folder.
   */
  parallel?: DataParallel;
}

/** How a run ended. */
export interface RunSummary {
  /** Epochs finished. */
  epochs: number;
  /** Optimizer steps taken. */
  steps: number;
  /** Best SNN test top-1 (percent), or -1 without evaluation. */
  bestAccuracy: number;
  /** The last epoch record. */
  last: EpochRecord | null;
}

function percent(snapshot: MetricsSnapshot): HeadMetrics {
  return {
    loss: snapshot.loss,
    hard: snapshot.hard,
    soft: snapshot.soft,
    top1: snapshot.top1.map((v) => 100 * v),
    top5: snapshot.top5.map((v) => 100 * v),
  };
}

function lifRates(report: ActivityReport | null): Record<string, number> {
  const rates: Record<string, number> = {};
  for (const layer of report?.layers ?? []) if (layer.kind === "lif") rates[layer.name] = layer.rate;
  return rates;
}

/**
 * Evaluates the model on every batch of `source`; modules are kept so their accuracy is reported. `half`:
 * f16 convolutions, as in training under a loss scaler. With `parallel`, `source` is this rank's share
 * of the test set: counts are summed and activity averaged over ranks.
 */
export async function evaluate(
  model: SpikingModel,
  source: BatchSource,
  loss: LossStage,
  half = false,
  parallel?: DataParallel,
): Promise<{ metrics: HeadMetrics; activity: ActivityReport }> {
  const metrics = new MetricsAccumulator(1 + model.surrogates.length, parallel?.sum);
  const activity = new ActivityRecorder(model);
  try {
    // Every batch runs at the first (full) batch's size: see evalStep.
    let full = 0;
    for await (const batch of source.epoch(0)) {
      full ||= batch.labels.length;
      evalStep({ model, loss, metrics, activity, padTo: full, half }, batch);
    }
    const report = await activity.report(model.T);
    return {
      metrics: percent(await metrics.read()),
      activity: parallel ? parallel.meanActivity(report) : report,
    };
  } finally {
    metrics.dispose();
    activity.dispose();
  }
}

/**
 * Trains from `run.start` to the last epoch (or `maxSteps`): steps, logs, evaluations and checkpoints; stops
 * with the last good checkpoint intact on a non-finite value.
 */
export async function runTraining(run: TrainingRun): Promise<RunSummary> {
  const { model, optimizer, train, test, folder, options, observer, scaler, parallel } = run;
  const progress: Progress = { ...run.start };
  const heads = 1 + model.surrogates.length;
  const stepMetrics = new MetricsAccumulator(heads, parallel?.sum);
  const epochMetrics = new MetricsAccumulator(heads, parallel?.sum);
  // Rank 0 alone writes; every rank still computes every record (its collectives must match rank 0's).
  const writes = parallel?.writes ?? true;
  const activity = new ActivityRecorder(model);
  // Under loss scaling a non-finite gradient only skips its step; the weights must still stay finite.
  const watch = new FiniteWatch({ gradients: !scaler });
  const watchedOptimizer = watch.watch(optimizer, () => progress.step + 1);
  const names = new Map(model.namedParameters().map(([name, tensor]) => [tensor, name]));
  const parameterName = (index: number) => names.get(optimizer.params[index]) ?? optimizer.params[index].name;
  let last: EpochRecord | null = null;
  let lastLogged: HeadMetrics | null = null;

  const stopNonFinite = async (found: NonFiniteFound, metrics: HeadMetrics): Promise<never> => {
    const latest = folder.checkpointPath("latest");
    const record: FaultRecord = {
      type: "fault",
      kind: "non-finite",
      step: found.step,
      epoch: progress.epoch,
      loss: {
        loss: jsonNumber(metrics.loss),
        hard: jsonNumber(metrics.hard),
        soft: jsonNumber(metrics.soft),
      },
      parameter: found.parameter,
      part: found.part,
      checkpoint: await Deno.stat(latest).then(() => latest, () => null),
      message: "",
    };
    record.message = nonFiniteMessage(record, found.exact, folder.diagnosticPath);
    if (writes) {
      await writeFileAtomic(
        folder.diagnosticPath,
        new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n"),
      );
      await folder.append(record);
    }
    throw new NonFiniteError(record);
  };
  /** Stops the run when the loss (`metrics`), a gradient or a weight has gone non-finite. */
  const requireFinite = async (metrics: HeadMetrics): Promise<void> => {
    const hit = await watch.read();
    if (hit) {
      await stopNonFinite({ ...hit, parameter: parameterName(hit.index), exact: true }, metrics);
    }
    if ([metrics.loss, metrics.hard, metrics.soft].every(Number.isFinite)) return;
    await stopNonFinite({ step: progress.step, parameter: null, part: null, exact: false }, metrics);
  };
  /** Writes latest (and best) only when every number in them is finite and the GPU is still there. */
  const save = async (metrics: HeadMetrics, best: boolean): Promise<void> => {
    await requireFinite(metrics);
    // Every rank holds the same weights and optimizer state: only the writer reads them back.
    if (!writes) return;
    const checkpoint = await captureCheckpoint(run.state, progress);
    throwIfGpuFailed();
    const poisoned = firstNonFinite(checkpoint);
    if (poisoned) {
      const parameter = "weight" in poisoned
        ? poisoned.weight
        : `optimizer ${poisoned.slot} of ${parameterName(poisoned.index)}`;
      await stopNonFinite({ step: progress.step, parameter, part: "value", exact: false }, metrics);
    }
    for (const which of best ? ["latest", "best"] as const : ["latest"] as const) {
      const path = folder.checkpointPath(which);
      await writeCheckpoint(path, checkpoint);
      observer?.checkpoint?.(path);
    }
  };
  try {
    while (progress.epoch < options.epochs) {
      const epoch = progress.epoch;
      const lr = learningRateAt(epoch, options.schedule);
      optimizer.lr = lr;
      observer?.epochStart?.(epoch, train.batchesPerEpoch, lr);
      epochMetrics.reset();
      stepMetrics.reset();
      activity.reset();
      const epochStart = performance.now();
      let windowStart = performance.now();
      let stopped = false;
      for await (const batch of train.epoch(epoch, progress.batchInEpoch)) {
        const logging = (progress.step + 1) % options.logEvery === 0;
        const context = {
          model,
          optimizer: watchedOptimizer,
          loss: options.loss,
          metrics: stepMetrics,
          activity: logging ? activity : undefined,
          scaler,
        };
        if (parallel) {
          await trainStepReduced(context, batch, () => parallel.gradients.run(), parallel.batchNorm);
        } else trainStep(context, batch);
        progress.step++;
        progress.batchInEpoch++;
        if (logging) {
          const snapshot = await stepMetrics.read();
          const local = await activity.report(model.T);
          const report = parallel ? parallel.meanActivity(local) : local;
          const seconds = (performance.now() - windowStart) / 1000;
          const record: StepRecord = {
            type: "step",
            epoch,
            step: progress.step,
            lr,
            ...percent(snapshot),
            imagesPerSecond: snapshot.samples / seconds,
            firingRates: lifRates(report),
            ...(scaler ? await lossScaling(scaler) : {}),
          };
          await requireFinite(record);
          lastLogged = record;
          if (writes) await folder.append(record);
          observer?.step?.(record, progress.batchInEpoch, train.batchesPerEpoch);
          epochMetrics.addFrom(stepMetrics);
          stepMetrics.reset();
          activity.reset();
          windowStart = performance.now();
        }
        if (options.checkpointEvery > 0 && progress.step % options.checkpointEvery === 0) {
          const window = await stepMetrics.read();
          // Right after a log step the window is empty: a fault record shows the logged loss instead.
          await save(window.samples === 0 && lastLogged ? lastLogged : percent(window), false);
        }
        if (options.maxSteps && progress.step >= options.maxSteps) {
          stopped = true;
          break;
        }
      }
      epochMetrics.addFrom(stepMetrics);
      const trainMetrics = percent(await epochMetrics.read());
      await requireFinite(trainMetrics);
      const finalEpoch = epoch + 1 >= options.epochs || stopped;
      let evaluation: Awaited<ReturnType<typeof evaluate>> | null = null;
      if (test && ((epoch + 1) % options.evalEvery === 0 || finalEpoch)) {
        evaluation = await evaluate(model, test, options.loss, scaler !== undefined, parallel);
      }
      if (!stopped) {
        progress.epoch++;
        progress.batchInEpoch = 0;
      }
      const record: EpochRecord = {
        type: "epoch",
        epoch,
        step: progress.step,
        lr,
        seconds: (performance.now() - epochStart) / 1000,
        train: trainMetrics,
        test: evaluation?.metrics ?? null,
        firingRates: lifRates(evaluation?.activity ?? null),
        synapticOps: evaluation?.activity.synapticOps,
        macs: evaluation?.activity.macs,
        energyMicrojoules: evaluation?.activity.energyMicrojoules,
      };
      last = record;
      if (writes) await folder.append(record);
      const accuracy = evaluation?.metrics.top1[0] ?? -1;
      const improved = evaluation !== null && accuracy > progress.bestAccuracy;
      if (improved) progress.bestAccuracy = accuracy;
      await save(trainMetrics, improved);
      if (writes) await folder.writePlots(await folder.readRecords());
      observer?.epochEnd?.(record, evaluation?.activity ?? null);
      if (stopped) break;
    }
  } catch (error) {
    throw await explainGpuError(error);
  } finally {
    stepMetrics.dispose();
    epochMetrics.dispose();
    activity.dispose();
    watch.dispose();
  }
  return { epochs: progress.epoch, steps: progress.step, bestAccuracy: progress.bestAccuracy, last };
}

async function lossScaling(scaler: GradScaler): Promise<Pick<StepRecord, "lossScale" | "skippedSteps">> {
  const { scale, skippedSteps } = await scaler.read();
  return { lossScale: scale, skippedSteps };
}

interface NonFiniteFound {
  step: number;
  parameter: string | null;
  part: FaultRecord["part"];
  /** The step is the one that produced the value (the GPU flag), not only the one that noticed it. */
  exact: boolean;
}

function jsonNumber(value: number): number | string {
  return Number.isFinite(value) ? value : String(value);
}

function nonFiniteMessage(record: FaultRecord, exact: boolean, diagnosticPath: string): string {
  const when = `${exact ? "at" : "by"} step ${record.step}`;
  const what = record.parameter
    ? `the ${record.part} of ${record.parameter} became NaN or infinite ${when}`
    : `the loss became non-finite ${when}`;
  const { loss, hard, soft } = record.loss;
  const kept = record.checkpoint
    ? `the last good checkpoint ${record.checkpoint} is left as it was`
    : "no checkpoint had been written yet";
  return `training: ${what} (loss ${loss}, hard ${hard}, soft ${soft}); stopped without ` +
    `saving: ${kept}; details in ${diagnosticPath}. Try a lower --lr, or check the input data.`;
}

/** A run stopped because a number went non-finite; `record` is what diagnostic.json holds. */
export class NonFiniteError extends Error {
  constructor(readonly record: FaultRecord) {
    super(record.message);
  }
}
