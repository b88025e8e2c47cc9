/**
 * The 8-bit image the transforms in this folder work on, and Python's rounding they share. The
 * transforms are written to match what the reference pipeline computes with torchvision on PIL images:
 * PIL's own integer and float32 arithmetic, its nearest-neighbour affine engine and its antialiased
 * bilinear resampler, so that a sample here equals the reference's sample for the same random draws.
 * Every random choice comes from the Rng passed in.
 */

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
