/** The multi-step LIF spiking neuron (SPEC §2) with a surrogate gradient, one kernel per direction. */
import { lifBackwardKernel, lifForwardKernel, type LifSpec } from "../../kernels/lif.ts";
import { type Surrogate, surrogateSpec } from "../../kernels/surrogates.ts";
import { dispatch } from "../gpu/kernels.ts";
import { currentTape, record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

export { type Surrogate, SURROGATE_NAMES, type SurrogateParameters } from "../../kernels/surrogates.ts";

/** LIF neuron dynamics and the surrogate gradient. */
export interface LifOptions {
  /** Time steps folded into the first dimension (time-major, row t*B + b). */
  T: number;
  /** Leak: u_t = tau * m_{t-1} + x_t. Default 0.5. */
  tau?: number;
  /** Firing threshold theta. Default 1.0. */
  threshold?: number;
  /** Surrogate for dH/dz in the backward (kernels/surrogates.ts). Default "dspike". */
  surrogate?: Surrogate;
  /** Dspike sharpness gamma. Default 2.5 (the defaults live in SURROGATES). */
  gamma?: number;
  /** Dspike region r: the surrogate is zero for |u - theta| > r. Default 1. */
  region?: number;
  /** Sigmoid / atan sharpness; defaults as SpikingJelly: 4.0 for sigmoid, 2.0 for atan. */
  alpha?: number;
}

/** The kernel spec of LIF neurons over `x`, after checking its layout. */
export function lifSpec(x: Tensor, options: LifOptions, smoothForward: boolean): LifSpec {
  const { T } = options;
  if (!Number.isInteger(T) || T < 1) throw new Error(`lif: T must be a positive integer, got ${T}`);
  if (x.dtype !== "f32") throw new Error(`lif: input ${x.name} is ${x.dtype}, expected f32`);
  if (x.shape.length < 1 || x.shape[0] % T !== 0) {
    throw new Error(
      `lif: input ${x.name} [${x.shape.join(", ")}] must be time-major (T*B, ...) with T=${T} dividing ` +
        "its first dimension",
    );
  }
  return {
    neurons: x.size / T,
    steps: T,
    tau: options.tau ?? 0.5,
    threshold: options.threshold ?? 1.0,
    surrogate: surrogateSpec(options.surrogate ?? "dspike", options),
    smoothForward,
  };
}

function lifWith(x: Tensor, options: LifOptions, smoothForward: boolean): Tensor {
  const spec = lifSpec(x, options, smoothForward);
  const spikes = Tensor.empty(x.shape, { name: `${x.name}_spikes` });
  // The membrane trace is only written when a backward will read it.
  const needsGrad = currentTape() !== undefined && x.requiresGrad;
  if (!needsGrad) {
    const forward = lifForwardKernel(spec, false);
    dispatch(forward, [x.buffer, spikes.buffer], forward.workgroups);
    return spikes;
  }
  const membrane = Tensor.empty(x.shape, { name: `${x.name}_membrane` });
  const forward = lifForwardKernel(spec, true);
  dispatch(forward, [x.buffer, spikes.buffer, membrane.buffer], forward.workgroups);
  return record(spikes, [x], (gradSpikes) => {
    const gradX = Tensor.empty(x.shape, { name: `${x.name}_grad` });
    const backward = lifBackwardKernel(spec);
    dispatch(backward, [membrane.buffer, gradSpikes.buffer, gradX.buffer], backward.workgroups);
    return [gradX];
  });
}

/**
 * Multi-step LIF over `x` (T*B, ...) time-major: returns the 0/1 spikes, same shape. Hard reset to 0,
 * not detached; the backward runs the SPEC §2 recursion through time with the chosen surrogate.
 */
export function lif(x: Tensor, options: LifOptions): Tensor {
  return lifWith(x, options, false);
}

/**
 * Test-only (not part of the public API): LIF whose forward fires s = sigmoid(alpha (u - theta))
 * instead of a step, so with `surrogate: "sigmoid"` its backward is the exact gradient of its forward
 * and can be checked against finite differences.
 */
export function lifSmoothForGradientCheck(x: Tensor, options: LifOptions): Tensor {
  return lifWith(x, { ...options, surrogate: "sigmoid" }, true);
}
