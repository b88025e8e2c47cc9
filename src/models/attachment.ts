/**
 * What the spiking ResNets and the plain CNN share: folding the input over time, attaching surrogate
 * modules after chosen units (blocks or layers), and running the units with those modules.
 */
import { reshape } from "../ops/elementwise.ts";
import { expandTime } from "../ops/time.ts";
import type { ModuleList } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { SurrogateModule } from "./surrogate_module.ts";

/** Where SML surrogate modules attach and how they are built. */
export interface SurrogateConfig {
  /** Incremental unit positions: [3, 3] attaches after units 3 and 6. */
  positions: readonly number[];
  /** One kernel list per module, or one list shared by all (default [7, 5, 3]). */
  kernels?: readonly (readonly number[])[];
  /** Channel width k of the modules' convolutions (default 256). */
  width?: number;
  /** Detach the backbone at each attachment point: no gradient from a module into the SNN. */
  local?: boolean;
}

/** Output of a forward pass. */
export interface ForwardResult {
  /** SNN logits averaged over time, (B, K). */
  logits: Tensor;
  /** One (B, K) per surrogate module, in attachment order; empty when modules are dropped. */
  moduleLogits: Tensor[];
}

/**
 * Hooks the gradient probe uses at chosen unit outputs: each returns the tensor to continue with (an
 * identity op whose backward reports the gradient flowing through it).
 */
export interface AttachmentTaps {
  /** 0-based unit indices to tap; `index` below is a position in this list. */
  units: readonly number[];
  /** Where the SNN continues to the next unit. */
  snnPath(index: number, unitOutput: Tensor): Tensor;
  /** Where a surrogate module attached at that unit reads it. */
  modulePath(index: number, unitOutput: Tensor): Tensor;
}

/** (B, C, H, W) is repeated over T; (T, B, C, H, W) events are folded to (T*B, C, H, W). */
export function foldTime(input: Tensor, T: number, inChannels: number, model: string): Tensor {
  let x: Tensor;
  if (input.shape.length === 5) {
    if (input.shape[0] !== T) {
      throw new Error(`${model}: the event batch has ${input.shape[0]} time steps, the model runs T=${T}`);
    }
    const [, B, C, H, W] = input.shape;
    x = reshape(input, [T * B, C, H, W]);
  } else if (input.shape.length === 4) {
    x = expandTime(input, T);
  } else {
    throw new Error(
      `${model}: input must be (B, C, H, W) or (T, B, C, H, W), got [${input.shape.join(", ")}]`,
    );
  }
  if (x.shape[1] !== inChannels) {
    throw new Error(`${model}: input has ${x.shape[1]} channels, the stem expects ${inChannels}`);
  }
  return x;
}

/** The modules a model carries and the units they attach after. */
export interface Attached {
  /** The surrogate modules, in attachment order. */
  modules: SurrogateModule[];
  /** 0-based unit index after which each module attaches. */
  units: number[];
}

/** Builds the modules of `config` into `list` (named sb_layers.{j}); errors on positions past the end. */
export function attachSurrogates(
  list: ModuleList<SurrogateModule>,
  config: SurrogateConfig,
  unitChannels: readonly number[],
  numClasses: number,
  seed: number,
  unitName: string,
): Attached {
  const { positions } = config;
  const kernelLists = config.kernels ?? [[7, 5, 3]];
  if (kernelLists.length !== 1 && kernelLists.length !== positions.length) {
    throw new Error(
      `surrogate modules: ${kernelLists.length} kernel lists for ${positions.length} positions; give one list or one per module`,
    );
  }
  const attached: Attached = { modules: [], units: [] };
  let unit = 0;
  positions.forEach((step, j) => {
    if (!Number.isInteger(step) || step < 1) {
      throw new Error(`surrogate modules: position ${step} is not a positive whole number of ${unitName}s`);
    }
    unit += step;
    if (unit > unitChannels.length) {
      throw new Error(
        `surrogate modules: positions [${positions.join(", ")}] reach ${unitName} ${unit}, past the last ` +
          `${unitName} (the model has ${unitChannels.length})`,
      );
    }
    attached.modules.push(list.add(
      new SurrogateModule({
        inChannels: unitChannels[unit - 1],
        numClasses,
        width: config.width,
        kernels: kernelLists.length === 1 ? kernelLists[0] : kernelLists[j],
        local: config.local,
        seed,
        prefix: `sb_layers.${j}.`,
      }),
    ));
    attached.units.push(unit - 1);
  });
  return attached;
}

/**
 * Runs `units` in order from `x`; after each attached unit, its module sees the unit's output.
 * Returns the last unit's output and the modules' logits.
 */
export function runUnits(
  units: readonly ((x: Tensor) => Tensor)[],
  x: Tensor,
  attached: Attached | undefined,
  T: number,
  taps?: AttachmentTaps,
): { output: Tensor; moduleLogits: Tensor[] } {
  const moduleLogits: Tensor[] = [];
  units.forEach((unit, u) => {
    x = unit(x);
    const m = attached ? attached.units.indexOf(u) : -1;
    const p = taps ? taps.units.indexOf(u) : -1;
    const moduleInput = m >= 0 && p >= 0 ? taps!.modulePath(p, x) : x;
    if (p >= 0) x = taps!.snnPath(p, x);
    if (m >= 0) moduleLogits.push(attached!.modules[m].forward(moduleInput, T));
  });
  return { output: x, moduleLogits };
}
