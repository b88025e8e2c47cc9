/**
 * Surrogate modules attached after named layers of one's own model: give each point's name and the
 * channels of its output, add the list as the model's `sb_layers` child (the reference's state-dict
 * names), and call `after(name, x, T, logits)` where the forward passes that point.
 */
import { ModuleList } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { SurrogateModule } from "./surrogate_module.ts";

/** The modules' shape, as for the built-in networks' surrogate modules. */
export interface NamedAttachmentOptions {
  /** Classes each module predicts. */
  numClasses: number;
  /** Channel width k of the modules' convolutions (default 256). */
  width?: number;
  /** Kernel sizes of each module's convolutions (default [7, 5, 3]). */
  kernels?: readonly number[];
  /** Detach the backbone at the attachment points. */
  local?: boolean;
  /** Seed of the modules' initialisation (each module draws from its own state-dict prefix). */
  seed?: number;
}

/** Surrogate modules after named layers, in a ModuleList whose items are named 0, 1, ... */
export class NamedAttachments extends ModuleList<SurrogateModule> {
  /** The points modules attach after, in attachment order. */
  readonly points: readonly string[];

  /** `points`: layer name -> channels of that layer's output, in forward order. */
  constructor(points: Record<string, number>, options: NamedAttachmentOptions) {
    super();
    this.points = Object.keys(points);
    this.points.forEach((name, j) =>
      this.add(
        new SurrogateModule({
          inChannels: points[name],
          numClasses: options.numClasses,
          width: options.width,
          kernels: options.kernels,
          local: options.local,
          seed: options.seed ?? 0,
          prefix: `sb_layers.${j}.`,
        }),
      )
    );
  }

  /**
   * Where the forward has passed layer `name` with output `x` ((T*B, C, H, W) spikes): appends the
   * logits of the module attached there, if any, to `logits`.
   */
  after(name: string, x: Tensor, T: number, logits: Tensor[]): void {
    const index = this.points.indexOf(name);
    if (index >= 0) logits.push(this.items[index].forward(x, T));
  }
}
