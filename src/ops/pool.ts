/** Adaptive average pooling (the ResNet head's 1x1 and the surrogate modules' 2x2), with its gradient. */
import {
  adaptiveAvgPoolBackwardKernel,
  adaptiveAvgPoolForwardKernel,
  type AdaptivePoolShape,
} from "../../kernels/pool.ts";
import { dispatch } from "../gpu/kernels.ts";
import { record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

/**
 * `(N, C, H, W) -> (N, C, oh, ow)` like `F.adaptive_avg_pool2d`: output (i, j) averages rows
 * floor(i*H/oh) .. ceil((i+1)*H/oh) - 1 and the matching columns, so bins may overlap or repeat.
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  const [outHeight, outWidth] = typeof outputSize === "number" ? [outputSize, outputSize] : outputSize;
  if (x.shape.length !== 4) {
    throw new Error(
      `spikegpu: adaptiveAvgPool2d: input ${x.name} [${x.shape.join(", ")}] must be (N, C, H, W)`,
    );
  }
  if (x.dtype !== "f32") {
    throw new Error(`spikegpu: adaptiveAvgPool2d: input ${x.name} is ${x.dtype}, expected f32`);
  }
  const [n, c, height, width] = x.shape;
  if (height < 1 || width < 1) {
    throw new Error(
      `spikegpu: adaptiveAvgPool2d: input ${x.name} [${x.shape.join(", ")}] has an empty plane`,
    );
  }
  for (const size of [outHeight, outWidth]) {
    if (!Number.isInteger(size) || size < 1) {
      throw new Error(
        `spikegpu: adaptiveAvgPool2d: output size ${JSON.stringify(outputSize)} must be positive integers`,
      );
    }
  }
  const shape: AdaptivePoolShape = { planes: n * c, height, width, outHeight, outWidth };
  const out = Tensor.empty([n, c, outHeight, outWidth], { name: "adaptive_avg_pool" });
  const forward = adaptiveAvgPoolForwardKernel(shape);
  dispatch(forward, [x.buffer, out.buffer], forward.workgroups);
  return record(out, [x], (gradOut) => {
    const gradX = Tensor.empty(x.shape, { name: "adaptive_avg_pool_grad" });
    const backward = adaptiveAvgPoolBackwardKernel(shape);
    dispatch(backward, [gradOut.buffer, gradX.buffer], backward.workgroups);
    return [gradX];
  });
}
