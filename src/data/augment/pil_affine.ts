/**
 * PIL's nearest-neighbour affine engine (Image.transform(AFFINE, NEAREST), fill 0) and the rotate,
 * shear and translate ops AutoAugment builds on it.
 */
import { type Image, newImage } from "./image.ts";

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
