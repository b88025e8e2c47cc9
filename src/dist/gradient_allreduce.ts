/**
 * Gradient averaging for data-parallel training, as DistributedDataParallel does after backward: every
 * parameter's gradient is copied into one flat staging tensor on the GPU, read back once, summed over
 * ranks with one MPI_Allreduce, uploaded once, multiplied by 1 / ranks on the GPU and copied back into the
 * gradients. One readback and one upload per step, not one per parameter.
 *
 * The same staging tensor carries the batch-norm running statistics: ranks other than 0 contribute
 * zeros, so the sum is rank 0's values exactly, and every rank leaves the step holding rank 0's
 * statistics (DDP's `broadcast_buffers`, done after the step rather than before the next forward: the
 * next forward sees the same values, and checkpoints and evaluation see them too).
 *
 * A non-finite gradient on any rank makes the sum non-finite on every rank, so the GradScaler skips (or
 * the finite watch stops) on all ranks at the same step.
 */
import { copyBuffer, dispatch, readBuffer, writeBuffer } from "../gpu/kernels.ts";
import { averageKernel } from "./average_kernel.ts";
import { untracked } from "../tensor/scope.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Communicator } from "./communicator.ts";

/** Milliseconds spent in the last call, by phase. */
export interface AllreduceTiming {
  /** GPU copy into the staging tensor and its readback (waits for the step's GPU work to finish). */
  readback: number;
  allreduce: number;
  /** Upload and copies back into the gradients (recorded, not waited for). */
  upload: number;
  bytes: number;
}

export class GradientAllreduce {
  readonly #staging: Tensor;
  readonly #statistics: readonly Tensor[];
  #timing: AllreduceTiming = { readback: 0, allreduce: 0, upload: 0, bytes: 0 };

  /** `statistics`: tensors (BN running mean/var) that every rank takes from rank 0 after each step. */
  constructor(
    readonly communicator: Communicator,
    readonly params: readonly Tensor[],
    statistics: readonly Tensor[],
  ) {
    this.#statistics = statistics;
    const total = [...params, ...statistics].reduce((n, t) => n + t.size, 0);
    this.#staging = untracked(() => Tensor.empty([Math.max(1, total)], { name: "allreduce_staging" }));
  }

  get timing(): AllreduceTiming {
    return this.#timing;
  }

  /**
   * Averages the gradients present (a parameter without a gradient has none on any rank: the ranks run
   * the same model) and copies rank 0's statistics to every rank.
   */
  async run(): Promise<void> {
    const start = performance.now();
    const parts: { tensor: Tensor; offset: number; gradient: boolean }[] = [];
    let offset = 0;
    for (const param of this.params) {
      if (!param.grad) continue;
      parts.push({ tensor: param.grad, offset, gradient: true });
      offset += param.size;
    }
    const gradientValues = offset;
    for (const tensor of this.#statistics) {
      parts.push({ tensor, offset, gradient: false });
      offset += tensor.size;
    }
    if (offset === 0) return;
    const staging = this.#staging.buffer;
    for (const part of parts) {
      copyBuffer(part.tensor.buffer, 0, staging, part.offset * 4, part.tensor.byteLength);
    }
    const host = new Float32Array(await readBuffer(staging, offset * 4));
    const read = performance.now();
    const { rank, size } = this.communicator;
    if (rank !== 0) host.fill(0, gradientValues);
    this.communicator.allreduce(host);
    const reduced = performance.now();
    writeBuffer(staging, host);
    if (gradientValues > 0 && size > 1) {
      const average = averageKernel(gradientValues, size);
      dispatch(average, [staging], average.workgroups);
    }
    for (const part of parts) {
      copyBuffer(staging, part.offset * 4, part.tensor.buffer, 0, part.tensor.byteLength);
    }
    this.#timing = {
      readback: read - start,
      allreduce: reduced - read,
      upload: performance.now() - reduced,
      bytes: offset * 4,
    };
  }

  dispose(): void {
    this.#staging.dispose();
  }
}
