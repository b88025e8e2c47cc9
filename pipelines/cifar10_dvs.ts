/**
 * CIFAR10-DVS, spiking ResNet-18 with the event stem, T=10, 48x48 frames (SPEC §7-9). The paper gives
 * no optimiser settings for it; these follow its other event-data run (AdamW, DVS loss weights).
 */
import type { Preset } from "./preset.ts";

export const cifar10DvsResNet18: Preset = {
  description: "CIFAR10-DVS, spiking ResNet-18 + 2 modules, T=10 (paper: 83.19%)",
  config: {
    dataset: "cifar10-dvs",
    model: "resnet18",
    width: 64,
    T: 10,
    batchSize: 64,
    epochs: 200,
    lr: 1e-3,
    optimizer: "adamw",
    weightDecay: 0.02,
    schedule: "cosine",
    sbPlaces: [3, 3],
    sbKernels: [[7, 5, 3]],
    sbWidth: 256,
    alpha: 1,
    lambda: 1 / 3,
    augment: ["standard"],
    workers: 2,
    logEvery: 20,
  },
};
