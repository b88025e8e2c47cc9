/** Optimizers by name, so configs, the CLI and user scripts build them from a string; the names live here. */
import type { Tensor } from "../tensor/tensor.ts";
import { Adam, AdamW } from "./adam.ts";
import type { Optimizer, OptimizerOptions } from "./optimizer.ts";
import { SGD } from "./sgd.ts";

/** The optimizers `createOptimizer` builds, by the name checkpoints record them under. */
export const OPTIMIZER_NAMES = ["sgd", "adam", "adamw"] as const;

/** The name an optimizer is built by. */
export type OptimizerKind = typeof OPTIMIZER_NAMES[number];

const BUILDERS: Record<OptimizerKind, (params: Tensor[], options: OptimizerOptions) => Optimizer> = {
  sgd: (params, options) => new SGD(params, options),
  adam: (params, options) => new Adam(params, options),
  adamw: (params, options) => new AdamW(params, options),
};

/** A new optimizer of `kind` over `params`; each kind reads the options it knows. */
export function createOptimizer(kind: OptimizerKind, params: Tensor[], options: OptimizerOptions): Optimizer {
  const build = Object.hasOwn(BUILDERS, kind) ? BUILDERS[kind] : undefined;
  if (!build) {
    throw new Error(`optimizer: unknown kind "${kind}"; expected one of ${OPTIMIZER_NAMES.join(", ")}`);
  }
  return build(params, options);
}
