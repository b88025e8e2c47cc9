/**
 * The train-step and evaluation stages: upload a host batch, forward (recording a tape), SML loss,
 * backward, optimizer update, metrics accumulated on the GPU. Nothing is read back here.
 */
import type { ForwardResult } from "../models/attachment.ts";
import type { SpikingModel } from "../models/registry.ts";
import { ActivityRecorder } from "../nn/activity.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { smlLoss, type SmlLossOptions } from "../sml/loss.ts";
import { Scope } from "../tensor/scope.ts";
import { Tape } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { MetricsAccumulator } from "./metrics.ts";

/** A batch on the CPU, as data loaders produce it. */
export interface HostBatch {
  /** (B, C, H, W) images or (T, B, C, H, W) event frames, row-major. */
  data: Float32Array;
  shape: number[];
  labels: Int32Array;
}

/** A batch on the GPU. */
export interface DeviceBatch {
  input: Tensor;
  labels: Tensor;
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

export interface TrainStepContext {
  model: SpikingModel;
  optimizer: Optimizer;
  loss: SmlLossOptions;
  metrics: MetricsAccumulator;
  /** When set, this step also records layer activity (firing rates) into it. */
  activity?: ActivityRecorder;
}

/** One optimisation step on `batch`; the batch's tensors are released with the step's intermediates. */
export function trainStep(context: TrainStepContext, batch: HostBatch): void {
  const { model, optimizer, metrics } = context;
  model.train();
  const tape = new Tape();
  try {
    const loss = tape.run(() => {
      const { input, labels, size } = upload(batch);
      const forward = () => model.forward(input);
      const out: ForwardResult = context.activity ? context.activity.run(forward) : forward();
      const parts = smlLoss(out.logits, out.moduleLogits, labels, context.loss);
      metrics.add(size, parts, [out.logits, ...out.moduleLogits], labels);
      return parts.loss;
    });
    tape.backward(loss);
    optimizer.step();
  } finally {
    optimizer.zeroGrad();
    tape.dispose();
  }
}

/**
 * Evaluation stage: eval-mode forward with the surrogate modules kept (their top-1 is reported), no
 * tape; loss, top-1/top-5 and, when `activity` is given, layer activity accumulate on the GPU.
 */
export function evalStep(
  model: SpikingModel,
  batch: HostBatch,
  metrics: MetricsAccumulator,
  lossOptions: SmlLossOptions,
  activity?: ActivityRecorder,
): void {
  model.eval();
  const scope = new Scope();
  try {
    scope.run(() => {
      const { input, labels, size } = upload(batch);
      const forward = () => model.forward(input);
      const out = activity ? activity.run(forward) : forward();
      const parts = smlLoss(out.logits, out.moduleLogits, labels, lossOptions);
      metrics.add(size, parts, [out.logits, ...out.moduleLogits], labels);
    });
  } finally {
    scope.dispose();
  }
}
