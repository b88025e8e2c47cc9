/** Which training augmentations a data set applies. */

/** Which training augmentations a data set applies; "none" turns them all off. */
export interface AugmentFlags {
  /** Random crop with zero padding (CIFAR, MNIST), RandomResizedCrop (ImageNet), random roll (DVS). */
  crop?: boolean;
  /** Random horizontal flip (not for MNIST). */
  flip?: boolean;
  /** AutoAugment, CIFAR-10 policy (CIFAR only). */
  autoAugment?: boolean;
  /** Cutout, one 16x16 hole after normalisation (CIFAR only). */
  cutout?: boolean;
}

/**
 * "none": no augmentation. "standard": crop + flip (the data set's usual ones).
 * "reference": standard + AutoAugment + Cutout, the reference CIFAR recipe. Or explicit flags.
 */
export type AugmentSetting = "none" | "standard" | "reference" | AugmentFlags;

export function augmentFlags(setting: AugmentSetting | undefined): Required<AugmentFlags> {
  if (setting === undefined || setting === "standard") {
    return { crop: true, flip: true, autoAugment: false, cutout: false };
  }
  if (setting === "none") return { crop: false, flip: false, autoAugment: false, cutout: false };
  if (setting === "reference") return { crop: true, flip: true, autoAugment: true, cutout: true };
  if (typeof setting !== "object") throw new Error(`augment: unknown setting ${JSON.stringify(setting)}`);
  return {
    crop: setting.crop ?? false,
    flip: setting.flip ?? false,
    autoAugment: setting.autoAugment ?? false,
    cutout: setting.cutout ?? false,
  };
}
