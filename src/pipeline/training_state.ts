/** A run's complete state to and from a checkpoint: weights, optimizer, schedule position, data order. */
import {
  type Checkpoint,
  CHECKPOINT_FORMAT_VERSION,
  restoreArray,
  storeArray,
  type StoredArray,
} from "../io/checkpoint.ts";
import type { NamedArray } from "../io/safetensors.ts";
import { loadStateDict, stateDict } from "../io/state_dict.ts";
import type { Module } from "../nn/module.ts";
import type { GradScaler } from "../optim/grad_scaler.ts";
import type { Optimizer } from "../optim/optimizer.ts";

/** Where a run stands, as a checkpoint records it. */
export interface Progress {
  /** Epoch in progress (0-based). */
  epoch: number;
  /** Optimizer steps taken so far in the whole run. */
  step: number;
  /** Batches of `epoch` already trained (0 at an epoch boundary). */
  batchInEpoch: number;
  /** Best SNN test top-1 so far (percent), or -1. */
  bestAccuracy: number;
}

/** What a checkpoint captures and restores. */
export interface StateSources {
  /** The model's registry name. */
  modelName: string;
  /** The options it was built with. */
  modelOptions: Record<string, unknown>;
  /** The model. */
  model: Module;
  /** Its optimizer. */
  optimizer: Optimizer;
  /** The run configuration (flags), stored for reference. */
  config: Record<string, unknown>;
  /** Seed of the data order and augmentation. */
  seed: number;
  /** The loss scaler of a mixed-precision run. */
  scaler?: GradScaler;
  /** Ranks of a data-parallel run (default 1): each epoch's batches are split over them. */
  world?: number;
}

/** A checkpoint of everything in `sources` at `progress`, read back from the GPU. */
export async function captureCheckpoint(sources: StateSources, progress: Progress): Promise<Checkpoint> {
  const weights: Record<string, StoredArray> = {};
  for (const [name, array] of await stateDict(sources.model)) {
    weights[name] = storeArray(array.data as Float32Array | BigInt64Array, array.shape);
  }
  const opt = await sources.optimizer.exportState();
  const slots: Record<string, StoredArray[]> = {};
  for (const [slot, arrays] of Object.entries(opt.slots)) slots[slot] = arrays.map((a) => storeArray(a));
  return {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    model: { name: sources.modelName, options: sources.modelOptions },
    weights,
    optimizer: { kind: opt.kind, step: opt.step, lr: opt.lr, hyper: opt.hyper, slots },
    schedule: { epoch: progress.epoch },
    epoch: progress.epoch,
    step: progress.step,
    rng: {
      seed: sources.seed,
      epoch: progress.epoch,
      batchInEpoch: progress.batchInEpoch,
      ...(sources.world && sources.world > 1 ? { world: sources.world } : {}),
    },
    bestAccuracy: progress.bestAccuracy,
    config: sources.config,
    gradScaler: sources.scaler ? await sources.scaler.exportState() : null,
  };
}

/**
 * Options that fix parameter shapes, with the flags that set them; a checkpoint must agree on all of them
 * (T may differ: staged T).
 */
const SHAPE_OPTIONS: Record<string, string> = {
  numClasses: "--dataset (its class count)",
  inChannels: "--dataset (its input channels)",
  imagenetStem: "--dataset (over 200 classes: ImageNet stem)",
  modules: "--sb-places, --sb-kernels, --sb-width, --sb-local and --no-sb",
  depth: "--depth",
  widths: "--width",
  width: "--width",
};

/**
 * Restores weights and optimizer state into freshly built ones and returns where the run stands.
 * The optimizer keeps this run's hyperparameters (a later training stage may change them). Errors name
 * the checkpoint and what differs.
 */
export async function restoreCheckpoint(
  checkpoint: Checkpoint,
  sources: StateSources,
  source: string,
): Promise<Progress> {
  if (checkpoint.model.name !== sources.modelName) {
    throw new Error(
      `--resume: ${source} holds a ${checkpoint.model.name} model, this run builds ${sources.modelName}; ` +
        `expected --model ${checkpoint.model.name}`,
    );
  }
  // Checkpoints written before the option was renamed name the modules `surrogate`.
  const savedOptions: Record<string, unknown> = {
    modules: checkpoint.model.options.surrogate,
    ...checkpoint.model.options,
  };
  for (const [key, flags] of Object.entries(SHAPE_OPTIONS)) {
    const saved = JSON.stringify(savedOptions[key] ?? null);
    const wanted = JSON.stringify(sources.modelOptions[key] ?? null);
    if (saved !== wanted) {
      throw new Error(
        `--resume: ${source} was trained with model option ${key}=${saved}, this run asks for ${wanted}; ` +
          `expected the checkpoint's ${flags}, which fix weight shapes (--T may change)`,
      );
    }
  }
  const arrays = new Map<string, NamedArray>();
  for (const [name, stored] of Object.entries(checkpoint.weights)) {
    const data = restoreArray(stored, `${source}: ${name}`);
    arrays.set(name, {
      dtype: stored.dtype === "i64" ? "I64" : "F32",
      shape: stored.shape,
      data: data as Float32Array | BigInt64Array,
    });
  }
  loadStateDict(sources.model, arrays, { source });
  if (checkpoint.optimizer) {
    const { kind, step, lr, slots } = checkpoint.optimizer;
    const { hyper, kind: currentKind } = await sources.optimizer.exportState();
    const restored: Record<string, Float32Array[]> = {};
    for (const [slot, arraysOfSlot] of Object.entries(slots)) {
      restored[slot] = arraysOfSlot.map((a, i) =>
        restoreArray(a, `${source}: optimizer ${slot}[${i}]`) as Float32Array
      );
    }
    try {
      sources.optimizer.importState({ kind, step, lr, hyper, slots: restored });
    } catch (error) {
      throw new Error(
        `--resume: ${source} holds ${kind} optimizer state that this run's ${currentKind} optimizer cannot take ` +
          `(${(error as Error).message}); expected --optimizer ${kind}, as in the checkpoint's run`,
      );
    }
  }
  // A run that turns --f16 on from an f32 checkpoint starts a fresh scaler, as a new torch GradScaler would.
  if (sources.scaler && checkpoint.gradScaler) {
    try {
      sources.scaler.importState(checkpoint.gradScaler);
    } catch (error) {
      throw new Error(`--resume: ${source}: ${(error as Error).message}`);
    }
  }
  const rng = checkpoint.rng as { batchInEpoch?: number; world?: number } | null;
  // Mid-epoch on another number of ranks: continue at the same share of the epoch (each rank's batch
  // count scales with 1 / ranks); the rest of that epoch is sharded anew.
  const savedWorld = rng?.world ?? 1;
  const world = sources.world ?? 1;
  const batchInEpoch = rng?.batchInEpoch ?? 0;
  return {
    epoch: checkpoint.epoch,
    step: checkpoint.step,
    batchInEpoch: savedWorld === world ? batchInEpoch : Math.floor(batchInEpoch * savedWorld / world),
    bestAccuracy: checkpoint.bestAccuracy,
  };
}
