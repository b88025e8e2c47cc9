/**
 * Batch normalisation over (N, C, spatial) in five light kernels, none with workgroup memory or barriers
 * (software adapters run every shared-memory access and barrier per lane, which made tree reductions the
 * slowest part of a training step):
 * - partial sums: one invocation per (channel, chunk of consecutive values) sums that chunk serially;
 * - per-channel finish: one invocation per channel adds its partials in order and derives every
 *   per-channel coefficient the elementwise kernels need;
 * - elementwise normalise / input gradient: one invocation per run of values sharing a channel, so the
 *   channel's coefficients are loaded once per run, not once per value.
 * The statistics sum deviations from one value of the channel (its first), not raw values: partials stay
 * additive, no division runs per value, and a mean large against the spread cancels no significant digits.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { channelRun, f32, gridFor, kernelKey } from "./common.ts";

export interface BatchNormShape {
  /** N: samples (T*B in the time-folded layout). */
  batch: number;
  /** C. */
  channels: number;
  /** H*W for BatchNorm2d, 1 for BatchNorm1d. */
  spatial: number;
}

export interface BatchNormKernel extends Kernel {
  workgroups: [number, number];
}

/** Rows of the per-channel `stats` tensor (2-D [STATS_ROWS, C]): mean, 1/std, scale, shift. */
export const STATS_ROWS = 4;
/** Rows of the per-channel input-gradient coefficients ([GRAD_ROWS, C]). */
export const GRAD_ROWS = 3;

/** Invocations per workgroup of the partial-sum and per-channel kernels. */
const REDUCE_WORKGROUP = 64;
/** Invocations per workgroup of the elementwise kernels. */
const ELEMENT_WORKGROUP = 64;
/** Partial sums wanted in all, so that even a few channels spread over every core. */
const TARGET_PARTIALS = 2048;
const MIN_CHUNK = 16;
const MAX_CHUNK = 256;

/** How each channel's N*spatial values are cut: `partitions` chunks of `chunk` consecutive values. */
export function reductionSplit(
  shape: BatchNormShape,
): { perChannel: number; chunk: number; partitions: number } {
  const perChannel = shape.batch * shape.spatial;
  const wanted = Math.ceil((perChannel * shape.channels) / TARGET_PARTIALS);
  const chunk = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, wanted), perChannel);
  return { perChannel, chunk, partitions: Math.ceil(perChannel / chunk) };
}

/** The shape as a kernel specification (a caller's object may carry more fields). */
function shapeSpec({ batch, channels, spatial }: BatchNormShape): BatchNormShape {
  return { batch, channels, spatial };
}

/**
 * The partial kernels' prologue: channel `c`, chunk `part`, the chunk's value count, and `idx`, the flat
 * index of its first value, with `s` its spatial position (advanced by `nextValue`).
 */
function chunkPrologue(shape: BatchNormShape): { grid: ReturnType<typeof gridFor>; code: string } {
  const { channels: C, spatial: S } = shape;
  const { perChannel, chunk, partitions } = reductionSplit(shape);
  const grid = gridFor(C * partitions, REDUCE_WORKGROUP);
  const code = `
  let slot = gid.x + gid.y * ${grid.rowStride}u;
  if (slot >= ${C * partitions}u) { return; }
  let c = slot / ${partitions}u;
  let part = slot % ${partitions}u;
  let first = part * ${chunk}u;
  let count = min(${chunk}u, ${perChannel}u - first);
  var s = first % ${S}u;
  var idx = (first / ${S}u) * ${C * S}u + c * ${S}u + s;`;
  return { grid, code };
}

/** WGSL that moves `idx` to the channel's next value in (N, spatial) order. */
function nextValue(shape: BatchNormShape): string {
  const { channels: C, spatial: S } = shape;
  if (S === 1) return `idx += ${C}u;`;
  return `idx += 1u;
    s += 1u;
    if (s == ${S}u) {
      s = 0u;
      idx += ${(C - 1) * S}u;
    }`;
}

/**
 * Per (channel, chunk): the sum of (x - x0) and of (x - x0)^2, x0 the channel's first value.
 * Bindings: x, partials (C * partitions * 2, channel-major).
 */
export function batchNormStatsKernel(shape: BatchNormShape): BatchNormKernel {
  const { grid, code } = chunkPrologue(shape);
  return {
    key: kernelKey("batch_norm_stats", { shape: shapeSpec(shape) }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${code}
  let shift = x[c * ${shape.spatial}u];
  var sum = 0.0;
  var squares = 0.0;
  for (var j = 0u; j < count; j++) {
    let d = x[idx] - shift;
    sum += d;
    squares += d * d;
    ${nextValue(shape)}
  }
  partials[2u * slot] = sum;
  partials[2u * slot + 1u] = squares;
}
`,
  };
}

/**
 * WGSL that adds channel `c`'s partition partials (pairs of sums) into the variables `first` and
 * `second`, declared here.
 */
function addPartials(partitions: number, first: string, second: string): string {
  return `  var ${first} = 0.0;
  var ${second} = 0.0;
  for (var p = 0u; p < ${partitions}u; p++) {
    let slot = c * ${partitions}u + p;
    ${first} += partials[2u * slot];
    ${second} += partials[2u * slot + 1u];
  }
`;
}

/**
 * WGSL that writes channel `c`'s training statistics (mean, inv_std, the affine scale and shift) and
 * updates its running mean and unbiased running variance, from `mean`, `m2` (the sum of squared
 * deviations) and `inv_std`; `countLessOne` is the WGSL of the value count minus one.
 */
function writeTrainStats(C: number, momentum: number, countLessOne: string): string {
  return `  let scale = weight[c] * inv_std;
  stats[c] = mean;
  stats[${C}u + c] = inv_std;
  stats[${2 * C}u + c] = scale;
  stats[${3 * C}u + c] = bias[c] - mean * scale;
  running_mean[c] = ${f32(1 - momentum)} * running_mean[c] + ${f32(momentum)} * mean;
  running_var[c] = ${f32(1 - momentum)} * running_var[c] + ${f32(momentum)} * (m2 / ${countLessOne});
`;
}

/**
 * Training statistics: adds a channel's partials into its mean and 1/sqrt(biased var + eps), and the
 * affine form y = x * scale + shift of the normalisation, written to `stats` ([STATS_ROWS, C]); updates
 * the running mean and running (unbiased) variance in place with `momentum`, as torch.nn.BatchNorm does.
 * Bindings: x, partials, weight, bias, stats, running_mean, running_var.
 */
export function batchNormTrainStatsKernel(
  shape: BatchNormShape,
  momentum: number,
  eps: number,
): BatchNormKernel {
  const { partitions, perChannel } = reductionSplit(shape);
  const C = shape.channels;
  const grid = gridFor(C, REDUCE_WORKGROUP);
  return {
    key: kernelKey("batch_norm_train_stats", { shape: shapeSpec(shape), momentum, eps }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> running_var: array<f32>;

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
${addPartials(partitions, "sum", "squares")}  let offset = sum / ${f32(perChannel)};
  let mean = x[c * ${shape.spatial}u] + offset;
  let m2 = max(squares - sum * offset, 0.0);
  let inv_std = 1.0 / sqrt(m2 / ${f32(perChannel)} + ${f32(eps)});
${writeTrainStats(C, momentum, `${f32(perChannel - 1)}`)}}
`,
  };
}

/** Evaluation statistics from the running ones. Bindings: running_mean, running_var, weight, bias, stats. */
export function batchNormEvalStatsKernel(channels: number, eps: number): BatchNormKernel {
  const grid = gridFor(channels, REDUCE_WORKGROUP);
  const C = channels;
  return {
    key: kernelKey("batch_norm_eval_stats", { channels, eps }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> running_mean: array<f32>;
@group(0) @binding(1) var<storage, read> running_var: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
  let mean = running_mean[c];
  let inv_std = 1.0 / sqrt(running_var[c] + ${f32(eps)});
  let scale = weight[c] * inv_std;
  stats[c] = mean;
  stats[${C}u + c] = inv_std;
  stats[${2 * C}u + c] = scale;
  stats[${3 * C}u + c] = bias[c] - mean * scale;
}
`,
  };
}

/** The elementwise kernels' prologue: `base`, the flat index of this invocation's run, and its channel. */
function runPrologue(shape: BatchNormShape): { grid: ReturnType<typeof gridFor>; code: string } {
  const { batch, channels: C, spatial: S } = shape;
  const run = channelRun(shape.spatial);
  const runs = (batch * C * S) / run;
  const grid = gridFor(runs, ELEMENT_WORKGROUP);
  const code = `
  let r = gid.x + gid.y * ${grid.rowStride}u;
  if (r >= ${runs}u) { return; }
  let base = r * ${run}u;
  let c = (base / ${S}u) % ${C}u;`;
  return { grid, code };
}

/**
 * y = x * scale + shift, or with `leakySlope` that followed by LeakyReLU as torch computes it (so the
 * normalised tensor is never stored). Bindings: x, stats, y.
 */
export function batchNormNormalizeKernel(shape: BatchNormShape, leakySlope?: number): BatchNormKernel {
  const { grid, code } = runPrologue(shape);
  const C = shape.channels;
  const store = leakySlope === undefined ? "y[i] = x[i] * scale + shift;" : `let v = x[i] * scale + shift;
    y[i] = select(v * ${f32(leakySlope)}, v, v >= 0.0);`;
  return {
    key: kernelKey("batch_norm_normalize", { shape: shapeSpec(shape), leakySlope }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(${ELEMENT_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${code}
  let scale = stats[${2 * C}u + c];
  let shift = stats[${3 * C}u + c];
  for (var i = base; i < base + ${channelRun(shape.spatial)}u; i++) {
    ${store}
  }
}
`,
  };
}

/**
 * Per (channel, chunk): sum of dL/dy and of dL/dy * (x - mean).
 * Bindings: grad_y, x, stats, partials (C * partitions * 2, channel-major).
 */
export function batchNormGradSumsKernel(shape: BatchNormShape): BatchNormKernel {
  const { grid, code } = chunkPrologue(shape);
  return {
    key: kernelKey("batch_norm_grad_sums", { shape: shapeSpec(shape) }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> grad_y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${code}
  let mean = stats[c];
  var sum = 0.0;
  var product = 0.0;
  for (var j = 0u; j < count; j++) {
    let g = grad_y[idx];
    sum += g;
    product += g * (x[idx] - mean);
    ${nextValue(shape)}
  }
  partials[2u * slot] = sum;
  partials[2u * slot + 1u] = product;
}
`,
  };
}

/**
 * Adds a channel's partial sums into grad_bias = sum dL/dy and grad_weight = sum dL/dy * x_hat, and
 * writes the input gradient's per-channel coefficients ([GRAD_ROWS, C]) so that, in training,
 *   dL/dx = weight * inv_std * (g - grad_bias / M - x_hat * grad_weight / M)      (M = N * spatial)
 *         = a * g + b * (x - mean) + d.
 * Bindings: partials, stats, weight, grad_weight, grad_bias, coefficients.
 */
export function batchNormGradParamsKernel(shape: BatchNormShape): BatchNormKernel {
  const { partitions, perChannel } = reductionSplit(shape);
  const C = shape.channels;
  const grid = gridFor(C, REDUCE_WORKGROUP);
  return {
    key: kernelKey("batch_norm_grad_params", { shape: shapeSpec(shape) }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> coefficients: array<f32>;

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
  var sum = 0.0;
  var product = 0.0;
  for (var p = 0u; p < ${partitions}u; p++) {
    let slot = c * ${partitions}u + p;
    sum += partials[2u * slot];
    product += partials[2u * slot + 1u];
  }
  let inv_std = stats[${C}u + c];
  let gw = product * inv_std;
  grad_bias[c] = sum;
  grad_weight[c] = gw;
  let a = weight[c] * inv_std;
  coefficients[c] = a;
  coefficients[${C}u + c] = -a * gw * inv_std / ${f32(perChannel)};
  coefficients[${2 * C}u + c] = -a * sum / ${f32(perChannel)};
}
`,
  };
}

/**
 * dL/dx. Training: a * g + b * (x - mean) + d with the coefficients of batchNormGradParamsKernel.
 * Bindings: grad_y, x, stats, coefficients, grad_x.
 * Evaluation (constant statistics): scale * g. Bindings: grad_y, stats, grad_x.
 */
export function batchNormGradInputKernel(shape: BatchNormShape, training: boolean): BatchNormKernel {
  const { grid, code } = runPrologue(shape);
  const C = shape.channels;
  const bindings = training ? ["grad_y", "x", "stats", "coefficients"] : ["grad_y", "stats"];
  const body = training
    ? `let mean = stats[c];
  let a = coefficients[c];
  let b = coefficients[${C}u + c];
  let d = coefficients[${2 * C}u + c];
  for (var i = base; i < base + ${channelRun(shape.spatial)}u; i++) {
    grad_x[i] = a * grad_y[i] + b * (x[i] - mean) + d;
  }`
    : `let scale = stats[${2 * C}u + c];
  for (var i = base; i < base + ${channelRun(shape.spatial)}u; i++) {
    grad_x[i] = scale * grad_y[i];
  }`;
  return {
    key: kernelKey("batch_norm_grad_input", { shape: shapeSpec(shape), training }),
    workgroups: grid.workgroups,
    wgsl: () => `
${bindings.map((name, i) => `@group(0) @binding(${i}) var<storage, read> ${name}: array<f32>;`).join("\n")}
@group(0) @binding(${bindings.length}) var<storage, read_write> grad_x: array<f32>;

@compute @workgroup_size(${ELEMENT_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${code}
  ${body}
}
`,
  };
}

/** Length of the per-channel vector a synchronised batch norm reduces over ranks (see below). */
export function channelSumsLength(channels: number, withShift: boolean): number {
  return (withShift ? 3 : 2) * channels + 1;
}

/**
 * A synchronised batch norm's local contribution, from the partials of batchNormStatsKernel or
 * batchNormGradSumsKernel: each channel's two sums (rows 0 and 1), with `withShift` the value x0 they
 * were taken around (row 2), and last this rank's value count per channel (N * spatial).
 * Bindings: partials, x (withShift only), sums (channelSumsLength).
 */
export function batchNormChannelSumsKernel(shape: BatchNormShape, withShift: boolean): BatchNormKernel {
  const { partitions, perChannel } = reductionSplit(shape);
  const C = shape.channels;
  const grid = gridFor(C, REDUCE_WORKGROUP);
  const sums = `@group(0) @binding(${withShift ? 2 : 1}) var<storage, read_write> sums: array<f32>;`;
  return {
    key: kernelKey("batch_norm_channel_sums", { shape: shapeSpec(shape), withShift }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> partials: array<f32>;
${withShift ? "@group(0) @binding(1) var<storage, read> x: array<f32>;" : ""}
${sums}

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
${addPartials(partitions, "first", "second")}  sums[c] = first;
  sums[${C}u + c] = second;
  ${withShift ? `sums[${2 * C}u + c] = x[c * ${shape.spatial}u];` : ""}
  if (c == 0u) { sums[${channelSumsLength(C, withShift) - 1}u] = ${f32(perChannel)}; }
}
`,
  };
}

/**
 * Training statistics of a synchronised batch norm, as batchNormTrainStatsKernel but from the moments
 * combined over ranks: per channel the mean (row 0) and the sum of squared deviations from it (row 1),
 * and the total count at index 3C. Bindings: moments, weight, bias, stats, running_mean, running_var.
 */
export function batchNormSyncStatsKernel(channels: number, momentum: number, eps: number): BatchNormKernel {
  const C = channels;
  const grid = gridFor(C, REDUCE_WORKGROUP);
  return {
    key: kernelKey("batch_norm_sync_stats", { channels, momentum, eps }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> moments: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
  let mean = moments[c];
  let m2 = moments[${C}u + c];
  let count = moments[${3 * C}u];
  let inv_std = 1.0 / sqrt(m2 / count + ${f32(eps)});
${writeTrainStats(C, momentum, "(count - 1.0)")}}
`,
  };
}

/**
 * The input-gradient coefficients of a synchronised batch norm (as batchNormGradParamsKernel writes
 * them), from the sums of dL/dy and of dL/dy * (x - mean) over every rank's values (rows 0 and 1 of
 * `sums`, the total count at 2C). Bindings: sums, stats, weight, coefficients.
 */
export function batchNormSyncGradKernel(channels: number): BatchNormKernel {
  const C = channels;
  const grid = gridFor(C, REDUCE_WORKGROUP);
  return {
    key: kernelKey("batch_norm_sync_grad", { channels }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> sums: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> coefficients: array<f32>;

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * ${grid.rowStride}u;
  if (c >= ${C}u) { return; }
  let count = sums[${2 * C}u];
  let inv_std = stats[${C}u + c];
  let gw = sums[${C}u + c] * inv_std;
  let a = weight[c] * inv_std;
  coefficients[c] = a;
  coefficients[${C}u + c] = -a * gw * inv_std / count;
  coefficients[${2 * C}u + c] = -a * sums[c] / count;
}
`,
  };
}
