/** The layers spiking ResNets and surrogate modules are built from, with SPEC §3 initialisation. */
import {
  batchNorm,
  batchNormLeakyRelu,
  type BatchNormOptions,
  type BatchNormState,
} from "../ops/batch_norm.ts";
import { batchNormLif } from "../ops/batch_norm_lif.ts";
import { conv2d } from "../ops/conv2d.ts";
import { linear } from "../ops/linear.ts";
import { lif, type LifOptions } from "../ops/lif.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { recordActivity } from "./activity.ts";
import { constant, type InitRng, kaimingNormalFanOut, uniformFanIn } from "./init.ts";
import { type Counter, Module } from "./module.ts";

/** Convolution without bias (none anywhere in the backbone or surrogate modules). */
export class Conv2d extends Module {
  /** Weight (out, in, k, k). */
  readonly weight: Tensor;

  /** A convolution from `inChannels` to `outChannels`, Kaiming-normal (fan-out) initialised from `rng`. */
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride: number,
    readonly padding: number,
    rng: InitRng,
  ) {
    super();
    const shape = [outChannels, inChannels, kernelSize, kernelSize];
    this.weight = this.parameter("weight", kaimingNormalFanOut(rng, shape), shape);
  }

  /** Convolves `x` (N, C, H, W). */
  forward(x: Tensor): Tensor {
    const y = conv2d(x, this.weight, { stride: this.stride, padding: this.padding });
    recordActivity(
      "synapse",
      this,
      x,
      this.outChannels * this.inChannels * this.kernelSize ** 2 * y.shape[2] * y.shape[3],
    );
    return y;
  }
}

/** BatchNorm2d or BatchNorm1d (the op handles both layouts). */
export class BatchNorm extends Module {
  /** Scale (C), initialised to 1. */
  readonly weight: Tensor;
  /** Shift (C), initialised to 0. */
  readonly bias: Tensor;
  /** Running mean (C), used in evaluation. */
  readonly runningMean: Tensor;
  /** Running variance (C), used in evaluation. */
  readonly runningVar: Tensor;
  /** Training batches seen (torch's num_batches_tracked). */
  readonly batchesTracked: Counter;

  /** Batch norm over `channels` channels. */
  constructor(readonly channels: number, readonly momentum = 0.1, readonly eps = 1e-5) {
    super();
    this.weight = this.parameter("weight", constant(channels, 1), [channels]);
    this.bias = this.parameter("bias", constant(channels, 0), [channels]);
    this.runningMean = this.buffer("running_mean", constant(channels, 0), [channels]);
    this.runningVar = this.buffer("running_var", constant(channels, 1), [channels]);
    this.batchesTracked = this.counter("num_batches_tracked");
  }

  /** Normalises `x` (N, C) or (N, C, H, W): batch statistics in training, running ones in evaluation. */
  forward(x: Tensor): Tensor {
    if (this.training) this.batchesTracked.value++;
    return batchNorm(x, this.#state(), this.#options());
  }

  /** `leakyRelu(this(x), slope)`, the activation fused into the normalisation (see batchNormLeakyRelu). */
  forwardLeakyRelu(x: Tensor, slope: number): Tensor {
    if (this.training) this.batchesTracked.value++;
    return batchNormLeakyRelu(x, this.#state(), this.#options(), slope);
  }

  /** `lif(this(x) + residual)`, the normalisation fused into the neurons (see batchNormLif). */
  forwardIntoLif(x: Tensor, lif: LifOptions, residual?: Tensor): Tensor {
    if (this.training) this.batchesTracked.value++;
    return batchNormLif(x, this.#state(), this.#options(), lif, residual);
  }

  #state(): BatchNormState {
    const { weight, bias, runningMean, runningVar } = this;
    return { weight, bias, runningMean, runningVar };
  }

  #options(): BatchNormOptions {
    return { training: this.training, momentum: this.momentum, eps: this.eps };
  }
}

/** A fully connected layer with bias, torch.nn.Linear's initialisation. */
export class Linear extends Module {
  /** Weight (out, in). */
  readonly weight: Tensor;
  /** Bias (out). */
  readonly bias: Tensor;

  /** A layer from `inFeatures` to `outFeatures`, initialised from `rng`. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: InitRng) {
    super();
    this.weight = this.parameter("weight", uniformFanIn(rng, inFeatures * outFeatures, inFeatures), [
      outFeatures,
      inFeatures,
    ]);
    this.bias = this.parameter("bias", uniformFanIn(rng, outFeatures, inFeatures), [outFeatures]);
  }

  /** x W^T + b for `x` (N, in). */
  forward(x: Tensor): Tensor {
    recordActivity("synapse", this, x, this.inFeatures * this.outFeatures);
    return linear(x, this.weight, this.bias);
  }
}

/** Multi-step LIF neurons (SPEC §2); no parameters. T comes from the model at each call. */
export class Lif extends Module {
  /** LIF neurons with the given options (T comes from the model at each call). */
  constructor(readonly options: Omit<LifOptions, "T"> = {}) {
    super();
  }

  /** Spikes of `x` over T time steps folded into the first dimension. */
  forward(x: Tensor, T: number): Tensor {
    const spikes = lif(x, { ...this.options, T });
    recordActivity("lif", this, spikes);
    return spikes;
  }

  /** `forward(bn.forward(x) + residual)` (residual optional) in one fused pass: see batchNormLif. */
  afterBatchNorm(bn: BatchNorm, x: Tensor, T: number, residual?: Tensor): Tensor {
    const spikes = bn.forwardIntoLif(x, { ...this.options, T }, residual);
    recordActivity("lif", this, spikes);
    return spikes;
  }
}
