/** Differentiable elementwise ops: residual add, LeakyReLU, scaling, reshape, fills. */
import { f32 } from "../../kernels/common.ts";
import { fillKernel, mapKernel } from "../../kernels/elementwise.ts";
import { dispatch } from "../gpu/kernels.ts";
import { record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

function sameShape(a: Tensor, b: Tensor, op: string): void {
  if (a.shape.join() !== b.shape.join()) {
    throw new Error(
      `spikegpu: ${op}: ${a.name} [${a.shape.join(", ")}] and ${b.name} [${
        b.shape.join(", ")
      }] differ in shape`,
    );
  }
}

/** Applies a WGSL expression over `a`, `b`, `c` elementwise into a new tensor (no gradient). */
export function map(name: string, inputs: readonly Tensor[], expr: string, shape = inputs[0].shape): Tensor {
  const out = Tensor.empty(shape, { name });
  const kernel = mapKernel(out.size, inputs.length, expr);
  dispatch(kernel, [...inputs.map((t) => t.buffer), out.buffer], kernel.workgroups);
  return out;
}

/** A new tensor of `shape` with every element `value`. */
export function fill(shape: readonly number[], value: number, name = "filled"): Tensor {
  const out = Tensor.empty(shape, { name });
  const kernel = fillKernel(out.size, value);
  dispatch(kernel, [out.buffer], kernel.workgroups);
  return out;
}

/** A new tensor of `shape` filled with zeros. */
export function zeros(shape: readonly number[], name = "zeros"): Tensor {
  return fill(shape, 0, name);
}

/** `a + b` (the residual connection). */
export function add(a: Tensor, b: Tensor): Tensor {
  sameShape(a, b, "add");
  const out = map("add", [a, b], "a + b");
  return record(out, [a, b], (g) => [g, g]);
}

/** `scale * x` for a constant scale. */
export function scale(x: Tensor, factor: number): Tensor {
  const out = map(`scale_${factor}`, [x], `a * ${f32(factor)}`);
  return record(out, [x], (g) => [map(`scale_${factor}`, [g], `a * ${f32(factor)}`)]);
}

/** LeakyReLU as PyTorch computes it: the gradient is 1 where x > 0 and `slope` elsewhere (x = 0 too). */
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  const s = f32(slope);
  const out = map(`leaky_relu_${slope}`, [x], `select(a * ${s}, a, a >= 0.0)`);
  return record(out, [x], (g) => [map(`leaky_relu_grad_${slope}`, [g, x], `select(a * ${s}, a, b > 0.0)`)]);
}

/** The same values in a new shape (storage shared). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const out = x.view(shape, `${x.name}_reshaped`);
  return record(out, [x], (g) => [g.view(x.shape, `${g.name}_reshaped`)]);
}

/** `(N, ...) -> (N, prod(...))`. */
export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.shape[0], x.size / x.shape[0]]);
}
