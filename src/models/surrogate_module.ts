/**
 * The SML surrogate module (SPEC §5): an ANN branch on the firing rates of a block's output spikes,
 * trained with the SNN so its more accurate gradient flows back into the backbone.
 */
import { flatten } from "../ops/elementwise.ts";
import { adaptiveAvgPool2d } from "../ops/pool.ts";
import { meanOverTime } from "../ops/time.ts";
import { withoutActivity } from "../nn/activity.ts";
import { InitRng } from "../nn/init.ts";
import { BatchNorm, Conv2d, Linear } from "../nn/layers.ts";
import { Module, ModuleList } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";

export type ModuleKernel = 7 | 5 | 3 | 1;

const CONV_GEOMETRY: Record<ModuleKernel, { stride: number; padding: number }> = {
  7: { stride: 2, padding: 3 },
  5: { stride: 2, padding: 2 },
  3: { stride: 1, padding: 1 },
  1: { stride: 1, padding: 0 },
};

export function isModuleKernel(k: number): k is ModuleKernel {
  return k === 7 || k === 5 || k === 3 || k === 1;
}

/** conv -> BN2d -> LeakyReLU, named `0` and `1` like the reference's nn.Sequential. */
export class ConvUnit extends Module {
  /** The convolution. */
  readonly conv: Conv2d;
  /** Its batch norm. */
  readonly bn: BatchNorm;

  /** A unit from `inChannels` to `outChannels` with a `kernel` x `kernel` convolution. */
  constructor(inChannels: number, outChannels: number, kernel: ModuleKernel, rng: InitRng) {
    super();
    const { stride, padding } = CONV_GEOMETRY[kernel];
    this.conv = this.child(0, new Conv2d(inChannels, outChannels, kernel, stride, padding, rng));
    this.bn = this.child(1, new BatchNorm(outChannels));
  }

  /** conv -> BN -> LeakyReLU. */
  forward(x: Tensor): Tensor {
    return this.bn.forwardLeakyRelu(this.conv.forward(x), 0.01);
  }
}

/** AdaptiveAvgPool(2,2) -> flatten -> Linear(4k, 512) -> BN1d -> LeakyReLU -> Linear(512, K). */
export class Prediction extends Module {
  /** Linear(4k, 512). */
  readonly hidden: Linear;
  /** BatchNorm1d(512). */
  readonly bn: BatchNorm;
  /** Linear(512, K). */
  readonly output: Linear;

  /** The head of a module of width `width` for `numClasses` classes. */
  constructor(width: number, numClasses: number, seed: number, prefix: string) {
    super();
    // Indices follow the reference's nn.Sequential, whose pool, flatten and activation hold no state.
    this.hidden = this.child(2, new Linear(4 * width, 512, new InitRng(seed, `${prefix}prediction.2`)));
    this.bn = this.child(3, new BatchNorm(512));
    this.output = this.child(5, new Linear(512, numClasses, new InitRng(seed, `${prefix}prediction.5`)));
  }

  /** Logits (B, K) from the last convolution's output. */
  forward(x: Tensor): Tensor {
    const pooled = flatten(adaptiveAvgPool2d(x, 2));
    return this.output.forward(this.bn.forwardLeakyRelu(this.hidden.forward(pooled), 0.01));
  }
}

export interface SurrogateModuleOptions {
  inChannels: number;
  numClasses: number;
  /** Channel width k of the module's convolutions (default 256). */
  width?: number;
  /** Kernel sizes of the convolutions, in order (default [7, 5, 3]). */
  kernels?: readonly number[];
  /** Detach the backbone at the attachment point (no gradient from the module into the SNN). */
  local?: boolean;
  seed: number;
  /** State-dict prefix, e.g. "sb_layers.0.", which also seeds the initialisation. */
  prefix: string;
}

/**
 * An SML surrogate module: an ANN (convolutions, then a prediction head) that reads a block's spikes averaged
 * over time and predicts the classes.
 */
export class SurrogateModule extends Module {
  /** The convolution units, in order. */
  readonly convs: ModuleList<ConvUnit> = new ModuleList<ConvUnit>();
  /** The prediction head. */
  readonly prediction: Prediction;
  /** True when the backbone is detached at the attachment point. */
  readonly local: boolean;

  /** A module as `options` describe it, initialised from its seed and prefix. */
  constructor(options: SurrogateModuleOptions) {
    super();
    const width = options.width ?? 256;
    const kernels = options.kernels ?? [7, 5, 3];
    if (kernels.length === 0) throw new Error("surrogate module: the kernel list is empty");
    for (const k of kernels) {
      if (!isModuleKernel(k)) throw new Error(`surrogate module: kernel ${k} is not one of 7, 5, 3, 1`);
    }
    this.local = options.local ?? false;
    this.child("convs", this.convs);
    const rng = (c: number) => new InitRng(options.seed, `${options.prefix}convs.${c}.0.weight`);
    let channels = options.inChannels;
    if (channels > width) {
      this.convs.add(new ConvUnit(channels, width, 1, rng(0)));
      channels = width;
    }
    for (const k of kernels as ModuleKernel[]) {
      this.convs.add(new ConvUnit(channels, width, k, rng(this.convs.items.length)));
      channels = width;
    }
    this.prediction = this.child(
      "prediction",
      new Prediction(width, options.numClasses, options.seed, options.prefix),
    );
  }

  /** `spikes` is the block output (T*B, C, H, W); returns logits (B, K). */
  forward(spikes: Tensor, T: number): Tensor {
    const input = this.local ? spikes.view(spikes.shape, `${spikes.name}_detached`) : spikes;
    return withoutActivity(() => {
      let x = meanOverTime(input, T);
      for (const unit of this.convs.items) x = unit.forward(x);
      return this.prediction.forward(x);
    });
  }
}
