/**
 * What the training loop, evaluation and the gradient probe need of a model (the built-in networks and a
 * user's own Module alike), and the options the built-in networks are made from.
 */
import type { LifOptions } from "../ops/lif.ts";
import type { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { AttachmentTaps, ForwardResult, SurrogateConfig } from "./attachment.ts";
import type { SurrogateModule } from "./surrogate_module.ts";

/** What a built-in network (createModel) is made from. */
export interface ModelOptions {
  /** Classes the classifier (and each surrogate module) predicts. */
  numClasses: number;
  /** Time steps of the forward pass. */
  T: number;
  /** Channels of an input frame (default 3). */
  inChannels?: number;
  /**
   * A spiking ResNet's ImageNet stem (7x7 stride-2 conv, no max pool, stride-2 first stage) instead of the
   * CIFAR 3x3 one; default: more than 200 classes.
   */
  imagenetStem?: boolean;
  /** The SML surrogate modules to attach (none when absent). */
  modules?: SurrogateConfig;
  /** The LIF neurons' options (threshold, decay, surrogate gradient). */
  lif?: Omit<LifOptions, "T">;
  /** Seed of the weight initialisation. */
  seed?: number;
  /** Extra 128-channel layers of the `plain` network (the paper's Fig. 2 depth). */
  depth?: number;
  /** Channel widths of the `plain` network's first three layers (default 64, 64, 128). */
  widths?: readonly number[];
  /** Stem width of a spiking ResNet; stages scale with it (default 64, the published network). */
  width?: number;
}

/**
 * A spiking network trained with SML: a Module whose forward folds the input over T time steps and returns
 * the SNN's logits and one set per attached surrogate module.
 */
export interface SpikingModel extends Module {
  /** Time steps of the forward pass; may change between training stages (staged T). */
  T: number;
  /** When false, the forward skips the surrogate modules (plain surrogate-gradient training, inference). */
  useSurrogates: boolean;
  /** The attached surrogate modules, in attachment order. */
  readonly surrogates: readonly SurrogateModule[];
  /** Units (0-based) the modules attach after: where the gradient probe looks. */
  readonly attachments: readonly number[];
  /** Units the backbone has (blocks, layers), for the probe's default positions. */
  readonly blockCount: number;
  /** `taps`: the gradient probe's hooks at unit outputs (a model without units may ignore them). */
  forward(input: Tensor, taps?: AttachmentTaps): ForwardResult;
}
