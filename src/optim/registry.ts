/** Optimizers by name, so configs, the CLI and user scripts build them from a string; the names live here. */
import type { Tensor } from "../tensor/tensor.ts";
import { Adam, AdamW } from "./adam.ts";
import type { Optimizer, OptimizerOptions } from "./optimizer.ts";
import { SGD } from "./sgd.ts";

const BUILDERS = {
  sgd: (params: Tensor[], options: OptimizerOptions): Optimizer => new SGD(params, options),
  adam: (params: Tensor[], options: OptimizerOptions): Optimizer => new Adam(params, options),
  adamw: (params: Tensor[], options: OptimizerOptions): Optimizer => new AdamW(params, options),
};

/** The name an optimizer is built by (and recorded under in checkpoints). */
export type OptimizerKind = keyof typeof BUILDERS;

export const OPTIMIZER_NAMES: readonly OptimizerKind[] = Object.keys(BUILDERS) as OptimizerKind[];

export function createOptimizer(kind: OptimizerKind, params: Tensor[], options: OptimizerOptions): Optimizer {
  const build = BUILDERS[kind];
  if (!build) {
    throw new Error(`optimizer: unknown kind "${kind}"; expected one of ${OPTIMIZER_NAMES.join(", ")}`);
  }
  return build(params, options);
}
