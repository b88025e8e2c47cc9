/**
 * The losses of SPEC §6 as differentiable scalars: cross-entropy, the temperature-softened KL between
 * two logit sets (teacher side detached), and the weighted sum that combines them into the SML loss.
 */
import { f32 } from "../../kernels/common.ts";
import {
  CROSS_ENTROPY_STATS,
  crossEntropyBackwardKernel,
  crossEntropyForwardKernel,
  KL_STATS,
  stridedMeanKernel,
  temperatureKlBackwardKernel,
  temperatureKlForwardKernel,
  WEIGHTED_SUM_TERMS,
  weightedSumKernel,
} from "../../kernels/loss.ts";
import { dispatch } from "../gpu/kernels.ts";
import { record } from "../tensor/tape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { map } from "./elementwise.ts";

function describe(t: Tensor): string {
  return `${t.name} [${t.shape.join(", ")}] ${t.dtype}`;
}

function checkLogits(op: string, logits: Tensor): [number, number] {
  if (logits.shape.length !== 2 || logits.dtype !== "f32" || logits.shape[0] < 1 || logits.shape[1] < 1) {
    throw new Error(`spikegpu: ${op}: logits ${describe(logits)} must be f32 (B, K) with B, K >= 1`);
  }
  return [logits.shape[0], logits.shape[1]];
}

/** The batch mean of one per-row statistic, as a scalar tensor. */
function meanOfRows(stats: Tensor, batch: number, stride: number, name: string): Tensor {
  const out = Tensor.empty([], { name });
  const kernel = stridedMeanKernel(batch, stride);
  dispatch(kernel, [stats.buffer, out.buffer], kernel.workgroups);
  return out;
}

/**
 * `F.cross_entropy(logits, labels)`: the batch mean of -log softmax(logits)[label], a scalar `[]`.
 * Labels are i32 in [0, K); they are not checked (that would need a readback), and an out-of-range label
 * gives a meaningless loss rather than an error. The gradient flows to `logits` only.
 */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const [batch, classes] = checkLogits("crossEntropy", logits);
  if (labels.shape.length !== 1 || labels.shape[0] !== batch || labels.dtype !== "i32") {
    throw new Error(
      `spikegpu: crossEntropy: labels ${describe(labels)} must be i32 (${batch}) to match logits ${
        describe(logits)
      }`,
    );
  }
  const stats = Tensor.empty([batch, CROSS_ENTROPY_STATS], { name: "cross_entropy_rows" });
  const forward = crossEntropyForwardKernel(batch, classes);
  dispatch(forward, [logits.buffer, labels.buffer, stats.buffer], forward.workgroups);
  const loss = meanOfRows(stats, batch, CROSS_ENTROPY_STATS, "cross_entropy");
  return record(loss, [logits], (gradOut) => {
    const grad = Tensor.empty(logits.shape, { name: "cross_entropy_grad" });
    const backward = crossEntropyBackwardKernel(batch, classes);
    dispatch(
      backward,
      [logits.buffer, labels.buffer, stats.buffer, gradOut.buffer, grad.buffer],
      backward.workgroups,
    );
    return [grad];
  });
}

/**
 * SPEC §6 `KLd(student, teacher)`: `(1/B) sum_b sum_k p_k (log p_k - log softmax(student/T)_k)` with
 * `p = softmax(teacher/T)`, a scalar `[]`. The teacher is detached (stop-gradient): it is not an input of
 * the recorded op, so it gets no gradient even when it requires one. No T^2 factor.
 */
export function temperatureKl(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  const [batch, classes] = checkLogits("temperatureKl", student);
  if (teacher.shape.join() !== student.shape.join() || teacher.dtype !== "f32") {
    throw new Error(
      `spikegpu: temperatureKl: teacher ${describe(teacher)} must match student ${describe(student)}`,
    );
  }
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new Error(`spikegpu: temperatureKl: temperature must be a positive number, not ${temperature}`);
  }
  const stats = Tensor.empty([batch, KL_STATS], { name: "temperature_kl_rows" });
  const forward = temperatureKlForwardKernel(batch, classes, temperature);
  dispatch(forward, [student.buffer, teacher.buffer, stats.buffer], forward.workgroups);
  const loss = meanOfRows(stats, batch, KL_STATS, "temperature_kl");
  return record(loss, [student], (gradOut) => {
    const grad = Tensor.empty(student.shape, { name: "temperature_kl_grad" });
    const backward = temperatureKlBackwardKernel(batch, classes, temperature);
    dispatch(
      backward,
      [student.buffer, teacher.buffer, stats.buffer, gradOut.buffer, grad.buffer],
      backward.workgroups,
    );
    return [grad];
  });
}

/** `sum_i weights[i] * terms[i]` over scalar tensors, a scalar `[]`; each term gets `weights[i] * g`. */
export function weightedSum(terms: readonly Tensor[], weights: readonly number[]): Tensor {
  if (terms.length === 0 || terms.length !== weights.length) {
    throw new Error(
      `spikegpu: weightedSum: got ${terms.length} terms and ${weights.length} weights; need as many of each, at least one`,
    );
  }
  for (const term of terms) {
    if (term.size !== 1 || term.dtype !== "f32") {
      throw new Error(`spikegpu: weightedSum: term ${describe(term)} must be an f32 scalar`);
    }
  }
  for (const weight of weights) {
    if (!Number.isFinite(weight)) throw new Error(`spikegpu: weightedSum: weight ${weight} is not finite`);
  }
  const out = Tensor.empty([], { name: "weighted_sum" });
  // Eight storage bindings per kernel: longer sums accumulate over several dispatches.
  for (let start = 0; start < terms.length; start += WEIGHTED_SUM_TERMS) {
    const chunk = terms.slice(start, start + WEIGHTED_SUM_TERMS);
    const kernel = weightedSumKernel(weights.slice(start, start + WEIGHTED_SUM_TERMS), start > 0);
    dispatch(kernel, [...chunk.map((t) => t.buffer), out.buffer], kernel.workgroups);
  }
  return record(
    out,
    terms,
    (gradOut) =>
      terms.map((term, i) =>
        term.requiresGrad
          // The map kernel's name must identify its expression, so it carries the weight.
          ? map(`weighted_sum_grad_${f32(weights[i])}`, [gradOut], `a * ${f32(weights[i])}`, term.shape)
          : null
      ),
  );
}
