/**
 * Kernels that accumulate training and evaluation statistics into a small f32 buffer on the GPU, so a
 * run reads metrics back once per log interval instead of once per step. Each is a single workgroup
 * that owns its slots: dispatches run in order, so no atomics are needed.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, kernelKey } from "./common.ts";

const THREADS = 256;

function workgroupSum(): string {
  return `
var<workgroup> partial: array<vec2f, ${THREADS}>;

fn reduce_pair(lane: u32, value: vec2f) -> vec2f {
  partial[lane] = value;
  workgroupBarrier();
  for (var half = ${THREADS / 2}u; half > 0u; half = half / 2u) {
    if (lane < half) { partial[lane] = partial[lane] + partial[lane + half]; }
    workgroupBarrier();
  }
  return partial[0];
}
`;
}

/**
 * Adds the number of samples whose label ranks first (top-1) and within the first five (top-5) of
 * `logits` (B, K) to `stats[slot]` and `stats[slot + 1]`. A label's rank is the count of strictly larger
 * logits. Bindings: logits, labels (i32), stats.
 */
export function topkCountKernel(batch: number, classes: number, slot: number): Kernel {
  return {
    key: kernelKey("metrics_topk", { batch, classes, slot }),
    wgsl: () => `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
${workgroupSum()}
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) lane: u32) {
  var hits = vec2f(0.0);
  for (var b = lane; b < ${batch}u; b = b + ${THREADS}u) {
    let label = u32(clamp(labels[b], 0, ${classes - 1}));
    let label_logit = logits[b * ${classes}u + label];
    var above = 0u;
    for (var k = 0u; k < ${classes}u; k = k + 1u) {
      if (logits[b * ${classes}u + k] > label_logit) { above = above + 1u; }
    }
    hits = hits + vec2f(select(0.0, 1.0, above < 1u), select(0.0, 1.0, above < 5u));
  }
  let total = reduce_pair(lane, hits);
  if (lane == 0u) {
    stats[${slot}u] = stats[${slot}u] + total.x;
    stats[${slot + 1}u] = stats[${slot + 1}u] + total.y;
  }
}
`,
  };
}

/** `stats[slot] += value` for a constant (the batch size). Bindings: stats. */
export function addConstantKernel(slot: number, value: number): Kernel {
  return {
    key: kernelKey("metrics_constant", { slot, value }),
    wgsl: () => `
@group(0) @binding(0) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(1)
fn main() {
  stats[${slot}u] = stats[${slot}u] + ${f32(value)};
}
`,
  };
}

/** `stats[slot] += scale * value[0]` (a batch-mean loss times the batch size). Bindings: value, stats. */
export function addScalarKernel(slot: number, scale: number): Kernel {
  return {
    key: kernelKey("metrics_scalar", { slot, scale }),
    wgsl: () => `
@group(0) @binding(0) var<storage, read> value: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(1)
fn main() {
  stats[${slot}u] = stats[${slot}u] + ${f32(scale)} * value[0];
}
`,
  };
}

/** Bytes of the activity kernel's uniform block: `slot, groups, group_size, valid: u32`. */
export const ACTIVITY_UNIFORM_BYTES = 16;

/**
 * Activity of one layer input or LIF output: `stats[slot] += mean(x)`, `stats[slot + 1] += 1` (calls)
 * and `stats[slot + 2] += count of values other than 0 and 1` (so a report can tell spikes from analog
 * inputs). `x` is `groups` time steps of `group_size` values each, of which the first `valid` count (the
 * real samples of a padded evaluation batch). The sizes arrive in the uniform block, so one compiled
 * kernel serves every layer. Bindings: x, stats, uniform.
 */
export function activityKernel(): Kernel {
  return {
    key: kernelKey("metrics_activity", {}),
    wgsl: () => `
struct Sizes {
  slot: u32,
  groups: u32,
  group_size: u32,
  valid: u32,
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<uniform> sizes: Sizes;
${workgroupSum()}
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) lane: u32) {
  var acc = vec2f(0.0);
  let n = sizes.groups * sizes.valid;
  for (var i = lane; i < n; i = i + ${THREADS}u) {
    let group = i / sizes.valid;
    let v = x[group * sizes.group_size + i % sizes.valid];
    acc = acc + vec2f(v, select(1.0, 0.0, v == 0.0 || v == 1.0));
  }
  let total = reduce_pair(lane, acc);
  if (lane == 0u) {
    let slot = sizes.slot;
    stats[slot] = stats[slot] + total.x / f32(n);
    stats[slot + 1u] = stats[slot + 1u] + 1.0;
    stats[slot + 2u] = stats[slot + 2u] + total.y;
  }
}
`,
  };
}
