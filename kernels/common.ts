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

/**
 * The cache key of the kernel `family` generates from `spec`: the family's name and a stable serialisation
 * of the specification (object keys sorted, undefined fields left out), so that the key names every
 * constant the WGSL is generated from and two specifications give equal keys only when they are equal.
 * `spec` holds numbers, strings, booleans, arrays and plain objects of them.
 */
export function kernelKey(family: string, spec: object): string {
  return family + serialise(spec, family);
}

function serialise(value: unknown, where: string): string {
  switch (typeof value) {
    case "number":
      // String() would write -0 as "0": a fill of -0.0 is not a fill of 0.0.
      return Object.is(value, -0) ? "-0" : String(value);
    case "boolean":
      return String(value);
    case "string":
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) return `[${value.map((v) => serialise(v, where)).join(",")}]`;
      const fields = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) =>
        a < b ? -1 : a > b ? 1 : 0
      );
      return `{${fields.map(([k, v]) => `${k}:${serialise(v, `${where}.${k}`)}`).join(",")}}`;
    }
    default:
      throw new Error(`spikegpu: kernel specification ${where} holds a ${typeof value}, which has no key`);
  }
}
