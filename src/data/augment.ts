/**
 * Image transforms on uint8 HWC images, written to match what the reference pipeline computes with
 * torchvision on PIL images: PIL's own integer and float32 arithmetic, its nearest-neighbour affine
 * engine and its antialiased bilinear resampler, so that a sample here equals the reference's sample
 * for the same random draws. Every random choice comes from the Rng passed in.
 */
import type { Rng } from "./rng.ts";

/** An 8-bit image, rows of pixels of `channels` interleaved bytes (HWC). */
export interface Image {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

export function newImage(width: number, height: number, channels: number): Image {
  return { width, height, channels, data: new Uint8Array(width * height * channels) };
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

// ---------------------------------------------------------------------------------------------
// Geometry: crop, pad, flip

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

// ---------------------------------------------------------------------------------------------
// Normalisation and Cutout (float CHW)

/**
 * ToTensor + Normalize: x/255, then (x - mean) / std, each step rounded to float32 as torch computes;
 * returns CHW floats. Tabulated per channel, so it costs one lookup per byte.
 */
export function normalize(image: Image, mean: readonly number[], std: readonly number[]): Float32Array {
  const { width, height, channels, data } = image;
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`normalize: image has ${channels} channels, mean/std have ${mean.length}/${std.length}`);
  }
  const table = normalizationTable(mean, std);
  const plane = width * height;
  const out = new Float32Array(plane * channels);
  for (let c = 0; c < channels; c++) {
    const lut = table.subarray(c * 256, c * 256 + 256);
    const base = c * plane;
    for (let i = 0, j = c; i < plane; i++, j += channels) out[base + i] = lut[data[j]];
  }
  return out;
}

const tableCache = new Map<string, Float32Array>();

function normalizationTable(mean: readonly number[], std: readonly number[]): Float32Array {
  const key = `${mean.join(",")}/${std.join(",")}`;
  let table = tableCache.get(key);
  if (!table) {
    const f = Math.fround;
    table = new Float32Array(256 * mean.length);
    for (let c = 0; c < mean.length; c++) {
      for (let v = 0; v < 256; v++) table[c * 256 + v] = f(f(f(v / 255) - f(mean[c])) / f(std[c]));
    }
    tableCache.set(key, table);
  }
  return table;
}

/**
 * The reference's Cutout (DeVries & Taylor): a `length` x `length` hole of zeros, after
 * normalisation, centred at a uniformly drawn pixel and clipped at the borders. In place on CHW data.
 */
export function cutout(
  chw: Float32Array,
  channels: number,
  height: number,
  width: number,
  length: number,
  rng: Rng,
) {
  const cy = rng.int(height);
  const cx = rng.int(width);
  const half = Math.floor(length / 2);
  const y1 = Math.min(Math.max(cy - half, 0), height);
  const y2 = Math.min(Math.max(cy + half, 0), height);
  const x1 = Math.min(Math.max(cx - half, 0), width);
  const x2 = Math.min(Math.max(cx + half, 0), width);
  for (let c = 0; c < channels; c++) {
    for (let y = y1; y < y2; y++) chw.fill(0, (c * height + y) * width + x1, (c * height + y) * width + x2);
  }
}

// ---------------------------------------------------------------------------------------------
// PIL point operations and enhancers (AutoAugment's colour ops)

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

// ---------------------------------------------------------------------------------------------
// PIL's nearest-neighbour affine engine (Image.transform(AFFINE, NEAREST), fill 0)

/** PIL's COORD(): -1 for negative coordinates, else truncation. */
function coord(v: number): number {
  return v < 0 ? -1 : Math.trunc(v);
}

function checkFixed(a: readonly number[], x: number, y: number): boolean {
  return Math.abs(x * a[0] + y * a[1] + a[2]) < 32768 && Math.abs(x * a[3] + y * a[4] + a[5]) < 32768;
}

/**
 * Image.transform(size, AFFINE, a, NEAREST): output pixel (x, y) takes the input pixel at
 * (a0 x' + a1 y' + a2, a3 x' + a4 y' + a5) with x' = x + 0.5, y' = y + 0.5; outside is 0.
 * Follows PIL's three code paths (pure scale, 16.16 fixed point, floating point) exactly.
 */
export function affineNearest(image: Image, a: readonly number[]): Image {
  const { width, height, channels, data } = image;
  const out = newImage(width, height, channels);
  const copyPixel = (to: number, xin: number, yin: number) => {
    const from = (yin * width + xin) * channels;
    for (let c = 0; c < channels; c++) out.data[to + c] = data[from + c];
  };
  if (a[1] === 0 && a[3] === 0) {
    const xintab = new Int32Array(width);
    let xmin = width;
    let xmax = 0;
    let xo = a[2] + a[0] * 0.5;
    let yo = a[5] + a[4] * 0.5;
    for (let x = 0; x < width; x++) {
      const xin = coord(xo);
      if (xin >= 0 && xin < width) {
        xmax = x + 1;
        if (x < xmin) xmin = x;
        xintab[x] = xin;
      }
      xo += a[0];
    }
    for (let y = 0; y < height; y++) {
      const yi = coord(yo);
      if (yi >= 0 && yi < height) {
        for (let x = xmin; x < xmax; x++) copyPixel((y * width + x) * channels, xintab[x], yi);
      }
      yo += a[4];
    }
    return out;
  }
  if (
    checkFixed(a, 0, 0) && checkFixed(a, width, height) && checkFixed(a, 0, height) && checkFixed(a, width, 0)
  ) {
    const fix = (v: number) => Math.floor(v * 65536.0 + 0.5) | 0;
    const a0 = fix(a[0]);
    const a1 = fix(a[1]);
    const a3 = fix(a[3]);
    const a4 = fix(a[4]);
    let a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
    let a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (let y = 0; y < height; y++) {
      let xx = a2;
      let yy = a5;
      for (let x = 0; x < width; x++) {
        const xin = xx >> 16;
        if (xin >= 0 && xin < width) {
          const yin = yy >> 16;
          if (yin >= 0 && yin < height) copyPixel((y * width + x) * channels, xin, yin);
        }
        xx = (xx + a0) | 0;
        yy = (yy + a3) | 0;
      }
      a2 = (a2 + a1) | 0;
      a5 = (a5 + a4) | 0;
    }
    return out;
  }
  let xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
  let yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
  for (let y = 0; y < height; y++) {
    let xx = xo;
    let yy = yo;
    for (let x = 0; x < width; x++) {
      const xin = coord(xx);
      if (xin >= 0 && xin < width) {
        const yin = coord(yy);
        if (yin >= 0 && yin < height) copyPixel((y * width + x) * channels, xin, yin);
      }
      xx += a[0];
      yy += a[3];
    }
    xo += a[1];
    yo += a[4];
  }
  return out;
}

/** Python's round(x, 15). */
function round15(x: number): number {
  return Number(x.toFixed(15));
}

/** Image.rotate(angle, NEAREST, expand=False, fillcolor=0) about the image centre, counter-clockwise. */
export function rotate(image: Image, degrees: number): Image {
  const angle = ((degrees % 360) + 360) % 360;
  if (angle === 0) return { ...image, data: image.data.slice() };
  const { width: w, height: h } = image;
  const cx = w / 2.0;
  const cy = h / 2.0;
  const radians = -(angle * (Math.PI / 180));
  const m = [
    round15(Math.cos(radians)),
    round15(Math.sin(radians)),
    0.0,
    round15(-Math.sin(radians)),
    round15(Math.cos(radians)),
    0.0,
  ];
  m[2] = m[0] * -cx + m[1] * -cy + m[2];
  m[5] = m[3] * -cx + m[4] * -cy + m[5];
  m[2] += cx;
  m[5] += cy;
  return affineNearest(image, m);
}

/**
 * torchvision's _get_inverse_affine_matrix (angle 0, scale 1) for F.affine on a PIL image:
 * shear angles in degrees, integer translation, `center` in pixels.
 */
function inverseAffine(
  center: [number, number],
  translate: [number, number],
  shear: [number, number],
): number[] {
  const toRadians = Math.PI / 180;
  const rot = 0;
  const sx = shear[0] * toRadians;
  const sy = shear[1] * toRadians;
  const [cx, cy] = center;
  const [tx, ty] = translate;
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = -Math.cos(rot - sy) * Math.tan(sx) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = -Math.sin(rot - sy) * Math.tan(sx) / Math.cos(sy) + Math.cos(rot);
  const m = [d, -b, 0.0, -c, a, 0.0];
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

const DEGREES = 180 / Math.PI;

/** AutoAugment's ShearX: F.affine(shear=[degrees(atan(m)), 0], center=[0, 0]). */
export function shearX(image: Image, magnitude: number): Image {
  return affineNearest(image, inverseAffine([0, 0], [0, 0], [Math.atan(magnitude) * DEGREES, 0]));
}

/** AutoAugment's ShearY: F.affine(shear=[0, degrees(atan(m))], center=[0, 0]). */
export function shearY(image: Image, magnitude: number): Image {
  return affineNearest(image, inverseAffine([0, 0], [0, 0], [0, Math.atan(magnitude) * DEGREES]));
}

/** AutoAugment's TranslateX/Y: F.affine(translate=[int(m), 0] or [0, int(m)]) about the image centre. */
export function translate(image: Image, dx: number, dy: number): Image {
  const center: [number, number] = [image.width * 0.5, image.height * 0.5];
  return affineNearest(image, inverseAffine(center, [Math.trunc(dx), Math.trunc(dy)], [0, 0]));
}

// ---------------------------------------------------------------------------------------------
// AutoAugment, CIFAR-10 policy (torchvision.transforms.AutoAugment(AutoAugmentPolicy.CIFAR10))

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

// ---------------------------------------------------------------------------------------------
// Resizing

const PRECISION_BITS = 22;

interface Coefficients {
  bounds: Int32Array; // (start, count) per output pixel
  weights: Int32Array; // ksize per output pixel, fixed point
  ksize: number;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter. */
function bilinearCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = 1.0 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterScale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1.0 ? 1.0 - t : 0.0;
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0.0 ? k[x] / ww : k[x];
      weights[xx * ksize + x] = w < 0
        ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, weights, ksize };
}

function clip8(sum: number): number {
  // Sums stay below 2^31 (255 x 2^22 plus rounding), so an arithmetic shift is a floor division.
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * PIL Image.resize((width, height), BILINEAR): the antialiased separable triangle filter (support
 * widened by the downscale factor), horizontal pass first, 22-bit fixed-point weights, uint8 between passes.
 */
export function resizeBilinear(image: Image, width: number, height: number): Image {
  if (width === image.width && height === image.height) return { ...image, data: image.data.slice() };
  const { channels } = image;
  const horizontal = bilinearCoefficients(image.width, width);
  const vertical = bilinearCoefficients(image.height, height);
  const rowFirst = vertical.bounds[0];
  const rowLast = vertical.bounds[height * 2 - 2] + vertical.bounds[height * 2 - 1];
  const half = 1 << (PRECISION_BITS - 1);
  let source = image;
  let rowOffset = 0;
  if (width !== image.width) {
    const tempHeight = rowLast - rowFirst;
    const temp = newImage(width, tempHeight, channels);
    const { bounds, weights, ksize } = horizontal;
    for (let y = 0; y < tempHeight; y++) {
      const inRow = (y + rowFirst) * image.width;
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        const kBase = xx * ksize;
        const outAt = (y * width + xx) * channels;
        if (channels === 3) {
          // The common RGB case, three sums per pass over the taps.
          let r = half;
          let g = half;
          let b = half;
          for (let x = 0, at = (inRow + xmin) * 3; x < xmax; x++, at += 3) {
            const w = weights[kBase + x];
            r += image.data[at] * w;
            g += image.data[at + 1] * w;
            b += image.data[at + 2] * w;
          }
          temp.data[outAt] = clip8(r);
          temp.data[outAt + 1] = clip8(g);
          temp.data[outAt + 2] = clip8(b);
          continue;
        }
        for (let c = 0; c < channels; c++) {
          let sum = half;
          for (let x = 0; x < xmax; x++) {
            sum += image.data[(inRow + xmin + x) * channels + c] * weights[kBase + x];
          }
          temp.data[outAt + c] = clip8(sum);
        }
      }
    }
    source = temp;
    rowOffset = rowFirst;
  }
  if (height === image.height) return source;
  const out = newImage(width, height, channels);
  const { bounds, weights, ksize } = vertical;
  const stride = width * channels;
  const accumulator = new Float64Array(stride);
  for (let yy = 0; yy < height; yy++) {
    const ymin = bounds[yy * 2] - rowOffset;
    const ymax = bounds[yy * 2 + 1];
    const kBase = yy * ksize;
    // Row by row over the taps (contiguous reads); the sums are exact in doubles, as in PIL's int32.
    accumulator.fill(half);
    for (let y = 0; y < ymax; y++) {
      const w = weights[kBase + y];
      const row = (ymin + y) * stride;
      for (let i = 0; i < stride; i++) accumulator[i] += source.data[row + i] * w;
    }
    for (let i = 0; i < stride; i++) out.data[yy * stride + i] = clip8(accumulator[i]);
  }
  return out;
}

/** torchvision Resize(size) with an int: the shorter side becomes `size`, the longer keeps the aspect (truncated). */
export function resizeShorterSide(image: Image, size: number): Image {
  const { width: w, height: h } = image;
  const [short, long] = w <= h ? [w, h] : [h, w];
  if (short === size) return image;
  const newLong = Math.trunc((size * long) / short);
  return w <= h ? resizeBilinear(image, size, newLong) : resizeBilinear(image, newLong, size);
}

export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * torchvision RandomResizedCrop.get_params: up to 10 draws of an area fraction in `scale` and a
 * log-uniform aspect ratio in `ratio`; the first box that fits wins, else a central crop clamped to
 * the ratio range.
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  rng: Rng,
  scale: readonly [number, number] = [0.08, 1.0],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropBox {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** F.resized_crop: crop the box, then resize it to size x size (PIL bilinear). */
export function resizedCrop(image: Image, box: CropBox, size: number): Image {
  return resizeBilinear(crop(image, box.left, box.top, box.width, box.height), size, size);
}

// ---------------------------------------------------------------------------------------------
// Float frames (event data)

/**
 * torch F.interpolate(mode="bilinear", align_corners=False, antialias=False) on float planes:
 * source coordinate (dst + 0.5) * in/out - 0.5, clamped below at 0; no antialiasing.
 * `planes` is (N, inH, inW) row-major; returns (N, outH, outW).
 */
export function interpolateBilinear(
  planes: Float32Array,
  count: number,
  inHeight: number,
  inWidth: number,
  outHeight: number,
  outWidth: number,
): Float32Array {
  const out = new Float32Array(count * outHeight * outWidth);
  const f = Math.fround;
  const axis = (inSize: number, outSize: number) => {
    const scale = f(inSize / outSize);
    const lo = new Int32Array(outSize);
    const hi = new Int32Array(outSize);
    const lambda = new Float32Array(outSize);
    for (let d = 0; d < outSize; d++) {
      const src = Math.max(f(f(scale * f(d + 0.5)) - 0.5), 0);
      const i0 = Math.trunc(src);
      lo[d] = i0;
      hi[d] = i0 < inSize - 1 ? i0 + 1 : i0;
      lambda[d] = f(src - i0);
    }
    return { lo, hi, lambda };
  };
  const ys = axis(inHeight, outHeight);
  const xs = axis(inWidth, outWidth);
  for (let n = 0; n < count; n++) {
    const inBase = n * inHeight * inWidth;
    const outBase = n * outHeight * outWidth;
    for (let y = 0; y < outHeight; y++) {
      const r0 = inBase + ys.lo[y] * inWidth;
      const r1 = inBase + ys.hi[y] * inWidth;
      const ly = ys.lambda[y];
      for (let x = 0; x < outWidth; x++) {
        const lx = xs.lambda[x];
        const top = planes[r0 + xs.lo[x]] * (1 - lx) + planes[r0 + xs.hi[x]] * lx;
        const bottom = planes[r1 + xs.lo[x]] * (1 - lx) + planes[r1 + xs.hi[x]] * lx;
        out[outBase + y * outWidth + x] = top * (1 - ly) + bottom * ly;
      }
    }
  }
  return out;
}

/** Reverses the last axis (width) of (N, H, W) planes in place. */
export function flipPlanes(planes: Float32Array, count: number, height: number, width: number): void {
  for (let row = 0; row < count * height; row++) planes.subarray(row * width, (row + 1) * width).reverse();
}

/** torch.roll(planes, shifts=(dy, dx), dims=(H, W)) on (N, H, W) planes. */
export function rollPlanes(
  planes: Float32Array,
  count: number,
  height: number,
  width: number,
  dy: number,
  dx: number,
) {
  const out = new Float32Array(planes.length);
  const plane = height * width;
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < height; y++) {
      const ty = (((y + dy) % height) + height) % height;
      for (let x = 0; x < width; x++) {
        const tx = (((x + dx) % width) + width) % width;
        out[n * plane + ty * width + tx] = planes[n * plane + y * width + x];
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Augmentation settings

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

/** The augmentation switches a setting turns on, every one present. */
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
