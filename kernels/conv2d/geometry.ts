/** A convolution's shapes and what follows from them alone: output size, work, input-gradient phases. */

/** Shapes of one convolution; `batch` counts the folded T*B samples. */
export interface ConvGeometry {
  batch: number;
  cin: number;
  cout: number;
  height: number;
  width: number;
  kernel: number;
  stride: number;
  pad: number;
  /**
   * The pass's operands (x, weight, gradOut) are IEEE f16, two to a 32-bit word (`unpack2x16float`, so no
   * adapter feature is needed to read them); products still accumulate in f32, and outputs and scratch
   * tensors stay f32. Default false.
   */
  halfOperands?: boolean;
}

export function outputSize(geometry: ConvGeometry): [number, number] {
  const { height, width, kernel, stride, pad } = geometry;
  return [
    Math.floor((height + 2 * pad - kernel) / stride) + 1,
    Math.floor((width + 2 * pad - kernel) / stride) + 1,
  ];
}

/** Floating-point operations (2 per multiply-add) of one forward pass; each backward pass does as many. */
export function convFlops(geometry: ConvGeometry): number {
  const [outH, outW] = outputSize(geometry);
  const { batch, cin, cout, kernel } = geometry;
  return 2 * batch * cout * outH * outW * cin * kernel * kernel;
}

export function geometryKey(g: ConvGeometry): string {
  const operands = g.halfOperands ? ":f16" : "";
  return `${g.batch}x${g.cin}x${g.height}x${g.width}:${g.cout}:k${g.kernel}s${g.stride}p${g.pad}${operands}`;
}

/** The kernel taps and input positions of one output phase of the input gradient, along one axis. */
interface Phase {
  /** Input positions in the phase (iy = first + stride * q for the phase's first position). */
  count: number;
  /** First kernel tap reaching this phase (ky = tap0 + stride * j). */
  tap0: number;
  /** Kernel taps reaching this phase. */
  taps: number;
  /** Output position reached from (q = 0, j = 0): oy = offset + q - j. */
  offset: number;
}

export function phase(first: number, size: number, kernel: number, stride: number, pad: number): Phase {
  const tap0 = (first + pad) % stride;
  return {
    count: Math.max(0, Math.ceil((size - first) / stride)),
    tap0,
    taps: tap0 < kernel ? Math.ceil((kernel - tap0) / stride) : 0,
    offset: (first + pad - tap0) / stride,
  };
}

/** Positions `block * step + tap` reached by a block of `block` outputs and `taps` kernel taps. */
export function reached(block: number, step: number, taps: number): number[] {
  const positions = new Set<number>();
  for (let b = 0; b < block; b++) for (let t = 0; t < taps; t++) positions.add(b * step + t);
  return [...positions].sort((a, b) => a - b);
}
