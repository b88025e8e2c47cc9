/**
 * Moving between a static batch `(B, ...)` and the time-folded batch `(T*B, ...)` (row t*B + b, SPEC §1):
 * repeating a batch over T and summing (or averaging) over T. Each is the other's gradient.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, gridFor, kernelKey } from "./common.ts";

export interface ElementKernel extends Kernel {
  workgroups: [number, number];
}

/** `out[t*n + j] = x[j] / divisor` for t < T, where n is the size of one time step. Bindings: x, out. */
export function repeatOverTimeKernel(n: number, steps: number, divisor = 1): ElementKernel {
  const total = n * steps;
  const grid = gridFor(total);
  const value = divisor === 1 ? `x[index % ${n}u]` : `x[index % ${n}u] / ${f32(divisor)}`;
  return {
    key: kernelKey("repeat_over_time", { n, steps, divisor }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x + gid.y * ${grid.rowStride}u;
  if (index >= ${total}u) { return; }
  out[index] = ${value};
}
`,
  };
}

/** `out[j] = (sum_t x[t*n + j]) / divisor`, summing t in ascending order. Bindings: x, out. */
export function sumOverTimeKernel(n: number, steps: number, divisor = 1): ElementKernel {
  const grid = gridFor(n);
  return {
    key: kernelKey("sum_over_time", { n, steps, divisor }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x + gid.y * ${grid.rowStride}u;
  if (index >= ${n}u) { return; }
  var sum = 0.0;
  for (var t = 0u; t < ${steps}u; t++) {
    sum += x[t * ${n}u + index];
  }
  out[index] = ${divisor === 1 ? "sum" : `sum / ${f32(divisor)}`};
}
`,
  };
}
