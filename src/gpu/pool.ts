/**
 * Storage buffers reused across steps. A training step asks for the same sizes every time, so a freed
 * buffer is kept in a free list for its exact (256-byte rounded) size and handed to the next request of
 * that size: after the first step, a step allocates nothing.
 */
import { gpu, reportGpuFailure } from "./device.ts";
import { forgetBindGroups } from "./kernels.ts";

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;
const ALIGN = 256;

const free = new Map<number, GPUBuffer[]>();
let bytesInUse = 0;
let peakBytesInUse = 0;
let bytesAllocated = 0;
let buffersCreated = 0;

/** Buffer-pool counters, in bytes and buffers. */
export interface PoolStats {
  /** Bytes held by live tensors. */
  bytesInUse: number;
  /** High-water mark of bytesInUse since the last `resetPeak`. */
  peakBytesInUse: number;
  /** Bytes of all buffers the pool owns, in use or free. */
  bytesAllocated: number;
  /** How many GPU buffers the pool has ever created. */
  buffersCreated: number;
}

export function roundedSize(bytes: number): number {
  return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
}

/**
 * A new storage buffer for tensor `what`. Running out of GPU memory is only known asynchronously, from an
 * error scope; it is recorded against the tensor and thrown at the next submission.
 */
export function createTensorBuffer(device: GPUDevice, size: number, what: string): GPUBuffer {
  device.pushErrorScope("out-of-memory");
  const buffer = device.createBuffer({ size, usage: USAGE, label: what });
  device.popErrorScope().then((error) => {
    if (!error) return;
    reportGpuFailure(
      new Error(
        `spikegpu: GPU out of memory creating tensor ${what} (${size} bytes): ${error.message}; ` +
          "try a smaller --batch-size",
      ),
    );
  }, () => {
    // Only a lost device rejects here, and it reports itself.
  });
  return buffer;
}

/** Creation order of the pool's buffers. */
const serials = new WeakMap<GPUBuffer, number>();

/**
 * The free buffer created first. Handing out buffers by creation order, not by when they were freed,
 * makes a step's tensors land in the same buffers as the last step's (every step starts with the same
 * buffers free and asks for the same sizes in the same order), so its bind groups are found in the
 * cache instead of being made again.
 */
function takeOldest(list: GPUBuffer[] | undefined): GPUBuffer | undefined {
  if (!list?.length) return undefined;
  let best = 0;
  for (let i = 1; i < list.length; i++) {
    if (serials.get(list[i])! < serials.get(list[best])!) best = i;
  }
  const buffer = list[best];
  list[best] = list[list.length - 1];
  list.pop();
  return buffer;
}

/**
 * A buffer of at least `bytes`; `what` names the tensor in the error when the size exceeds what one
 * binding can address or the GPU runs out of memory.
 */
export function acquireBuffer(bytes: number, what: string): GPUBuffer {
  const size = roundedSize(bytes);
  const { device, maxStorageBindingBytes, maxBufferBytes } = gpu();
  const limit = Math.min(maxStorageBindingBytes, maxBufferBytes);
  if (size > limit) {
    throw new Error(
      `spikegpu: tensor ${what} needs ${size} bytes, more than this adapter's storage binding limit of ` +
        `${limit} bytes; try a smaller --batch-size (or smaller inputs)`,
    );
  }
  let buffer = takeOldest(free.get(size));
  if (!buffer) {
    buffer = createTensorBuffer(device, size, what);
    serials.set(buffer, buffersCreated);
    bytesAllocated += size;
    buffersCreated++;
  }
  bytesInUse += size;
  peakBytesInUse = Math.max(peakBytesInUse, bytesInUse);
  return buffer;
}

/**
 * Returns a buffer for reuse. Reuse is safe inside the pending command encoder because WebGPU runs a
 * queue's commands in order; uploads flush that encoder before writing (see Tensor.fromData).
 */
export function releaseBuffer(buffer: GPUBuffer): void {
  const size = buffer.size;
  bytesInUse -= size;
  let list = free.get(size);
  if (!list) free.set(size, list = []);
  list.push(buffer);
}

/** The buffer pool's counters now. */
export function poolStats(): PoolStats {
  return { bytesInUse, peakBytesInUse, bytesAllocated, buffersCreated };
}

/** Starts a new peak measurement at the bytes in use now. */
export function resetPeak(): void {
  peakBytesInUse = bytesInUse;
}

/** Destroys every free buffer (for memory pressure or before measuring). */
export function trimPool(): void {
  forgetBindGroups();
  for (const list of free.values()) {
    for (const buffer of list) {
      bytesAllocated -= buffer.size;
      buffer.destroy();
    }
  }
  free.clear();
}
