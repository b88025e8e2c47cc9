/**
 * Training checkpoints: one msgpack document holding everything needed to continue a run exactly.
 * Typed arrays are stored as {dtype, shape, bytes} with raw little-endian bytes, because msgpackr's own
 * typed-array extension is not portable to other readers. Written atomically (temp, fsync, rename).
 */
import { Packr } from "msgpackr";
import { writeFileAtomic } from "./atomic.ts";

export const CHECKPOINT_FORMAT_VERSION = 1;

export type ArrayDType = "f32" | "i32" | "u32" | "i64";

export interface StoredArray {
  dtype: ArrayDType;
  shape: number[];
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

export interface Checkpoint {
  formatVersion: number;
  /** Registry name and the options it was built with. */
  model: { name: string; options: Record<string, unknown> };
  /** State-dict entries by reference name (f32 tensors, i64 counters). */
  weights: Record<string, StoredArray>;
  optimizer: {
    kind: string;
    step: number;
    lr: number;
    hyper: Record<string, number | boolean>;
    slots: Record<string, StoredArray[]>;
  } | null;
  schedule: Record<string, unknown>;
  epoch: number;
  step: number;
  /** The data order and augmentation RNG state (loader-defined). */
  rng: unknown;
  bestAccuracy: number;
  /** The full run configuration (flags). */
  config: Record<string, unknown>;
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
  return checkpoint;
}

export async function writeCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(checkpoint));
}

export async function readCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`checkpoint: cannot read ${path}: ${(error as Error).message}`);
  }
  return decodeCheckpoint(bytes, path);
}
