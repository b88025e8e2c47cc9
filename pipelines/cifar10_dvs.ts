/**
 * CIFAR10-DVS, spiking ResNet-18 with the event stem, T=10, 48x48 frames (SPEC §7-9). The paper gives
 * no optimiser settings for it; these follow its other event-data run (AdamW, DVS loss weights).
 */
import { definePipeline, type Pipeline } from "../src/pipeline/pipeline.ts";
import { LARGE_DATA_LOSS, REFERENCE_TRAINING } from "./paper_settings.ts";

/** The paper's CIFAR10-DVS spiking ResNet-18 run. */
export const cifar10DvsResNet18: Pipeline = definePipeline({
  name: "cifar10-dvs-resnet18",
  description: "CIFAR10-DVS, spiking ResNet-18 + 2 modules, T=10 (paper: 83.19%)",
  config: {
    ...REFERENCE_TRAINING,
    ...LARGE_DATA_LOSS,
    dataset: "cifar10-dvs",
    model: "resnet18",
    T: 10,
    batchSize: 64,
    epochs: 200,
    lr: 1e-3,
    sbPlaces: [3, 3],
    augment: ["standard"],
    workers: 2,
    logEvery: 20,
  },
});
