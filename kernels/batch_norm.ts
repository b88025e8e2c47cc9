/**
 * Batch normalisation over (N, C, spatial): per-channel statistics and gradient sums by workgroup tree
 * reductions (no atomics), and one-thread-per-element normalise / input-gradient kernels.
 *
 * A channel's N*spatial values are cut into `partitions` chunks of WORKGROUP_SIZE * perThread values;
 * one workgroup reduces one (chunk, channel) pair into a partial, and a one-thread-per-channel kernel
 * combines the partials in order. Variance uses Welford per invocation and Chan's pairwise merge in the
 * tree, so it stays accurate when the mean is large against the spread (no E[x^2] - E[x]^2).
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, gridFor, WORKGROUP_SIZE } from "./common.ts";

export interface BatchNormShape {
  /** N: samples (T*B in the time-folded layout). */
  batch: number;
  /** C. */
  channels: number;
  /** H*W for BatchNorm2d, 1 for BatchNorm1d. */
  spatial: number;
  /** Values each invocation of a reduction workgroup reads; sets the partition count. Default 8. */
  perThread?: number;
}

export interface BatchNormKernel extends Kernel {
  workgroups: [number, number];
}

/** How a shape's per-channel reduction is split: `partitions` workgroups per channel of `chunk` values. */
export function reductionSplit(
  shape: BatchNormShape,
): { perChannel: number; chunk: number; partitions: number } {
  const perChannel = shape.batch * shape.spatial;
  const chunk = WORKGROUP_SIZE * (shape.perThread ?? 8);
  return { perChannel, chunk, partitions: Math.max(1, Math.ceil(perChannel / chunk)) };
}

function shapeKey(shape: BatchNormShape): string {
  return `${shape.batch}x${shape.channels}x${shape.spatial}:${shape.perThread ?? 8}`;
}

/** WGSL that loads the k-th value (k < N*spatial) of channel `c` from `source` into `v`. */
function channelValue(source: string, shape: BatchNormShape): string {
  const { channels: C, spatial: S } = shape;
  return `${source}[(k / ${S}u) * ${C * S}u + c * ${S}u + k % ${S}u]`;
}

/** The reduction workgroups' indices and the bounds of their chunk. */
function chunkPrologue(shape: BatchNormShape): string {
  const { perChannel, chunk } = reductionSplit(shape);
  return `
  let part = wg.x;
  let c = wg.y;
  let start = part * ${chunk}u;
  let end = min(start + ${chunk}u, ${perChannel}u);`;
}

/**
 * Per (chunk, channel): count, mean and sum of squared deviations (M2) of x.
 * Bindings: x, partials (C * partitions * 3, channel-major). Grid: [partitions, C].
 */
export function batchNormStatsKernel(shape: BatchNormShape): BatchNormKernel {
  const { partitions } = reductionSplit(shape);
  return {
    key: `batch_norm_stats:${shapeKey(shape)}`,
    workgroups: [partitions, shape.channels],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;

var<workgroup> counts: array<f32, ${WORKGROUP_SIZE}>;
var<workgroup> means: array<f32, ${WORKGROUP_SIZE}>;
var<workgroup> m2s: array<f32, ${WORKGROUP_SIZE}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
${chunkPrologue(shape)}
  var count = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var k = start + lid; k < end; k += ${WORKGROUP_SIZE}u) {
    let v = ${channelValue("x", shape)};
    count += 1.0;
    let delta = v - mean;
    mean += delta / count;
    m2 += delta * (v - mean);
  }
  counts[lid] = count;
  means[lid] = mean;
  m2s[lid] = m2;
  workgroupBarrier();
  for (var stride = ${WORKGROUP_SIZE / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      let other = lid + stride;
      let count_b = counts[other];
      if (count_b > 0.0) {
        let count_a = counts[lid];
        let total = count_a + count_b;
        let delta = means[other] - means[lid];
        let share_b = count_b / total;
        means[lid] = means[lid] + delta * share_b;
        m2s[lid] = m2s[lid] + m2s[other] + delta * delta * count_a * share_b;
        counts[lid] = total;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let slot = (c * ${partitions}u + part) * 3u;
    partials[slot] = counts[0];
    partials[slot + 1u] = means[0];
    partials[slot + 2u] = m2s[0];
  }
}
`,
  };
}

/**
 * Training statistics: merges a channel's partials into its mean and 1/sqrt(biased var + eps), written
 * to `stats` (mean in [0, C), inverse std in [C, 2C)), and updates the running mean and running
 * (unbiased) variance in place with `momentum`, as torch.nn.BatchNorm does.
 * Bindings: partials, stats, running_mean, running_var.
 */
export function batchNormTrainStatsKernel(
  shape: BatchNormShape,
  momentum: number,
  eps: number,
): BatchNormKernel {
  const { partitions, perChannel } = reductionSplit(shape);
  const C = shape.channels;
  const grid = gridFor(C);
  return {
    key: `batch_norm_train_stats:${shapeKey(shape)}:${momentum}:${eps}`,
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
  var count = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var p = 0u; p < ${partitions}u; p++) {
    let slot = (c * ${partitions}u + p) * 3u;
    let count_b = partials[slot];
    let total = count + count_b;
    let delta = partials[slot + 1u] - mean;
    let share_b = count_b / total;
    mean += delta * share_b;
    m2 += partials[slot + 2u] + delta * delta * count * share_b;
    count = total;
  }
  stats[c] = mean;
  stats[${C}u + c] = 1.0 / sqrt(m2 / ${f32(perChannel)} + ${f32(eps)});
  running_mean[c] = ${f32(1 - momentum)} * running_mean[c] + ${f32(momentum)} * mean;
  running_var[c] = ${f32(1 - momentum)} * running_var[c] + ${f32(momentum)} * (m2 / ${f32(perChannel - 1)});
}
`,
  };
}

/** Evaluation statistics from the running ones. Bindings: running_mean, running_var, stats. */
export function batchNormEvalStatsKernel(channels: number, eps: number): BatchNormKernel {
  const grid = gridFor(channels);
  return {
    key: `batch_norm_eval_stats:${channels}:${eps}`,
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> running_mean: array<f32>;
@group(0) @binding(1) var<storage, read> running_var: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${channels}u) { return; }
  stats[c] = running_mean[c];
  stats[${channels}u + c] = 1.0 / sqrt(running_var[c] + ${f32(eps)});
}
`,
  };
}

/** Per-element channel index and normalised value x_hat, shared by the elementwise kernels. */
function elementPrologue(shape: BatchNormShape, grid: { rowStride: number }): string {
  const { batch, channels: C, spatial: S } = shape;
  return `
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${batch * C * S}u) { return; }
  let c = (i / ${S}u) % ${C}u;
  let inv_std = stats[${C}u + c];`;
}

/** y = (x - mean) * inv_std * weight + bias. Bindings: x, stats, weight, bias, y. */
export function batchNormNormalizeKernel(shape: BatchNormShape): BatchNormKernel {
  const grid = gridFor(shape.batch * shape.channels * shape.spatial);
  return {
    key: `batch_norm_normalize:${shapeKey(shape)}`,
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${elementPrologue(shape, grid)}
  y[i] = (x[i] - stats[c]) * inv_std * weight[c] + bias[c];
}
`,
  };
}

/**
 * Per (chunk, channel): sum of dL/dy and sum of dL/dy * x_hat (the bias and weight gradients).
 * Bindings: grad_y, x, stats, partials (C * partitions * 2). Grid: [partitions, C].
 */
export function batchNormGradSumsKernel(shape: BatchNormShape): BatchNormKernel {
  const { partitions } = reductionSplit(shape);
  const C = shape.channels;
  return {
    key: `batch_norm_grad_sums:${shapeKey(shape)}`,
    workgroups: [partitions, C],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> grad_y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<vec2f, ${WORKGROUP_SIZE}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
${chunkPrologue(shape)}
  let mean = stats[c];
  let inv_std = stats[${C}u + c];
  var sum = vec2f(0.0);
  for (var k = start + lid; k < end; k += ${WORKGROUP_SIZE}u) {
    let g = ${channelValue("grad_y", shape)};
    let x_hat = (${channelValue("x", shape)} - mean) * inv_std;
    sum += vec2f(g, g * x_hat);
  }
  sums[lid] = sum;
  workgroupBarrier();
  for (var stride = ${WORKGROUP_SIZE / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      sums[lid] = sums[lid] + sums[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let slot = (c * ${partitions}u + part) * 2u;
    partials[slot] = sums[0].x;
    partials[slot + 1u] = sums[0].y;
  }
}
`,
  };
}

/** Adds a channel's partial sums: grad_bias = sum dL/dy, grad_weight = sum dL/dy * x_hat. */
export function batchNormGradParamsKernel(shape: BatchNormShape): BatchNormKernel {
  const { partitions } = reductionSplit(shape);
  const C = shape.channels;
  const grid = gridFor(C);
  return {
    key: `batch_norm_grad_params:${shapeKey(shape)}`,
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad_weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_bias: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
  var sum = vec2f(0.0);
  for (var p = 0u; p < ${partitions}u; p++) {
    let slot = (c * ${partitions}u + p) * 2u;
    sum += vec2f(partials[slot], partials[slot + 1u]);
  }
  grad_bias[c] = sum.x;
  grad_weight[c] = sum.y;
}
`,
  };
}

/**
 * dL/dx. Training (through the batch statistics):
 *   weight * inv_std * (g - grad_bias / M - x_hat * grad_weight / M), M = N * spatial.
 * Bindings: grad_y, x, stats, weight, grad_weight, grad_bias, grad_x.
 * Evaluation (constant statistics): weight * inv_std * g. Bindings: grad_y, stats, weight, grad_x.
 */
export function batchNormGradInputKernel(shape: BatchNormShape, training: boolean): BatchNormKernel {
  const grid = gridFor(shape.batch * shape.channels * shape.spatial);
  const { perChannel } = reductionSplit(shape);
  const bindings = training
    ? ["grad_y", "x", "stats", "weight", "grad_weight", "grad_bias"]
    : ["grad_y", "stats", "weight"];
  const body = training
    ? `let x_hat = (x[i] - stats[c]) * inv_std;
  let scale = ${f32(1 / perChannel)};
  grad_x[i] = weight[c] * inv_std * (grad_y[i] - grad_bias[c] * scale - x_hat * grad_weight[c] * scale);`
    : `grad_x[i] = weight[c] * inv_std * grad_y[i];`;
  return {
    key: `batch_norm_grad_input:${shapeKey(shape)}:${training ? "train" : "eval"}`,
    workgroups: grid.workgroups,
    wgsl: () => `
${bindings.map((name, i) => `@group(0) @binding(${i}) var<storage, read> ${name}: array<f32>;`).join("\n")}
@group(0) @binding(${bindings.length}) var<storage, read_write> grad_x: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${elementPrologue(shape, grid)}
  ${body}
}
`,
  };
}
