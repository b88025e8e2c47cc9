/** The blocked weight copy that lets a range of reduced channels' weights for many rows be one window. */
import { gridFor, kernelKey } from "../common.ts";
import type { ConvGeometry } from "./geometry.ts";
import type { ConvKernel } from "./plan.ts";
import { readCode } from "./wgsl.ts";
import { storageRead } from "./windows.ts";

/** Elements of the blocked weight copy: `rows` x `block` x `taps` per range of `block` reduced channels. */
export function blockedWeightSize(rows: number, reduced: number, block: number, taps: number): number {
  return Math.ceil(reduced / block) * rows * block * taps;
}

/**
 * The f32 copy of the weights (also from f16 weights) that a kernel reducing over ranges of `block`
 * channels reads through windows: per range, one row per output channel of the kernel (cout forward, cin
 * for the input gradient, `transposed`), each holding the range's `block` reduced channels x taps, so a
 * range's weights for many rows are one window. Channels past the last are zero. Roles weight, weightBlocks.
 */
export function blockedWeightKernel(geometry: ConvGeometry, block: number, transposed: boolean): ConvKernel {
  const { cin, cout, kernel } = geometry;
  const taps = kernel * kernel;
  const [rows, reduced] = transposed ? [cin, cout] : [cout, cin];
  const total = blockedWeightSize(rows, reduced, block, taps);
  const grid = gridFor(total);
  const half = geometry.halfOperands ?? false;
  // weight[co, ci, tap] with (row, reduced channel) = (ci, co) when transposed, else (co, ci).
  const source = transposed ? `(channel * ${cin}u + row)` : `(row * ${cin}u + channel)`;
  return {
    key: kernelKey("conv2d_blocked_weight", { cout, cin, kernel, block, transposed, half }),
    buffers: ["weight", "weightBlocks"],
    dispatches: [{ ranges: [undefined, undefined], workgroups: [...grid.workgroups, 1] }],
    wgsl: () => `
${readCode(storageRead("weight", cout * cin * taps, half), 0)}
@group(0) @binding(1) var<storage, read_write> weightBlocks: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${total}u) { return; }
  let tap = i % ${taps}u;
  let local = (i / ${taps}u) % ${block}u;
  let row = (i / ${block * taps}u) % ${rows}u;
  let channel = (i / ${rows * block * taps}u) * ${block}u + local;
  if (channel >= ${reduced}u) {
    weightBlocks[i] = 0.0;
    return;
  }
  weightBlocks[i] = readWeight(${source} * ${taps}u + tap);
}
`,
  };
}
