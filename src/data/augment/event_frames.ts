/** Transforms on float event frames, (N, H, W) planes: bilinear resize, flip, roll (torch's ops). */

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
