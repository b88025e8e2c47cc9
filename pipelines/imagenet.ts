/**
 * ImageNet, spiking ResNet-34 with modules after blocks 3, 7 and 13 (SPEC §5, §7): the first stage of the
 * staged-T schedule (T=2, lr 4e-3, batch 512, 160 epochs); later stages resume with --T 4 / --T 6.
 */
import { definePipeline, type Pipeline } from "../src/pipeline/pipeline.ts";
import { LARGE_DATA_LOSS, REFERENCE_TRAINING } from "./paper_settings.ts";

/** The paper's ImageNet spiking ResNet-34 run, first stage of staged T. */
export const imagenetResNet34: Pipeline = definePipeline({
  name: "imagenet-resnet34",
  description: "ImageNet, spiking ResNet-34 + 3 modules, stage 1 of staged T (T=2; paper: 65.77%)",
  config: {
    ...REFERENCE_TRAINING,
    ...LARGE_DATA_LOSS,
    dataset: "imagenet",
    model: "resnet34",
    T: 2,
    batchSize: 512,
    epochs: 160,
    lr: 4e-3,
    sbPlaces: [3, 4, 6],
    augment: ["standard"],
    workers: 8,
    logEvery: 100,
  },
});
