/** What a pass records: kernels, their dispatches (bound ranges, per-dispatch parameters) and scratch. */
import type { Kernel } from "../../src/gpu/kernels.ts";

/** A byte range of a buffer, bound to one binding. */
export interface BufferRange {
  offset: number;
  size: number;
}

/** One dispatch of a kernel. */
export interface ConvDispatch {
  /** Per binding: the byte range bound, or undefined for the whole buffer. */
  ranges: (BufferRange | undefined)[];
  /** Per-dispatch u32 parameters, bound after the buffers (kernels without any have none). */
  params?: number[];
  workgroups: [number, number, number];
}

export interface ConvKernel extends Kernel {
  /** The tensor bound at each binding, by role: an operand of the pass or one of its scratch tensors. */
  buffers: string[];
  dispatches: ConvDispatch[];
}

/** What one pass (forward, input gradient or weight gradient) records, in order. */
export interface ConvPlan {
  /** Scratch tensors the kernels use, by role, in f32 elements; they live for the pass only. */
  scratch: Record<string, number>;
  kernels: ConvKernel[];
}
