/** 2-D convolution without bias (PyTorch `F.conv2d` semantics, square kernel, zero padding). */
import {
  type ConvGeometry,
  conv2dForwardKernel,
  conv2dGradInputKernels,
  conv2dGradWeightKernel,
  outputSize,
} from "../../kernels/conv2d.ts";
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
    throw new Error(`spikegpu: conv2d needs a 4-D input (N, Cin, H, W) and a 4-D weight (Cout, Cin, k, k); got ${both}`);
  }
  const [batch, cin, height, width] = x.shape;
  const [cout, weightCin, kernel, kernelW] = weight.shape;
  if (weightCin !== cin) {
    throw new Error(`spikegpu: conv2d: the input has ${cin} channels but the weight expects ${weightCin}; got ${both}`);
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
    throw new Error(`spikegpu: conv2d: the ${kernel}x${kernel} kernel is larger than the padded input; got ${both}`);
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
  const forward = conv2dForwardKernel(geometry);
  dispatch(forward, [x.buffer, weight.buffer, out.buffer], forward.workgroups);
  return record(out, [x, weight], (gradOut) => [
    x.requiresGrad ? conv2dGradInput(gradOut, weight, geometry) : null,
    weight.requiresGrad ? conv2dGradWeight(gradOut, x, geometry) : null,
  ]);
}

function conv2dGradInput(gradOut: Tensor, weight: Tensor, geometry: ConvGeometry): Tensor {
  const { batch, cin, height, width } = geometry;
  const gradIn = Tensor.empty([batch, cin, height, width], { name: "conv2d_grad_input" });
  for (const kernel of conv2dGradInputKernels(geometry)) {
    dispatch(kernel, [gradOut.buffer, weight.buffer, gradIn.buffer], kernel.workgroups);
  }
  return gradIn;
}

function conv2dGradWeight(gradOut: Tensor, x: Tensor, geometry: ConvGeometry): Tensor {
  const { cout, cin, kernel } = geometry;
  const gradWeight = Tensor.empty([cout, cin, kernel, kernel], { name: "conv2d_grad_weight" });
  const gemm = conv2dGradWeightKernel(geometry);
  dispatch(gemm, [gradOut.buffer, x.buffer, gradWeight.buffer], gemm.workgroups);
  return gradWeight;
}
