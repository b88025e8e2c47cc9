/**
 * The stages a configuration describes, used wherever a pipeline does not replace one: the configured
 * data set, a built-in model by name with its surrogate modules, the SML loss, the optimizer by name and
 * the cosine or constant schedule.
 */
import type { ModelOptions } from "../models/model.ts";
import { createModel } from "../models/registry.ts";
import { createOptimizer } from "../optim/registry.ts";
import type { RunConfig } from "./config.ts";
import type { BuiltModel, DataShape, Stages } from "./pipeline.ts";
import { openSources } from "./sources.ts";

/** The model options a configuration asks for, given the data's classes and channels. */
export function modelOptionsFor(config: RunConfig, numClasses: number, inChannels: number): ModelOptions {
  const options: ModelOptions = {
    numClasses,
    T: config.T,
    inChannels,
    seed: config.seed,
    lif: { surrogate: config.surrogate },
  };
  if (config.model === "plain") {
    options.depth = config.depth;
    options.widths = [config.width, config.width, 2 * config.width];
  } else {
    options.width = config.width;
  }
  if (!config.noSb) {
    options.modules = {
      positions: config.sbPlaces,
      kernels: config.sbKernels,
      width: config.sbWidth,
      local: config.sbLocal,
    };
  }
  return options;
}

/** Builds the named model; surrogate positions past the last block are reported against --sb-places. */
function builtInModel(config: RunConfig, data: DataShape): BuiltModel {
  const options = modelOptionsFor(config, data.numClasses, data.inChannels);
  try {
    return { model: createModel(config.model, options), name: config.model, options };
  } catch (error) {
    const message = (error as Error).message;
    if (!message.startsWith("surrogate modules: ")) throw error;
    throw new Error(
      `--sb-places: got ${config.sbPlaces.join(",")} for --model ${config.model}: ` +
        message.slice("surrogate modules: ".length),
    );
  }
}

/** Every stage as the configuration describes it; a pipeline's own stages replace these. */
export const CONFIGURED_STAGES: Stages = {
  source: openSources,
  model: builtInModel,
  loss: (config) => ({ temperature: config.temperature, alpha: config.alpha, lambda: config.lambda }),
  optimizer: (config, parameters) =>
    createOptimizer(config.optimizer, parameters, {
      lr: config.lr,
      momentum: config.momentum,
      weightDecay: config.weightDecay,
    }),
  schedule: (config) => ({
    kind: config.schedule,
    baseLr: config.lr,
    epochs: config.cosTMax || config.epochs,
    warmupEpochs: config.warmupEpochs,
  }),
  observers: () => [],
};
