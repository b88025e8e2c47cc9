/**
 * What a training loop needs to run as one rank of a data-parallel job (DistributedDataParallel's
 * semantics): gradient averaging, sums of metrics over ranks, means of activity over ranks (the
 * reference's `reduce_mean`), who writes the run folder, and start-up checks that every rank runs the
 * same configuration and starts from the same weights.
 */
import { stateDict } from "../io/state_dict.ts";
import type { Module } from "../nn/module.ts";
import type { ActivityReport } from "../nn/activity.ts";
import type { BatchNormReduction } from "../ops/batch_norm_reduction.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Communicator } from "./communicator.ts";
import { GradientAllreduce } from "./gradient_allreduce.ts";

/** One rank of a data-parallel run: gradients averaged over ranks, metrics summed, rank 0 the writer. */
export class DataParallel {
  /** The per-step gradient all-reduce (run between backward and the optimizer update). */
  readonly gradients: GradientAllreduce;
  /**
   * With `syncBatchNorm` on more than one rank (--sync-bn), the collectives that synchronise training
   * batch norms over ranks (src/ops/batch_norm_reduction.ts); else undefined.
   */
  readonly batchNorm: BatchNormReduction | undefined;

  /** `bucketBytes`: the staging buckets' size cap (see GradientAllreduce). */
  constructor(
    readonly communicator: Communicator,
    model: Module,
    params: readonly Tensor[],
    bucketBytes?: number,
    syncBatchNorm = false,
  ) {
    const statistics = model.stateEntries().flatMap((entry) => entry.kind === "buffer" ? [entry.tensor] : []);
    this.gradients = new GradientAllreduce(communicator, params, statistics, bucketBytes);
    this.batchNorm = syncBatchNorm && communicator.size > 1
      ? {
        sum: (values) => communicator.allreduce(values),
        gather: (values) => {
          const all = communicator.allgather(
            new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
          );
          return new Float32Array(all.slice().buffer);
        },
      }
      : undefined;
  }

  /** This process's rank. */
  get rank(): number {
    return this.communicator.rank;
  }

  /** Ranks in the job. */
  get size(): number {
    return this.communicator.size;
  }

  /** Only rank 0 writes the run folder, metrics, plots, checkpoints and exports. */
  get writes(): boolean {
    return this.communicator.rank === 0;
  }

  /** Sums `values` (metric sums and counts) over ranks, in place. */
  readonly sum = (values: Float32Array): void => this.communicator.allreduce(values);

  /** The mean over ranks of every number in an activity report (layer rates, SOPs, energy). */
  meanActivity(report: ActivityReport): ActivityReport {
    // A rank whose test shard is empty (fewer test samples than ranks) recorded no layers: the vectors
    // all-reduced must still have one length on every rank.
    const layers = Float64Array.of(report.layers.length);
    this.communicator.allreduce(layers, "max");
    const values = new Float64Array(3 + 2 * layers[0]);
    values.set([
      report.synapticOps,
      report.macs,
      report.energyMicrojoules,
      ...report.layers.flatMap((layer) => [layer.rate, layer.macs]),
    ]);
    this.communicator.allreduce(values);
    const mean = (i: number) => values[i] / this.size;
    return {
      synapticOps: mean(0),
      macs: mean(1),
      energyMicrojoules: mean(2),
      layers: report.layers.map((layer, i) => ({ ...layer, rate: mean(3 + 2 * i), macs: mean(4 + 2 * i) })),
    };
  }

  /** Frees the staging buffers. */
  dispose(): void {
    this.gradients.dispose();
  }
}

/**
 * Stops every rank, before any step, when the ranks' `settings` differ (flags, model, T, data...): each
 * rank's JSON is gathered, and the error names the first rank and keys that differ from rank 0's.
 */
export function requireSameSettings(communicator: Communicator, what: string, settings: unknown): void {
  const all = gatherText(communicator, stableJson(settings));
  const reference = flatten(JSON.parse(all[0]));
  for (let rank = 1; rank < all.length; rank++) {
    if (all[rank] === all[0]) continue;
    const other = flatten(JSON.parse(all[rank]));
    const keys = [...new Set([...Object.keys(reference), ...Object.keys(other)])]
      .filter((key) => JSON.stringify(reference[key]) !== JSON.stringify(other[key]));
    const shown = keys.slice(0, 4).map((key) =>
      `${key} (rank 0: ${JSON.stringify(reference[key])}, rank ${rank}: ${JSON.stringify(other[key])})`
    );
    throw new Error(
      `distributed run: the ${what} of rank ${rank} differs from rank 0's in ${shown.join(", ")}` +
        `${
          keys.length > 4 ? ` and ${keys.length - 4} more` : ""
        }; every rank must be started with the same ` +
        "flags, data and code",
    );
  }
}

/**
 * Stops every rank when the ranks' weights (parameters and buffers, after --resume or --init-weights)
 * differ, naming the first rank that differs: every rank must start from rank 0's weights.
 */
export async function requireSameWeights(communicator: Communicator, model: Module): Promise<void> {
  const hash = new Uint8Array(32);
  const parts: Uint8Array[] = [];
  for (const [name, array] of await stateDict(model)) {
    parts.push(new TextEncoder().encode(name));
    parts.push(new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength));
  }
  const length = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  hash.set(new Uint8Array(await crypto.subtle.digest("SHA-256", all)));
  const hashes = communicator.allgather(hash);
  for (let rank = 1; rank < communicator.size; rank++) {
    const same = hashes.subarray(rank * 32, rank * 32 + 32).every((byte, i) => byte === hashes[i]);
    if (!same) {
      throw new Error(
        `distributed run: the initial weights of rank ${rank} differ from rank 0's; every rank must read ` +
          "the same --resume / --init-weights file and use the same --seed",
      );
    }
  }
}

/** Every rank's `text`, in rank order (lengths may differ). */
function gatherText(communicator: Communicator, text: string): string[] {
  const bytes = new TextEncoder().encode(text);
  const lengths = new Uint32Array(
    communicator.allgather(new Uint8Array(Uint32Array.of(bytes.length).buffer)).buffer,
  );
  const longest = Math.max(...lengths);
  const padded = new Uint8Array(longest);
  padded.set(bytes);
  const all = communicator.allgather(padded);
  return Array.from(
    lengths,
    (length, rank) => new TextDecoder().decode(all.subarray(rank * longest, rank * longest + length)),
  );
}

/** Nested objects as dotted keys ("config.batchSize"), so a difference names the setting itself. */
function flatten(value: unknown, prefix = "", into: Record<string, unknown> = {}): Record<string, unknown> {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, into);
  } else {
    into[prefix] = value;
  }
  return into;
}

/** JSON with object keys sorted, so equal settings give equal text whatever order they were built in. */
function stableJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, inner) =>
      inner && typeof inner === "object" && !Array.isArray(inner)
        ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => a.localeCompare(b)))
        : inner,
  );
}
