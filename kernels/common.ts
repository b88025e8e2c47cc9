/** WGSL pieces shared by kernel families. */

/** Invocations per workgroup for one-thread-per-element kernels. */
export const WORKGROUP_SIZE = 256;
/** WebGPU's default limit on workgroups per grid dimension. */
export const MAX_WORKGROUPS_X = 65535;

/** A 2-D grid covering `n` invocations when one dimension is not enough. */
export interface Grid {
  workgroups: [number, number];
  /** Invocations per grid row: flat index = gid.x + gid.y * rowStride. */
  rowStride: number;
}

export function gridFor(n: number, workgroupSize = WORKGROUP_SIZE): Grid {
  const groups = Math.max(1, Math.ceil(n / workgroupSize));
  const x = Math.min(groups, MAX_WORKGROUPS_X);
  const y = Math.ceil(groups / x);
  return { workgroups: [x, y], rowStride: x * workgroupSize };
}

/** Prints a number as a WGSL f32 literal. */
export function f32(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`cannot write ${value} as a WGSL f32 literal`);
  const text = String(Math.fround(value));
  return text.includes(".") || text.includes("e") ? text : `${text}.0`;
}

/**
 * Values per invocation of a per-channel elementwise kernel: a divisor of `spatial` (so a run never
 * crosses a channel and its coefficients load once per run), at most 8.
 */
export function channelRun(spatial: number): number {
  for (const run of [8, 7, 6, 5, 4, 3, 2]) if (spatial % run === 0) return run;
  return 1;
}
