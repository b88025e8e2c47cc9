/**
 * Training checkpoints: one msgpack document holding everything needed to continue a run exactly.
 * Typed arrays are stored as {dtype, shape, bytes} with raw little-endian bytes, because msgpackr's own
 * typed-array extension is not portable to other readers. Written atomically (temp, fsync, rename).
 */
import { Packr } from "npm:msgpackr@^1.11.0/pack";
import type { GradScalerState } from "../optim/grad_scaler.ts";
import { writeFileAtomic } from "./atomic.ts";

export const CHECKPOINT_FORMAT_VERSION = 1;

/** Element type of a stored array. */
export type ArrayDType = "f32" | "i32" | "u32" | "i64";

/** An array in a checkpoint: element type, shape and raw little-endian bytes. */
export interface StoredArray {
  /** Element type. */
  dtype: ArrayDType;
  /** Shape. */
  shape: number[];
  /** Raw little-endian bytes. */
  bytes: Uint8Array;
}

export type StorableArray = Float32Array | Int32Array | Uint32Array | BigInt64Array;

export function storeArray(data: StorableArray, shape: readonly number[] = [data.length]): StoredArray {
  const dtype: ArrayDType = data instanceof Float32Array
    ? "f32"
    : data instanceof Int32Array
    ? "i32"
    : data instanceof Uint32Array
    ? "u32"
    : "i64";
  // Copy: the view may cover part of a larger buffer.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return { dtype, shape: [...shape], bytes };
}

export function restoreArray(stored: StoredArray, what: string): StorableArray {
  const size = stored.shape.reduce((a, b) => a * b, 1);
  const buffer = new Uint8Array(stored.bytes).buffer;
  const width = stored.dtype === "i64" ? 8 : 4;
  if (buffer.byteLength !== size * width) {
    throw new Error(
      `checkpoint: ${what} has ${buffer.byteLength} bytes, shape [${stored.shape}] needs ${size * width}`,
    );
  }
  switch (stored.dtype) {
    case "f32":
      return new Float32Array(buffer);
    case "i32":
      return new Int32Array(buffer);
    case "u32":
      return new Uint32Array(buffer);
    case "i64":
      return new BigInt64Array(buffer);
    default:
      throw new Error(`checkpoint: ${what} has unknown dtype ${stored.dtype}`);
  }
}

/** Everything needed to continue a run exactly; one msgpack document on disk. */
export interface Checkpoint {
  /** CHECKPOINT_FORMAT_VERSION of the writer. */
  formatVersion: number;
  /** Registry name and the options it was built with. */
  model: { name: string; options: Record<string, unknown> };
  /** State-dict entries by reference name (f32 tensors, i64 counters). */
  weights: Record<string, StoredArray>;
  /** The optimizer's state (slots per parameter, hyperparameters); null before it was created. */
  optimizer: {
    kind: string;
    step: number;
    lr: number;
    hyper: Record<string, number | boolean>;
    slots: Record<string, StoredArray[]>;
  } | null;
  /** The learning-rate schedule's settings. */
  schedule: Record<string, unknown>;
  /** Epoch in progress (0-based). */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  /** The data order and augmentation RNG state (loader-defined). */
  rng: unknown;
  /** Best test top-1 so far (percent), or -1. */
  bestAccuracy: number;
  /** The full run configuration (flags). */
  config: Record<string, unknown>;
  /** The loss scaler's state, in runs with --f16; absent in older checkpoints. */
  gradScaler?: GradScalerState | null;
}

const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeCheckpoint(checkpoint: Checkpoint): Uint8Array {
  return packr.pack(checkpoint);
}

export function decodeCheckpoint(bytes: Uint8Array, source: string): Checkpoint {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw new Error(
      `checkpoint: ${source} cannot be decoded (${
        (error as Error).message
      }): truncated or not a spikegpu checkpoint`,
    );
  }
  const checkpoint = value as Checkpoint;
  if (typeof checkpoint !== "object" || checkpoint === null || typeof checkpoint.formatVersion !== "number") {
    throw new Error(`checkpoint: ${source} is not a spikegpu checkpoint (no format version)`);
  }
  if (checkpoint.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new Error(
      `checkpoint: ${source} has format version ${checkpoint.formatVersion}; this spikegpu reads version ` +
        `${CHECKPOINT_FORMAT_VERSION}`,
    );
  }
  for (const key of ["model", "weights", "epoch", "step", "config"] as const) {
    if (checkpoint[key] === undefined) throw new Error(`checkpoint: ${source} lacks "${key}" (truncated?)`);
  }
  checkFields(checkpoint, source);
  return checkpoint;
}

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function isStoredArray(value: unknown): value is StoredArray {
  return isFields(value) && ["f32", "i32", "u32", "i64"].includes(value.dtype as string) &&
    Array.isArray(value.shape) && value.shape.every((d) => Number.isInteger(d) && d >= 0) &&
    value.bytes instanceof Uint8Array;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return `${value.byteLength} raw bytes`;
  if (isFields(value)) return `an object with keys [${Object.keys(value).join(", ")}]`;
  return String(value);
}

/** The fields restoring reads, checked up front so a damaged file is named instead of a TypeError later. */
function checkFields(checkpoint: Checkpoint, source: string): void {
  const fail = (field: string, value: unknown, expected: string): never => {
    throw new Error(
      `checkpoint: ${source}: ${field} is ${
        describe(value)
      }; expected ${expected} (damaged or not a spikegpu checkpoint)`,
    );
  };
  const { model, weights, optimizer } = checkpoint as unknown as Fields;
  if (!isFields(model)) return fail("model", model, "{name, options}");
  if (typeof model.name !== "string") fail("model.name", model.name, "a model name");
  if (!isFields(model.options)) fail("model.options", model.options, "an object of model options");
  if (!isFields(weights)) return fail("weights", weights, "state-dict arrays by name");
  for (const [name, stored] of Object.entries(weights)) {
    if (!isStoredArray(stored)) fail(`weights["${name}"]`, stored, "{dtype: f32|i32|u32|i64, shape, bytes}");
  }
  for (const key of ["epoch", "step"] as const) {
    const value = checkpoint[key];
    if (!Number.isInteger(value) || value < 0) fail(key, value, "a whole number >= 0");
  }
  if (typeof checkpoint.bestAccuracy !== "number") fail("bestAccuracy", checkpoint.bestAccuracy, "a number");
  if (!isFields(checkpoint.config)) fail("config", checkpoint.config, "the run configuration");
  if (optimizer === null || optimizer === undefined) return;
  if (!isFields(optimizer) || typeof optimizer.kind !== "string" || !isFields(optimizer.slots)) {
    return fail("optimizer", optimizer, "null or {kind, step, lr, hyper, slots}");
  }
  for (const [slot, arrays] of Object.entries(optimizer.slots)) {
    if (!Array.isArray(arrays) || !arrays.every(isStoredArray)) {
      fail(`optimizer.slots["${slot}"]`, arrays, "a list of {dtype, shape, bytes}");
    }
  }
}

/** Where a checkpoint holds a NaN or an infinity: a weight by its state-dict name, or an optimizer slot. */
export type NonFiniteEntry = { weight: string } | { slot: string; index: number };

/** The first f32 array of `checkpoint` holding a NaN or an infinity, or null: none should ever be saved. */
export function firstNonFinite(checkpoint: Checkpoint): NonFiniteEntry | null {
  for (const [name, stored] of Object.entries(checkpoint.weights)) {
    if (holdsNonFinite(stored)) return { weight: name };
  }
  for (const [slot, arrays] of Object.entries(checkpoint.optimizer?.slots ?? {})) {
    const index = arrays.findIndex(holdsNonFinite);
    if (index >= 0) return { slot, index };
  }
  return null;
}

function holdsNonFinite(stored: StoredArray): boolean {
  if (stored.dtype !== "f32") return false;
  const bytes = stored.bytes.byteOffset % 4 === 0 ? stored.bytes : stored.bytes.slice();
  // All exponent bits set: NaN or an infinity.
  for (const word of new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2)) {
    if ((word & 0x7f800000) === 0x7f800000) return true;
  }
  return false;
}

/** Writes `checkpoint` to `path` atomically: a kill or a full disk leaves any previous file whole. */
export async function writeCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(checkpoint));
}

/** Reads a checkpoint, with an error naming the file when it is missing, truncated or not one. */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`checkpoint: cannot read ${path}: ${(error as Error).message}`);
  }
  return decodeCheckpoint(bytes, path);
}
