/**
 * One-thread-per-element kernels: maps of up to three inputs into one output, in-place accumulation and
 * fills. The element expression is WGSL over the loaded values `a`, `b`, `c`.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, gridFor, kernelKey, WORKGROUP_SIZE } from "./common.ts";

export interface ElementwiseKernel extends Kernel {
  workgroups: [number, number];
}

const INPUT_NAMES = ["a", "b", "c"];

/** `out[i] = expr(a[i], b[i], c[i])` for `inputs` f32 inputs; the key holds the expression itself. */
export function mapKernel(n: number, inputs: number, expr: string): ElementwiseKernel {
  const grid = gridFor(n);
  const names = INPUT_NAMES.slice(0, inputs);
  return {
    key: kernelKey("map", { n, inputs, expr }),
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
    key: kernelKey("accumulate", { n, scale }),
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
    key: kernelKey("fill", { n, value, type }),
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

/**
 * f32 -> IEEE f16, two values to a 32-bit word (the layout of `array<f16>`), rounded to nearest even with
 * subnormals kept, in integer arithmetic: WGSL leaves an out-of-range conversion indeterminate and lets
 * implementations flush subnormals, while loss scaling needs overflow to become infinity on every adapter.
 * Bindings: src (`n` f32), dst (`ceil(n / 2)` u32; an odd `n` leaves the last word's high half zero).
 */
export function packHalfKernel(n: number): ElementwiseKernel {
  const words = Math.ceil(n / 2);
  const grid = gridFor(words);
  return {
    key: kernelKey("pack_half", { n }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

fn half_bits(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  let magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {
    return sign | select(0x7c00u, 0x7e00u, magnitude > 0x7f800000u);
  }
  // 65520 and above round to infinity.
  if (magnitude >= 0x477ff000u) { return sign | 0x7c00u; }
  if (magnitude >= 0x38800000u) {
    // Normal: rebias the exponent (127 -> 15), round the mantissa from 23 to 10 bits; a carry moves the
    // exponent up, as it should.
    let rebased = magnitude - 0x38000000u;
    return sign | ((rebased + 0xfffu + ((rebased >> 13u) & 1u)) >> 13u);
  }
  // 2^-25 and below round to zero (2^-25 itself ties to the even zero).
  if (magnitude <= 0x33000000u) { return sign; }
  // Subnormal: the count of 2^-24 units, rounded to nearest even.
  let shift = 126u - (magnitude >> 23u);
  let mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  let halfway = 1u << (shift - 1u);
  let remainder = mantissa & ((1u << shift) - 1u);
  var units = mantissa >> shift;
  if (remainder > halfway || (remainder == halfway && (units & 1u) == 1u)) { units = units + 1u; }
  return sign | units;
}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${words}u) { return; }
  let high = select(0u, half_bits(src[min(2u * i + 1u, ${n - 1}u)]), 2u * i + 1u < ${n}u);
  dst[i] = half_bits(src[2u * i]) | (high << 16u);
}
`,
  };
}
