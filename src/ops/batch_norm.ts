/** Batch normalisation with PyTorch's BatchNorm1d / BatchNorm2d semantics (SPEC §3). */
import {
  batchNormChannelSumsKernel,
  batchNormEvalStatsKernel,
  batchNormGradInputKernel,
  batchNormGradParamsKernel,
  batchNormGradSumsKernel,
  batchNormNormalizeKernel,
  type BatchNormShape,
  batchNormStatsKernel,
  batchNormSyncGradKernel,
  batchNormSyncStatsKernel,
  batchNormTrainStatsKernel,
  channelSumsLength,
  GRAD_ROWS,
  reductionSplit,
  STATS_ROWS,
} from "../../kernels/batch_norm.ts";
import { f32 } from "../../kernels/common.ts";
import { deferHostStep, dispatch } from "../gpu/kernels.ts";
import { type BatchNormReduction, batchNormReduction, mergeMoments } from "./batch_norm_reduction.ts";
import { map } from "./elementwise.ts";
import { currentTape, record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

/** A batch norm's parameters and running statistics, each of shape (C). */
export interface BatchNormState {
  /** Scale. */
  weight: Tensor;
  /** Shift. */
  bias: Tensor;
  /** Running mean, updated in training. */
  runningMean: Tensor;
  /** Running variance (unbiased), updated in training. */
  runningVar: Tensor;
}

/** How batch norm normalises. */
export interface BatchNormOptions {
  /** Normalise with the batch's statistics and update the running ones; otherwise use the running ones. */
  training: boolean;
  /** Running-statistics momentum. Default 0.1. */
  momentum?: number;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
}

function shapeOf(x: Tensor, state: BatchNormState): BatchNormShape {
  if (x.shape.length < 2 || x.dtype !== "f32" || x.size === 0) {
    throw new Error(
      `batchNorm: input ${x.name} is ${x.dtype} [${
        x.shape.join(", ")
      }], expected non-empty f32 (N, C) or (N, C, H, W)`,
    );
  }
  const [batch, channels] = x.shape;
  for (const [field, tensor] of Object.entries(state) as [string, Tensor][]) {
    if (tensor.size !== channels || tensor.dtype !== "f32") {
      throw new Error(
        `batchNorm: ${field} ${tensor.name} is ${tensor.dtype} [${tensor.shape.join(", ")}], expected f32 ` +
          `[${channels}] for input ${x.name} [${x.shape.join(", ")}]`,
      );
    }
  }
  return { batch, channels, spatial: x.size / (batch * channels) };
}

/** What one batch-norm call normalises with: its shape and per-channel `stats` (STATS_ROWS x C). */
export interface BatchNormStatistics {
  shape: BatchNormShape;
  stats: Tensor;
  /** Set when the statistics were taken over every rank's batch: the backward sums over ranks too. */
  reduction?: BatchNormReduction;
}

/**
 * The statistics half of a batch norm: in training the batch's mean and biased variance over (N, H, W),
 * with `state.runningMean` / `state.runningVar` updated in place on the GPU (momentum, unbiased variance)
 * as torch.nn.BatchNorm does; in evaluation the running ones. Either way folded with the affine weight
 * and bias into a per-channel scale and shift. Inside `withBatchNormReduction` (training only) the batch
 * is every rank's: the partial sums are merged over ranks by a host step (see batch_norm_reduction.ts).
 */
export function batchNormStatistics(
  x: Tensor,
  state: BatchNormState,
  options: BatchNormOptions,
): BatchNormStatistics {
  const shape = shapeOf(x, state);
  const { channels: C } = shape;
  const momentum = options.momentum ?? 0.1;
  const eps = options.eps ?? 1e-5;
  const { perChannel, partitions } = reductionSplit(shape);
  if (options.training && perChannel < 2) {
    throw new Error(
      `batchNorm: input ${x.name} [${
        x.shape.join(", ")
      }] has ${perChannel} value per channel; training needs ` +
        "more than 1 to estimate a variance (use a larger batch or evaluation mode)",
    );
  }
  // Mean, 1/std, and the affine form (scale, shift) this call normalises with.
  const stats = Tensor.empty([STATS_ROWS, C], { name: `${x.name}_bn_stats` });
  const { weight, bias, runningMean, runningVar } = state;
  const reduction = options.training ? batchNormReduction() : undefined;
  if (options.training) {
    const partials = Tensor.empty([C, partitions, 2], { name: `${x.name}_bn_partials` });
    const reduce = batchNormStatsKernel(shape);
    dispatch(reduce, [x.buffer, partials.buffer], reduce.workgroups);
    if (reduction) {
      const moments = Tensor.empty([channelSumsLength(C, true)], { name: `${x.name}_bn_moments` });
      const sums = batchNormChannelSumsKernel(shape, true);
      dispatch(sums, [partials, x, moments].map((t) => t.buffer), sums.workgroups);
      partials.dispose();
      deferHostStep(moments.buffer, 0, moments.byteLength, (values) => mergeMoments(values, C, reduction));
      const finish = batchNormSyncStatsKernel(C, momentum, eps);
      dispatch(
        finish,
        [moments, weight, bias, stats, runningMean, runningVar].map((t) => t.buffer),
        finish.workgroups,
      );
      moments.dispose();
      return { shape, stats, reduction };
    }
    const finish = batchNormTrainStatsKernel(shape, momentum, eps);
    dispatch(
      finish,
      [x, partials, weight, bias, stats, runningMean, runningVar].map((t) => t.buffer),
      finish.workgroups,
    );
    partials.dispose();
  } else {
    const finish = batchNormEvalStatsKernel(C, eps);
    dispatch(finish, [runningMean, runningVar, weight, bias, stats].map((t) => t.buffer), finish.workgroups);
  }
  return { shape, stats };
}

/**
 * Gradients of x, weight and bias from `gradY` = dL/dy of y = x * scale + shift, through the batch
 * statistics in training. gradX is null when x needs none.
 */
export function batchNormBackward(
  x: Tensor,
  state: BatchNormState,
  { shape, stats, reduction }: BatchNormStatistics,
  training: boolean,
  gradY: Tensor,
): [Tensor | null, Tensor, Tensor] {
  const { weight, bias } = state;
  const { partitions } = reductionSplit(shape);
  const partials = Tensor.empty([shape.channels, partitions, 2], { name: `${x.name}_bn_grad_partials` });
  const sums = batchNormGradSumsKernel(shape);
  dispatch(sums, [gradY.buffer, x.buffer, stats.buffer, partials.buffer], sums.workgroups);
  const gradWeight = Tensor.empty(weight.shape, { name: `${weight.name}_grad` });
  const gradBias = Tensor.empty(bias.shape, { name: `${bias.name}_grad` });
  const coefficients = Tensor.empty([GRAD_ROWS, shape.channels], { name: `${x.name}_bn_grad_coefficients` });
  const params = batchNormGradParamsKernel(shape);
  dispatch(
    params,
    [partials, stats, weight, gradWeight, gradBias, coefficients].map((t) => t.buffer),
    params.workgroups,
  );
  if (reduction && x.requiresGrad) {
    // Synchronised: the weight and bias gradients stay this rank's (averaged with every parameter's
    // afterwards); the input gradient's coefficients come from the sums over all ranks' values.
    const sums = Tensor.empty([channelSumsLength(shape.channels, false)], { name: `${x.name}_bn_grad_sums` });
    const local = batchNormChannelSumsKernel(shape, false);
    dispatch(local, [partials.buffer, sums.buffer], local.workgroups);
    deferHostStep(sums.buffer, 0, sums.byteLength, (values) => reduction.sum(values));
    const global = batchNormSyncGradKernel(shape.channels);
    dispatch(global, [sums, stats, weight, coefficients].map((t) => t.buffer), global.workgroups);
    sums.dispose();
  }
  partials.dispose();
  let gradX: Tensor | null = null;
  if (x.requiresGrad) {
    gradX = Tensor.empty(x.shape, { name: `${x.name}_grad` });
    const input = batchNormGradInputKernel(shape, training);
    const buffers = training ? [gradY, x, stats, coefficients, gradX] : [gradY, stats, gradX];
    dispatch(input, buffers.map((t) => t.buffer), input.workgroups);
  }
  coefficients.dispose();
  return [gradX, gradWeight, gradBias];
}

/**
 * Normalises `x` per channel and applies the affine weight and bias (statistics as
 * batchNormStatistics; `num_batches_tracked` is the caller's). The backward gives gradients for x,
 * weight and bias.
 */
export function batchNorm(x: Tensor, state: BatchNormState, options: BatchNormOptions): Tensor {
  return normalized(x, state, options);
}

/**
 * `leakyRelu(batchNorm(x), slope)` (slope > 0) with the same values and gradients as the two ops, without
 * storing the normalised tensor: LeakyReLU's gradient needs only the sign of its input, which its output
 * shares.
 */
export function batchNormLeakyRelu(
  x: Tensor,
  state: BatchNormState,
  options: BatchNormOptions,
  slope: number,
): Tensor {
  if (!(slope > 0)) throw new Error(`batchNormLeakyRelu: slope is ${slope}; it must be > 0`);
  return normalized(x, state, options, slope);
}

function normalized(
  x: Tensor,
  state: BatchNormState,
  options: BatchNormOptions,
  leakySlope?: number,
): Tensor {
  const statistics = batchNormStatistics(x, state, options);
  const y = Tensor.empty(x.shape, { name: `${x.name}_bn${leakySlope === undefined ? "" : "_leaky_relu"}` });
  const normalize = batchNormNormalizeKernel(statistics.shape, leakySlope);
  dispatch(normalize, [x.buffer, statistics.stats.buffer, y.buffer], normalize.workgroups);

  const inputs = [x, state.weight, state.bias];
  if (currentTape() === undefined || !inputs.some((t) => t.requiresGrad)) {
    statistics.stats.dispose();
    return y;
  }
  return record(y, inputs, (gradY) => {
    if (leakySlope === undefined) return batchNormBackward(x, state, statistics, options.training, gradY);
    const name = `leaky_relu_grad_${leakySlope}`;
    const gradNormalized = map(name, [gradY, y], `select(a * ${f32(leakySlope)}, a, b > 0.0)`);
    const grads = batchNormBackward(x, state, statistics, options.training, gradNormalized);
    gradNormalized.dispose();
    return grads;
  });
}
