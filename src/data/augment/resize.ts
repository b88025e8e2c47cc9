/** Resizing with Pillow's antialiased bilinear filter, torchvision's Resize and RandomResizedCrop. */
import type { Rng } from "../rng.ts";
import { crop } from "./geometry.ts";
import { type Image, newImage, roundHalfEven } from "./image.ts";

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
