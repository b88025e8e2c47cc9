/**
 * Loss kernels over logits `(B, K)`: cross-entropy and the temperature-softened KL of SPEC §6, each a
 * row pass (one workgroup per row, stable log-sum-exp by max subtraction) that leaves per-row statistics,
 * a mean of those rows into a scalar, and a row pass for the gradient that reuses the statistics.
 * Also the weighted sum of scalar terms that assembles the SML loss.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, kernelKey } from "./common.ts";

export interface GridKernel extends Kernel {
  workgroups: [number, number];
}

/** Statistics per row left by the forward passes, in this order. */
export const CROSS_ENTROPY_STATS = 2; // loss, log-sum-exp of the logits
export const KL_STATS = 3; // KL, log-sum-exp of student/T, log-sum-exp of teacher/T

/** Threads per row: enough to cover K once where K is small, 256 at most. */
function rowThreads(classes: number): number {
  let threads = 32;
  while (threads < classes && threads < 256) threads *= 2;
  return threads;
}

const LOWEST_F32 = "-3.40282347e38";

/** WGSL for workgroup-wide max and sum of a vec2 per thread, over `threads` lanes. */
function rowReductions(threads: number): string {
  const tree = (combine: string) => `
  scratch[lane] = value;
  workgroupBarrier();
  for (var span = ${threads / 2}u; span > 0u; span = span / 2u) {
    if (lane < span) { scratch[lane] = ${combine}; }
    workgroupBarrier();
  }
  let result = scratch[0];
  workgroupBarrier();
  return result;`;
  return `
var<workgroup> scratch: array<vec2f, ${threads}>;

fn row_max(lane: u32, value: vec2f) -> vec2f {${tree("max(scratch[lane], scratch[lane + span])")}
}

fn row_sum(lane: u32, value: vec2f) -> vec2f {${tree("scratch[lane] + scratch[lane + span]")}
}
`;
}

/**
 * Per row b: `stats[2b] = logsumexp(x_b) - x_b[label_b]`, `stats[2b+1] = logsumexp(x_b)`. Labels are
 * not range-checked: a label outside [0, K) reads an arbitrary logit. Bindings: logits, labels (i32), stats.
 */
export function crossEntropyForwardKernel(batch: number, classes: number): GridKernel {
  const threads = rowThreads(classes);
  return {
    key: kernelKey("cross_entropy_forward", { batch, classes }),
    workgroups: [batch, 1],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
${rowReductions(threads)}
@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let lane = lid.x;
  let base = wid.x * ${classes}u;
  var local_max = ${LOWEST_F32};
  for (var k = lane; k < ${classes}u; k += ${threads}u) { local_max = max(local_max, logits[base + k]); }
  let top = row_max(lane, vec2f(local_max, 0.0)).x;
  var local_sum = 0.0;
  for (var k = lane; k < ${classes}u; k += ${threads}u) { local_sum += exp(logits[base + k] - top); }
  let total = row_sum(lane, vec2f(local_sum, 0.0)).x;
  if (lane == 0u) {
    let lse = top + log(total);
    stats[wid.x * 2u] = lse - logits[base + u32(labels[wid.x])];
    stats[wid.x * 2u + 1u] = lse;
  }
}
`,
  };
}

/**
 * `grad[b, k] = (g / B) * (softmax(x_b)_k - [k == label_b])`. Bindings: logits, labels, stats, g (scalar),
 * grad.
 */
export function crossEntropyBackwardKernel(batch: number, classes: number): GridKernel {
  const threads = rowThreads(classes);
  return {
    key: kernelKey("cross_entropy_backward", { batch, classes }),
    workgroups: [batch, 1],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let base = wid.x * ${classes}u;
  let lse = stats[wid.x * 2u + 1u];
  let label = u32(labels[wid.x]);
  let scale = grad_out[0] / ${f32(batch)};
  for (var k = lid.x; k < ${classes}u; k += ${threads}u) {
    let p = exp(logits[base + k] - lse);
    grad[base + k] = scale * (p - select(0.0, 1.0, k == label));
  }
}
`,
  };
}

/**
 * Per row b, with q = softmax(student_b / T) and p = softmax(teacher_b / T):
 * `stats[3b] = sum_k p_k (log p_k - log q_k)`, then the two log-sum-exps of student/T and teacher/T.
 * Bindings: student, teacher, stats.
 */
export function temperatureKlForwardKernel(batch: number, classes: number, temperature: number): GridKernel {
  const threads = rowThreads(classes);
  const t = f32(temperature);
  return {
    key: kernelKey("temperature_kl_forward", { batch, classes, temperature }),
    workgroups: [batch, 1],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> student: array<f32>;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
${rowReductions(threads)}
fn scaled(base: u32, k: u32) -> vec2f {
  return vec2f(student[base + k], teacher[base + k]) / ${t};
}

@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let lane = lid.x;
  let base = wid.x * ${classes}u;
  var local_max = vec2f(${LOWEST_F32});
  for (var k = lane; k < ${classes}u; k += ${threads}u) { local_max = max(local_max, scaled(base, k)); }
  let top = row_max(lane, local_max);
  var local_sum = vec2f(0.0);
  for (var k = lane; k < ${classes}u; k += ${threads}u) { local_sum += exp(scaled(base, k) - top); }
  let lse = top + log(row_sum(lane, local_sum));
  var local_kl = 0.0;
  for (var k = lane; k < ${classes}u; k += ${threads}u) {
    let log_prob = scaled(base, k) - lse;
    local_kl += exp(log_prob.y) * (log_prob.y - log_prob.x);
  }
  let kl = row_sum(lane, vec2f(local_kl, 0.0)).x;
  if (lane == 0u) {
    stats[wid.x * 3u] = kl;
    stats[wid.x * 3u + 1u] = lse.x;
    stats[wid.x * 3u + 2u] = lse.y;
  }
}
`,
  };
}

/** `grad[b, k] = g / (B T) * (q_k - p_k)`, the gradient for the student only. Bindings: student, teacher,
 * stats, g (scalar), grad. */
export function temperatureKlBackwardKernel(batch: number, classes: number, temperature: number): GridKernel {
  const threads = rowThreads(classes);
  const t = f32(temperature);
  return {
    key: kernelKey("temperature_kl_backward", { batch, classes, temperature }),
    workgroups: [batch, 1],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> student: array<f32>;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let base = wid.x * ${classes}u;
  let lse = vec2f(stats[wid.x * 3u + 1u], stats[wid.x * 3u + 2u]);
  let scale = grad_out[0] / ${f32(batch * temperature)};
  for (var k = lid.x; k < ${classes}u; k += ${threads}u) {
    let prob = exp(vec2f(student[base + k], teacher[base + k]) / ${t} - lse);
    grad[base + k] = scale * (prob.x - prob.y);
  }
}
`,
  };
}

const MEAN_THREADS = 256;

/** `out[0] = (sum_i src[i*stride]) / count` for i < count: the batch mean of one row statistic. */
export function stridedMeanKernel(count: number, stride: number): GridKernel {
  return {
    key: kernelKey("strided_mean", { count, stride }),
    workgroups: [1, 1],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, ${MEAN_THREADS}>;

@compute @workgroup_size(${MEAN_THREADS})
fn main(@builtin(local_invocation_id) lid: vec3u) {
  var sum = 0.0;
  for (var i = lid.x; i < ${count}u; i += ${MEAN_THREADS}u) { sum += src[i * ${stride}u]; }
  partial[lid.x] = sum;
  workgroupBarrier();
  for (var span = ${MEAN_THREADS / 2}u; span > 0u; span = span / 2u) {
    if (lid.x < span) { partial[lid.x] += partial[lid.x + span]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[0] = partial[0] / ${f32(count)}; }
}
`,
  };
}

/** Scalar terms one dispatch can take: 8 storage bindings less the output. */
export const WEIGHTED_SUM_TERMS = 7;

/**
 * `out[0] = sum_i weights[i] * term_i[0]` (or `out[0] +=` that when `accumulate`, so more terms than
 * bindings chain over several dispatches). Bindings: the terms, then out.
 */
export function weightedSumKernel(weights: readonly number[], accumulate: boolean): GridKernel {
  if (weights.length < 1 || weights.length > WEIGHTED_SUM_TERMS) {
    throw new Error(`weightedSumKernel: takes 1 to ${WEIGHTED_SUM_TERMS} terms, not ${weights.length}`);
  }
  const literals = weights.map(f32);
  const sum = literals.map((w, i) => `${w} * term_${i}[0]`).join(" + ");
  return {
    key: kernelKey("weighted_sum", { weights, accumulate }),
    workgroups: [1, 1],
    wgsl: () => `
${literals.map((_, i) => `@group(0) @binding(${i}) var<storage, read> term_${i}: array<f32>;`).join("\n")}
@group(0) @binding(${weights.length}) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(1)
fn main() {
  out[0] = ${accumulate ? "out[0] + " : ""}${sum};
}
`,
  };
}
