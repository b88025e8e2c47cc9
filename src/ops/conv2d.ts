/** 2-D convolution without bias (PyTorch `F.conv2d` semantics, square kernel, zero padding). */
import {
  conv2dForwardKernel,
  conv2dGradInputKernels,
  conv2dGradWeightKernel,
  type ConvGeometry,
  defaultConvTilings,
  outputSize,
} from "../../kernels/conv2d.ts";
import { gpu } from "../gpu/device.ts";
import { dispatch } from "../gpu/kernels.ts";
import { record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

export interface Conv2dOptions {
  /** Step between kernel positions, in both directions (default 1). */
  stride?: number;
  /** Zeros added on every side (default 0). */
  padding?: number;
}

function describe(t: Tensor): string {
  return `${t.name} [${t.shape.join(", ")}]`;
}

function geometryOf(x: Tensor, weight: Tensor, options: Conv2dOptions): ConvGeometry {
  const stride = options.stride ?? 1;
  const pad = options.padding ?? 0;
  const both = `input ${describe(x)}, weight ${describe(weight)}`;
  if (x.shape.length !== 4 || weight.shape.length !== 4) {
    throw new Error(
      `spikegpu: conv2d needs a 4-D input (N, Cin, H, W) and a 4-D weight (Cout, Cin, k, k); got ${both}`,
    );
  }
  const [batch, cin, height, width] = x.shape;
  const [cout, weightCin, kernel, kernelW] = weight.shape;
  if (weightCin !== cin) {
    throw new Error(
      `spikegpu: conv2d: the input has ${cin} channels but the weight expects ${weightCin}; got ${both}`,
    );
  }
  if (kernel !== kernelW || kernel < 1) {
    throw new Error(`spikegpu: conv2d supports square kernels only; got ${both}`);
  }
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`spikegpu: conv2d: stride must be a positive integer, got ${stride} (${both})`);
  }
  if (!Number.isInteger(pad) || pad < 0) {
    throw new Error(`spikegpu: conv2d: padding must be a non-negative integer, got ${pad} (${both})`);
  }
  if (height + 2 * pad < kernel || width + 2 * pad < kernel) {
    throw new Error(
      `spikegpu: conv2d: the ${kernel}x${kernel} kernel is larger than the padded input; got ${both}`,
    );
  }
  if (x.dtype !== "f32" || weight.dtype !== "f32") {
    throw new Error(`spikegpu: conv2d needs f32 tensors; got ${x.dtype} ${both} and ${weight.dtype}`);
  }
  return { batch, cin, cout, height, width, kernel, stride, pad };
}

/**
 * `x (N, Cin, H, W) * weight (Cout, Cin, k, k) -> (N, Cout, Ho, Wo)` with
 * `Ho = floor((H + 2p - k) / stride) + 1`. Gradients are computed only for inputs that require them.
 */
export function conv2d(x: Tensor, weight: Tensor, options: Conv2dOptions = {}): Tensor {
  const geometry = geometryOf(x, weight, options);
  const [outH, outW] = outputSize(geometry);
  const out = Tensor.empty([geometry.batch, geometry.cout, outH, outW], { name: "conv2d" });
  // Software adapters run every invocation's memory loads one lane at a time: they get the direct tiling.
  const tilings = defaultConvTilings(geometry, gpu().adapter.isFallbackAdapter);
  const forward = conv2dForwardKernel(geometry, tilings.forward);
  dispatch(forward, [x.buffer, weight.buffer, out.buffer], forward.workgroups);
  return record(out, [x, weight], (gradOut) => [
    x.requiresGrad ? conv2dGradInput(gradOut, weight, geometry, tilings.gradInput) : null,
    weight.requiresGrad ? conv2dGradWeight(gradOut, x, geometry, tilings.gradWeight) : null,
  ]);
}

type Tilings = ReturnType<typeof defaultConvTilings>;

function conv2dGradInput(
  gradOut: Tensor,
  weight: Tensor,
  geometry: ConvGeometry,
  tiling: Tilings["gradInput"],
): Tensor {
  const { batch, cin, height, width } = geometry;
  const gradIn = Tensor.empty([batch, cin, height, width], { name: "conv2d_grad_input" });
  for (const kernel of conv2dGradInputKernels(geometry, tiling)) {
    dispatch(kernel, [gradOut.buffer, weight.buffer, gradIn.buffer], kernel.workgroups);
  }
  return gradIn;
}

function conv2dGradWeight(
  gradOut: Tensor,
  x: Tensor,
  geometry: ConvGeometry,
  tiling: Tilings["gradWeight"],
): Tensor {
  const { cout, cin, kernel } = geometry;
  const gradWeight = Tensor.empty([cout, cin, kernel, kernel], { name: "conv2d_grad_weight" });
  const reduction = conv2dGradWeightKernel(geometry, tiling);
  dispatch(reduction, [gradOut.buffer, x.buffer, gradWeight.buffer], reduction.workgroups);
  return gradWeight;
}
