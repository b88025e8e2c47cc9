/**
 * Which training augmentations a data set applies, and the one vocabulary of their names: `--augment`,
 * the pipelines' presets and DatasetOptions.augment all say them with the names below.
 */

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

/** One augmentation name. */
export type AugmentName = "none" | "standard" | "autoaugment" | "cutout" | "reference";

/** What each name turns on. A list of names turns on the union; "none" stands alone. */
const NAMED = {
  none: {},
  /** The data set's usual ones. */
  standard: { crop: true, flip: true },
  autoaugment: { autoAugment: true },
  cutout: { cutout: true },
  /** The reference CIFAR recipe. */
  reference: { crop: true, flip: true, autoAugment: true, cutout: true },
} as const satisfies Record<AugmentName, AugmentFlags>;

/** Every augmentation name, in the order --help lists them. */
export const AUGMENT_NAMES: readonly AugmentName[] = Object.keys(NAMED) as AugmentName[];

/** A name, a list of names (their union), or explicit flags. */
export type AugmentSetting = AugmentName | readonly AugmentName[] | AugmentFlags;

/** What a list of names must be, when `names` is not a valid one (for the caller's error); else null. */
export function augmentNamesExpected(names: readonly string[]): string | null {
  if (!names.every((name) => Object.hasOwn(NAMED, name))) return `one of ${AUGMENT_NAMES.join(", ")}`;
  if (names.includes("none") && names.length > 1) return "none alone, or a list without none";
  return null;
}

/** The flags a setting turns on; no setting means "standard". */
export function augmentFlags(setting: AugmentSetting | undefined): Required<AugmentFlags> {
  const flags = { crop: false, flip: false, autoAugment: false, cutout: false };
  if (setting === undefined) return { ...flags, ...NAMED.standard };
  if (typeof setting === "string" || Array.isArray(setting)) {
    const names: readonly string[] = typeof setting === "string" ? [setting] : setting;
    const expected = augmentNamesExpected(names);
    if (expected !== null) throw new Error(`augment: got ${JSON.stringify(setting)}, expected ${expected}`);
    return Object.assign(flags, ...names.map((name) => NAMED[name as AugmentName]));
  }
  if (typeof setting !== "object") throw new Error(`augment: unknown setting ${JSON.stringify(setting)}`);
  const explicit = setting as AugmentFlags;
  return {
    crop: explicit.crop ?? false,
    flip: explicit.flip ?? false,
    autoAugment: explicit.autoAugment ?? false,
    cutout: explicit.cutout ?? false,
  };
}
