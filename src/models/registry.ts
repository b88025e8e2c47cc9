/** Models by name, so the CLI and user scripts build them from a string. */
import type { LifOptions } from "../ops/lif.ts";
import { type ResNetArch, SpikingResNet } from "./spiking_resnet.ts";
import type { SurrogateConfig } from "./attachment.ts";
import { PlainSpikingCnn } from "./plain_cnn.ts";

export interface ModelOptions {
  numClasses: number;
  T: number;
  inChannels?: number;
  imagenetStem?: boolean;
  /** The SML surrogate modules to attach (none when absent). */
  modules?: SurrogateConfig;
  lif?: Omit<LifOptions, "T">;
  seed?: number;
  /** Extra 128-channel layers of the `plain` network (the paper's Fig. 2 depth). */
  depth?: number;
  /** Channel widths of the `plain` network's first three layers (default 64, 64, 128). */
  widths?: readonly number[];
  /** Stem width of a spiking ResNet; stages scale with it (default 64, the published network). */
  width?: number;
}

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

export const MODEL_NAMES: readonly string[] = Object.keys(BUILDERS);

export function createModel(name: string, options: ModelOptions): SpikingModel {
  const build = BUILDERS[name];
  if (!build) throw new Error(`model: unknown name "${name}"; known: ${MODEL_NAMES.join(", ")}`);
  return build(options);
}
