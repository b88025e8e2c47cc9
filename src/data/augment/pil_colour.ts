/**
 * PIL's point operations and ImageEnhance enhancers (AutoAugment's colour ops), with PIL's integer
 * steps and float32 arithmetic.
 */
import { type Image, newImage } from "./image.ts";

function applyLut(image: Image, lut: (channel: number) => Uint8Array): Image {
  const { channels } = image;
  const out = newImage(image.width, image.height, channels);
  const tables = Array.from({ length: channels }, (_, c) => lut(c));
  for (let i = 0; i < image.data.length; i += channels) {
    for (let c = 0; c < channels; c++) out.data[i + c] = tables[c][image.data[i + c]];
  }
  return out;
}

function histogram(image: Image, channel: number): Int32Array {
  const counts = new Int32Array(256);
  for (let i = channel; i < image.data.length; i += image.channels) counts[image.data[i]]++;
  return counts;
}

export function invert(image: Image): Image {
  const out = newImage(image.width, image.height, image.channels);
  for (let i = 0; i < image.data.length; i++) out.data[i] = 255 - image.data[i];
  return out;
}

/** ImageOps.posterize: keep the top `bits` bits. */
export function posterize(image: Image, bits: number): Image {
  const mask = ~(2 ** (8 - bits) - 1) & 0xff;
  const lut = Uint8Array.from({ length: 256 }, (_, i) => i & mask);
  return applyLut(image, () => lut);
}

/** ImageOps.solarize: invert the values at or above `threshold`. */
export function solarize(image: Image, threshold: number): Image {
  const lut = Uint8Array.from({ length: 256 }, (_, i) => (i < threshold ? i : 255 - i));
  return applyLut(image, () => lut);
}

/** ImageOps.autocontrast (cutoff 0): stretch each channel's [min, max] to [0, 255]. */
export function autocontrast(image: Image): Image {
  return applyLut(image, (c) => {
    const h = histogram(image, c);
    let lo = 0;
    while (lo < 255 && h[lo] === 0) lo++;
    let hi = 255;
    while (hi > 0 && h[hi] === 0) hi--;
    const lut = new Uint8Array(256);
    if (hi <= lo) {
      for (let i = 0; i < 256; i++) lut[i] = i;
      return lut;
    }
    const scale = 255.0 / (hi - lo);
    const offset = -lo * scale;
    for (let i = 0; i < 256; i++) lut[i] = Math.min(255, Math.max(0, Math.trunc(i * scale + offset)));
    return lut;
  });
}

/** ImageOps.equalize: per-channel histogram equalisation, with PIL's integer steps. */
export function equalize(image: Image): Image {
  return applyLut(image, (c) => {
    const h = histogram(image, c);
    const lut = new Uint8Array(256);
    const nonzero: number[] = [];
    for (let i = 0; i < 256; i++) if (h[i]) nonzero.push(h[i]);
    const total = nonzero.reduce((a, b) => a + b, 0);
    const step = nonzero.length <= 1 ? 0 : Math.floor((total - nonzero[nonzero.length - 1]) / 255);
    if (step === 0) {
      for (let i = 0; i < 256; i++) lut[i] = i;
      return lut;
    }
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      // PIL builds a Python list and hands it to Image.point, which clips to 0..255.
      lut[i] = Math.min(255, Math.floor(n / step));
      n += h[i];
    }
    return lut;
  });
}

/** Image.blend(degenerate, image, factor), with PIL's float32 arithmetic, truncation and clipping. */
function blend(degenerate: Uint8Array, image: Image, factor: number): Image {
  const f = Math.fround;
  const alpha = f(factor);
  const out = newImage(image.width, image.height, image.channels);
  const src = image.data;
  if (alpha === 0) {
    out.data.set(degenerate);
    return out;
  }
  if (alpha === 1) {
    out.data.set(src);
    return out;
  }
  const interpolate = alpha >= 0 && alpha <= 1;
  for (let i = 0; i < src.length; i++) {
    const a = degenerate[i];
    const value = f(a + f(alpha * (src[i] - a)));
    out.data[i] = interpolate ? Math.trunc(value) : value <= 0 ? 0 : value >= 255 ? 255 : Math.trunc(value);
  }
  return out;
}

/** PIL's RGB -> L conversion (ITU-R 601-2 luma in 16-bit fixed point). */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

function grayscaleOf(image: Image): Uint8Array {
  const { channels, data } = image;
  const gray = new Uint8Array(image.width * image.height);
  if (channels === 1) return data.slice();
  for (let p = 0, i = 0; p < gray.length; p++, i += channels) {
    gray[p] = luma(data[i], data[i + 1], data[i + 2]);
  }
  return gray;
}

function broadcastGray(gray: Uint8Array, channels: number): Uint8Array {
  const out = new Uint8Array(gray.length * channels);
  for (let p = 0; p < gray.length; p++) for (let c = 0; c < channels; c++) out[p * channels + c] = gray[p];
  return out;
}

/** ImageEnhance.Brightness: blend with black. */
export function adjustBrightness(image: Image, factor: number): Image {
  return blend(new Uint8Array(image.data.length), image, factor);
}

/** ImageEnhance.Color (saturation): blend with the image's grayscale. */
export function adjustColor(image: Image, factor: number): Image {
  return blend(broadcastGray(grayscaleOf(image), image.channels), image, factor);
}

/** ImageEnhance.Contrast: blend with a flat image at the rounded mean luma. */
export function adjustContrast(image: Image, factor: number): Image {
  const gray = grayscaleOf(image);
  let sum = 0;
  for (let i = 0; i < gray.length; i++) sum += gray[i];
  const mean = Math.trunc(sum / gray.length + 0.5);
  return blend(new Uint8Array(image.data.length).fill(mean), image, factor);
}

/**
 * ImageEnhance.Sharpness: blend with PIL's SMOOTH filter ([1 1 1; 1 5 1; 1 1 1] / 13, border pixels
 * copied, rounded to nearest).
 */
export function adjustSharpness(image: Image, factor: number): Image {
  const { width, height, channels, data } = image;
  const smooth = data.slice();
  const f = Math.fround;
  const edge = f(1 / 13);
  const middle = f(5 / 13);
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      for (let c = 0; c < channels; c++) {
        const at = (y * width + x) * channels + c;
        const up = at - width * channels;
        const down = at + width * channels;
        // PIL sums rows y+1, y, y-1 in float32 (kernel rows in that order) and adds 0.5 for rounding.
        let sum = f(0.5);
        sum = f(
          sum +
            f(f(f(f(data[down - channels] * edge) + f(data[down] * edge))) + f(data[down + channels] * edge)),
        );
        sum = f(
          sum + f(f(f(f(data[at - channels] * edge) + f(data[at] * middle))) + f(data[at + channels] * edge)),
        );
        sum = f(
          sum + f(f(f(f(data[up - channels] * edge) + f(data[up] * edge))) + f(data[up + channels] * edge)),
        );
        smooth[at] = sum <= 0 ? 0 : sum >= 255 ? 255 : Math.trunc(sum);
      }
    }
  }
  return blend(smooth, image, factor);
}
