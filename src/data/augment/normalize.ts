/** ToTensor + Normalize to float CHW, and Cutout on the normalised floats. */
import type { Rng } from "../rng.ts";
import type { Image } from "./image.ts";

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
