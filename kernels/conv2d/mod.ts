/**
 * 2-D convolution (no bias, square kernel, zero padding): forward, input gradient and weight gradient.
 *
 * - forward:      out[n, co, oy, ox] = sum over (ci, ky, kx) of w[co, ci, ky, kx] * x[n, ci, oy*s-p+ky, ox*s-p+kx]
 * - grad input:   gx[n, ci, iy, ix]  = sum over (co, ky, kx) of w[co, ci, ky, kx] * gy[n, co, (iy+p-ky)/s, ...]
 *                 (only taps where the division is exact)
 * - grad weight:  gw[co, ci, ky, kx] = sum over (n, oy, ox) of gy[n, co, oy, ox] * x[n, ci, oy*s-p+ky, ...]
 *
 * The input gradient is split by phase (iy mod s, ix mod s): within one phase the same kernel taps
 * (ky = iy + p mod s) reach every position, so each phase is a dense stride-1 correlation over those taps
 * and a stride-2 convolution does no multiply-by-zero work.
 *
 * Two tilings, both with shapes baked into the WGSL:
 * - "gemm": an implicit GEMM. A workgroup computes a tileM x tileN output block, staging tileK-deep slices of
 *   both operands (gathered from the NCHW tensors: im2col is never stored) in workgroup memory; each
 *   invocation accumulates threadM x threadN outputs in registers. The layout for GPUs. Every weight-gradient
 *   element is owned by one workgroup that reduces over all of N*Ho*Wo, so no atomics are needed.
 * - "direct": register-blocked direct convolution without workgroup memory. Each invocation owns a block
 *   of output channels x output pixels and loads each input patch once for all kernel taps. The layout for
 *   CPU adapters (llvmpipe/lavapipe), which run a workgroup as SIMD vectors of invocations. There a storage
 *   or workgroup-memory load is a loop over the lanes with a branch per lane, costing about 30 multiply-adds
 *   of one invocation, while a uniform-buffer load is a branch-free gather costing about 4. So the direct
 *   kernels read every operand that fits through uniform-buffer *windows* (at most 64 KiB, the binding
 *   limit every adapter supports): each dispatch binds the slice of a tensor its invocations read (a group
 *   of samples of an activation, a range of channels of the weights), and a pass is one dispatch per
 *   window. (Mesa loads a uniform once for all lanes only at compile-time-constant offsets, which indices
 *   that follow a loop over channels are not.) A sample too large for a window is read as ranges of its
 *   channels, one range per dispatch with the output summed over the dispatches, or else from storage,
 *   whichever the cost model rates cheaper. Because a block of weight gradients is too little work for a
 *   CPU's SIMD lanes, the weight gradient also splits each sample group's reduction over `splits`
 *   invocations, and a second kernel adds the partial sums.
 *
 * This folder, one concept per file: geometry.ts (shapes, phases), tiles.ts and plan.ts (the types),
 * cost.ts (the CPU cost model and the tiling choice), gemm.ts (the GEMM tiling), windows.ts (uniform-window
 * plumbing), wgsl.ts (fragments the direct kernels share), direct_forward.ts, direct_grad_input.ts,
 * direct_grad_weight.ts and blocked_weights.ts (the direct passes). This file chooses a pass's kernels.
 */
import { directForward } from "./direct_forward.ts";
import { directGradInput } from "./direct_grad_input.ts";
import { directGradWeight } from "./direct_grad_weight.ts";
import { gemmForward, gemmGradInput, gemmGradWeight } from "./gemm.ts";
import type { ConvGeometry } from "./geometry.ts";
import type { ConvPlan } from "./plan.ts";
import type { DirectTile, DirectWeightTile, GemmTile } from "./tiles.ts";

export { convFlops, type ConvGeometry, outputSize } from "./geometry.ts";
export type { DirectTile, DirectWeightTile, GemmTile } from "./tiles.ts";
export type { BufferRange, ConvDispatch, ConvKernel, ConvPlan } from "./plan.ts";
export { defaultConvTilings, type Tilings } from "./cost.ts";

/** `(batch, cin, H, W) x (cout, cin, k, k) -> (batch, cout, Ho, Wo)`; roles x, weight, out. */
export function conv2dForwardPlan(geometry: ConvGeometry, tiling: GemmTile | DirectTile): ConvPlan {
  return tiling.kind === "gemm"
    ? { scratch: {}, kernels: [gemmForward(geometry, tiling)] }
    : directForward(geometry, tiling);
}

/**
 * The input gradient, one kernel per phase (stride^2 of them, less phases holding no input position);
 * roles gradOut, weight, gradIn. Every element of gradIn is written by exactly one phase (phases that no
 * kernel tap reaches write zeros).
 */
export function conv2dGradInputPlan(geometry: ConvGeometry, tiling: GemmTile | DirectTile): ConvPlan {
  return tiling.kind === "gemm"
    ? { scratch: {}, kernels: gemmGradInput(geometry, tiling) }
    : directGradInput(geometry, tiling);
}

/** The weight gradient `(cout, cin, k, k)`; roles gradOut, x, gradWeight. */
export function conv2dGradWeightPlan(
  geometry: ConvGeometry,
  tiling: GemmTile | DirectWeightTile,
): ConvPlan {
  return tiling.kind === "gemm"
    ? { scratch: {}, kernels: [gemmGradWeight(geometry, tiling)] }
    : directGradWeight(geometry, tiling);
}
