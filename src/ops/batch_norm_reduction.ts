/**
 * Synchronised batch norm (torch.nn.SyncBatchNorm): inside `withBatchNormReduction`, training-mode batch
 * norms normalise with statistics over every rank's batch, and their backward sums the per-channel
 * gradient terms over ranks likewise. The collectives come from the caller (the data-parallel layer), so
 * ops depend on no communicator; they run as host steps of a deferred recording (gpu/kernels.ts
 * `runDeferred`), since a forward is recorded synchronously and a collective needs the values.
 */

/** The collectives a synchronised batch norm needs, over the ranks of a data-parallel job. */
export interface BatchNormReduction {
  /** Element-wise sum over ranks, in place. */
  sum(values: Float32Array): void;
  /** Every rank's `values` (one length on all ranks), concatenated in rank order. */
  gather(values: Float32Array): Float32Array;
}

let current: BatchNormReduction | undefined;

/**
 * Runs `body` with training-mode batch norms synchronised over ranks through `reduction`; the ops it
 * records keep that choice for their backward. `body` must run inside `runDeferred`.
 */
export function withBatchNormReduction<T>(reduction: BatchNormReduction, body: () => T): T {
  const outer = current;
  current = reduction;
  try {
    return body();
  } finally {
    current = outer;
  }
}

/** The reduction batch norms recorded now use, or undefined (each process normalises its own batch). */
export function batchNormReduction(): BatchNormReduction | undefined {
  return current;
}

/**
 * The host step between a synchronised batch norm's partial sums and its statistics. `values` holds
 * this rank's per-channel sum of (x - x0) (row 0), sum of (x - x0)^2 (row 1), x0 (row 2) and its count
 * per channel (last); every rank's are gathered and merged in rank order, in f64 (Chan et al.'s pairwise
 * update, so that means far from zero lose no digits), into the global mean (row 0), sum of squared
 * deviations from it (row 1) and total count (last), which batchNormSyncStatsKernel reads. Every rank
 * merges the same numbers in the same order, so all of them hold the same statistics.
 */
export function mergeMoments(values: Float32Array, channels: number, reduction: BatchNormReduction): void {
  const C = channels;
  const length = 3 * C + 1;
  if (values.length !== length) {
    throw new Error(`batchNorm: ${values.length} moments for ${C} channels, expected ${length}`);
  }
  const all = reduction.gather(values);
  const ranks = all.length / length;
  const total = Array.from({ length: ranks }, (_, r) => all[r * length + 3 * C]).reduce((a, b) => a + b, 0);
  for (let c = 0; c < C; c++) {
    let count = 0;
    let mean = 0;
    let m2 = 0;
    for (let r = 0; r < ranks; r++) {
      const base = r * length;
      const n = all[base + 3 * C];
      const sum = all[base + c];
      const rankMean = all[base + 2 * C + c] + sum / n;
      const rankM2 = Math.max(all[base + C + c] - sum * sum / n, 0);
      const delta = rankMean - mean;
      const merged = count + n;
      mean += delta * n / merged;
      m2 += rankM2 + delta * delta * count * n / merged;
      count = merged;
    }
    values[c] = mean;
    values[C + c] = m2;
  }
  values[3 * C] = total;
}
