/**
 * The stages a training run is composed of. Each has a typed input and output and knows nothing of its
 * neighbours, so a script can swap one (its own data source, its own model) and keep the loop:
 *
 *   source (decode, augment or event-frame encode, batch; workers)  -> HostBatch
 *   trainStep (upload, forward, SML loss, backward, optimizer)      -> metrics on the GPU
 *   evaluate (eval-mode forward, top-1/top-5, activity)             -> EpochRecord parts
 *   log (progress, metrics.jsonl, plots) and checkpoint (atomic)    -> run folder
 */
import type { HostBatch } from "./train_step.ts";

/** Where batches come from: one epoch at a time, in a reproducible order. */
export interface BatchSource {
  /** Classes of the labels. */
  readonly numClasses: number;
  /** Samples in the split. */
  readonly length: number;
  /** Batches per epoch (with the partial batch kept or dropped as configured). */
  readonly batchesPerEpoch: number;
  /** The batches of `epoch` in order, starting at batch `start` (mid-epoch resume). */
  epoch(epoch: number, start?: number): AsyncIterable<HostBatch>;
  /** Stops workers and releases files. */
  close(): void;
}

/** A value passed through a chain of transformations. */
export type Stage<I, O> = (input: I) => O | Promise<O>;

/** `compose(f, g)(x) = g(f(x))`, awaiting each stage. */
export function compose<A, B, C>(first: Stage<A, B>, second: Stage<B, C>): Stage<A, C> {
  return async (input) => await second(await first(input));
}
