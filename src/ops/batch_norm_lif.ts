/**
 * Batch norm followed by multi-step LIF neurons, optionally with a residual added between them (a spiking
 * ResNet block's `lif(bn(conv(x)) + shortcut)`). The normalisation runs inside the LIF forward kernel, so
 * the normalised tensor (and the sum with the residual) is never stored: on software adapters, where every
 * storage access costs a per-lane loop, that is two to four full-tensor passes fewer per layer.
 */
import { lifBackwardKernel, lifNormalizedForwardKernel } from "../../kernels/lif.ts";
import { dispatch } from "../gpu/kernels.ts";
import { currentTape, record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";
import {
  batchNormBackward,
  type BatchNormOptions,
  type BatchNormState,
  batchNormStatistics,
} from "./batch_norm.ts";
import { type LifOptions, lifSpec } from "./lif.ts";

/**
 * `lif(batchNorm(x) + residual)` (residual optional) with the same values and gradients as that chain of
 * ops: the residual's gradient is the neurons' input gradient, as `add` would hand it on.
 */
export function batchNormLif(
  x: Tensor,
  state: BatchNormState,
  bnOptions: BatchNormOptions,
  lifOptions: LifOptions,
  residual?: Tensor,
): Tensor {
  if (residual && (residual.dtype !== "f32" || residual.shape.join() !== x.shape.join())) {
    throw new Error(
      `batchNormLif: residual ${residual.name} is ${residual.dtype} [${residual.shape.join(", ")}], ` +
        `expected f32 [${x.shape.join(", ")}] like ${x.name}`,
    );
  }
  const spec = lifSpec(x, lifOptions, false);
  const statistics = batchNormStatistics(x, state, bnOptions);
  const { channels, spatial } = statistics.shape;
  const inputs = [x, state.weight, state.bias, ...(residual ? [residual] : [])];
  const needsGrad = currentTape() !== undefined && inputs.some((t) => t.requiresGrad);
  const spikes = Tensor.empty(x.shape, { name: `${x.name}_spikes` });
  const forward = lifNormalizedForwardKernel(spec, { channels, spatial, residual: !!residual }, needsGrad);
  const operands = [x, statistics.stats, ...(residual ? [residual] : []), spikes];
  if (!needsGrad) {
    dispatch(forward, operands.map((t) => t.buffer), forward.workgroups);
    statistics.stats.dispose();
    return spikes;
  }
  // The membrane before firing, u_t, is all the LIF backward reads.
  const membrane = Tensor.empty(x.shape, { name: `${x.name}_membrane` });
  dispatch(forward, [...operands, membrane].map((t) => t.buffer), forward.workgroups);
  return record(spikes, inputs, (gradSpikes) => {
    const gradInput = Tensor.empty(x.shape, { name: `${x.name}_lif_grad` });
    const backward = lifBackwardKernel(spec);
    dispatch(backward, [membrane.buffer, gradSpikes.buffer, gradInput.buffer], backward.workgroups);
    const grads = batchNormBackward(x, state, statistics, bnOptions.training, gradInput);
    return residual ? [...grads, gradInput] : grads;
  });
}
