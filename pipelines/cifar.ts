/** CIFAR-10/100 with the reference settings (SPEC §7): AdamW 0.01, wd 0.02, cosine over 300 epochs. */
import type { RunConfig } from "../src/pipeline/config.ts";
import { definePipeline, type Pipeline } from "../src/pipeline/pipeline.ts";
import { REFERENCE_TRAINING } from "./paper_settings.ts";

const reference: Partial<RunConfig> = {
  ...REFERENCE_TRAINING,
  T: 2,
  batchSize: 256,
  epochs: 300,
  lr: 0.01,
  sbPlaces: [3, 3],
  temperature: 3,
  alpha: 0.5,
  lambda: 0.9,
  augment: ["standard", "cutout"],
  workers: 2,
  logEvery: 50,
};

/** The paper's CIFAR-10 spiking ResNet-18 run. */
export const cifar10ResNet18: Pipeline = definePipeline({
  name: "cifar10-resnet18",
  description: "CIFAR-10, spiking ResNet-18 + 2 modules, T=2 (paper: 94.58%)",
  config: { ...reference, dataset: "cifar10", model: "resnet18" },
});

/** The paper's CIFAR-10 spiking ResNet-19 run. */
export const cifar10ResNet19: Pipeline = definePipeline({
  name: "cifar10-resnet19",
  description: "CIFAR-10, spiking ResNet-19 + 2 modules, T=2 (paper: 95.28%)",
  config: { ...reference, dataset: "cifar10", model: "resnet19" },
});

/** The paper's CIFAR-100 spiking ResNet-18 run. */
export const cifar100ResNet18: Pipeline = definePipeline({
  name: "cifar100-resnet18",
  description: "CIFAR-100, spiking ResNet-18 + 2 modules, T=2 (paper: 76.44%)",
  config: { ...reference, dataset: "cifar100", model: "resnet18" },
});

/** The paper's CIFAR-100 spiking ResNet-19 run. */
export const cifar100ResNet19: Pipeline = definePipeline({
  name: "cifar100-resnet19",
  description: "CIFAR-100, spiking ResNet-19 + 2 modules, T=2 (paper: 78.38%)",
  config: { ...reference, dataset: "cifar100", model: "resnet19" },
});
