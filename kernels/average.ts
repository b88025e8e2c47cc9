/**
 * `x[i] *= f32(1 / ranks)` for the first `n` values of the staging buffer: the summed gradients become
 * their mean on the GPU, after the upload, instead of in a host loop over every value (about 30 ms for
 * the headline's 23 M values on one idle core). A product, correctly rounded in WGSL (a quotient may be
 * 2.5 ulp off): for a power-of-two number of ranks exactly the quotient.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, gridFor, kernelKey, WORKGROUP_SIZE } from "./common.ts";

/** The kernel over the first `n` values, for a job of `ranks` ranks. */
export function averageKernel(n: number, ranks: number): Kernel & { workgroups: [number, number] } {
  const grid = gridFor(n);
  return {
    key: kernelKey("average", { n, ranks }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
  x[i] = x[i] * ${f32(1 / ranks)};
}
`,
  };
}
