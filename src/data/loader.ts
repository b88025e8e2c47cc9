/**
 * Batching: shuffled epochs from a seed, batches built in parallel by a pool of Web Workers (or
 * in-process with workers: 0), delivered in order with a configurable number in flight.
 *
 * Determinism: the epoch's order comes from Rng.seeded(seed, epoch, -1) and each sample's
 * augmentation from Rng.seeded(seed, epoch, index), so a batch is the same whichever worker (or none)
 * builds it, and resuming at (epoch, batch) needs no saved RNG state.
 */
import type { Dataset, DatasetSpec, Sample } from "./dataset.ts";
import { permutation, Rng } from "./rng.ts";

export type { Dataset, DatasetName, DatasetOptions, DatasetSpec, Sample, Split } from "./dataset.ts";

/** A batch from the loader, on the CPU. */
export interface Batch {
  /** (B, C, H, W) for images, (T, B, C, H, W) time-major for event frames, row-major. */
  data: Float32Array;
  /** Shape of `data`. */
  shape: number[];
  /** Class index of each sample. */
  labels: Int32Array;
  /** Samples of this batch dropped as unreadable (so B can be below batchSize). */
  skipped: number;
  /** Epoch the batch belongs to. */
  epoch: number;
  /** Position of the batch in its epoch. */
  index: number;
}

/** How a DataLoader batches, shuffles and parallelises. */
export interface DataLoaderOptions {
  /** Samples per batch. */
  batchSize: number;
  /** Seed of the shuffles and augmentations; default 0. */
  seed?: number;
  /** Apply training augmentation; default true when the data set's split is "train". */
  train?: boolean;
  /** Shuffle each epoch; default = train. */
  shuffle?: boolean;
  /** Drop the last, partial batch; default false. */
  dropLast?: boolean;
  /** Worker count; 0 builds batches in-process. Default 0. */
  workers?: number;
  /** Batches being built ahead of the consumer; default max(1, 2 * workers). */
  prefetch?: number;
  /** This process's share of each epoch in a data-parallel run (see `shardOrder`); default: all. */
  shard?: Shard;
}

/**
 * Rank `rank` of `size` takes every `size`-th index of the epoch's order, from position `rank`, as
 * torch's DistributedSampler does. `pad`: the order is first extended with its own first indices to a
 * multiple of `size`, so every rank gets as many samples (training: the ranks step together); without
 * it (evaluation) every sample is counted exactly once and ranks may differ by one sample.
 */
export interface Shard {
  /** This process's rank. */
  rank: number;
  /** Ranks in the job. */
  size: number;
  /** Pad the order to a multiple of `size` (training) or not (evaluation). */
  pad: boolean;
}

/** The indices of `order` that `shard` takes (see Shard). */
export function shardOrder(order: Int32Array, shard: Shard): Int32Array {
  const { rank, size, pad } = shard;
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size) {
    throw new Error(`DataLoader: shard rank ${rank} of ${size} is not a rank of the job`);
  }
  const total = pad ? Math.ceil(order.length / size) * size : order.length;
  const count = Math.max(0, Math.ceil((total - rank) / size));
  return Int32Array.from({ length: count }, (_, i) => order[(rank + i * size) % order.length]);
}

/** The Rng stream that shuffles an epoch (sample streams use indices >= 0). */
const SHUFFLE_STREAM = -1;

/** Stacks samples into a batch: (B, ...shape) for 3-D samples, (T, B, C, H, W) for 4-D (T, C, H, W) samples. */
export function collate(
  samples: readonly Sample[],
  sampleShape: readonly number[],
  source: string,
): { data: Float32Array; shape: number[]; labels: Int32Array } {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const count = samples.length;
  const data = new Float32Array(count * size);
  const labels = new Int32Array(count);
  samples.forEach((sample, b) => {
    if (sample.data.length !== size) {
      throw new Error(
        `${source}: a sample has ${sample.data.length} values, expected [${
          sampleShape.join(", ")
        }] = ${size}`,
      );
    }
    labels[b] = sample.label;
  });
  if (sampleShape.length === 4) {
    const [T, ...frame] = sampleShape;
    const frameSize = frame.reduce((a, b) => a * b, 1);
    samples.forEach((sample, b) => {
      for (let t = 0; t < T; t++) {
        data.set(sample.data.subarray(t * frameSize, (t + 1) * frameSize), (t * count + b) * frameSize);
      }
    });
    return { data, shape: [T, count, ...frame], labels };
  }
  samples.forEach((sample, b) => data.set(sample.data, b * size));
  return { data, shape: [count, ...sampleShape], labels };
}

/** Builds one batch: each sample drawn with its own (seed, epoch, index) stream, then collated. */
export async function buildBatch(
  dataset: Dataset,
  indices: ArrayLike<number>,
  epoch: number,
  seed: number,
  train: boolean,
): Promise<{ data: Float32Array; shape: number[]; labels: Int32Array; skipped: number }> {
  const results = await Promise.all(
    Array.from(indices, (index) => dataset.get(index, Rng.seeded(seed, epoch, index), train)),
  );
  const samples = results.filter((s): s is Sample => s !== null);
  return { ...collate(samples, dataset.sampleShape, dataset.name), skipped: results.length - samples.length };
}

interface Pending {
  resolve: (batch: Omit<Batch, "epoch" | "index">) => void;
  reject: (error: Error) => void;
}

/** One worker and the batches it owes. */
class PoolWorker {
  readonly pending = new Map<number, Pending>();
  private readonly worker: Worker;

  constructor(spec: DatasetSpec, seed: number, train: boolean) {
    this.worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
    this.worker.onmessage = (event: MessageEvent) => {
      const message = event.data;
      const job = this.pending.get(message.id);
      if (!job) return;
      this.pending.delete(message.id);
      if (message.type === "error") job.reject(new Error(message.message));
      else {job.resolve({
          data: message.data,
          shape: message.shape,
          labels: message.labels,
          skipped: message.skipped,
        });}
    };
    this.worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.failAll(new Error(`data worker crashed: ${event.message}`));
    };
    this.worker.postMessage({ type: "init", spec, seed, train });
  }

  run(id: number, epoch: number, indices: Int32Array): Promise<Omit<Batch, "epoch" | "index">> {
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: "batch", id, epoch, indices });
    });
  }

  failAll(error: Error) {
    for (const job of this.pending.values()) job.reject(error);
    this.pending.clear();
  }

  terminate() {
    this.worker.terminate();
    this.failAll(new Error("data loader closed"));
  }
}

/**
 * Batches of a data set: shuffled per epoch from a seed, built in-process or by a pool of workers, the same
 * batches either way.
 */
export class DataLoader {
  /** Samples per batch. */
  readonly batchSize: number;
  /** Seed of the shuffles and augmentations. */
  readonly seed: number;
  /** Whether training augmentation applies. */
  readonly train: boolean;
  /** Whether each epoch is shuffled. */
  readonly shuffle: boolean;
  /** Whether the last, partial batch is dropped. */
  readonly dropLast: boolean;
  /** Worker threads; 0 builds batches in-process. */
  readonly workerCount: number;
  /** Batches built ahead of the consumer. */
  readonly prefetch: number;
  /** This process's share of each epoch, or undefined for all of it. */
  readonly shard: Shard | undefined;
  private pool: PoolWorker[] | null = null;
  private nextJob = 0;
  private skippedCount = 0;

  /** Batches of `dataset`; workers need the data set's `spec`. */
  constructor(readonly dataset: Dataset, options: DataLoaderOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new Error(`DataLoader: batchSize must be a positive integer, got ${options.batchSize}`);
    }
    this.batchSize = options.batchSize;
    this.seed = options.seed ?? 0;
    this.train = options.train ?? (dataset.spec?.options.split ?? "train") === "train";
    this.shuffle = options.shuffle ?? this.train;
    this.dropLast = options.dropLast ?? false;
    this.workerCount = options.workers ?? 0;
    if (!Number.isInteger(this.workerCount) || this.workerCount < 0) {
      throw new Error(`DataLoader: workers must be a non-negative integer, got ${options.workers}`);
    }
    if (this.workerCount > 0 && !dataset.spec) {
      throw new Error(
        `DataLoader: data set ${dataset.name} has no spec to rebuild it in a worker; use workers: 0`,
      );
    }
    this.prefetch = Math.max(1, options.prefetch ?? 2 * this.workerCount);
    this.shard = options.shard && options.shard.size > 1 ? options.shard : undefined;
  }

  /** Number of samples in the data set. */
  get length(): number {
    return this.dataset.length;
  }

  /** The data set's number of classes. */
  get numClasses(): number {
    return this.dataset.numClasses;
  }

  /** Samples this process takes per epoch: the whole data set, or its shard. */
  get samplesPerEpoch(): number {
    const n = this.dataset.length;
    if (!this.shard) return n;
    const { rank, size, pad } = this.shard;
    return pad ? Math.ceil(n / size) : Math.max(0, Math.ceil((n - rank) / size));
  }

  /** Batches per epoch (the partial last batch counts unless dropLast). */
  get batchesPerEpoch(): number {
    const n = this.samplesPerEpoch / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** Samples skipped as unreadable in the batches delivered so far. */
  get skipped(): number {
    return this.skippedCount;
  }

  /** The data set order of an epoch (this process's shard of it in a data-parallel run). */
  order(epoch: number): Int32Array {
    const order = this.shuffle
      ? permutation(this.dataset.length, Rng.seeded(this.seed, epoch, SHUFFLE_STREAM))
      : Int32Array.from({ length: this.dataset.length }, (_, i) => i);
    return this.shard ? shardOrder(order, this.shard) : order;
  }

  /** Starts the worker pool on first use. */
  private startPool(): PoolWorker[] {
    if (!this.pool) {
      this.pool = Array.from(
        { length: this.workerCount },
        () => new PoolWorker(this.dataset.spec!, this.seed, this.train),
      );
    }
    return this.pool;
  }

  /** Builds the batch of `indices`, in-process or on a worker. */
  private produce(epoch: number, indices: Int32Array): Promise<Omit<Batch, "epoch" | "index">> {
    if (this.workerCount === 0) return buildBatch(this.dataset, indices, epoch, this.seed, this.train);
    const pool = this.startPool();
    const worker = pool.reduce((best, w) => (w.pending.size < best.pending.size ? w : best), pool[0]);
    return worker.run(this.nextJob++, epoch, indices);
  }

  /** The batches of `epoch`, from batch `startBatch` on (to resume mid-epoch). */
  async *epoch(epoch: number, startBatch = 0): AsyncGenerator<Batch> {
    const order = this.order(epoch);
    const count = this.batchesPerEpoch;
    const inFlight: { index: number; promise: Promise<Omit<Batch, "epoch" | "index">> }[] = [];
    let next = startBatch;
    let delivered = 0;
    let skipped = 0;
    const launch = () => {
      const indices = order.slice(next * this.batchSize, Math.min((next + 1) * this.batchSize, order.length));
      const promise = this.produce(epoch, indices);
      // Marks the promise handled now; awaiting it below still throws its error in order.
      promise.catch(() => {});
      inFlight.push({ index: next++, promise });
    };
    while (next < count && inFlight.length < this.prefetch) launch();
    while (inFlight.length > 0) {
      const { index, promise } = inFlight.shift()!;
      const batch = await promise;
      if (next < count) launch();
      this.skippedCount += batch.skipped;
      skipped += batch.skipped;
      if (batch.labels.length === 0) continue;
      delivered += batch.labels.length;
      yield { ...batch, epoch, index };
    }
    // Training on nothing would "succeed" with empty metrics and checkpoints; stop instead.
    if (delivered === 0 && skipped > 0) {
      throw new Error(
        `${this.dataset.name}: all ${skipped} samples of epoch ${epoch + 1} were skipped as unreadable ` +
          "(the warnings above name the files); expected at least one readable sample",
      );
    }
  }

  /** Stops the workers; the loader can start new ones if used again. */
  close(): void {
    for (const worker of this.pool ?? []) worker.terminate();
    this.pool = null;
  }
}
