/**
 * Dynamic loss scaling on the GPU, as torch's `_amp_foreach_non_finite_check_and_unscale_` and
 * `_amp_update_scale_` (aten/src/ATen/native/cuda/AmpKernels.cu) compute it. The scale is an f32
 * buffer of one value; the rest of the scaler's state is a few u32 words: whether this step found a
 * non-finite gradient (set by the unscale dispatches, read by guarded optimizer kernels, cleared by the
 * update), torch's growth tracker, and a count of skipped steps (ours: torch keeps none).
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, kernelKey } from "./common.ts";
import { NON_FINITE_WGSL } from "./finite_check.ts";

/** Non-zero from the first non-finite gradient of a step until the update clears it. */
export const FOUND_INF_WORD = 0;
/** Successful steps in a row since the scale last changed. */
export const GROWTH_TRACKER_WORD = 1;
/** Steps skipped because of a non-finite gradient, since the scaler was made. */
export const SKIPPED_WORD = 2;
/** u32 words in the state buffer. */
export const STATE_WORDS = 3;

const THREADS = 256;
/** Enough invocations to keep a GPU busy; each strides over the rest. */
const MAX_WORKGROUPS = 64;

export interface UnscaleKernel extends Kernel {
  workgroups: [number];
}

/**
 * `f32(1 / x)` rounded to nearest even, as torch's `scale.double().reciprocal().float()`. WGSL lets
 * `1.0 / x` be off by 2.5 ulp, so the mantissa comes from an integer long division. Positive zero gives
 * infinity and infinity zero, as in float64.
 */
const RECIPROCAL_WGSL = `fn reciprocal_rounded(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  let sign = bits & 0x80000000u;
  let biased = (bits >> 23u) & 0xffu;
  let fraction = bits & 0x7fffffu;
  if (biased == 255u) {
    if (fraction != 0u) { return x; }
    return bitcast<f32>(sign);
  }
  if (biased == 0u && fraction == 0u) { return bitcast<f32>(sign | 0x7f800000u); }
  // |x| = m * 2^(e - 150) with m in [2^23, 2^24), subnormals normalised.
  var m = fraction | 0x800000u;
  var e = i32(biased);
  if (biased == 0u) {
    let shift = 23u - firstLeadingBit(fraction);
    m = fraction << shift;
    e = 1 - i32(shift);
  }
  // q = floor(2^48 / m), in (2^24, 2^25]; 1 / |x| = (q + remainder / m) * 2^(102 - e).
  var remainder = 1u;
  var q = 0u;
  for (var bit = 0u; bit < 48u; bit = bit + 1u) {
    remainder = remainder << 1u;
    q = q << 1u;
    if (remainder >= m) {
      remainder = remainder - m;
      q = q | 1u;
    }
  }
  let top = firstLeadingBit(q);
  var biased_result = i32(top) + 229 - e;
  // Keep 24 bits of q, fewer when the result is subnormal.
  var drop = top - 23u;
  if (biased_result < 1) {
    drop = drop + u32(1 - biased_result);
    biased_result = 1;
  }
  if (biased_result >= 255) { return bitcast<f32>(sign | 0x7f800000u); }
  if (drop >= 32u) { return bitcast<f32>(sign); }
  var kept = q >> drop;
  let dropped = q & ((1u << drop) - 1u);
  let half = 1u << (drop - 1u);
  if (dropped > half || (dropped == half && (remainder != 0u || (kept & 1u) == 1u))) {
    kept = kept + 1u;
  }
  // kept carries its leading bit into the exponent field, which also handles rounding up to 2^24.
  let result = (u32(biased_result - 1) << 23u) + kept;
  return bitcast<f32>(sign | min(result, 0x7f800000u));
}`;

/**
 * Unscales one gradient in place: `grad * f32(1 / scale)` and, when any element of the incoming gradient
 * is non-finite, sets the found-inf word. Bindings: grad (`n` f32, read_write), state (u32 words,
 * atomic), scale (one f32).
 */
export function unscaleKernel(n: number): UnscaleKernel {
  const workgroups = Math.max(1, Math.min(MAX_WORKGROUPS, Math.ceil(n / THREADS)));
  const stride = workgroups * THREADS;
  return {
    key: kernelKey("grad_scaler_unscale", { n }),
    workgroups: [workgroups],
    wgsl: () => `
@group(0) @binding(0) var<storage, read_write> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;

${NON_FINITE_WGSL}

${RECIPROCAL_WGSL}

@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x >= ${n}u) { return; }
  let inv_scale = reciprocal_rounded(scale[0]);
  var found_inf = false;
  for (var i = id.x; i < ${n}u; i = i + ${stride}u) {
    let g = grad[i];
    found_inf = found_inf || non_finite(g);
    grad[i] = g * inv_scale;
  }
  if (found_inf) { atomicStore(&state[${FOUND_INF_WORD}], 1u); }
}
`,
  };
}

/**
 * torch's `_amp_update_scale_`, in one invocation: after a step that found a non-finite gradient the
 * scale is multiplied by `backoffFactor` and the tracker reset; otherwise the tracker counts the step and,
 * on reaching `growthInterval`, resets while the scale is multiplied by `growthFactor` unless that
 * overflows. It also counts skipped steps and clears found-inf for the next step. Bindings: state (u32
 * words), scale (one f32), both read_write.
 *
 * torch multiplies in float64 and rounds once to f32; here the factor is an f32 constant and the product
 * f32, which is the same value whenever the factor is representable in f32 (2, 0.5, 1.5, ...) and can be
 * one ulp off otherwise.
 */
export function updateScaleKernel(
  growthFactor: number,
  backoffFactor: number,
  growthInterval: number,
): Kernel {
  return {
    key: kernelKey("grad_scaler_update", { growthFactor, backoffFactor, growthInterval }),
    wgsl: () => `
@group(0) @binding(0) var<storage, read_write> state: array<u32>;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;

${NON_FINITE_WGSL}

@compute @workgroup_size(1)
fn main() {
  if (state[${FOUND_INF_WORD}] != 0u) {
    scale[0] = scale[0] * ${f32(backoffFactor)};
    state[${GROWTH_TRACKER_WORD}] = 0u;
    state[${SKIPPED_WORD}] = state[${SKIPPED_WORD}] + 1u;
  } else {
    let successful = state[${GROWTH_TRACKER_WORD}] + 1u;
    if (successful == ${growthInterval}u) {
      let grown = scale[0] * ${f32(growthFactor)};
      if (!non_finite(grown)) { scale[0] = grown; }
      state[${GROWTH_TRACKER_WORD}] = 0u;
    } else {
      state[${GROWTH_TRACKER_WORD}] = successful;
    }
  }
  state[${FOUND_INF_WORD}] = 0u;
}
`,
  };
}
