/** Models by name, so the CLI and user scripts build them from a string. */
import type { LifOptions } from "../ops/lif.ts";
import { type ResNetArch, SpikingResNet } from "./spiking_resnet.ts";
import type { SurrogateConfig } from "./attachment.ts";
import { PlainSpikingCnn } from "./plain_cnn.ts";

/** Options of every model in the registry; each reads the ones it knows. */
export interface ModelOptions {
  /** Classes of the classifier. */
  numClasses: number;
  /** Time steps. */
  T: number;
  /** Input channels: 3 for images (default), 1 for MNIST, 2 for event frames. */
  inChannels?: number;
  /** ResNet: the ImageNet stem (conv7x7 stride 2); default: more than 200 classes. */
  imagenetStem?: boolean;
  /** The SML surrogate modules to attach (none when absent). */
  modules?: SurrogateConfig;
  /** LIF neuron options (T comes from the model). */
  lif?: Omit<LifOptions, "T">;
  /** Seed of the parameter initialisation. */
  seed?: number;
  /** Extra 128-channel layers of the `plain` network (the paper's Fig. 2 depth). */
  depth?: number;
  /** Channel widths of the `plain` network's first three layers (default 64, 64, 128). */
  widths?: readonly number[];
  /** Stem width of a spiking ResNet; stages scale with it (default 64, the published network). */
  width?: number;
}

/** Any model `createModel` builds. */
export type SpikingModel = SpikingResNet | PlainSpikingCnn;

const BUILDERS: Record<string, (options: ModelOptions) => SpikingModel> = {
  resnet18: (o) => resnet("resnet18", o),
  resnet34: (o) => resnet("resnet34", o),
  resnet19: (o) => resnet("resnet19", o),
  plain: (o) => new PlainSpikingCnn(o),
};

function resnet(arch: ResNetArch, o: ModelOptions): SpikingResNet {
  return new SpikingResNet({ arch, ...o });
}

/** Every name `createModel` accepts. */
export const MODEL_NAMES: readonly string[] = Object.keys(BUILDERS);

/** Builds the model registered as `name` ("resnet18", "resnet34", "resnet19", "plain"). */
export function createModel(name: string, options: ModelOptions): SpikingModel {
  const build = BUILDERS[name];
  if (!build) throw new Error(`model: unknown name "${name}"; known: ${MODEL_NAMES.join(", ")}`);
  return build(options);
}
