/** 2-D convolution without bias (PyTorch `F.conv2d` semantics, square kernel, zero padding). */
import {
  conv2dForwardPlan,
  conv2dGradInputPlan,
  conv2dGradWeightPlan,
  type ConvDispatch,
  type ConvGeometry,
  type ConvPlan,
  defaultConvTilings,
  outputSize,
  type Tilings,
} from "../../kernels/conv2d/mod.ts";
import { gpu } from "../gpu/device.ts";
import { autocastActive, toHalf } from "./autocast.ts";
import { softwareTarget } from "./target.ts";
import { dispatch } from "../gpu/kernels.ts";
import { record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

/** Stride and padding of a convolution. */
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
 * Inside `autocast` the operands of all three passes are f16 copies (src/ops/autocast.ts).
 */
export function conv2d(x: Tensor, weight: Tensor, options: Conv2dOptions = {}): Tensor {
  const half = autocastActive();
  const geometry: ConvGeometry = { ...geometryOf(x, weight, options), halfOperands: half };
  const [outH, outW] = outputSize(geometry);
  const out = Tensor.empty([geometry.batch, geometry.cout, outH, outW], { name: "conv2d" });
  // Software adapters run storage loads one lane at a time: they get the direct tiling, which reads
  // through uniform windows.
  const tilings = defaultConvTilings(geometry, softwareTarget());
  const xOperand = half ? toHalf(x) : x;
  const weightOperand = half ? toHalf(weight) : weight;
  dispatchConvPlan(conv2dForwardPlan(geometry, tilings.forward), {
    x: xOperand.buffer,
    weight: weightOperand.buffer,
    out: out.buffer,
  });
  return record(out, [x, weight], (gradOut) => {
    const gradOperand = half ? toHalf(gradOut) : gradOut;
    const grads = [
      x.requiresGrad ? conv2dGradInput(gradOperand, weightOperand, geometry, tilings.gradInput) : null,
      weight.requiresGrad ? conv2dGradWeight(gradOperand, xOperand, geometry, tilings.gradWeight) : null,
    ];
    // Later users of the buffer run after the dispatches just recorded.
    if (half) gradOperand.dispose();
    return grads;
  });
}

function conv2dGradInput(
  gradOut: Tensor,
  weight: Tensor,
  geometry: ConvGeometry,
  tiling: Tilings["gradInput"],
): Tensor {
  const { batch, cin, height, width } = geometry;
  const gradIn = Tensor.empty([batch, cin, height, width], { name: "conv2d_grad_input" });
  dispatchConvPlan(conv2dGradInputPlan(geometry, tiling), {
    gradOut: gradOut.buffer,
    weight: weight.buffer,
    gradIn: gradIn.buffer,
  });
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
  dispatchConvPlan(conv2dGradWeightPlan(geometry, tiling), {
    gradOut: gradOut.buffer,
    x: x.buffer,
    gradWeight: gradWeight.buffer,
  });
  return gradWeight;
}

/**
 * Records a plan's dispatches on the pass's buffers (by role), with its scratch tensors, which go back to
 * the pool once recorded (later users of those buffers run after these dispatches).
 */
export function dispatchConvPlan(plan: ConvPlan, operands: Record<string, GPUBuffer>): void {
  const scratch = Object.entries(plan.scratch).map(([role, size]) =>
    [role, Tensor.empty([size], { name: `conv2d ${role}` })] as const
  );
  const buffers = new Map(Object.entries(operands));
  for (const [role, tensor] of scratch) buffers.set(role, tensor.buffer);
  for (const kernel of plan.kernels) {
    const bound = kernel.buffers.map((role) => {
      const buffer = buffers.get(role);
      if (!buffer) throw new Error(`spikegpu: conv2d kernel ${kernel.key} needs a ${role} buffer`);
      return buffer;
    });
    const params = paramsBuffer(kernel.key, kernel.dispatches);
    kernel.dispatches.forEach(({ ranges, workgroups }, d) => {
      const bindings: (GPUBuffer | GPUBufferBinding)[] = bound.map((buffer, i) => {
        const range = ranges[i];
        if (!range) return buffer;
        if (range.offset + range.size > buffer.size) {
          throw new Error(
            `spikegpu: conv2d kernel ${kernel.key} reads bytes up to ${range.offset + range.size} of its ` +
              `${kernel.buffers[i]} buffer, which has ${buffer.size}`,
          );
        }
        return { buffer, offset: range.offset, size: range.size };
      });
      if (params) bindings.push({ buffer: params.buffer, offset: d * params.stride, size: params.size });
      dispatch(kernel, bindings, workgroups);
    });
  }
  for (const [, tensor] of scratch) tensor.dispose();
}

/** A kernel's per-dispatch parameters in one uniform buffer: dispatch i's at `i * stride`, `size` bytes. */
interface ParamsSlots {
  buffer: GPUBuffer;
  stride: number;
  size: number;
}

const paramsBuffers = new Map<string, ParamsSlots | undefined>();

/**
 * The parameters of a kernel's dispatches (by kernel key: equal keys mean equal dispatches), uploaded on
 * first use: writing them per dispatch would cost about as much as the dispatch itself on a CPU adapter.
 */
function paramsBuffer(key: string, dispatches: readonly ConvDispatch[]): ParamsSlots | undefined {
  if (paramsBuffers.has(key)) return paramsBuffers.get(key);
  const count = dispatches[0]?.params?.length ?? 0;
  let slots: ParamsSlots | undefined;
  if (count > 0) {
    const { device } = gpu();
    const size = Math.ceil(count / 4) * 16;
    const alignment = device.limits.minUniformBufferOffsetAlignment;
    const stride = Math.ceil(size / alignment) * alignment;
    const words = new Uint32Array((dispatches.length * stride) / 4);
    dispatches.forEach((d, i) => words.set(d.params!, (i * stride) / 4));
    const buffer = device.createBuffer({
      size: words.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: `${key} params`,
    });
    device.queue.writeBuffer(buffer, 0, words);
    slots = { buffer, stride, size };
  }
  paramsBuffers.set(key, slots);
  return slots;
}
