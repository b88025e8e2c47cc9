/**
 * Gradient averaging for data-parallel training, as DistributedDataParallel does after backward: every
 * parameter's gradient is copied into a flat staging tensor on the GPU (one bucket up to 256 MiB, more
 * only for larger models or a smaller binding limit), read back once, summed over
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
import { gpu } from "../gpu/device.ts";
import { averageKernel } from "../../kernels/average.ts";
import { untracked } from "../tensor/scope.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Communicator } from "./communicator.ts";

/** Milliseconds spent in the last call, by phase. */
export interface AllreduceTiming {
  /** GPU copy into the staging tensor and its readback (waits for the step's GPU work to finish). */
  readback: number;
  /** The MPI_Allreduce itself. */
  allreduce: number;
  /** Upload and copies back into the gradients (recorded, not waited for). */
  upload: number;
  /** Bytes all-reduced. */
  bytes: number;
}

/** Largest staging bucket: one readback each; a larger model uses several (each within one binding). */
const MAX_BUCKET_BYTES = 256 * 2 ** 20;

/** Where one tensor's values sit: bucket, offset in the bucket, and offset in the host array (values). */
interface Slot {
  bucket: number;
  offset: number;
  hostOffset: number;
}

/** One rank's gradient averaging (and BN-statistics broadcast) through flat staging buckets. */
export class GradientAllreduce {
  readonly #statistics: readonly Tensor[];
  readonly #buckets: Tensor[] = [];
  /** Host offset of each bucket's first value. */
  readonly #bucketStarts: number[] = [];
  readonly #slots = new Map<Tensor, Slot>();
  /** Values of the gradient slots, which come before the statistics' in the host array. */
  readonly #gradientValues: number;
  readonly #totalValues: number;
  #timing: AllreduceTiming = { readback: 0, allreduce: 0, upload: 0, bytes: 0 };

  /**
   * `statistics`: tensors (BN running mean/var) that every rank takes from rank 0 after each step. Every
   * parameter and statistic gets a fixed slot in a staging bucket; a parameter without a gradient in a
   * step leaves its slot unread. `bucketBytes` caps a bucket (a tensor larger than it gets its own).
   */
  constructor(
    readonly communicator: Communicator,
    readonly params: readonly Tensor[],
    statistics: readonly Tensor[],
    bucketBytes = MAX_BUCKET_BYTES,
  ) {
    this.#statistics = statistics;
    const { maxStorageBindingBytes, maxBufferBytes } = gpu();
    const limit = Math.floor(Math.min(bucketBytes, maxStorageBindingBytes, maxBufferBytes) / 4);
    const sizes: number[] = [];
    let host = 0;
    for (const tensor of [...params, ...statistics]) {
      const last = sizes.length - 1;
      if (last < 0 || sizes[last] + tensor.size > limit) {
        sizes.push(0);
        this.#bucketStarts.push(host);
      }
      this.#slots.set(tensor, {
        bucket: sizes.length - 1,
        offset: sizes[sizes.length - 1],
        hostOffset: host,
      });
      sizes[sizes.length - 1] += tensor.size;
      host += tensor.size;
    }
    this.#gradientValues = params.reduce((n, p) => n + p.size, 0);
    this.#totalValues = host;
    this.#buckets = sizes.map((size, i) =>
      untracked(() => Tensor.empty([size], { name: `allreduce_staging_${i}` }))
    );
  }

  /** Where the last `run` spent its time. */
  get timing(): AllreduceTiming {
    return this.#timing;
  }

  /** Staging buckets (one readback and one upload each per step). */
  get bucketCount(): number {
    return this.#buckets.length;
  }

  /**
   * Averages the gradients present (a parameter without a gradient has none on any rank: the ranks run
   * the same model) and copies rank 0's statistics to every rank.
   */
  async run(): Promise<void> {
    if (this.#totalValues === 0) return;
    const start = performance.now();
    const parts: { tensor: Tensor; slot: Slot }[] = [];
    for (const param of this.params) {
      if (param.grad) parts.push({ tensor: param.grad, slot: this.#slots.get(param)! });
    }
    for (const tensor of this.#statistics) parts.push({ tensor, slot: this.#slots.get(tensor)! });
    for (const { tensor, slot } of parts) {
      copyBuffer(tensor.buffer, 0, this.#buckets[slot.bucket].buffer, slot.offset * 4, tensor.byteLength);
    }
    const host = new Float32Array(this.#totalValues);
    const readbacks = this.#buckets.map((bucket) => readBuffer(bucket.buffer, bucket.byteLength));
    (await Promise.all(readbacks)).forEach((bytes, i) =>
      host.set(new Float32Array(bytes), this.#bucketStarts[i])
    );
    const read = performance.now();
    const { rank, size } = this.communicator;
    if (rank !== 0) host.fill(0, this.#gradientValues);
    this.communicator.allreduce(host);
    const reduced = performance.now();
    this.#buckets.forEach((bucket, i) => {
      const from = this.#bucketStarts[i];
      writeBuffer(bucket.buffer, host.subarray(from, from + bucket.size));
      const gradients = Math.min(bucket.size, this.#gradientValues - from);
      if (gradients > 0 && size > 1) {
        const average = averageKernel(gradients, size);
        dispatch(average, [bucket.buffer], average.workgroups);
      }
    });
    for (const { tensor, slot } of parts) {
      copyBuffer(this.#buckets[slot.bucket].buffer, slot.offset * 4, tensor.buffer, 0, tensor.byteLength);
    }
    this.#timing = {
      readback: read - start,
      allreduce: reduced - read,
      upload: performance.now() - reduced,
      bytes: this.#totalValues * 4,
    };
  }

  /** Frees the staging buckets. */
  dispose(): void {
    for (const bucket of this.#buckets) bucket.dispose();
  }
}
