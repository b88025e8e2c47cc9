/** The fully connected layer `y = x W^T + b` and its gradients, on the tiled GEMM of kernels/matmul.ts. */
import { columnSumKernel, defaultMatmulTile, matmulKernel, type MatmulShape } from "../../kernels/matmul.ts";
import { UNIFORM_WINDOW_BYTES } from "../../kernels/target.ts";
import { softwareTarget } from "./target.ts";
import { dispatch } from "../gpu/kernels.ts";
import { record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

function describe(t: Tensor): string {
  return `${t.name} [${t.shape.join(", ")}]`;
}

function checkShapes(x: Tensor, weight: Tensor, bias: Tensor | undefined): void {
  if (x.shape.length !== 2) {
    throw new Error(`spikegpu: linear: input ${describe(x)} must be 2-D (N, in); flatten it first`);
  }
  if (weight.shape.length !== 2 || weight.shape[1] !== x.shape[1]) {
    throw new Error(
      `spikegpu: linear: weight ${describe(weight)} must be (out, ${x.shape[1]}) to match input ${
        describe(x)
      }`,
    );
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new Error(
      `spikegpu: linear: bias ${describe(bias)} must be (${weight.shape[0]}) to match weight ${
        describe(weight)
      }`,
    );
  }
  for (const t of [x, weight, bias]) {
    if (t && t.dtype !== "f32") {
      throw new Error(`spikegpu: linear: ${describe(t)} is ${t.dtype}, expected f32`);
    }
  }
}

/** Whether a kernel may bind `t`'s whole buffer as a uniform (see DirectMatmulTile). */
function uniformReadable(t: Tensor): boolean {
  return (t.buffer.usage & GPUBufferUsage.UNIFORM) !== 0 && t.buffer.size <= UNIFORM_WINDOW_BYTES;
}

/**
 * The GEMM for `shape` with operands `a` and `b`, tiled for this adapter: software adapters get the
 * direct tiling, reading the operands that fit through uniforms.
 */
function gemm(shape: MatmulShape, a: Tensor, b: Tensor) {
  const software = softwareTarget();
  const cpu = software && { ...software, uniformA: uniformReadable(a), uniformB: uniformReadable(b) };
  return matmulKernel({ ...shape, tile: defaultMatmulTile(shape, cpu) });
}

/** `y (N, out) = x (N, in) W^T + b`, W `(out, in)`, b `(out)`; gradients for x, W and b. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  checkShapes(x, weight, bias);
  const [rows, inFeatures] = x.shape;
  const outFeatures = weight.shape[0];
  const out = Tensor.empty([rows, outFeatures], { name: "linear" });
  const forward = gemm({ M: rows, N: outFeatures, K: inFeatures, transB: true, bias: !!bias }, x, weight);
  const buffers = bias
    ? [x.buffer, weight.buffer, bias.buffer, out.buffer]
    : [x.buffer, weight.buffer, out.buffer];
  dispatch(forward, buffers, forward.workgroups);

  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, inputs, (gradOut) => {
    let gradX: Tensor | null = null;
    if (x.requiresGrad) {
      gradX = Tensor.empty(x.shape, { name: "linear_grad_x" });
      const kernel = gemm({ M: rows, N: inFeatures, K: outFeatures }, gradOut, weight);
      dispatch(kernel, [gradOut.buffer, weight.buffer, gradX.buffer], kernel.workgroups);
    }
    let gradWeight: Tensor | null = null;
    if (weight.requiresGrad) {
      gradWeight = Tensor.empty(weight.shape, { name: "linear_grad_weight" });
      const kernel = gemm({ M: outFeatures, N: inFeatures, K: rows, transA: true }, gradOut, x);
      dispatch(kernel, [gradOut.buffer, x.buffer, gradWeight.buffer], kernel.workgroups);
    }
    if (!bias) return [gradX, gradWeight];
    let gradBias: Tensor | null = null;
    if (bias.requiresGrad) {
      gradBias = Tensor.empty(bias.shape, { name: "linear_grad_bias" });
      const kernel = columnSumKernel(rows, outFeatures, softwareTarget()?.threads);
      dispatch(kernel, [gradOut.buffer, gradBias.buffer], kernel.workgroups);
    }
    return [gradX, gradWeight, gradBias];
  });
}
