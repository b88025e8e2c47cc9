/**
 * A pipeline: a named run (the paper's presets in pipelines/ are ones) made of its configuration values
 * and its stages. Every stage is a function of the resolved configuration, so a script swaps one and keeps
 * the rest: `run(withStages(cifar10ResNet19, { model: (config, data) => myModel(data) }), { epochs: 1 })`.
 * Stages a pipeline leaves out are the ones its configuration describes (stages.ts).
 */
import type { ModelOptions, SpikingModel } from "../models/model.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import type { ScheduleOptions } from "../optim/schedule.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { RunConfig } from "./config.ts";
import type { Ranks, Sources } from "./sources.ts";
import type { LoopObserver } from "./train_loop.ts";
import type { LossStage } from "./train_step.ts";

/** What the model stage learns from the source: classes to predict, channels of an input frame. */
export interface DataShape {
  /** Classes of the training split. */
  numClasses: number;
  /** Channels of one input frame. */
  inChannels: number;
}

/**
 * A built model with what a checkpoint records of it: the name and options it was built from (a resumed
 * run checks that the options that fix parameter shapes agree).
 */
export interface BuiltModel {
  /** The network. */
  model: SpikingModel;
  /** Its name (a built-in's name, or one's own). */
  name: string;
  /** The options it was built from. */
  options: ModelOptions | Record<string, unknown>;
}

/** The swappable stages of a run, each built from the resolved configuration. */
export interface Stages {
  /**
   * Train and test batches: decode, augment or encode (event frames), batch. A data set of one's own:
   * `new DataLoader(dataset, { batchSize, seed, train: true })` is a BatchSource. In a data-parallel
   * run, `ranks` says which share of each epoch this process takes (DataLoaderOptions.shard).
   */
  source(config: RunConfig, ranks?: Ranks): Sources | Promise<Sources>;
  /** The network: a built-in by name, or one's own Module with surrogate modules at named points. */
  model(config: RunConfig, data: DataShape): SpikingModel | BuiltModel;
  /** The SML loss's weights, or one's own loss function. */
  loss(config: RunConfig): LossStage;
  /** The optimizer over the model's parameters. */
  optimizer(config: RunConfig, parameters: Tensor[]): Optimizer;
  /** The learning rate per epoch. */
  schedule(config: RunConfig): ScheduleOptions;
  /** Observers of the loop (progress, metrics, checkpoints written); the run folder keeps its own records. */
  observers(config: RunConfig): LoopObserver[];
}

/** A named run: configuration values and the stages it replaces. */
export interface Pipeline {
  /** The name `--preset` selects it by, recorded as the config's `preset`. */
  readonly name: string;
  /** One line, shown by --help. */
  readonly description: string;
  /** Values that replace the defaults (src/pipeline/config.ts); a run's own values replace these. */
  readonly config: Readonly<Partial<RunConfig>>;
  /** The stages this pipeline replaces; the rest are built from the configuration. */
  readonly stages: Readonly<Partial<Stages>>;
}

/** A pipeline from its parts (stages default to the ones the configuration describes). */
export function definePipeline(
  parts: { name: string; description: string; config?: Partial<RunConfig>; stages?: Partial<Stages> },
): Pipeline {
  return {
    name: parts.name,
    description: parts.description,
    config: parts.config ?? {},
    stages: parts.stages ?? {},
  };
}

/** `pipeline` with some stages replaced. */
export function withStages(pipeline: Pipeline, stages: Partial<Stages>): Pipeline {
  return { ...pipeline, stages: { ...pipeline.stages, ...stages } };
}

/** `pipeline` with some configuration values replaced. */
export function withConfig(pipeline: Pipeline, config: Partial<RunConfig>): Pipeline {
  return { ...pipeline, config: { ...pipeline.config, ...config } };
}

/** Pipelines by name, from a list (each name written once, in its pipeline). */
export function byName(pipelines: readonly Pipeline[]): Record<string, Pipeline> {
  const table: Record<string, Pipeline> = {};
  for (const pipeline of pipelines) {
    if (pipeline.name in table) throw new Error(`pipelines: the name ${pipeline.name} is used twice`);
    table[pipeline.name] = pipeline;
  }
  return table;
}
