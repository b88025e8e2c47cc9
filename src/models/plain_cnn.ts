/**
 * The plain spiking CNN of the SML paper's Fig. 2, where surrogate-gradient training degrades with
 * depth: conv3x3-BN-LIF layers 64 s1, 64 s2, 128 s2, then `depth` layers of 128 s1, adaptive average
 * pool 2x2 and a linear classifier. Surrogate modules attach after any layer (positions count layers).
 */
import { flatten } from "../ops/elementwise.ts";
import { adaptiveAvgPool2d } from "../ops/pool.ts";
import { meanOverTime } from "../ops/time.ts";
import { InitRng } from "../nn/init.ts";
import { BatchNorm, Conv2d, Lif, Linear } from "../nn/layers.ts";
import type { LifOptions } from "../ops/lif.ts";
import { Module, ModuleList } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { ModelOptions } from "./model.ts";
import {
  type Attached,
  type AttachmentTaps,
  attachSurrogates,
  foldTime,
  type ForwardResult,
  runUnits,
} from "./attachment.ts";
import type { SurrogateModule } from "./surrogate_module.ts";

/**
 * conv3x3 -> batch norm -> LIF, one layer of the plain network; conv, bn, lif named 0, 1, 2, as an
 * nn.Sequential would name them (state dict `layers.0.0.weight`).
 */
export class ConvBnLif extends Module {
  /** The convolution (no bias). */
  readonly conv: Conv2d;
  /** Its batch norm. */
  readonly bn: BatchNorm;
  /** Its LIF neurons. */
  readonly lif: Lif;

  /** A layer from `inChannels` to `outChannels` with the given stride and LIF options. */
  constructor(
    inChannels: number,
    outChannels: number,
    stride: number,
    rng: InitRng,
    lif: Omit<LifOptions, "T">,
  ) {
    super();
    this.conv = this.child(0, new Conv2d(inChannels, outChannels, 3, stride, 1, rng));
    this.bn = this.child(1, new BatchNorm(outChannels));
    this.lif = this.child(2, new Lif(lif));
  }

  /** One layer over T time steps folded into the batch. */
  forward(x: Tensor, T: number): Tensor {
    return this.lif.afterBatchNorm(this.bn, this.conv.forward(x), T);
  }
}

/**
 * The plain spiking CNN of the paper's Fig. 2: conv-BN-LIF layers, extra 128-channel layers for depth,
 * average pooling and a linear classifier.
 */
export class PlainSpikingCnn extends Module {
  /** Time steps. */
  T: number;
  /** The conv-BN-LIF layers. */
  readonly layers: ModuleList<ConvBnLif> = new ModuleList<ConvBnLif>();
  /** The classifier. */
  readonly linear: Linear;
  /** The surrogate modules, when configured. */
  readonly attached?: Attached;
  /** The options it was built with. */
  readonly config: Readonly<ModelOptions>;
  /** Run the surrogate modules in forward (training); false drops them (inference). */
  useSurrogates = true;

  /** Builds the network `options` describe, initialised from its seed. */
  constructor(options: ModelOptions) {
    super();
    this.config = { ...options };
    if (!Number.isInteger(options.T) || options.T < 1) {
      throw new Error(`plain cnn: T must be >= 1, got ${options.T}`);
    }
    this.T = options.T;
    const seed = options.seed ?? 0;
    const depth = options.depth ?? 0;
    if (!Number.isInteger(depth) || depth < 0) throw new Error(`plain cnn: depth must be >= 0, got ${depth}`);
    const [w1, w2, w3] = options.widths ?? [64, 64, 128];
    const plan: [number, number][] = [[w1, 1], [w2, 2], [w3, 2]];
    for (let i = 0; i < depth; i++) plan.push([w3, 1]);
    this.child("layers", this.layers);
    let channels = options.inChannels ?? 3;
    plan.forEach(([out, stride], i) => {
      this.layers.add(
        new ConvBnLif(channels, out, stride, new InitRng(seed, `layers.${i}.0.weight`), options.lif ?? {}),
      );
      channels = out;
    });
    this.linear = this.child(
      "linear",
      new Linear(4 * channels, options.numClasses, new InitRng(seed, "linear")),
    );
    if (options.modules) {
      const list = this.child("sb_layers", new ModuleList<SurrogateModule>());
      const widths = this.layers.items.map((layer) => layer.conv.outChannels);
      try {
        this.attached = attachSurrogates(list, options.modules, widths, options.numClasses, seed, "layer");
      } catch (error) {
        // The backbone's buffers exist already: free them before reporting the bad option.
        this.dispose();
        throw error;
      }
    }
  }

  /** Units modules can attach after (the layers). */
  get blockCount(): number {
    return this.layers.items.length;
  }

  /** The surrogate modules (none without them). */
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
    const x = foldTime(input, T, this.layers.items[0].conv.inChannels, "plain cnn");
    const units = this.layers.items.map((layer) => (h: Tensor) => layer.forward(h, T));
    const run = runUnits(units, x, this.useSurrogates ? this.attached : undefined, T, taps);
    const h = this.linear.forward(flatten(adaptiveAvgPool2d(run.output, 2)));
    return { logits: meanOverTime(h, T), moduleLogits: run.moduleLogits };
  }
}
