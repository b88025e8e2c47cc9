/**
 * Fused optimizer updates: one invocation per parameter element reads the gradient and the state, and
 * writes the new state and parameter in the same pass. Hyperparameters that stay fixed for a run are
 * baked in as constants; the learning rate and the step-dependent scalars arrive in the uniform block
 * so the pipeline is compiled once per parameter size, not once per step.
 *
 * The arithmetic follows torch.optim's single-tensor implementations operation by operation (same
 * operand order, scalars rounded to f32 as torch rounds them), so results agree to f32 roundoff.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { f32, gridFor, WORKGROUP_SIZE } from "./common.ts";

export interface OptimizerKernel extends Kernel {
  workgroups: [number, number];
}

export interface SgdKernelOptions {
  /** Parameter elements. */
  n: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
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
 * (read_write) only when momentum is non-zero; the uniform block last.
 */
export function sgdKernel(options: SgdKernelOptions): OptimizerKernel {
  const { n, momentum, dampening, nesterov, weightDecay } = options;
  const grid = gridFor(n);
  const hasMomentum = momentum !== 0;
  const lines: string[] = ["  var d_p = grad[i];"];
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
  return {
    key: `optim:sgd:${n}:${momentum}:${dampening}:${nesterov}:${weightDecay}`,
    workgroups: grid.workgroups,
    wgsl: () => `
struct Step {
  negative_lr: f32,
  first: u32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
${
      hasMomentum
        ? "@group(0) @binding(2) var<storage, read_write> momentum_buffer: array<f32>;\n" +
          "@group(0) @binding(3) var<uniform> step: Step;"
        : "@group(0) @binding(2) var<uniform> step: Step;"
    }

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
 * read_write), then the uniform block. On a parameter's first update the moments are taken as zero
 * without being read, so the state needs no separate zero-fill dispatch.
 */
export function adamKernel(options: AdamKernelOptions): OptimizerKernel {
  const { n, beta1, beta2, eps, weightDecay, decoupled } = options;
  const grid = gridFor(n);
  let decay = "";
  if (decoupled) decay = "  p = p * step.param_decay;";
  else if (weightDecay !== 0) decay = `  g = g + ${f32(weightDecay)} * p;`;
  return {
    key: `optim:adam:${n}:${beta1}:${beta2}:${eps}:${weightDecay}:${decoupled}`,
    workgroups: grid.workgroups,
    wgsl: () => `
struct Step {
  negative_step_size: f32,
  bias_correction2_sqrt: f32,
  param_decay: f32,
  first: u32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(3) var<storage, read_write> exp_avg_sq: array<f32>;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${n}u) { return; }
  var p = param[i];
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
