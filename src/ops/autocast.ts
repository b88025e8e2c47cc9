/**
 * Mixed precision as torch.autocast(dtype=torch.float16) applies it to convolutions: inside `autocast`,
 * conv2d rounds its input, its weight and, in backward, its upstream gradient to f16 and multiplies those
 * (accumulating in f32); its outputs, every other op, the parameters and the optimizer stay f32. Spikes are
 * 0 or 1, exact in f16, so only weights, the encoded input and gradients lose precision. Gradients in f16
 * underflow without loss scaling: train with `GradScaler` (src/optim/grad_scaler.ts).
 */
import { packHalfKernel } from "../../kernels/elementwise.ts";
import { dispatch } from "../gpu/kernels.ts";
import { Tensor } from "../tensor/tensor.ts";

let depth = 0;

/** Runs `body` with f16 convolutions; the ops it records keep that choice for their backward. */
export function autocast<T>(body: () => T): T {
  depth++;
  try {
    return body();
  } finally {
    depth--;
  }
}

/** Whether ops being recorded now run in f16 (inside `autocast`). */
export function autocastActive(): boolean {
  return depth > 0;
}

/**
 * An f16 copy of an f32 tensor (no gradient), rounded to nearest even; values past the f16 range become
 * infinities, so a loss scale that is too large shows up as a non-finite gradient.
 */
export function toHalf(x: Tensor): Tensor {
  if (x.dtype !== "f32") {
    throw new Error(`spikegpu: toHalf needs an f32 tensor; ${x.name} [${x.shape.join(", ")}] is ${x.dtype}`);
  }
  const out = Tensor.empty(x.shape, { name: `${x.name}_f16`, dtype: "f16" });
  if (x.size > 0) {
    const kernel = packHalfKernel(x.size);
    dispatch(kernel, [x.buffer, out.buffer], kernel.workgroups);
  }
  return out;
}
