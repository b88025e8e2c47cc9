/**
 * One-thread-per-element kernels: maps of up to three inputs into one output, in-place accumulation and
 * fills. The element expression is WGSL over the loaded values `a`, `b`, `c`.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, gridFor, WORKGROUP_SIZE } from "./common.ts";

export interface ElementwiseKernel extends Kernel {
  workgroups: [number, number];
}

const INPUT_NAMES = ["a", "b", "c"];

/**
 * `out[i] = expr(a[i], b[i], c[i])` for `inputs` f32 inputs. `name` must identify `expr` uniquely.
 */
export function mapKernel(name: string, n: number, inputs: number, expr: string): ElementwiseKernel {
  const grid = gridFor(n);
  const names = INPUT_NAMES.slice(0, inputs);
  return {
    key: `map:${name}:${inputs}:${n}`,
    workgroups: grid.workgroups,
    wgsl: () => `
${names.map((v, i) => `@group(0) @binding(${i}) var<storage, read> in_${v}: array<f32>;`).join("\n")}
@group(0) @binding(${inputs}) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
${names.map((v) => `  let ${v} = in_${v}[i];`).join("\n")}
  out[i] = ${expr};
}
`,
  };
}

/** `dst[i] += scale * src[i]`: gradient accumulation without a new buffer. */
export function accumulateKernel(n: number, scale = 1): ElementwiseKernel {
  const grid = gridFor(n);
  return {
    key: `accumulate:${n}:${scale}`,
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
  dst[i] = dst[i] + ${f32(scale)} * src[i];
}
`,
  };
}

/** `out[i] = value` for f32, i32 or u32 tensors. */
export function fillKernel(n: number, value: number, type: "f32" | "i32" | "u32" = "f32"): ElementwiseKernel {
  const grid = gridFor(n);
  const literal = type === "f32" ? f32(value) : `${type}(${Math.trunc(value)})`;
  return {
    key: `fill:${type}:${n}:${value}`,
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read_write> out: array<${type}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
  out[i] = ${literal};
}
`,
  };
}

/** f32 -> f16 and f16 -> f32 conversion, for f16 storage where the adapter has shader-f16. */
export function castKernel(n: number, from: "f32" | "f16", to: "f32" | "f16"): ElementwiseKernel {
  const grid = gridFor(n);
  return {
    key: `cast:${from}:${to}:${n}`,
    workgroups: grid.workgroups,
    wgsl: () => `
enable f16;
@group(0) @binding(0) var<storage, read> src: array<${from}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${to}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
  dst[i] = ${to}(src[i]);
}
`,
  };
}
