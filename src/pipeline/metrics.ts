/**
 * Running training/evaluation metrics accumulated on the GPU (no readback inside a step) and read once
 * per log interval: sample count, loss and its hard/soft parts, and top-1/top-5 hits of the SNN and of
 * every surrogate module.
 */
import { accumulateKernel, fillKernel } from "../../kernels/elementwise.ts";
import { addConstantKernel, addScalarKernel, topkCountKernel } from "../../kernels/metrics.ts";
import { dispatch } from "../gpu/kernels.ts";
import { fill } from "../ops/elementwise.ts";
import { untracked } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";

const COUNT = 0;
const LOSS = 1;
const HARD = 2;
const SOFT = 3;
const HEADS = 4;

/** Loss and accuracy means over the samples since the last reset. */
export interface MetricsSnapshot {
  /** Samples counted. */
  samples: number;
  /** Means over the samples since the last reset. */
  loss: number;
  /** Mean hard (cross-entropy) part. */
  hard: number;
  /** Mean soft (mutual KL) part. */
  soft: number;
  /** Index 0: the SNN; 1..N: the surrogate modules. Fractions in [0, 1]. */
  top1: number[];
  /** Top-5 accuracy, as top1. */
  top5: number[];
}

/** Sums of loss and accuracy per head, kept on the GPU and read only when asked. */
export class MetricsAccumulator {
  readonly #stats: Tensor;
  readonly #heads: number;
  readonly #reduce: ((sums: Float32Array) => void) | undefined;

  /**
   * `heads` = 1 (the SNN) + number of surrogate modules. `reduce`, in a data-parallel run, sums the
   * read-back sums and counts over ranks, so every rank reads the job's metrics (exact counts).
   */
  constructor(heads: number, reduce?: (sums: Float32Array) => void) {
    this.#heads = heads;
    this.#reduce = reduce;
    this.#stats = untracked(() => fill([HEADS + 2 * heads], 0, "metrics"));
  }

  /** Adds one batch: its mean loss parts (scalars) and the logits of each head. */
  add(
    batchSize: number,
    loss: { loss: Tensor; hard: Tensor; soft: Tensor | null } | null,
    logits: readonly Tensor[],
    labels: Tensor,
  ): void {
    const stats = this.#stats.buffer;
    if (loss) {
      dispatch(addScalarKernel(LOSS, batchSize), [loss.loss.buffer, stats], [1]);
      dispatch(addScalarKernel(HARD, batchSize), [loss.hard.buffer, stats], [1]);
      if (loss.soft) dispatch(addScalarKernel(SOFT, batchSize), [loss.soft.buffer, stats], [1]);
    }
    logits.slice(0, this.#heads).forEach((head, h) => {
      const [batch, classes] = head.shape;
      dispatch(topkCountKernel(batch, classes, HEADS + 2 * h), [head.buffer, labels.buffer, stats], [1]);
    });
    dispatch(addConstantKernel(COUNT, batchSize), [stats], [1]);
  }

  /** The means so far (one readback). */
  async read(): Promise<MetricsSnapshot> {
    const s = await this.#stats.readFloat();
    this.#reduce?.(s);
    const n = s[COUNT] || 1;
    const heads = Array.from({ length: this.#heads }, (_, h) => h);
    return {
      samples: s[COUNT],
      loss: s[LOSS] / n,
      hard: s[HARD] / n,
      soft: s[SOFT] / n,
      top1: heads.map((h) => s[HEADS + 2 * h] / n),
      top5: heads.map((h) => s[HEADS + 2 * h + 1] / n),
    };
  }

  /** Adds another accumulator's sums (same heads) into this one. */
  addFrom(other: MetricsAccumulator): void {
    const kernel = accumulateKernel(this.#stats.size);
    dispatch(kernel, [this.#stats.buffer, other.#stats.buffer], kernel.workgroups);
  }

  /** Starts a new window. */
  reset(): void {
    const kernel = fillKernel(this.#stats.size, 0);
    dispatch(kernel, [this.#stats.buffer], kernel.workgroups);
  }

  /** Frees the GPU sums. */
  dispose(): void {
    this.#stats.dispose();
  }
}
