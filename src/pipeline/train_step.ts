/**
 * The train-step and evaluation stages: upload a host batch, forward (recording a tape), SML loss,
 * backward, optimizer update, metrics accumulated on the GPU. Nothing is read back here.
 */
import type { ForwardResult } from "../models/attachment.ts";
import type { SpikingModel } from "../models/registry.ts";
import { copyBuffer, runDeferred } from "../gpu/kernels.ts";
import type { ActivityRecorder } from "../nn/activity.ts";
import { autocast } from "../ops/autocast.ts";
import { type BatchNormReduction, withBatchNormReduction } from "../ops/batch_norm_reduction.ts";
import type { GradScaler } from "../optim/grad_scaler.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { type SmlLoss, smlLoss, type SmlLossOptions } from "../sml/loss.ts";
import { Scope } from "../tensor/scope.ts";
import { Tape } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { MetricsAccumulator } from "./metrics.ts";

/** A batch on the CPU, as data loaders produce it. */
export interface HostBatch {
  /** (B, C, H, W) images or (T, B, C, H, W) event frames, row-major. */
  data: Float32Array;
  /** Shape of `data`. */
  shape: number[];
  /** Class index of each sample. */
  labels: Int32Array;
}

/** A batch on the GPU. */
export interface DeviceBatch {
  /** The input tensor. */
  input: Tensor;
  /** Labels (B), i32. */
  labels: Tensor;
  /** Samples in the batch. */
  size: number;
}

/** Upload stage. The tensors belong to the caller's scope. */
export function upload(batch: HostBatch): DeviceBatch {
  const size = batch.labels.length;
  const expected = batch.shape.length === 5 ? batch.shape[1] : batch.shape[0];
  if (expected !== size) {
    throw new Error(`batch: ${size} labels for a batch of shape [${batch.shape.join(", ")}]`);
  }
  return {
    input: Tensor.fromData(batch.data, batch.shape, { name: "input" }),
    labels: Tensor.fromData(batch.labels, [size], { name: "labels", dtype: "i32" }),
    size,
  };
}

/** A loss of the SNN's and the modules' logits: its `loss` is what backward starts from. */
export type LossFunction = (logits: Tensor, moduleLogits: readonly Tensor[], labels: Tensor) => SmlLoss;

/** The loss stage: the SML loss with these weights, or the caller's own loss function. */
export type LossStage = SmlLossOptions | LossFunction;

function lossParts(
  stage: LossStage,
  logits: Tensor,
  moduleLogits: readonly Tensor[],
  labels: Tensor,
): SmlLoss {
  return typeof stage === "function"
    ? stage(logits, moduleLogits, labels)
    : smlLoss(logits, moduleLogits, labels, stage);
}

/** What a training step works with. */
export interface TrainStepContext {
  /** The model. */
  model: SpikingModel;
  /** Its optimizer. */
  optimizer: Optimizer;
  /** The loss stage: the SML loss weights or the caller's own loss function. */
  loss: LossStage;
  /** Where the step's loss and accuracy accumulate. */
  metrics: MetricsAccumulator;
  /** When set, this step also records layer activity (firing rates) into it. */
  activity?: ActivityRecorder;
  /**
   * Mixed precision: the forward runs under `autocast` (f16 convolutions), backward starts from the loss
   * scale, and the scaler unscales the gradients and skips the update when one is non-finite.
   */
  scaler?: GradScaler;
}

/** One optimisation step on `batch`; the batch's tensors are released with the step's intermediates. */
export function trainStep(context: TrainStepContext, batch: HostBatch): void {
  const tape = new Tape();
  try {
    forwardBackward(context, batch, tape);
    update(context);
  } finally {
    context.optimizer.zeroGrad();
    tape.dispose();
  }
}

/**
 * `trainStep` as one rank of a data-parallel job: `reduceGradients` (an all-reduce over ranks) runs
 * between backward and the update, so every rank applies the same averaged gradients. With `batchNorm`
 * (--sync-bn) training batch norms normalise over every rank's batch: forward and backward are recorded
 * in deferred mode with the collectives as host steps, then replayed.
 */
export async function trainStepReduced(
  context: TrainStepContext,
  batch: HostBatch,
  reduceGradients: () => Promise<void>,
  batchNorm?: BatchNormReduction,
): Promise<void> {
  const tape = new Tape();
  try {
    if (batchNorm) {
      await runDeferred(() => withBatchNormReduction(batchNorm, () => forwardBackward(context, batch, tape)));
    } else {
      forwardBackward(context, batch, tape);
    }
    await reduceGradients();
    update(context);
  } finally {
    context.optimizer.zeroGrad();
    tape.dispose();
  }
}

/** Forward, loss, metrics and backward: the parameters' gradients hold this batch's (scaled) gradients. */
function forwardBackward(context: TrainStepContext, batch: HostBatch, tape: Tape): void {
  const { model, metrics, scaler } = context;
  model.train();
  const loss = tape.run(() => {
    const { input, labels, size } = upload(batch);
    const forward = () => scaler ? autocast(() => model.forward(input)) : model.forward(input);
    const out: ForwardResult = context.activity ? context.activity.run(forward) : forward();
    const parts = lossParts(context.loss, out.logits, out.moduleLogits, labels);
    metrics.add(size, parts, [out.logits, ...out.moduleLogits], labels);
    return parts.loss;
  });
  // Nothing reads the forward's tensors after backward: metrics were recorded during the forward.
  tape.backward(loss, scaler?.scaleTensor, { freeForward: true });
}

/** The optimizer update from the gradients; under a scaler, unscaled and skipped when non-finite. */
function update(context: TrainStepContext): void {
  const { optimizer, scaler } = context;
  if (scaler) {
    scaler.unscale(optimizer.params);
    optimizer.step(scaler.guard);
    scaler.update();
  } else {
    optimizer.step();
  }
}

/** What an evaluation step works with. */
export interface EvalStepContext {
  /** The model (switched to eval mode). */
  model: SpikingModel;
  /** The loss stage: the SML loss weights or the caller's own loss function. */
  loss: LossStage;
  /** Where loss and top-1/top-5 accumulate on the GPU. */
  metrics: MetricsAccumulator;
  /** When set, layer activity (firing rates, synaptic operations) of the real samples accumulates here. */
  activity?: ActivityRecorder;
  /** Pad a smaller batch with zero samples to this size (see evalStep); 0: never. */
  padTo?: number;
  /** Run the forward under `autocast` (f16 convolutions). */
  half?: boolean;
}

/**
 * Evaluation stage: eval-mode forward with the surrogate modules kept (their top-1 is reported), no
 * tape; loss, top-1/top-5 and, when `activity` is given, layer activity accumulate on the GPU. A batch
 * smaller than `padTo` is padded with zero samples to that size, so a test set's last, partial batch
 * runs through the kernels already compiled for full batches (eval mode couples no samples); only the
 * real samples' outputs and activity are counted.
 */
export function evalStep(context: EvalStepContext, batch: HostBatch): void {
  const { model, metrics, activity, padTo = 0, half = false } = context;
  model.eval();
  const scope = new Scope();
  try {
    scope.run(() => {
      const size = batch.labels.length;
      const padded = padTo > size;
      const { input, labels } = upload(padded ? padSamples(batch, padTo) : batch);
      const forward = () => half ? autocast(() => model.forward(input)) : model.forward(input);
      const samples = { batch: input.shape[batch.shape.length === 5 ? 1 : 0], valid: size };
      const out = activity ? activity.run(forward, samples) : forward();
      const [logits, ...moduleLogits] = [out.logits, ...out.moduleLogits].map((head) =>
        padded ? leadingRows(head, size) : head
      );
      const realLabels = padded ? leadingRows(labels, size) : labels;
      const parts = lossParts(context.loss, logits, moduleLogits, realLabels);
      metrics.add(size, parts, [logits, ...moduleLogits], realLabels);
    });
  } finally {
    scope.dispose();
  }
}

/** `batch` with zero samples (label 0) appended up to `size`; event batches grow along their B axis. */
function padSamples(batch: HostBatch, size: number): HostBatch {
  const events = batch.shape.length === 5;
  const steps = events ? batch.shape[0] : 1;
  const have = batch.labels.length;
  const perSample = batch.data.length / (steps * have);
  const data = new Float32Array(steps * size * perSample);
  for (let t = 0; t < steps; t++) {
    data.set(batch.data.subarray(t * have * perSample, (t + 1) * have * perSample), t * size * perSample);
  }
  const labels = new Int32Array(size);
  labels.set(batch.labels);
  const shape = [...batch.shape];
  shape[events ? 1 : 0] = size;
  return { data, shape, labels };
}

/** A copy of the first `rows` rows of `x`. */
function leadingRows(x: Tensor, rows: number): Tensor {
  const out = Tensor.empty([rows, ...x.shape.slice(1)], { name: x.name, dtype: x.dtype });
  copyBuffer(x.buffer, 0, out.buffer, 0, out.byteLength);
  return out;
}
