/** ES-ImageNet event frames, spiking ResNet-18 with the 2-channel event stem, T=8 (SPEC §7). */
import type { Preset } from "./preset.ts";

export const esImagenetResNet18: Preset = {
  description: "ES-ImageNet, spiking ResNet-18 + 2 modules, T=8 (paper: 44.76%)",
  config: {
    dataset: "es-imagenet",
    model: "resnet18",
    width: 64,
    T: 8,
    batchSize: 192,
    epochs: 50,
    lr: 4e-4,
    optimizer: "adamw",
    weightDecay: 0.02,
    schedule: "cosine",
    sbPlaces: [3, 3],
    sbKernels: [[7, 5, 3]],
    sbWidth: 256,
    alpha: 1,
    lambda: 1 / 3,
    augment: ["standard"],
    workers: 8,
    logEvery: 100,
  },
};
