/** Models by name, so the CLI and user scripts build them from a string. */
import type { ModelOptions, SpikingModel } from "./model.ts";
import { type ResNetArch, SpikingResNet } from "./spiking_resnet.ts";
import { PlainSpikingCnn } from "./plain_cnn.ts";

export type { ModelOptions, SpikingModel };

const BUILDERS: Record<string, (options: ModelOptions) => SpikingModel> = {
  resnet18: (o) => resnet("resnet18", o),
  resnet34: (o) => resnet("resnet34", o),
  resnet19: (o) => resnet("resnet19", o),
  plain: (o) => new PlainSpikingCnn(o),
};

function resnet(arch: ResNetArch, o: ModelOptions): SpikingResNet {
  return new SpikingResNet({ arch, ...o });
}

/** The built-in networks `createModel` builds. */
export const MODEL_NAMES: readonly string[] = Object.keys(BUILDERS);

/** A new built-in network by name (MODEL_NAMES). */
export function createModel(name: string, options: ModelOptions): SpikingModel {
  const build = BUILDERS[name];
  if (!build) throw new Error(`model: unknown name "${name}"; known: ${MODEL_NAMES.join(", ")}`);
  return build(options);
}
