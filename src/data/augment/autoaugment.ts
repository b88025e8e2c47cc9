/** AutoAugment, CIFAR-10 policy (torchvision.transforms.AutoAugment(AutoAugmentPolicy.CIFAR10)). */
import type { Rng } from "../rng.ts";
import type { Image } from "./image.ts";
import {
  adjustBrightness,
  adjustColor,
  adjustContrast,
  adjustSharpness,
  autocontrast,
  equalize,
  invert,
  posterize,
  solarize,
} from "./pil_colour.ts";
import { rotate, shearX, shearY, translate } from "./pil_affine.ts";

export type AutoAugmentOp =
  | "ShearX"
  | "ShearY"
  | "TranslateX"
  | "TranslateY"
  | "Rotate"
  | "Brightness"
  | "Color"
  | "Contrast"
  | "Sharpness"
  | "Posterize"
  | "Solarize"
  | "AutoContrast"
  | "Equalize"
  | "Invert";

type SubPolicy = readonly [
  readonly [AutoAugmentOp, number, number | null],
  readonly [AutoAugmentOp, number, number | null],
];

/** The 25 sub-policies: (op, probability, magnitude bin) pairs. */
export const CIFAR10_POLICY: readonly SubPolicy[] = [
  [["Invert", 0.1, null], ["Contrast", 0.2, 6]],
  [["Rotate", 0.7, 2], ["TranslateX", 0.3, 9]],
  [["Sharpness", 0.8, 1], ["Sharpness", 0.9, 3]],
  [["ShearY", 0.5, 8], ["TranslateY", 0.7, 9]],
  [["AutoContrast", 0.5, null], ["Equalize", 0.9, null]],
  [["ShearY", 0.2, 7], ["Posterize", 0.3, 7]],
  [["Color", 0.4, 3], ["Brightness", 0.6, 7]],
  [["Sharpness", 0.3, 9], ["Brightness", 0.7, 9]],
  [["Equalize", 0.6, null], ["Equalize", 0.5, null]],
  [["Contrast", 0.6, 7], ["Sharpness", 0.6, 5]],
  [["Color", 0.7, 7], ["TranslateX", 0.5, 8]],
  [["Equalize", 0.3, null], ["AutoContrast", 0.4, null]],
  [["TranslateY", 0.4, 3], ["Sharpness", 0.2, 6]],
  [["Brightness", 0.9, 6], ["Color", 0.2, 8]],
  [["Solarize", 0.5, 2], ["Invert", 0.0, null]],
  [["Equalize", 0.2, null], ["AutoContrast", 0.6, null]],
  [["Equalize", 0.2, null], ["Equalize", 0.6, null]],
  [["Color", 0.9, 9], ["Equalize", 0.6, null]],
  [["AutoContrast", 0.8, null], ["Solarize", 0.2, 8]],
  [["Brightness", 0.1, 3], ["Color", 0.7, 0]],
  [["Solarize", 0.4, 5], ["AutoContrast", 0.9, null]],
  [["TranslateY", 0.9, 9], ["TranslateY", 0.7, 9]],
  [["AutoContrast", 0.9, null], ["Solarize", 0.8, 3]],
  [["Equalize", 0.8, null], ["Invert", 0.1, null]],
  [["TranslateY", 0.7, 9], ["AutoContrast", 0.9, null]],
];

/** torch.linspace(start, end, steps)[index] in float32, as torch's CPU kernel computes it. */
export function torchLinspace(start: number, end: number, steps: number, index: number): number {
  const f = Math.fround;
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  return index < halfway ? f(s + f(step * index)) : f(e - f(step * (steps - index - 1)));
}

const BINS = 10;
const POSTERIZE_BITS = [8, 8, 7, 7, 6, 6, 5, 5, 4, 4];

/** The magnitude of `op` at `bin` for an image of the given size, and whether it takes a random sign. */
export function autoAugmentMagnitude(
  op: AutoAugmentOp,
  bin: number,
  width: number,
  height: number,
): [number, boolean] {
  switch (op) {
    case "ShearX":
    case "ShearY":
      return [torchLinspace(0, 0.3, BINS, bin), true];
    case "TranslateX":
      return [torchLinspace(0, (150.0 / 331.0) * width, BINS, bin), true];
    case "TranslateY":
      return [torchLinspace(0, (150.0 / 331.0) * height, BINS, bin), true];
    case "Rotate":
      return [torchLinspace(0, 30, BINS, bin), true];
    case "Brightness":
    case "Color":
    case "Contrast":
    case "Sharpness":
      return [torchLinspace(0, 0.9, BINS, bin), true];
    case "Posterize":
      return [POSTERIZE_BITS[bin], false];
    case "Solarize":
      return [torchLinspace(255, 0, BINS, bin), false];
    default:
      return [0, false];
  }
}

/** torchvision's _apply_op on a PIL image. */
export function applyAutoAugmentOp(image: Image, op: AutoAugmentOp, magnitude: number): Image {
  switch (op) {
    case "ShearX":
      return shearX(image, magnitude);
    case "ShearY":
      return shearY(image, magnitude);
    case "TranslateX":
      return translate(image, magnitude, 0);
    case "TranslateY":
      return translate(image, 0, magnitude);
    case "Rotate":
      return rotate(image, magnitude);
    case "Brightness":
      return adjustBrightness(image, 1.0 + magnitude);
    case "Color":
      return adjustColor(image, 1.0 + magnitude);
    case "Contrast":
      return adjustContrast(image, 1.0 + magnitude);
    case "Sharpness":
      return adjustSharpness(image, 1.0 + magnitude);
    case "Posterize":
      return posterize(image, Math.trunc(magnitude));
    case "Solarize":
      return solarize(image, magnitude);
    case "AutoContrast":
      return autocontrast(image);
    case "Equalize":
      return equalize(image);
    case "Invert":
      return invert(image);
  }
}

/**
 * AutoAugment (CIFAR-10 policy): draw one sub-policy, then for each of its two ops a probability and
 * a sign, as torchvision's get_params does (policy index, two uniforms, two coin flips).
 */
export function autoAugmentCifar10(image: Image, rng: Rng): Image {
  const policy = CIFAR10_POLICY[rng.int(CIFAR10_POLICY.length)];
  const probs = [rng.float(), rng.float()];
  const signs = [rng.int(2), rng.int(2)];
  let out = image;
  for (let i = 0; i < 2; i++) {
    const [op, p, bin] = policy[i];
    if (probs[i] > p) continue;
    let magnitude = 0;
    if (bin !== null) {
      const [value, signed] = autoAugmentMagnitude(op, bin, out.width, out.height);
      magnitude = signed && signs[i] === 0 ? -value : value;
    }
    out = applyAutoAugmentOp(out, op, magnitude);
  }
  return out;
}
