/**
 * The surrogate gradients of the LIF neuron, one entry each: the name the API and `--surrogate` use, its
 * parameters with their defaults, and the WGSL of its derivative (used by the backward in place of dH/dz).
 * Adding a surrogate is adding an entry here.
 */
import { f32 } from "./common.ts";

/** One surrogate: its parameters' defaults and the WGSL of its derivative. */
export interface SurrogateDefinition<P extends Record<string, number>> {
  /** Every parameter, with its default. */
  defaults: P;
  /** WGSL `fn surrogate_grad(z: f32) -> f32`, with z = u - theta. */
  wgsl: (params: P) => string;
}

/** Each surrogate's parameters. */
export interface SurrogateParameters {
  /** Sharpness gamma and the region r outside which the gradient is 0. */
  dspike: { gamma: number; region: number };
  /** Slope alpha. */
  sigmoid: { alpha: number };
  /** Slope alpha. */
  atan: { alpha: number };
}

/** Every surrogate gradient, by the name the API and `--surrogate` use. */
export const SURROGATES: { [K in keyof SurrogateParameters]: SurrogateDefinition<SurrogateParameters[K]> } = {
  /** Dspike (Li et al. 2021): gamma (1 - tanh(gamma z)^2) / (2 tanh(gamma r)) for |z| <= r, else 0. */
  dspike: {
    defaults: { gamma: 2.5, region: 1 },
    // Written as 4e / (1 + e)^2 with e = exp(-2 gamma |z|): the same value without tanh, whose exp-based
    // forms overflow for large z.
    wgsl: ({ gamma, region }) => `
fn surrogate_grad(z: f32) -> f32 {
  let e = exp(${f32(-2 * gamma)} * abs(z));
  let sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e));
  return select(0.0, ${f32(gamma / (2 * Math.tanh(gamma * region)))} * sech2, abs(z) <= ${f32(region)});
}`,
  },
  /** SpikingJelly's sigmoid surrogate: the derivative of sigmoid(alpha z). */
  sigmoid: {
    defaults: { alpha: 4.0 },
    wgsl: ({ alpha }) => `
fn surrogate_grad(z: f32) -> f32 {
  let sig = 1.0 / (1.0 + exp(${f32(-alpha)} * z));
  return ${f32(alpha)} * sig * (1.0 - sig);
}`,
  },
  /** SpikingJelly's atan surrogate: the derivative of atan(pi/2 alpha z) / pi + 1/2. */
  atan: {
    defaults: { alpha: 2.0 },
    wgsl: ({ alpha }) => `
fn surrogate_grad(z: f32) -> f32 {
  let w = ${f32((Math.PI / 2) * alpha)} * z;
  return ${f32(alpha / 2)} / (1.0 + w * w);
}`,
  },
};

/** A surrogate's name. */
export type Surrogate = keyof SurrogateParameters;

/** Every surrogate's name, in table order. */
export const SURROGATE_NAMES: readonly Surrogate[] = Object.keys(SURROGATES) as Surrogate[];

/** A surrogate with every parameter resolved. */
export type SurrogateSpec = {
  [K in Surrogate]: { kind: K } & (typeof SURROGATES)[K]["defaults"];
}[Surrogate];

/** A surrogate's parameter names (all surrogates together). */
export type SurrogateParameter = {
  [K in Surrogate]: keyof (typeof SURROGATES)[K]["defaults"];
}[Surrogate];

/** `kind`'s spec: each parameter from `given`, else its default. */
export function surrogateSpec(
  kind: Surrogate,
  given: Partial<Record<SurrogateParameter, number>>,
): SurrogateSpec {
  if (!Object.hasOwn(SURROGATES, kind)) {
    throw new Error(`lif: unknown surrogate "${kind}"; expected one of ${SURROGATE_NAMES.join(", ")}`);
  }
  const spec: Record<string, number | string> = { kind };
  for (const [name, value] of Object.entries(SURROGATES[kind].defaults)) {
    spec[name] = given[name as SurrogateParameter] ?? value;
  }
  return spec as SurrogateSpec;
}

/** WGSL `fn surrogate_grad(z: f32) -> f32` of `spec`. */
export function surrogateWGSL(spec: SurrogateSpec): string {
  const wgsl = SURROGATES[spec.kind].wgsl as (params: SurrogateSpec) => string;
  return wgsl(spec);
}
