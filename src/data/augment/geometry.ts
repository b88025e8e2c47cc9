/** Geometry on 8-bit images: crop, zero padding, flip, centre crop (torchvision's PIL paths). */
import type { Rng } from "../rng.ts";
import { type Image, newImage, roundHalfEven } from "./image.ts";

/** The `width` x `height` window at (left, top); pixels outside the image are 0 (zero padding). */
export function crop(image: Image, left: number, top: number, width: number, height: number): Image {
  const { channels } = image;
  const out = newImage(width, height, channels);
  const x0 = Math.max(0, -left);
  const x1 = Math.min(width, image.width - left);
  if (x1 <= x0) return out;
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= image.height) continue;
    const from = (sy * image.width + left + x0) * channels;
    out.data.set(image.data.subarray(from, from + (x1 - x0) * channels), (y * width + x0) * channels);
  }
  return out;
}

/** torchvision RandomCrop(size, padding): pad every side with zeros, take a uniformly placed window. */
export function randomCropWithPadding(image: Image, size: number, padding: number, rng: Rng): Image {
  const top = rng.int(image.height + 2 * padding - size + 1);
  const left = rng.int(image.width + 2 * padding - size + 1);
  return crop(image, left - padding, top - padding, size, size);
}

export function flipHorizontal(image: Image): Image {
  const { width, height, channels } = image;
  const out = newImage(width, height, channels);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const from = (row + x) * channels;
      const to = (row + width - 1 - x) * channels;
      for (let c = 0; c < channels; c++) out.data[to + c] = image.data[from + c];
    }
  }
  return out;
}

/** torchvision F.center_crop: offsets rounded with Python's round. */
export function centerCrop(image: Image, width: number, height: number): Image {
  const top = roundHalfEven((image.height - height) / 2);
  const left = roundHalfEven((image.width - width) / 2);
  return crop(image, left, top, width, height);
}
