/** Every preset by the name `--preset` takes. */
import { cifar100ResNet18, cifar100ResNet19, cifar10ResNet18, cifar10ResNet19 } from "./cifar.ts";
import { cifar10DvsResNet18 } from "./cifar10_dvs.ts";
import { esImagenetResNet18 } from "./es_imagenet.ts";
import { imagenetResNet34 } from "./imagenet.ts";
import { mnist, mnistPlain } from "./mnist.ts";
import type { Preset } from "./preset.ts";

export type { Preset };

/** Every preset by name (`--preset`), e.g. "mnist" (the default) and "cifar10-resnet19". */
export const PRESETS: Record<string, Preset> = {
  "mnist": mnist,
  "mnist-plain": mnistPlain,
  "cifar10-resnet18": cifar10ResNet18,
  "cifar10-resnet19": cifar10ResNet19,
  "cifar100-resnet18": cifar100ResNet18,
  "cifar100-resnet19": cifar100ResNet19,
  "imagenet-resnet34": imagenetResNet34,
  "es-imagenet-resnet18": esImagenetResNet18,
  "cifar10-dvs-resnet18": cifar10DvsResNet18,
};
