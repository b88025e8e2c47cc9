/**
 * A GPU tensor: a shape, a dtype and a pooled storage buffer. Reshapes share storage, so storage is
 * reference-counted and returns to the pool when its last tensor is disposed.
 */
import { gpu } from "../gpu/device.ts";
import { acquireBuffer, releaseBuffer } from "../gpu/pool.ts";
import { readBuffer, writeBuffer } from "../gpu/kernels.ts";
import { currentScope } from "./scope.ts";

/** Element types of tensors. */
export type DType = "f32" | "f16" | "i32" | "u32";

/** Host arrays a tensor uploads from or reads into (Uint16Array holds f16 bits). */
export type TensorData = Float32Array | Int32Array | Uint32Array | Uint16Array;

const BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[], name: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`spikegpu: tensor ${name} has invalid shape [${shape.join(", ")}]`);
    }
  }
}

class Storage {
  refs = 1;
  constructor(readonly buffer: GPUBuffer) {}
}

let anonymousCount = 0;

export interface TensorOptions {
  dtype?: DType;
  /** Names the tensor in errors and GPU labels. */
  name?: string;
  requiresGrad?: boolean;
}

/** An n-dimensional array in a GPU buffer from the pool, owned by the scope it was created in. */
export class Tensor {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Name, for messages and profiles. */
  readonly name: string;
  /** Leaf tensors with requiresGrad accumulate into `grad` during backward; others pass gradients on. */
  requiresGrad: boolean;
  /** The accumulated gradient of a leaf tensor after backward, else null. */
  grad: Tensor | null = null;
  /** True for tensors produced by a recorded op (not leaves). */
  hasCreator = false;
  #storage: Storage | null;

  private constructor(
    shape: readonly number[],
    dtype: DType,
    storage: Storage,
    name: string,
    requiresGrad: boolean,
  ) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.#storage = storage;
    this.name = name;
    this.requiresGrad = requiresGrad;
    currentScope()?.track(this);
  }

  /** An uninitialised tensor (kernels overwrite it). */
  static empty(shape: readonly number[], options: TensorOptions = {}): Tensor {
    const dtype = options.dtype ?? "f32";
    const name = options.name ?? `t${anonymousCount++}`;
    checkShape(shape, name);
    const bytes = numel(shape) * BYTES[dtype];
    const buffer = acquireBuffer(bytes, `${name} [${shape.join(", ")}] ${dtype}`);
    return new Tensor(shape, dtype, new Storage(buffer), name, options.requiresGrad ?? false);
  }

  /** Uploads `data` (row-major) to a new tensor. */
  static fromData(
    data: TensorData | readonly number[],
    shape: readonly number[],
    options: TensorOptions = {},
  ): Tensor {
    const dtype = options.dtype ?? dtypeOf(data);
    const typed = Array.isArray(data) ? toTyped(data as readonly number[], dtype) : data as TensorData;
    if (typed.length !== numel(shape)) {
      throw new Error(
        `spikegpu: tensor ${options.name ?? "data"} has ${typed.length} values, shape [${
          shape.join(", ")
        }] needs ` +
          `${numel(shape)}`,
      );
    }
    if (dtype === "f16" && !gpu().hasF16) {
      throw new Error(`spikegpu: tensor ${options.name ?? "data"} is f16 but the adapter has no shader-f16`);
    }
    const tensor = Tensor.empty(shape, { ...options, dtype });
    if (typed.length > 0) writeBuffer(tensor.buffer, typed);
    return tensor;
  }

  /** The GPU buffer; throws after dispose. */
  get buffer(): GPUBuffer {
    if (!this.#storage) throw new Error(`spikegpu: tensor ${this.name} was used after dispose`);
    return this.#storage.buffer;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Bytes of the elements. */
  get byteLength(): number {
    return this.size * BYTES[this.dtype];
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#storage === null;
  }

  /**
   * A tensor sharing this one's storage with another shape of the same size. It records no gradient:
   * differentiable code uses the `reshape` op, which does.
   */
  view(shape: readonly number[], name = this.name): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(
        `spikegpu: cannot view tensor ${this.name} [${this.shape.join(", ")}] as [${shape.join(", ")}]`,
      );
    }
    const storage = this.#storage;
    if (!storage) throw new Error(`spikegpu: tensor ${this.name} was used after dispose`);
    storage.refs++;
    return new Tensor(shape, this.dtype, storage, name, false);
  }

  /** Reads the values back to the CPU. */
  async read(): Promise<TensorData> {
    const bytes = await readBuffer(this.buffer, this.byteLength);
    switch (this.dtype) {
      case "f32":
        return new Float32Array(bytes);
      case "i32":
        return new Int32Array(bytes);
      case "u32":
        return new Uint32Array(bytes);
      case "f16":
        return new Uint16Array(bytes);
    }
  }

  /** Reads the values back as float32 (f16 is widened). */
  async readFloat(): Promise<Float32Array> {
    const data = await this.read();
    if (data instanceof Float32Array) return data;
    if (data instanceof Uint16Array) return Float32Array.from(data, halfToFloat);
    return Float32Array.from(data);
  }

  /** Returns the storage to the pool once no view uses it; the gradient is disposed too. */
  dispose(): void {
    const storage = this.#storage;
    if (!storage) return;
    this.#storage = null;
    if (--storage.refs === 0) releaseBuffer(storage.buffer);
    this.grad?.dispose();
    this.grad = null;
  }
}

function dtypeOf(data: TensorData | readonly number[]): DType {
  if (data instanceof Int32Array) return "i32";
  if (data instanceof Uint32Array) return "u32";
  if (data instanceof Uint16Array) return "f16";
  return "f32";
}

function toTyped(data: readonly number[], dtype: DType): TensorData {
  switch (dtype) {
    case "f32":
      return Float32Array.from(data);
    case "i32":
      return Int32Array.from(data);
    case "u32":
      return Uint32Array.from(data);
    case "f16":
      return Uint16Array.from(data, floatToHalf);
  }
}

/** One f16 and its bits: the platform's Float16Array converts as IEEE 754 does. */
const half = new Float16Array(1);
const halfBits = new Uint16Array(half.buffer);

/** The value of f16 bits. */
export function halfToFloat(bits: number): number {
  halfBits[0] = bits;
  return half[0];
}

/**
 * The f16 bits of a value as torch's .half() and the GPU's toHalf compute them: rounded to float32
 * first, then to the nearest f16 with ties to even, overflowing to infinity.
 */
export function floatToHalf(value: number): number {
  half[0] = Math.fround(value);
  return halfBits[0];
}
