/**
 * Fused optimizer updates: one invocation per parameter element reads the gradient and the state, and
 * writes the new state and parameter in the same pass. Hyperparameters that stay fixed for a run are
 * baked in as constants; the learning rate and the step-dependent scalars arrive in the uniform block
 * so the pipeline is compiled once per parameter size, not once per step.
 *
 * The arithmetic follows torch.optim's single-tensor implementations operation by operation (same
 * operand order, scalars rounded to f32 as torch rounds them), so results agree to f32 roundoff.
 *
 * A guarded kernel (mixed precision: src/optim/grad_scaler.ts) also binds the loss scaler's state words
 * and leaves the parameter as it is when the scaler found a non-finite gradient this step, so a step
 * with overflowed gradients is skipped on the GPU without the host reading the flag. The host still
 * counts the update as done (it cannot know), so a skipped *first* update writes zeros into the state it
 * would have created: the next update, no longer "first", reads them.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, gridFor, kernelKey, WORKGROUP_SIZE } from "./common.ts";
import { FOUND_INF_WORD } from "./grad_scaler.ts";

export interface OptimizerKernel extends Kernel {
  workgroups: [number, number];
}

/** The guard's declaration: guarded kernels bind it right before the uniform block. */
const GUARD_DECLARATION = "var<storage, read> scaler_state: array<u32>;";

/** Declarations numbered as bindings 0, 1, ... of group 0, one a line. */
function bindingLines(declarations: readonly string[]): string {
  return declarations.map((declaration, i) => `@group(0) @binding(${i}) ${declaration}`).join("\n");
}

/**
 * The first lines of a guarded kernel's body: on a skipped step, `zeroFirstState` (statements that zero
 * the state a first update would have created) runs when this is the parameter's first update, and the
 * invocation ends.
 */
function skipWhenFoundInf(zeroFirstState: readonly string[]): string {
  const lines = [`  if (scaler_state[${FOUND_INF_WORD}u] != 0u) {`];
  if (zeroFirstState.length > 0) {
    lines.push("    if (step.first != 0u) {", ...zeroFirstState.map((line) => `      ${line}`), "    }");
  }
  lines.push("    return;", "  }");
  return lines.join("\n");
}

export interface SgdKernelOptions {
  /** Parameter elements. */
  n: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  /** Binds the loss scaler's state before the uniform block and skips the update when it found an inf. */
  guarded: boolean;
}

/** Bytes of the SGD uniform block: `negative_lr: f32, first: u32`. */
export const SGD_UNIFORM_BYTES = 8;

/** The SGD uniform block: `first` marks a parameter's first update with momentum (no buffer yet). */
export function sgdUniform(lr: number, first: boolean): ArrayBuffer {
  const block = new ArrayBuffer(SGD_UNIFORM_BYTES);
  const view = new DataView(block);
  view.setFloat32(0, -lr, true);
  view.setUint32(4, first ? 1 : 0, true);
  return block;
}

/**
 * torch.optim.SGD for one parameter. Bindings: param (read_write), grad, then momentum_buffer
 * (read_write) only when momentum is non-zero, then the scaler state only when guarded; the uniform
 * block last. A skipped first update leaves a zero momentum buffer, so the next one computes
 * `buf = momentum * 0 + (1 - dampening) * d_p`: torch's first buffer `d_p` exactly when dampening is 0.
 */
export function sgdKernel(options: SgdKernelOptions): OptimizerKernel {
  const { n, momentum, dampening, nesterov, weightDecay, guarded } = options;
  const grid = gridFor(n);
  const hasMomentum = momentum !== 0;
  const lines: string[] = [];
  if (guarded) lines.push(skipWhenFoundInf(hasMomentum ? ["momentum_buffer[i] = 0.0;"] : []));
  lines.push("  var d_p = grad[i];");
  if (weightDecay !== 0) lines.push(`  d_p = d_p + ${f32(weightDecay)} * param[i];`);
  if (hasMomentum) {
    // torch starts the buffer as a copy of the first (decayed) gradient, without dampening.
    lines.push(
      "  var buf = d_p;",
      "  if (step.first == 0u) {",
      `    buf = momentum_buffer[i] * ${f32(momentum)} + ${f32(1 - dampening)} * d_p;`,
      "  }",
      "  momentum_buffer[i] = buf;",
      nesterov ? `  d_p = d_p + ${f32(momentum)} * buf;` : "  d_p = buf;",
    );
  }
  lines.push("  param[i] = param[i] + step.negative_lr * d_p;");
  const declarations = [
    "var<storage, read_write> param: array<f32>;",
    "var<storage, read> grad: array<f32>;",
  ];
  if (hasMomentum) declarations.push("var<storage, read_write> momentum_buffer: array<f32>;");
  if (guarded) declarations.push(GUARD_DECLARATION);
  declarations.push("var<uniform> step: Step;");
  return {
    key: kernelKey("sgd", { n, momentum, dampening, nesterov, weightDecay, guarded }),
    workgroups: grid.workgroups,
    wgsl: () => `
struct Step {
  negative_lr: f32,
  first: u32,
}

${bindingLines(declarations)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
${lines.join("\n")}
}
`,
  };
}

export interface AdamKernelOptions {
  n: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW: decay the parameter itself (by the uniform's `param_decay`) instead of adding L2 to the grad. */
  decoupled: boolean;
  /** Binds the loss scaler's state before the uniform block and skips the update when it found an inf. */
  guarded: boolean;
}

/** Bytes of the Adam uniform block: `negative_step_size, bias_correction2_sqrt, param_decay: f32, first: u32`. */
export const ADAM_UNIFORM_BYTES = 16;

/**
 * The Adam uniform block for a parameter's `step`-th update (1-based). The bias corrections are
 * computed in float64 as torch computes them in Python, then rounded once to f32.
 */
export function adamUniform(
  options: { lr: number; beta1: number; beta2: number; weightDecay: number; decoupled: boolean },
  step: number,
): ArrayBuffer {
  const { lr, beta1, beta2, weightDecay, decoupled } = options;
  const biasCorrection1 = 1 - beta1 ** step;
  const biasCorrection2 = 1 - beta2 ** step;
  const block = new ArrayBuffer(ADAM_UNIFORM_BYTES);
  const view = new DataView(block);
  view.setFloat32(0, -(lr / biasCorrection1), true);
  view.setFloat32(4, Math.sqrt(biasCorrection2), true);
  view.setFloat32(8, decoupled ? 1 - lr * weightDecay : 1, true);
  view.setUint32(12, step === 1 ? 1 : 0, true);
  return block;
}

/**
 * torch.optim.Adam / AdamW for one parameter. Bindings: param, grad, exp_avg, exp_avg_sq (all but grad
 * read_write), then the scaler state only when guarded, then the uniform block. On a parameter's first
 * update the moments are taken as zero without being read, so the state needs no separate zero-fill
 * dispatch. A skipped first update writes zero moments, which the next update reads and turns into the
 * same moments as a first update would; its bias correction, though, counts the skipped update.
 */
export function adamKernel(options: AdamKernelOptions): OptimizerKernel {
  const { n, beta1, beta2, eps, weightDecay, decoupled, guarded } = options;
  const grid = gridFor(n);
  const skip = guarded ? skipWhenFoundInf(["exp_avg[i] = 0.0;", "exp_avg_sq[i] = 0.0;"]) + "\n" : "";
  let decay = "";
  if (decoupled) decay = "  p = p * step.param_decay;";
  else if (weightDecay !== 0) decay = `  g = g + ${f32(weightDecay)} * p;`;
  const declarations = [
    "var<storage, read_write> param: array<f32>;",
    "var<storage, read> grad: array<f32>;",
    "var<storage, read_write> exp_avg: array<f32>;",
    "var<storage, read_write> exp_avg_sq: array<f32>;",
  ];
  if (guarded) declarations.push(GUARD_DECLARATION);
  declarations.push("var<uniform> step: Step;");
  return {
    key: kernelKey("adam", { n, beta1, beta2, eps, weightDecay, decoupled, guarded }),
    workgroups: grid.workgroups,
    wgsl: () => `
struct Step {
  negative_step_size: f32,
  bias_correction2_sqrt: f32,
  param_decay: f32,
  first: u32,
}

${bindingLines(declarations)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
${skip}  var p = param[i];
  var g = grad[i];
${decay}
  var m = 0.0;
  var v = 0.0;
  if (step.first == 0u) {
    m = exp_avg[i];
    v = exp_avg_sq[i];
  }
  m = m * ${f32(beta1)} + ${f32(1 - beta1)} * g;
  v = v * ${f32(beta2)} + ${f32(1 - beta2)} * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  let denom = sqrt(v) / step.bias_correction2_sqrt + ${f32(eps)};
  param[i] = p + step.negative_step_size * m / denom;
}
`,
  };
}
