/**
 * The two ends of the time-folded layout (SPEC §1): a static batch repeated over T steps before the stem,
 * and per-step outputs averaged over T (logits, surrogate-module firing rates).
 */
import { repeatOverTimeKernel, sumOverTimeKernel } from "../../kernels/time.ts";
import { dispatch } from "../gpu/kernels.ts";
import { record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

function checkSteps(op: string, x: Tensor, steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new Error(`spikegpu: ${op}: T must be a positive integer, not ${steps}`);
  }
  if (x.shape.length < 1) {
    throw new Error(`spikegpu: ${op}: ${x.name} is a scalar; it needs a batch dimension`);
  }
  if (x.dtype !== "f32") throw new Error(`spikegpu: ${op}: ${x.name} is ${x.dtype}, expected f32`);
}

function repeatOverTime(
  x: Tensor,
  steps: number,
  divisor: number,
  shape: readonly number[],
  name: string,
): Tensor {
  const out = Tensor.empty(shape, { name });
  const kernel = repeatOverTimeKernel(x.size, steps, divisor);
  dispatch(kernel, [x.buffer, out.buffer], kernel.workgroups);
  return out;
}

function sumOverTime(
  x: Tensor,
  steps: number,
  divisor: number,
  shape: readonly number[],
  name: string,
): Tensor {
  const out = Tensor.empty(shape, { name });
  const kernel = sumOverTimeKernel(out.size, steps, divisor);
  dispatch(kernel, [x.buffer, out.buffer], kernel.workgroups);
  return out;
}

/** `(B, ...) -> (T*B, ...)` with row t*B + b = x[b]; the gradient sums over t. `x` itself when T = 1. */
export function expandTime(x: Tensor, T: number): Tensor {
  checkSteps("expandTime", x, T);
  if (T === 1) return x;
  const shape = [T * x.shape[0], ...x.shape.slice(1)];
  const out = repeatOverTime(x, T, 1, shape, "expand_time");
  return record(out, [x], (gradOut) => [sumOverTime(gradOut, T, 1, x.shape, "expand_time_grad")]);
}

/**
 * `(T*B, ...) -> (B, ...)`, the mean over t of rows t*B + b; the gradient is g / T at every step. `x` itself
 * when T = 1: a copy would only add a tensor to the step's memory.
 */
export function meanOverTime(x: Tensor, T: number): Tensor {
  checkSteps("meanOverTime", x, T);
  if (x.shape[0] % T !== 0) {
    throw new Error(
      `spikegpu: meanOverTime: ${x.name} [${x.shape.join(", ")}] has ${
        x.shape[0]
      } rows, not a multiple of T = ${T}`,
    );
  }
  if (T === 1) return x;
  const shape = [x.shape[0] / T, ...x.shape.slice(1)];
  const out = sumOverTime(x, T, T, shape, "mean_over_time");
  return record(out, [x], (gradOut) => [repeatOverTime(gradOut, T, T, x.shape, "mean_over_time_grad")]);
}
