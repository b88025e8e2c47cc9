/** The SML loss of SPEC §6: hard (cross-entropy) and soft (mutual temperature KL) parts. */
import { crossEntropy, temperatureKl, weightedSum } from "../ops/loss.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** SML loss weights (SPEC §6). */
export interface SmlLossOptions {
  /** Distillation temperature tau_d (default 3). */
  temperature?: number;
  /** Weight of each module's cross-entropy (default 0.5). */
  alpha?: number;
  /** Weight of the soft part (default 0.9). */
  lambda?: number;
}

/** The SML loss and its parts, each a scalar tensor. */
export interface SmlLoss {
  /** lambda * soft + (1 - lambda) * hard, what training minimises. */
  loss: Tensor;
  /** (CE(y0) + alpha * sum CE(yi)) / (N alpha + 1); equals CE(y0) with no modules. */
  hard: Tensor;
  /** sum_i [KL(yi, y0) + KL(y0, yi)] / (2N + 1e-8); null with no modules. */
  soft: Tensor | null;
}

/** The paper's loss weights. */
export const SML_DEFAULTS = { temperature: 3, alpha: 0.5, lambda: 0.9 } as const;

/**
 * `snnLogits` (B, K), one (B, K) per module, `labels` (B) i32. With no modules this is plain
 * cross-entropy (the surrogate-gradient baseline).
 */
export function smlLoss(
  snnLogits: Tensor,
  moduleLogits: readonly Tensor[],
  labels: Tensor,
  options: SmlLossOptions = {},
): SmlLoss {
  const { temperature, alpha, lambda } = { ...SML_DEFAULTS, ...options };
  const n = moduleLogits.length;
  const snnCe = crossEntropy(snnLogits, labels);
  if (n === 0) return { loss: snnCe, hard: snnCe, soft: null };
  const hard = weightedSum(
    [snnCe, ...moduleLogits.map((y) => crossEntropy(y, labels))],
    [1 / (n * alpha + 1), ...moduleLogits.map(() => alpha / (n * alpha + 1))],
  );
  const klTerms = moduleLogits.flatMap((y) => [
    temperatureKl(y, snnLogits, temperature),
    temperatureKl(snnLogits, y, temperature),
  ]);
  const soft = weightedSum(klTerms, klTerms.map(() => 1 / (2 * n + 1e-8)));
  const loss = weightedSum([soft, hard], [lambda, 1 - lambda]);
  return { loss, hard, soft };
}
