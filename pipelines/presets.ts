/** Every ready pipeline, by the name `--preset` takes (each name is written once, in its pipeline). */
import { byName, type Pipeline } from "../src/pipeline/pipeline.ts";
import { cifar100ResNet18, cifar100ResNet19, cifar10ResNet18, cifar10ResNet19 } from "./cifar.ts";
import { cifar10DvsResNet18 } from "./cifar10_dvs.ts";
import { esImagenetResNet18 } from "./es_imagenet.ts";
import { imagenetResNet34 } from "./imagenet.ts";
import { mnist, mnistPlain } from "./mnist.ts";

export {
  cifar100ResNet18,
  cifar100ResNet19,
  cifar10DvsResNet18,
  cifar10ResNet18,
  cifar10ResNet19,
  esImagenetResNet18,
  imagenetResNet34,
  mnist,
  mnistPlain,
};

/** The ready pipelines by name. */
export const PIPELINES: Record<string, Pipeline> = byName([
  mnist,
  mnistPlain,
  cifar10ResNet18,
  cifar10ResNet19,
  cifar100ResNet18,
  cifar100ResNet19,
  imagenetResNet34,
  esImagenetResNet18,
  cifar10DvsResNet18,
]);
