/**
 * Batch norm followed by multi-step LIF neurons, optionally with a residual added between them (a spiking
 * ResNet block's `lif(bn(conv(x)) + shortcut)`). The normalisation runs inside the LIF forward kernel, so
 * the normalised tensor (and the sum with the residual) is never stored: on software adapters, where every
 * storage access costs a per-lane loop, that is two to four full-tensor passes fewer per layer.
 */
import {
  lifBackwardKernel,
  lifNormalizedBackwardKernel,
  lifNormalizedForwardKernel,
  MAX_RECOMPUTED_STEPS,
} from "../../kernels/lif.ts";
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
  const normalized = { channels, spatial, residual: !!residual };
  // The backward gets the membrane u_t by running the neurons again from x, the statistics and the
  // residual, which it keeps anyway, unless T is too long to unroll; then the forward saves it.
  const saveMembrane = needsGrad && spec.steps > MAX_RECOMPUTED_STEPS;
  const forward = lifNormalizedForwardKernel(spec, normalized, saveMembrane);
  const operands = [x, statistics.stats, ...(residual ? [residual] : []), spikes];
  const membrane = saveMembrane ? Tensor.empty(x.shape, { name: `${x.name}_membrane` }) : undefined;
  dispatch(forward, [...operands, ...(membrane ? [membrane] : [])].map((t) => t.buffer), forward.workgroups);
  if (!needsGrad) {
    statistics.stats.dispose();
    return spikes;
  }
  return record(spikes, inputs, (gradSpikes) => {
    const gradInput = Tensor.empty(x.shape, { name: `${x.name}_lif_grad` });
    if (membrane) {
      const backward = lifBackwardKernel(spec);
      dispatch(backward, [membrane.buffer, gradSpikes.buffer, gradInput.buffer], backward.workgroups);
    } else {
      const backward = lifNormalizedBackwardKernel(spec, normalized);
      const sources = [x, statistics.stats, ...(residual ? [residual] : []), gradSpikes, gradInput];
      dispatch(backward, sources.map((t) => t.buffer), backward.workgroups);
    }
    const grads = batchNormBackward(x, state, statistics, bnOptions.training, gradInput);
    return residual ? [...grads, gradInput] : grads;
  });
}
