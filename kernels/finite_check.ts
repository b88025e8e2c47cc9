/**
 * Finds NaN and infinities in a parameter and its gradient without reading either back: a hit records
 * `code` and `step` (from the uniform block) in a two-word flag buffer that the training loop reads only
 * at log steps and before checkpoints. The first parameter to be flagged keeps the flag, so the record
 * names where a run first went non-finite. The test looks at the exponent bits because a shader compiler
 * may assume floats are finite and fold `x != x` away.
 */
import { kernelKey } from "./common.ts";
import type { Kernel } from "../src/gpu/kernels.ts";

/** Flag word 0 while nothing non-finite has been seen. */
export const ALL_FINITE = 0xffffffff;

const THREADS = 256;
/** Enough invocations to keep a GPU busy; each strides over the rest. */
const MAX_WORKGROUPS = 64;

export interface FiniteCheckKernel extends Kernel {
  workgroups: [number];
}

/** WGSL `non_finite(x)`: true for infinities and NaN, read from the exponent bits. */
export const NON_FINITE_WGSL = `fn non_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}`;

export interface FiniteCheckOptions {
  /**
   * Check the gradient too (default). Without it only the values are checked and the grad is not
   * bound: under loss scaling a non-finite gradient is an expected, skipped step, not a fault.
   */
  gradients?: boolean;
}

/**
 * Bindings: grad (only when checking gradients), param (both `n` f32), flags (2 u32: code, step), then
 * the uniform block. The code is `2 * index` for a non-finite gradient and `2 * index + 1` for a
 * non-finite value; when both are, the gradient wins.
 */
export function finiteCheckKernel(n: number, options: FiniteCheckOptions = {}): FiniteCheckKernel {
  const gradients = options.gradients ?? true;
  const workgroups = Math.max(1, Math.min(MAX_WORKGROUPS, Math.ceil(n / THREADS)));
  const stride = workgroups * THREADS;
  const declarations = [
    "var<storage, read> param: array<f32>;",
    "var<storage, read_write> flags: array<atomic<u32>, 2>;",
    "var<uniform> at: Where;",
  ];
  if (gradients) declarations.unshift("var<storage, read> grad: array<f32>;");
  const gradCheck = gradients ? "    bad_grad = bad_grad || non_finite(grad[i]);\n" : "";
  return {
    key: kernelKey("finite_check", { n, gradients }),
    workgroups: [workgroups],
    wgsl: () => `
struct Where { index: u32, step: u32 }

${declarations.map((declaration, i) => `@group(0) @binding(${i}) ${declaration}`).join("\n")}

${NON_FINITE_WGSL}

@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) id: vec3u) {
  var bad_grad = false;
  var bad_value = false;
  for (var i = id.x; i < ${n}u; i = i + ${stride}u) {
${gradCheck}    bad_value = bad_value || non_finite(param[i]);
  }
  if (!(bad_grad || bad_value)) { return; }
  let code = 2u * at.index + select(1u, 0u, bad_grad);
  let seen = atomicLoad(&flags[0]);
  // An earlier hit keeps its record; within this dispatch the smaller code (the gradient) wins.
  let same_hit = seen / 2u == at.index && atomicLoad(&flags[1]) == at.step;
  if (seen == ${ALL_FINITE}u || same_hit) {
    atomicMin(&flags[0], code);
    atomicStore(&flags[1], at.step);
  }
}
`,
  };
}
