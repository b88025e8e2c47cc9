/**
 * The training loop: epochs of train steps from a BatchSource, metrics read back once per log interval,
 * evaluation, checkpoints (latest each epoch and every `checkpointEvery` steps, best by SNN top-1) and
 * learning curves. Composed from the stages in stage.ts; every stage can be replaced by the caller.
 */
import type { SpikingModel } from "../models/registry.ts";
import { ActivityRecorder, type ActivityReport } from "../nn/activity.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { learningRateAt, type ScheduleOptions } from "../optim/schedule.ts";
import type { SmlLossOptions } from "../sml/loss.ts";
import { writeCheckpoint } from "../io/checkpoint.ts";
import { MetricsAccumulator, type MetricsSnapshot } from "./metrics.ts";
import type { EpochRecord, HeadMetrics, RunFolder, StepRecord } from "./run_folder.ts";
import type { BatchSource } from "./stage.ts";
import { captureCheckpoint, type Progress, type StateSources } from "./training_state.ts";
import { evalStep, trainStep } from "./train_step.ts";

export interface LoopOptions {
  epochs: number;
  schedule: ScheduleOptions;
  loss: SmlLossOptions;
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
  epochStart?(epoch: number, batches: number, lr: number): void;
  step?(record: StepRecord, batchInEpoch: number, batches: number): void;
  epochEnd?(record: EpochRecord, activity: ActivityReport | null): void;
  checkpoint?(path: string): void;
}

export interface TrainingRun {
  model: SpikingModel;
  optimizer: Optimizer;
  train: BatchSource;
  test: BatchSource | null;
  folder: RunFolder;
  state: StateSources;
  options: LoopOptions;
  /** Where to start (a fresh run: epoch 0, step 0). */
  start: Progress;
  observer?: LoopObserver;
}

export interface RunSummary {
  epochs: number;
  steps: number;
  bestAccuracy: number;
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

/** Evaluates the model on every batch of `source`; modules are kept so their accuracy is reported. */
export async function evaluate(
  model: SpikingModel,
  source: BatchSource,
  loss: SmlLossOptions,
): Promise<{ metrics: HeadMetrics; activity: ActivityReport }> {
  const metrics = new MetricsAccumulator(1 + model.surrogates.length);
  const activity = new ActivityRecorder();
  try {
    for await (const batch of source.epoch(0)) evalStep(model, batch, metrics, loss, activity);
    return { metrics: percent(await metrics.read()), activity: await activity.report(model.T) };
  } finally {
    metrics.dispose();
    activity.dispose();
  }
}

export async function runTraining(run: TrainingRun): Promise<RunSummary> {
  const { model, optimizer, train, test, folder, options, observer } = run;
  const progress: Progress = { ...run.start };
  const heads = 1 + model.surrogates.length;
  const stepMetrics = new MetricsAccumulator(heads);
  const epochMetrics = new MetricsAccumulator(heads);
  const activity = new ActivityRecorder();
  let last: EpochRecord | null = null;
  const saveLatest = async () => {
    const path = folder.checkpointPath("latest");
    await writeCheckpoint(path, await captureCheckpoint(run.state, progress));
    observer?.checkpoint?.(path);
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
        trainStep({
          model,
          optimizer,
          loss: options.loss,
          metrics: stepMetrics,
          activity: logging ? activity : undefined,
        }, batch);
        progress.step++;
        progress.batchInEpoch++;
        if (logging) {
          const snapshot = await stepMetrics.read();
          const report = await activity.report(model.T);
          const seconds = (performance.now() - windowStart) / 1000;
          const record: StepRecord = {
            type: "step",
            epoch,
            step: progress.step,
            lr,
            ...percent(snapshot),
            imagesPerSecond: snapshot.samples / seconds,
            firingRates: lifRates(report),
          };
          checkFinite(record, progress.step);
          await folder.append(record);
          observer?.step?.(record, progress.batchInEpoch, train.batchesPerEpoch);
          epochMetrics.addFrom(stepMetrics);
          stepMetrics.reset();
          activity.reset();
          windowStart = performance.now();
        }
        if (options.checkpointEvery > 0 && progress.step % options.checkpointEvery === 0) {
          // Never checkpoint weights a non-finite loss has already touched.
          checkFinite(percent(await stepMetrics.read()), progress.step);
          await saveLatest();
        }
        if (options.maxSteps && progress.step >= options.maxSteps) {
          stopped = true;
          break;
        }
      }
      epochMetrics.addFrom(stepMetrics);
      const trainMetrics = percent(await epochMetrics.read());
      checkFinite(trainMetrics, progress.step);
      const finalEpoch = epoch + 1 >= options.epochs || stopped;
      let evaluation: Awaited<ReturnType<typeof evaluate>> | null = null;
      if (test && ((epoch + 1) % options.evalEvery === 0 || finalEpoch)) {
        evaluation = await evaluate(model, test, options.loss);
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
      await folder.append(record);
      const accuracy = evaluation?.metrics.top1[0] ?? -1;
      const improved = evaluation !== null && accuracy > progress.bestAccuracy;
      if (improved) progress.bestAccuracy = accuracy;
      await saveLatest();
      if (improved) {
        const path = folder.checkpointPath("best");
        await writeCheckpoint(path, await captureCheckpoint(run.state, progress));
        observer?.checkpoint?.(path);
      }
      await folder.writePlots(await folder.readRecords());
      observer?.epochEnd?.(record, evaluation?.activity ?? null);
      if (stopped) break;
    }
  } finally {
    stepMetrics.dispose();
    epochMetrics.dispose();
    activity.dispose();
  }
  return { epochs: progress.epoch, steps: progress.step, bestAccuracy: progress.bestAccuracy, last };
}

/** A non-finite loss ends the run with the step named; the last checkpoint on disk stays good. */
function checkFinite(metrics: HeadMetrics, step: number): void {
  const values = [metrics.loss, metrics.hard, metrics.soft];
  if (values.every(Number.isFinite)) return;
  throw new NonFiniteLossError(step, metrics);
}

export class NonFiniteLossError extends Error {
  constructor(readonly step: number, readonly metrics: HeadMetrics) {
    super(
      `training: the loss became non-finite by step ${step} (loss ${metrics.loss}, hard ${metrics.hard}, ` +
        `soft ${metrics.soft}); stopped without overwriting the last good checkpoint. Try a lower --lr.`,
    );
  }
}
