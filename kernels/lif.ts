/**
 * The multi-step LIF neuron (SPEC §2) as one kernel per direction: each invocation owns one neuron and
 * runs its whole time loop in registers. The forward saves the membrane before firing, u_t, for every
 * step (the spike s_t = H(u_t - theta) is recomputed from it), so the backward needs nothing else and
 * can walk t = T..1 reading one saved value and one incoming gradient per step. After a fused batch
 * norm, whose input the backward keeps anyway, the backward recomputes u_t instead (up to 16 steps).
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { channelRun, f32, gridFor, kernelKey, WORKGROUP_SIZE } from "./common.ts";
import { type SurrogateSpec, surrogateWGSL } from "./surrogates.ts";

export interface LifSpec {
  /** Neurons per time step: the tensor's size divided by T. */
  neurons: number;
  /** Time steps T; the tensor holds T consecutive blocks of `neurons` values (time-major). */
  steps: number;
  tau: number;
  threshold: number;
  /** The surrogate dH/dz used by the backward, with its parameters resolved. */
  surrogate: SurrogateSpec;
  /**
   * Test-only: fire s = sigmoid(alpha (u - theta)) instead of the Heaviside step, forward and backward,
   * so that with the sigmoid surrogate the backward is the exact gradient of the forward and can be
   * checked against finite differences. Requires the sigmoid surrogate.
   */
  smoothForward?: boolean;
}

export interface LifKernel extends Kernel {
  workgroups: [number, number];
}

/**
 * The part of `spec` a forward kernel reads: the surrogate only shapes the backward, unless the smoothed
 * forward fires through it.
 */
function forwardSpec({ neurons, steps, tau, threshold, surrogate, smoothForward }: LifSpec) {
  return { neurons, steps, tau, threshold, ...(smoothForward ? { surrogate, smoothForward } : {}) };
}

/** WGSL `fn fire(u: f32) -> f32`: the spike emitted for membrane u. */
function fireWGSL(spec: LifSpec): string {
  if (spec.smoothForward) {
    if (spec.surrogate.kind !== "sigmoid") {
      throw new Error(`lif: smoothForward needs the sigmoid surrogate, got ${spec.surrogate.kind}`);
    }
    return `
fn fire(u: f32) -> f32 {
  return 1.0 / (1.0 + exp(${f32(-spec.surrogate.alpha)} * (u - ${f32(spec.threshold)})));
}`;
  }
  return `
fn fire(u: f32) -> f32 {
  return select(0.0, 1.0, u >= ${f32(spec.threshold)});
}`;
}

/**
 * WGSL running one neuron (`neuron`) through every time step: `input` is its input at flat index `i`;
 * writes `spikes[i]` and, when `saveMembrane`, the membrane before firing `membrane[i]`.
 */
function neuronTimeLoop(spec: LifSpec, input: string, saveMembrane: boolean): string {
  return `  var m = 0.0;
  for (var t = 0u; t < ${spec.steps}u; t++) {
    let i = t * ${spec.neurons}u + neuron;
    let u = ${f32(spec.tau)} * m + ${input};
    let s = fire(u);
    spikes[i] = s;
${saveMembrane ? "    membrane[i] = u;" : ""}
    // Hard reset, not detached: the backward differentiates through (1 - s).
    m = u * (1.0 - s);
  }`;
}

/**
 * Forward: `x` (T*neurons) -> `spikes`, and when `saveMembrane` also `membrane` (u_t per step, for the
 * backward). Bindings: x, spikes[, membrane].
 */
export function lifForwardKernel(spec: LifSpec, saveMembrane: boolean): LifKernel {
  const grid = gridFor(spec.neurons);
  const n = spec.neurons;
  return {
    key: kernelKey("lif_forward", { spec: forwardSpec(spec), saveMembrane }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> spikes: array<f32>;
${saveMembrane ? "@group(0) @binding(2) var<storage, read_write> membrane: array<f32>;" : ""}
${fireWGSL(spec)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let neuron = gid.x + gid.y * ${grid.rowStride}u;
  if (neuron >= ${n}u) { return; }
${neuronTimeLoop(spec, "x[i]", saveMembrane)}
}
`,
  };
}

/** The batch norm a fused forward applies first: `x` is (T*B, channels, spatial), time-major. */
export interface NormalizedInput {
  channels: number;
  spatial: number;
  /** Add a residual of x's shape after normalising (a ResNet block's shortcut), before the neurons. */
  residual: boolean;
}

/**
 * The fused kernels' work split: each invocation runs `run` consecutive neurons of one channel (a
 * channel's scale and shift are loaded once per run).
 */
function channelRuns(spec: LifSpec, { channels, spatial }: NormalizedInput) {
  const n = spec.neurons;
  if (n % (channels * spatial) !== 0) {
    throw new Error(
      `lif: ${n} neurons per step are not whole samples of ${channels} channels x ${spatial} values`,
    );
  }
  const run = channelRun(spatial);
  const runs = n / run;
  const grid = gridFor(runs);
  // WGSL opening the loop over the invocation's neurons, with its channel's scale and shift loaded.
  const runLoop = `  let r = gid.x + gid.y * ${grid.rowStride}u;
  if (r >= ${runs}u) { return; }
  let base = r * ${run}u;
  let c = (base / ${spatial}u) % ${channels}u;
  let scale = stats[${2 * channels}u + c];
  let shift = stats[${3 * channels}u + c];
  for (var neuron = base; neuron < base + ${run}u; neuron++) {`;
  return { grid, runLoop };
}

/** WGSL of the neurons' input at flat index `i`: the normalised x, plus the residual when there is one. */
function normalizedValue(i: string, residual: boolean): string {
  return residual ? `(x[${i}] * scale + shift + residual[${i}])` : `(x[${i}] * scale + shift)`;
}

/**
 * Batch norm's affine step (and a residual add) fused into the LIF forward: the neurons' input is
 * `x * scale[c] + shift[c] (+ residual)`, with scale and shift rows 2 and 3 of the batch norm's
 * per-channel `stats` (4 x channels), computed exactly as the separate kernels would, so spikes and
 * membrane match the unfused chain bit for bit while the normalised tensor is never stored. Bindings: x,
 * stats[, residual], spikes[, membrane].
 */
export function lifNormalizedForwardKernel(
  spec: LifSpec,
  input: NormalizedInput,
  saveMembrane: boolean,
): LifKernel {
  const { residual } = input;
  const { grid, runLoop } = channelRuns(spec, input);
  const bindings = ["x", "stats", ...(residual ? ["residual"] : []), "spikes"];
  if (saveMembrane) bindings.push("membrane");
  const declarations = bindings.map((name, i) => {
    const access = i < (residual ? 3 : 2) ? "read" : "read_write";
    return `@group(0) @binding(${i}) var<storage, ${access}> ${name}: array<f32>;`;
  });
  return {
    key: kernelKey("lif_bn_forward", { spec: forwardSpec(spec), input, saveMembrane }),
    workgroups: grid.workgroups,
    wgsl: () => `
${declarations.join("\n")}
${fireWGSL(spec)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${runLoop}
${
      neuronTimeLoop(
        spec,
        normalizedValue("i", residual),
        saveMembrane,
      )
    }
  }
}
`,
  };
}

/**
 * Most time steps for which `lifNormalizedBackwardKernel` recomputes the membrane instead of reading a
 * saved one: its time loops are unrolled, one register per step.
 */
export const MAX_RECOMPUTED_STEPS = 16;

/**
 * The backward of the fused batch norm + LIF forward without a saved membrane: each neuron first runs the
 * forward again from `x`, the batch norm's `stats` (and the residual), with the forward's expressions, to
 * get u_t for every step, then walks back through time as `lifBackwardKernel` does. That spares the
 * (T*B, C, H, W) membrane a training step would otherwise keep from the forward to the backward, for two
 * reads per value that are cheap next to the convolutions. Bindings: x, stats[, residual], grad_spikes,
 * grad_x.
 */
export function lifNormalizedBackwardKernel(spec: LifSpec, input: NormalizedInput): LifKernel {
  const n = spec.neurons;
  const T = spec.steps;
  const { residual } = input;
  if (T > MAX_RECOMPUTED_STEPS) {
    throw new Error(`lif: the recomputing backward unrolls at most ${MAX_RECOMPUTED_STEPS} steps, got ${T}`);
  }
  const { grid, runLoop } = channelRuns(spec, input);
  const inputs = ["x", "stats", ...(residual ? ["residual"] : []), "grad_spikes"];
  const declarations = [...inputs, "grad_x"].map((name, i) => {
    const access = i < inputs.length ? "read" : "read_write";
    return `@group(0) @binding(${i}) var<storage, ${access}> ${name}: array<f32>;`;
  });
  const forward: string[] = [];
  const backward: string[] = [];
  for (let t = 0; t < T; t++) {
    forward.push(`    let i${t} = ${t * n}u + neuron;
    let u${t} = ${f32(spec.tau)} * m + ${normalizedValue(`i${t}`, residual)};
    m = u${t} * (1.0 - fire(u${t}));`);
  }
  for (let t = T - 1; t >= 0; t--) {
    backward.push(`    {
      let sg = surrogate_grad(u${t} - ${f32(spec.threshold)});
      let grad_u = grad_spikes[i${t}] * sg + grad_m * ((1.0 - fire(u${t})) - u${t} * sg);
      grad_x[i${t}] = grad_u;
      grad_m = ${f32(spec.tau)} * grad_u;
    }`);
  }
  return {
    key: kernelKey("lif_bn_backward", { spec, input }),
    workgroups: grid.workgroups,
    wgsl: () => `
${declarations.join("\n")}
${fireWGSL(spec)}
${surrogateWGSL(spec.surrogate)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${runLoop}
    var m = 0.0;
${forward.join("\n")}
    var grad_m = 0.0;
${backward.join("\n")}
  }
}
`,
  };
}

/**
 * Backward through time (SPEC §2): from the saved `membrane` and `grad_spikes` = dL/ds_t, writes
 * `grad_x` = dL/dx_t. Bindings: membrane, grad_spikes, grad_x.
 */
export function lifBackwardKernel(spec: LifSpec): LifKernel {
  const grid = gridFor(spec.neurons);
  const n = spec.neurons;
  return {
    key: kernelKey("lif_backward", { spec }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> membrane: array<f32>;
@group(0) @binding(1) var<storage, read> grad_spikes: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_x: array<f32>;
${fireWGSL(spec)}
${surrogateWGSL(spec.surrogate)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let neuron = gid.x + gid.y * ${grid.rowStride}u;
  if (neuron >= ${n}u) { return; }
  // dL/dm_t, flowing from step t+1 back into step t; zero after the last step.
  var grad_m = 0.0;
  for (var k = 0u; k < ${spec.steps}u; k++) {
    let i = (${spec.steps - 1}u - k) * ${n}u + neuron;
    let u = membrane[i];
    let s = fire(u);
    let sg = surrogate_grad(u - ${f32(spec.threshold)});
    let grad_u = grad_spikes[i] * sg + grad_m * ((1.0 - s) - u * sg);
    grad_x[i] = grad_u;
    grad_m = ${f32(spec.tau)} * grad_u;
  }
}
`,
  };
}
