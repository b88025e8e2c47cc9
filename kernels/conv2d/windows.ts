/**
 * Uniform-window plumbing of the direct kernels: how an operand is read (whole from storage, or through
 * uniform windows of at most 64 KiB bound at 256-byte offsets), how many samples or channels a window
 * holds, and the range each dispatch binds.
 */
import { type ConvGeometry, outputSize } from "./geometry.ts";
import type { BufferRange } from "./plan.ts";
import type { DirectTile, DirectWeightTile } from "./tiles.ts";

/** Uniform bindings start at multiples of 256 bytes (minUniformBufferOffsetAlignment's default). */
export const BINDING_ALIGN = 256;

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/**
 * Elements a window holds from any start: the bound range starts at the aligned offset below it. When
 * every start is `aligned` (see alignedSteps), the whole window.
 */
export function windowCapacity(windowBytes: number, aligned = false): number {
  return aligned ? windowBytes / 4 : Math.max(0, windowBytes / 4 - (BINDING_ALIGN / 4 - 1));
}

/**
 * Whether windows that start at multiples of `step` f32 elements all start on a binding boundary: then a
 * 64 KiB window holds 16,384 values instead of 16,321, e.g. 16 channels of a 32x32 plane instead of 15,
 * and 256 of an 8x8 one instead of 255 (2 channel ranges of ResNet-19's 512 instead of 3).
 */
function alignedSteps(step: number, half: boolean): boolean {
  return !half && (step * 4) % BINDING_ALIGN === 0;
}

/** Channels of `plane` elements a window holds when it reads a range of one sample's channels. */
function channelsPerWindow(windowBytes: number, plane: number, half: boolean): number {
  return Math.floor(windowCapacity(windowBytes, alignedSteps(plane, half)) / plane);
}

/**
 * How a kernel reads a tensor of `total` f32 (or, when `half`, packed f16) elements: whole from storage
 * (`vec4s` 0), or through uniform windows of `vec4s` 16-byte vectors (uniform arrays have a 16-byte stride).
 */
export interface TensorRead {
  name: string;
  total: number;
  vec4s: number;
  half: boolean;
  /** Every window starts on a binding boundary, so none holds the slack below its first element. */
  aligned?: boolean;
}

function elementBytes(read: TensorRead): number {
  return read.half ? 2 : 4;
}

export function storageRead(name: string, total: number, half = false): TensorRead {
  return { name, total, vec4s: 0, half };
}

/**
 * An operand read through windows of up to `longest` elements. A window is a whole number of 256-byte blocks,
 * so one that would run past the buffer's end can be moved back to end with it: pooled buffers are sized
 * in whole blocks (src/gpu/pool.ts).
 */
export function windowedRead(
  name: string,
  total: number,
  longest: number,
  half = false,
  aligned = false,
): TensorRead {
  const element = half ? 2 : 4;
  const bytes = Math.min(
    roundUp(longest * element + (aligned ? 0 : BINDING_ALIGN - element), BINDING_ALIGN),
    roundUp(total * element, BINDING_ALIGN),
  );
  return { name, total, vec4s: bytes / 16, half, aligned };
}

/**
 * An operand read as ranges of `channels` channels of one sample (`plane` elements each), which start at
 * whole planes.
 */
export function channelRangeRead(
  name: string,
  total: number,
  channels: number,
  plane: number,
  half: boolean,
) {
  return windowedRead(name, total, channels * plane, half, alignedSteps(plane, half));
}

/**
 * The range to bind for a window starting at element `start`, and the index of that element in the bound
 * range (`base`); for a storage operand, no range and `base` = `start`, so kernels index both alike.
 */
export function windowAt(read: TensorRead, start: number): { range: BufferRange | undefined; base: number } {
  if (!read.vec4s) return { range: undefined, base: start };
  const element = elementBytes(read);
  const size = read.vec4s * 16;
  if (read.aligned && (start * element) % BINDING_ALIGN !== 0) {
    throw new Error(`conv2d: window of ${read.name} at element ${start} is not on a binding boundary`);
  }
  const offset = Math.min(
    Math.floor((start * element) / BINDING_ALIGN) * BINDING_ALIGN,
    roundUp(read.total * element, BINDING_ALIGN) - size,
  );
  return { range: { offset, size }, base: start - offset / element };
}

/**
 * Samples per dispatch for operands of `perSample` elements per sample: as many as every window holds,
 * balanced over the groups; an operand whose single sample does not fit a window is read from storage
 * (all samples when none fits).
 */
export function sampleGroups(batch: number, perSample: number[], windowBytes: number) {
  const capacity = windowCapacity(windowBytes);
  const windowed = perSample.map((n) => n <= capacity);
  let size = batch;
  perSample.forEach((n, i) => {
    if (windowed[i]) size = Math.min(size, Math.floor(capacity / n));
  });
  // One (empty) group for an empty batch, so the weight gradient is still written (as zeros).
  const count = Math.max(1, Math.ceil(batch / Math.max(1, size)));
  return { size: Math.ceil(batch / count), count, windowed };
}

/** Ranges of at most `fit` of `count` channels, as equal as possible: the length of each. */
function balancedRange(count: number, fit: number): number {
  return Math.ceil(count / Math.ceil(count / fit));
}

/**
 * How a pixel kernel reads the operand it reduces over by channel (x forward, gradOut for the input
 * gradient), `channels` planes of `plane` elements per sample: whole samples per window when one fits;
 * else, when a plane fits, a range of one sample's channels per window, the output summed over the ranges'
 * dispatches (`split`); else from storage.
 */
interface ReductionRead {
  read: TensorRead;
  samplesPerDispatch: number;
  channelsPerDispatch: number;
  split: boolean;
}

export function reductionRead(
  name: string,
  [batch, channels, plane]: [number, number, number],
  tile: DirectTile,
  half: boolean,
): ReductionRead {
  const { windowBytes } = tile;
  const perSample = channels * plane;
  const total = batch * perSample;
  const groups = sampleGroups(batch, [perSample], windowBytes);
  const whole = { samplesPerDispatch: groups.size, channelsPerDispatch: channels, split: false };
  if (groups.windowed[0]) return { read: windowedRead(name, total, groups.size * perSample, half), ...whole };
  const fit = tile.channelSplit === false ? 0 : channelsPerWindow(windowBytes, plane, half);
  if (fit === 0) return { read: storageRead(name, total, half), ...whole };
  const perDispatch = balancedRange(channels, fit);
  return {
    read: channelRangeRead(name, total, perDispatch, plane, half),
    samplesPerDispatch: 1,
    channelsPerDispatch: perDispatch,
    split: true,
  };
}

/**
 * Rows of `rowLength` elements per window of a weight tensor read in blocks of `block` rows: all of them
 * when they fit one window, else a whole number of blocks, balanced over the windows; 0 when not even one
 * block fits (the tensor is read from storage).
 */
export function rowsPerWindow(rows: number, rowLength: number, block: number, windowBytes: number): number {
  const capacity = windowCapacity(windowBytes);
  if (rows * rowLength <= capacity) return rows;
  const fit = Math.floor(Math.floor(capacity / rowLength) / block) * block;
  if (fit === 0) return 0;
  return roundUp(Math.ceil(rows / Math.ceil(rows / fit)), block);
}

/**
 * Channels of gradOut and of x per window when the weight gradient reads one sample's channel ranges
 * (see DirectWeightTile.channelSplit): when windows are on, a sample of either operand does not fit one
 * and a plane of each does; else null.
 */
export function weightChannelRanges(
  geometry: ConvGeometry,
  tile: DirectWeightTile,
): { outChannels: number; inChannels: number } | null {
  const { batch, cin, cout, height, width } = geometry;
  const [outH, outW] = outputSize(geometry);
  if (tile.channelSplit === false || batch === 0 || tile.windowBytes === 0) return null;
  const half = geometry.halfOperands ?? false;
  const groups = sampleGroups(batch, [cout * outH * outW, cin * height * width], tile.windowBytes);
  if (groups.windowed[0] && groups.windowed[1]) return null;
  const outFit = channelsPerWindow(tile.windowBytes, outH * outW, half);
  const inFit = channelsPerWindow(tile.windowBytes, height * width, half);
  if (outFit === 0 || inFit === 0) return null;
  return { outChannels: balancedRange(cout, outFit), inChannels: balancedRange(cin, inFit) };
}
