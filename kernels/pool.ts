/**
 * Adaptive average pooling over (planes, H, W) with PyTorch's bins: output row i averages input rows
 * floor(i*H/oh) .. ceil((i+1)*H/oh) - 1 (likewise columns). Bins overlap when H is not a multiple of oh
 * and repeat rows when H < oh (a 1x1 input pooled to 2x2 copies it into all four).
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { gridFor, kernelKey } from "./common.ts";

export interface AdaptivePoolShape {
  /** N*C: independent planes. */
  planes: number;
  height: number;
  width: number;
  outHeight: number;
  outWidth: number;
}

export interface ElementKernel extends Kernel {
  workgroups: [number, number];
}

/** The shape as a kernel specification (a caller's object may carry more fields). */
function shapeSpec({ planes, height, width, outHeight, outWidth }: AdaptivePoolShape): AdaptivePoolShape {
  return { planes, height, width, outHeight, outWidth };
}

/** WGSL for the bin of output index `i` along an axis of `size` inputs and `out` outputs. */
function binStartEnd(axis: string, size: number, out: number): string {
  return `let ${axis}_start = (${axis} * ${size}u) / ${out}u;
  let ${axis}_end = ((${axis} + 1u) * ${size}u + ${out - 1}u) / ${out}u;`;
}

/** One thread per output element: the mean of its bin. Bindings: x, out. */
export function adaptiveAvgPoolForwardKernel(shape: AdaptivePoolShape): ElementKernel {
  const { planes, height, width, outHeight, outWidth } = shape;
  const total = planes * outHeight * outWidth;
  const grid = gridFor(total);
  return {
    key: kernelKey("adaptive_avg_pool_forward", shapeSpec(shape)),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x + gid.y * ${grid.rowStride}u;
  if (index >= ${total}u) { return; }
  let j = index % ${outWidth}u;
  let i = (index / ${outWidth}u) % ${outHeight}u;
  let plane = index / ${outHeight * outWidth}u;
  ${binStartEnd("i", height, outHeight)}
  ${binStartEnd("j", width, outWidth)}
  var sum = 0.0;
  for (var h = i_start; h < i_end; h++) {
    for (var w = j_start; w < j_end; w++) {
      sum += x[(plane * ${height}u + h) * ${width}u + w];
    }
  }
  out[index] = sum / f32((i_end - i_start) * (j_end - j_start));
}
`,
  };
}

/**
 * One thread per input element: the sum of g / bin size over the output bins that contain it. Along an
 * axis, input h lies in the bins i = floor(h*out/size) .. floor(((h+1)*out - 1)/size). Bindings: g, gx.
 */
export function adaptiveAvgPoolBackwardKernel(shape: AdaptivePoolShape): ElementKernel {
  const { planes, height, width, outHeight, outWidth } = shape;
  const total = planes * height * width;
  const grid = gridFor(total);
  return {
    key: kernelKey("adaptive_avg_pool_backward", shapeSpec(shape)),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> gx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x + gid.y * ${grid.rowStride}u;
  if (index >= ${total}u) { return; }
  let w = index % ${width}u;
  let h = (index / ${width}u) % ${height}u;
  let plane = index / ${height * width}u;
  let i_first = (h * ${outHeight}u) / ${height}u;
  let i_last = min(((h + 1u) * ${outHeight}u - 1u) / ${height}u, ${outHeight - 1}u);
  let j_first = (w * ${outWidth}u) / ${width}u;
  let j_last = min(((w + 1u) * ${outWidth}u - 1u) / ${width}u, ${outWidth - 1}u);
  var sum = 0.0;
  for (var i = i_first; i <= i_last; i++) {
    ${binStartEnd("i", height, outHeight)}
    for (var j = j_first; j <= j_last; j++) {
      ${binStartEnd("j", width, outWidth)}
      let count = f32((i_end - i_start) * (j_end - j_start));
      sum += g[(plane * ${outHeight}u + i) * ${outWidth}u + j] / count;
    }
  }
  gx[index] = sum;
}
`,
  };
}
