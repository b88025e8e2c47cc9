/** ES-ImageNet event frames, spiking ResNet-18 with the 2-channel event stem, T=8 (SPEC §7). */
import { definePipeline, type Pipeline } from "../src/pipeline/pipeline.ts";
import { LARGE_DATA_LOSS, REFERENCE_TRAINING } from "./paper_settings.ts";

/** The paper's ES-ImageNet spiking ResNet-18 run. */
export const esImagenetResNet18: Pipeline = definePipeline({
  name: "es-imagenet-resnet18",
  description: "ES-ImageNet, spiking ResNet-18 + 2 modules, T=8 (paper: 44.76%)",
  config: {
    ...REFERENCE_TRAINING,
    ...LARGE_DATA_LOSS,
    dataset: "es-imagenet",
    model: "resnet18",
    T: 8,
    batchSize: 192,
    epochs: 50,
    lr: 4e-4,
    sbPlaces: [3, 3],
    augment: ["standard"],
    workers: 8,
    logEvery: 100,
  },
});
