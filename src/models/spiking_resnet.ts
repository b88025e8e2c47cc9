/**
 * Spiking ResNet-18/34/19 (SPEC §4) with optional SML surrogate modules after chosen blocks (SPEC §5).
 * Activations are time-major folded: (T*B, C, H, W).
 */
import { flatten } from "../ops/elementwise.ts";
import { adaptiveAvgPool2d } from "../ops/pool.ts";
import { meanOverTime } from "../ops/time.ts";
import type { LifOptions } from "../ops/lif.ts";
import { InitRng } from "../nn/init.ts";
import { BatchNorm, Conv2d, Lif, Linear } from "../nn/layers.ts";
import { Module, ModuleList } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { ModelOptions } from "./model.ts";
import type { SurrogateModule } from "./surrogate_module.ts";
import {
  type Attached,
  type AttachmentTaps,
  attachSurrogates,
  foldTime,
  type ForwardResult,
  runUnits,
  type SurrogateConfig,
} from "./attachment.ts";

export type { AttachmentTaps, ForwardResult, SurrogateConfig };

/** The spiking ResNets the registry builds. */
export type ResNetArch = "resnet18" | "resnet34" | "resnet19";

interface Stage {
  channels: number;
  blocks: number;
  stride: number;
}

const STAGES: Record<ResNetArch, Stage[]> = {
  resnet18: [
    { channels: 64, blocks: 2, stride: 1 },
    { channels: 128, blocks: 2, stride: 2 },
    { channels: 256, blocks: 2, stride: 2 },
    { channels: 512, blocks: 2, stride: 2 },
  ],
  resnet34: [
    { channels: 64, blocks: 3, stride: 1 },
    { channels: 128, blocks: 4, stride: 2 },
    { channels: 256, blocks: 6, stride: 2 },
    { channels: 512, blocks: 3, stride: 2 },
  ],
  resnet19: [
    { channels: 128, blocks: 3, stride: 1 },
    { channels: 256, blocks: 3, stride: 2 },
    { channels: 512, blocks: 2, stride: 2 },
  ],
};

/** How a SpikingResNet is built: the model options that apply to a ResNet, and which one. */
export interface SpikingResNetConfig extends Omit<ModelOptions, "depth" | "widths"> {
  /** Architecture. */
  arch: ResNetArch;
}

/** A spiking ResNet basic block: conv-BN-LIF, conv-BN, the shortcut added, LIF. */
export class BasicBlock extends Module {
  /** First 3x3 convolution. */
  readonly conv1: Conv2d;
  /** Its batch norm. */
  readonly bn1: BatchNorm;
  /** Second 3x3 convolution. */
  readonly conv2: Conv2d;
  /** Its batch norm. */
  readonly bn2: BatchNorm;
  /** 1x1 convolution and batch norm on the shortcut, where the shape changes. */
  readonly downsample?: ModuleList<Conv2d | BatchNorm>;
  /** Neurons after the first convolution. */
  readonly lif1: Lif;
  /** Neurons after the residual sum. */
  readonly lif2: Lif;

  /** A block from `inChannels` to `outChannels` with the given stride. */
  constructor(
    inChannels: number,
    outChannels: number,
    stride: number,
    seed: number,
    prefix: string,
    lif: Omit<LifOptions, "T">,
  ) {
    super();
    const rng = (name: string) => new InitRng(seed, `${prefix}${name}.weight`);
    this.conv1 = this.child("conv1", new Conv2d(inChannels, outChannels, 3, stride, 1, rng("conv1")));
    this.bn1 = this.child("bn1", new BatchNorm(outChannels));
    this.conv2 = this.child("conv2", new Conv2d(outChannels, outChannels, 3, 1, 1, rng("conv2")));
    this.bn2 = this.child("bn2", new BatchNorm(outChannels));
    if (stride !== 1 || inChannels !== outChannels) {
      this.downsample = this.child("downsample", new ModuleList<Conv2d | BatchNorm>());
      this.downsample.add(new Conv2d(inChannels, outChannels, 1, stride, 0, rng("downsample.0")));
      this.downsample.add(new BatchNorm(outChannels));
    }
    this.lif1 = this.child("lif1", new Lif(lif));
    this.lif2 = this.child("lif2", new Lif(lif));
  }

  /** The block over T time steps folded into the batch. */
  forward(x: Tensor, T: number): Tensor {
    const h = this.lif1.afterBatchNorm(this.bn1, this.conv1.forward(x), T);
    const main = this.conv2.forward(h);
    let shortcut = x;
    if (this.downsample) {
      const [conv, bn] = this.downsample.items as [Conv2d, BatchNorm];
      shortcut = bn.forward(conv.forward(x));
    }
    return this.lif2.afterBatchNorm(this.bn2, main, T, shortcut);
  }
}

/**
 * Spiking ResNet-18/34/19 with optional SML surrogate modules, state-dict names as in the reference
 * implementation.
 */
export class SpikingResNet extends Module {
  /** The configuration it was built with. */
  readonly config: Readonly<SpikingResNetConfig>;
  /** Time steps. */
  T: number;
  /** Stem convolution. */
  readonly conv1: Conv2d;
  /** Stem batch norm. */
  readonly bn1: BatchNorm;
  /** The basic blocks, in order. */
  readonly blocks: BasicBlock[] = [];
  /** The classifier (the first of two for ResNet-19). */
  readonly linear: Linear;
  /** ResNet-19's second classifier layer. */
  readonly linear2?: Linear;
  /** The surrogate modules, when configured. */
  readonly attached?: Attached;
  /** The stem's LIF, after bn1. */
  readonly lif1: Lif;
  /** ResNet-19's LIF between linear and linear2. */
  readonly linearLif?: Lif;
  /** Run the surrogate modules in forward (training); false drops them (inference). */
  useSurrogates = true;

  /** Builds the network `config` describes, initialised from its seed. */
  constructor(config: SpikingResNetConfig) {
    super();
    this.config = { ...config };
    const seed = config.seed ?? 0;
    if (!Number.isInteger(config.T) || config.T < 1) {
      throw new Error(`spiking resnet: T must be >= 1, got ${config.T}`);
    }
    this.T = config.T;
    if (!STAGES[config.arch]) {
      throw new Error(
        `spiking resnet: unknown architecture ${config.arch}; known: ${Object.keys(STAGES).join(", ")}`,
      );
    }
    const width = config.width ?? 64;
    if (!Number.isInteger(width) || width < 1) {
      throw new Error(`spiking resnet: width must be >= 1, got ${width}`);
    }
    const stages = STAGES[config.arch].map((s) => ({ ...s, channels: (s.channels * width) / 64 }));
    const imagenet = config.imagenetStem ?? config.numClasses > 200;
    const inChannels = config.inChannels ?? 3;
    const rng = (name: string) => new InitRng(seed, name);
    this.conv1 = this.child(
      "conv1",
      imagenet
        ? new Conv2d(inChannels, width, 7, 2, 3, rng("conv1.weight"))
        : new Conv2d(inChannels, width, 3, 1, 1, rng("conv1.weight")),
    );
    this.bn1 = this.child("bn1", new BatchNorm(width));
    this.lif1 = this.child("lif1", new Lif(config.lif));
    let channels = width;
    stages.forEach((stage, s) => {
      const layer = this.child(`layer${s + 1}`, new ModuleList<BasicBlock>());
      for (let i = 0; i < stage.blocks; i++) {
        const stride = i === 0 ? (s === 0 && imagenet ? 2 : stage.stride) : 1;
        const prefix = `layer${s + 1}.${i}.`;
        this.blocks.push(
          layer.add(new BasicBlock(channels, stage.channels, stride, seed, prefix, config.lif ?? {})),
        );
        channels = stage.channels;
      }
    });
    if (config.arch === "resnet19") {
      this.linear = this.child("linear", new Linear(channels, channels / 2, rng("linear")));
      this.linearLif = this.child("linear_lif", new Lif(config.lif));
      this.linear2 = this.child("linear2", new Linear(channels / 2, config.numClasses, rng("linear2")));
    } else {
      this.linear = this.child("linear", new Linear(channels, config.numClasses, rng("linear")));
    }
    if (config.modules) {
      const list = this.child("sb_layers", new ModuleList<SurrogateModule>());
      const channels = this.blocks.map((block) => block.conv2.outChannels);
      try {
        this.attached = attachSurrogates(list, config.modules, channels, config.numClasses, seed, "block");
      } catch (error) {
        // The backbone's buffers exist already: free them before reporting the bad option.
        this.dispose();
        throw error;
      }
    }
  }

  /** Total number of BasicBlocks (the limit for surrogate positions). */
  get blockCount(): number {
    return this.blocks.length;
  }

  /**
   * `input` is a static batch (B, C, H, W), repeated over T, or an event batch (T, B, C, H, W).
   * Returns SNN logits and, when surrogates are in use, each module's logits.
   */
  get surrogates(): SurrogateModule[] {
    return this.attached?.modules ?? [];
  }

  /** 0-based unit indices the modules attach after. */
  get attachments(): number[] {
    return this.attached?.units ?? [];
  }

  /** SNN logits averaged over time and, with modules in use, each module's logits. */
  forward(input: Tensor, taps?: AttachmentTaps): ForwardResult {
    const T = this.T;
    let x = foldTime(input, T, this.conv1.inChannels, this.config.arch);
    x = this.lif1.afterBatchNorm(this.bn1, this.conv1.forward(x), T);
    const units = this.blocks.map((block) => (h: Tensor) => block.forward(h, T));
    const run = runUnits(units, x, this.useSurrogates ? this.attached : undefined, T, taps);
    let h = flatten(adaptiveAvgPool2d(run.output, 1));
    h = this.linear.forward(h);
    if (this.linearLif && this.linear2) h = this.linear2.forward(this.linearLif.forward(h, T));
    return { logits: meanOverTime(h, T), moduleLogits: run.moduleLogits };
  }
}
